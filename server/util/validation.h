// Validation of user-supplied names and handler settings. Every error is
// INVALID_ARGUMENT with a message that names the offending field, so a user
// can act on it. Pure functions; thread-safe.
#ifndef RIO_SERVER_UTIL_VALIDATION_H_
#define RIO_SERVER_UTIL_VALIDATION_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rio::util {

// Slugs, sender names and event names: letters, digits, '.', '_' and '-';
// 1 to 128 characters. `field` names the field in the error message.
absl::Status ValidateName(absl::string_view field, absl::string_view value);

// Free-text display names: at most 256 bytes, valid UTF-8, no control
// characters.
absl::Status ValidateDisplayName(absl::string_view field,
                                 absl::string_view value);

// Webhook targets: an absolute http:// or https:// URL with a host, at most
// 2048 bytes, no whitespace, control characters or fragment.
absl::Status ValidateWebhookUrl(absl::string_view field, absl::string_view url);

// Per-attempt timeout in milliseconds: 1 to kMaxTimeoutMs.
inline constexpr int kMaxTimeoutMs = 300000;
absl::Status ValidateTimeoutMs(absl::string_view field, int64_t timeout_ms);

// Extra request headers of a handler: RFC 9110 token names, values without
// CR, LF or NUL, at most 64 headers and 8 KiB in total. Names Rio sets itself
// (Content-Type, Content-Length, Host, User-Agent, webhook-*, X-Rio-*, and
// hop-by-hop headers) are refused.
absl::Status ValidateHeaders(absl::string_view field,
                             const std::map<std::string, std::string>& headers);

// Ids: a UUID in its 36-character text form (any case). `what` says what
// the id should be, e.g. "a handler id (a UUID as returned by
// CreateHandler)", for the message `<field> "x" is not <what>`.
absl::Status ValidateUuid(absl::string_view field, absl::string_view value,
                          absl::string_view what);

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_VALIDATION_H_
