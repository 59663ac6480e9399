// Authentication of callers from gRPC metadata. Admin calls carry
// `authorization: Bearer <admin token>`; senders carry
// `authorization: Basic base64(<sender>:<token>)`. Secrets are compared as
// SHA-256 digests in constant time. Thread-safe (immutable after
// construction).
#ifndef RIO_SERVER_API_AUTH_H_
#define RIO_SERVER_API_AUTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"

namespace rio::api {

// The `authorization` metadata value, or "" when absent.
std::string AuthorizationHeader(const grpc::ServerContext& context);

class AdminAuthenticator {
 public:
  explicit AdminAuthenticator(absl::string_view admin_token);

  // OK when `authorization` is "Bearer <admin token>" (scheme case-
  // insensitive). UNAUTHENTICATED otherwise, saying what is wrong.
  absl::Status Check(absl::string_view authorization) const;
  absl::Status Check(const grpc::ServerContext& context) const {
    return Check(AuthorizationHeader(context));
  }

 private:
  std::string token_hash_;
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

// The hash stored for a token: raw SHA-256.
std::string TokenHash(absl::string_view token);

}  // namespace rio::api

#endif  // RIO_SERVER_API_AUTH_H_
