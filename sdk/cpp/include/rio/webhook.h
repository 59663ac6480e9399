// Verifying the requests Rio sends to webhooks (Standard Webhooks).
//
// Each request carries `webhook-id`, `webhook-timestamp` and
// `webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.content)> ...`
// (one entry per valid secret, two while a secret rotation overlaps), where
// `key` is the base64-decoded part of the handler's `whsec_` secret and
// `content` the raw body of a POST or PUT, or the raw query string of a GET
// (the bytes after '?' as sent: a GET handler gets the payload there, and an
// empty body).
//
//   absl::Status verified = rio::webhook::Verify(secret, headers, body);
//   // Any method, from the request line's target ("/hook?a=1"):
//   absl::Status verified = rio::webhook::Verify(
//       secret, headers, rio::webhook::SignedContent(method, target, body));
//   if (verified.code() == absl::StatusCode::kUnauthenticated) -> answer 401
//
// Verify the raw bytes, before any parsing. Receivers should also dedupe on
// `webhook-id`: it stays the same across retries.
//
// Thread-safety: every function is thread-safe.
#ifndef RIO_WEBHOOK_H_
#define RIO_WEBHOOK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace rio::webhook {

// How far `webhook-timestamp` may be from now, either way, by default.
inline constexpr absl::Duration kDefaultTolerance = absl::Minutes(5);

// Where Verify() reads request headers from: a map or a list of
// (name, value) pairs (names compared case-insensitively), or a lookup
// function that returns a header's value, or nullopt when it is absent.
//
// A Headers only refers to the map or list it was made from: use it as a
// parameter, not to keep.
class Headers {
 public:
  using Lookup = std::function<std::optional<std::string>(absl::string_view)>;

  Headers(const std::map<std::string, std::string>& headers);
  Headers(const std::vector<std::pair<std::string, std::string>>& headers);
  // Any callable taking the header name (e.g. a lambda over your framework's
  // request object); it is responsible for case-insensitivity.
  template <typename F,
            typename = std::enable_if_t<std::is_invocable_r_v<
                std::optional<std::string>, const F&, absl::string_view>>>
  Headers(F lookup) : lookup_(std::move(lookup)) {}

  // The value of the header `name`, or nullopt.
  std::optional<std::string> Get(absl::string_view name) const;

 private:
  Lookup lookup_;
};

// OK when the request is signed with `secret` (`whsec_` + base64; the prefix
// is optional) and its timestamp is within `tolerance` of `now`. `body` is
// the signed content: the raw body, or for a GET the raw query string (see
// SignedContent). Every `v1` entry is compared against every secret in
// constant time.
//
// Returns UNAUTHENTICATED, with the reason, for a request to reject (missing
// header, malformed, out-of-range or stale timestamp, no matching signature),
// whatever bytes the headers hold, and INVALID_ARGUMENT for a secret that is
// not base64 (a setup error).
absl::Status Verify(absl::string_view secret, const Headers& headers,
                    absl::string_view body, absl::Time now = absl::Now(),
                    absl::Duration tolerance = kDefaultTolerance);
// The same, accepting a signature by any of `secrets` (e.g. while you switch
// secrets yourself). An empty list is INVALID_ARGUMENT.
absl::Status Verify(absl::Span<const std::string> secrets,
                    const Headers& headers, absl::string_view body,
                    absl::Time now = absl::Now(),
                    absl::Duration tolerance = kDefaultTolerance);

// What Rio signs for a request, to pass to Verify: for `method` "GET" the
// query string of `target` (the request line's target as received, e.g.
// "/hook?a=1&b=2": the bytes after the first '?', undecoded, "" without one),
// since Rio sends a GET handler the payload there and an empty body; for
// other methods `body`. The result points into `target` or `body`.
absl::string_view SignedContent(absl::string_view method,
                                absl::string_view target,
                                absl::string_view body);

// The `v1,<signature>` entry Rio sends for this request, for testing a
// receiver. `body` is the signed content: for a GET, the query string.
// INVALID_ARGUMENT for a secret that is not base64.
absl::StatusOr<std::string> Sign(absl::string_view secret,
                                 absl::string_view message_id,
                                 int64_t timestamp, absl::string_view body);

}  // namespace rio::webhook

#endif  // RIO_WEBHOOK_H_
