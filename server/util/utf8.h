// UTF-8 checks and repair for bytes that come from outside (receivers'
// responses, senders' fields) on their way into protobuf strings and
// PostgreSQL text. Pure functions; thread-safe.
#ifndef RIO_SERVER_UTIL_UTF8_H_
#define RIO_SERVER_UTIL_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace rio::util {

// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points
// beyond U+10FFFF). NUL is well-formed.
bool IsValidUtf8(absl::string_view s);

// `bytes` as valid UTF-8: every maximal ill-formed subsequence (in the
// sense of Unicode's "U+FFFD substitution of maximal subparts") becomes
// U+FFFD; valid input is returned unchanged.
std::string ToValidUtf8(absl::string_view bytes);

// Makes `*text` something a PostgreSQL text column accepts whatever the
// bytes were: ToValidUtf8, and NUL (which text cannot hold) replaced by
// U+FFFD too. Leaves clean text untouched without copying it. Returns
// whether anything was replaced.
bool MakeStorableText(std::string* text);

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_UTF8_H_
