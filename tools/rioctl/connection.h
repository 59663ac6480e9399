// rioctl's connection to a rio-server: where it is (--server / RIO_SERVER),
// how to reach it (plaintext, or TLS with the system's or given roots), and
// the admin token or an access token (--token / RIO_ADMIN_TOKEN). Every admin
// call goes through Call(), which sets the deadline and the authorization
// metadata and turns a gRPC error into an absl::Status with the same code and
// the server's message, marked as the server's (IsServerError) so that rioctl
// can say who refused.
//
// Thread-safety: thread-safe (the stubs and channel are).
#ifndef RIO_TOOLS_RIOCTL_CONNECTION_H_
#define RIO_TOOLS_RIOCTL_CONNECTION_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "rio/v1/access.grpc.pb.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"

namespace rio::rioctl {

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";

struct ConnectionOptions {
  // "host:port", or with a scheme: rio:// or http:// (plaintext), rios:// or
  // https:// (TLS).
  std::string server = kDefaultServer;
  std::string token;
  bool tls = false;
  // PEM file of root certificates for TLS; empty: the system's.
  std::string ca_file;
  // Name to verify the server's certificate against, when it differs from
  // the host (e.g. connecting by IP address).
  std::string tls_server_name;
  // PEM client certificate and its key, for servers that require client
  // certificates (mutual TLS); both or neither.
  std::string cert_file;
  std::string key_file;
  absl::Duration timeout = absl::Seconds(10);
};

// The gRPC target and whether TLS is asked for, from `server` ("host:port"
// with an optional scheme). INVALID_ARGUMENT for an unknown scheme, a path,
// or no host.
struct Target {
  std::string address;
  bool tls = false;
};
absl::StatusOr<Target> ParseServer(const std::string& server);

// The contents of the TLS files of `options` (empty where none is named).
// NOT_FOUND naming the flag and file that cannot be read.
struct TlsPem {
  std::string root_certificates;
  std::string certificate_chain;
  std::string private_key;
};
absl::StatusOr<TlsPem> ReadTlsFiles(const ConnectionOptions& options);

// Whether `options` set anything about TLS beyond turning it on.
bool HasTlsSettings(const ConnectionOptions& options);

class Connection {
 public:
  // Builds the channel (it connects on first use). INVALID_ARGUMENT for a
  // bad --server or TLS settings without TLS, NOT_FOUND for an unreadable
  // --tls-ca, --tls-cert or --tls-key.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const ConnectionOptions& options);

  // Runs one unary call with the deadline and the admin token. The server's
  // refusal comes back with its code and message (see IsServerError).
  absl::Status Call(
      const std::function<grpc::Status(grpc::ClientContext*)>& call) const;
  // A context with the token but no deadline, for streams.
  std::unique_ptr<grpc::ClientContext> StreamContext() const;
  // The status of a finished stream, as Call() would return it.
  absl::Status StreamStatus(const grpc::Status& status) const;

  v1::ProjectService::Stub& projects() const { return *projects_; }
  v1::HandlerService::Stub& handlers() const { return *handlers_; }
  v1::DeliveryService::Stub& deliveries() const { return *deliveries_; }
  v1::AccessService::Stub& access() const { return *access_; }
  const std::string& address() const { return target_.address; }

 private:
  Connection(ConnectionOptions options, Target target,
             std::shared_ptr<grpc::Channel> channel);

  const ConnectionOptions options_;
  const Target target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
  std::unique_ptr<v1::AccessService::Stub> access_;
};

// Whether `status` is the server's answer (rather than rioctl's own error).
bool IsServerError(const absl::Status& status);
// `status`, marked as the server's answer.
absl::Status MarkServerError(absl::Status status);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_CONNECTION_H_
