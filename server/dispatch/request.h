// Pieces of the HTTP request Rio sends to a receiver (see DESIGN.md, "What a
// receiver gets"): the form-encoded body, the Standard Webhooks signature and
// the target URL. Pure functions; thread-safe.
#ifndef RIO_SERVER_DISPATCH_REQUEST_H_
#define RIO_SERVER_DISPATCH_REQUEST_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rio::dispatch {

// `bytes` percent-encoded by the WHATWG application/x-www-form-urlencoded
// serializer: ALPHA, DIGIT, '-', '.', '_' and '*' stay, space becomes '+',
// every other byte becomes %XX (upper-case hex). What receivers' form parsers
// (Rack, Werkzeug, PHP) undo.
std::string FormUrlEncode(absl::string_view bytes);

// The top-level members of `json_object` as an application/x-www-form-
// urlencoded body: key=value pairs joined by '&', in document order. String
// values are sent decoded; numbers, booleans, null, objects and arrays as
// their compact JSON text (so big integers keep every digit).
// REQUIRES: util::ValidateJsonObject(..., json_object) is OK.
std::string FormEncode(absl::string_view json_object);

// The Standard Webhooks signature of one request:
//   "v1," + base64(HMAC-SHA256(key, message_id + "." + timestamp + "." + body))
// where key is the base64-decoded part of `secret` after an optional "whsec_"
// prefix. `timestamp` is in unix seconds and must be the value sent in the
// webhook-timestamp header. INVALID_ARGUMENT if the key is not base64 or is
// empty; the message never contains the secret.
absl::StatusOr<std::string> SignStandardWebhook(absl::string_view secret,
                                                absl::string_view message_id,
                                                int64_t timestamp,
                                                absl::string_view body);

// `url` with `query` appended: after '?' if `url` has no query yet, else after
// '&' (nothing is added after a trailing '?' or '&'). An empty `query` leaves
// `url` unchanged. A "#fragment", which handler URLs never have, would stay
// last.
std::string AppendQuery(absl::string_view url, absl::string_view query);

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_REQUEST_H_
