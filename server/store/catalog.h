// The in-memory catalog: projects, sender token hashes and handlers, read on
// the hot paths (emit authentication, handler lookup) without touching the
// database.
//
// Snapshots are immutable and shared: readers take one with snapshot() and
// use it without locks. Reload() builds a new snapshot from the database and
// publishes it; reloads are serialized, so a published snapshot is never
// older than the one it replaces. Every instance LISTENs on the
// "rio_catalog" channel (tables notify on every change) and reloads when
// told, and after reconnecting (notifications may have been missed), so
// changes made through any instance reach all of them within milliseconds.
// The instance that made a change reloads before answering, so its own
// callers read their writes.
//
// Thread-safe.
#ifndef RIO_SERVER_STORE_CATALOG_H_
#define RIO_SERVER_STORE_CATALOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rio/v1/access.pb.h"
#include "server/store/handler_secrets.h"
#include "server/store/pg.h"
#include "server/util/secret_box.h"

namespace rio::store {

struct CachedHandler {
  std::string id;
  int64_t project_id = 0;
  std::string project;
  std::string event;
  std::string url;
  std::string method;        // "POST", "PUT", "GET"
  std::string content_type;  // "FORM", "JSON"
  std::vector<std::pair<std::string, std::string>> headers;
  int timeout_ms = 0;
  bool enabled = true;
  std::string secret;
  std::string previous_secret;  // empty when none
  absl::Time previous_secret_expire_time = absl::InfinitePast();
  // PEM, for mutual TLS with the receiver; both empty when none.
  std::string client_certificate;
  std::string client_key;
};

struct CachedProject {
  int64_t id = 0;
  std::string slug;
  std::string name;
  // Sender name -> SHA-256 of its token.
  absl::flat_hash_map<std::string, std::string> sender_token_hashes;
  // Event -> its handlers, enabled or not.
  absl::flat_hash_map<std::string,
                      std::vector<std::shared_ptr<const CachedHandler>>>
      handlers_by_event;
};

struct SenderRef {
  std::string project;  // slug
  std::string name;
};

// An access token, as the admin services check it.
struct CachedAccessToken {
  std::string name;
  v1::AccessToken::Scope scope = v1::AccessToken::READ_ONLY;
  std::string project;  // slug; empty: every project
  absl::Time expire_time = absl::InfiniteFuture();
};

struct CatalogSnapshot {
  // Increases with every published snapshot.
  uint64_t generation = 0;
  absl::flat_hash_map<std::string, CachedProject> projects;  // by slug
  // SHA-256 of a sender token -> its sender. Tokens are 256 random bits, so
  // looking up their hash reveals nothing a timing attack could use.
  absl::flat_hash_map<std::string, SenderRef> senders_by_token_hash;
  absl::flat_hash_map<std::string, std::shared_ptr<const CachedHandler>>
      handlers_by_id;
  // SHA-256 of an access token -> what it grants.
  absl::flat_hash_map<std::string, CachedAccessToken> access_tokens_by_hash;

  const CachedProject* FindProject(const std::string& slug) const {
    auto it = projects.find(slug);
    return it == projects.end() ? nullptr : &it->second;
  }
};

class Catalog {
 public:
  // Handlers' secrets are opened with `secret_box` (null: the server has no
  // key, and only plaintext rows load). `secret_box` must outlive this.
  explicit Catalog(std::string database_url,
                   const util::SecretBox* secret_box = nullptr);
  ~Catalog();  // Stop()

  // Loads everything through `conn` and publishes a new snapshot.
  absl::Status Reload(PgConnection& conn);

  std::shared_ptr<const CatalogSnapshot> snapshot() const;

  // How handler rows keep their secrets; for the calls that write them.
  const HandlerSecrets& secrets() const { return secrets_; }

  // Starts the listener thread on its own connection. `on_database_state` is
  // called from that thread with false when the connection is lost and true
  // once it is back (and the catalog reloaded).
  absl::Status StartListening(std::function<void(bool)> on_database_state);
  // Stops and joins the listener. Idempotent.
  void Stop();

 private:
  void ListenLoop();
  // Connects, LISTENs and reloads; false when stopping.
  bool ConnectListener();
  // Sleeps for `duration` or until Stop(). False if stopping.
  bool SleepUnlessStopped(absl::Duration duration);

  const std::string url_;
  const HandlerSecrets secrets_;
  std::function<void(bool)> on_database_state_;
  std::unique_ptr<PgConnection> listen_conn_;  // owned by the listener thread
  std::thread listener_;
  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;  // eventfd

  absl::Mutex reload_mu_ ABSL_ACQUIRED_BEFORE(snapshot_mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(reload_mu_) = 1;

  mutable absl::Mutex snapshot_mu_;
  std::shared_ptr<const CatalogSnapshot> snapshot_
      ABSL_GUARDED_BY(snapshot_mu_);
};

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_CATALOG_H_
