// Scoped access tokens against the real rio-server: every admin method of
// every service called with a token of each scope (ADMIN, PROJECT_ADMIN,
// READ_ONLY across projects and READ_ONLY of one project), the exact code
// each gets; the messages that name what is missing; expiry, revocation,
// project deletion; bad requests; the hash at rest; the JSON API the
// dashboard uses.
#include <curl/curl.h>

#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "rio/v1/access.grpc.pb.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/util/crypto.h"
#include "tests/testkit/fixture.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using testkit::PgCluster;
using testkit::ServerProcess;
using testkit::WaitFor;
using Code = grpc::StatusCode;

constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
constexpr char kMissingId[] = "00000000-0000-4000-8000-000000000000";

std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(10));
  return ctx;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), ": ", s.error_message());
}

// One project's objects, made with the bootstrap token.
struct ProjectObjects {
  std::string handler_id;
  std::string delivery_id;
  std::string message_id;
  std::string recovery_id;
};

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("access");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    START_RECEIVER(receiver_);
    ServerProcess::Options options;
    options.database_url = url_;
    options.admin_token = kAdminToken;
    server_ = std::make_unique<ServerProcess>(options);
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    projects_ = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    deliveries_ = v1::DeliveryService::NewStub(server_->Channel());
    access_ = v1::AccessService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
  }

  // Creates `slug` with a sender, a handler on the test receiver, one
  // delivered message and a (dry-run free) recovery job.
  void MakeProject(const std::string& slug, ProjectObjects* out) {
    v1::CreateProjectRequest project;
    project.set_slug(slug);
    v1::Project created;
    grpc::Status s =
        projects_->CreateProject(Context(kAdminToken).get(), project, &created);
    ASSERT_TRUE(s.ok()) << Describe(s);
    v1::CreateSenderRequest sender;
    sender.set_project(slug);
    sender.set_name("app");
    v1::CreateSenderResponse credentials;
    s = projects_->CreateSender(Context(kAdminToken).get(), sender,
                                &credentials);
    ASSERT_TRUE(s.ok()) << Describe(s);
    v1::CreateHandlerRequest hreq;
    hreq.set_project(slug);
    hreq.set_event("order-paid");
    hreq.set_url(receiver_.Url());
    v1::Handler handler;
    s = handlers_->CreateHandler(Context(kAdminToken).get(), hreq, &handler);
    ASSERT_TRUE(s.ok()) << Describe(s);
    out->handler_id = handler.id();

    const size_t before = receiver_.Count();
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization",
                    absl::StrCat("Basic ", util::Base64Encode(absl::StrCat(
                                               "app:", credentials.token()))));
    v1::EmitRequest ereq;
    ereq.set_project(slug);
    ereq.set_event("order-paid");
    ereq.set_payload_json(R"({"id":1})");
    v1::EmitResponse eresp;
    s = emitter_->Emit(&ctx, ereq, &eresp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    out->message_id = eresp.message_id();
    ASSERT_TRUE(receiver_.WaitForCount(before + 1));

    v1::ListDeliveriesRequest list;
    list.set_project(slug);
    v1::ListDeliveriesResponse page;
    ASSERT_TRUE(WaitFor([&] {
      page.Clear();
      return deliveries_
                 ->ListDeliveries(Context(kAdminToken).get(), list, &page)
                 .ok() &&
             page.deliveries_size() == 1 &&
             page.deliveries(0).status() == v1::Delivery::SUCCEEDED;
    }));
    out->delivery_id = page.deliveries(0).id();

    v1::RecoverFailedRequest recover;
    recover.set_project(slug);
    *recover.mutable_since() = TimeUtil::SecondsToTimestamp(0);
    v1::Recovery recovery;
    s = deliveries_->RecoverFailed(Context(kAdminToken).get(), recover,
                                   &recovery);
    ASSERT_TRUE(s.ok()) << Describe(s);
    out->recovery_id = recovery.id();
  }

  // Creates an access token with the bootstrap token; returns its secret.
  std::string MakeToken(const std::string& name, v1::AccessToken::Scope scope,
                        const std::string& project = "") {
    v1::CreateAccessTokenRequest req;
    req.set_name(name);
    req.set_scope(scope);
    req.set_project(project);
    v1::CreateAccessTokenResponse resp;
    const grpc::Status s =
        access_->CreateAccessToken(Context(kAdminToken).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(resp.access_token().name(), name);
    EXPECT_EQ(resp.access_token().scope(), scope);
    EXPECT_EQ(resp.access_token().project(), project);
    EXPECT_TRUE(resp.access_token().has_create_time());
    EXPECT_EQ(resp.token().substr(0, 7), "rio_at_");
    return resp.token();
  }

  // Status of a POST to the JSON API with `token`, and the reply body.
  long JsonApi(const std::string& method, const std::string& body,
               const std::string& token, std::string* reply) {
    CURL* curl = curl_easy_init();
    const std::string url =
        absl::StrCat("http://", server_->http_address(), "/api/v1/", method);
    curl_slist* headers = nullptr;
    headers = curl_slist_append(
        headers, absl::StrCat("Authorization: Bearer ", token).c_str());
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION,
        +[](char* data, size_t size, size_t n, void* out) {
          static_cast<std::string*>(out)->append(data, size * n);
          return size * n;
        });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return status;
  }

  std::string url_;
  testkit::Receiver receiver_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
  std::unique_ptr<v1::AccessService::Stub> access_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
};

// The callers of the matrix, in the order of each row's expectations.
enum Who { kAdmin, kShopAdmin, kReader, kShopReader, kCallers };
constexpr const char* kCallerNames[] = {"admin", "shop-admin", "reader",
                                        "shop-reader"};

struct Row {
  std::string call;
  std::function<grpc::Status(grpc::ClientContext*)> run;
  Code want[kCallers];
};

TEST_F(AccessTest, EveryMethodChecksTheScopeOfEveryKindOfToken) {
  ProjectObjects shop, blog;
  ASSERT_NO_FATAL_FAILURE(MakeProject("shop", &shop));
  ASSERT_NO_FATAL_FAILURE(MakeProject("blog", &blog));
  std::string tokens[kCallers] = {
      MakeToken("admin", v1::AccessToken::ADMIN),
      MakeToken("shop-admin", v1::AccessToken::PROJECT_ADMIN, "shop"),
      MakeToken("reader", v1::AccessToken::READ_ONLY),
      MakeToken("shop-reader", v1::AccessToken::READ_ONLY, "shop"),
  };
  constexpr Code OK = Code::OK, DENIED = Code::PERMISSION_DENIED,
                 NOT_FOUND = Code::NOT_FOUND;
  int serial = 0;  // fresh names for calls that create
  auto fresh = [&](const std::string& prefix) {
    return absl::StrCat(prefix, "-", ++serial);
  };

  std::vector<Row> rows;
  // rio.v1.ProjectService
  rows.push_back({"CreateProject",
                  [&](grpc::ClientContext* ctx) {
                    v1::CreateProjectRequest req;
                    req.set_slug(fresh("new"));
                    v1::Project resp;
                    return projects_->CreateProject(ctx, req, &resp);
                  },
                  {OK, DENIED, DENIED, DENIED}});
  for (const std::string slug : {"shop", "blog"}) {
    const bool own = slug == "shop";
    rows.push_back({"GetProject " + slug,
                    [&, slug](grpc::ClientContext* ctx) {
                      v1::GetProjectRequest req;
                      req.set_slug(slug);
                      v1::Project resp;
                      return projects_->GetProject(ctx, req, &resp);
                    },
                    {OK, own ? OK : DENIED, OK, own ? OK : DENIED}});
    rows.push_back({"CreateSender " + slug,
                    [&, slug](grpc::ClientContext* ctx) {
                      v1::CreateSenderRequest req;
                      req.set_project(slug);
                      req.set_name(fresh("sender"));
                      v1::CreateSenderResponse resp;
                      return projects_->CreateSender(ctx, req, &resp);
                    },
                    {OK, own ? OK : DENIED, DENIED, DENIED}});
    rows.push_back({"ListSenders " + slug,
                    [&, slug](grpc::ClientContext* ctx) {
                      v1::ListSendersRequest req;
                      req.set_project(slug);
                      v1::ListSendersResponse resp;
                      return projects_->ListSenders(ctx, req, &resp);
                    },
                    {OK, own ? OK : DENIED, OK, own ? OK : DENIED}});
    rows.push_back({"DeleteSender " + slug,
                    [&, slug](grpc::ClientContext* ctx) {
                      v1::DeleteSenderRequest req;
                      req.set_project(slug);
                      req.set_name("absent");
                      google::protobuf::Empty resp;
                      return projects_->DeleteSender(ctx, req, &resp);
                    },
                    {NOT_FOUND, own ? NOT_FOUND : DENIED, DENIED, DENIED}});
  }
  rows.push_back({"ListProjects",
                  [&](grpc::ClientContext* ctx) {
                    v1::ListProjectsRequest req;
                    v1::ListProjectsResponse resp;
                    return projects_->ListProjects(ctx, req, &resp);
                  },
                  {OK, OK, OK, OK}});
  rows.push_back({"UpdateProject",
                  [&](grpc::ClientContext* ctx) {
                    v1::UpdateProjectRequest req;
                    req.set_slug("shop");
                    req.set_name("Shop");
                    v1::Project resp;
                    return projects_->UpdateProject(ctx, req, &resp);
                  },
                  {OK, DENIED, DENIED, DENIED}});
  rows.push_back({"DeleteProject",
                  [&](grpc::ClientContext* ctx) {
                    v1::DeleteProjectRequest req;
                    req.set_slug("absent");
                    google::protobuf::Empty resp;
                    return projects_->DeleteProject(ctx, req, &resp);
                  },
                  {NOT_FOUND, DENIED, DENIED, DENIED}});

  // rio.v1.HandlerService and rio.v1.DeliveryService, on each project.
  for (const ProjectObjects* p : {&shop, &blog}) {
    const bool own = p == &shop;
    const std::string slug = own ? "shop" : "blog";
    const Code read[kCallers] = {OK, own ? OK : DENIED, OK, own ? OK : DENIED};
    const Code write[kCallers] = {OK, own ? OK : DENIED, DENIED, DENIED};
    auto add = [&](const std::string& call, const Code(&want)[kCallers],
                   std::function<grpc::Status(grpc::ClientContext*)> run) {
      Row row{call + " " + slug, std::move(run), {}};
      std::copy(std::begin(want), std::end(want), row.want);
      rows.push_back(std::move(row));
    };
    add("CreateHandler", write, [&, slug](grpc::ClientContext* ctx) {
      v1::CreateHandlerRequest req;
      req.set_project(slug);
      req.set_event(fresh("event"));
      req.set_url(receiver_.Url());
      v1::Handler resp;
      return handlers_->CreateHandler(ctx, req, &resp);
    });
    add("GetHandler", read, [&, p](grpc::ClientContext* ctx) {
      v1::GetHandlerRequest req;
      req.set_id(p->handler_id);
      v1::Handler resp;
      return handlers_->GetHandler(ctx, req, &resp);
    });
    add("ListHandlers", read, [&, slug](grpc::ClientContext* ctx) {
      v1::ListHandlersRequest req;
      req.set_project(slug);
      v1::ListHandlersResponse resp;
      return handlers_->ListHandlers(ctx, req, &resp);
    });
    add("UpdateHandler", write, [&, p](grpc::ClientContext* ctx) {
      v1::UpdateHandlerRequest req;
      req.set_id(p->handler_id);
      req.set_timeout_ms(4000 + serial++);
      v1::Handler resp;
      return handlers_->UpdateHandler(ctx, req, &resp);
    });
    add("RotateHandlerSecret", write, [&, p](grpc::ClientContext* ctx) {
      v1::RotateHandlerSecretRequest req;
      req.set_id(p->handler_id);
      v1::Handler resp;
      return handlers_->RotateHandlerSecret(ctx, req, &resp);
    });
    add("ListDeliveries", read, [&, slug](grpc::ClientContext* ctx) {
      v1::ListDeliveriesRequest req;
      req.set_project(slug);
      v1::ListDeliveriesResponse resp;
      return deliveries_->ListDeliveries(ctx, req, &resp);
    });
    add("GetDelivery", read, [&, p](grpc::ClientContext* ctx) {
      v1::GetDeliveryRequest req;
      req.set_id(p->delivery_id);
      v1::Delivery resp;
      return deliveries_->GetDelivery(ctx, req, &resp);
    });
    add("ListMessages", read, [&, slug](grpc::ClientContext* ctx) {
      v1::ListMessagesRequest req;
      req.set_project(slug);
      v1::ListMessagesResponse resp;
      return deliveries_->ListMessages(ctx, req, &resp);
    });
    add("GetMessage", read, [&, p](grpc::ClientContext* ctx) {
      v1::GetMessageRequest req;
      req.set_id(p->message_id);
      v1::Message resp;
      return deliveries_->GetMessage(ctx, req, &resp);
    });
    add("GetHandlerStats", read, [&, p](grpc::ClientContext* ctx) {
      v1::GetHandlerStatsRequest req;
      req.set_handler_id(p->handler_id);
      v1::HandlerStats resp;
      return deliveries_->GetHandlerStats(ctx, req, &resp);
    });
    add("Redeliver", write, [&, p](grpc::ClientContext* ctx) {
      v1::RedeliverRequest req;
      req.set_delivery_id(p->delivery_id);
      v1::Delivery resp;
      return deliveries_->Redeliver(ctx, req, &resp);
    });
    add("RecoverFailed dry run", read, [&, slug](grpc::ClientContext* ctx) {
      v1::RecoverFailedRequest req;
      req.set_project(slug);
      req.set_dry_run(true);
      *req.mutable_since() = TimeUtil::SecondsToTimestamp(0);
      v1::Recovery resp;
      return deliveries_->RecoverFailed(ctx, req, &resp);
    });
    add("RecoverFailed", write, [&, slug](grpc::ClientContext* ctx) {
      v1::RecoverFailedRequest req;
      req.set_project(slug);
      *req.mutable_since() = TimeUtil::SecondsToTimestamp(0);
      v1::Recovery resp;
      return deliveries_->RecoverFailed(ctx, req, &resp);
    });
    add("GetRecovery", read, [&, p](grpc::ClientContext* ctx) {
      v1::GetRecoveryRequest req;
      req.set_id(p->recovery_id);
      v1::Recovery resp;
      return deliveries_->GetRecovery(ctx, req, &resp);
    });
    add("ListRecoveries", read, [&, slug](grpc::ClientContext* ctx) {
      v1::ListRecoveriesRequest req;
      req.set_project(slug);
      v1::ListRecoveriesResponse resp;
      return deliveries_->ListRecoveries(ctx, req, &resp);
    });
    // A stream that is allowed stays open until its deadline.
    const Code tail[kCallers] = {
        Code::DEADLINE_EXCEEDED, own ? Code::DEADLINE_EXCEEDED : DENIED,
        Code::DEADLINE_EXCEEDED, own ? Code::DEADLINE_EXCEEDED : DENIED};
    add("TailDeliveries", tail, [&, slug](grpc::ClientContext* ctx) {
      ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(500));
      v1::TailDeliveriesRequest req;
      req.set_project(slug);
      auto stream = deliveries_->TailDeliveries(ctx, req);
      v1::TailDeliveriesResponse resp;
      while (stream->Read(&resp)) {
      }
      return stream->Finish();
    });
  }
  // Calls on objects that do not exist get as far as the lookup for every
  // token allowed the kind of call.
  rows.push_back({"DeleteHandler missing",
                  [&](grpc::ClientContext* ctx) {
                    v1::DeleteHandlerRequest req;
                    req.set_id(kMissingId);
                    google::protobuf::Empty resp;
                    return handlers_->DeleteHandler(ctx, req, &resp);
                  },
                  {NOT_FOUND, NOT_FOUND, DENIED, DENIED}});
  rows.push_back({"CancelRecovery missing",
                  [&](grpc::ClientContext* ctx) {
                    v1::CancelRecoveryRequest req;
                    req.set_id(kMissingId);
                    v1::Recovery resp;
                    return deliveries_->CancelRecovery(ctx, req, &resp);
                  },
                  {NOT_FOUND, NOT_FOUND, DENIED, DENIED}});
  // rio.v1.AccessService
  rows.push_back({"CreateAccessToken",
                  [&](grpc::ClientContext* ctx) {
                    v1::CreateAccessTokenRequest req;
                    req.set_name(fresh("token"));
                    req.set_scope(v1::AccessToken::READ_ONLY);
                    v1::CreateAccessTokenResponse resp;
                    return access_->CreateAccessToken(ctx, req, &resp);
                  },
                  {OK, DENIED, DENIED, DENIED}});
  rows.push_back({"ListAccessTokens",
                  [&](grpc::ClientContext* ctx) {
                    v1::ListAccessTokensRequest req;
                    v1::ListAccessTokensResponse resp;
                    return access_->ListAccessTokens(ctx, req, &resp);
                  },
                  {OK, DENIED, DENIED, DENIED}});
  rows.push_back({"RevokeAccessToken",
                  [&](grpc::ClientContext* ctx) {
                    v1::RevokeAccessTokenRequest req;
                    req.set_name("absent");
                    google::protobuf::Empty resp;
                    return access_->RevokeAccessToken(ctx, req, &resp);
                  },
                  {NOT_FOUND, DENIED, DENIED, DENIED}});
  rows.push_back({"GetCaller",
                  [&](grpc::ClientContext* ctx) {
                    v1::GetCallerRequest req;
                    v1::AccessToken resp;
                    return access_->GetCaller(ctx, req, &resp);
                  },
                  {OK, OK, OK, OK}});

  // Runs `row` with `token`; a Redeliver may meet the attempt the previous
  // one started (ABORTED) and is then repeated.
  auto run = [](const Row& row, const std::string& token) {
    grpc::Status s;
    WaitFor([&] {
      s = row.run(Context(token).get());
      return s.error_code() != Code::ABORTED;
    });
    return s;
  };
  for (const Row& row : rows) {
    for (int who = 0; who < kCallers; ++who) {
      const grpc::Status s = run(row, tokens[who]);
      EXPECT_EQ(s.error_code(), row.want[who])
          << row.call << " with " << kCallerNames[who] << ": " << Describe(s);
    }
  }
  // The bootstrap token may do everything the ADMIN token may.
  for (const Row& row : rows) {
    const grpc::Status s = run(row, kAdminToken);
    EXPECT_EQ(s.error_code(), row.want[kAdmin])
        << row.call << " with the bootstrap token: " << Describe(s);
  }
  // An access token is not a sender credential.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", tokens[kAdmin]));
  v1::EmitRequest emit;
  emit.set_project("shop");
  emit.set_event("order-paid");
  emit.set_payload_json("{}");
  v1::EmitResponse emitted;
  EXPECT_EQ(emitter_->Emit(&ctx, emit, &emitted).error_code(),
            Code::UNAUTHENTICATED);
}

TEST_F(AccessTest, RefusalsNameTheTokenAndWhatIsMissing) {
  ProjectObjects shop, blog;
  ASSERT_NO_FATAL_FAILURE(MakeProject("shop", &shop));
  ASSERT_NO_FATAL_FAILURE(MakeProject("blog", &blog));
  const std::string reader = MakeToken("ci-reader", v1::AccessToken::READ_ONLY);
  const std::string shop_admin =
      MakeToken("shop-ops", v1::AccessToken::PROJECT_ADMIN, "shop");

  v1::UpdateHandlerRequest update;
  update.set_id(shop.handler_id);
  update.set_enabled(false);
  v1::Handler handler;
  grpc::Status s =
      handlers_->UpdateHandler(Context(reader).get(), update, &handler);
  EXPECT_EQ(s.error_code(), Code::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(),
            "access token \"ci-reader\" (scope READ_ONLY) may not call "
            "UpdateHandler: it changes data and needs scope ADMIN or "
            "PROJECT_ADMIN");

  v1::CreateProjectRequest create;
  create.set_slug("other");
  v1::Project project;
  s = projects_->CreateProject(Context(shop_admin).get(), create, &project);
  EXPECT_EQ(s.error_message(),
            "access token \"shop-ops\" (scope PROJECT_ADMIN) may not call "
            "CreateProject: it needs scope ADMIN");

  v1::ListHandlersRequest list;
  list.set_project("blog");
  v1::ListHandlersResponse handlers;
  s = handlers_->ListHandlers(Context(shop_admin).get(), list, &handlers);
  EXPECT_EQ(s.error_message(),
            "access token \"shop-ops\" (scope PROJECT_ADMIN) is limited to "
            "project \"shop\"; ListHandlers named project \"blog\"");

  update.set_id(blog.handler_id);
  s = handlers_->UpdateHandler(Context(shop_admin).get(), update, &handler);
  EXPECT_EQ(
      s.error_message(),
      absl::StrCat("access token \"shop-ops\" (scope PROJECT_ADMIN) is "
                   "limited to project \"shop\"; UpdateHandler named "
                   "handler ",
                   blog.handler_id, ", which belongs to another project"));
  // Nothing changed.
  v1::GetHandlerRequest get;
  get.set_id(blog.handler_id);
  ASSERT_TRUE(
      handlers_->GetHandler(Context(kAdminToken).get(), get, &handler).ok());
  EXPECT_TRUE(handler.enabled());

  // A project admin sees only its project in the list.
  v1::ListProjectsResponse page;
  ASSERT_TRUE(projects_
                  ->ListProjects(Context(shop_admin).get(),
                                 v1::ListProjectsRequest(), &page)
                  .ok());
  ASSERT_EQ(page.projects_size(), 1);
  EXPECT_EQ(page.projects(0).slug(), "shop");
  EXPECT_EQ(page.next_page_token(), "");
  ASSERT_TRUE(projects_
                  ->ListProjects(Context(reader).get(),
                                 v1::ListProjectsRequest(), &page)
                  .ok());
  EXPECT_EQ(page.projects_size(), 2);

  // GetCaller says who is calling.
  v1::AccessToken caller;
  ASSERT_TRUE(access_
                  ->GetCaller(Context(shop_admin).get(), v1::GetCallerRequest(),
                              &caller)
                  .ok());
  EXPECT_EQ(caller.name(), "shop-ops");
  EXPECT_EQ(caller.scope(), v1::AccessToken::PROJECT_ADMIN);
  EXPECT_EQ(caller.project(), "shop");
  ASSERT_TRUE(access_
                  ->GetCaller(Context(kAdminToken).get(),
                              v1::GetCallerRequest(), &caller)
                  .ok());
  EXPECT_EQ(caller.name(), "bootstrap");
  EXPECT_EQ(caller.scope(), v1::AccessToken::ADMIN);

  // The dashboard's JSON API answers 403 with the same message.
  std::string body;
  EXPECT_EQ(JsonApi("rio.v1.HandlerService/DeleteHandler",
                    absl::StrCat(R"({"id":")", shop.handler_id, R"("})"),
                    reader, &body),
            403);
  EXPECT_EQ(
      body,
      R"({"code":"PERMISSION_DENIED","message":"access token \"ci-reader\" )"
      R"((scope READ_ONLY) may not call DeleteHandler: it changes data )"
      R"(and needs scope ADMIN or PROJECT_ADMIN"})");
  body.clear();
  EXPECT_EQ(JsonApi("rio.v1.HandlerService/ListHandlers",
                    R"({"project":"shop"})", reader, &body),
            200)
      << body;
}

TEST_F(AccessTest, RevokedExpiredAndUnknownTokensAreRefused) {
  ProjectObjects shop;
  ASSERT_NO_FATAL_FAILURE(MakeProject("shop", &shop));
  const std::string token = MakeToken("deploy", v1::AccessToken::ADMIN);
  v1::ListProjectsResponse page;
  ASSERT_TRUE(
      projects_
          ->ListProjects(Context(token).get(), v1::ListProjectsRequest(), &page)
          .ok());

  v1::RevokeAccessTokenRequest revoke;
  revoke.set_name("deploy");
  google::protobuf::Empty empty;
  grpc::Status s =
      access_->RevokeAccessToken(Context(kAdminToken).get(), revoke, &empty);
  ASSERT_TRUE(s.ok()) << Describe(s);
  s = projects_->ListProjects(Context(token).get(), v1::ListProjectsRequest(),
                              &page);
  EXPECT_EQ(s.error_code(), Code::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(),
            "invalid access token (revoked, or never issued here)");
  s = access_->RevokeAccessToken(Context(kAdminToken).get(), revoke, &empty);
  EXPECT_EQ(Describe(s), "5: access token \"deploy\" not found");

  // Expiry: a token that expires in two seconds works, then is refused.
  v1::CreateAccessTokenRequest req;
  req.set_name("brief");
  req.set_scope(v1::AccessToken::READ_ONLY);
  const int64_t expire = absl::ToUnixSeconds(absl::Now()) + 2;
  *req.mutable_expire_time() = TimeUtil::SecondsToTimestamp(expire);
  v1::CreateAccessTokenResponse brief;
  s = access_->CreateAccessToken(Context(kAdminToken).get(), req, &brief);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(brief.access_token().expire_time().seconds(), expire);
  s = projects_->ListProjects(Context(brief.token()).get(),
                              v1::ListProjectsRequest(), &page);
  EXPECT_TRUE(s.ok()) << Describe(s);
  ASSERT_TRUE(WaitFor(
      [&] {
        return projects_
                   ->ListProjects(Context(brief.token()).get(),
                                  v1::ListProjectsRequest(), &page)
                   .error_code() == Code::UNAUTHENTICATED;
      },
      std::chrono::seconds(10)));
  s = projects_->ListProjects(Context(brief.token()).get(),
                              v1::ListProjectsRequest(), &page);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("access token \"brief\" expired at ",
                         absl::FormatTime(absl::RFC3339_sec,
                                          absl::FromUnixSeconds(expire),
                                          absl::UTCTimeZone())));

  // A made-up token of the right form.
  s = projects_->ListProjects(Context("rio_at_madeup").get(),
                              v1::ListProjectsRequest(), &page);
  EXPECT_EQ(s.error_message(),
            "invalid access token (revoked, or never issued here)");

  // Deleting a project deletes the tokens limited to it.
  MakeToken("shop-ops", v1::AccessToken::PROJECT_ADMIN, "shop");
  v1::DeleteProjectRequest del;
  del.set_slug("shop");
  ASSERT_TRUE(
      projects_->DeleteProject(Context(kAdminToken).get(), del, &empty).ok());
  v1::ListAccessTokensResponse tokens;
  ASSERT_TRUE(access_
                  ->ListAccessTokens(Context(kAdminToken).get(),
                                     v1::ListAccessTokensRequest(), &tokens)
                  .ok());
  std::vector<std::string> names;
  for (const auto& t : tokens.access_tokens()) names.push_back(t.name());
  EXPECT_THAT(names, ElementsAre("brief"));
}

// Tokens live in every instance's catalog: one created or revoked through
// one instance is accepted or refused by another on the same database.
TEST_F(AccessTest, AnotherInstanceLearnsOfNewAndRevokedTokens) {
  ServerProcess::Options options;
  options.database_url = url_;
  options.admin_token = kAdminToken;
  ServerProcess other(options);
  const absl::Status started = other.Start();
  ASSERT_TRUE(started.ok()) << started;
  auto other_projects = v1::ProjectService::NewStub(other.Channel());
  auto list = [&](const std::string& token) {
    v1::ListProjectsResponse page;
    return other_projects
        ->ListProjects(Context(token).get(), v1::ListProjectsRequest(), &page)
        .error_code();
  };

  const std::string token = MakeToken("ops", v1::AccessToken::READ_ONLY);
  EXPECT_TRUE(WaitFor([&] { return list(token) == Code::OK; }));
  v1::RevokeAccessTokenRequest revoke;
  revoke.set_name("ops");
  google::protobuf::Empty empty;
  ASSERT_TRUE(
      access_->RevokeAccessToken(Context(kAdminToken).get(), revoke, &empty)
          .ok());
  EXPECT_TRUE(WaitFor([&] { return list(token) == Code::UNAUTHENTICATED; }));
}

TEST_F(AccessTest, BadRequestsAreRefusedAndChangeNothing) {
  ProjectObjects shop;
  ASSERT_NO_FATAL_FAILURE(MakeProject("shop", &shop));
  MakeToken("taken", v1::AccessToken::READ_ONLY);
  struct Case {
    std::string name;
    v1::AccessToken::Scope scope;
    std::string project;
    int64_t expire_offset_seconds;  // 0: none
    Code code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", v1::AccessToken::ADMIN, "", 0, Code::INVALID_ARGUMENT,
       "name is required"},
      {"bootstrap", v1::AccessToken::ADMIN, "", 0, Code::INVALID_ARGUMENT,
       "name \"bootstrap\" is reserved for the admin token"},
      {"x", v1::AccessToken::SCOPE_UNSPECIFIED, "", 0, Code::INVALID_ARGUMENT,
       "scope must be ADMIN, PROJECT_ADMIN or READ_ONLY (got 0)"},
      {"x", v1::AccessToken::ADMIN, "shop", 0, Code::INVALID_ARGUMENT,
       "project may not be set for scope ADMIN (it covers every project); use "
       "PROJECT_ADMIN for one project"},
      {"x", v1::AccessToken::PROJECT_ADMIN, "", 0, Code::INVALID_ARGUMENT,
       "project is required for scope PROJECT_ADMIN"},
      {"x", v1::AccessToken::PROJECT_ADMIN, "nope", 0, Code::NOT_FOUND,
       "project \"nope\" not found"},
      {"x", v1::AccessToken::READ_ONLY, "", -60, Code::INVALID_ARGUMENT,
       "expire_time must be in the future"},
      {"taken", v1::AccessToken::READ_ONLY, "", 0, Code::ALREADY_EXISTS,
       "access token \"taken\" already exists"},
  };
  for (const Case& c : cases) {
    v1::CreateAccessTokenRequest req;
    req.set_name(c.name);
    req.set_scope(c.scope);
    req.set_project(c.project);
    if (c.expire_offset_seconds != 0) {
      *req.mutable_expire_time() = TimeUtil::SecondsToTimestamp(
          absl::ToUnixSeconds(absl::Now()) + c.expire_offset_seconds);
    }
    v1::CreateAccessTokenResponse resp;
    const grpc::Status s =
        access_->CreateAccessToken(Context(kAdminToken).get(), req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_EQ(s.error_message().substr(0, c.message.size()), c.message);
    EXPECT_EQ(resp.token(), "");
  }
  EXPECT_EQ(
      testkit::Sql(url_, "SELECT string_agg(name, ',') FROM access_tokens"),
      "taken");
}

TEST_F(AccessTest, OnlyTheHashOfATokenIsStored) {
  const std::string token = MakeToken("ci", v1::AccessToken::ADMIN);
  EXPECT_EQ(
      testkit::Sql(url_, "SELECT encode(token_hash, 'hex') FROM access_tokens"),
      absl::BytesToHexString(util::Sha256(token)));
  auto dump = PgCluster::Dump(url_);
  ASSERT_TRUE(dump.ok()) << dump.status();
  EXPECT_EQ(dump->find(token.substr(7)), std::string::npos);
}

}  // namespace
}  // namespace rio
