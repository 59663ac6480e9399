// A small JSON (RFC 8259) scanner: validates payloads and walks the top-level
// members of an object without building a DOM. Rio forwards payloads
// verbatim, so it only needs to know that a payload is a well-formed object
// and, for form-encoded handlers, what its top-level members are.
//
// Nothing here recurses, allocates per character or keeps state between
// calls; all functions are pure and thread-safe.
#ifndef RIO_SERVER_UTIL_JSON_H_
#define RIO_SERVER_UTIL_JSON_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rio::util {

// Deepest nesting of arrays and objects that ValidateJsonObject accepts; the
// top-level object counts as depth 1.
inline constexpr int kMaxJsonDepth = 512;

// OK iff `text` is exactly one JSON object, optionally surrounded by JSON
// whitespace. Strings must be valid UTF-8 without raw control characters, and
// \u escapes must not leave a UTF-16 surrogate unpaired (I-JSON, RFC 7493),
// so every string decodes to valid UTF-8.
//
// Errors are INVALID_ARGUMENT, naming `field`:
//   "<field> is not valid JSON: <reason> at byte <offset>", where the offset
//   counts from 0 and points at the offending byte (for "unterminated string",
//   at the opening quote; for "unexpected end of input", at text.size());
//   "<field> must be a JSON object" when `text` is valid JSON of another type.
absl::Status ValidateJsonObject(absl::string_view field,
                                absl::string_view text);

// Calls `fn` for each top-level member of `object`, in document order
// (duplicates included), with the decoded key and the exact text of the value
// (no surrounding whitespace; numbers stay verbatim, so big integers keep
// their digits). The arguments are valid only during the call.
// REQUIRES: ValidateJsonObject(..., object) is OK. On other input the calls
// are unspecified but memory-safe.
void ForEachMember(absl::string_view object,
                   const std::function<void(const std::string& key,
                                            absl::string_view raw_value)>& fn);

// Decodes a JSON string literal, quotes included, into UTF-8: escapes are
// resolved and \u surrogate pairs combine into one code point. An unpaired
// surrogate (never present in validated input) becomes U+FFFD.
std::string DecodeJsonString(absl::string_view literal);

// `raw` with insignificant whitespace removed; string contents are copied
// untouched. REQUIRES: `raw` is valid JSON text.
std::string CompactJson(absl::string_view raw);

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_JSON_H_
