// Authentication of callers from gRPC metadata, and what they may do. Admin
// calls carry `authorization: Bearer <token>`, the token being the bootstrap
// admin token or an access token (rio.v1.AccessService) with a scope;
// senders carry `authorization: Basic base64(<sender>:<token>)`. Secrets
// are compared as SHA-256 digests (the bootstrap token in constant time;
// access and sender tokens, 256 random bits each, are looked up by hash).
// Thread-safe.
#ifndef RIO_SERVER_API_AUTH_H_
#define RIO_SERVER_API_AUTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "rio/v1/access.pb.h"

namespace rio::store {
class Catalog;
}  // namespace rio::store

namespace rio::api {

// The `authorization` metadata value, or "" when absent.
std::string AuthorizationHeader(const grpc::ServerContext& context);

using Scope = v1::AccessToken::Scope;

// What an admin call needs of its caller.
enum class Access {
  kRead,     // to read a project's resources
  kWrite,    // to change them, or re-trigger deliveries
  kInstall,  // installation-wide: projects themselves, access tokens
};

// The name used for the bootstrap admin token in replies and messages.
inline constexpr char kBootstrapCallerName[] = "bootstrap";

// Who is calling, as far as authorization goes.
struct Caller {
  std::string name;  // the access token's name, or kBootstrapCallerName
  Scope scope = v1::AccessToken::ADMIN;
  std::string project;  // the one project it may touch; empty: all

  bool limited_to_project() const { return !project.empty(); }

  // OK when the caller may call `method`, which needs `access` to
  // `project` (empty: the call names no project, e.g. one addressing an
  // object by id, whose project is checked with PermitsObject).
  // PERMISSION_DENIED naming the token, its scope and what is missing.
  absl::Status Permits(Access access, absl::string_view method,
                       absl::string_view project = {}) const;
  // OK when a caller limited to a project may touch the `kind` ("handler",
  // "delivery", ...) `id`, which belongs to `owner` (a project slug).
  absl::Status PermitsObject(absl::string_view method, absl::string_view kind,
                             absl::string_view id,
                             absl::string_view owner) const;
};

class AdminAuthenticator {
 public:
  // Access tokens are looked up in `catalog`'s snapshot (null: only the
  // bootstrap token is accepted). `catalog` must outlive this.
  explicit AdminAuthenticator(absl::string_view admin_token,
                              const store::Catalog* catalog = nullptr);

  // The caller presenting `authorization`: "Bearer <token>" (scheme case-
  // insensitive) with the bootstrap token or a current access token.
  // UNAUTHENTICATED otherwise, saying what is wrong.
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization) const;

  // Authenticate, then Caller::Permits.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContext& context,
                                   Access access, absl::string_view method,
                                   absl::string_view project = {}) const;

  // OK when Authenticate succeeds.
  absl::Status Check(absl::string_view authorization) const {
    return Authenticate(authorization).status();
  }

 private:
  std::string token_hash_;
  const store::Catalog* catalog_;
};

struct SenderCredentials {
  std::string sender;
  std::string token;
};

// Parses "Basic base64(sender:token)". UNAUTHENTICATED when absent or
// malformed.
absl::StatusOr<SenderCredentials> ParseBasicCredentials(
    absl::string_view authorization);

// A fresh secret token (256 random bits, URL-safe base64).
std::string NewToken();

// The shortest admin token accepted (NewToken() makes 43 characters).
inline constexpr size_t kMinAdminTokenLength = 32;

// Where the admin token came from, for the start-up log.
enum class AdminTokenSource { kFlag, kFile, kGenerated };

// The bootstrap admin token: `flag_token` when given (at least
// kMinAdminTokenLength characters); else the token kept in `token_file`
// (which only its owner may read or write); else a new one written to
// `token_file` (created with mode 0600, never printed). INVALID_ARGUMENT
// naming the flag or file and what is wrong otherwise.
absl::StatusOr<std::string> LoadAdminToken(absl::string_view flag_token,
                                           const std::string& token_file,
                                           AdminTokenSource* source);

// Access tokens start with this, so that secret scanners and people can tell
// them apart from sender tokens and the bootstrap token.
inline constexpr char kAccessTokenPrefix[] = "rio_at_";

// The hash stored for a token: raw SHA-256.
std::string TokenHash(absl::string_view token);

}  // namespace rio::api

#endif  // RIO_SERVER_API_AUTH_H_
