#include "rio/client.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "internal.h"
#include "rio/v1/emit.grpc.pb.h"

#ifndef RIO_CLIENT_VERSION
#define RIO_CLIENT_VERSION "0.0.0"
#endif

namespace rio {
namespace {

using client_internal::Base64Encode;
using client_internal::IsValidUtf8;
using client_internal::RandomUnit;
using client_internal::RandomUuid;

// Where AttemptsOf() finds the attempt count of a failed call.
constexpr char kAttemptsPayload[] = "type.googleapis.com/rio.client.Attempts";

absl::StatusCode ToAbslCode(grpc::StatusCode code) {
  const int value = static_cast<int>(code);
  // gRPC and absl share the canonical codes 0-16.
  if (value < 0 ||
      value > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(value);
}

// The one place a gRPC error becomes an absl::Status.
absl::Status CallError(const grpc::Status& status, int attempts) {
  std::string message = status.error_message().empty()
                            ? std::string("no details")
                            : status.error_message();
  if (attempts > 1) {
    absl::StrAppend(&message, " (after ", attempts, " attempts)");
  }
  absl::Status error(ToAbslCode(status.error_code()), message);
  error.SetPayload(kAttemptsPayload, absl::Cord(absl::StrCat(attempts)));
  return error;
}

absl::StatusOr<std::string> ResolveDsnText(const std::string& given) {
  if (!given.empty()) return given;
  const char* from_env = std::getenv(kDsnEnvironmentVariable);
  if (from_env == nullptr || *from_env == '\0') {
    return absl::InvalidArgumentError(absl::StrCat(
        "no DSN: pass rio::Client(\"rio://SENDER:TOKEN@HOST:PORT/PROJECT\") "
        "or set ",
        kDsnEnvironmentVariable));
  }
  return std::string(from_env);
}

// What the channel's TLS uses: ClientOptions' settings, each defaulting to
// its environment variable.
struct TlsSettings {
  grpc::SslCredentialsOptions ssl;
  std::string server_name;
  bool any = false;  // Whether anything was set at all.
};

absl::StatusOr<std::string> ReadPemFromEnvironment(const char* variable) {
  const char* path = std::getenv(variable);
  if (path == nullptr || *path == '\0') return std::string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(variable, "=", path, ": cannot open the file"));
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(variable, "=", path, ": the file is empty"));
  }
  return text;
}

// `value`, else the PEM file named by `variable`; INVALID_ARGUMENT when the
// result is not PEM (e.g. a path given where PEM text belongs).
absl::StatusOr<std::string> PemSetting(const std::string& value,
                                       const char* option,
                                       const char* variable) {
  std::string text = value;
  std::string source = absl::StrCat("ClientOptions.", option);
  if (text.empty()) {
    RIO_CLIENT_ASSIGN_OR_RETURN(text, ReadPemFromEnvironment(variable));
    source = absl::StrCat(
        variable, "=",
        std::getenv(variable) == nullptr ? "" : std::getenv(variable));
  }
  if (!text.empty() && text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " is not PEM (no -----BEGIN line)"));
  }
  return text;
}

absl::StatusOr<TlsSettings> ResolveTls(const ClientOptions& options,
                                       const Dsn& dsn) {
  TlsSettings tls;
  RIO_CLIENT_ASSIGN_OR_RETURN(
      tls.ssl.pem_root_certs,
      PemSetting(options.root_certificates, "root_certificates",
                 kTlsCaEnvironmentVariable));
  RIO_CLIENT_ASSIGN_OR_RETURN(
      tls.ssl.pem_cert_chain,
      PemSetting(options.client_certificate_chain, "client_certificate_chain",
                 kTlsClientCertEnvironmentVariable));
  RIO_CLIENT_ASSIGN_OR_RETURN(
      tls.ssl.pem_private_key,
      PemSetting(options.client_private_key, "client_private_key",
                 kTlsClientKeyEnvironmentVariable));
  tls.server_name = options.tls_server_name;
  if (tls.server_name.empty()) {
    const char* name = std::getenv(kTlsServerNameEnvironmentVariable);
    if (name != nullptr) tls.server_name = name;
  }
  if (tls.ssl.pem_cert_chain.empty() != tls.ssl.pem_private_key.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs its private key and the reverse: set "
        "both client_certificate_chain and client_private_key (or "
        "RIO_TLS_CLIENT_CERT and RIO_TLS_CLIENT_KEY), or neither");
  }
  tls.any = !tls.ssl.pem_root_certs.empty() ||
            !tls.ssl.pem_cert_chain.empty() || !tls.server_name.empty();
  if (tls.any && !dsn.tls()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS settings (root certificates, server name or client "
        "certificate, given or from RIO_TLS_*) need a TLS DSN, but '",
        dsn.ToString(), "' is plaintext: use rios://"));
  }
  return tls;
}

EmitResult ToResult(const v1::EmitResponse& response,
                    const std::string& idempotency_key) {
  EmitResult result;
  result.message_id = response.message_id();
  result.handlers = response.handlers();
  result.duplicate = response.duplicate();
  result.idempotency_key = idempotency_key;
  return result;
}

}  // namespace

int AttemptsOf(const absl::Status& status) {
  const absl::optional<absl::Cord> payload =
      status.GetPayload(kAttemptsPayload);
  int attempts = 0;
  if (!payload.has_value() ||
      !absl::SimpleAtoi(std::string(*payload), &attempts)) {
    return 0;
  }
  return attempts;
}

// Constant after construction; shared by copies of the Client.
struct Client::Impl {
  Dsn dsn;
  absl::Duration deadline;
  RetryPolicy retry;
  std::string authorization;  // "Basic base64(sender:token)"
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::EmitService::Stub> stub;

  static absl::StatusOr<std::shared_ptr<const Impl>> Create(
      ClientOptions options);

  absl::StatusOr<v1::EmitRequest> Request(const Event& event) const;

  // Every RPC goes through here: credentials, a deadline per attempt,
  // retries with backoff, and gRPC errors turned into absl::Status.
  absl::Status Call(
      const std::function<grpc::Status(grpc::ClientContext*)>& rpc,
      const CallOptions& options) const;
};

absl::StatusOr<std::shared_ptr<const Client::Impl>> Client::Impl::Create(
    ClientOptions options) {
  RIO_CLIENT_ASSIGN_OR_RETURN(const std::string text,
                              ResolveDsnText(options.dsn));
  auto impl = std::make_shared<Impl>();
  RIO_CLIENT_ASSIGN_OR_RETURN(impl->dsn, ParseDsn(text));
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ClientOptions.deadline must be positive");
  }
  RIO_CLIENT_RETURN_IF_ERROR(options.retry.Validate());
  impl->deadline = options.deadline;
  impl->retry = std::move(options.retry);
  impl->authorization = absl::StrCat(
      "Basic ",
      Base64Encode(absl::StrCat(impl->dsn.sender, ":", impl->dsn.token)));

  grpc::ChannelArguments args;
  args.SetUserAgentPrefix(absl::StrCat("rio-cpp/", RIO_CLIENT_VERSION));
  // gRPC waits up to 2 minutes before reconnecting after a failure by
  // default, which would make every retry fail fast: keep reconnection
  // attempts about as frequent as our own retries. The minimum backoff stays
  // at its default: gRPC also uses it as the time one connection attempt (TCP
  // and TLS handshake) may take, and 100 ms fails every handshake on a path
  // slower than that.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  RIO_CLIENT_ASSIGN_OR_RETURN(const TlsSettings tls,
                              ResolveTls(options, impl->dsn));
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (impl->dsn.tls()) {
    credentials = grpc::SslCredentials(tls.ssl);
    if (!tls.server_name.empty()) {
      args.SetSslTargetNameOverride(tls.server_name);
    }
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  // Connects lazily, on the first call.
  impl->channel =
      grpc::CreateCustomChannel(impl->dsn.target(), credentials, args);
  impl->stub = v1::EmitService::NewStub(impl->channel);
  return std::shared_ptr<const Impl>(std::move(impl));
}

absl::StatusOr<v1::EmitRequest> Client::Impl::Request(
    const Event& event) const {
  // Protobuf strings must be UTF-8; say so here rather than as a garbled
  // server-side parse error.
  if (!IsValidUtf8(event.event)) {
    return absl::InvalidArgumentError("the event name is not valid UTF-8");
  }
  if (!IsValidUtf8(event.payload_json)) {
    return absl::InvalidArgumentError("payload_json is not valid UTF-8");
  }
  if (!IsValidUtf8(event.idempotency_key)) {
    return absl::InvalidArgumentError("the idempotency key is not valid UTF-8");
  }
  v1::EmitRequest request;
  request.set_project(dsn.project);
  request.set_event(event.event);
  request.set_payload_json(event.payload_json);
  request.set_idempotency_key(
      event.idempotency_key.empty() ? RandomUuid() : event.idempotency_key);
  return request;
}

absl::Status Client::Impl::Call(
    const std::function<grpc::Status(grpc::ClientContext*)>& rpc,
    const CallOptions& options) const {
  if (options.deadline < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "CallOptions.deadline may not be negative");
  }
  const absl::Duration per_attempt =
      options.deadline == absl::ZeroDuration() ? deadline : options.deadline;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", authorization);
    context.set_deadline(absl::ToChronoTime(absl::Now() + per_attempt));
    const grpc::Status status = rpc(&context);
    if (status.ok()) return absl::OkStatus();
    if (!retry.ShouldRetry(ToAbslCode(status.error_code()), attempt)) {
      return CallError(status, attempt);
    }
    absl::SleepFor(retry.Backoff(attempt, RandomUnit()));
  }
}

Client::Client() : Client(ClientOptions()) {}

Client::Client(absl::string_view dsn)
    : Client([dsn] {
        ClientOptions options;
        options.dsn = std::string(dsn);
        return options;
      }()) {}

Client::Client(ClientOptions options) {
  absl::StatusOr<std::shared_ptr<const Impl>> impl =
      Impl::Create(std::move(options));
  if (impl.ok()) {
    impl_ = *std::move(impl);
  } else {
    status_ = impl.status();
  }
}

Client::~Client() = default;
Client::Client(const Client&) = default;
Client& Client::operator=(const Client&) = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

absl::Status Client::status() const { return status_; }

const Dsn& Client::dsn() const {
  static const Dsn* const kNone = new Dsn{"", "", 0, "", "", ""};
  return impl_ != nullptr ? impl_->dsn : *kNone;
}

const std::string& Client::project() const { return dsn().project; }

absl::StatusOr<EmitResult> Client::Emit(absl::string_view event,
                                        absl::string_view payload_json) const {
  Event e;
  e.event = std::string(event);
  e.payload_json = std::string(payload_json);
  return Emit(e);
}

absl::StatusOr<EmitResult> Client::Emit(const Event& event,
                                        const CallOptions& options) const {
  if (!status_.ok()) return status_;
  RIO_CLIENT_ASSIGN_OR_RETURN(const v1::EmitRequest request,
                              impl_->Request(event));
  v1::EmitResponse response;
  RIO_CLIENT_RETURN_IF_ERROR(impl_->Call(
      [&](grpc::ClientContext* context) {
        return impl_->stub->Emit(context, request, &response);
      },
      options));
  return ToResult(response, request.idempotency_key());
}

absl::StatusOr<std::vector<EmitResult>> Client::EmitBatch(
    const std::vector<Event>& events, const CallOptions& options) const {
  if (!status_.ok()) return status_;
  v1::EmitBatchRequest request;
  for (size_t i = 0; i < events.size(); ++i) {
    absl::StatusOr<v1::EmitRequest> event = impl_->Request(events[i]);
    if (!event.ok()) {
      return absl::Status(
          event.status().code(),
          absl::StrCat("event ", i, ": ", event.status().message()));
    }
    *request.add_events() = *std::move(event);
  }
  v1::EmitBatchResponse response;
  RIO_CLIENT_RETURN_IF_ERROR(impl_->Call(
      [&](grpc::ClientContext* context) {
        return impl_->stub->EmitBatch(context, request, &response);
      },
      options));
  if (response.results_size() != request.events_size()) {
    return absl::InternalError(
        absl::StrCat("Rio answered ", response.results_size(), " results for ",
                     request.events_size(), " events"));
  }
  std::vector<EmitResult> results;
  results.reserve(events.size());
  for (int i = 0; i < response.results_size(); ++i) {
    results.push_back(
        ToResult(response.results(i), request.events(i).idempotency_key()));
  }
  return results;
}

}  // namespace rio
