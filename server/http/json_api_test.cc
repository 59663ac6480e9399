#include "server/http/json_api.h"

#include <future>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/api/auth.h"

namespace rio::http {
namespace {

constexpr char kToken[] = "the-admin-token";

// A ProjectService with canned answers: GetProject returns the caller's
// authorization header as the project's name; slug "missing" is NOT_FOUND.
class FakeProjects final : public v1::ProjectService::Service {
 public:
  grpc::Status GetProject(grpc::ServerContext* context,
                          const v1::GetProjectRequest* request,
                          v1::Project* reply) override {
    if (request->slug() == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "project \"missing\" not found");
    }
    auto authorization = context->client_metadata().find("authorization");
    reply->set_slug(request->slug());
    if (authorization != context->client_metadata().end()) {
      reply->set_name(std::string(authorization->second.data(),
                                  authorization->second.size()));
    }
    return grpc::Status::OK;
  }
  grpc::Status CreateProject(grpc::ServerContext*,
                             const v1::CreateProjectRequest* request,
                             v1::Project*) override {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("project \"", request->slug(),
                                     "\" exists; <b>really</b>"));
  }
};

class JsonApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&projects_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    api_ = std::make_unique<JsonApi>(
        server_->InProcessChannel(grpc::ChannelArguments()), &auth_,
        JsonApi::Options{});
  }
  void TearDown() override { server_->Shutdown(); }

  Response Call(const std::string& path, const std::string& body,
                std::map<std::string, std::string> headers =
                    {{"authorization", absl::StrCat("Bearer ", kToken)},
                     {"content-type", "application/json"}},
                const std::string& method = "POST") {
    Request request;
    request.method = method;
    request.path = path;
    request.body = body;
    request.headers = std::move(headers);
    auto promise = std::make_shared<std::promise<Response>>();
    std::future<Response> future = promise->get_future();
    api_->Handle(request, [promise](Response response) {
      promise->set_value(std::move(response));
    });
    return future.get();
  }

  FakeProjects projects_;
  api::AdminAuthenticator auth_{kToken};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<JsonApi> api_;
};

TEST(HttpStatusForGrpcCode, MapsEveryCode) {
  using grpc::StatusCode;
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::OK), 200);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::CANCELLED), 499);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::UNKNOWN), 500);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::INVALID_ARGUMENT), 400);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::DEADLINE_EXCEEDED), 504);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::NOT_FOUND), 404);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::ALREADY_EXISTS), 409);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::PERMISSION_DENIED), 403);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::FAILED_PRECONDITION), 412);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::ABORTED), 409);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::OUT_OF_RANGE), 400);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::UNIMPLEMENTED), 501);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::INTERNAL), 500);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::UNAVAILABLE), 503);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::DATA_LOSS), 500);
  EXPECT_EQ(HttpStatusForGrpcCode(StatusCode::UNAUTHENTICATED), 401);
}

TEST(JsonApiError, BodyIsJsonWithTheMessageEscaped) {
  const Response response =
      JsonApiError(grpc::StatusCode::NOT_FOUND, "no \"x\"\n\x01");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body,
            "{\"code\":\"NOT_FOUND\",\"message\":\"no \\\"x\\\"\\n\\u0001\"}");
}

TEST(JsonApiError, IllFormedUtf8InTheMessageBecomesReplacementCharacters) {
  // JSON text is UTF-8; a byte echoed from a request must not break it.
  const Response response =
      JsonApiError(grpc::StatusCode::NOT_FOUND, "no API method at /\xff\xc3");
  EXPECT_EQ(response.body,
            "{\"code\":\"NOT_FOUND\",\"message\":\"no API method at "
            "/\xEF\xBF\xBD\xEF\xBF\xBD\"}");
}

TEST(FindJsonApiMethod, FindsUnaryRioMethods) {
  auto method =
      FindJsonApiMethod("/api/v1/rio.v1.DeliveryService/ListDeliveries");
  ASSERT_TRUE(method.ok()) << method.status();
  EXPECT_EQ((*method)->full_name(), "rio.v1.DeliveryService.ListDeliveries");
  EXPECT_TRUE(FindJsonApiMethod("/api/v1/rio.v1.EmitService/Emit").ok());
}

TEST(FindJsonApiMethod, RejectsEverythingElse) {
  for (const char* path :
       {"/api/v1/", "/api/v1/rio.v1.ProjectService",
        "/api/v1/rio.v1.ProjectService/", "/api/v1/rio.v1.Nope/GetProject",
        "/api/v1/rio.v1.ProjectService/Nope",
        "/api/v1/grpc.health.v1.Health/Check",
        "/api/v1/grpc.reflection.v1alpha.ServerReflection/"
        "ServerReflectionInfo",
        "/api/v2/rio.v1.ProjectService/GetProject",
        "/api/v1/rio.v1.ProjectService/GetProject/x"}) {
    EXPECT_EQ(FindJsonApiMethod(path).status().code(),
              absl::StatusCode::kNotFound)
        << path;
  }
  EXPECT_EQ(FindJsonApiMethod("/api/v1/rio.v1.DeliveryService/TailDeliveries")
                .status()
                .code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(JsonApiTest, CallsTheServiceWithTheCallersAuthorization) {
  Response response = Call("/api/v1/rio.v1.ProjectService/GetProject",
                           R"({"slug":"comments"})");
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.content_type, "application/json; charset=utf-8");
  // Unset message fields (the times) are left out.
  EXPECT_EQ(response.body, absl::StrCat(R"({"slug":"comments","name":"Bearer )",
                                        kToken, R"("})"));
  EXPECT_EQ(response.headers.at("Cache-Control"), "no-store");
  EXPECT_EQ(response.headers.at("X-Content-Type-Options"), "nosniff");
  EXPECT_TRUE(absl::StrContains(response.headers.at("Content-Security-Policy"),
                                "frame-ancestors 'none'"));
}

TEST_F(JsonApiTest, EmptyBodyIsAnEmptyRequest) {
  Response response = Call("/api/v1/rio.v1.ProjectService/GetProject", "");
  EXPECT_EQ(response.status, 200) << response.body;
  // Default values are printed, with the .proto field names.
  EXPECT_TRUE(absl::StartsWith(response.body, R"({"slug":"","name":"Bearer )"))
      << response.body;
}

TEST_F(JsonApiTest, GrpcErrorsBecomeHttpStatusAndJsonBody) {
  Response missing =
      Call("/api/v1/rio.v1.ProjectService/GetProject", R"({"slug":"missing"})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(
      missing.body,
      R"({"code":"NOT_FOUND","message":"project \"missing\" not found"})");
  Response exists =
      Call("/api/v1/rio.v1.ProjectService/CreateProject", R"({"slug":"a"})");
  EXPECT_EQ(exists.status, 409);
  EXPECT_EQ(
      exists.body,
      R"({"code":"ALREADY_EXISTS","message":"project \"a\" exists; <b>really</b>"})");
  // Registered in the pool but not served by this server.
  Response unimplemented =
      Call("/api/v1/rio.v1.HandlerService/ListHandlers", "{}");
  EXPECT_EQ(unimplemented.status, 501);
}

TEST_F(JsonApiTest, MissingOrWrongTokenIs401ForEveryPath) {
  for (const char* path : {"/api/v1/rio.v1.ProjectService/GetProject",
                           "/api/v1/nothing/here", "/api/v1/"}) {
    Response none = Call(path, "{}", {{"content-type", "application/json"}});
    EXPECT_EQ(none.status, 401) << path;
    EXPECT_TRUE(absl::StartsWith(none.body, R"({"code":"UNAUTHENTICATED")"))
        << none.body;
    EXPECT_EQ(none.headers.at("WWW-Authenticate"), "Bearer");
    Response wrong = Call(path, "{}",
                          {{"authorization", "Bearer nope"},
                           {"content-type", "application/json"}});
    EXPECT_EQ(wrong.status, 401) << path;
  }
  // Emit takes sender credentials, checked by the service; none at all is
  // refused here.
  Response emit = Call("/api/v1/rio.v1.EmitService/Emit", "{}",
                       {{"content-type", "application/json"}});
  EXPECT_EQ(emit.status, 401);
  Response basic = Call(
      "/api/v1/rio.v1.EmitService/Emit", "{}",
      {{"authorization", "Basic eDp5"}, {"content-type", "application/json"}});
  EXPECT_EQ(basic.status, 501);  // reached the (absent) service
}

TEST_F(JsonApiTest, RejectsUnknownMethodsVerbsAndBodies) {
  EXPECT_EQ(Call("/api/v1/rio.v1.ProjectService/Nope", "{}").status, 404);
  EXPECT_EQ(Call("/api/v1/grpc.health.v1.Health/Check", "{}").status, 404);
  EXPECT_EQ(Call("/api/v1/rio.v1.DeliveryService/TailDeliveries", "{}").status,
            501);
  Response get =
      Call("/api/v1/rio.v1.ProjectService/GetProject", "",
           {{"authorization", absl::StrCat("Bearer ", kToken)}}, "GET");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.headers.at("Allow"), "POST");
  Response form = Call("/api/v1/rio.v1.ProjectService/GetProject", "slug=a",
                       {{"authorization", absl::StrCat("Bearer ", kToken)},
                        {"content-type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 415);
  Response bad_json =
      Call("/api/v1/rio.v1.ProjectService/GetProject", R"({"slug":)");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_TRUE(absl::StartsWith(bad_json.body, R"({"code":"INVALID_ARGUMENT")"))
      << bad_json.body;
  Response unknown_field =
      Call("/api/v1/rio.v1.ProjectService/GetProject", R"({"slugg":"a"})");
  EXPECT_EQ(unknown_field.status, 400);
  Response charset =
      Call("/api/v1/rio.v1.ProjectService/GetProject", R"({"slug":"a"})",
           {{"authorization", absl::StrCat("Bearer ", kToken)},
            {"content-type", "application/json; charset=utf-8"}});
  EXPECT_EQ(charset.status, 200);
}

}  // namespace
}  // namespace rio::http
