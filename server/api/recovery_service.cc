// rio.v1.DeliveryService, the re-triggering half: Redeliver and the
// recovery jobs (RecoverFailed, GetRecovery, ListRecoveries,
// CancelRecovery).
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "server/api/admin.h"
#include "server/api/delivery_rows.h"
#include "server/store/recovery_store.h"
#include "server/util/status_macros.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using Service = v1::DeliveryService::AsyncService;
using google::protobuf::util::TimeUtil;

constexpr int kDefaultRatePerSecond = 100;
constexpr int kMaxRatePerSecond = 10000;

// The delivery as it stands (without its attempts).
absl::StatusOr<v1::Delivery> LoadDelivery(store::PgConnection& conn,
                                          const std::string& id) {
  RIO_ASSIGN_OR_RETURN(
      store::PgResult r,
      conn.Exec(absl::StrCat("SELECT ", kDeliveryColumns, " FROM deliveries d",
                             kDeliveryJoins, "WHERE d.id = $1"),
                {id}));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("delivery \"", id, "\" not found"));
  }
  v1::Delivery delivery;
  FillDelivery(r, 0, 0, &delivery);
  return delivery;
}

// Validates a RecoverFailed request against the catalog and turns it into a
// filter.
absl::StatusOr<store::RecoveryFilter> ToFilter(
    const v1::RecoverFailedRequest& req,
    const store::CatalogSnapshot& catalog) {
  RIO_RETURN_IF_ERROR(util::ValidateName("project", req.project()));
  const store::CachedProject* project = catalog.FindProject(req.project());
  if (project == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("project \"", req.project(), "\" not found"));
  }
  store::RecoveryFilter filter;
  filter.project_id = project->id;
  if (!req.handler_id().empty()) {
    RIO_RETURN_IF_ERROR(util::ValidateUuid(
        "handler_id", req.handler_id(),
        "a handler id (a UUID as returned by CreateHandler)"));
    auto handler = catalog.handlers_by_id.find(req.handler_id());
    if (handler == catalog.handlers_by_id.end() ||
        handler->second->project_id != project->id) {
      return absl::NotFoundError(absl::StrCat("handler \"", req.handler_id(),
                                              "\" not found in project \"",
                                              req.project(), "\""));
    }
    if (!handler->second->enabled) {
      return absl::FailedPreconditionError(absl::StrCat(
          "handler \"", req.handler_id(),
          "\" is disabled; enable it with UpdateHandler before recovering "
          "its deliveries"));
    }
    filter.handler_id = req.handler_id();
  }
  if (!req.event().empty()) {
    RIO_RETURN_IF_ERROR(util::ValidateName("event", req.event()));
    filter.event = req.event();
  }
  absl::Time now = absl::Now();
  if (req.has_since()) {
    filter.since =
        absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(req.since()));
  }
  filter.until =
      req.has_until()
          ? absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(req.until()))
          : now;
  if (filter.until > now) filter.until = now;
  if (filter.since && *filter.since >= filter.until) {
    return absl::InvalidArgumentError(
        "since must be earlier than until (and than now)");
  }
  if (req.rate_per_second() < 0 || req.rate_per_second() > kMaxRatePerSecond) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rate_per_second must be between 1 and ", kMaxRatePerSecond, " (got ",
        req.rate_per_second(), "); 0 means ", kDefaultRatePerSecond));
  }
  return filter;
}

// A call on one recovery job named by `id`: `act(conn, id)` answers it.
template <class Request>
void AddRecoveryByIdMethod(
    CqServer& server, Service* s,
    RequestUnaryFn<Service, Request, v1::Recovery> request,
    const RecoveryDeps& deps, Access access, const char* method,
    absl::StatusOr<v1::Recovery> (*act)(store::PgConnection&,
                                        const std::string&)) {
  server.AddUnary<Service, Request, v1::Recovery>(
      s, request,
      [deps, act, access, method](grpc::ServerContext& ctx, const Request& req,
                                  Reply<v1::Recovery> reply) {
        absl::StatusOr<Caller> caller =
            deps.admin.auth->Authorize(ctx, access, method);
        absl::Status status = caller.status();
        if (status.ok()) {
          status = util::ValidateUuid("id", req.id(),
                                      "a recovery id (a UUID as returned by "
                                      "RecoverFailed)");
        }
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps.admin, std::move(reply), /*writes=*/false,
            [id = req.id(), act, method, caller = *caller](
                store::PgConnection& conn) -> absl::StatusOr<v1::Recovery> {
              RIO_RETURN_IF_ERROR(CheckObject(
                  caller, conn, store::ObjectKind::kRecovery, id, method));
              return act(conn, id);
            });
      });
}

}  // namespace

void AddRecoveryMethods(CqServer& server, Service* s,
                        const RecoveryDeps& deps) {
  server.AddUnary<Service, v1::RedeliverRequest, v1::Delivery>(
      s, &Service::RequestRedeliver,
      [deps](grpc::ServerContext& ctx, const v1::RedeliverRequest& req,
             Reply<v1::Delivery> reply) {
        absl::StatusOr<Caller> caller =
            deps.admin.auth->Authorize(ctx, Access::kWrite, "Redeliver");
        absl::Status status = caller.status();
        if (status.ok()) {
          status = util::ValidateUuid("delivery_id", req.delivery_id(),
                                      "a delivery id (a UUID)");
        }
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps.admin, std::move(reply), /*writes=*/false,
            [req, deps, caller = *caller](
                store::PgConnection& conn) -> absl::StatusOr<v1::Delivery> {
              RIO_RETURN_IF_ERROR(CheckObject(caller, conn,
                                              store::ObjectKind::kDelivery,
                                              req.delivery_id(), "Redeliver"));
              RIO_RETURN_IF_ERROR(store::Redeliver(conn, req.delivery_id(),
                                                   deps.lease_timeout));
              return LoadDelivery(conn, req.delivery_id());
            });
      });

  server.AddUnary<Service, v1::RecoverFailedRequest, v1::Recovery>(
      s, &Service::RequestRecoverFailed,
      [deps](grpc::ServerContext& ctx, const v1::RecoverFailedRequest& req,
             Reply<v1::Recovery> reply) {
        // A dry run only counts.
        if (absl::Status s =
                deps.admin.auth
                    ->Authorize(ctx,
                                req.dry_run() ? Access::kRead : Access::kWrite,
                                "RecoverFailed", req.project())
                    .status();
            !s.ok()) {
          return reply(s);
        }
        auto filter = ToFilter(req, *deps.admin.catalog->snapshot());
        if (!filter.ok()) return reply(filter.status());
        int rate = req.rate_per_second() == 0 ? kDefaultRatePerSecond
                                              : req.rate_per_second();
        RunOnDatabase(
            deps.admin, std::move(reply), /*writes=*/false,
            [req, filter = *filter, rate,
             deps](store::PgConnection& conn) -> absl::StatusOr<v1::Recovery> {
              if (req.dry_run()) {
                RIO_ASSIGN_OR_RETURN(int64_t n,
                                     store::CountRecoverable(conn, filter));
                v1::Recovery recovery;
                recovery.set_project(req.project());
                recovery.set_handler_id(filter.handler_id);
                recovery.set_event(filter.event);
                if (req.has_since()) *recovery.mutable_since() = req.since();
                *recovery.mutable_until() = TimeUtil::MicrosecondsToTimestamp(
                    absl::ToUnixMicros(filter.until));
                recovery.set_rate_per_second(rate);
                recovery.set_matched(n);
                return recovery;
              }
              RIO_ASSIGN_OR_RETURN(v1::Recovery recovery,
                                   store::CreateRecovery(conn, filter, rate));
              if (deps.scheduler != nullptr) deps.scheduler->PokeRecoveries();
              return recovery;
            });
      });

  AddRecoveryByIdMethod<v1::GetRecoveryRequest>(
      server, s, &Service::RequestGetRecovery, deps, Access::kRead,
      "GetRecovery", &store::GetRecovery);

  server
      .AddUnary<Service, v1::ListRecoveriesRequest, v1::ListRecoveriesResponse>(
          s, &Service::RequestListRecoveries,
          [deps](grpc::ServerContext& ctx, const v1::ListRecoveriesRequest& req,
                 Reply<v1::ListRecoveriesResponse> reply) {
            absl::Status status =
                deps.admin.auth
                    ->Authorize(ctx, Access::kRead, "ListRecoveries",
                                req.project())
                    .status();
            if (status.ok())
              status = util::ValidateName("project", req.project());
            if (!status.ok()) return reply(status);
            const store::CachedProject* project =
                deps.admin.catalog->snapshot()->FindProject(req.project());
            if (project == nullptr) {
              return reply(absl::NotFoundError(
                  absl::StrCat("project \"", req.project(), "\" not found")));
            }
            RunOnDatabase(deps.admin, std::move(reply), /*writes=*/false,
                          [project_id = project->id](store::PgConnection& conn)
                              -> absl::StatusOr<v1::ListRecoveriesResponse> {
                            RIO_ASSIGN_OR_RETURN(
                                auto recoveries,
                                store::ListRecoveries(conn, project_id));
                            v1::ListRecoveriesResponse response;
                            for (auto& r : recoveries) {
                              *response.add_recoveries() = std::move(r);
                            }
                            return response;
                          });
          });

  AddRecoveryByIdMethod<v1::CancelRecoveryRequest>(
      server, s, &Service::RequestCancelRecovery, deps, Access::kWrite,
      "CancelRecovery", &store::CancelRecovery);
}

}  // namespace rio::api
