// TLS on the gRPC listener, end to end: the real rio-server started with
// certificates made by openssl for the test (testkit::TestCertificates), the
// C++ SDK and the rioctl binary emitting and administering over TLS and
// mutual TLS, the handshakes that must fail (no client certificate, an
// untrusted server, a wrong server name), a certificate rotated by SIGHUP
// while a channel stays open, and start-up errors for unusable files.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rio/client.h"
#include "rio/v1/project.grpc.pb.h"
#include "tests/testkit/connect_proxy.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using testkit::ConnectProxy;
using testkit::PgCluster;
using testkit::ProgramResult;
using testkit::RunProgram;
using testkit::ServerProcess;
using testkit::TestCertificates;
using testkit::WaitFor;

constexpr char kToken[] = "test-admin-token-0123456789abcdef";

std::string RioctlPath() {
  const char* from_env = std::getenv("RIOCTL_BINARY");
  if (from_env != nullptr && *from_env != '\0') return from_env;
  return RIOCTL_BINARY_PATH;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto made = TestCertificates::Make();
    ASSERT_TRUE(made.ok()) << made.status();
    certs_ = std::move(made).value().release();
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("tls");
    ASSERT_TRUE(url.ok()) << url.status();
    database_url_ = *url;
  }

  // rio-server with --tls_cert/--tls_key (`cert`.pem/.key) and, when
  // `mtls`, --tls_client_ca ca.pem. Its Channel() trusts the test CA and,
  // under mTLS, presents the test client certificate.
  std::unique_ptr<ServerProcess> StartServer(const std::string& cert,
                                             bool mtls) {
    ServerProcess::Options options;
    options.database_url = database_url_;
    options.tls_cert_file = certs_->Path(cert + ".pem");
    options.tls_key_file = certs_->Path(cert + ".key");
    if (mtls) options.tls_client_ca_file = certs_->Path("ca.pem");
    options.channel_credentials = Credentials("ca.pem", mtls ? "client" : "");
    auto server = std::make_unique<ServerProcess>(options);
    const absl::Status started = server->Start();
    EXPECT_TRUE(started.ok()) << started;
    return server;
  }

  // TLS channel credentials trusting `ca`, with `client`.pem/.key unless
  // `client` is empty.
  static std::shared_ptr<grpc::ChannelCredentials> Credentials(
      const std::string& ca, const std::string& client) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = certs_->Read(ca);
    if (!client.empty()) {
      ssl.pem_cert_chain = certs_->Read(client + ".pem");
      ssl.pem_private_key = certs_->Read(client + ".key");
    }
    return grpc::SslCredentials(ssl);
  }

  // Creates project `slug` and a sender in it over `channel`; returns the
  // sender's DSN.
  static std::string CreateSender(const std::shared_ptr<grpc::Channel>& channel,
                                  const std::string& slug) {
    auto projects = v1::ProjectService::NewStub(channel);
    {
      grpc::ClientContext context;
      context.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
      v1::CreateProjectRequest request;
      request.set_slug(slug);
      v1::Project project;
      const grpc::Status status =
          projects->CreateProject(&context, request, &project);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    v1::CreateSenderRequest request;
    request.set_project(slug);
    request.set_name("app");
    v1::CreateSenderResponse response;
    const grpc::Status status =
        projects->CreateSender(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.dsn();
  }

  // One ListProjects call on `channel`: its status code, and the common
  // name of the certificate the server presented on that connection.
  struct Probe {
    grpc::StatusCode code;
    std::string message;
    std::string server_common_name;
  };
  static Probe ListProjects(const std::shared_ptr<grpc::Channel>& channel) {
    auto projects = v1::ProjectService::NewStub(channel);
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    v1::ListProjectsRequest request;
    v1::ListProjectsResponse response;
    const grpc::Status status =
        projects->ListProjects(&context, request, &response);
    Probe probe{status.error_code(), status.error_message(), ""};
    if (status.ok()) {
      auto names = context.auth_context()->FindPropertyValues(
          GRPC_X509_CN_PROPERTY_NAME);
      if (!names.empty()) {
        probe.server_common_name =
            std::string(names[0].data(), names[0].size());
      }
    }
    return probe;
  }

  static std::shared_ptr<grpc::Channel> Channel(
      const ServerProcess& server, const std::string& ca,
      const std::string& client, const std::string& server_name = "") {
    grpc::ChannelArguments args;
    if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
    return grpc::CreateCustomChannel(server.grpc_address(),
                                     Credentials(ca, client), args);
  }

  // An SDK client for `dsn` that fails at once instead of retrying.
  static ClientOptions SdkOptions(const std::string& dsn) {
    ClientOptions options;
    options.dsn = dsn;
    options.retry = RetryPolicy::NoRetry();
    options.deadline = absl::Seconds(10);
    return options;
  }

  // One emit through the SDK, trusting the test CA, without retries: a new
  // message for no handler.
  static void ExpectEmitTrustingTheTestCa(const std::string& dsn) {
    ClientOptions options = SdkOptions(dsn);
    options.root_certificates = certs_->Read("ca.pem");
    Client client(options);
    ASSERT_TRUE(client.status().ok()) << client.status();
    absl::StatusOr<EmitResult> result = client.Emit("created", R"({"n":1})");
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->handlers, 0);
    EXPECT_FALSE(result->duplicate);
  }

  // rioctl with only `env` in its environment.
  static ProgramResult Rioctl(const std::vector<std::string>& args,
                              const std::map<std::string, std::string>& env) {
    std::vector<std::string> argv = {"/usr/bin/env", "-i"};
    for (const auto& [name, value] : env) {
      argv.push_back(absl::StrCat(name, "=", value));
    }
    argv.push_back(RioctlPath());
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = RunProgram(argv);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProgramResult{};
  }

  static TestCertificates* certs_;
  std::string database_url_;
};

TestCertificates* TlsTest::certs_ = nullptr;

TEST_F(TlsTest, SdkEmitsOverTlsWithTheTestCa) {
  auto server = StartServer("server", /*mtls=*/false);
  const std::string dsn = CreateSender(server->Channel(), "tls-emit");
  const std::string port =
      server->grpc_address().substr(server->grpc_address().rfind(':') + 1);
  EXPECT_EQ(dsn.substr(0, dsn.find(':')), "rios");
  EXPECT_TRUE(
      absl::EndsWith(dsn, absl::StrCat("@127.0.0.1:", port, "/tls-emit")))
      << dsn;

  ExpectEmitTrustingTheTestCa(dsn);

  // The same server in plaintext: no answer.
  std::string plaintext_dsn = dsn;
  plaintext_dsn.replace(0, 4, "rio");
  Client plaintext(SdkOptions(plaintext_dsn));
  EXPECT_EQ(plaintext.Emit("created", "{}").status().code(),
            absl::StatusCode::kUnavailable);
}

// A path where the TLS handshake takes longer than the SDK's reconnect backoff
// (100 ms): the first call, without retries, still connects.
TEST_F(TlsTest, SdkWaitsOutASlowHandshake) {
  auto server = StartServer("server", /*mtls=*/false);
  const std::string dsn = CreateSender(server->Channel(), "tls-slow");
  const std::string port =
      server->grpc_address().substr(server->grpc_address().rfind(':') + 1);
  auto relay =
      ConnectProxy::SlowRelay(std::stoi(port), absl::Milliseconds(700));
  ASSERT_TRUE(relay->Start().ok());

  std::string slow_dsn = dsn;
  slow_dsn.replace(slow_dsn.rfind(port), port.size(),
                   std::to_string(relay->port()));
  ExpectEmitTrustingTheTestCa(slow_dsn);
}

TEST_F(TlsTest, ClientThatDoesNotTrustTheCaIsRefused) {
  auto server = StartServer("server", /*mtls=*/false);
  const std::string dsn = CreateSender(server->Channel(), "tls-untrusted");
  ClientOptions other_ca = SdkOptions(dsn);
  other_ca.root_certificates = certs_->Read("other-ca.pem");
  EXPECT_EQ(Client(other_ca).Emit("created", "{}").status().code(),
            absl::StatusCode::kUnavailable);
  // The system's roots do not hold the test CA either.
  EXPECT_EQ(Client(SdkOptions(dsn)).Emit("created", "{}").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ListProjects(Channel(*server, "other-ca.pem", "")).code,
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ServerNameIsCheckedAndCanBeOverridden) {
  auto server = StartServer("server", /*mtls=*/false);
  const std::string dsn = CreateSender(server->Channel(), "tls-names");
  ClientOptions options = SdkOptions(dsn);
  options.root_certificates = certs_->Read("ca.pem");
  options.tls_server_name = "localhost";  // In the certificate: accepted.
  EXPECT_TRUE(Client(options).Emit("created", "{}").ok());
  options.tls_server_name = "rio.example.com";  // Not in it: refused.
  EXPECT_EQ(Client(options).Emit("created", "{}").status().code(),
            absl::StatusCode::kUnavailable);

  // A certificate for another name only: refused when dialled by address,
  // accepted with that name as the expected one.
  auto elsewhere = StartServer("wrong-name", /*mtls=*/false);
  EXPECT_EQ(ListProjects(Channel(*elsewhere, "ca.pem", "")).code,
            grpc::StatusCode::UNAVAILABLE);
  const Probe named =
      ListProjects(Channel(*elsewhere, "ca.pem", "", "elsewhere.invalid"));
  EXPECT_EQ(named.code, grpc::StatusCode::OK) << named.message;
  EXPECT_EQ(named.server_common_name, "elsewhere.invalid");
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateOfTheCa) {
  auto server = StartServer("server", /*mtls=*/true);
  EXPECT_THAT(server->Log(),
              HasSubstr("rio-server: gRPC over TLS (client certificates "
                        "required) with CN=localhost, serial 1001, valid "
                        "until "));
  const std::string dsn = CreateSender(server->Channel(), "tls-mutual");

  ClientOptions options = SdkOptions(dsn);
  options.root_certificates = certs_->Read("ca.pem");
  // No client certificate: the handshake fails.
  EXPECT_EQ(Client(options).Emit("created", "{}").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ListProjects(Channel(*server, "ca.pem", "")).code,
            grpc::StatusCode::UNAVAILABLE);
  // A certificate of a CA the server does not trust: the same.
  options.client_certificate_chain = certs_->Read("other-client.pem");
  options.client_private_key = certs_->Read("other-client.key");
  EXPECT_EQ(Client(options).Emit("created", "{}").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ListProjects(Channel(*server, "ca.pem", "other-client")).code,
            grpc::StatusCode::UNAVAILABLE);
  // The test CA's client certificate: in.
  options.client_certificate_chain = certs_->Read("client.pem");
  options.client_private_key = certs_->Read("client.key");
  absl::StatusOr<EmitResult> result = Client(options).Emit("created", "{}");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->handlers, 0);
}

TEST_F(TlsTest, SdkReadsTlsSettingsFromTheEnvironment) {
  auto server = StartServer("server", /*mtls=*/true);
  const std::string dsn = CreateSender(server->Channel(), "tls-env");
  setenv("RIO_TLS_CA", certs_->Path("ca.pem").c_str(), 1);
  setenv("RIO_TLS_CLIENT_CERT", certs_->Path("client.pem").c_str(), 1);
  setenv("RIO_TLS_CLIENT_KEY", certs_->Path("client.key").c_str(), 1);
  setenv("RIO_TLS_SERVER_NAME", "localhost", 1);
  absl::StatusOr<EmitResult> result =
      Client(SdkOptions(dsn)).Emit("created", "{}");
  // With a plaintext DSN, the TLS variables are an error, not ignored.
  std::string plaintext_dsn = dsn;
  plaintext_dsn.replace(0, 4, "rio");
  const absl::Status plaintext = Client(SdkOptions(plaintext_dsn)).status();
  setenv("RIO_TLS_CLIENT_KEY", certs_->Path("missing.key").c_str(), 1);
  const absl::Status missing = Client(SdkOptions(dsn)).status();
  unsetenv("RIO_TLS_CA");
  unsetenv("RIO_TLS_CLIENT_CERT");
  unsetenv("RIO_TLS_CLIENT_KEY");
  unsetenv("RIO_TLS_SERVER_NAME");

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->handlers, 0);
  EXPECT_EQ(plaintext.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plaintext.message(),
              HasSubstr("need a TLS DSN, but 'rio://app:***@127.0.0.1:"));
  EXPECT_EQ(missing, absl::InvalidArgumentError(absl::StrCat(
                         "RIO_TLS_CLIENT_KEY=", certs_->Path("missing.key"),
                         ": cannot open the file")));
}

TEST_F(TlsTest, SdkRefusesIncompleteTlsOptions) {
  ClientOptions options = SdkOptions("rios://app:token@127.0.0.1:1/p");
  options.client_certificate_chain = certs_->Read("client.pem");
  EXPECT_EQ(Client(options).status(),
            absl::InvalidArgumentError(
                "a client certificate needs its private key and the reverse: "
                "set both client_certificate_chain and client_private_key (or "
                "RIO_TLS_CLIENT_CERT and RIO_TLS_CLIENT_KEY), or neither"));
  options = SdkOptions("rios://app:token@127.0.0.1:1/p");
  options.root_certificates = certs_->Path("ca.pem");  // A path, not PEM.
  EXPECT_EQ(Client(options).status(),
            absl::InvalidArgumentError("ClientOptions.root_certificates is not "
                                       "PEM (no -----BEGIN line)"));
}

TEST_F(TlsTest, SighupRotatesTheCertificateWithoutDroppingOpenChannels) {
  // The server reads live.pem/live.key, which the test rewrites.
  std::filesystem::copy_file(certs_->Path("server.pem"),
                             certs_->Path("live.pem"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs_->Path("server.key"),
                             certs_->Path("live.key"),
                             std::filesystem::copy_options::overwrite_existing);
  auto server = StartServer("live", /*mtls=*/true);
  std::shared_ptr<grpc::Channel> open_channel =
      Channel(*server, "ca.pem", "client");
  const Probe before = ListProjects(open_channel);
  ASSERT_EQ(before.code, grpc::StatusCode::OK) << before.message;
  EXPECT_EQ(before.server_common_name, "localhost");

  std::filesystem::copy_file(certs_->Path("server2.pem"),
                             certs_->Path("live.pem"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs_->Path("server2.key"),
                             certs_->Path("live.key"),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(server->Log(),
                             "rio-server: SIGHUP: TLS certificate reloaded "
                             "(CN=rio-rotated, serial 1002, valid until ");
  })) << server->Log();

  // A new connection gets the new certificate ...
  const Probe fresh = ListProjects(Channel(*server, "ca.pem", "client"));
  EXPECT_EQ(fresh.code, grpc::StatusCode::OK) << fresh.message;
  EXPECT_EQ(fresh.server_common_name, "rio-rotated");
  // ... while the open one keeps working on its first handshake.
  const Probe kept = ListProjects(open_channel);
  EXPECT_EQ(kept.code, grpc::StatusCode::OK) << kept.message;
  EXPECT_EQ(kept.server_common_name, "localhost");

  // Half a rotation (a key of another certificate) is refused, and the
  // last good certificate stays in use.
  std::filesystem::copy_file(certs_->Path("client.key"),
                             certs_->Path("live.key"),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(
        server->Log(),
        absl::StrCat("rio-server: SIGHUP: TLS files not reloaded, the "
                     "previous certificate stays in use: --tls_key ",
                     certs_->Path("live.key"),
                     ": does not belong to the certificate in ",
                     certs_->Path("live.pem"), " (CN=rio-rotated)"));
  })) << server->Log();
  const Probe after = ListProjects(Channel(*server, "ca.pem", "client"));
  EXPECT_EQ(after.code, grpc::StatusCode::OK) << after.message;
  EXPECT_EQ(after.server_common_name, "rio-rotated");
  EXPECT_EQ(ListProjects(open_channel).code, grpc::StatusCode::OK);
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(TlsTest, WithoutTlsSighupKeepsItsDefault) {
  ServerProcess::Options options;
  options.database_url = database_url_;
  ServerProcess server(options);
  ASSERT_TRUE(server.Start().ok());
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(30)), 128 + SIGHUP);
  EXPECT_THAT(server.Log(), Not(HasSubstr("TLS")));
}

TEST_F(TlsTest, UnusableTlsFilesStopTheStart) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::string missing = certs_->Path("missing.pem");
  const std::vector<Case> cases = {
      {{"--tls_cert", certs_->Path("server.pem")},
       2,
       "rio-server: --tls_cert needs --tls_key (the certificate's private "
       "key)\n"},
      {{"--tls_key", certs_->Path("server.key")},
       2,
       "rio-server: --tls_key needs --tls_cert (the certificate it belongs "
       "to)\n"},
      {{"--tls_client_ca", certs_->Path("ca.pem")},
       2,
       "rio-server: --tls_client_ca needs --tls_cert and --tls_key (client "
       "certificates are checked only over TLS)\n"},
      {{"--tls_cert", missing, "--tls_key", certs_->Path("server.key")},
       1,
       absl::StrCat("rio-server: --tls_cert ", missing,
                    ": cannot read it: No such file or directory\n")},
      {{"--tls_cert", certs_->Path("server.pem"), "--tls_key",
        certs_->Path("server2.key")},
       1,
       absl::StrCat("rio-server: --tls_key ", certs_->Path("server2.key"),
                    ": does not belong to the certificate in ",
                    certs_->Path("server.pem"), " (CN=localhost)\n")},
      {{"--tls_cert", certs_->Path("server.pem"), "--tls_key",
        certs_->Path("server.key"), "--tls_client_ca", missing},
       1,
       absl::StrCat("rio-server: --tls_client_ca ", missing,
                    ": cannot read it: No such file or directory\n")},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {ServerProcess::BinaryPath(),
                                     "--database_url", database_url_};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto result = RunProgram(argv);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->exit_code, c.exit_code) << c.message;
    EXPECT_EQ(result->err, c.message);
  }
}

TEST_F(TlsTest, RioctlAdministersAndEmitsOverMutualTls) {
  auto server = StartServer("server", /*mtls=*/true);
  const std::string address = server->grpc_address();
  const std::vector<std::string> tls_flags = {
      "--server",   absl::StrCat("rios://", address),
      "--token",    kToken,
      "--tls-ca",   certs_->Path("ca.pem"),
      "--tls-cert", certs_->Path("client.pem"),
      "--tls-key",  certs_->Path("client.key")};

  std::vector<std::string> create = {"project", "create", "rioctl-tls"};
  create.insert(create.end(), tls_flags.begin(), tls_flags.end());
  ProgramResult created = Rioctl(create, {});
  EXPECT_EQ(created.exit_code, 0) << created.err;

  // The same through the environment, with the expected name given.
  const std::map<std::string, std::string> env = {
      {"RIO_SERVER", absl::StrCat("rios://", address)},
      {"RIO_ADMIN_TOKEN", kToken},
      {"RIO_TLS_CA", certs_->Path("ca.pem")},
      {"RIO_TLS_CLIENT_CERT", certs_->Path("client.pem")},
      {"RIO_TLS_CLIENT_KEY", certs_->Path("client.key")},
      {"RIO_TLS_SERVER_NAME", "localhost"}};
  ProgramResult sender = Rioctl(
      {"sender", "create", "app", "-p", "rioctl-tls", "-o", "json"}, env);
  ASSERT_EQ(sender.exit_code, 0) << sender.err;
  const size_t at = sender.out.find("\"dsn\": \"rios://app:");
  ASSERT_NE(at, std::string::npos) << sender.out;
  const size_t start = sender.out.find("rios://", at);
  const std::string dsn =
      sender.out.substr(start, sender.out.find('"', start) - start);

  ProgramResult emitted = Rioctl(
      {"emit", "rioctl-tls", "created", R"({"n":1})", "--dsn", dsn}, env);
  EXPECT_EQ(emitted.exit_code, 0) << emitted.err;
  EXPECT_THAT(emitted.out, StartsWith("message "));
  EXPECT_THAT(emitted.out, HasSubstr(": 0 deliveries\n"));

  // Without a client certificate: refused at the handshake.
  ProgramResult refused =
      Rioctl({"project", "list", "--server", absl::StrCat("rios://", address),
              "--token", kToken, "--tls-ca", certs_->Path("ca.pem")},
             {});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, StartsWith(absl::StrCat(
                               "error: cannot reach Rio at ", address, ": ")));
  EXPECT_THAT(refused.err, HasSubstr("(UNAVAILABLE)\n"));
  ProgramResult emit_refused =
      Rioctl({"emit", "rioctl-tls", "created", "{}", "--dsn", dsn, "--tls-ca",
              certs_->Path("ca.pem")},
             {});
  EXPECT_EQ(emit_refused.exit_code, 1);
  EXPECT_THAT(emit_refused.err, HasSubstr("(UNAVAILABLE)\n"));

  // A wrong expected name, and a CA that is not the server's.
  std::vector<std::string> wrong_name = {"project", "list", "--tls-server-name",
                                         "rio.example.com"};
  wrong_name.insert(wrong_name.end(), tls_flags.begin(), tls_flags.end());
  ProgramResult misnamed = Rioctl(wrong_name, {});
  EXPECT_EQ(misnamed.exit_code, 1);
  EXPECT_THAT(misnamed.err, HasSubstr("(UNAVAILABLE)\n"));
  std::vector<std::string> other_ca = tls_flags;
  other_ca[5] = certs_->Path("other-ca.pem");
  other_ca.insert(other_ca.begin(), {"project", "list"});
  ProgramResult untrusted = Rioctl(other_ca, {});
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_THAT(untrusted.err, HasSubstr("(UNAVAILABLE)\n"));

  // TLS settings without TLS, and a certificate without its key.
  ProgramResult plaintext =
      Rioctl({"project", "list", "--server", address, "--token", kToken,
              "--tls-ca", certs_->Path("ca.pem")},
             {});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_EQ(plaintext.err,
            absl::StrCat("error: TLS settings (--tls-ca, --tls-cert, "
                         "--tls-key, --tls-server-name or their RIO_TLS_* "
                         "variables) are given but ",
                         address,
                         " is reached in plaintext: use --server "
                         "rios://HOST:PORT or --tls\n"));
  ProgramResult half =
      Rioctl({"project", "list", "--server", absl::StrCat("rios://", address),
              "--tls-cert", certs_->Path("client.pem")},
             {});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.err,
              StartsWith("error: --tls-cert and --tls-key "
                         "(RIO_TLS_CLIENT_CERT, RIO_TLS_CLIENT_KEY) go "
                         "together: a client certificate needs its private "
                         "key\n"));
}

}  // namespace
}  // namespace rio
