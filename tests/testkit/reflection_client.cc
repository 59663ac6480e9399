// ReflectionClient: grpcurl's list and call, driven by server reflection.
//
// Why the reflection protocol is spoken at the wire level instead of through
// the generated grpc.reflection.v1alpha classes in rio_proto: Debian's
// libgrpc++_reflection.so (which every binary with a reflection-enabled server
// links) carries its own compiled copy of those messages, registered as
// "src/proto/grpc/reflection/v1alpha/reflection.proto". A second copy in the
// same process makes protobuf abort at start-up ("Symbol name
// grpc.reflection.v1alpha.ServerReflectionRequest conflicts with the existing
// symbol"). The handful of fields needed here are encoded and decoded with
// UnknownFieldSet, which works whichever copy, if any, is linked.
//
// Why each reflection request is a unary call: ServerReflectionInfo is a
// bidirectional stream, but a stream that sends one request and half-closes
// gets exactly one response followed by OK, which is what a unary call
// expects on the wire. One code path then serves reflection and user calls.
#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/descriptor_database.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "server/util/status_macros.h"
#include "tests/testkit/testkit.h"
namespace rio::testkit {
namespace {

using ::google::protobuf::UnknownField;
using ::google::protobuf::UnknownFieldSet;

constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// Field numbers from grpc/reflection/v1alpha/reflection.proto.
// ServerReflectionRequest:
constexpr int kFileByFilename = 3;
constexpr int kFileContainingSymbol = 4;
constexpr int kListServices = 7;
// ServerReflectionResponse:
constexpr int kFileDescriptorResponse = 4;
constexpr int kListServicesResponse = 6;
constexpr int kErrorResponse = 7;
// FileDescriptorResponse: repeated bytes file_descriptor_proto = 1.
constexpr int kFileDescriptorProto = 1;
// ListServiceResponse: repeated ServiceResponse service = 1;
// ServiceResponse: string name = 1.
constexpr int kService = 1;
constexpr int kServiceName = 1;
// ErrorResponse: int32 error_code = 1; string error_message = 2.
constexpr int kErrorCode = 1;
constexpr int kErrorMessage = 2;

constexpr std::chrono::seconds kCallDeadline(10);

using Metadata = std::map<std::string, std::string>;

// What a ServerReflectionResponse carried, minus error_response, which
// DecodeReflectionResponse turns into its status.
struct ReflectionAnswer {
  std::vector<std::string> file_descriptor_protos;  // Serialized.
  std::vector<std::string> service_names;
};

absl::StatusOr<ReflectionAnswer> DecodeReflectionResponse(
    const std::string& bytes) {
  const absl::Status malformed =
      absl::InternalError("malformed ServerReflectionResponse");
  UnknownFieldSet response;
  if (!response.ParseFromString(bytes)) return malformed;
  ReflectionAnswer answer;
  for (int i = 0; i < response.field_count(); ++i) {
    const UnknownField& field = response.field(i);
    if (field.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    UnknownFieldSet inner;
    switch (field.number()) {
      case kFileDescriptorResponse:
        if (!inner.ParseFromString(field.length_delimited())) return malformed;
        for (int j = 0; j < inner.field_count(); ++j) {
          if (inner.field(j).number() == kFileDescriptorProto &&
              inner.field(j).type() == UnknownField::TYPE_LENGTH_DELIMITED) {
            answer.file_descriptor_protos.push_back(
                inner.field(j).length_delimited());
          }
        }
        break;
      case kListServicesResponse:
        if (!inner.ParseFromString(field.length_delimited())) return malformed;
        for (int j = 0; j < inner.field_count(); ++j) {
          if (inner.field(j).number() != kService ||
              inner.field(j).type() != UnknownField::TYPE_LENGTH_DELIMITED) {
            continue;
          }
          UnknownFieldSet service;
          if (!service.ParseFromString(inner.field(j).length_delimited())) {
            return malformed;
          }
          for (int k = 0; k < service.field_count(); ++k) {
            if (service.field(k).number() == kServiceName &&
                service.field(k).type() ==
                    UnknownField::TYPE_LENGTH_DELIMITED) {
              answer.service_names.push_back(
                  service.field(k).length_delimited());
            }
          }
        }
        break;
      case kErrorResponse: {
        if (!inner.ParseFromString(field.length_delimited())) return malformed;
        int code = static_cast<int>(absl::StatusCode::kUnknown);
        std::string message;
        for (int j = 0; j < inner.field_count(); ++j) {
          const UnknownField& part = inner.field(j);
          if (part.number() == kErrorCode &&
              part.type() == UnknownField::TYPE_VARINT) {
            code = static_cast<int>(part.varint());
          } else if (part.number() == kErrorMessage &&
                     part.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
            message = part.length_delimited();
          }
        }
        // gRPC and Abseil share the canonical code numbers.
        return absl::Status(static_cast<absl::StatusCode>(code),
                            absl::StrCat("server reflection: ", message));
      }
      default:
        break;  // valid_host, original_request: not needed.
    }
  }
  return answer;
}

std::string ToBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

}  // namespace

struct ReflectionClient::Impl {
  explicit Impl(std::shared_ptr<grpc::Channel> channel)
      : stub(std::move(channel)) {}

  // One unary call of `path` ("/package.Service/Method") with serialized
  // `request`; fills `response` when OK.
  grpc::Status UnaryCall(const std::string& path, const std::string& request,
                         const Metadata& metadata, std::string* response);

  // Sends a ServerReflectionRequest whose oneof is the string field `field`.
  absl::StatusOr<ReflectionAnswer> Reflect(int field, const std::string& value,
                                           const Metadata& metadata);

  // Makes sure the file defining `symbol` and everything it imports is in
  // `database`.
  absl::Status LoadFileContainingSymbol(const std::string& symbol,
                                        const Metadata& metadata);

  // Adds files not seen before; queues their imports that are not loaded.
  absl::Status AddFiles(const std::vector<std::string>& serialized,
                        std::deque<std::string>* missing);
  absl::Status AddFile(const google::protobuf::FileDescriptorProto& file,
                       std::deque<std::string>* missing);

  grpc::GenericStub stub;
  // Files learned so far. `pool` builds descriptors from it on demand, so
  // files may arrive in any order as long as all imports arrive.
  google::protobuf::SimpleDescriptorDatabase database;
  std::set<std::string> loaded_files;
  google::protobuf::DescriptorPool pool{&database};
  google::protobuf::DynamicMessageFactory factory{&pool};
};

grpc::Status ReflectionClient::Impl::UnaryCall(const std::string& path,
                                               const std::string& request,
                                               const Metadata& metadata,
                                               std::string* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  grpc::Slice request_slice(request);
  const grpc::ByteBuffer request_buffer(&request_slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::Status status;

  grpc::CompletionQueue cq;
  {
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
        stub.PrepareUnaryCall(&context, path, request_buffer, &cq);
    call->StartCall();
    call->Finish(&response_buffer, &status, /*tag=*/&status);
    void* tag = nullptr;
    bool ok = false;
    // Finish is the only operation with a tag, and it always completes.
    cq.Next(&tag, &ok);
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  if (status.ok()) *response = ToBytes(response_buffer);
  return status;
}

absl::StatusOr<ReflectionAnswer> ReflectionClient::Impl::Reflect(
    int field, const std::string& value, const Metadata& metadata) {
  UnknownFieldSet request;
  request.AddLengthDelimited(field, value);
  std::string request_bytes;
  request.SerializeToString(&request_bytes);
  std::string response_bytes;
  const grpc::Status status =
      UnaryCall(kReflectionMethod, request_bytes, metadata, &response_bytes);
  if (!status.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrCat("server reflection: ", status.error_message()));
  }
  return DecodeReflectionResponse(response_bytes);
}

absl::Status ReflectionClient::Impl::AddFile(
    const google::protobuf::FileDescriptorProto& file,
    std::deque<std::string>* missing) {
  if (!loaded_files.insert(file.name()).second) return absl::OkStatus();
  if (!database.Add(file)) {
    return absl::InternalError(
        absl::StrCat("conflicting descriptors in ", file.name()));
  }
  for (const std::string& dependency : file.dependency()) {
    if (loaded_files.count(dependency) == 0) missing->push_back(dependency);
  }
  return absl::OkStatus();
}

absl::Status ReflectionClient::Impl::AddFiles(
    const std::vector<std::string>& serialized,
    std::deque<std::string>* missing) {
  for (const std::string& bytes : serialized) {
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) {
      return absl::InternalError(
          "server reflection sent a malformed FileDescriptorProto");
    }
    RIO_RETURN_IF_ERROR(AddFile(file, missing));
  }
  return absl::OkStatus();
}

absl::Status ReflectionClient::Impl::LoadFileContainingSymbol(
    const std::string& symbol, const Metadata& metadata) {
  google::protobuf::FileDescriptorProto ignored;
  // Asks the database, not the pool: the pool remembers symbols it failed to
  // find and would not look again once they are loaded.
  if (database.FindFileContainingSymbol(symbol, &ignored)) {
    return absl::OkStatus();
  }
  RIO_ASSIGN_OR_RETURN(ReflectionAnswer answer,
                       Reflect(kFileContainingSymbol, symbol, metadata));
  std::deque<std::string> missing;
  RIO_RETURN_IF_ERROR(AddFiles(answer.file_descriptor_protos, &missing));
  // gRPC's server sends the imports along, but a server need not.
  while (!missing.empty()) {
    const std::string name = std::move(missing.front());
    missing.pop_front();
    if (loaded_files.count(name) > 0) continue;
    absl::StatusOr<ReflectionAnswer> imported =
        Reflect(kFileByFilename, name, metadata);
    if (imported.ok()) {
      RIO_RETURN_IF_ERROR(AddFiles(imported->file_descriptor_protos, &missing));
      if (loaded_files.count(name) > 0) continue;
    }
    // Servers often cannot describe the well-known types
    // (google/protobuf/*.proto); this process has them compiled in.
    const google::protobuf::FileDescriptor* builtin =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
            name);
    if (builtin == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "cannot load ", name, ", imported by the definition of ", symbol,
          imported.ok() ? "" : ": ", imported.status().message()));
    }
    google::protobuf::FileDescriptorProto file;
    builtin->CopyTo(&file);
    RIO_RETURN_IF_ERROR(AddFile(file, &missing));
  }
  if (!database.FindFileContainingSymbol(symbol, &ignored)) {
    return absl::NotFoundError(
        absl::StrCat("server reflection returned no definition of ", symbol));
  }
  return absl::OkStatus();
}

ReflectionClient::ReflectionClient(std::shared_ptr<grpc::Channel> channel)
    : impl_(std::make_unique<Impl>(std::move(channel))) {}

ReflectionClient::~ReflectionClient() = default;

absl::StatusOr<std::vector<std::string>> ReflectionClient::ListServices() {
  RIO_ASSIGN_OR_RETURN(ReflectionAnswer answer,
                       impl_->Reflect(kListServices, "*", /*metadata=*/{}));
  std::sort(answer.service_names.begin(), answer.service_names.end());
  return std::move(answer.service_names);
}

absl::StatusOr<std::vector<std::string>> ReflectionClient::DescribeService(
    const std::string& service_name) {
  RIO_RETURN_IF_ERROR(
      impl_->LoadFileContainingSymbol(service_name, /*metadata=*/{}));
  const google::protobuf::ServiceDescriptor* service =
      impl_->pool.FindServiceByName(service_name);
  if (service == nullptr) {
    return absl::NotFoundError(absl::StrCat(service_name, " is not a service"));
  }
  std::vector<std::string> methods;
  for (int i = 0; i < service->method_count(); ++i) {
    methods.push_back(service->method(i)->name());
  }
  return methods;
}

absl::StatusOr<ReflectionClient::Reply> ReflectionClient::Call(
    const std::string& method, const std::string& request_json,
    const std::map<std::string, std::string>& metadata) {
  // Like grpcurl, accepts "pkg.Service/Method" and "pkg.Service.Method".
  size_t separator = method.rfind('/');
  if (separator == std::string::npos) separator = method.rfind('.');
  if (separator == std::string::npos || separator == 0 ||
      separator + 1 == method.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method \"", method, "\" is not of the form package.Service/Method"));
  }
  const std::string service_name = method.substr(0, separator);
  const std::string method_name = method.substr(separator + 1);

  // Like grpcurl -H, the call's metadata goes with its reflection requests.
  RIO_RETURN_IF_ERROR(impl_->LoadFileContainingSymbol(service_name, metadata));
  const google::protobuf::ServiceDescriptor* service =
      impl_->pool.FindServiceByName(service_name);
  if (service == nullptr) {
    return absl::NotFoundError(absl::StrCat(service_name, " is not a service"));
  }
  const google::protobuf::MethodDescriptor* descriptor =
      service->FindMethodByName(method_name);
  if (descriptor == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("service ", service_name, " has no method ", method_name));
  }
  if (descriptor->client_streaming() || descriptor->server_streaming()) {
    return absl::UnimplementedError(
        absl::StrCat(method, " streams; only unary methods are supported"));
  }

  std::unique_ptr<google::protobuf::Message> request(
      impl_->factory.GetPrototype(descriptor->input_type())->New());
  // An empty body is the empty message, as in grpcurl without -d.
  if (!absl::StripAsciiWhitespace(request_json).empty()) {
    const auto parsed = google::protobuf::util::JsonStringToMessage(
        request_json, request.get());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "request is not a valid ", descriptor->input_type()->full_name(),
          " in JSON: ", std::string(parsed.message())));
    }
  }

  std::string response_bytes;
  const grpc::Status status = impl_->UnaryCall(
      absl::StrCat("/", service->full_name(), "/", descriptor->name()),
      request->SerializeAsString(), metadata, &response_bytes);
  Reply reply;
  reply.code = status.error_code();
  reply.message = status.error_message();
  if (!status.ok()) return reply;

  std::unique_ptr<google::protobuf::Message> response(
      impl_->factory.GetPrototype(descriptor->output_type())->New());
  if (!response->ParseFromString(response_bytes)) {
    return absl::InternalError(absl::StrCat(
        "response is not a valid ", descriptor->output_type()->full_name()));
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  const auto printed = google::protobuf::util::MessageToJsonString(
      *response, &reply.json, options);
  if (!printed.ok()) {
    return absl::InternalError(absl::StrCat("cannot print the response: ",
                                            std::string(printed.message())));
  }
  return reply;
}

}  // namespace rio::testkit
