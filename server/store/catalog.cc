#include "server/store/catalog.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {

Catalog::Catalog(std::string database_url, const util::SecretBox* secret_box)
    : url_(std::move(database_url)),
      secrets_(secret_box),
      snapshot_(std::make_shared<CatalogSnapshot>()) {}

Catalog::~Catalog() { Stop(); }

std::shared_ptr<const CatalogSnapshot> Catalog::snapshot() const {
  absl::MutexLock lock(&snapshot_mu_);
  return snapshot_;
}

absl::Status Catalog::Reload(PgConnection& conn) {
  absl::MutexLock reload_lock(&reload_mu_);
  auto next = std::make_shared<CatalogSnapshot>();
  // One transaction so that the reads see one consistent state.
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_RETURN_IF_ERROR(
        conn.Exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .status());
    RIO_ASSIGN_OR_RETURN(PgResult projects,
                         conn.Exec("SELECT id, slug, name FROM projects"));
    next->projects.reserve(projects.rows());
    for (int i = 0; i < projects.rows(); ++i) {
      std::string slug(projects.Get(i, 1));
      CachedProject& p = next->projects[slug];
      p.id = projects.GetInt64(i, 0);
      p.slug = slug;
      p.name = std::string(projects.Get(i, 2));
    }
    // Only now: inserting into a flat_hash_map moves its elements.
    absl::flat_hash_map<int64_t, CachedProject*> by_id;
    for (auto& [slug, project] : next->projects) by_id[project.id] = &project;
    RIO_ASSIGN_OR_RETURN(
        PgResult senders,
        conn.Exec("SELECT project_id, name, encode(token_hash, 'hex') "
                  "FROM senders"));
    for (int i = 0; i < senders.rows(); ++i) {
      auto it = by_id.find(senders.GetInt64(i, 0));
      if (it == by_id.end()) continue;
      std::string name(senders.Get(i, 1));
      std::string hash = absl::HexStringToBytes(senders.Get(i, 2));
      next->senders_by_token_hash[hash] = SenderRef{it->second->slug, name};
      it->second->sender_token_hashes[name] = std::move(hash);
    }
    RIO_ASSIGN_OR_RETURN(
        PgResult handlers,
        conn.Exec("SELECT id, project_id, event, url, method, content_type, "
                  "headers::text, timeout_ms, enabled, secret, "
                  "coalesce(previous_secret, ''), "
                  "(extract(epoch FROM previous_secret_expire_time) "
                  "* 1000000)::bigint, secrets_sealed, client_certificate, "
                  "client_key FROM handlers ORDER BY create_time, id"));
    for (int i = 0; i < handlers.rows(); ++i) {
      auto it = by_id.find(handlers.GetInt64(i, 1));
      if (it == by_id.end()) continue;
      auto h = std::make_shared<CachedHandler>();
      h->id = std::string(handlers.Get(i, 0));
      h->project_id = it->second->id;
      h->project = it->second->slug;
      h->event = std::string(handlers.Get(i, 2));
      h->url = std::string(handlers.Get(i, 3));
      h->method = std::string(handlers.Get(i, 4));
      h->content_type = std::string(handlers.Get(i, 5));
      StoredSecrets stored;
      stored.sealed = handlers.GetBool(i, 12);
      stored.secret = std::string(handlers.Get(i, 9));
      stored.previous_secret = std::string(handlers.Get(i, 10));
      stored.headers_json = std::string(handlers.Get(i, 6));
      stored.client_key = std::string(handlers.Get(i, 14));
      RIO_ASSIGN_OR_RETURN(RowSecrets secrets, secrets_.Open(h->id, stored));
      h->headers.assign(secrets.headers.begin(), secrets.headers.end());
      h->timeout_ms = static_cast<int>(handlers.GetInt64(i, 7));
      h->enabled = handlers.GetBool(i, 8);
      h->secret = std::move(secrets.secret);
      h->previous_secret = std::move(secrets.previous_secret);
      h->client_certificate = std::string(handlers.Get(i, 13));
      h->client_key = std::move(secrets.client_key);
      if (!handlers.IsNull(i, 11)) {
        h->previous_secret_expire_time = handlers.GetMicros(i, 11);
      }
      next->handlers_by_id[h->id] = h;
      it->second->handlers_by_event[h->event].push_back(std::move(h));
    }
    RIO_ASSIGN_OR_RETURN(
        PgResult tokens,
        conn.Exec("SELECT t.name, t.scope, coalesce(p.slug, ''), "
                  "encode(t.token_hash, 'hex'), "
                  "(extract(epoch FROM t.expire_time) * 1000000)::bigint "
                  "FROM access_tokens t "
                  "LEFT JOIN projects p ON p.id = t.project_id"));
    for (int i = 0; i < tokens.rows(); ++i) {
      CachedAccessToken token;
      token.name = std::string(tokens.Get(i, 0));
      if (!v1::AccessToken::Scope_Parse(std::string(tokens.Get(i, 1)),
                                        &token.scope)) {
        continue;  // the table's CHECK allows no other value
      }
      token.project = std::string(tokens.Get(i, 2));
      if (!tokens.IsNull(i, 4)) token.expire_time = tokens.GetMicros(i, 4);
      next->access_tokens_by_hash[absl::HexStringToBytes(tokens.Get(i, 3))] =
          std::move(token);
    }
    return absl::OkStatus();
  }));
  next->generation = next_generation_++;
  absl::MutexLock lock(&snapshot_mu_);
  snapshot_ = std::move(next);
  return absl::OkStatus();
}

absl::Status Catalog::StartListening(
    std::function<void(bool)> on_database_state) {
  on_database_state_ = std::move(on_database_state);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return absl::InternalError("eventfd failed");
  RIO_ASSIGN_OR_RETURN(listen_conn_, PgConnection::Connect(url_));
  RIO_RETURN_IF_ERROR(listen_conn_->Exec("LISTEN rio_catalog").status());
  RIO_RETURN_IF_ERROR(Reload(*listen_conn_));
  listener_ = std::thread(&Catalog::ListenLoop, this);
  return absl::OkStatus();
}

void Catalog::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (listener_.joinable()) listener_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
}

bool Catalog::SleepUnlessStopped(absl::Duration duration) {
  pollfd wake = {wake_fd_, POLLIN, 0};
  (void)poll(&wake, 1, static_cast<int>(absl::ToInt64Milliseconds(duration)));
  return !stopping_.load();
}

bool Catalog::ConnectListener() {
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    if (stopping_.load()) return false;
    if (listen_conn_->Reconnect(absl::ZeroDuration()).ok() &&
        listen_conn_->Exec("LISTEN rio_catalog").ok() &&
        Reload(*listen_conn_).ok()) {
      return true;
    }
    if (!SleepUnlessStopped(backoff)) return false;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void Catalog::ListenLoop() {
  pthread_setname_np(pthread_self(), "rio-catalog");
  while (!stopping_.load()) {
    PGconn* conn = listen_conn_->raw();
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {PQsocket(conn), POLLIN, 0}};
    int ready = poll(fds, 2, /*timeout_ms=*/5000);
    if (stopping_.load()) break;
    bool alive;
    if (ready == 0) {
      // Quiet for a while: make sure the server is still there.
      alive = listen_conn_->Exec("SELECT 1").ok();
    } else {
      alive = PQconsumeInput(conn) == 1 && listen_conn_->ok();
    }
    if (alive) {
      bool changed = false;
      while (PGnotify* note = PQnotifies(conn)) {
        changed = true;
        PQfreemem(note);
      }
      if (changed) {
        if (absl::Status s = Reload(*listen_conn_); !s.ok()) {
          alive = listen_conn_->ok();
          if (alive) {
            std::fprintf(stderr,
                         "rio-server: cannot reload the catalog (%s); "
                         "dispatching with the previous one\n",
                         std::string(s.message()).c_str());
          }
        }
      }
      if (alive) continue;
    }
    std::fprintf(stderr,
                 "rio-server: lost the database connection; reconnecting\n");
    if (on_database_state_) on_database_state_(false);
    if (!ConnectListener()) break;
    std::fprintf(stderr, "rio-server: database connection restored\n");
    if (on_database_state_) on_database_state_(true);
  }
}

}  // namespace rio::store
