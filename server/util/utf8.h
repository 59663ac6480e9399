// Valid UTF-8 from bytes of unknown encoding, for proto3 strings and JSON
// text. Pure functions; thread-safe.
#ifndef RIO_SERVER_UTIL_UTF8_H_
#define RIO_SERVER_UTIL_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace rio::util {

// `bytes` as valid UTF-8: every maximal ill-formed subsequence (in the
// sense of Unicode's "U+FFFD substitution of maximal subparts") becomes
// U+FFFD; valid input is returned unchanged.
std::string ToValidUtf8(absl::string_view bytes);

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_UTF8_H_
