// Credentials from gRPC metadata (server/api/auth.h): a sender's Basic
// credentials, the admin's Bearer token, and the strict base64 decoder under
// both (server/util/crypto.h).
//
// Invariants: accepted credentials have a non-empty sender without ':' and a
// non-empty token, and encoding them again gives back the same credentials;
// base64 is accepted only in its one canonical form; the admin check passes
// exactly for "Bearer <token>" (any case of the scheme, trimmed); every
// refusal is UNAUTHENTICATED.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/api/auth.h"
#include "server/util/crypto.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr char kAdminToken[] = "s3cr3t-admin-token";

void CheckBase64(absl::string_view text) {
  const std::optional<std::string> decoded = rio::util::Base64Decode(text);
  if (!decoded) return;
  FUZZ_CHECK(rio::util::Base64Encode(*decoded) == text);
}

void CheckBasic(absl::string_view authorization) {
  absl::StatusOr<rio::api::SenderCredentials> credentials =
      rio::api::ParseBasicCredentials(authorization);
  if (!credentials.ok()) {
    FUZZ_CHECK(credentials.status().code() ==
               absl::StatusCode::kUnauthenticated);
    return;
  }
  FUZZ_CHECK(!credentials->sender.empty());
  FUZZ_CHECK(credentials->sender.find(':') == std::string::npos);
  FUZZ_CHECK(!credentials->token.empty());
  const std::string again = absl::StrCat(
      "Basic ", rio::util::Base64Encode(absl::StrCat(credentials->sender, ":",
                                                     credentials->token)));
  absl::StatusOr<rio::api::SenderCredentials> reparsed =
      rio::api::ParseBasicCredentials(again);
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(reparsed->sender == credentials->sender);
  FUZZ_CHECK(reparsed->token == credentials->token);
}

void CheckBearer(absl::string_view authorization) {
  static const rio::api::AdminAuthenticator* const authenticator =
      new rio::api::AdminAuthenticator(kAdminToken);
  const absl::Status status = authenticator->Check(authorization);
  absl::string_view token = authorization;
  const bool expected =
      token.size() > 7 &&
      absl::EqualsIgnoreCase(token.substr(0, 7), "bearer ") &&
      absl::StripAsciiWhitespace(token.substr(7)) == kAdminToken;
  FUZZ_CHECK(status.ok() == expected);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kUnauthenticated);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckBase64(text);
  CheckBasic(text);
  CheckBearer(text);
  return 0;
}
