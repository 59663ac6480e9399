// The dashboard's JSON API bridge (server/http/json_api.h) without a server:
// the path → method routing, the proto3 JSON → request conversion, and the
// JSON error bodies that echo what went wrong. The input is a path line
// followed by a body.
//
// Invariants: a path resolves only to a unary rio.v1 method that it names
// exactly; a converted request parses as the method's input type, and its
// proto3 JSON converts back to the same request; refusals have the
// documented codes; every error body is a valid JSON object.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/http/json_api.h"
#include "server/util/json.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

// Every unary rio.v1 method, so that bodies are converted even when the
// path names none.
const std::vector<const MethodDescriptor*>& UnaryMethods() {
  static const auto* const methods = [] {
    auto* out = new std::vector<const MethodDescriptor*>;
    for (const char* service : {"ProjectService", "HandlerService",
                                "DeliveryService", "EmitService"}) {
      // Resolving one known path links the rio.v1 descriptors.
      (void)rio::http::FindJsonApiMethod(
          absl::StrCat(rio::http::kJsonApiPrefix, "rio.v1.", service, "/x"));
      const google::protobuf::ServiceDescriptor* descriptor =
          google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
              absl::StrCat("rio.v1.", service));
      FUZZ_CHECK(descriptor != nullptr);
      for (int i = 0; i < descriptor->method_count(); ++i) {
        const MethodDescriptor* method = descriptor->method(i);
        if (!method->client_streaming() && !method->server_streaming()) {
          out->push_back(method);
        }
      }
    }
    return out;
  }();
  return *methods;
}

void CheckErrorBody(grpc::StatusCode code, absl::string_view message) {
  const rio::http::Response response = rio::http::JsonApiError(code, message);
  FUZZ_CHECK(response.status >= 400);
  FUZZ_CHECK(rio::util::ValidateJsonObject("body", response.body).ok());
}

const MethodDescriptor* Route(absl::string_view path) {
  const absl::StatusOr<const MethodDescriptor*> method =
      rio::http::FindJsonApiMethod(path);
  if (!method.ok()) {
    const absl::StatusCode code = method.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kNotFound ||
               code == absl::StatusCode::kUnimplemented);
    CheckErrorBody(static_cast<grpc::StatusCode>(code),
                   method.status().message());
    return nullptr;
  }
  const MethodDescriptor* m = *method;
  FUZZ_CHECK(!m->client_streaming() && !m->server_streaming());
  FUZZ_CHECK(absl::StartsWith(m->service()->full_name(), "rio.v1."));
  FUZZ_CHECK(path == absl::StrCat(rio::http::kJsonApiPrefix,
                                  m->service()->full_name(), "/", m->name()));
  return m;
}

std::unique_ptr<Message> NewRequest(const MethodDescriptor& method) {
  return std::unique_ptr<Message>(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(method.input_type())
          ->New());
}

void CheckConversion(const MethodDescriptor& method, absl::string_view body) {
  const absl::StatusOr<std::string> bytes =
      rio::http::JsonApiRequestBytes(method, body);
  if (!bytes.ok()) {
    FUZZ_CHECK(bytes.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(bytes.status().message(),
                                "the body is not a rio.v1."));
    CheckErrorBody(grpc::StatusCode::INVALID_ARGUMENT,
                   bytes.status().message());
    return;
  }
  std::unique_ptr<Message> request = NewRequest(method);
  FUZZ_CHECK(request->ParseFromString(*bytes));

  // What the dashboard would print of it converts back to the same request.
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  FUZZ_CHECK(
      google::protobuf::util::MessageToJsonString(*request, &json, options)
          .ok());
  const absl::StatusOr<std::string> again =
      rio::http::JsonApiRequestBytes(method, json);
  FUZZ_CHECK(again.ok());
  std::unique_ptr<Message> request_again = NewRequest(method);
  FUZZ_CHECK(request_again->ParseFromString(*again));
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(
      *request, *request_again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const absl::string_view path = input.substr(0, newline);
  const absl::string_view body = newline == absl::string_view::npos
                                     ? absl::string_view()
                                     : input.substr(newline + 1);
  const MethodDescriptor* method = Route(path);
  if (method == nullptr) {
    const auto& methods = UnaryMethods();
    size_t pick = 0;
    for (const char c : path) pick = pick * 31 + static_cast<unsigned char>(c);
    method = methods[pick % methods.size()];
  }
  CheckConversion(*method, body);
  return 0;
}
