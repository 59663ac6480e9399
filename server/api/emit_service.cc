#include "server/api/emit_service.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "rio/v1/emit.grpc.pb.h"
#include "server/api/auth.h"
#include "server/util/crypto.h"
#include "server/util/json.h"
#include "server/util/status_macros.h"
#include "server/util/utf8.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using Service = v1::EmitService::AsyncService;

// The authenticated sender, from `authorization: Basic ...`.
absl::StatusOr<store::SenderRef> Authenticate(
    const grpc::ServerContext& context, const store::CatalogSnapshot& catalog) {
  RIO_ASSIGN_OR_RETURN(SenderCredentials credentials,
                       ParseBasicCredentials(AuthorizationHeader(context)));
  auto it = catalog.senders_by_token_hash.find(TokenHash(credentials.token));
  if (it == catalog.senders_by_token_hash.end() ||
      it->second.name != credentials.sender) {
    return absl::UnauthenticatedError("invalid sender credentials");
  }
  return it->second;
}

// At most kMaxIdempotencyKeyBytes of UTF-8 text without control characters
// (PostgreSQL's text cannot hold NUL; the others are surely mistakes).
absl::Status ValidateIdempotencyKey(absl::string_view key) {
  if (key.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "idempotency_key is longer than ", kMaxIdempotencyKeyBytes, " bytes"));
  }
  if (!util::IsValidUtf8(key)) {
    return absl::InvalidArgumentError("idempotency_key is not valid UTF-8");
  }
  for (size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("idempotency_key has a control character (byte 0x",
                       absl::Hex(c, absl::kZeroPad2), ") at offset ", i));
    }
  }
  return absl::OkStatus();
}

// Validates one event and turns it into an item for the writer.
absl::StatusOr<ingest::EmitItem> BuildItem(
    const v1::EmitRequest& req, const store::SenderRef& sender,
    const store::CatalogSnapshot& catalog, size_t max_payload_bytes) {
  if (req.project().empty()) {
    return absl::InvalidArgumentError("project is required");
  }
  const store::CachedProject* project = catalog.FindProject(req.project());
  if (req.project() != sender.project || project == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "sender \"", sender.name, "\" of project \"", sender.project,
        "\" may not emit into project \"", req.project().substr(0, 128), "\""));
  }
  RIO_RETURN_IF_ERROR(util::ValidateName("event", req.event()));
  RIO_RETURN_IF_ERROR(ValidateIdempotencyKey(req.idempotency_key()));
  std::string payload;
  switch (req.body_case()) {
    case v1::EmitRequest::kPayloadJson:
      payload = req.payload_json();
      break;
    case v1::EmitRequest::kPayload: {
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      if (!google::protobuf::util::MessageToJsonString(req.payload(), &payload,
                                                       options)
               .ok()) {
        return absl::InvalidArgumentError(
            "payload cannot be written as JSON (a number that is NaN or "
            "infinite?)");
      }
      break;
    }
    default:
      return absl::InvalidArgumentError("payload or payload_json is required");
  }
  if (payload.size() > max_payload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "payload is ", payload.size(), " bytes, more than the limit of ",
        max_payload_bytes, " (--max_payload_bytes)"));
  }
  if (req.body_case() == v1::EmitRequest::kPayloadJson) {
    RIO_RETURN_IF_ERROR(util::ValidateJsonObject("payload_json", payload));
  }

  ingest::EmitItem item;
  item.message_id = util::TimeOrderedUuid();
  item.project_id = project->id;
  item.project = project->slug;
  item.event = req.event();
  item.payload = std::make_shared<const std::string>(std::move(payload));
  item.idempotency_key = req.idempotency_key();
  item.sender = sender.name;
  auto handlers = project->handlers_by_event.find(req.event());
  if (handlers != project->handlers_by_event.end()) {
    for (const auto& handler : handlers->second) {
      if (handler->enabled) {
        item.handlers.push_back(handler);
      } else {
        item.disabled_handler_ids.push_back(handler->id);
      }
    }
  }
  return item;
}

// What the service counts. The children counted on every emit are looked
// up once, here; a rejection looks its code's child up when it happens (it
// builds an error message then anyway).
class EmitCounters {
 public:
  enum Method { kEmit, kEmitBatch };

  explicit EmitCounters(util::MetricsRegistry* registry) {
    if (registry == nullptr) registry = &unexported_;
    requests_ = registry->AddCounterFamily(
        "rio_emit_requests_total",
        "Emit and EmitBatch calls answered, by gRPC status code (OK: "
        "recorded).",
        {"method", "code"});
    ok_[kEmit] = requests_->Get({"Emit", "OK"});
    ok_[kEmitBatch] = requests_->Get({"EmitBatch", "OK"});
    events_ = registry->AddCounter(
        "rio_emitted_events_total",
        "Events recorded as new messages (each event of an EmitBatch "
        "counts).");
    duplicates_ = registry->AddCounter(
        "rio_duplicate_events_total",
        "Events answered with the message of an earlier emit with the same "
        "idempotency key; nothing was recorded.");
    deliveries_ = registry->AddCounter(
        "rio_deliveries_created_total",
        "Deliveries created: one per enabled handler of each new event.");
  }

  void Accepted(Method method,
                const std::vector<ingest::EmitResult>& results) const {
    ok_[method]->Increment();
    uint64_t events = 0, duplicates = 0, deliveries = 0;
    for (const ingest::EmitResult& result : results) {
      if (result.duplicate) {
        ++duplicates;
      } else {
        ++events;
        deliveries += static_cast<uint64_t>(result.handlers);
      }
    }
    if (events > 0) events_->Increment(events);
    if (duplicates > 0) duplicates_->Increment(duplicates);
    if (deliveries > 0) deliveries_->Increment(deliveries);
  }

  void Rejected(Method method, const absl::Status& status) const {
    requests_
        ->Get({method == kEmit ? "Emit" : "EmitBatch",
               absl::StatusCodeToString(status.code())})
        ->Increment();
  }

 private:
  util::MetricsRegistry unexported_;  // used when given no registry
  util::CounterFamily* requests_;
  util::Counter* ok_[2];
  util::Counter* events_;
  util::Counter* duplicates_;
  util::Counter* deliveries_;
};

v1::EmitResponse ToResponse(const ingest::EmitResult& result) {
  v1::EmitResponse response;
  response.set_message_id(result.message_id);
  response.set_handlers(result.handlers);
  response.set_duplicate(result.duplicate);
  return response;
}

}  // namespace

std::unique_ptr<grpc::Service> RegisterEmitService(CqServer& server,
                                                   const EmitDeps& deps) {
  auto service = std::make_unique<Service>();
  Service* s = service.get();
  auto counters = std::make_shared<const EmitCounters>(deps.metrics);

  server.AddUnary<Service, v1::EmitRequest, v1::EmitResponse>(
      s, &Service::RequestEmit,
      [deps, counters](grpc::ServerContext& ctx, const v1::EmitRequest& req,
                       Reply<v1::EmitResponse> reply) {
        constexpr auto kMethod = EmitCounters::kEmit;
        auto catalog = deps.catalog->snapshot();
        auto sender = Authenticate(ctx, *catalog);
        if (!sender.ok()) {
          counters->Rejected(kMethod, sender.status());
          return reply(sender.status());
        }
        auto item = BuildItem(req, *sender, *catalog, deps.max_payload_bytes);
        if (!item.ok()) {
          counters->Rejected(kMethod, item.status());
          return reply(item.status());
        }
        std::vector<ingest::EmitItem> items;
        items.push_back(std::move(*item));
        absl::Status queued = deps.writer->Submit(
            std::move(items),
            [reply, counters](
                absl::StatusOr<std::vector<ingest::EmitResult>> results) {
              if (!results.ok()) {
                counters->Rejected(kMethod, results.status());
                return reply(results.status());
              }
              counters->Accepted(kMethod, *results);
              reply(ToResponse(results->front()));
            });
        if (!queued.ok()) {
          counters->Rejected(kMethod, queued);
          reply(queued);
        }
      });

  server.AddUnary<Service, v1::EmitBatchRequest, v1::EmitBatchResponse>(
      s, &Service::RequestEmitBatch,
      [deps, counters](grpc::ServerContext& ctx,
                       const v1::EmitBatchRequest& req,
                       Reply<v1::EmitBatchResponse> reply) {
        constexpr auto kMethod = EmitCounters::kEmitBatch;
        auto reject = [&](const absl::Status& status) {
          counters->Rejected(kMethod, status);
          reply(status);
        };
        auto catalog = deps.catalog->snapshot();
        auto sender = Authenticate(ctx, *catalog);
        if (!sender.ok()) return reject(sender.status());
        if (req.events().empty()) {
          return reject(absl::InvalidArgumentError("events is required"));
        }
        if (req.events_size() > kMaxBatchEvents) {
          return reject(absl::InvalidArgumentError(absl::StrCat(
              "events has ", req.events_size(),
              " entries, more than the limit of ", kMaxBatchEvents)));
        }
        std::vector<ingest::EmitItem> items;
        items.reserve(req.events_size());
        for (int i = 0; i < req.events_size(); ++i) {
          auto item = BuildItem(req.events(i), *sender, *catalog,
                                deps.max_payload_bytes);
          if (!item.ok()) {
            return reject(absl::Status(
                item.status().code(),
                absl::StrCat("events[", i, "]: ", item.status().message())));
          }
          items.push_back(std::move(*item));
        }
        absl::Status queued = deps.writer->Submit(
            std::move(items),
            [reply, counters](
                absl::StatusOr<std::vector<ingest::EmitResult>> results) {
              if (!results.ok()) {
                counters->Rejected(kMethod, results.status());
                return reply(results.status());
              }
              counters->Accepted(kMethod, *results);
              v1::EmitBatchResponse response;
              for (const auto& result : *results) {
                *response.add_results() = ToResponse(result);
              }
              reply(response);
            });
        if (!queued.ok()) reject(queued);
      });

  server.RegisterService(s);
  return service;
}

}  // namespace rio::api
