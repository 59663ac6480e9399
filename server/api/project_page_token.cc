#include "server/api/project_page_token.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"

namespace rio::api {

std::string EncodeProjectPageToken(absl::string_view last_slug) {
  return absl::BytesToHexString(last_slug);
}

absl::StatusOr<std::string> DecodeProjectPageToken(absl::string_view token) {
  if (token.empty()) return std::string();
  if (token.size() % 2 != 0 ||
      token.find_first_not_of("0123456789abcdef") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "page_token is not a token returned by ListProjects");
  }
  return absl::HexStringToBytes(token);
}

}  // namespace rio::api
