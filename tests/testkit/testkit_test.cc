// Self-tests of the test kit: a real PostgreSQL, a stand-in rio-server
// script that speaks the start-up protocol, and an in-process gRPC server
// with reflection.
#include "tests/testkit/testkit.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "rio/v1/project.grpc.pb.h"

namespace rio::testkit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------------------
// WaitFor

TEST(WaitFor, ReturnsTrueOnceConditionHolds) {
  int calls = 0;
  EXPECT_TRUE(WaitFor([&] { return ++calls == 3; }));
  EXPECT_EQ(calls, 3);
}

TEST(WaitFor, ReturnsFalseWhenTimeoutPasses) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(WaitFor([] { return false; }, std::chrono::milliseconds(50)));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(50));
}

// ---------------------------------------------------------------------------
// PgCluster

TEST(PgCluster, CreatesDatabasesAndRunsQueries) {
  PgCluster cluster;
  const absl::Status started = cluster.Start();
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_TRUE(cluster.running());
  EXPECT_GT(cluster.port(), 0);

  const absl::StatusOr<std::string> url = cluster.CreateDatabase("kit");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_THAT(*url, StartsWith(absl::StrCat("postgresql://postgres@127.0.0.1:",
                                            cluster.port(), "/kit_")));

  absl::StatusOr<std::string> answer = PgCluster::Query(*url, "select 41+1");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(*answer, "42");

  answer = PgCluster::Query(
      *url, "select 1, 'it''s' union all select 2, 'b' order by 1");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(*answer, "1|it's\n2|b");
}

TEST(PgCluster, QueryReportsSqlErrorsAsInvalidArgument) {
  PgCluster& cluster = PgCluster::Shared();
  const absl::StatusOr<std::string> url = cluster.CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();

  const absl::StatusOr<std::string> answer =
      PgCluster::Query(*url, "select * from no_such_table");
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(answer.status().message(), HasSubstr("no_such_table"));
}

TEST(PgCluster, RestartKeepsPortAndData) {
  PgCluster cluster;
  absl::Status status = cluster.Start();
  ASSERT_TRUE(status.ok()) << status;
  const int port = cluster.port();
  const absl::StatusOr<std::string> url = cluster.CreateDatabase("restart");
  ASSERT_TRUE(url.ok()) << url.status();
  ASSERT_TRUE(PgCluster::Query(*url,
                               "create table kept (v int); "
                               "insert into kept values (7)")
                  .ok());

  status = cluster.Stop();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(cluster.running());
  EXPECT_EQ(PgCluster::Query(*url, "select 1").status().code(),
            absl::StatusCode::kUnavailable);

  status = cluster.Start();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(cluster.port(), port);
  const absl::StatusOr<std::string> kept =
      PgCluster::Query(*url, "select v from kept");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, "7");
}

TEST(PgCluster, SharedClusterGivesEachCallItsOwnDatabase) {
  PgCluster& cluster = PgCluster::Shared();
  EXPECT_EQ(&cluster, &PgCluster::Shared());
  ASSERT_TRUE(cluster.running());

  const absl::StatusOr<std::string> first = cluster.CreateDatabase();
  const absl::StatusOr<std::string> second = cluster.CreateDatabase();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(*first, *second);
  const absl::StatusOr<std::string> name =
      PgCluster::Query(*second, "select current_database()");
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(cluster.Url(*name), *second);
}

TEST(PgCluster, CreateDatabaseRejectsPrefixThatNeedsQuoting) {
  EXPECT_EQ(PgCluster::Shared().CreateDatabase("Bad-Name").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// ServerProcess, against a shell script that follows rio-server's start-up
// protocol. It writes a token into --admin_token_file when given one, fails
// when RIO_FAKE_FAIL is set, and prints RIO_FAKE_REPORT to stderr.
constexpr char kFakeServerScript[] = R"sh(#!/bin/sh
echo "args: $*"
echo "env: RIO_FAKE_ENV=$RIO_FAKE_ENV"
if [ -n "$RIO_FAKE_FAIL" ]; then
  echo "rio-server: cannot open the database" >&2
  exit 3
fi
for arg in "$@"; do
  case "$arg" in
    --admin_token_file=*) echo generated-42 > "${arg#--admin_token_file=}" ;;
  esac
done
trap 'echo "rio-server: stopping" >&2; exit 0' TERM
if [ -n "$RIO_FAKE_REPORT" ]; then echo "$RIO_FAKE_REPORT" >&2; fi
echo "rio-server: ready grpc=127.0.0.1:50001 http=127.0.0.1:50002" >&2
while :; do sleep 0.05; done
)sh";

// Points RIO_SERVER_BINARY at the fake server for the test's duration.
class ServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A directory of this process's own: ctest runs these tests in parallel
    // processes, and one must not rewrite or remove another's script.
    std::string pattern = ::testing::TempDir() + "/fake-rio-server-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << pattern;
    dir_ = pattern;
    const std::string script = dir_ + "/rio-server";
    std::ofstream(script) << kFakeServerScript;
    ASSERT_EQ(chmod(script.c_str(), 0755), 0);
    if (const char* old = getenv("RIO_SERVER_BINARY")) saved_binary_ = old;
    setenv("RIO_SERVER_BINARY", script.c_str(), /*overwrite=*/1);
  }
  void TearDown() override {
    if (saved_binary_.has_value()) {
      setenv("RIO_SERVER_BINARY", saved_binary_->c_str(), 1);
    } else {
      unsetenv("RIO_SERVER_BINARY");
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::optional<std::string> saved_binary_;
};

TEST_F(ServerProcessTest, StartsWithFlagsAndEnvironmentAndReadsAddresses) {
  ServerProcess::Options options;
  options.database_url = "postgresql://db/x";
  options.extra_args = {"--flag", "value"};
  options.env = {{"RIO_FAKE_ENV", "hello"}};
  ServerProcess server(options);
  const absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started;

  EXPECT_EQ(server.grpc_address(), "127.0.0.1:50001");
  EXPECT_EQ(server.http_address(), "127.0.0.1:50002");
  EXPECT_EQ(server.admin_token(), "test-admin-token-0123456789abcdef");
  // A key file of the test process's own, readable by its owner only.
  ASSERT_FALSE(server.secret_key_file().empty());
  EXPECT_THAT(server.Log(),
              HasSubstr(absl::StrCat(
                  "args: --database_url postgresql://db/x --listen "
                  "127.0.0.1:0 --http_listen 127.0.0.1:0 --secret_key_file ",
                  server.secret_key_file(),
                  " --admin_token test-admin-token-0123456789abcdef "
                  "--egress_allow=127.0.0.0/8,::1/128 --flag value\n")));
  EXPECT_THAT(server.Log(), HasSubstr("env: RIO_FAKE_ENV=hello\n"));
  struct stat st;
  ASSERT_EQ(stat(server.secret_key_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream key_file(server.secret_key_file());
  std::string id, key;
  key_file >> id >> key;
  EXPECT_EQ(id, "test");
  EXPECT_EQ(key.size(), 44u);  // base64 of 32 bytes

  EXPECT_EQ(server.Stop(), 0);
  EXPECT_THAT(server.Log(), HasSubstr("rio-server: stopping"));
}

TEST_F(ServerProcessTest, PassesTheKeyFileItIsGivenOrNone) {
  ServerProcess::Options options;
  options.database_url = "postgresql://db/x";
  options.secret_key_file = "/etc/rio/key";
  ServerProcess given(options);
  ASSERT_TRUE(given.Start().ok());
  EXPECT_THAT(given.Log(), HasSubstr("--http_listen 127.0.0.1:0 "
                                     "--secret_key_file /etc/rio/key "
                                     "--admin_token"));
  options.secret_key_file = "";
  ServerProcess none(options);
  ASSERT_TRUE(none.Start().ok());
  EXPECT_EQ(none.secret_key_file(), "");
  EXPECT_THAT(none.Log(), Not(HasSubstr("--secret_key_file")));
}

TEST_F(ServerProcessTest, ReadsGeneratedAdminToken) {
  ServerProcess::Options options;
  options.database_url = "postgresql://db/x";
  options.admin_token = "";
  ServerProcess server(options);
  const absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_EQ(server.admin_token(), "generated-42");

  server.Kill();
  EXPECT_EQ(server.WaitExit(std::chrono::milliseconds(0)), 128 + SIGKILL);
}

TEST_F(ServerProcessTest, StartFailsWithLogWhenServerExits) {
  ServerProcess::Options options;
  options.database_url = "postgresql://db/x";
  options.env = {{"RIO_FAKE_FAIL", "1"}};
  ServerProcess server(options);
  const absl::Status started = server.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(started.message(), HasSubstr("exited with code 3"));
  EXPECT_THAT(started.message(),
              HasSubstr("rio-server: cannot open the database"));
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(1)), 3);
}

// Starts the fake server, which writes `report` to its log, and destroys it.
void RunServerThatReports(const std::string& report) {
  ServerProcess::Options options;
  options.database_url = "postgresql://db/x";
  options.env = {{"RIO_FAKE_REPORT", report}};
  ServerProcess server(options);
  EXPECT_TRUE(server.Start().ok());
}

TEST_F(ServerProcessTest, FailsTheTestWhenTheLogHasASanitizerReport) {
  EXPECT_NONFATAL_FAILURE(
      RunServerThatReports(
          "==42==ERROR: AddressSanitizer: heap-use-after-free"),
      "sanitizer report (\"ERROR: AddressSanitizer\")");
  EXPECT_NONFATAL_FAILURE(
      RunServerThatReports("server/x.cc:1:2: runtime error: signed integer "
                           "overflow"),
      "sanitizer report (\"runtime error:\")");
}

TEST_F(ServerProcessTest, StartFailsWhenBinaryIsMissing) {
  setenv("RIO_SERVER_BINARY", (dir_ + "/missing").c_str(), 1);
  ServerProcess::Options options;
  options.database_url = "postgresql://db/x";
  ServerProcess server(options);
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// ReflectionClient, against an in-process server with reflection.

constexpr char kAuthorization[] = "Bearer let-me-in";

// Needs the caller's authorization header, so that tests can see metadata
// arrive; answers with a Timestamp, so that imports must be resolved.
class FakeProjectService final : public rio::v1::ProjectService::Service {
 public:
  grpc::Status GetProject(grpc::ServerContext* context,
                          const rio::v1::GetProjectRequest* request,
                          rio::v1::Project* project) override {
    const auto authorization = context->client_metadata().find("authorization");
    if (authorization == context->client_metadata().end() ||
        authorization->second != kAuthorization) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "wrong authorization");
    }
    project->set_slug(request->slug());
    project->set_name("Acme");
    project->mutable_create_time()->set_seconds(1700000000);
    return grpc::Status::OK;
  }
};

class ReflectionClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The reflection service describes grpc.health.v1.Health from the
    // generated descriptor pool, which holds it only when health.pb.o is
    // linked in from the static rio_proto; this reference links it.
    ASSERT_NE(grpc::health::v1::HealthCheckRequest::descriptor(), nullptr);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&project_service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    client_ = std::make_unique<ReflectionClient>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  FakeProjectService project_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ReflectionClient> client_;
};

TEST_F(ReflectionClientTest, ListsServicesSorted) {
  const absl::StatusOr<std::vector<std::string>> services =
      client_->ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, ElementsAre("grpc.health.v1.Health",
                                     "grpc.reflection.v1alpha.ServerReflection",
                                     "rio.v1.ProjectService"));
}

TEST_F(ReflectionClientTest, CallsHealthCheck) {
  const absl::StatusOr<ReflectionClient::Reply> reply =
      client_->Call("grpc.health.v1.Health/Check", "{}", {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, grpc::StatusCode::OK) << reply->message;
  EXPECT_EQ(reply->json, R"({"status":"SERVING"})");
}

TEST_F(ReflectionClientTest, AcceptsDotBeforeMethodAndEmptyRequest) {
  const absl::StatusOr<ReflectionClient::Reply> reply =
      client_->Call("grpc.health.v1.Health.Check", "", {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->json, R"({"status":"SERVING"})");
}

TEST_F(ReflectionClientTest, ReturnsServerErrorInReply) {
  const absl::StatusOr<ReflectionClient::Reply> reply = client_->Call(
      "grpc.health.v1.Health/Check", R"({"service":"no.such.Service"})", {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reply->json, "");
}

TEST_F(ReflectionClientTest, SendsMetadataAndPrintsOriginalFieldNames) {
  absl::StatusOr<ReflectionClient::Reply> reply =
      client_->Call("rio.v1.ProjectService/GetProject", R"({"slug":"acme"})",
                    {{"authorization", kAuthorization}});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, grpc::StatusCode::OK) << reply->message;
  EXPECT_EQ(
      reply->json,
      R"({"slug":"acme","name":"Acme","create_time":"2023-11-14T22:13:20Z"})");

  reply = client_->Call("rio.v1.ProjectService/GetProject", "{}", {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code, grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(reply->message, "wrong authorization");
}

TEST_F(ReflectionClientTest, BadJsonIsInvalidArgument) {
  EXPECT_EQ(client_->Call("grpc.health.v1.Health/Check", "{not json", {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Call("grpc.health.v1.Health/Check", R"({"nope":1})", {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ReflectionClientTest, UnknownMethodOrServiceIsNotFound) {
  EXPECT_EQ(
      client_->Call("grpc.health.v1.Health/Nope", "{}", {}).status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Call("no.such.Service/Check", "{}", {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->Call("NoSeparator", "{}", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rio::testkit
