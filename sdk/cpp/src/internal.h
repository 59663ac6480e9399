// Helpers shared by the SDK's sources: randomness, encodings, constant-time
// comparison (OpenSSL underneath) and status macros. Not installed.
//
// Thread-safety: every function is thread-safe.
#ifndef RIO_SDK_CPP_SRC_INTERNAL_H_
#define RIO_SDK_CPP_SRC_INTERNAL_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Same shapes as Abseil HEAD's, under names that cannot clash with the
// server's RIO_RETURN_IF_ERROR when both are included.
#define RIO_CLIENT_CONCAT_INNER_(a, b) a##b
#define RIO_CLIENT_CONCAT_(a, b) RIO_CLIENT_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` is not OK.
#define RIO_CLIENT_RETURN_IF_ERROR(expr)                     \
  do {                                                       \
    ::absl::Status rio_client_status_ = (expr);              \
    if (!rio_client_status_.ok()) return rio_client_status_; \
  } while (0)

// `lhs = *expr`, or returns the error of `expr` from the enclosing function.
#define RIO_CLIENT_ASSIGN_OR_RETURN(lhs, expr) \
  RIO_CLIENT_ASSIGN_OR_RETURN_IMPL_(           \
      RIO_CLIENT_CONCAT_(rio_client_statusor_, __LINE__), lhs, expr)

#define RIO_CLIENT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                      \
  if (!statusor.ok()) return std::move(statusor).status();     \
  lhs = std::move(*statusor)

namespace rio::client_internal {

// A random version-4 UUID in canonical lower-case form.
std::string RandomUuid();

// A uniform draw from [0, 1).
double RandomUnit();

// Whether `text` is well-formed UTF-8 (what protobuf requires of strings).
bool IsValidUtf8(absl::string_view text);

// Standard base64 with padding.
std::string Base64Encode(absl::string_view data);
// Padded standard base64; nullopt on anything else (whitespace, URL-safe
// alphabet, missing padding).
std::optional<std::string> Base64Decode(absl::string_view text);

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(absl::string_view key, absl::string_view data);

// Compares without leaking where the inputs differ; false when sizes differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace rio::client_internal

#endif  // RIO_SDK_CPP_SRC_INTERNAL_H_
