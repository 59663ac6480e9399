#include "server/api/tail.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/api/delivery_rows.h"
#include "server/util/utf8.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

v1::TailDeliveriesResponse ToResponse(const dispatch::AttemptOutcome& o,
                                      const store::CachedHandler& handler) {
  v1::TailDeliveriesResponse out;
  std::string error_class(dispatch::ErrorClassName(o.decision.error_class));
  v1::Delivery* d = out.mutable_delivery();
  d->set_id(o.delivery_id);
  d->set_message_id(o.message_id);
  d->set_project(handler.project);
  d->set_event(handler.event);
  d->set_handler_id(o.handler_id);
  d->set_handler_url(handler.url);
  d->set_status(dispatch::StatusAfter(o));
  d->set_attempt_count(o.attempt);
  d->set_last_status_code(o.status_code);
  d->set_last_error_class(error_class);
  if (o.decision.verdict == dispatch::Verdict::kRetry) {
    *d->mutable_next_attempt_time() = ToTimestamp(o.decision.next_attempt_time);
  }
  v1::Attempt* a = out.mutable_attempt();
  a->set_delivery_id(o.delivery_id);
  a->set_number(o.attempt);
  a->set_manual(o.manual);
  *a->mutable_start_time() = ToTimestamp(o.start_time);
  a->set_duration_us(o.duration_us);
  a->set_dns_us(o.dns_us);
  a->set_connect_us(o.connect_us);
  a->set_tls_us(o.tls_us);
  a->set_first_byte_us(o.first_byte_us);
  a->set_total_us(o.total_us);
  a->set_status_code(o.status_code);
  AppendStoredHeaders(o.request_headers, a->mutable_request_headers());
  AppendStoredHeaders(o.response_headers, a->mutable_response_headers());
  a->set_response_body(util::ToValidUtf8(o.response_body));
  a->set_error_class(error_class);
  a->set_error_message(o.error_message.empty() ? o.decision.reason
                                               : o.error_message);
  return out;
}

bool Matches(const TailHub::Filter& f, const store::CachedHandler& h) {
  return f.project == h.project &&
         (f.handler_id.empty() || f.handler_id == h.id) &&
         (f.event.empty() || f.event == h.event);
}

}  // namespace

void TailHub::Subscribe(Filter filter, std::shared_ptr<Stream> stream) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    stream->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                "the server is shutting down"));
    return;
  }
  RemoveClosedLocked();
  if (subscribers_.size() >= static_cast<size_t>(options_.max_streams)) {
    stream->Finish(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the limit of ", options_.max_streams,
                     " open tail streams (--max_tail_streams) is reached")));
    return;
  }
  subscribers_.push_back(Subscriber{std::move(filter), std::move(stream)});
  open_.store(static_cast<int>(subscribers_.size()));
}

void TailHub::Publish(const std::vector<dispatch::AttemptOutcome>& batch) {
  if (open_.load(std::memory_order_relaxed) == 0) return;
  auto catalog = catalog_->snapshot();
  absl::MutexLock lock(&mu_);
  RemoveClosedLocked();
  for (const dispatch::AttemptOutcome& o : batch) {
    if (!o.attempted) continue;
    auto handler = catalog->handlers_by_id.find(o.handler_id);
    if (handler == catalog->handlers_by_id.end()) continue;
    std::optional<v1::TailDeliveriesResponse> response;
    for (Subscriber& s : subscribers_) {
      if (!Matches(s.filter, *handler->second)) continue;
      if (!response) response = ToResponse(o, *handler->second);
      s.stream->Write(*response);
    }
  }
}

void TailHub::RemoveClosedLocked() {
  subscribers_.erase(
      std::remove_if(subscribers_.begin(), subscribers_.end(),
                     [](const Subscriber& s) { return !s.stream->open(); }),
      subscribers_.end());
  open_.store(static_cast<int>(subscribers_.size()));
}

void TailHub::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (Subscriber& s : subscribers_) {
    s.stream->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "the server is shutting down"));
  }
  subscribers_.clear();
  open_.store(0);
}

void AddTailMethod(CqServer& server, v1::DeliveryService::AsyncService* service,
                   const AdminDeps& deps, TailHub* hub) {
  using Service = v1::DeliveryService::AsyncService;
  server.AddServerStream<Service, v1::TailDeliveriesRequest,
                         v1::TailDeliveriesResponse>(
      service, &Service::RequestTailDeliveries,
      [deps, hub](grpc::ServerContext& ctx,
                  const v1::TailDeliveriesRequest& req,
                  std::shared_ptr<TailHub::Stream> stream) {
        auto fail = [&](const absl::Status& status) {
          stream->Finish(ToGrpcStatus(status));
        };
        if (absl::Status s = deps.auth
                                 ->Authorize(ctx, Access::kRead,
                                             "TailDeliveries", req.project())
                                 .status();
            !s.ok()) {
          return fail(s);
        }
        if (absl::Status s = util::ValidateName("project", req.project());
            !s.ok()) {
          return fail(s);
        }
        auto catalog = deps.catalog->snapshot();
        const store::CachedProject* project =
            catalog->FindProject(req.project());
        if (project == nullptr) {
          return fail(absl::NotFoundError(
              absl::StrCat("project \"", req.project(), "\" not found")));
        }
        if (!req.handler_id().empty()) {
          if (absl::Status s = util::ValidateUuid(
                  "handler_id", req.handler_id(),
                  "a handler id (a UUID as returned by CreateHandler)");
              !s.ok()) {
            return fail(s);
          }
          auto handler = catalog->handlers_by_id.find(req.handler_id());
          if (handler == catalog->handlers_by_id.end() ||
              handler->second->project_id != project->id) {
            return fail(absl::NotFoundError(absl::StrCat(
                "handler \"", req.handler_id(), "\" not found in project \"",
                req.project(), "\"")));
          }
        }
        if (!req.event().empty()) {
          if (absl::Status s = util::ValidateName("event", req.event());
              !s.ok()) {
            return fail(s);
          }
        }
        hub->Subscribe(
            TailHub::Filter{req.project(), req.handler_id(), req.event()},
            std::move(stream));
      },
      hub->options().max_stream_bytes);
}

}  // namespace rio::api
