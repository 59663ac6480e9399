#include "tools/rioctl/connection.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#ifndef RIO_VERSION
#define RIO_VERSION "0.0.0"
#endif

namespace rio::rioctl {
namespace {

constexpr char kServerErrorPayload[] = "type.googleapis.com/rio.rioctl.Server";

absl::StatusCode ToAbslCode(grpc::StatusCode code) {
  const int value = static_cast<int>(code);
  if (value < 0 ||
      value > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::StatusCode::kUnknown;
  }
  return static_cast<absl::StatusCode>(value);
}

}  // namespace

absl::StatusOr<Target> ParseServer(const std::string& server) {
  std::string text(absl::StripAsciiWhitespace(server));
  Target target;
  size_t scheme_end = text.find("://");
  if (scheme_end != std::string::npos) {
    std::string scheme = absl::AsciiStrToLower(text.substr(0, scheme_end));
    if (scheme == "rios" || scheme == "https") {
      target.tls = true;
    } else if (scheme != "rio" && scheme != "http") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--server \"", server,
          "\" has an unknown scheme (use host:port, rio://host:port or "
          "rios://host:port for TLS)"));
    }
    text = text.substr(scheme_end + 3);
    if (!text.empty() && text.back() == '/') text.pop_back();
  }
  if (text.find('/') != std::string::npos ||
      text.find('@') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--server \"", server,
        "\" must be host:port (a sender DSN is for `rioctl emit --dsn`)"));
  }
  if (text.empty() || text[0] == ':') {
    return absl::InvalidArgumentError(
        absl::StrCat("--server \"", server, "\" has no host"));
  }
  // Rio's port when none is given; [v6]:port and host:port are kept.
  bool has_port = text.back() != ']' && text.rfind(':') != std::string::npos &&
                  (text[0] != '[' || text.rfind("]:") != std::string::npos);
  target.address = has_port ? text : absl::StrCat(text, ":50051");
  return target;
}

absl::StatusOr<TlsPem> ReadTlsFiles(const ConnectionOptions& options) {
  TlsPem pem;
  for (const auto& [flag, path, out] :
       {std::tuple<const char*, const std::string&, std::string*>{
            "--tls-ca", options.ca_file, &pem.root_certificates},
        {"--tls-cert", options.cert_file, &pem.certificate_chain},
        {"--tls-key", options.key_file, &pem.private_key}}) {
    if (path.empty()) continue;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(absl::StrCat("cannot read ", flag, " ", path));
    }
    std::stringstream text;
    text << in.rdbuf();
    *out = text.str();
  }
  return pem;
}

bool HasTlsSettings(const ConnectionOptions& options) {
  return !options.ca_file.empty() || !options.cert_file.empty() ||
         !options.key_file.empty() || !options.tls_server_name.empty();
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const ConnectionOptions& options) {
  absl::StatusOr<Target> target = ParseServer(options.server);
  if (!target.ok()) return target.status();
  if (options.tls) target->tls = true;
  if (!target->tls && HasTlsSettings(options)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS settings (--tls-ca, --tls-cert, --tls-key, --tls-server-name or "
        "their RIO_TLS_* variables) are given but ",
        target->address,
        " is reached in plaintext: use --server rios://HOST:PORT or --tls"));
  }
  grpc::ChannelArguments args;
  args.SetUserAgentPrefix(absl::StrCat("rioctl/", RIO_VERSION));
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (target->tls) {
    absl::StatusOr<TlsPem> pem = ReadTlsFiles(options);
    if (!pem.ok()) return pem.status();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem->root_certificates;
    ssl.pem_cert_chain = pem->certificate_chain;
    ssl.pem_private_key = pem->private_key;
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  auto channel = grpc::CreateCustomChannel(target->address, credentials, args);
  return std::unique_ptr<Connection>(
      new Connection(options, *std::move(target), std::move(channel)));
}

Connection::Connection(ConnectionOptions options, Target target,
                       std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      target_(std::move(target)),
      channel_(std::move(channel)),
      projects_(v1::ProjectService::NewStub(channel_)),
      handlers_(v1::HandlerService::NewStub(channel_)),
      deliveries_(v1::DeliveryService::NewStub(channel_)),
      access_(v1::AccessService::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> Connection::StreamContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  return context;
}

absl::Status Connection::StreamStatus(const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  std::string message = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      message = absl::StrCat("cannot reach Rio at ", target_.address, ": ",
                             message.empty() ? "unavailable" : message);
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      message = absl::StrCat(
          "Rio at ", target_.address, " did not answer within ",
          absl::FormatDuration(options_.timeout), " (--request-timeout)");
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      if (options_.token.empty()) {
        message = absl::StrCat(message,
                               " (no admin token: set --token or "
                               "RIO_ADMIN_TOKEN)");
      }
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      message = absl::StrCat(
          message.empty() ? "not implemented" : message,
          " (this rio-server is older than rioctl and lacks the call)");
      break;
    default:
      break;
  }
  absl::Status error(ToAbslCode(status.error_code()), message);
  error.SetPayload(kServerErrorPayload, absl::Cord("1"));
  return error;
}

absl::Status Connection::Call(
    const std::function<grpc::Status(grpc::ClientContext*)>& call) const {
  std::unique_ptr<grpc::ClientContext> context = StreamContext();
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(options_.timeout));
  return StreamStatus(call(context.get()));
}

absl::Status MarkServerError(absl::Status status) {
  if (!status.ok()) status.SetPayload(kServerErrorPayload, absl::Cord("1"));
  return status;
}

bool IsServerError(const absl::Status& status) {
  return status.GetPayload(kServerErrorPayload).has_value();
}

}  // namespace rio::rioctl
