// A "webhook receiver" that misbehaves on purpose, to test what rio-server
// does with receivers that are broken or hostile: it listens on
// 127.0.0.1:<free port>, reads each request's head (and its body, by
// Content-Length) and then answers in one chosen bad way (or not at all).
//
// It speaks raw TCP, not a real HTTP stack, so that it can send what no HTTP
// server would: invalid UTF-8, endless bodies, garbage status lines, resets.
// One thread per connection. `Expect: 100-continue` is not answered (curl
// sends the body anyway after a second; Rio's payloads are too small to ask).
//
// Thread-safety: RequestCount(), ConnectionCount() and WaitForRequests() may
// be called from any thread while the receiver runs. Start() and Stop() are
// called from the owning test thread.
#ifndef RIO_TESTS_TESTKIT_HOSTILE_RECEIVER_H_
#define RIO_TESTS_TESTKIT_HOSTILE_RECEIVER_H_

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace rio::testkit {

// How the receiver answers every request. The exact bytes of each answer are
// in hostile_receiver.cc next to the code that writes them.
enum class HostileBehaviour {
  // 200 with a Latin-1 header value (`X-Name: caf\xe9`) and a body of invalid
  // UTF-8; the connection is kept alive.
  kInvalidUtf8,
  // 200 with a Content-Length of huge_body_bytes, and all of that body
  // (unless the peer closes first); kept alive.
  kHugeBody,
  // 200 with Transfer-Encoding: chunked, chunks forever until the peer
  // closes or Stop().
  kEndlessChunked,
  // 200 with many_headers header lines (`X-H<i>: v`), then a short body;
  // kept alive.
  kManyHeaders,
  // A line that is not HTTP, then closes.
  kGarbageStatus,
  // "HTTP/1.1 200 OK\r\n..." one byte per slowloris_interval, until the
  // response is complete, the peer closes or Stop().
  kSlowloris,
  // A status line, `Content-Length: 1000` and 10 body bytes, then a TCP
  // reset (SO_LINGER 0 + close).
  kResetMidResponse,
  // Reads the request and says nothing until the peer closes or Stop().
  kNeverAnswer,
  // Interim (1xx) responses, again and again, as fast as the peer reads,
  // until it closes or Stop().
  kEndless1xx,
  // 302 with Location: this receiver's own URL, every time; kept alive.
  kRedirectLoop,
};

// Every behaviour, in declaration order (for parameterised tests).
inline constexpr HostileBehaviour kAllHostileBehaviours[] = {
    HostileBehaviour::kInvalidUtf8,      HostileBehaviour::kHugeBody,
    HostileBehaviour::kEndlessChunked,   HostileBehaviour::kManyHeaders,
    HostileBehaviour::kGarbageStatus,    HostileBehaviour::kSlowloris,
    HostileBehaviour::kResetMidResponse, HostileBehaviour::kNeverAnswer,
    HostileBehaviour::kEndless1xx,       HostileBehaviour::kRedirectLoop,
};

// "InvalidUtf8", "HugeBody", ...: the enumerator without its k.
absl::string_view HostileBehaviourName(HostileBehaviour behaviour);

struct HostileOptions {
  // kHugeBody: the declared and sent body size.
  size_t huge_body_bytes = 10 * 1024 * 1024;
  // kEndlessChunked: the size of each chunk.
  size_t chunk_bytes = 16 * 1024;
  // kManyHeaders: how many `X-H<i>: v` lines.
  int many_headers = 100000;
  // kSlowloris: the pause before each byte.
  std::chrono::milliseconds slowloris_interval{1000};
  // kEndless1xx: 100 (Continue) or 102 (Processing).
  int interim_status = 100;
};

class HostileReceiver {
 public:
  explicit HostileReceiver(HostileBehaviour behaviour,
                           HostileOptions options = {});
  ~HostileReceiver();  // Stop().

  HostileReceiver(const HostileReceiver&) = delete;
  HostileReceiver& operator=(const HostileReceiver&) = delete;

  // Binds 127.0.0.1:0 and starts accepting. Fails if already started or the
  // socket cannot be set up.
  absl::Status Start();
  // Stops accepting, shuts down every connection (cutting short whatever it
  // was sending or waiting for) and joins all threads. Returns promptly.
  // Idempotent. The counts stay readable.
  void Stop();

  HostileBehaviour behaviour() const { return behaviour_; }
  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string Url(absl::string_view path = "/hook") const;

  // Requests whose head and body were read in full (each then got the
  // behaviour's answer, or the start of it).
  int RequestCount() const;
  // Connections accepted.
  int ConnectionCount() const;
  // Waits until at least `n` requests were read; false on timeout.
  bool WaitForRequests(int n, std::chrono::milliseconds timeout =
                                  std::chrono::seconds(10)) const;

 private:
  struct Connection {
    int fd = -1;  // Closed by its thread, after it leaves `connections_`.
    std::thread thread;
    bool done = false;
  };
  enum class Wait { kElapsed, kPeerClosed, kStopped };

  void AcceptLoop();
  void Serve(int id, int fd);
  // Answers one request; true when the connection may carry another one.
  bool Answer(int fd);
  // Reads one request head and its body; false when the peer closed, sent
  // something that is not a request, or the socket was shut down.
  bool ReadRequest(int fd, std::string* buffer);
  // Waits `timeout` (forever if negative), or until the peer closes or
  // Stop(); bytes the peer sends meanwhile are discarded.
  Wait WaitOn(int fd, std::chrono::milliseconds timeout) const;
  void JoinFinishedConnections() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after Start().
  const HostileBehaviour behaviour_;
  const HostileOptions options_;
  int listen_fd_ = -1;
  // An eventfd written once by Stop() and never drained: every poll() in the
  // receiver watches it, so one write wakes them all.
  int stop_fd_ = -1;
  int port_ = 0;
  // The answer of kInvalidUtf8, kManyHeaders or kRedirectLoop, built once.
  std::string canned_;
  std::thread accept_thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  int connections_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int, Connection> connections_ ABSL_GUARDED_BY(mu_);
  int next_connection_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rio::testkit

#endif  // RIO_TESTS_TESTKIT_HOSTILE_RECEIVER_H_
