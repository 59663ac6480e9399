#include "server/http/json_api.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "rio/v1/access.pb.h"
#include "rio/v1/delivery.pb.h"
#include "rio/v1/emit.pb.h"
#include "rio/v1/handler.pb.h"
#include "rio/v1/project.pb.h"
#include "server/http/dashboard.h"
#include "server/util/utf8.h"

namespace rio::http {
namespace {

using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

constexpr absl::string_view kServicePackage = "rio.v1.";

// JSON string literal of `text` (quotes included). JSON text is UTF-8, so
// ill-formed sequences (a path or value echoed in a message) become U+FFFD.
std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (const char c : util::ToValidUtf8(text)) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(byte, absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

Response JsonResponse(int status, std::string body) {
  Response response;
  response.status = status;
  response.content_type = "application/json; charset=utf-8";
  response.body = std::move(body);
  response.headers["Cache-Control"] = "no-store";
  AddSecurityHeaders(response);
  return response;
}

// One call in flight: owns everything gRPC points at until it completes.
struct ApiCall {
  std::string method_path;  // "/rio.v1.X/Y"; gRPC keeps a pointer to it
  const MethodDescriptor* method = nullptr;
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  Responder respond;
};

void Complete(ApiCall& call, const grpc::Status& status) {
  if (!status.ok()) {
    call.respond(JsonApiError(status.error_code(), status.error_message()));
    return;
  }
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          call.method->output_type());
  std::unique_ptr<Message> reply(prototype->New());
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (call.response.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  if (!reply->ParseFromString(bytes)) {
    call.respond(JsonApiError(grpc::StatusCode::INTERNAL,
                              "the service's reply could not be decoded"));
    return;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(*reply, &json, options)
           .ok()) {
    call.respond(JsonApiError(grpc::StatusCode::INTERNAL,
                              "the service's reply could not be encoded"));
    return;
  }
  call.respond(JsonResponse(200, std::move(json)));
}

// The generated pool knows a .proto file only once its generated code is
// linked in; naming one message of each makes sure of that in any binary
// that links the bridge.
void LinkServiceDescriptors() {
  static const bool linked = [] {
    (void)v1::Project::descriptor();
    (void)v1::Handler::descriptor();
    (void)v1::Delivery::descriptor();
    (void)v1::EmitRequest::descriptor();
    (void)v1::AccessToken::descriptor();
    return true;
  }();
  (void)linked;
}

}  // namespace

int HttpStatusForGrpcCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 412;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

absl::string_view GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

Response JsonApiError(grpc::StatusCode code, absl::string_view message) {
  Response response =
      JsonResponse(HttpStatusForGrpcCode(code),
                   absl::StrCat("{\"code\":", JsonQuote(GrpcCodeName(code)),
                                ",\"message\":", JsonQuote(message), "}"));
  if (code == grpc::StatusCode::UNAUTHENTICATED) {
    response.headers["WWW-Authenticate"] = "Bearer";
  }
  return response;
}

absl::StatusOr<const MethodDescriptor*> FindJsonApiMethod(
    absl::string_view path) {
  auto not_found = [&] {
    return absl::NotFoundError(
        absl::StrCat("no API method at ", path,
                     "; methods are /api/v1/rio.v1.<Service>/<Method>"));
  };
  LinkServiceDescriptors();
  if (!absl::ConsumePrefix(&path, kJsonApiPrefix)) return not_found();
  const size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return not_found();
  const absl::string_view service_name = path.substr(0, slash);
  const absl::string_view method_name = path.substr(slash + 1);
  if (!absl::StartsWith(service_name, kServicePackage) || method_name.empty()) {
    return not_found();
  }
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(service_name));
  if (service == nullptr) return not_found();
  const MethodDescriptor* method =
      service->FindMethodByName(std::string(method_name));
  if (method == nullptr) return not_found();
  if (method->client_streaming() || method->server_streaming()) {
    return absl::UnimplementedError(
        absl::StrCat(method->full_name(),
                     " streams; the JSON API serves unary methods only"));
  }
  return method;
}

absl::StatusOr<std::string> JsonApiRequestBytes(const MethodDescriptor& method,
                                                absl::string_view body) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          method.input_type());
  std::unique_ptr<Message> message(prototype->New());
  body = absl::StripAsciiWhitespace(body);
  google::protobuf::util::JsonParseOptions parse_options;
  if (auto s = google::protobuf::util::JsonStringToMessage(
          std::string(body.empty() ? "{}" : body), message.get(),
          parse_options);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body is not a ", method.input_type()->full_name(),
                     " in JSON: ", s.message().as_string()));
  }
  std::string bytes;
  message->SerializeToString(&bytes);
  return bytes;
}

JsonApi::JsonApi(std::shared_ptr<grpc::Channel> channel,
                 const api::AdminAuthenticator* admin_auth, Options options)
    : options_(options), admin_auth_(admin_auth), stub_(std::move(channel)) {}

std::optional<Response> JsonApi::CheckHead(const Request& head) const {
  auto header = head.headers.find("authorization");
  const absl::string_view authorization =
      header == head.headers.end() ? absl::string_view()
                                   : absl::string_view(header->second);
  const bool emit = absl::StartsWith(
      head.path, absl::StrCat(kJsonApiPrefix, kServicePackage, "EmitService/"));
  if (emit) {
    if (authorization.empty()) {
      return JsonApiError(grpc::StatusCode::UNAUTHENTICATED,
                          "missing authorization header");
    }
  } else if (absl::Status s = admin_auth_->Check(authorization); !s.ok()) {
    return JsonApiError(grpc::StatusCode::UNAUTHENTICATED, s.message());
  }
  return std::nullopt;
}

void JsonApi::Handle(const Request& request, Responder respond) {
  // Authentication first: without the token, every path is 401.
  if (std::optional<Response> refusal = CheckHead(request)) {
    return respond(std::move(*refusal));
  }
  auto header = request.headers.find("authorization");
  const std::string authorization =
      header == request.headers.end() ? "" : header->second;

  absl::StatusOr<const MethodDescriptor*> method =
      FindJsonApiMethod(request.path);
  if (!method.ok()) {
    return respond(
        JsonApiError(static_cast<grpc::StatusCode>(method.status().code()),
                     method.status().message()));
  }
  if (request.method != "POST") {
    Response response = JsonApiError(grpc::StatusCode::INVALID_ARGUMENT,
                                     "API methods are called with POST");
    response.status = 405;
    response.headers["Allow"] = "POST";
    return respond(std::move(response));
  }
  auto content_type = request.headers.find("content-type");
  if (content_type == request.headers.end() ||
      !absl::StartsWithIgnoreCase(
          absl::StripLeadingAsciiWhitespace(content_type->second),
          "application/json")) {
    Response response = JsonApiError(grpc::StatusCode::INVALID_ARGUMENT,
                                     "the body must be application/json");
    response.status = 415;
    return respond(std::move(response));
  }

  absl::StatusOr<std::string> bytes =
      JsonApiRequestBytes(**method, request.body);
  if (!bytes.ok()) {
    return respond(JsonApiError(grpc::StatusCode::INVALID_ARGUMENT,
                                bytes.status().message()));
  }

  auto call = std::make_shared<ApiCall>();
  call->method = *method;
  call->method_path = absl::StrCat("/", (*method)->service()->full_name(), "/",
                                   (*method)->name());
  call->respond = std::move(respond);
  grpc::Slice slice(*bytes);
  call->request = grpc::ByteBuffer(&slice, 1);
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.deadline));
  if (!authorization.empty()) {
    call->context.AddMetadata("authorization", authorization);
  }
  stub_.UnaryCall(&call->context, call->method_path, grpc::StubOptions(),
                  &call->request, &call->response,
                  [call](grpc::Status status) { Complete(*call, status); });
}

}  // namespace rio::http
