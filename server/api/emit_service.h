// rio.v1.EmitService: senders emit events. Authentication and validation run
// on the polling thread against the in-memory catalog; the IngestWriter
// commits and answers.
#ifndef RIO_SERVER_API_EMIT_SERVICE_H_
#define RIO_SERVER_API_EMIT_SERVICE_H_

#include <cstddef>
#include <memory>

#include "grpcpp/impl/codegen/service_type.h"
#include "server/api/cq_server.h"
#include "server/ingest/ingest_writer.h"
#include "server/store/catalog.h"
#include "server/util/metrics.h"

namespace rio::api {

struct EmitDeps {
  store::Catalog* catalog;
  ingest::IngestWriter* writer;
  size_t max_payload_bytes = 1 << 20;
  // Where the service's counters go (README, "Metrics"); none when null.
  util::MetricsRegistry* metrics = nullptr;
};

inline constexpr int kMaxBatchEvents = 1000;
inline constexpr size_t kMaxIdempotencyKeyBytes = 256;

std::unique_ptr<grpc::Service> RegisterEmitService(CqServer& server,
                                                   const EmitDeps& deps);

}  // namespace rio::api

#endif  // RIO_SERVER_API_EMIT_SERVICE_H_
