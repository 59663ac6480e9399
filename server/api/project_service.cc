// rio.v1.ProjectService: projects and their senders.
#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/api/admin.h"
#include "server/api/project_page_token.h"
#include "server/store/catalog_store.h"
#include "server/util/crypto.h"
#include "server/util/status_macros.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using google::protobuf::Empty;
using Service = v1::ProjectService::AsyncService;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;

}  // namespace

std::unique_ptr<grpc::Service> RegisterProjectService(CqServer& server,
                                                      const AdminDeps& deps) {
  auto service = std::make_unique<Service>();
  Service* s = service.get();

  server.AddUnary<Service, v1::CreateProjectRequest, v1::Project>(
      s, &Service::RequestCreateProject,
      [deps](grpc::ServerContext& ctx, const v1::CreateProjectRequest& req,
             Reply<v1::Project> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kInstall, "CreateProject")
                .status();
        if (status.ok()) status = util::ValidateName("slug", req.slug());
        if (status.ok()) status = util::ValidateDisplayName("name", req.name());
        if (!status.ok()) return reply(status);
        std::string name = req.name().empty() ? req.slug() : req.name();
        RunOnDatabase(deps, std::move(reply), /*writes=*/true,
                      [slug = req.slug(), name](store::PgConnection& conn) {
                        return store::CreateProject(conn, slug, name);
                      });
      });

  server.AddUnary<Service, v1::GetProjectRequest, v1::Project>(
      s, &Service::RequestGetProject,
      [deps](grpc::ServerContext& ctx, const v1::GetProjectRequest& req,
             Reply<v1::Project> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kRead, "GetProject", req.slug())
                .status();
        if (status.ok()) status = util::ValidateName("slug", req.slug());
        if (!status.ok()) return reply(status);
        RunOnDatabase(deps, std::move(reply), /*writes=*/false,
                      [slug = req.slug()](store::PgConnection& conn) {
                        return store::GetProject(conn, slug);
                      });
      });

  server.AddUnary<Service, v1::ListProjectsRequest, v1::ListProjectsResponse>(
      s, &Service::RequestListProjects,
      [deps](grpc::ServerContext& ctx, const v1::ListProjectsRequest& req,
             Reply<v1::ListProjectsResponse> reply) {
        absl::StatusOr<Caller> caller =
            deps.auth->Authorize(ctx, Access::kRead, "ListProjects");
        absl::Status status = caller.status();
        if (status.ok() && req.page_size() < 0) {
          status = absl::InvalidArgumentError(absl::StrCat(
              "page_size must not be negative (got ", req.page_size(), ")"));
        }
        absl::StatusOr<std::string> after =
            DecodeProjectPageToken(req.page_token());
        if (status.ok()) status = after.status();
        if (!status.ok()) return reply(status);
        int limit = req.page_size() == 0
                        ? kDefaultPageSize
                        : std::min(req.page_size(), kMaxPageSize);
        RunOnDatabase(deps, std::move(reply), /*writes=*/false,
                      [after = *after, limit,
                       only = caller->project](store::PgConnection& conn)
                          -> absl::StatusOr<v1::ListProjectsResponse> {
                        // A token limited to one project sees that one.
                        if (!only.empty()) {
                          v1::ListProjectsResponse page;
                          if (only <= after) return page;
                          RIO_ASSIGN_OR_RETURN(*page.add_projects(),
                                               store::GetProject(conn, only));
                          return page;
                        }
                        RIO_ASSIGN_OR_RETURN(
                            auto page, store::ListProjects(conn, after, limit));
                        if (!page.next_page_token().empty()) {
                          page.set_next_page_token(
                              EncodeProjectPageToken(page.next_page_token()));
                        }
                        return page;
                      });
      });

  server.AddUnary<Service, v1::UpdateProjectRequest, v1::Project>(
      s, &Service::RequestUpdateProject,
      [deps](grpc::ServerContext& ctx, const v1::UpdateProjectRequest& req,
             Reply<v1::Project> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kInstall, "UpdateProject")
                .status();
        if (status.ok()) status = util::ValidateName("slug", req.slug());
        if (status.ok() && req.name().empty()) {
          status = absl::InvalidArgumentError("name is required");
        }
        if (status.ok()) status = util::ValidateDisplayName("name", req.name());
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [slug = req.slug(), name = req.name()](store::PgConnection& conn) {
              return store::UpdateProject(conn, slug, name);
            });
      });

  server.AddUnary<Service, v1::DeleteProjectRequest, Empty>(
      s, &Service::RequestDeleteProject,
      [deps](grpc::ServerContext& ctx, const v1::DeleteProjectRequest& req,
             Reply<Empty> reply) {
        absl::Status status =
            deps.auth->Authorize(ctx, Access::kInstall, "DeleteProject")
                .status();
        if (status.ok()) status = util::ValidateName("slug", req.slug());
        if (!status.ok()) return reply(status);
        RunOnDatabase(deps, std::move(reply), /*writes=*/true,
                      [slug = req.slug()](
                          store::PgConnection& conn) -> absl::StatusOr<Empty> {
                        RIO_RETURN_IF_ERROR(store::DeleteProject(conn, slug));
                        return Empty();
                      });
      });

  server.AddUnary<Service, v1::CreateSenderRequest, v1::CreateSenderResponse>(
      s, &Service::RequestCreateSender,
      [deps](grpc::ServerContext& ctx, const v1::CreateSenderRequest& req,
             Reply<v1::CreateSenderResponse> reply) {
        absl::Status status =
            deps.auth
                ->Authorize(ctx, Access::kWrite, "CreateSender", req.project())
                .status();
        if (status.ok()) status = util::ValidateName("project", req.project());
        if (status.ok()) status = util::ValidateName("name", req.name());
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [project = req.project(), name = req.name(),
             address = deps.public_address->Get(),
             scheme =
                 deps.public_address->DsnScheme()](store::PgConnection& conn)
                -> absl::StatusOr<v1::CreateSenderResponse> {
              std::string token = NewToken();
              v1::CreateSenderResponse response;
              RIO_ASSIGN_OR_RETURN(
                  *response.mutable_sender(),
                  store::CreateSender(conn, project, name, TokenHash(token)));
              response.set_dsn(absl::StrCat(scheme, "://", name, ":", token,
                                            "@", address, "/", project));
              response.set_token(std::move(token));
              return response;
            });
      });

  server.AddUnary<Service, v1::ListSendersRequest, v1::ListSendersResponse>(
      s, &Service::RequestListSenders,
      [deps](grpc::ServerContext& ctx, const v1::ListSendersRequest& req,
             Reply<v1::ListSendersResponse> reply) {
        absl::Status status =
            deps.auth
                ->Authorize(ctx, Access::kRead, "ListSenders", req.project())
                .status();
        if (status.ok()) status = util::ValidateName("project", req.project());
        if (!status.ok()) return reply(status);
        RunOnDatabase(deps, std::move(reply), /*writes=*/false,
                      [project = req.project()](store::PgConnection& conn)
                          -> absl::StatusOr<v1::ListSendersResponse> {
                        RIO_ASSIGN_OR_RETURN(auto senders,
                                             store::ListSenders(conn, project));
                        v1::ListSendersResponse response;
                        for (auto& sender : senders) {
                          *response.add_senders() = std::move(sender);
                        }
                        return response;
                      });
      });

  server.AddUnary<Service, v1::DeleteSenderRequest, Empty>(
      s, &Service::RequestDeleteSender,
      [deps](grpc::ServerContext& ctx, const v1::DeleteSenderRequest& req,
             Reply<Empty> reply) {
        absl::Status status =
            deps.auth
                ->Authorize(ctx, Access::kWrite, "DeleteSender", req.project())
                .status();
        if (status.ok()) status = util::ValidateName("project", req.project());
        if (status.ok()) status = util::ValidateName("name", req.name());
        if (!status.ok()) return reply(status);
        RunOnDatabase(
            deps, std::move(reply), /*writes=*/true,
            [project = req.project(), name = req.name()](
                store::PgConnection& conn) -> absl::StatusOr<Empty> {
              RIO_RETURN_IF_ERROR(store::DeleteSender(conn, project, name));
              return Empty();
            });
      });

  server.RegisterService(s);
  return service;
}

}  // namespace rio::api
