// Test helpers shared by Rio's unit and integration tests: a throwaway
// PostgreSQL cluster, a real rio-server process, a reflection-driven JSON gRPC
// client (what grpcurl does), and condition polling with a deadline.
//
// Thread-compatibility: each object is used from one test thread.
#ifndef RIO_TESTS_TESTKIT_TESTKIT_H_
#define RIO_TESTS_TESTKIT_TESTKIT_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace rio::testkit {

// Polls `condition` every few milliseconds until it returns true or `timeout`
// passes. Returns whether it became true.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// What a program run by RunProgram printed, and how it ended.
struct ProgramResult {
  int exit_code = -1;  // WEXITSTATUS, or 128 + signal.
  std::string out;
  std::string err;
};
// Runs `argv` (argv[0] an absolute path, e.g. /usr/bin/env to set
// variables) with stdin from /dev/null, waits for it and returns its output;
// DEADLINE_EXCEEDED (after killing it) when it takes longer than `timeout`.
absl::StatusOr<ProgramResult> RunProgram(
    const std::vector<std::string>& argv,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A private PostgreSQL cluster in a fresh temporary directory, listening on a
// free 127.0.0.1 port with trust authentication. When running as root, initdb
// and pg_ctl run as the `postgres` user. Binaries come from
// /usr/lib/postgresql/<newest>/bin (or $RIO_PG_BINDIR).
class PgCluster {
 public:
  PgCluster();
  ~PgCluster();  // Stops the cluster and removes its directory.

  // initdb (first time only) + start; waits until it accepts connections.
  absl::Status Start();
  // Fast shutdown; waits until it is down.
  absl::Status Stop();
  bool running() const;
  int port() const;

  // Creates a database with a unique name and returns its libpq URL
  // ("postgresql://postgres@127.0.0.1:PORT/NAME").
  absl::StatusOr<std::string> CreateDatabase(const std::string& prefix = "t");
  // URL of an existing database.
  std::string Url(const std::string& database) const;

  // Runs SQL through psql against `url` and returns its unaligned, tuples-only
  // output (rows separated by '\n', columns by '|'), trimmed.
  static absl::StatusOr<std::string> Query(const std::string& url,
                                           const std::string& sql);
  // pg_dump of the database at `url` (plain SQL, data included), run as the
  // postgres user when root, as an operator's backup would be.
  static absl::StatusOr<std::string> Dump(const std::string& url);

  // The cluster shared by all tests in this process (started on first use).
  static PgCluster& Shared();

 private:
  std::string dir_;  // Holds data/, the socket and postgres.log.
  int port_ = 0;     // Chosen on first start, kept across restarts.
  bool running_ = false;
  // A forked child that exits normally must not stop its parent's cluster.
  pid_t owner_pid_;
};

// Throwaway TLS certificates made with the openssl command by
// tests/testkit/make_test_certs.sh (the Python and Ruby tests run the same
// script), in a fresh temporary directory removed on destruction. Files:
// ca.pem/.key (the test CA), server.pem/.key (CN=localhost, serial 1001,
// for localhost, 127.0.0.1 and ::1), server2.pem/.key (CN=rio-rotated,
// serial 1002, same names), wrong-name.pem/.key (CN and SAN
// elsewhere.invalid), client.pem/.key (CN=rio-test-client), other-ca.pem and
// other-client.pem/.key (a CA nothing trusts and its client certificate).
class TestCertificates {
 public:
  static absl::StatusOr<std::unique_ptr<TestCertificates>> Make();
  ~TestCertificates();

  // DIR/name, e.g. Path("ca.pem").
  std::string Path(const std::string& name) const;
  // The contents of Path(name); fails the test when it cannot be read.
  std::string Read(const std::string& name) const;
  // Copies NAME.pem and NAME.key over active.pem and active.key, the files a
  // server under test is given; installing another pair is a rotation.
  absl::Status Install(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  explicit TestCertificates(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// A rio-server child process. Its stderr (and stdout) go to a log file that is
// printed on destruction if the test failed. Destruction fails the test when
// the log holds a sanitizer report (a sanitized build's server).
// What lets a rio-server call receivers on 127.0.0.1 and ::1 (the egress
// guard refuses loopback by default).
inline constexpr char kAllowLoopbackReceivers[] =
    "--egress_allow=127.0.0.0/8,::1/128";

class ServerProcess {
 public:
  struct Options {
    std::string database_url;
    // Empty: the server generates one into admin_token_file().
    std::string admin_token = "test-admin-token-0123456789abcdef";
    // Test receivers listen on 127.0.0.1, which the egress guard refuses by
    // default: this passes kAllowLoopbackReceivers before extra_args.
    bool allow_loopback_receivers = true;
    std::vector<std::string> extra_args;
    // Extra environment variables for the child (added to the parent's).
    std::map<std::string, std::string> env;
    // TLS on the gRPC listener (--tls_cert, --tls_key) and, with a client
    // CA, required client certificates (--tls_client_ca). Paths; empty: off.
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_client_ca_file;
    // What Channel() connects with; null: plaintext.
    std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
    // The name Channel() expects in the server's certificate, when not the
    // host of grpc_address() (e.g. "localhost").
    std::string channel_server_name;
    // Passed as --secret_key_file. Unset: a key file made for this process
    // (one key, id "test", kept across restarts); empty: no flag (give
    // --allow_plaintext_secrets or a key file in extra_args or env).
    std::optional<std::string> secret_key_file;
  };

  // Path of the rio-server binary: $RIO_SERVER_BINARY or the build's.
  static std::string BinaryPath();

  explicit ServerProcess(Options options);
  ~ServerProcess();  // SIGKILL if still running, then waits.

  // Starts with --listen 127.0.0.1:0 --http_listen 127.0.0.1:0 and waits
  // (deadline) for the "rio-server: ready grpc=... http=..." line.
  absl::Status Start();
  // Sends SIGTERM and waits for exit; returns the exit status code
  // (WEXITSTATUS), or 128+signal when killed by a signal.
  int Stop();
  // SIGKILL and wait.
  void Kill();
  // Waits for the process to exit by itself (e.g. a start-up failure);
  // returns exit code as in Stop(), or -1 on timeout.
  int WaitExit(std::chrono::milliseconds timeout);

  // The child's process id while it runs (from Start() until it is reaped);
  // -1 otherwise. E.g. to read /proc/<pid>/status.
  pid_t pid() const { return pid_; }
  std::string grpc_address() const { return grpc_address_; }
  std::string http_address() const { return http_address_; }
  const std::string& admin_token() const { return admin_token_; }
  // Where a server started without Options::admin_token keeps the token it
  // generates (kept across restarts): in the log directory.
  std::string admin_token_file() const { return log_dir_ + "/admin_token"; }
  // The --secret_key_file given to the process; empty when none.
  const std::string& secret_key_file() const { return secret_key_file_; }
  // Everything the process wrote so far.
  std::string Log() const;
  // A new channel to grpc_address() (with Options::channel_credentials).
  std::shared_ptr<grpc::Channel> Channel() const;

 private:
  Options options_;
  pid_t pid_ = -1;
  int exit_code_ = -1;  // Of the last run, once reaped.
  std::string log_dir_;
  std::string log_path_;
  std::string grpc_address_;
  std::string http_address_;
  std::string admin_token_;
  std::string secret_key_file_;
};

// base64 of 32 random bytes: a key for a --secret_key_file line.
std::string NewSecretKey();
// Writes `text` to `path` with mode 0600 (replacing what was there).
absl::Status WriteSecretKeyFile(const std::string& path,
                                const std::string& text);

// What grpcurl does, for tests: discovers services and message types through
// server reflection (grpc.reflection.v1alpha) and calls methods with JSON.
class ReflectionClient {
 public:
  explicit ReflectionClient(std::shared_ptr<grpc::Channel> channel);
  ~ReflectionClient();

  // Fully-qualified service names, sorted.
  absl::StatusOr<std::vector<std::string>> ListServices();

  // The method names of `service`, in the order its definition gives them,
  // loaded through reflection as grpcurl's `describe` does.
  absl::StatusOr<std::vector<std::string>> DescribeService(
      const std::string& service);

  struct Reply {
    grpc::StatusCode code = grpc::StatusCode::OK;
    std::string message;  // grpc error message
    std::string json;     // response as JSON (proto3 JSON mapping, original
                          // field names), when OK
  };
  // `method` is "package.Service/Method" as grpcurl takes it. Request JSON is
  // parsed with the proto3 JSON mapping against the reflected descriptor.
  // `metadata` e.g. {{"authorization", "Bearer x"}}.
  absl::StatusOr<Reply> Call(
      const std::string& method, const std::string& request_json,
      const std::map<std::string, std::string>& metadata);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rio::testkit

#endif  // RIO_TESTS_TESTKIT_TESTKIT_H_
