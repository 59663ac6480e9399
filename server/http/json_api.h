// The dashboard's JSON API, a bridge to the gRPC services:
//
//   POST /api/v1/<package.Service>/<Method>
//   authorization: Bearer <admin token>
//   content-type: application/json
//   {proto3 JSON of the request}
//
// calls that method of this server's gRPC services through the in-process
// channel, so every operation has one implementation whichever way it is
// reached. The caller's authorization header goes along as metadata. The
// answer is the reply in proto3 JSON (original field names, default values
// included), or {"code": "NOT_FOUND", "message": "..."} with the HTTP status
// of the gRPC code (HttpStatusForGrpcCode).
//
// Only unary methods of rio.v1 services are reachable. Every call but
// EmitService's (which takes a sender's Basic credentials, checked by the
// service) needs the admin token, checked here before anything else, so an
// unauthenticated caller learns nothing but 401.
//
// Thread-safety: Handle may be called from any thread. The gRPC call
// completes on gRPC's callback threads, which answer through the Responder.
#ifndef RIO_SERVER_HTTP_JSON_API_H_
#define RIO_SERVER_HTTP_JSON_API_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/status.h"
#include "server/api/auth.h"
#include "server/http/http_server.h"

namespace rio::http {

inline constexpr absl::string_view kJsonApiPrefix = "/api/v1/";

// The HTTP status a gRPC code is answered with: OK 200, INVALID_ARGUMENT and
// OUT_OF_RANGE 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND
// 404, ALREADY_EXISTS and ABORTED 409, FAILED_PRECONDITION 412,
// RESOURCE_EXHAUSTED 429, CANCELLED 499, UNIMPLEMENTED 501, UNAVAILABLE 503,
// DEADLINE_EXCEEDED 504, anything else 500.
int HttpStatusForGrpcCode(grpc::StatusCode code);

// "NOT_FOUND" etc.
absl::string_view GrpcCodeName(grpc::StatusCode code);

// The error body: {"code":"NAME","message":"..."} with the HTTP status of
// `code`, and the API's headers.
Response JsonApiError(grpc::StatusCode code, absl::string_view message);

// The unary rio.v1 method that `path` ("/api/v1/rio.v1.X/Y") names.
// NOT_FOUND for anything else, UNIMPLEMENTED for a streaming method.
absl::StatusOr<const google::protobuf::MethodDescriptor*> FindJsonApiMethod(
    absl::string_view path);

// The request of `method` that `body` holds in proto3 JSON (empty or all
// whitespace: the empty request), serialized as gRPC sends it.
// INVALID_ARGUMENT "the body is not a <type> in JSON: <why>" otherwise.
absl::StatusOr<std::string> JsonApiRequestBytes(
    const google::protobuf::MethodDescriptor& method, absl::string_view body);

class JsonApi {
 public:
  struct Options {
    // Every call gets this deadline (DEADLINE_EXCEEDED -> 504).
    absl::Duration deadline = absl::Seconds(10);
    // Largest request body read (larger: 413, unread).
    size_t max_body_bytes = 4 << 20;
  };

  // `channel` reaches the gRPC services (CqServer::InProcessChannel());
  // `admin_auth` must outlive this object.
  JsonApi(std::shared_ptr<grpc::Channel> channel,
          const api::AdminAuthenticator* admin_auth, Options options);

  // Serves one request under kJsonApiPrefix; answers through `respond`,
  // possibly before returning.
  void Handle(const Request& request, Responder respond);

  // Authentication on the request's head alone (RouteOptions::check_head):
  // the 401 answer when the admin token is missing or wrong (for emits, a
  // missing authorization header; the emit service checks the sender's).
  std::optional<Response> CheckHead(const Request& head) const;

  const Options& options() const { return options_; }

 private:
  const Options options_;
  const api::AdminAuthenticator* const admin_auth_;
  grpc::GenericStub stub_;
};

}  // namespace rio::http

#endif  // RIO_SERVER_HTTP_JSON_API_H_
