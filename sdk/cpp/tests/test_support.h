// What the C++ SDK's tests run against: the real rio-server (the test kit's
// ServerProcess on a fresh database of PgCluster::Shared()), a gRPC proxy in
// front of it that loses, delays or refuses calls on request, a self-signed
// certificate for TLS, and child processes for the examples.
//
// Thread-compatibility: each object is used from one test thread, except
// FlakyProxy, whose calls arrive on gRPC threads (its accessors are
// thread-safe).
#ifndef RIO_SDK_CPP_TESTS_TEST_SUPPORT_H_
#define RIO_SDK_CPP_TESTS_TEST_SUPPORT_H_

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "rio/webhook.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio::sdk_test {

inline constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
inline constexpr char kProject[] = "comments";
inline constexpr char kSender[] = "app";
inline constexpr char kEvent[] = "comment-published";
inline constexpr char kUuidV4Pattern[] =
    "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";

// One rio-server on a fresh database, with project "comments" and its sender
// "app".
class RioServer {
 public:
  RioServer() = default;
  RioServer(const RioServer&) = delete;
  RioServer& operator=(const RioServer&) = delete;

  absl::Status Start();

  int port() const;
  const std::string& database_url() const { return database_url_; }
  // The sender "app"'s token.
  const std::string& token() const { return token_; }
  // A DSN for sender "app" of "comments" at this server (or at `port`):
  // "<scheme>://app:<token>@127.0.0.1:<port>/<path>", path defaulting to the
  // project.
  std::string Dsn(const std::string& scheme = "rio", int port = 0,
                  const std::string& path = kProject) const;
  std::string Log() const { return server_->Log(); }

  absl::Status CreateProject(const std::string& slug);
  // Returns the new sender's token.
  absl::StatusOr<std::string> CreateSender(const std::string& project,
                                           const std::string& name);
  // A handler for `event` in `project`; its reply carries the secret.
  absl::StatusOr<v1::Handler> CreateHandler(
      const std::string& url, bool json = true,
      const std::string& event = kEvent, const std::string& project = kProject,
      v1::Handler::Method method = v1::Handler::POST);
  absl::Status SetHandlerUrl(const std::string& id, const std::string& url);

  // psql against this server's database (tuples only, '|'-separated).
  absl::StatusOr<std::string> Sql(const std::string& sql) const;

 private:
  std::string database_url_;
  std::string token_;
  std::unique_ptr<testkit::ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
};

// A header lookup over a request the test kit's Receiver recorded.
webhook::Headers HeadersOf(const testkit::ReceivedRequest& request);

// A port on 127.0.0.1 that nothing listens on (bound, read back, released).
int FreePort();

struct KeyAndCertificate {
  std::string key_pem;
  std::string certificate_pem;
};
// A self-signed certificate for "localhost" and 127.0.0.1.
absl::StatusOr<KeyAndCertificate> SelfSignedCertificate();

// A rio.v1.EmitService proxy in front of a real server. Each call takes the
// next mode from the list given (kPass once they run out):
//   kPass    forward and relay the reply;
//   kDrop    forward, let the server commit, then answer UNAVAILABLE (the
//            reply was lost on the way back);
//   kLate    forward, then hold the reply until the caller's deadline passed;
//   kRefuse  answer UNAVAILABLE without forwarding;
//   kHold    wait for Release(), then forward.
class FlakyProxy {
 public:
  enum class Mode { kPass, kDrop, kLate, kRefuse, kHold };

  struct Call {
    std::string method;  // "Emit" or "EmitBatch"
    std::vector<std::string> idempotency_keys;
    // What the upstream server answered, when it was asked.
    std::optional<v1::EmitBatchResponse> reply;
  };

  // `tls`: listen with this key and certificate instead of plaintext.
  FlakyProxy(const std::string& upstream, std::vector<Mode> modes,
             std::optional<KeyAndCertificate> tls = std::nullopt);
  ~FlakyProxy();

  absl::Status Start();
  int port() const { return port_; }
  std::vector<Call> Calls() const;
  void Release();

 private:
  class Service;

  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::optional<KeyAndCertificate> tls_;
  int port_ = 0;
};

// A child process whose stdout and stderr go to a temporary file.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // Stop().
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // `env` is added to (and overrides) this process's environment.
  absl::Status Start(const std::vector<std::string>& argv,
                     const std::map<std::string, std::string>& env = {});
  // The exit code (128 + signal when killed), or -1 after `timeout`.
  int Wait(absl::Duration timeout = absl::Seconds(60));
  // SIGTERM, then SIGKILL after a few seconds.
  void Stop();
  std::string Output() const;

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::string output_path_;
};

// Runs `argv` to completion; its exit code and its output.
struct RunResult {
  int exit_code;
  std::string output;
};
RunResult RunToCompletion(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {});

}  // namespace rio::sdk_test

#endif  // RIO_SDK_CPP_TESTS_TEST_SUPPORT_H_
