// A real HTTP/1.1 webhook receiver for tests: listens on 127.0.0.1:<free
// port>, records every request, and answers as a test script says (status,
// body, headers, a delay, or never).
//
// One thread per connection, so a delayed or hanging reply never blocks
// other connections. Connections are kept alive unless the client sends
// `Connection: close`. Bodies are read by Content-Length (chunked bodies are
// decoded too); `Expect: 100-continue` is answered at once.
//
// Thread-safety: Requests(), Count() and WaitForCount() may be called from
// any thread while the receiver runs. The script runs on connection threads,
// possibly concurrently, and must be thread-safe. Start() and Stop() are
// called from the owning test thread.
#ifndef RIO_TESTS_TESTKIT_RECEIVER_H_
#define RIO_TESTS_TESTKIT_RECEIVER_H_

#include <openssl/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace rio::testkit {

// One request as the receiver read it.
struct ReceivedRequest {
  std::string method;
  std::string path;   // Without the query string.
  std::string query;  // After '?', undecoded; empty when none.
  // In arrival order; names lower-cased, values as sent (trimmed).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // Decoded when chunked.
  // Over HTTPS with a client certificate: its subject's common name.
  std::string client_subject;
  // When the whole request (headers and body) had been read.
  std::chrono::steady_clock::time_point arrival;

  // The first header named `name` (case-insensitive); "" if absent.
  std::string Header(absl::string_view name) const;
};

// How to answer one request.
struct ReceiverReply {
  int status = 200;
  std::string body = "ok";
  std::vector<std::pair<std::string, std::string>> headers;
  // Wait this long before answering (cut short by Stop()).
  std::chrono::milliseconds delay{0};
  // Never answer; the connection is held open until Stop().
  bool hang = false;
};

// Decides the reply to `request`; `index` is the number of requests this
// receiver recorded before it (0 for the first).
using ReceiverScript =
    std::function<ReceiverReply(const ReceivedRequest& request, int index)>;

// HTTPS instead of HTTP: the receiver's certificate (chain) and key, and,
// to require client certificates, the CA that must have signed them (PEM
// files).
struct ReceiverTls {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
};

class Receiver {
 public:
  struct Peer;

  // With no script every request gets 200 "ok".
  explicit Receiver(ReceiverScript script = nullptr);
  // Speaks HTTPS with `tls`.
  Receiver(ReceiverTls tls, ReceiverScript script = nullptr)
      : Receiver(std::move(script)) {
    tls_ = std::move(tls);
  }
  ~Receiver();  // Stop().

  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Binds `host` (a literal IPv4 or IPv6 address), port 0, and starts
  // accepting. Fails if already started or the socket cannot be set up.
  absl::Status Start(const std::string& host = "127.0.0.1");
  // Stops accepting, shuts down every connection (including delayed and
  // hanging ones, which then get no reply) and joins all threads. Returns
  // promptly. Idempotent. Recorded requests stay readable.
  void Stop();

  int port() const { return port_; }
  // "http://<host>:<port><path>" (an IPv6 host in brackets).
  std::string Url(absl::string_view path = "/hook") const;

  // Every request recorded so far, in arrival order.
  std::vector<ReceivedRequest> Requests() const;
  size_t Count() const;
  // TLS handshakes that failed (e.g. a client without a certificate).
  size_t HandshakeFailures() const;
  // Waits until at least `n` requests were recorded; false on timeout.
  bool WaitForCount(size_t n, std::chrono::milliseconds timeout =
                                  std::chrono::seconds(10)) const;

 private:
  struct Connection {
    int fd = -1;  // Closed by its thread, after it leaves `connections_`.
    std::thread thread;
    bool done = false;
  };

  void AcceptLoop();
  void Serve(int id, int fd);
  // Reads one request from `fd` into `*request` (leftover bytes stay in
  // `*buffer`). False when the peer closed or sent something unparsable.
  bool ReadRequest(Peer& peer, std::string* buffer, ReceivedRequest* request,
                   bool* keep_alive);
  void JoinFinishedConnections() ABSL_LOCKS_EXCLUDED(mu_);

  const ReceiverScript script_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that tells AcceptLoop to return.
  int port_ = 0;
  ReceiverTls tls_;
  SSL_CTX* tls_context_ = nullptr;  // made by Start() when tls_ is set
  size_t handshake_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::string host_ = "127.0.0.1";  // as written in URLs
  std::thread accept_thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::map<int, Connection> connections_ ABSL_GUARDED_BY(mu_);
  int next_connection_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rio::testkit

#endif  // RIO_TESTS_TESTKIT_RECEIVER_H_
