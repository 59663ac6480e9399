#include "server/api/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "server/util/crypto.h"

namespace rio::api {
namespace {

// Strips a case-insensitive "<scheme> " prefix; false when absent.
bool ConsumeScheme(absl::string_view& value, absl::string_view scheme) {
  if (value.size() <= scheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, scheme.size()), scheme) ||
      value[scheme.size()] != ' ') {
    return false;
  }
  value.remove_prefix(scheme.size() + 1);
  value = absl::StripAsciiWhitespace(value);
  return true;
}

}  // namespace

std::string AuthorizationHeader(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

AdminAuthenticator::AdminAuthenticator(absl::string_view admin_token)
    : token_hash_(util::Sha256(admin_token)) {}

absl::Status AdminAuthenticator::Check(absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing admin token: send 'authorization: Bearer <admin token>'");
  }
  absl::string_view token = authorization;
  if (!ConsumeScheme(token, "Bearer") || token.empty()) {
    return absl::UnauthenticatedError(
        "authorization must be 'Bearer <admin token>'");
  }
  if (!util::ConstantTimeEquals(util::Sha256(token), token_hash_)) {
    return absl::UnauthenticatedError("invalid admin token");
  }
  return absl::OkStatus();
}

absl::StatusOr<SenderCredentials> ParseBasicCredentials(
    absl::string_view authorization) {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing sender credentials: send 'authorization: Basic "
        "base64(<sender>:<token>)'");
  }
  absl::string_view encoded = authorization;
  if (!ConsumeScheme(encoded, "Basic")) {
    return absl::UnauthenticatedError(
        "authorization must be 'Basic base64(<sender>:<token>)'");
  }
  std::optional<std::string> decoded = util::Base64Decode(encoded);
  if (!decoded) {
    return absl::UnauthenticatedError(
        "sender credentials are not valid base64");
  }
  size_t colon = decoded->find(':');
  if (colon == std::string::npos || colon == 0 ||
      colon + 1 == decoded->size()) {
    return absl::UnauthenticatedError(
        "sender credentials must be '<sender>:<token>'");
  }
  return SenderCredentials{decoded->substr(0, colon),
                           decoded->substr(colon + 1)};
}

std::string NewToken() { return util::Base64UrlEncode(util::RandomBytes(32)); }

std::string TokenHash(absl::string_view token) { return util::Sha256(token); }

}  // namespace rio::api
