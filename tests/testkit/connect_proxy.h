// An HTTP CONNECT proxy for tests of --egress_proxy: it listens on
// 127.0.0.1:<free port>, reads "CONNECT host:port HTTP/1.1" and its headers,
// records the target, connects to `upstream` (a fixed "127.0.0.1:port", so
// that the names tests use need no DNS), answers 200 and relays bytes both
// ways until either side closes. Targets not in `allowed` get 403, as a
// policy-enforcing proxy such as smokescreen answers.
//
// ConnectProxy::SlowRelay makes a plain TCP relay instead: no CONNECT, every
// connection waits `delay` (a slow network path) before its bytes flow to
// 127.0.0.1:upstream_port.
//
// Thread-safety: Targets() may be called from any thread while it runs;
// Start() and Stop() from the owning test thread. One thread per connection.
#ifndef RIO_TESTS_TESTKIT_CONNECT_PROXY_H_
#define RIO_TESTS_TESTKIT_CONNECT_PROXY_H_

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rio::testkit {

class ConnectProxy {
 public:
  // `allowed`: the "host:port" targets tunnelled to `upstream_port` on
  // 127.0.0.1; any other target gets 403.
  ConnectProxy(std::set<std::string> allowed, int upstream_port);
  static std::unique_ptr<ConnectProxy> SlowRelay(int upstream_port,
                                                 absl::Duration delay);
  ~ConnectProxy();  // Stop()

  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  absl::Status Start();
  void Stop();

  // "http://127.0.0.1:<port>".
  std::string Url() const;
  int port() const { return port_; }
  // Every CONNECT target asked for, in order (refused ones too).
  std::vector<std::string> Targets() const;

 private:
  void AcceptLoop();
  void Serve(int fd);
  void Relay(int client);
  void Pump(int client, int upstream);
  void Close(int client, int upstream);

  const std::set<std::string> allowed_;
  const int upstream_port_;
  bool relay_ = false;
  absl::Duration relay_delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> targets_ ABSL_GUARDED_BY(mu_);
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rio::testkit

#endif  // RIO_TESTS_TESTKIT_CONNECT_PROXY_H_
