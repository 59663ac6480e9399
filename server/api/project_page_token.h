// The page tokens of ListProjects: the hex of the last slug returned, opaque
// to callers and trivially checked. Pure functions; thread-safe.
#ifndef RIO_SERVER_API_PROJECT_PAGE_TOKEN_H_
#define RIO_SERVER_API_PROJECT_PAGE_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rio::api {

// The token for the page after the project `last_slug`.
std::string EncodeProjectPageToken(absl::string_view last_slug);

// The slug that the page of `token` starts after; "" for "" (the first
// page). INVALID_ARGUMENT "page_token is not a token returned by
// ListProjects" for anything EncodeProjectPageToken does not make.
absl::StatusOr<std::string> DecodeProjectPageToken(absl::string_view token);

}  // namespace rio::api

#endif  // RIO_SERVER_API_PROJECT_PAGE_TOKEN_H_
