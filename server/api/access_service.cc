// rio.v1.AccessService: scoped access tokens for the admin services.
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/util/time_util.h"
#include "rio/v1/access.grpc.pb.h"
#include "server/api/admin.h"
#include "server/util/status_macros.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using google::protobuf::Empty;
using google::protobuf::util::TimeUtil;
using Service = v1::AccessService::AsyncService;

absl::Status ValidateCreate(const v1::CreateAccessTokenRequest& req) {
  RIO_RETURN_IF_ERROR(util::ValidateName("name", req.name()));
  if (req.name() == kBootstrapCallerName) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name \"", kBootstrapCallerName, "\" is reserved for the admin token"));
  }
  switch (req.scope()) {
    case v1::AccessToken::ADMIN:
      if (!req.project().empty()) {
        return absl::InvalidArgumentError(
            "project may not be set for scope ADMIN (it covers every "
            "project); use PROJECT_ADMIN for one project");
      }
      break;
    case v1::AccessToken::PROJECT_ADMIN:
      if (req.project().empty()) {
        return absl::InvalidArgumentError(
            "project is required for scope PROJECT_ADMIN");
      }
      break;
    case v1::AccessToken::READ_ONLY:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("scope must be ADMIN, PROJECT_ADMIN or READ_ONLY (got ",
                       static_cast<int>(req.scope()), ")"));
  }
  if (!req.project().empty()) {
    RIO_RETURN_IF_ERROR(util::ValidateName("project", req.project()));
  }
  if (req.has_expire_time()) {
    const auto& t = req.expire_time();
    if (t.seconds() < TimeUtil::kTimestampMinSeconds ||
        t.seconds() > TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
        t.nanos() > 999999999) {
      return absl::InvalidArgumentError("expire_time is not a valid time");
    }
    const absl::Time expire = absl::FromUnixMicros(
        TimeUtil::TimestampToMicroseconds(req.expire_time()));
    if (expire <= absl::Now()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expire_time must be in the future (got ",
          absl::FormatTime(absl::RFC3339_sec, expire, absl::UTCTimeZone()),
          ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckObject(const Caller& caller, store::PgConnection& conn,
                         store::ObjectKind kind, const std::string& id,
                         absl::string_view method) {
  if (!caller.limited_to_project()) return absl::OkStatus();
  RIO_ASSIGN_OR_RETURN(std::string owner, store::OwningProject(conn, kind, id));
  return caller.PermitsObject(method, store::ObjectKindName(kind), id, owner);
}

std::unique_ptr<grpc::Service> RegisterAccessService(CqServer& server,
                                                     const AdminDeps& deps) {
  auto service = std::make_unique<Service>();
  Service* s = service.get();

  server.AddUnary<Service, v1::CreateAccessTokenRequest,
                  v1::CreateAccessTokenResponse>(
      s, &Service::RequestCreateAccessToken,
      [deps](grpc::ServerContext& ctx, const v1::CreateAccessTokenRequest& req,
             Reply<v1::CreateAccessTokenResponse> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kInstall, "CreateAccessToken")
                .status();
        if (status.ok()) status = ValidateCreate(req);
        if (!status.ok()) return reply(status);
        v1::AccessToken token;
        token.set_name(req.name());
        token.set_scope(req.scope());
        token.set_project(req.project());
        if (req.has_expire_time()) {
          *token.mutable_expire_time() = req.expire_time();
        }
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [token](store::PgConnection& conn)
                -> absl::StatusOr<v1::CreateAccessTokenResponse> {
              std::string secret = absl::StrCat(kAccessTokenPrefix, NewToken());
              v1::CreateAccessTokenResponse response;
              RIO_ASSIGN_OR_RETURN(
                  *response.mutable_access_token(),
                  store::CreateAccessToken(conn, token, TokenHash(secret)));
              response.set_token(std::move(secret));
              return response;
            });
      });

  server.AddUnary<Service, v1::ListAccessTokensRequest,
                  v1::ListAccessTokensResponse>(
      s, &Service::RequestListAccessTokens,
      [deps](grpc::ServerContext& ctx, const v1::ListAccessTokensRequest&,
             Reply<v1::ListAccessTokensResponse> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kInstall, "ListAccessTokens")
                .status();
        if (!status.ok()) return reply(status);
        RunOnDatabase(deps, std::move(reply), /*writes=*/false,
                      [](store::PgConnection& conn)
                          -> absl::StatusOr<v1::ListAccessTokensResponse> {
                        RIO_ASSIGN_OR_RETURN(auto tokens,
                                             store::ListAccessTokens(conn));
                        v1::ListAccessTokensResponse response;
                        for (auto& t : tokens) {
                          *response.add_access_tokens() = std::move(t);
                        }
                        return response;
                      });
      });

  server.AddUnary<Service, v1::RevokeAccessTokenRequest, Empty>(
      s, &Service::RequestRevokeAccessToken,
      [deps](grpc::ServerContext& ctx, const v1::RevokeAccessTokenRequest& req,
             Reply<Empty> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kInstall, "RevokeAccessToken")
                .status();
        if (status.ok()) status = util::ValidateName("name", req.name());
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [name = req.name()](
                store::PgConnection& conn) -> absl::StatusOr<Empty> {
              RIO_RETURN_IF_ERROR(store::RevokeAccessToken(conn, name));
              return Empty();
            });
      });

  server.AddUnary<Service, v1::GetCallerRequest, v1::AccessToken>(
      s, &Service::RequestGetCaller,
      [deps](grpc::ServerContext& ctx, const v1::GetCallerRequest&,
             Reply<v1::AccessToken> reply) {
        absl::StatusOr<Caller> caller =
            deps.auth->Authorize(ctx, Access::kRead, "GetCaller");
        if (!caller.ok()) return reply(caller.status());
        v1::AccessToken token;
        token.set_name(caller->name);
        token.set_scope(caller->scope);
        token.set_project(caller->project);
        reply(token);
      });

  server.RegisterService(s);
  return service;
}

}  // namespace rio::api
