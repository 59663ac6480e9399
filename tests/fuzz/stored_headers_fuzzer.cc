// What receivers send back, as the delivery API shows it
// (server/api/delivery_rows.h): stored header blocks split into headers, and
// response bytes made valid UTF-8 for proto3 strings (server/util/utf8.h).
//
// Invariants: ToValidUtf8 always returns valid UTF-8 and leaves valid UTF-8
// unchanged; every header has a non-empty trimmed name, a value without line
// breaks, and both are valid UTF-8; there are never more headers than
// lines.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "server/api/delivery_rows.h"
#include "server/util/utf8.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  const std::string valid = rio::util::ToValidUtf8(bytes);
  FUZZ_CHECK(rio::fuzz::IsValidUtf8(valid));
  if (rio::fuzz::IsValidUtf8(bytes)) FUZZ_CHECK(valid == bytes);
  // Each ill-formed byte becomes at most one 3-byte U+FFFD.
  FUZZ_CHECK(valid.size() <= 3 * bytes.size());

  google::protobuf::RepeatedPtrField<rio::v1::Header> headers;
  rio::api::AppendStoredHeaders(bytes, &headers);
  size_t lines = 1;
  for (const char c : bytes) lines += c == '\n';
  FUZZ_CHECK(static_cast<size_t>(headers.size()) <= lines);
  for (const rio::v1::Header& header : headers) {
    FUZZ_CHECK(!header.name().empty());
    FUZZ_CHECK(rio::fuzz::IsValidUtf8(header.name()));
    FUZZ_CHECK(rio::fuzz::IsValidUtf8(header.value()));
    FUZZ_CHECK(header.name() == absl::StripAsciiWhitespace(header.name()));
    FUZZ_CHECK(header.name().find(':') == std::string::npos);
    FUZZ_CHECK(header.value().find('\n') == std::string::npos);
  }
  return 0;
}
