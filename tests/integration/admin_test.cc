// The real rio-server binary against a real PostgreSQL, called over gRPC:
// every admin RPC's round trip, every bad input with its code and message
// (and the database left unchanged), health, reflection, start-up failures,
// a PostgreSQL restart under a running server, and two servers starting on
// one empty database at once.
#include <curl/curl.h>
#include <sys/stat.h>

#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/util/crypto.h"
#include "server/util/secret_box.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testkit::PgCluster;
using testkit::ServerProcess;
using testkit::WaitFor;

constexpr char kToken[] = "test-admin-token-0123456789abcdef";

// A context carrying the admin token (or `authorization` as given).
std::unique_ptr<grpc::ClientContext> Admin(
    const std::string& authorization = absl::StrCat("Bearer ", kToken)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(10));
  return ctx;
}

// Options for a server on `url` with the test admin token (or `token`).
ServerProcess::Options Opts(const std::string& url,
                            const std::string& token = kToken) {
  ServerProcess::Options options;
  options.database_url = url;
  options.admin_token = token;
  return options;
}

class AdminTest : public ::testing::Test {
 public:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("admin");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    server_ = std::make_unique<ServerProcess>(Opts(url_));
    ASSERT_TRUE(server_->Start().ok());
    projects_ = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
  }

  v1::Project MustCreateProject(const std::string& slug,
                                const std::string& name = "") {
    v1::CreateProjectRequest req;
    req.set_slug(slug);
    req.set_name(name);
    v1::Project project;
    grpc::Status s = projects_->CreateProject(Admin().get(), req, &project);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return project;
  }

  v1::Handler MustCreateHandler(const std::string& project,
                                const std::string& event,
                                const std::string& url) {
    v1::CreateHandlerRequest req;
    req.set_project(project);
    req.set_event(event);
    req.set_url(url);
    v1::Handler handler;
    grpc::Status s = handlers_->CreateHandler(Admin().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  // Every row of the catalog, as text: equal fingerprints mean nothing
  // changed.
  std::string Fingerprint() {
    auto rows = PgCluster::Query(
        url_,
        "SELECT coalesce((SELECT string_agg(p::text, ';' ORDER BY id) FROM "
        "projects p), '') || '|' || coalesce((SELECT string_agg(s::text, ';' "
        "ORDER BY name) FROM senders s), '') || '|' || coalesce((SELECT "
        "string_agg(h::text, ';' ORDER BY id) FROM handlers h), '')");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : "";
  }

  std::string url_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
};

TEST_F(AdminTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(server_->Channel());
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health->Check(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(AdminTest, HttpHealthEndpoints) {
  for (const char* path : {"/healthz", "/readyz"}) {
    CURL* curl = curl_easy_init();
    std::string body;
    std::string url = absl::StrCat("http://", server_->http_address(), path);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION,
        +[](char* data, size_t size, size_t n, void* out) {
          static_cast<std::string*>(out)->append(data, size * n);
          return size * n;
        });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    ASSERT_EQ(curl_easy_perform(curl), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    EXPECT_EQ(status, 200) << path;
    EXPECT_EQ(body, std::string(path) == "/healthz" ? "ok\n" : "ready\n");
  }
}

TEST_F(AdminTest, ReflectionListsTheServices) {
  testkit::ReflectionClient reflection(server_->Channel());
  auto services = reflection.ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services,
              ElementsAre("grpc.health.v1.Health",
                          "grpc.reflection.v1alpha.ServerReflection",
                          "rio.v1.AccessService", "rio.v1.DeliveryService",
                          "rio.v1.EmitService", "rio.v1.HandlerService",
                          "rio.v1.ProjectService"));
}

// `grpcurl describe` works for every service `grpcurl list` shows, and the
// health check is callable through reflection alone, as the README shows it.
TEST_F(AdminTest, ReflectionDescribesEveryListedService) {
  testkit::ReflectionClient reflection(server_->Channel());
  auto services = reflection.ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  for (const std::string& service : *services) {
    auto methods = reflection.DescribeService(service);
    ASSERT_TRUE(methods.ok()) << service << ": " << methods.status();
    EXPECT_FALSE(methods->empty()) << service;
  }
  EXPECT_THAT(*reflection.DescribeService("grpc.health.v1.Health"),
              ElementsAre("Check", "Watch"));
  auto check = reflection.Call("grpc.health.v1.Health/Check", "{}", {});
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->code, grpc::StatusCode::OK) << check->message;
  EXPECT_EQ(check->json, R"({"status":"SERVING"})");
}

// What a user does with grpcurl, JSON in and out, through reflection only.
TEST_F(AdminTest, GrpcurlStyleCallsWork) {
  testkit::ReflectionClient cli(server_->Channel());
  std::map<std::string, std::string> auth = {
      {"authorization", absl::StrCat("Bearer ", kToken)}};
  auto call = [&](const std::string& method, const std::string& json) {
    auto reply = cli.Call(method, json, auth);
    EXPECT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->code, grpc::StatusCode::OK)
        << method << ": " << reply->message;
    return reply.ok() ? reply->json : "";
  };
  EXPECT_THAT(call("rio.v1.ProjectService/CreateProject",
                   R"({"slug":"comments","name":"Comments"})"),
              HasSubstr(R"("slug":"comments")"));
  EXPECT_THAT(
      call("rio.v1.ProjectService/GetProject", R"({"slug":"comments"})"),
      HasSubstr(R"("name":"Comments")"));
  EXPECT_THAT(call("rio.v1.ProjectService/ListProjects", "{}"),
              HasSubstr(R"("slug":"comments")"));
  EXPECT_THAT(call("rio.v1.ProjectService/UpdateProject",
                   R"({"slug":"comments","name":"All comments"})"),
              HasSubstr(R"("name":"All comments")"));
  EXPECT_THAT(call("rio.v1.ProjectService/CreateSender",
                   R"({"project":"comments","name":"comments-app"})"),
              HasSubstr(R"("dsn":"rio://comments-app:)"));
  EXPECT_THAT(
      call("rio.v1.ProjectService/ListSenders", R"({"project":"comments"})"),
      HasSubstr(R"("name":"comments-app")"));
  std::string created = call(
      "rio.v1.HandlerService/CreateHandler",
      R"({"project":"comments","event":"comment-published",)"
      R"("url":"http://127.0.0.1:5000/webhook/comment/antispam",)"
      R"("method":"PUT","content_type":"JSON","headers":{"X-Team":"spam"},)"
      R"("timeout_ms":2000})");
  EXPECT_THAT(created, HasSubstr(R"("method":"PUT")"));
  EXPECT_THAT(created, HasSubstr(R"("content_type":"JSON")"));
  EXPECT_THAT(created, HasSubstr(R"("secret":"whsec_)"));
  size_t at = created.find(R"("id":")");
  ASSERT_NE(at, std::string::npos);
  std::string id = created.substr(at + 6, 36);
  std::string by_id = absl::StrCat(R"({"id":")", id, R"("})");
  // Header values are write-only: names come back, values masked.
  EXPECT_THAT(created, HasSubstr(R"("headers":{"X-Team":"•••"})"));
  EXPECT_THAT(call("rio.v1.HandlerService/GetHandler", by_id),
              HasSubstr(R"("headers":{"X-Team":"•••"})"));
  EXPECT_THAT(call("rio.v1.HandlerService/ListHandlers",
                   R"({"project":"comments","event":"comment-published"})"),
              HasSubstr(id));
  EXPECT_THAT(call("rio.v1.HandlerService/UpdateHandler",
                   absl::StrCat(R"({"id":")", id, R"(","enabled":false})")),
              HasSubstr(R"("disabled_reason":"disabled by an administrator")"));
  EXPECT_THAT(call("rio.v1.HandlerService/RotateHandlerSecret", by_id),
              HasSubstr(R"("secret":"whsec_)"));
  EXPECT_EQ(call("rio.v1.HandlerService/DeleteHandler", by_id), "{}");
  EXPECT_EQ(call("rio.v1.ProjectService/DeleteSender",
                 R"({"project":"comments","name":"comments-app"})"),
            "{}");
  EXPECT_EQ(
      call("rio.v1.ProjectService/DeleteProject", R"({"slug":"comments"})"),
      "{}");
}

TEST_F(AdminTest, ProjectRoundTrip) {
  v1::Project created = MustCreateProject("comments", "Comments");
  EXPECT_EQ(created.slug(), "comments");
  EXPECT_EQ(created.name(), "Comments");
  EXPECT_GT(created.create_time().seconds(), 1700000000);

  v1::GetProjectRequest get;
  get.set_slug("comments");
  v1::Project got;
  ASSERT_TRUE(projects_->GetProject(Admin().get(), get, &got).ok());
  EXPECT_EQ(got.DebugString(), created.DebugString());

  v1::UpdateProjectRequest update;
  update.set_slug("comments");
  update.set_name("All comments");
  v1::Project updated;
  ASSERT_TRUE(projects_->UpdateProject(Admin().get(), update, &updated).ok());
  EXPECT_EQ(updated.name(), "All comments");
  EXPECT_EQ(updated.create_time().seconds(), created.create_time().seconds());

  // The name defaults to the slug.
  EXPECT_EQ(MustCreateProject("billing").name(), "billing");

  v1::DeleteProjectRequest del;
  del.set_slug("comments");
  google::protobuf::Empty empty;
  ASSERT_TRUE(projects_->DeleteProject(Admin().get(), del, &empty).ok());
  grpc::Status gone = projects_->GetProject(Admin().get(), get, &got);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(gone.error_message(), "project \"comments\" not found");
}

TEST_F(AdminTest, ListProjectsPages) {
  for (const char* slug : {"e", "a", "d", "b", "c"}) MustCreateProject(slug);
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListProjectsRequest req;
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ListProjectsResponse resp;
    grpc::Status s = projects_->ListProjects(Admin().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& p : resp.projects()) seen.push_back(p.slug());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ElementsAre("a", "b", "c", "d", "e"));

  v1::ListProjectsRequest all;
  v1::ListProjectsResponse resp;
  ASSERT_TRUE(projects_->ListProjects(Admin().get(), all, &resp).ok());
  EXPECT_EQ(resp.projects_size(), 5);
  EXPECT_EQ(resp.next_page_token(), "");
}

TEST_F(AdminTest, SenderTokenIsReturnedOnceAndStoredOnlyAsHash) {
  MustCreateProject("comments");
  v1::CreateSenderRequest req;
  req.set_project("comments");
  req.set_name("comments-app");
  v1::CreateSenderResponse created;
  grpc::Status s = projects_->CreateSender(Admin().get(), req, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(created.sender().project(), "comments");
  EXPECT_EQ(created.sender().name(), "comments-app");
  EXPECT_EQ(created.token().size(), 43u);
  EXPECT_EQ(created.dsn(),
            absl::StrCat("rio://comments-app:", created.token(), "@",
                         server_->grpc_address(), "/comments"));

  auto stored =
      PgCluster::Query(url_, "SELECT encode(token_hash, 'hex') FROM senders");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, absl::BytesToHexString(util::Sha256(created.token())));
  EXPECT_THAT(Fingerprint(), ::testing::Not(HasSubstr(created.token())));

  v1::ListSendersRequest list;
  list.set_project("comments");
  v1::ListSendersResponse senders;
  ASSERT_TRUE(projects_->ListSenders(Admin().get(), list, &senders).ok());
  ASSERT_EQ(senders.senders_size(), 1);
  EXPECT_EQ(senders.senders(0).name(), "comments-app");
  EXPECT_EQ(senders.senders(0).DebugString(), created.sender().DebugString());

  v1::DeleteSenderRequest del;
  del.set_project("comments");
  del.set_name("comments-app");
  google::protobuf::Empty empty;
  ASSERT_TRUE(projects_->DeleteSender(Admin().get(), del, &empty).ok());
  ASSERT_TRUE(projects_->ListSenders(Admin().get(), list, &senders).ok());
  EXPECT_EQ(senders.senders_size(), 0);
}

TEST_F(AdminTest, HandlerRoundTrip) {
  MustCreateProject("comments");
  v1::CreateHandlerRequest req;
  req.set_project("comments");
  req.set_event("comment-published");
  req.set_url("http://127.0.0.1:5000/webhook/comment/antispam");
  v1::Handler created;
  ASSERT_TRUE(handlers_->CreateHandler(Admin().get(), req, &created).ok());
  // Defaults.
  EXPECT_EQ(created.id().size(), 36u);
  EXPECT_EQ(created.project(), "comments");
  EXPECT_EQ(created.method(), v1::Handler::POST);
  EXPECT_EQ(created.content_type(), v1::Handler::FORM);
  EXPECT_EQ(created.timeout_ms(), 15000);
  EXPECT_TRUE(created.enabled());
  EXPECT_EQ(created.disabled_reason(), "");
  EXPECT_TRUE(absl::StartsWith(created.secret(), "whsec_"));
  EXPECT_EQ(util::Base64Decode(created.secret().substr(6))->size(), 32u);

  // Reads never carry the secret.
  v1::GetHandlerRequest get;
  get.set_id(created.id());
  v1::Handler got;
  ASSERT_TRUE(handlers_->GetHandler(Admin().get(), get, &got).ok());
  EXPECT_EQ(got.secret(), "");
  EXPECT_EQ(got.url(), created.url());

  // Only the fields set change.
  v1::UpdateHandlerRequest update;
  update.set_id(created.id());
  update.set_url("https://hooks.example.org/antispam");
  update.set_timeout_ms(2500);
  (*update.mutable_headers())["X-Api-Key"] = "k1";
  v1::Handler updated;
  grpc::Status s = handlers_->UpdateHandler(Admin().get(), update, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.url(), "https://hooks.example.org/antispam");
  EXPECT_EQ(updated.timeout_ms(), 2500);
  EXPECT_EQ(updated.headers().at("X-Api-Key"), "•••");
  EXPECT_EQ(updated.event(), "comment-published");
  EXPECT_EQ(updated.method(), v1::Handler::POST);
  EXPECT_TRUE(updated.enabled());

  v1::UpdateHandlerRequest disable;
  disable.set_id(created.id());
  disable.set_enabled(false);
  ASSERT_TRUE(handlers_->UpdateHandler(Admin().get(), disable, &updated).ok());
  EXPECT_FALSE(updated.enabled());
  EXPECT_EQ(updated.disabled_reason(), "disabled by an administrator");
  EXPECT_EQ(updated.headers().at("X-Api-Key"), "•••");
  v1::UpdateHandlerRequest enable;
  enable.set_id(created.id());
  enable.set_enabled(true);
  enable.set_clear_headers(true);
  ASSERT_TRUE(handlers_->UpdateHandler(Admin().get(), enable, &updated).ok());
  EXPECT_TRUE(updated.enabled());
  EXPECT_EQ(updated.disabled_reason(), "");
  EXPECT_TRUE(updated.headers().empty());

  // Rotation: a new secret, the old one kept for a day by default.
  v1::RotateHandlerSecretRequest rotate;
  rotate.set_id(created.id());
  v1::Handler rotated;
  ASSERT_TRUE(
      handlers_->RotateHandlerSecret(Admin().get(), rotate, &rotated).ok());
  EXPECT_TRUE(absl::StartsWith(rotated.secret(), "whsec_"));
  EXPECT_NE(rotated.secret(), created.secret());
  int64_t keep = rotated.previous_secret_expire_time().seconds() -
                 rotated.update_time().seconds();
  EXPECT_GE(keep, 86399);
  EXPECT_LE(keep, 86401);
  // Both secrets are stored sealed; the previous one is the created one.
  auto previous =
      PgCluster::Query(url_, "SELECT previous_secret FROM handlers");
  ASSERT_TRUE(previous.ok()) << previous.status();
  EXPECT_TRUE(absl::StartsWith(*previous, "rio:v1:test:")) << *previous;
  auto keys = util::ReadSecretKeyFile(server_->secret_key_file());
  ASSERT_TRUE(keys.ok()) << keys.status();
  auto box = util::SecretBox::Create(*keys);
  ASSERT_TRUE(box.ok()) << box.status();
  auto opened = box->Open(
      *previous, absl::StrCat("handler ", created.id(), " signing secret"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, created.secret());
  rotate.set_expire_previous(true);
  ASSERT_TRUE(
      handlers_->RotateHandlerSecret(Admin().get(), rotate, &rotated).ok());
  EXPECT_FALSE(rotated.has_previous_secret_expire_time());

  // Listing, with and without the event filter.
  MustCreateHandler("comments", "comment-deleted", "http://127.0.0.1:5000/d");
  v1::ListHandlersRequest list;
  list.set_project("comments");
  v1::ListHandlersResponse listed;
  ASSERT_TRUE(handlers_->ListHandlers(Admin().get(), list, &listed).ok());
  ASSERT_EQ(listed.handlers_size(), 2);
  EXPECT_EQ(listed.handlers(0).event(), "comment-deleted");
  EXPECT_EQ(listed.handlers(1).event(), "comment-published");
  EXPECT_EQ(listed.handlers(1).secret(), "");
  list.set_event("comment-published");
  ASSERT_TRUE(handlers_->ListHandlers(Admin().get(), list, &listed).ok());
  ASSERT_EQ(listed.handlers_size(), 1);
  EXPECT_EQ(listed.handlers(0).id(), created.id());

  v1::DeleteHandlerRequest del;
  del.set_id(created.id());
  google::protobuf::Empty empty;
  ASSERT_TRUE(handlers_->DeleteHandler(Admin().get(), del, &empty).ok());
  grpc::Status gone = handlers_->GetHandler(Admin().get(), get, &got);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(gone.error_message(),
            absl::StrCat("handler \"", created.id(), "\" not found"));
}

TEST_F(AdminTest, HandlerCreatedDisabledStaysDisabled) {
  MustCreateProject("comments");
  v1::CreateHandlerRequest req;
  req.set_project("comments");
  req.set_event("e");
  req.set_url("http://127.0.0.1:1/");
  req.set_enabled(false);
  v1::Handler created;
  ASSERT_TRUE(handlers_->CreateHandler(Admin().get(), req, &created).ok());
  EXPECT_FALSE(created.enabled());
  EXPECT_EQ(created.disabled_reason(), "created disabled");
}

struct BadCall {
  std::string what;
  std::function<grpc::Status(AdminTest*)> call;
  grpc::StatusCode code;
  std::string message;
};

TEST_F(AdminTest, BadInputGetsItsCodeAndChangesNothing) {
  MustCreateProject("comments", "Comments");
  v1::Handler handler = MustCreateHandler("comments", "comment-published",
                                          "http://127.0.0.1:5000/hook");
  {
    v1::CreateSenderRequest req;
    req.set_project("comments");
    req.set_name("app");
    v1::CreateSenderResponse resp;
    ASSERT_TRUE(projects_->CreateSender(Admin().get(), req, &resp).ok());
  }
  const std::string before = Fingerprint();
  const std::string missing_id = "00000000-0000-4000-8000-000000000000";
  using Code = grpc::StatusCode;

  auto create_project = [](std::string slug, std::string name,
                           std::string auth = absl::StrCat("Bearer ", kToken)) {
    return [=](AdminTest* t) {
      v1::CreateProjectRequest req;
      req.set_slug(slug);
      req.set_name(name);
      v1::Project p;
      return t->projects_->CreateProject(Admin(auth).get(), req, &p);
    };
  };
  auto create_handler =
      [](std::function<void(v1::CreateHandlerRequest&)> edit) {
        return [=](AdminTest* t) {
          v1::CreateHandlerRequest req;
          req.set_project("comments");
          req.set_event("comment-published");
          req.set_url("http://127.0.0.1:5000/hook");
          edit(req);
          v1::Handler h;
          return t->handlers_->CreateHandler(Admin().get(), req, &h);
        };
      };
  auto update_handler =
      [](std::function<void(v1::UpdateHandlerRequest&)> edit) {
        return [=](AdminTest* t) {
          v1::UpdateHandlerRequest req;
          edit(req);
          v1::Handler h;
          return t->handlers_->UpdateHandler(Admin().get(), req, &h);
        };
      };
  const std::string id = handler.id();

  std::vector<BadCall> cases = {
      {"no token", create_project("x", "", ""), Code::UNAUTHENTICATED,
       "missing admin token: send 'authorization: Bearer <admin token or "
       "access token>'"},
      {"wrong token", create_project("x", "", "Bearer nope"),
       Code::UNAUTHENTICATED, "invalid admin token"},
      {"wrong scheme", create_project("x", "", "Basic abc"),
       Code::UNAUTHENTICATED,
       "authorization must be 'Bearer <admin token or access token>'"},
      {"empty slug", create_project("", ""), Code::INVALID_ARGUMENT,
       "slug is required"},
      {"bad slug", create_project("no spaces", ""), Code::INVALID_ARGUMENT,
       "slug \"no spaces\" may contain only letters, digits, '.', '_' and '-'"},
      {"long slug", create_project(std::string(129, 'a'), ""),
       Code::INVALID_ARGUMENT, "slug is longer than 128 characters (129)"},
      {"control in name", create_project("x", "a\nb"), Code::INVALID_ARGUMENT,
       "name contains control characters"},
      {"duplicate project", create_project("comments", "Again"),
       Code::ALREADY_EXISTS, "project \"comments\" already exists"},
      {"get unknown project",
       [](AdminTest* t) {
         v1::GetProjectRequest req;
         req.set_slug("nope");
         v1::Project p;
         return t->projects_->GetProject(Admin().get(), req, &p);
       },
       Code::NOT_FOUND, "project \"nope\" not found"},
      {"update unknown project",
       [](AdminTest* t) {
         v1::UpdateProjectRequest req;
         req.set_slug("nope");
         req.set_name("N");
         v1::Project p;
         return t->projects_->UpdateProject(Admin().get(), req, &p);
       },
       Code::NOT_FOUND, "project \"nope\" not found"},
      {"update without name",
       [](AdminTest* t) {
         v1::UpdateProjectRequest req;
         req.set_slug("comments");
         v1::Project p;
         return t->projects_->UpdateProject(Admin().get(), req, &p);
       },
       Code::INVALID_ARGUMENT, "name is required"},
      {"delete unknown project",
       [](AdminTest* t) {
         v1::DeleteProjectRequest req;
         req.set_slug("nope");
         google::protobuf::Empty e;
         return t->projects_->DeleteProject(Admin().get(), req, &e);
       },
       Code::NOT_FOUND, "project \"nope\" not found"},
      {"negative page size",
       [](AdminTest* t) {
         v1::ListProjectsRequest req;
         req.set_page_size(-1);
         v1::ListProjectsResponse r;
         return t->projects_->ListProjects(Admin().get(), req, &r);
       },
       Code::INVALID_ARGUMENT, "page_size must not be negative (got -1)"},
      {"bad page token",
       [](AdminTest* t) {
         v1::ListProjectsRequest req;
         req.set_page_token("zz");
         v1::ListProjectsResponse r;
         return t->projects_->ListProjects(Admin().get(), req, &r);
       },
       Code::INVALID_ARGUMENT,
       "page_token is not a token returned by ListProjects"},
      {"duplicate sender",
       [](AdminTest* t) {
         v1::CreateSenderRequest req;
         req.set_project("comments");
         req.set_name("app");
         v1::CreateSenderResponse r;
         return t->projects_->CreateSender(Admin().get(), req, &r);
       },
       Code::ALREADY_EXISTS,
       "sender \"app\" already exists in project \"comments\""},
      {"sender in unknown project",
       [](AdminTest* t) {
         v1::CreateSenderRequest req;
         req.set_project("nope");
         req.set_name("app");
         v1::CreateSenderResponse r;
         return t->projects_->CreateSender(Admin().get(), req, &r);
       },
       Code::NOT_FOUND, "project \"nope\" not found"},
      {"bad sender name",
       [](AdminTest* t) {
         v1::CreateSenderRequest req;
         req.set_project("comments");
         req.set_name("a:b");
         v1::CreateSenderResponse r;
         return t->projects_->CreateSender(Admin().get(), req, &r);
       },
       Code::INVALID_ARGUMENT,
       "name \"a:b\" may contain only letters, digits, '.', '_' and '-'"},
      {"list senders of unknown project",
       [](AdminTest* t) {
         v1::ListSendersRequest req;
         req.set_project("nope");
         v1::ListSendersResponse r;
         return t->projects_->ListSenders(Admin().get(), req, &r);
       },
       Code::NOT_FOUND, "project \"nope\" not found"},
      {"delete unknown sender",
       [](AdminTest* t) {
         v1::DeleteSenderRequest req;
         req.set_project("comments");
         req.set_name("ghost");
         google::protobuf::Empty e;
         return t->projects_->DeleteSender(Admin().get(), req, &e);
       },
       Code::NOT_FOUND, "sender \"ghost\" not found in project \"comments\""},
      {"handler in unknown project",
       create_handler([](auto& r) { r.set_project("nope"); }), Code::NOT_FOUND,
       "project \"nope\" not found"},
      {"bad event",
       create_handler([](auto& r) { r.set_event("comment published"); }),
       Code::INVALID_ARGUMENT,
       "event \"comment published\" may contain only letters, digits, '.', "
       "'_' and '-'"},
      {"missing event", create_handler([](auto& r) { r.set_event(""); }),
       Code::INVALID_ARGUMENT, "event is required"},
      {"ftp url", create_handler([](auto& r) { r.set_url("ftp://x/"); }),
       Code::INVALID_ARGUMENT,
       "url \"ftp://x/\" must start with http:// or https://"},
      {"url without host",
       create_handler([](auto& r) { r.set_url("http:///x"); }),
       Code::INVALID_ARGUMENT, "url \"http:///x\" has no host"},
      {"missing url", create_handler([](auto& r) { r.set_url(""); }),
       Code::INVALID_ARGUMENT, "url is required"},
      {"bad method", create_handler([](auto& r) {
         r.set_method(static_cast<v1::Handler::Method>(9));
       }),
       Code::INVALID_ARGUMENT, "method must be POST, PUT or GET (got 9)"},
      {"bad content type", create_handler([](auto& r) {
         r.set_content_type(static_cast<v1::Handler::ContentType>(7));
       }),
       Code::INVALID_ARGUMENT, "content_type must be FORM or JSON (got 7)"},
      {"GET with JSON", create_handler([](auto& r) {
         r.set_method(v1::Handler::GET);
         r.set_content_type(v1::Handler::JSON);
       }),
       Code::INVALID_ARGUMENT,
       "content_type JSON needs method POST or PUT (GET sends the payload "
       "fields in the query string)"},
      {"negative timeout",
       create_handler([](auto& r) { r.set_timeout_ms(-1); }),
       Code::INVALID_ARGUMENT,
       "timeout_ms must be between 1 and 300000 milliseconds (got -1)"},
      {"huge timeout",
       create_handler([](auto& r) { r.set_timeout_ms(300001); }),
       Code::INVALID_ARGUMENT,
       "timeout_ms must be between 1 and 300000 milliseconds (got 300001)"},
      {"reserved header", create_handler([](auto& r) {
         (*r.mutable_headers())["X-Rio-Event"] = "x";
       }),
       Code::INVALID_ARGUMENT,
       "headers may not set \"X-Rio-Event\"; Rio sets it itself"},
      {"get handler with bad id",
       [](AdminTest* t) {
         v1::GetHandlerRequest req;
         req.set_id("42");
         v1::Handler h;
         return t->handlers_->GetHandler(Admin().get(), req, &h);
       },
       Code::INVALID_ARGUMENT,
       "id \"42\" is not a handler id (a UUID as returned by CreateHandler)"},
      {"get unknown handler",
       [missing_id](AdminTest* t) {
         v1::GetHandlerRequest req;
         req.set_id(missing_id);
         v1::Handler h;
         return t->handlers_->GetHandler(Admin().get(), req, &h);
       },
       Code::NOT_FOUND, absl::StrCat("handler \"", missing_id, "\" not found")},
      {"list handlers of unknown project",
       [](AdminTest* t) {
         v1::ListHandlersRequest req;
         req.set_project("nope");
         v1::ListHandlersResponse r;
         return t->handlers_->ListHandlers(Admin().get(), req, &r);
       },
       Code::NOT_FOUND, "project \"nope\" not found"},
      {"update unknown handler", update_handler([missing_id](auto& r) {
         r.set_id(missing_id);
         r.set_url("http://x/");
       }),
       Code::NOT_FOUND, absl::StrCat("handler \"", missing_id, "\" not found")},
      {"update with bad url", update_handler([id](auto& r) {
         r.set_id(id);
         r.set_url("nope");
       }),
       Code::INVALID_ARGUMENT,
       "url \"nope\" must start with http:// or https://"},
      {"update to GET while JSON", update_handler([id](auto& r) {
         r.set_id(id);
         r.set_content_type(v1::Handler::JSON);
         r.set_method(v1::Handler::GET);
       }),
       Code::INVALID_ARGUMENT,
       "content_type JSON needs method POST or PUT (GET sends the payload "
       "fields in the query string)"},
      {"update with zero timeout", update_handler([id](auto& r) {
         r.set_id(id);
         r.set_timeout_ms(0);
       }),
       Code::INVALID_ARGUMENT,
       "timeout_ms must be between 1 and 300000 milliseconds (got 0)"},
      {"clear and set headers", update_handler([id](auto& r) {
         r.set_id(id);
         r.set_clear_headers(true);
         (*r.mutable_headers())["X-A"] = "1";
       }),
       Code::INVALID_ARGUMENT, "clear_headers and headers may not be combined"},
      {"delete unknown handler",
       [missing_id](AdminTest* t) {
         v1::DeleteHandlerRequest req;
         req.set_id(missing_id);
         google::protobuf::Empty e;
         return t->handlers_->DeleteHandler(Admin().get(), req, &e);
       },
       Code::NOT_FOUND, absl::StrCat("handler \"", missing_id, "\" not found")},
      {"rotate with bad ttl",
       [id](AdminTest* t) {
         v1::RotateHandlerSecretRequest req;
         req.set_id(id);
         req.set_previous_secret_ttl_seconds(-5);
         v1::Handler h;
         return t->handlers_->RotateHandlerSecret(Admin().get(), req, &h);
       },
       Code::INVALID_ARGUMENT,
       "previous_secret_ttl_seconds must be between 0 and 2592000 (got -5)"},
  };
  for (const BadCall& c : cases) {
    grpc::Status s = c.call(this);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_EQ(s.error_message(), c.message) << c.what;
  }
  EXPECT_EQ(Fingerprint(), before);
}

// Without --admin_token the server generates one into an owner-only file
// (never into the log) and reads it back after a restart.
TEST(AdminStartup, GeneratedAdminTokenGoesToAnOwnerOnlyFileAndWorks) {
  auto url = PgCluster::Shared().CreateDatabase("gen");
  ASSERT_TRUE(url.ok());
  ServerProcess server(Opts(*url, ""));
  ASSERT_TRUE(server.Start().ok());
  const std::string token = server.admin_token();
  ASSERT_EQ(token.size(), 43u) << server.Log();
  EXPECT_THAT(server.Log(), Not(HasSubstr(token)));
  EXPECT_THAT(server.Log(),
              HasSubstr("rio-server: admin token generated into " +
                        server.admin_token_file() + "\n"));
  struct stat info;
  ASSERT_EQ(stat(server.admin_token_file().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  auto stub = v1::ProjectService::NewStub(server.Channel());
  v1::ListProjectsRequest req;
  v1::ListProjectsResponse resp;
  EXPECT_TRUE(stub->ListProjects(Admin(absl::StrCat("Bearer ", token)).get(),
                                 req, &resp)
                  .ok());
  EXPECT_EQ(stub->ListProjects(Admin().get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_THAT(server.Log(),
              HasSubstr("rio-server: SIGTERM received, shutting down"));

  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(server.admin_token(), token);
  EXPECT_THAT(server.Log(), HasSubstr("rio-server: admin token read from " +
                                      server.admin_token_file() + "\n"));
  EXPECT_EQ(server.Stop(), 0);
}

TEST(AdminStartup, AShortAdminTokenStopsTheServer) {
  auto url = PgCluster::Shared().CreateDatabase("short_token");
  ASSERT_TRUE(url.ok());
  ServerProcess server(Opts(*url, "sixteen-chars-xx"));
  EXPECT_THAT(server.Start().message(), HasSubstr("exited with code 2"));
  EXPECT_THAT(server.Log(),
              HasSubstr("rio-server: --admin_token must be at least 32 "
                        "characters (it has 16); make one with: openssl rand "
                        "-base64 32\n"));
}

TEST(AdminStartup, APartitionIntervalOutOfRangeStopsTheServer) {
  auto url = PgCluster::Shared().CreateDatabase("partition_flag");
  ASSERT_TRUE(url.ok());
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--partition_interval=30s"},
       "rio-server: --partition_interval must be from 1m to 7 days (168h)\n"},
      {{"--partition_interval=169h"},
       "rio-server: --partition_interval must be from 1m to 7 days (168h)\n"},
      {{"--retention=2h", "--partition_interval=3h"},
       "rio-server: --partition_interval must not be longer than "
       "--retention (history is dropped a partition at a time)\n"},
  };
  for (const auto& [flags, line] : cases) {
    ServerProcess::Options options = Opts(*url);
    options.extra_args = flags;
    ServerProcess server(options);
    EXPECT_THAT(server.Start().message(), HasSubstr("exited with code 2"));
    EXPECT_THAT(server.Log(), HasSubstr(line));
  }
  // Nothing was made: the flags are checked before the database is touched.
  EXPECT_EQ(*PgCluster::Query(*url,
                              "SELECT count(*) FROM pg_tables WHERE "
                              "tablename = 'rio_schema_migrations'"),
            "0");
}

TEST(AdminStartup, UnreachableDatabaseFailsWithOneClearLine) {
  // A port nothing listens on.
  PgCluster cluster;
  int port = 0;
  {
    ASSERT_TRUE(cluster.Start().ok());
    port = cluster.port();
    ASSERT_TRUE(cluster.Stop().ok());
  }
  std::string url =
      absl::StrCat("postgresql://postgres@127.0.0.1:", port, "/rio");
  ServerProcess server(Opts(url));
  EXPECT_FALSE(server.Start().ok());
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(20)), 1);
  std::string log = server.Log();
  EXPECT_THAT(log,
              HasSubstr(absl::StrCat(
                  "rio-server: cannot connect to PostgreSQL at ", url, ": ")));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST(AdminStartup, MissingDatabaseUrlIsAUsageError) {
  ServerProcess server(Opts(""));
  EXPECT_FALSE(server.Start().ok());
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(20)), 2);
  EXPECT_THAT(server.Log(),
              HasSubstr("--database_url (or RIO_DATABASE_URL) is required"));
}

TEST(AdminStartup, TwoServersOnOneEmptyDatabase) {
  auto url = PgCluster::Shared().CreateDatabase("twin");
  ASSERT_TRUE(url.ok());
  ServerProcess a(Opts(*url));
  ServerProcess b(Opts(*url));
  absl::Status started_a, started_b;
  std::thread ta([&] { started_a = a.Start(); });
  std::thread tb([&] { started_b = b.Start(); });
  ta.join();
  tb.join();
  ASSERT_TRUE(started_a.ok()) << started_a << a.Log();
  ASSERT_TRUE(started_b.ok()) << started_b << b.Log();
  auto applied = PgCluster::Query(
      *url, "SELECT count(*) = max(version) FROM rio_schema_migrations");
  EXPECT_EQ(*applied, "t");
  int applied_lines =
      static_cast<int>(absl::StrContains(a.Log(), "applied migration 1")) +
      static_cast<int>(absl::StrContains(b.Log(), "applied migration 1"));
  EXPECT_EQ(applied_lines, 1);

  // A change through one is visible through the other.
  auto stub_a = v1::ProjectService::NewStub(a.Channel());
  auto stub_b = v1::ProjectService::NewStub(b.Channel());
  v1::CreateProjectRequest create;
  create.set_slug("shared");
  v1::Project p;
  ASSERT_TRUE(stub_a->CreateProject(Admin().get(), create, &p).ok());
  v1::GetProjectRequest get;
  get.set_slug("shared");
  EXPECT_TRUE(stub_b->GetProject(Admin().get(), get, &p).ok());
  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
}

TEST(AdminResilience, PostgresRestartUnderARunningServer) {
  PgCluster cluster;
  ASSERT_TRUE(cluster.Start().ok());
  auto url = cluster.CreateDatabase("restart");
  ASSERT_TRUE(url.ok());
  ServerProcess server(Opts(*url));
  ASSERT_TRUE(server.Start().ok());
  auto stub = v1::ProjectService::NewStub(server.Channel());
  auto health = grpc::health::v1::Health::NewStub(server.Channel());
  auto health_status = [&] {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (!health->Check(&ctx, req, &resp).ok()) return -1;
    return static_cast<int>(resp.status());
  };
  auto create = [&](const std::string& slug) {
    v1::CreateProjectRequest req;
    req.set_slug(slug);
    v1::Project p;
    return stub->CreateProject(Admin().get(), req, &p);
  };
  ASSERT_TRUE(create("before").ok());

  ASSERT_TRUE(cluster.Stop().ok());
  grpc::Status down = create("during");
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(down.error_message(), "database unavailable");
  EXPECT_TRUE(WaitFor([&] {
    return health_status() ==
           grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  }));

  ASSERT_TRUE(cluster.Start().ok());
  EXPECT_TRUE(
      WaitFor([&] { return create("after").ok(); }, std::chrono::seconds(20)));
  EXPECT_TRUE(WaitFor([&] {
    return health_status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }));
  auto slugs = PgCluster::Query(
      *url, "SELECT string_agg(slug, ',' ORDER BY slug) FROM projects");
  EXPECT_EQ(*slugs, "after,before");
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace rio
