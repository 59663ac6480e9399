#include "server/util/secret_box.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/util/crypto.h"

namespace rio::util {
namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxKeyIdBytes = 64;
// A key file is a few lines; anything much larger is not one.
constexpr off_t kMaxKeyFileBytes = 1 << 20;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

[[noreturn]] void DieBecause(const char* what) {
  std::fprintf(stderr, "rio: fatal: %s\n", what);
  std::abort();
}

absl::Status ValidateKeyId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxKeyIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key id must be 1-", kMaxKeyIdBytes, " characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          "key id may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

// What authenticates a value besides its bytes: the envelope's version, the
// key id and the caller's context.
std::string AssociatedData(absl::string_view key_id,
                           absl::string_view context) {
  return absl::StrCat(kSealedPrefix, key_id, ":", context);
}

struct Envelope {
  absl::string_view key_id;
  std::string body;  // nonce || ciphertext || tag
};

absl::StatusOr<Envelope> ParseEnvelope(absl::string_view sealed) {
  const auto malformed = [] {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a sealed value (expected ", kSealedPrefix, "KEY_ID:BASE64)"));
  };
  if (!absl::ConsumePrefix(&sealed, kSealedPrefix)) return malformed();
  const size_t colon = sealed.find(':');
  if (colon == absl::string_view::npos) return malformed();
  Envelope envelope;
  envelope.key_id = sealed.substr(0, colon);
  if (!ValidateKeyId(envelope.key_id).ok()) return malformed();
  std::optional<std::string> body = Base64Decode(sealed.substr(colon + 1));
  if (!body.has_value() || body->size() < kNonceBytes + kTagBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("value sealed under key \"", envelope.key_id,
                     "\" is malformed (its body is not base64 of a nonce, "
                     "ciphertext and tag)"));
  }
  envelope.body = std::move(*body);
  return envelope;
}

}  // namespace

absl::StatusOr<std::vector<SecretKey>> ParseSecretKeyFile(
    absl::string_view text) {
  std::vector<SecretKey> keys;
  absl::flat_hash_set<std::string> ids;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const auto error = [line_number](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", what));
    };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return error(
          "expected \"KEY_ID BASE64_KEY\" (a key id, a space, and 32 "
          "random bytes in base64)");
    }
    if (absl::Status valid = ValidateKeyId(fields[0]); !valid.ok()) {
      return error(valid.message());
    }
    std::optional<std::string> key = Base64Decode(fields[1]);
    if (!key.has_value()) {
      return error(absl::StrCat("the key of \"", fields[0],
                                "\" is not standard base64 with padding"));
    }
    if (key->size() != kSecretKeyBytes) {
      return error(absl::StrCat("the key of \"", fields[0], "\" is ",
                                key->size(), " bytes; AES-256 needs ",
                                kSecretKeyBytes,
                                " (make one with: openssl rand -base64 32)"));
    }
    if (!ids.insert(std::string(fields[0])).second) {
      return error(absl::StrCat("key id \"", fields[0],
                                "\" appears twice; key ids must be unique"));
    }
    keys.push_back(SecretKey{std::string(fields[0]), std::move(*key)});
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        "no key (expected lines \"KEY_ID BASE64_KEY\"; the first one seals "
        "new values)");
  }
  return keys;
}

absl::StatusOr<std::vector<SecretKey>> ReadSecretKeyFile(
    const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": ", std::strerror(errno)));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": group or others may access it (mode ", mode,
        "); a secret key file must be readable by its owner only (chmod "
        "600 ",
        path, ")"));
  }
  if (st.st_size > kMaxKeyFileBytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": larger than ", kMaxKeyFileBytes, " bytes; not a key file"));
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > static_cast<size_t>(kMaxKeyFileBytes)) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": larger than ", kMaxKeyFileBytes, " bytes; not a key file"));
    }
  }
  absl::StatusOr<std::vector<SecretKey>> keys = ParseSecretKeyFile(text);
  if (!keys.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", keys.status().message()));
  }
  return keys;
}

absl::StatusOr<std::string> SealedKeyId(absl::string_view sealed) {
  absl::StatusOr<Envelope> envelope = ParseEnvelope(sealed);
  if (!envelope.ok()) return envelope.status();
  return std::string(envelope->key_id);
}

bool LooksSealed(absl::string_view value) { return ParseEnvelope(value).ok(); }

absl::StatusOr<SecretBox> SecretBox::Create(std::vector<SecretKey> keys) {
  if (keys.empty()) return absl::InvalidArgumentError("no secret key");
  absl::flat_hash_set<std::string> ids;
  for (const SecretKey& key : keys) {
    if (absl::Status valid = ValidateKeyId(key.id); !valid.ok()) return valid;
    if (key.key.size() != kSecretKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", key.id, "\" is ", key.key.size(),
                       " bytes, not ", kSecretKeyBytes));
    }
    if (!ids.insert(key.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("key id \"", key.id, "\" appears twice"));
    }
  }
  return SecretBox(std::move(keys));
}

const SecretKey* SecretBox::Find(absl::string_view id) const {
  for (const SecretKey& key : keys_) {
    if (key.id == id) return &key;
  }
  return nullptr;
}

bool SecretBox::HasKey(absl::string_view id) const {
  return Find(id) != nullptr;
}

std::vector<std::string> SecretBox::key_ids() const {
  std::vector<std::string> ids;
  for (const SecretKey& key : keys_) ids.push_back(key.id);
  return ids;
}

std::string SecretBox::Seal(absl::string_view plaintext,
                            absl::string_view context) const {
  const SecretKey& key = keys_.front();
  const std::string aad = AssociatedData(key.id, context);
  std::string body = RandomBytes(kNonceBytes);
  body.resize(kNonceBytes + plaintext.size() + kTagBytes);
  auto* nonce = reinterpret_cast<unsigned char*>(body.data());
  unsigned char* out = nonce + kNonceBytes;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  // Failures here mean OpenSSL itself is broken (no memory, no AES): the
  // inputs are always valid.
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(key.key.data()),
                         nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1) {
    DieBecause("AES-256-GCM encryption could not start");
  }
  int written = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(
            ctx.get(), out, &len,
            reinterpret_cast<const unsigned char*>(plaintext.data()),
            static_cast<int>(plaintext.size())) != 1) {
      DieBecause("AES-256-GCM encryption failed");
    }
    written = len;
  }
  if (EVP_EncryptFinal_ex(ctx.get(), out + written, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG,
                          static_cast<int>(kTagBytes),
                          out + plaintext.size()) != 1) {
    DieBecause("AES-256-GCM encryption failed");
  }
  return absl::StrCat(kSealedPrefix, key.id, ":", Base64Encode(body));
}

absl::StatusOr<std::string> SecretBox::Open(absl::string_view sealed,
                                            absl::string_view context) const {
  absl::StatusOr<Envelope> envelope = ParseEnvelope(sealed);
  if (!envelope.ok()) return envelope.status();
  const SecretKey* key = Find(envelope->key_id);
  if (key == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("a value is sealed under key \"", envelope->key_id,
                     "\", which is not in the secret key file"));
  }
  const std::string aad = AssociatedData(key->id, context);
  const auto* body =
      reinterpret_cast<const unsigned char*>(envelope->body.data());
  const size_t text_bytes = envelope->body.size() - kNonceBytes - kTagBytes;
  std::string plaintext(text_bytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(
          ctx.get(), EVP_aes_256_gcm(), nullptr,
          reinterpret_cast<const unsigned char*>(key->key.data()), body) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1) {
    DieBecause("AES-256-GCM decryption could not start");
  }
  int written = 0;
  if (text_bytes > 0) {
    if (EVP_DecryptUpdate(ctx.get(), out, &len, body + kNonceBytes,
                          static_cast<int>(text_bytes)) != 1) {
      DieBecause("AES-256-GCM decryption failed");
    }
    written = len;
  }
  // The tag is only read, but OpenSSL's signature takes a non-const pointer.
  std::string tag(envelope->body.substr(kNonceBytes + text_bytes));
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG,
                          static_cast<int>(kTagBytes), tag.data()) != 1) {
    DieBecause("AES-256-GCM decryption failed");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out + written, &len) != 1) {
    return absl::DataLossError(absl::StrCat(
        "a value sealed under key \"", key->id,
        "\" does not open: it was altered, belongs elsewhere, or key \"",
        key->id, "\" in the secret key file is not the key that sealed it"));
  }
  return plaintext;
}

}  // namespace rio::util
