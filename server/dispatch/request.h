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
//   "v1," + base64(HMAC-SHA256(key, message_id + "." + timestamp + "." +
//                                   content))
// where key is the base64-decoded part of `secret` after an optional "whsec_"
// prefix. `timestamp` is in unix seconds and must be the value sent in the
// webhook-timestamp header. `content` is the body of a POST or PUT, and the
// query string of a GET (QueryOf of the URL sent), whose body is empty.
// INVALID_ARGUMENT if the key is not base64 or is empty; the message never
// contains the secret.
absl::StatusOr<std::string> SignStandardWebhook(absl::string_view secret,
                                                absl::string_view message_id,
                                                int64_t timestamp,
                                                absl::string_view content);

// `url` with `query` appended: after '?' if `url` has no query yet, else after
// '&' (nothing is added after a trailing '?' or '&'). An empty `query` leaves
// `url` unchanged. A "#fragment", which handler URLs never have, would stay
// last.
std::string AppendQuery(absl::string_view url, absl::string_view query);

// The query string of `url` exactly as curl sends it in the request line: the
// bytes after the first '?' up to a '#' (curl sends a validated handler URL's
// query verbatim, without re-encoding); empty when no '?' comes before any
// '#'. What a GET delivery is signed over, and what receivers see as
// QUERY_STRING.
absl::string_view QueryOf(absl::string_view url);

// `url` as Rio's log lines show it: userinfo, the query and a fragment, which
// may carry credentials or the payload, each become "•••", so
// "https://user:pw@h:8443/p?token=x" is "https://•••@h:8443/p?•••". The
// scheme, host, port and path stay, an empty query ("/p?") stays empty.
// Without "://", only the query and fragment are redacted.
std::string RedactUrl(absl::string_view url);
// The same, appended to `*out` (for log buffers: no allocation of its own).
void AppendRedactedUrl(absl::string_view url, std::string* out);

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_REQUEST_H_
