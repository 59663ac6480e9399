// Sealing of secrets kept at rest (signing secrets, handler header values,
// later client keys): AES-256-GCM through OpenSSL EVP, a random 96-bit nonce
// per value, under one of several keys that each have an id.
//
// A sealed value is text, so it fits the text and JSON columns that held the
// plaintext:
//
//   rio:v1:<key id>:<base64(nonce[12] || ciphertext || tag[16])>
//
// The key id and a caller-chosen context (e.g. "handler <id> signing
// secret") are authenticated with the value, so a value altered, relabelled
// with another key id, or moved to another row or column does not open: it
// is an error naming the key id, never garbage.
//
// Keys come from a key file (--secret_key_file), one key a line:
//
//   # comment
//   <key id> <base64 of 32 bytes>
//
// Key ids are 1-64 of [A-Za-z0-9._-]. The first key seals new values; the
// others only open values sealed under them, so a key can be rotated (add a
// new first line, re-seal, then drop the old line).
//
// SecretBox is immutable after Create(); all methods are thread-safe.
#ifndef RIO_SERVER_UTIL_SECRET_BOX_H_
#define RIO_SERVER_UTIL_SECRET_BOX_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rio::util {

inline constexpr size_t kSecretKeyBytes = 32;
// Prefix of every sealed value.
inline constexpr absl::string_view kSealedPrefix = "rio:v1:";

struct SecretKey {
  std::string id;
  std::string key;  // kSecretKeyBytes raw bytes
};

// Parses a key file's text. INVALID_ARGUMENT naming the line (never the key
// material) for a malformed line, a bad key id, a key that is not base64 of
// exactly 32 bytes, a duplicate id, or a file without keys.
absl::StatusOr<std::vector<SecretKey>> ParseSecretKeyFile(
    absl::string_view text);

// Reads and parses the key file at `path`. FAILED_PRECONDITION when it is
// not a regular file or group or others may read or write it (it must be
// 0600 or 0400); the message names the path and what to do.
absl::StatusOr<std::vector<SecretKey>> ReadSecretKeyFile(
    const std::string& path);

// The key id a sealed value names, without opening it. INVALID_ARGUMENT
// when `sealed` is not a sealed value.
absl::StatusOr<std::string> SealedKeyId(absl::string_view sealed);

// Whether `value` has the shape of a sealed value (prefix, key id, base64
// long enough for a nonce and a tag). Says nothing about authenticity.
bool LooksSealed(absl::string_view value);

class SecretBox {
 public:
  // `keys[0]` seals; every key opens. INVALID_ARGUMENT when `keys` is empty,
  // a key is not 32 bytes, an id is malformed or ids repeat.
  static absl::StatusOr<SecretBox> Create(std::vector<SecretKey> keys);

  // Seals `plaintext` under the first key, bound to `context` (which must be
  // given again to open it).
  std::string Seal(absl::string_view plaintext,
                   absl::string_view context) const;

  // Opens a value sealed under any key of this box with the same `context`.
  // INVALID_ARGUMENT for a value that is not sealed text; NOT_FOUND when its
  // key id is not in this box; DATA_LOSS when it fails authentication (a
  // different key under that id, another context, or altered bytes). Every
  // message names the key id when the value names one.
  absl::StatusOr<std::string> Open(absl::string_view sealed,
                                   absl::string_view context) const;

  // The id of the key that seals new values.
  const std::string& sealing_key_id() const { return keys_.front().id; }
  bool HasKey(absl::string_view id) const;
  std::vector<std::string> key_ids() const;

 private:
  explicit SecretBox(std::vector<SecretKey> keys) : keys_(std::move(keys)) {}
  const SecretKey* Find(absl::string_view id) const;

  std::vector<SecretKey> keys_;  // non-empty
};

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_SECRET_BOX_H_
