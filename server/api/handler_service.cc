// rio.v1.HandlerService: webhooks registered for a project's events.
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "server/api/admin.h"
#include "server/store/catalog_store.h"
#include "server/store/handler_secrets.h"
#include "server/util/crypto.h"
#include "server/util/status_macros.h"
#include "server/util/tls_files.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using google::protobuf::Empty;
using Service = v1::HandlerService::AsyncService;

constexpr int kDefaultTimeoutMs = 15000;
constexpr int64_t kDefaultPreviousSecretTtlSeconds = 86400;
constexpr int64_t kMaxPreviousSecretTtlSeconds = 30 * 86400;

// Standard Webhooks secrets: "whsec_" + base64 of 32 random bytes.
std::string NewSigningSecret() {
  return absl::StrCat("whsec_", util::Base64Encode(util::RandomBytes(32)));
}

absl::Status ValidateHandlerId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("id is required");
  bool ok = id.size() == 36;
  for (size_t i = 0; ok && i < id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    ok = dash ? id[i] == '-'
              : absl::ascii_isxdigit(static_cast<unsigned char>(id[i]));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("id \"", id.substr(0, 64),
                     "\" is not a handler id (a UUID as returned by "
                     "CreateHandler)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateMethod(int method) {
  if (!v1::Handler::Method_IsValid(method)) {
    return absl::InvalidArgumentError(
        absl::StrCat("method must be POST, PUT or GET (got ", method, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateContentType(int type) {
  if (!v1::Handler::ContentType_IsValid(type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("content_type must be FORM or JSON (got ", type, ")"));
  }
  return absl::OkStatus();
}

// GET carries the payload in the query string, so only FORM fits it.
absl::Status ValidateMethodAndType(v1::Handler::Method method,
                                   v1::Handler::ContentType type) {
  if (method == v1::Handler::GET && type == v1::Handler::JSON) {
    return absl::InvalidArgumentError(
        "content_type JSON needs method POST or PUT (GET sends the payload "
        "fields in the query string)");
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> HeaderMap(
    const google::protobuf::Map<std::string, std::string>& headers) {
  return {headers.begin(), headers.end()};
}

// The URL's form, then whether this server may call it.
absl::Status ValidateUrl(const AdminDeps& deps, absl::string_view url) {
  RIO_RETURN_IF_ERROR(util::ValidateWebhookUrl("url", url));
  if (deps.egress == nullptr) return absl::OkStatus();
  return deps.egress->CheckUrl("url", url);
}

// A client certificate and key given together (`update`: in UpdateHandler,
// where both empty removes them and a masked key keeps the stored one, which
// the store checks against the certificate).
absl::Status ValidateClientCertificate(const std::string& certificate,
                                       const std::string& key, bool update) {
  if (certificate.empty() && key.empty()) return absl::OkStatus();
  const bool masked = key == store::kMaskedValue;
  if (masked && !update) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_key is the masked value ", store::kMaskedValue,
        ", which only UpdateHandler accepts (to keep a stored key); give the "
        "PEM private key"));
  }
  if (certificate.empty()) {
    if (masked) return absl::OkStatus();  // removes both
    return absl::InvalidArgumentError(
        "client_key needs a client_certificate (both empty removes them)");
  }
  if (key.empty()) {
    return absl::InvalidArgumentError(
        "client_certificate needs its client_key (the PEM private key)");
  }
  if (masked) return absl::OkStatus();
  return util::CheckCertifiedKey(certificate, key, "client_certificate",
                                 "client_key")
      .status();
}

absl::Status ValidateCreate(const AdminDeps& deps,
                            const v1::CreateHandlerRequest& req) {
  RIO_RETURN_IF_ERROR(util::ValidateName("project", req.project()));
  RIO_RETURN_IF_ERROR(util::ValidateName("event", req.event()));
  RIO_RETURN_IF_ERROR(ValidateUrl(deps, req.url()));
  RIO_RETURN_IF_ERROR(ValidateMethod(req.method()));
  RIO_RETURN_IF_ERROR(ValidateContentType(req.content_type()));
  if (req.timeout_ms() != 0) {
    RIO_RETURN_IF_ERROR(
        util::ValidateTimeoutMs("timeout_ms", req.timeout_ms()));
  }
  RIO_RETURN_IF_ERROR(ValidateClientCertificate(
      req.client_certificate(), req.client_key(), /*update=*/false));
  return util::ValidateHeaders("headers", HeaderMap(req.headers()));
}

absl::Status ValidateUpdate(const AdminDeps& deps,
                            const v1::UpdateHandlerRequest& req) {
  RIO_RETURN_IF_ERROR(ValidateHandlerId(req.id()));
  if (req.has_event()) {
    RIO_RETURN_IF_ERROR(util::ValidateName("event", req.event()));
  }
  if (req.has_url()) RIO_RETURN_IF_ERROR(ValidateUrl(deps, req.url()));
  if (req.has_method()) RIO_RETURN_IF_ERROR(ValidateMethod(req.method()));
  if (req.has_content_type()) {
    RIO_RETURN_IF_ERROR(ValidateContentType(req.content_type()));
  }
  if (req.has_timeout_ms()) {
    RIO_RETURN_IF_ERROR(
        util::ValidateTimeoutMs("timeout_ms", req.timeout_ms()));
  }
  if (req.clear_headers() && !req.headers().empty()) {
    return absl::InvalidArgumentError(
        "clear_headers and headers may not be combined");
  }
  if (req.has_client_certificate() != req.has_client_key()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client_certificate and client_key are set together (a client_key "
        "of ",
        store::kMaskedValue,
        " keeps the stored key; both empty removes them)"));
  }
  if (req.has_client_certificate()) {
    RIO_RETURN_IF_ERROR(ValidateClientCertificate(
        req.client_certificate(), req.client_key(), /*update=*/true));
  }
  return util::ValidateHeaders("headers", HeaderMap(req.headers()));
}

}  // namespace

std::unique_ptr<grpc::Service> RegisterHandlerService(CqServer& server,
                                                      const AdminDeps& deps) {
  auto service = std::make_unique<Service>();
  Service* s = service.get();

  server.AddUnary<Service, v1::CreateHandlerRequest, v1::Handler>(
      s, &Service::RequestCreateHandler,
      [deps](grpc::ServerContext& ctx, const v1::CreateHandlerRequest& req,
             Reply<v1::Handler> reply) {
        absl::Status status =
            deps.auth
                ->Authorize(ctx, Access::kWrite, "CreateHandler", req.project())
                .status();
        if (status.ok()) status = ValidateCreate(deps, req);
        v1::Handler handler;
        handler.set_method(req.method() == v1::Handler::METHOD_UNSPECIFIED
                               ? v1::Handler::POST
                               : req.method());
        handler.set_content_type(req.content_type() ==
                                         v1::Handler::CONTENT_TYPE_UNSPECIFIED
                                     ? v1::Handler::FORM
                                     : req.content_type());
        if (status.ok()) {
          status =
              ValidateMethodAndType(handler.method(), handler.content_type());
        }
        if (!status.ok()) return reply(status);
        handler.set_id(util::RandomUuid());
        handler.set_project(req.project());
        handler.set_event(req.event());
        handler.set_url(req.url());
        *handler.mutable_headers() = req.headers();
        handler.set_client_certificate(req.client_certificate());
        handler.set_client_key(req.client_key());
        handler.set_timeout_ms(req.timeout_ms() == 0 ? kDefaultTimeoutMs
                                                     : req.timeout_ms());
        handler.set_enabled(!req.has_enabled() || req.enabled());
        if (!handler.enabled()) {
          handler.set_disabled_reason("created disabled");
        }
        handler.set_secret(NewSigningSecret());
        RunOnDatabase(deps, std::move(reply), /*writes=*/true,
                      [handler, secrets = &deps.catalog->secrets()](
                          store::PgConnection& conn) {
                        return store::CreateHandler(conn, *secrets, handler);
                      });
      });

  server.AddUnary<Service, v1::GetHandlerRequest, v1::Handler>(
      s, &Service::RequestGetHandler,
      [deps](grpc::ServerContext& ctx, const v1::GetHandlerRequest& req,
             Reply<v1::Handler> reply) {
        absl::StatusOr<Caller> caller =
            deps.auth->Authorize(ctx, Access::kRead, "GetHandler");
        absl::Status status = caller.status();
        if (status.ok()) status = ValidateHandlerId(req.id());
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/false,
            [id = req.id(), caller = *caller](
                store::PgConnection& conn) -> absl::StatusOr<v1::Handler> {
              RIO_ASSIGN_OR_RETURN(v1::Handler handler,
                                   store::GetHandler(conn, id));
              RIO_RETURN_IF_ERROR(caller.PermitsObject("GetHandler", "handler",
                                                       id, handler.project()));
              return handler;
            });
      });

  server.AddUnary<Service, v1::ListHandlersRequest, v1::ListHandlersResponse>(
      s, &Service::RequestListHandlers,
      [deps](grpc::ServerContext& ctx, const v1::ListHandlersRequest& req,
             Reply<v1::ListHandlersResponse> reply) {
        absl::Status status =
            deps.auth
                ->Authorize(ctx, Access::kRead, "ListHandlers", req.project())
                .status();
        if (status.ok()) status = util::ValidateName("project", req.project());
        if (status.ok() && !req.event().empty()) {
          status = util::ValidateName("event", req.event());
        }
        if (!status.ok()) return reply(status);
        RunOnDatabase(deps, std::move(reply), /*writes=*/false,
                      [project = req.project(),
                       event = req.event()](store::PgConnection& conn)
                          -> absl::StatusOr<v1::ListHandlersResponse> {
                        RIO_ASSIGN_OR_RETURN(
                            auto handlers,
                            store::ListHandlers(conn, project, event));
                        v1::ListHandlersResponse response;
                        for (auto& h : handlers)
                          *response.add_handlers() = std::move(h);
                        return response;
                      });
      });

  server.AddUnary<Service, v1::UpdateHandlerRequest, v1::Handler>(
      s, &Service::RequestUpdateHandler,
      [deps](grpc::ServerContext& ctx, const v1::UpdateHandlerRequest& req,
             Reply<v1::Handler> reply) {
        absl::StatusOr<Caller> caller =
            deps.auth->Authorize(ctx, Access::kWrite, "UpdateHandler");
        absl::Status status = caller.status();
        if (status.ok()) status = ValidateUpdate(deps, req);
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [req, secrets = &deps.catalog->secrets(), caller = *caller](
                store::PgConnection& conn) -> absl::StatusOr<v1::Handler> {
              // The method/content type pair is checked against the stored
              // row, inside the same transaction as the update.
              absl::StatusOr<v1::Handler> updated;
              absl::Status status = conn.InTransaction([&]() -> absl::Status {
                RIO_ASSIGN_OR_RETURN(v1::Handler current,
                                     store::GetHandler(conn, req.id()));
                RIO_RETURN_IF_ERROR(caller.PermitsObject(
                    "UpdateHandler", "handler", req.id(), current.project()));
                RIO_RETURN_IF_ERROR(ValidateMethodAndType(
                    req.has_method() ? req.method() : current.method(),
                    req.has_content_type() ? req.content_type()
                                           : current.content_type()));
                updated = store::UpdateHandler(conn, *secrets, req);
                return updated.status();
              });
              RIO_RETURN_IF_ERROR(status);
              return updated;
            });
      });

  server.AddUnary<Service, v1::DeleteHandlerRequest, Empty>(
      s, &Service::RequestDeleteHandler,
      [deps](grpc::ServerContext& ctx, const v1::DeleteHandlerRequest& req,
             Reply<Empty> reply) {
        absl::StatusOr<Caller> caller =
            deps.auth->Authorize(ctx, Access::kWrite, "DeleteHandler");
        absl::Status status = caller.status();
        if (status.ok()) status = ValidateHandlerId(req.id());
        if (!status.ok()) return reply(status);
        RunOnDatabase(deps, std::move(reply), /*writes=*/true,
                      [id = req.id(), caller = *caller](
                          store::PgConnection& conn) -> absl::StatusOr<Empty> {
                        RIO_RETURN_IF_ERROR(CheckObject(
                            caller, conn, store::ObjectKind::kHandler, id,
                            "DeleteHandler"));
                        RIO_RETURN_IF_ERROR(store::DeleteHandler(conn, id));
                        return Empty();
                      });
      });

  server.AddUnary<Service, v1::RotateHandlerSecretRequest, v1::Handler>(
      s, &Service::RequestRotateHandlerSecret,
      [deps](grpc::ServerContext& ctx,
             const v1::RotateHandlerSecretRequest& req,
             Reply<v1::Handler> reply) {
        absl::StatusOr<Caller> caller =
            deps.auth->Authorize(ctx, Access::kWrite, "RotateHandlerSecret");
        absl::Status status = caller.status();
        if (status.ok()) status = ValidateHandlerId(req.id());
        int64_t ttl = req.previous_secret_ttl_seconds();
        if (status.ok() && (ttl < 0 || ttl > kMaxPreviousSecretTtlSeconds)) {
          status = absl::InvalidArgumentError(
              absl::StrCat("previous_secret_ttl_seconds must be between 0 and ",
                           kMaxPreviousSecretTtlSeconds, " (got ", ttl, ")"));
        }
        if (status.ok() && req.expire_previous() && ttl != 0) {
          status = absl::InvalidArgumentError(
              "expire_previous and previous_secret_ttl_seconds may not be "
              "combined");
        }
        if (!status.ok()) return reply(status);
        if (ttl == 0) ttl = kDefaultPreviousSecretTtlSeconds;
        absl::Duration keep =
            req.expire_previous() ? absl::ZeroDuration() : absl::Seconds(ttl);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [id = req.id(), keep, secrets = &deps.catalog->secrets(),
             caller = *caller](
                store::PgConnection& conn) -> absl::StatusOr<v1::Handler> {
              RIO_RETURN_IF_ERROR(CheckObject(caller, conn,
                                              store::ObjectKind::kHandler, id,
                                              "RotateHandlerSecret"));
              return store::RotateHandlerSecret(conn, *secrets, id,
                                                NewSigningSecret(), keep);
            });
      });

  server.RegisterService(s);
  return service;
}

}  // namespace rio::api
