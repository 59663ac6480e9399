// absl::Status -> grpc::Status, done once at the API edge.
#ifndef RIO_SERVER_API_STATUS_H_
#define RIO_SERVER_API_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace rio::api {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace rio::api

#endif  // RIO_SERVER_API_STATUS_H_
