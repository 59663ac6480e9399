// Queries for the administration of projects, senders and handlers. Inputs
// are validated by the caller (api/); these functions only map database
// outcomes to statuses a user can read: NOT_FOUND and ALREADY_EXISTS name the
// object, UNAVAILABLE means the database could not be reached.
//
// Each function runs in its own transaction on the given connection.
#ifndef RIO_SERVER_STORE_CATALOG_STORE_H_
#define RIO_SERVER_STORE_CATALOG_STORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rio/v1/handler.pb.h"
#include "rio/v1/project.pb.h"
#include "server/store/handler_secrets.h"
#include "server/store/pg.h"

namespace rio::store {

absl::StatusOr<v1::Project> CreateProject(PgConnection& conn,
                                          const std::string& slug,
                                          const std::string& name);
absl::StatusOr<v1::Project> GetProject(PgConnection& conn,
                                       const std::string& slug);
// Projects with slug > `after`, in slug order, at most `limit`;
// next_page_token is the last slug when more follow (the caller encodes it).
absl::StatusOr<v1::ListProjectsResponse> ListProjects(PgConnection& conn,
                                                      const std::string& after,
                                                      int limit);
absl::StatusOr<v1::Project> UpdateProject(PgConnection& conn,
                                          const std::string& slug,
                                          const std::string& name);
absl::Status DeleteProject(PgConnection& conn, const std::string& slug);

// Stores only `token_hash` (SHA-256 of the token).
absl::StatusOr<v1::Sender> CreateSender(PgConnection& conn,
                                        const std::string& project,
                                        const std::string& name,
                                        const std::string& token_hash);
absl::StatusOr<std::vector<v1::Sender>> ListSenders(PgConnection& conn,
                                                    const std::string& project);
absl::Status DeleteSender(PgConnection& conn, const std::string& project,
                          const std::string& name);

// Handlers' signing secrets and header values are stored as `secrets` says
// (sealed, or plaintext without a key). Replies never carry a stored secret,
// and carry header names with kMaskedValue for each value.

// Inserts `handler` as given (id and secret chosen by the caller); returns
// the stored row with the given secret.
absl::StatusOr<v1::Handler> CreateHandler(PgConnection& conn,
                                          const HandlerSecrets& secrets,
                                          const v1::Handler& handler);
absl::StatusOr<v1::Handler> GetHandler(PgConnection& conn,
                                       const std::string& id);
// All handlers of `project` (of `event` when not empty), by event then time.
absl::StatusOr<std::vector<v1::Handler>> ListHandlers(
    PgConnection& conn, const std::string& project, const std::string& event);
// Changes the fields present in `update`. A header whose value is
// kMaskedValue keeps its stored value (INVALID_ARGUMENT when there is none).
absl::StatusOr<v1::Handler> UpdateHandler(
    PgConnection& conn, const HandlerSecrets& secrets,
    const v1::UpdateHandlerRequest& update);
absl::Status DeleteHandler(PgConnection& conn, const std::string& id);
// Makes `new_secret` current; the old one keeps signing for
// `previous_ttl` (zero: not at all). Returns the handler with the new secret.
absl::StatusOr<v1::Handler> RotateHandlerSecret(PgConnection& conn,
                                                const HandlerSecrets& secrets,
                                                const std::string& id,
                                                const std::string& new_secret,
                                                absl::Duration previous_ttl);

// Method and content type names as stored ("POST", "FORM", ...).
std::string MethodName(v1::Handler::Method method);
std::string ContentTypeName(v1::Handler::ContentType type);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_CATALOG_STORE_H_
