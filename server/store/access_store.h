// Access tokens in PostgreSQL (the catalog loads them for checking), and the
// lookup of the project an object belongs to, for tokens limited to one
// project.
#ifndef RIO_SERVER_STORE_ACCESS_STORE_H_
#define RIO_SERVER_STORE_ACCESS_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rio/v1/access.pb.h"
#include "server/store/pg.h"

namespace rio::store {

// Inserts `token` (name, scope, project, expire_time) with the hash of its
// secret. ALREADY_EXISTS when the name is taken, NOT_FOUND when the project
// does not exist.
absl::StatusOr<v1::AccessToken> CreateAccessToken(
    PgConnection& conn, const v1::AccessToken& token,
    const std::string& token_hash);
absl::StatusOr<std::vector<v1::AccessToken>> ListAccessTokens(
    PgConnection& conn);
// NOT_FOUND when there is no token of that name.
absl::Status RevokeAccessToken(PgConnection& conn, const std::string& name);

// Objects addressed by id in the admin services.
enum class ObjectKind { kHandler, kDelivery, kMessage, kRecovery };
const char* ObjectKindName(ObjectKind kind);  // "handler", ...

// The slug of the project the object belongs to; NOT_FOUND naming the
// object when there is none.
absl::StatusOr<std::string> OwningProject(PgConnection& conn, ObjectKind kind,
                                          const std::string& id);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_ACCESS_STORE_H_
