// Page tokens that callers hand back: the delivery lists' cursors
// (server/api/delivery_rows.h) and ListProjects' slugs
// (server/api/project_page_token.h).
//
// Invariants: a token is accepted only for the list it was made for; what an
// accepted token decodes to is encoded back into a token that decodes the
// same; a cursor's id is a lower-case UUID; every refusal is
// INVALID_ARGUMENT.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "server/api/delivery_rows.h"
#include "server/api/project_page_token.h"
#include "server/util/validation.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using rio::api::PageCursor;

void CheckDeliveryToken(absl::string_view token, absl::string_view list) {
  const absl::StatusOr<std::optional<PageCursor>> cursor =
      rio::api::DecodePageToken(token, list);
  if (!cursor.ok()) {
    FUZZ_CHECK(cursor.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(cursor->has_value() == !token.empty());
  if (!cursor->has_value()) return;
  const PageCursor& c = **cursor;
  FUZZ_CHECK(rio::util::ValidateUuid("id", c.id, "a UUID").ok());
  FUZZ_CHECK(c.id == absl::AsciiStrToLower(c.id));
  const std::string again = rio::api::EncodePageToken(c, list);
  const absl::StatusOr<std::optional<PageCursor>> redecoded =
      rio::api::DecodePageToken(again, list);
  FUZZ_CHECK(redecoded.ok() && redecoded->has_value() && **redecoded == c);
}

// A cursor made from fuzz bytes round-trips through its token, and the token
// is refused by any other list.
void CheckCursorRoundTrip(FuzzedDataProvider& provider) {
  PageCursor cursor;
  cursor.create_time_micros = provider.ConsumeIntegral<int64_t>();
  cursor.id = absl::BytesToHexString(provider.ConsumeBytesAsString(16));
  cursor.id.resize(32, '0');
  for (const size_t dash : {8, 13, 18, 23}) cursor.id.insert(dash, "-");
  const std::string list = provider.ConsumeRandomLengthString(256);
  const std::string other_list = provider.ConsumeRandomLengthString(256);
  const std::string token = rio::api::EncodePageToken(cursor, list);
  const absl::StatusOr<std::optional<PageCursor>> decoded =
      rio::api::DecodePageToken(token, list);
  FUZZ_CHECK(decoded.ok() && decoded->has_value() && **decoded == cursor);
  if (other_list != list) {
    // Lists differ in their 64-bit fingerprints, short of a SHA-256
    // collision no fuzzer finds.
    FUZZ_CHECK(!rio::api::DecodePageToken(token, other_list).ok());
  }
}

void CheckProjectToken(absl::string_view token) {
  const absl::StatusOr<std::string> slug =
      rio::api::DecodeProjectPageToken(token);
  if (!slug.ok()) {
    FUZZ_CHECK(slug.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(rio::api::EncodeProjectPageToken(*slug) == token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  const std::string list = provider.ConsumeRandomLengthString(128);
  const std::string token = provider.ConsumeRandomLengthString(512);
  CheckDeliveryToken(token, list);
  CheckProjectToken(token);
  CheckCursorRoundTrip(provider);
  return 0;
}
