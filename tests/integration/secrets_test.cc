// Secrets at rest, through the real rio-server binary and a real PostgreSQL:
// a pg_dump of the database holds neither a handler's signing secrets nor
// its header values, while deliveries are still signed with the real secret
// and carry the real headers; replies mask header values; key rotation
// re-seals the rows under the new key and the old key can then be retired;
// a key that stored values need is refused at start-up by name and count;
// plaintext rows (from before the migration, or written without a key) are
// sealed at start-up; and a bad key file or a missing one stops start-up
// with a message naming the problem.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/store/migrations.h"
#include "server/store/pg.h"
#include "server/util/crypto.h"
#include "tests/testkit/fixture.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using testkit::PgCluster;
using testkit::ReceivedRequest;
using testkit::Receiver;
using testkit::ServerProcess;
using testkit::Sql;

constexpr char kToken[] = "test-admin-token-0123456789abcdef";
constexpr char kMasked[] = "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2";

std::unique_ptr<grpc::ClientContext> Context(const std::string& authorization) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(10));
  return ctx;
}

std::unique_ptr<grpc::ClientContext> Admin() {
  return Context(absl::StrCat("Bearer ", kToken));
}

// The Standard Webhooks v1 signature a receiver expects from `secret`.
std::string ExpectedSignature(const ReceivedRequest& request,
                              const std::string& secret) {
  absl::string_view encoded = secret;
  EXPECT_TRUE(absl::ConsumePrefix(&encoded, "whsec_")) << secret;
  const std::string key = util::Base64Decode(encoded).value_or("");
  return absl::StrCat(
      "v1,", util::Base64Encode(util::HmacSha256(
                 key, absl::StrCat(request.Header("webhook-id"), ".",
                                   request.Header("webhook-timestamp"), ".",
                                   request.body))));
}

std::vector<std::string> SignatureEntries(const ReceivedRequest& request) {
  return absl::StrSplit(request.Header("webhook-signature"), ' ',
                        absl::SkipEmpty());
}

// A server on one database, restarted with other key files as a test needs.
class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("secrets");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    char dir[] = "/tmp/rio-secrets-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    START_RECEIVER(receiver_);
  }
  void TearDown() override {
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Writes a key file of `lines` ("ID KEY") and returns its path.
  std::string KeyFile(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/", name);
    const absl::Status written = testkit::WriteSecretKeyFile(path, text);
    EXPECT_TRUE(written.ok()) << written;
    return path;
  }

  ServerProcess::Options Options(std::optional<std::string> key_file,
                                 std::vector<std::string> extra_args = {}) {
    ServerProcess::Options options;
    options.database_url = url_;
    options.admin_token = kToken;
    options.secret_key_file = std::move(key_file);
    options.extra_args = std::move(extra_args);
    return options;
  }

  void Start(std::optional<std::string> key_file,
             std::vector<std::string> extra_args = {}) {
    server_.reset();  // SIGKILL: nothing in flight matters here
    server_ = std::make_unique<ServerProcess>(
        Options(std::move(key_file), std::move(extra_args)));
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    projects_ = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
  }

  // Starts a server that must refuse to start; returns its exit code and
  // log.
  std::pair<int, std::string> StartFails(
      std::optional<std::string> key_file,
      std::vector<std::string> extra_args = {}) {
    server_.reset();
    ServerProcess failing(Options(std::move(key_file), std::move(extra_args)));
    const absl::Status started = failing.Start();
    EXPECT_FALSE(started.ok()) << "rio-server started:\n" << failing.Log();
    return {failing.WaitExit(std::chrono::seconds(10)), failing.Log()};
  }

  // Project "p" with sender "app" (its Basic credentials in auth_).
  void CreateProjectAndSender() {
    v1::CreateProjectRequest project;
    project.set_slug("p");
    v1::Project created_project;
    ASSERT_TRUE(
        projects_->CreateProject(Admin().get(), project, &created_project)
            .ok());
    v1::CreateSenderRequest sender;
    sender.set_project("p");
    sender.set_name("app");
    v1::CreateSenderResponse created;
    ASSERT_TRUE(projects_->CreateSender(Admin().get(), sender, &created).ok());
    auth_ = absl::StrCat(
        "Basic ", util::Base64Encode(absl::StrCat("app:", created.token())));
  }

  v1::Handler CreateHandler(const std::map<std::string, std::string>& headers) {
    v1::CreateHandlerRequest req;
    req.set_project("p");
    req.set_event("e");
    req.set_url(receiver_.Url());
    req.set_content_type(v1::Handler::JSON);
    req.mutable_headers()->insert(headers.begin(), headers.end());
    v1::Handler handler;
    const grpc::Status s =
        handlers_->CreateHandler(Admin().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  // Rotates, keeping the previous secret for an hour; returns the new one.
  std::string Rotate(const std::string& id) {
    v1::RotateHandlerSecretRequest req;
    req.set_id(id);
    req.set_previous_secret_ttl_seconds(3600);
    v1::Handler rotated;
    const grpc::Status s =
        handlers_->RotateHandlerSecret(Admin().get(), req, &rotated);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return rotated.secret();
  }

  // Emits one event and returns the request the receiver got for it.
  ReceivedRequest EmitAndReceive() {
    const size_t before = receiver_.Count();
    v1::EmitRequest req;
    req.set_project("p");
    req.set_event("e");
    req.set_payload_json(absl::StrCat(R"({"n":)", before, "}"));
    v1::EmitResponse resp;
    const grpc::Status s = emitter_->Emit(Context(auth_).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.handlers(), 1);
    EXPECT_TRUE(receiver_.WaitForCount(before + 1));
    std::vector<ReceivedRequest> requests = receiver_.Requests();
    return requests.size() > before ? requests[before] : ReceivedRequest();
  }

  // Every stored secret value of the only handler: current, previous, then
  // each header value by name.
  std::vector<std::string> StoredValues() {
    return absl::StrSplit(
        Sql(url_,
            "SELECT secret || '|' || coalesce(previous_secret, '') || "
            "coalesce((SELECT string_agg('|' || value, '' ORDER BY key) FROM "
            "jsonb_each_text(headers)), '') FROM handlers"),
        '|');
  }

  std::string url_;
  std::string dir_;
  Receiver receiver_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::string auth_;
};

TEST_F(SecretsTest, DumpHoldsNoSecretOrHeaderValueAndDeliveriesUseThem) {
  ASSERT_NO_FATAL_FAILURE(Start(std::nullopt));  // the test kit's key "test"
  ASSERT_NO_FATAL_FAILURE(CreateProjectAndSender());
  const std::string authorization =
      absl::StrCat("Bearer hv-", util::HexEncode(util::RandomBytes(16)));
  const std::string team = absl::StrCat("team-", util::RandomUuid());
  const v1::Handler handler =
      CreateHandler({{"Authorization", authorization}, {"X-Team", team}});
  ASSERT_TRUE(absl::StartsWith(handler.secret(), "whsec_"));
  // The reply of CreateHandler shows the secret once, header values masked.
  EXPECT_EQ(handler.headers().at("Authorization"), kMasked);
  EXPECT_EQ(handler.headers().at("X-Team"), kMasked);
  const std::string current = Rotate(handler.id());

  const ReceivedRequest request = EmitAndReceive();
  EXPECT_EQ(request.Header("authorization"), authorization);
  EXPECT_EQ(request.Header("x-team"), team);
  EXPECT_THAT(
      SignatureEntries(request),
      UnorderedElementsAre(ExpectedSignature(request, current),
                           ExpectedSignature(request, handler.secret())));

  // Reads mask the values and keep the names.
  v1::GetHandlerRequest get;
  get.set_id(handler.id());
  v1::Handler got;
  ASSERT_TRUE(handlers_->GetHandler(Admin().get(), get, &got).ok());
  EXPECT_EQ(got.secret(), "");
  EXPECT_EQ(got.headers().size(), 2u);
  EXPECT_EQ(got.headers().at("Authorization"), kMasked);
  EXPECT_EQ(got.headers().at("X-Team"), kMasked);
  v1::ListHandlersRequest list;
  list.set_project("p");
  v1::ListHandlersResponse listed;
  ASSERT_TRUE(handlers_->ListHandlers(Admin().get(), list, &listed).ok());
  ASSERT_EQ(listed.handlers_size(), 1);
  EXPECT_EQ(listed.handlers(0).headers().at("Authorization"), kMasked);
  // The outcome is written (the attempt log is in the dump too).
  ASSERT_TRUE(testkit::WaitFor(
      [&] { return Sql(url_, "SELECT count(*) FROM attempts") == "1"; }));

  auto dump = PgCluster::Dump(url_);
  ASSERT_TRUE(dump.ok()) << dump.status();
  // The dump has the handler (sealed values, header names) ...
  EXPECT_THAT(*dump, HasSubstr(handler.id()));
  EXPECT_THAT(*dump, HasSubstr("rio:v1:test:"));
  EXPECT_THAT(*dump, HasSubstr("Authorization"));
  // ... but neither secret nor header value, whole or in part.
  for (const std::string& secret : {handler.secret(), current}) {
    EXPECT_THAT(*dump, Not(HasSubstr(secret)));
    EXPECT_THAT(*dump, Not(HasSubstr(secret.substr(6, 20))));
  }
  EXPECT_THAT(*dump, Not(HasSubstr(authorization.substr(7))));
  EXPECT_THAT(*dump, Not(HasSubstr(team)));
  for (const std::string& value : StoredValues()) {
    EXPECT_TRUE(absl::StartsWith(value, "rio:v1:test:")) << value;
  }
}

TEST_F(SecretsTest, UpdateHandlerSetsHeaderValuesAndAMaskedValueKeepsOne) {
  ASSERT_NO_FATAL_FAILURE(Start(std::nullopt));
  ASSERT_NO_FATAL_FAILURE(CreateProjectAndSender());
  const v1::Handler handler =
      CreateHandler({{"Authorization", "Bearer one"}, {"X-Team", "a"}});

  // What a form does when it saves a handler it showed: masked values back.
  v1::UpdateHandlerRequest update;
  update.set_id(handler.id());
  (*update.mutable_headers())["Authorization"] = kMasked;
  (*update.mutable_headers())["X-Team"] = "b";
  v1::Handler updated;
  grpc::Status s = handlers_->UpdateHandler(Admin().get(), update, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.headers().at("Authorization"), kMasked);
  EXPECT_EQ(updated.headers().at("X-Team"), kMasked);
  ReceivedRequest request = EmitAndReceive();
  EXPECT_EQ(request.Header("authorization"), "Bearer one");
  EXPECT_EQ(request.Header("x-team"), "b");
  EXPECT_THAT(SignatureEntries(request), UnorderedElementsAre(ExpectedSignature(
                                             request, handler.secret())));

  // A masked value for a header the handler lacks: refused, nothing changes.
  const std::string before = Sql(url_, "SELECT h::text FROM handlers h");
  v1::UpdateHandlerRequest bad;
  bad.set_id(handler.id());
  (*bad.mutable_headers())["X-New"] = kMasked;
  s = handlers_->UpdateHandler(Admin().get(), bad, &updated);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("headers: \"X-New\" has the masked value"));
  EXPECT_EQ(Sql(url_, "SELECT h::text FROM handlers h"), before);

  // Replaced values go out from the next delivery on.
  v1::UpdateHandlerRequest replace;
  replace.set_id(handler.id());
  (*replace.mutable_headers())["Authorization"] = "Bearer two";
  ASSERT_TRUE(handlers_->UpdateHandler(Admin().get(), replace, &updated).ok());
  EXPECT_EQ(updated.headers().size(), 1u);
  request = EmitAndReceive();
  EXPECT_EQ(request.Header("authorization"), "Bearer two");
  EXPECT_EQ(request.Header("x-team"), "");
}

TEST_F(SecretsTest, RotationReencryptsUnderTheNewKeyAndTheOldKeyRetires) {
  const std::string old_key = testkit::NewSecretKey();
  const std::string new_key = testkit::NewSecretKey();
  ASSERT_NO_FATAL_FAILURE(
      Start(KeyFile("old", absl::StrCat("2025-01 ", old_key, "\n"))));
  ASSERT_NO_FATAL_FAILURE(CreateProjectAndSender());
  const v1::Handler handler = CreateHandler({{"X-Api-Key", "key-value-1"}});
  const std::string current = Rotate(handler.id());
  std::vector<std::string> stored = StoredValues();
  ASSERT_EQ(stored.size(), 3u);
  for (const std::string& value : stored) {
    EXPECT_TRUE(absl::StartsWith(value, "rio:v1:2025-01:")) << value;
  }

  // The new key first: new values are sealed under it, old ones stay until
  // re-encrypted.
  const std::string both =
      KeyFile("both", absl::StrCat("# new first\n2026-01 ", new_key,
                                   "\n2025-01 ", old_key, "\n"));
  ASSERT_NO_FATAL_FAILURE(Start(both));
  EXPECT_THAT(server_->Log(),
              HasSubstr("values still sealed under older keys "
                        "(--reencrypt_secrets re-seals them): 3 under key "
                        "\"2025-01\""));
  EXPECT_EQ(StoredValues(), stored);

  ASSERT_NO_FATAL_FAILURE(Start(both, {"--reencrypt_secrets"}));
  EXPECT_THAT(server_->Log(),
              HasSubstr("sealing with key \"2026-01\"; 0 plaintext handlers "
                        "sealed, 1 re-sealed"));
  std::vector<std::string> resealed = StoredValues();
  ASSERT_EQ(resealed.size(), 3u);
  for (const std::string& value : resealed) {
    EXPECT_TRUE(absl::StartsWith(value, "rio:v1:2026-01:")) << value;
  }
  EXPECT_EQ(Sql(url_, "SELECT secrets_sealed FROM handlers"), "t");

  // Retired: the old key is gone from the file, and nothing needs it.
  ASSERT_NO_FATAL_FAILURE(
      Start(KeyFile("new", absl::StrCat("2026-01 ", new_key, "\n"))));
  const ReceivedRequest request = EmitAndReceive();
  EXPECT_EQ(request.Header("x-api-key"), "key-value-1");
  EXPECT_THAT(
      SignatureEntries(request),
      UnorderedElementsAre(ExpectedSignature(request, current),
                           ExpectedSignature(request, handler.secret())));
}

TEST_F(SecretsTest, AMissingKeyStopsStartUpNamingItAndItsValues) {
  ASSERT_NO_FATAL_FAILURE(Start(
      KeyFile("old", absl::StrCat("old-key ", testkit::NewSecretKey(), "\n"))));
  ASSERT_NO_FATAL_FAILURE(CreateProjectAndSender());
  const v1::Handler handler = CreateHandler({{"X-Api-Key", "v"}});
  Rotate(handler.id());
  const std::vector<std::string> stored = StoredValues();

  // Retired too early: secret, previous secret and one header value.
  auto [code, log] = StartFails(
      KeyFile("new", absl::StrCat("new-key ", testkit::NewSecretKey(), "\n")),
      {"--reencrypt_secrets"});
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, HasSubstr("rio-server: cannot start: stored handler "
                             "secrets need keys this server lacks: 3 values "
                             "are sealed under key \"old-key\" "
                             "(--secret_key_file has only new-key)"));
  EXPECT_EQ(StoredValues(), stored);

  std::tie(code, log) =
      StartFails(std::string(), {"--allow_plaintext_secrets"});
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, HasSubstr("3 values are sealed under key \"old-key\" (no "
                             "--secret_key_file was given)"));

  // The same id with other key bytes: the value does not open.
  std::tie(code, log) = StartFails(KeyFile(
      "other", absl::StrCat("old-key ", testkit::NewSecretKey(), "\n")));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log,
              HasSubstr(absl::StrCat(
                  "cannot load the catalog: handler ", handler.id(),
                  ": a value sealed under key \"old-key\" does not open")));
  EXPECT_EQ(StoredValues(), stored);
}

TEST_F(SecretsTest, PlaintextRowsFromBeforeTheMigrationAreSealedAtStartUp) {
  // The schema as the release before sealing left it, with a handler.
  {
    auto conn = store::PgConnection::Connect(url_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    const std::vector<store::Migration>& all = store::SchemaMigrations();
    ASSERT_GE(all.size(), 5u);
    ASSERT_TRUE(
        store::ApplyMigrations(
            **conn, std::vector<store::Migration>(all.begin(), all.begin() + 4))
            .ok());
  }
  const std::string secret =
      absl::StrCat("whsec_", util::Base64Encode(util::RandomBytes(32)));
  const std::string id = util::RandomUuid();
  Sql(url_,
      absl::StrCat("INSERT INTO projects (slug, name) VALUES ('p', 'p'); "
                   "INSERT INTO handlers (id, project_id, event, url, method, "
                   "content_type, headers, timeout_ms, secret) SELECT '",
                   id, "', id, 'e', '", receiver_.Url(),
                   "', 'POST', 'JSON', '{\"X-Api-Key\": \"plain-api-key\"}', "
                   "5000, '",
                   secret, "' FROM projects"));
  auto dump = PgCluster::Dump(url_);
  ASSERT_TRUE(dump.ok()) << dump.status();
  ASSERT_THAT(*dump, HasSubstr(secret));  // the dump would show them

  ASSERT_NO_FATAL_FAILURE(Start(std::nullopt));
  EXPECT_THAT(server_->Log(),
              HasSubstr("applied migration 5 (handler secrets sealed at "
                        "rest)\n"));
  EXPECT_THAT(server_->Log(),
              HasSubstr("rio-server: secrets at rest: sealing with key "
                        "\"test\"; 1 plaintext handlers sealed, 0 "
                        "re-sealed\n"));
  EXPECT_EQ(Sql(url_, "SELECT secrets_sealed FROM handlers"), "t");
  const std::vector<std::string> stored = StoredValues();
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_TRUE(absl::StartsWith(stored[0], "rio:v1:test:")) << stored[0];
  EXPECT_EQ(stored[1], "");  // no previous secret
  EXPECT_TRUE(absl::StartsWith(stored[2], "rio:v1:test:")) << stored[2];
  dump = PgCluster::Dump(url_);
  ASSERT_TRUE(dump.ok()) << dump.status();
  EXPECT_THAT(*dump, Not(HasSubstr(secret.substr(6))));
  EXPECT_THAT(*dump, Not(HasSubstr("plain-api-key")));

  v1::CreateSenderRequest sender;
  sender.set_project("p");
  sender.set_name("app");
  v1::CreateSenderResponse created;
  ASSERT_TRUE(projects_->CreateSender(Admin().get(), sender, &created).ok());
  auth_ = absl::StrCat(
      "Basic", " ", util::Base64Encode(absl::StrCat("app:", created.token())));
  const ReceivedRequest request = EmitAndReceive();
  EXPECT_EQ(request.Header("x-api-key"), "plain-api-key");
  EXPECT_THAT(SignatureEntries(request),
              UnorderedElementsAre(ExpectedSignature(request, secret)));
}

TEST_F(SecretsTest, PlaintextModeWarnsAndAKeyLaterSealsItsRows) {
  ASSERT_NO_FATAL_FAILURE(Start(std::string(), {"--allow_plaintext_secrets"}));
  EXPECT_THAT(server_->Log(),
              HasSubstr("rio-server: WARNING: --allow_plaintext_secrets: "
                        "handler signing secrets and header values are stored "
                        "UNENCRYPTED"));
  ASSERT_NO_FATAL_FAILURE(CreateProjectAndSender());
  const v1::Handler handler = CreateHandler({{"X-Api-Key", "plain-value"}});
  EXPECT_EQ(handler.headers().at("X-Api-Key"), kMasked);  // masked anyway
  EXPECT_EQ(StoredValues(),
            (std::vector<std::string>{handler.secret(), "", "plain-value"}));
  EXPECT_EQ(Sql(url_, "SELECT secrets_sealed FROM handlers"), "f");

  ASSERT_NO_FATAL_FAILURE(Start(std::nullopt));
  EXPECT_THAT(server_->Log(), HasSubstr("1 plaintext handlers sealed"));
  std::vector<std::string> stored = StoredValues();
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_TRUE(absl::StartsWith(stored[0], "rio:v1:test:")) << stored[0];
  EXPECT_EQ(stored[1], "");  // no previous secret
  EXPECT_TRUE(absl::StartsWith(stored[2], "rio:v1:test:")) << stored[2];
  const ReceivedRequest request = EmitAndReceive();
  EXPECT_EQ(request.Header("x-api-key"), "plain-value");
  EXPECT_THAT(SignatureEntries(request), UnorderedElementsAre(ExpectedSignature(
                                             request, handler.secret())));
}

TEST_F(SecretsTest, BadOrMissingKeyFilesStopStartUpWithAClearMessage) {
  auto [code, log] = StartFails(std::string());
  EXPECT_EQ(code, 2);
  EXPECT_THAT(log, HasSubstr("rio-server: --secret_key_file (or "
                             "RIO_SECRET_KEY_FILE) is required"));
  EXPECT_THAT(log, HasSubstr("--allow_plaintext_secrets"));

  const std::string readable =
      KeyFile("readable", absl::StrCat("k ", testkit::NewSecretKey(), "\n"));
  ASSERT_EQ(chmod(readable.c_str(), 0644), 0);
  std::tie(code, log) = StartFails(readable);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(log, HasSubstr(absl::StrCat(
                       "rio-server: --secret_key_file: ", readable,
                       ": group or others may access it (mode 0644)")));

  std::tie(code, log) = StartFails(KeyFile(
      "short", absl::StrCat("k ", util::Base64Encode(std::string(16, 'x')))));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(log, HasSubstr("line 1: the key of \"k\" is 16 bytes; AES-256 "
                             "needs 32"));

  const std::string key = testkit::NewSecretKey();
  std::tie(code, log) = StartFails(
      KeyFile("dup", absl::StrCat("k ", key, "\nk ", testkit::NewSecretKey())));
  EXPECT_EQ(code, 2);
  EXPECT_THAT(log, HasSubstr("line 2: key id \"k\" appears twice"));
  EXPECT_THAT(log, Not(HasSubstr(key)));

  std::tie(code, log) = StartFails(
      std::string(), {"--allow_plaintext_secrets", "--reencrypt_secrets"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(log, HasSubstr("--reencrypt_secrets needs --secret_key_file"));
  // Nothing was created: every refusal came before the migrations.
  EXPECT_EQ(Sql(url_,
                "SELECT count(*) FROM pg_tables WHERE tablename = "
                "'handlers'"),
            "0");
}

}  // namespace
}  // namespace rio
