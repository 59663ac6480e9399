// Hashing, signing, encoding and randomness used across Rio (OpenSSL
// underneath). All functions are thread-safe.
#ifndef RIO_SERVER_UTIL_CRYPTO_H_
#define RIO_SERVER_UTIL_CRYPTO_H_

#include <initializer_list>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace rio::util {

// Raw 32-byte SHA-256 digest.
std::string Sha256(absl::string_view data);

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(absl::string_view key, absl::string_view data);

// HmacSha256 of the concatenation of `parts`, without building it.
std::string HmacSha256Concat(absl::string_view key,
                             std::initializer_list<absl::string_view> parts);

// Standard base64 with padding (RFC 4648 section 4).
std::string Base64Encode(absl::string_view data);
// Accepts padded standard base64; nullopt on malformed input. Strict: no
// whitespace, no URL-safe alphabet, and non-zero bits after the last byte
// (a non-canonical encoding) are rejected.
std::optional<std::string> Base64Decode(absl::string_view text);

// URL-safe base64 without padding (RFC 4648 section 5).
std::string Base64UrlEncode(absl::string_view data);

// Lower-case hex.
std::string HexEncode(absl::string_view data);

// `n` bytes from a cryptographically secure generator. Aborts if the system
// generator fails (nothing sane to do then).
std::string RandomBytes(size_t n);

// A random version-4 UUID in canonical lower-case form.
std::string RandomUuid();

// A version-7 UUID (RFC 9562): `now` to the millisecond, then 74 random bits,
// canonical lower-case. Ids made one after the other sort roughly in time
// order, so the indexes they key grow at one end instead of everywhere.
std::string TimeOrderedUuid(absl::Time now = absl::Now());

// A version-7 UUID of the same millisecond as `other`, a version-7 UUID in
// canonical form (of now when it is not one). History is partitioned by the
// time in ids: a delivery's id is made beside its message's, so that both
// fall in the same partition.
std::string TimeOrderedUuidBeside(absl::string_view other);

// Compares without leaking where the inputs differ; false when sizes differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_CRYPTO_H_
