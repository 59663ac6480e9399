// Handler settings and names as callers send them (server/util/validation.h):
// webhook URLs, extra headers, slugs, display names and ids.
//
// Invariants: whatever is accepted meets the documented contract, checked
// here independently (URL scheme, host, port, length and bytes; header
// names, values, count and size; name and UUID alphabets; UTF-8); every
// refusal is INVALID_ARGUMENT naming the field.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "server/util/validation.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void CheckRefusal(const absl::Status& status, absl::string_view field) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  FUZZ_CHECK(absl::StartsWith(status.message(), field));
}

void CheckUrl(absl::string_view url) {
  const absl::Status status = rio::util::ValidateWebhookUrl("url", url);
  if (!status.ok()) return CheckRefusal(status, "url");
  FUZZ_CHECK(url.size() <= 2048);
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    FUZZ_CHECK(byte > 0x20 && byte != 0x7f);
  }
  FUZZ_CHECK(url.find('#') == absl::string_view::npos);
  const std::string lower = absl::AsciiStrToLower(url);
  absl::string_view rest = url;
  if (absl::StartsWith(lower, "http://")) {
    rest.remove_prefix(7);
  } else {
    FUZZ_CHECK(absl::StartsWith(lower, "https://"));
    rest.remove_prefix(8);
  }
  const absl::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  FUZZ_CHECK(!authority.empty());
  FUZZ_CHECK(authority.find('@') == absl::string_view::npos);
  // host[:port] or [v6][:port], the port 1-65535 when present.
  absl::string_view port;
  if (authority[0] == '[') {
    const size_t close = authority.find(']');
    FUZZ_CHECK(close != absl::string_view::npos && close > 1);
    const absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      FUZZ_CHECK(after[0] == ':');
      port = after.substr(1);
      FUZZ_CHECK(!port.empty());
    }
  } else {
    const size_t colon = authority.rfind(':');
    FUZZ_CHECK(colon != 0);
    if (colon != absl::string_view::npos) {
      port = authority.substr(colon + 1);
      FUZZ_CHECK(!port.empty());
    }
  }
  if (!port.empty()) {
    int value = 0;
    for (const char c : port) {
      FUZZ_CHECK(absl::ascii_isdigit(static_cast<unsigned char>(c)));
    }
    FUZZ_CHECK(absl::SimpleAtoi(port, &value) && value >= 1 && value <= 65535);
  }
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-';
}

void CheckName(absl::string_view value) {
  const absl::Status status = rio::util::ValidateName("slug", value);
  bool expected = !value.empty() && value.size() <= 128;
  for (const char c : value) expected = expected && IsNameChar(c);
  FUZZ_CHECK(status.ok() == expected);
  if (!status.ok()) CheckRefusal(status, "slug");
}

void CheckDisplayName(absl::string_view value) {
  const absl::Status status = rio::util::ValidateDisplayName("name", value);
  bool expected = value.size() <= 256 && rio::fuzz::IsValidUtf8(value);
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    expected = expected && byte >= 0x20 && byte != 0x7f;
  }
  FUZZ_CHECK(status.ok() == expected);
  if (!status.ok()) CheckRefusal(status, "name");
}

void CheckUuid(absl::string_view value) {
  const absl::Status status =
      rio::util::ValidateUuid("id", value, "a handler id");
  bool expected = value.size() == 36;
  for (size_t i = 0; expected && i < value.size(); ++i) {
    expected = (i == 8 || i == 13 || i == 18 || i == 23)
                   ? value[i] == '-'
                   : absl::ascii_isxdigit(static_cast<unsigned char>(value[i]));
  }
  FUZZ_CHECK(status.ok() == expected);
  if (!status.ok()) CheckRefusal(status, "id");
}

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
             absl::string_view::npos;
}

void CheckHeaders(FuzzedDataProvider& provider) {
  std::map<std::string, std::string> headers;
  const int count = provider.ConsumeIntegralInRange<int>(0, 70);
  for (int i = 0; i < count && provider.remaining_bytes() > 0; ++i) {
    std::string name = provider.ConsumeRandomLengthString(64);
    headers[std::move(name)] = provider.ConsumeRandomLengthString(512);
  }
  const absl::Status status = rio::util::ValidateHeaders("headers", headers);
  if (!status.ok()) return CheckRefusal(status, "headers");
  FUZZ_CHECK(headers.size() <= 64);
  size_t total = 0;
  for (const auto& [name, value] : headers) {
    total += name.size() + value.size();
    FUZZ_CHECK(!name.empty());
    for (const char c : name) FUZZ_CHECK(IsTokenChar(c));
    const std::string lower = absl::AsciiStrToLower(name);
    FUZZ_CHECK(lower != "host" && lower != "content-type" &&
               lower != "content-length" && lower != "transfer-encoding" &&
               lower != "connection");
    FUZZ_CHECK(!absl::StartsWith(lower, "webhook-") &&
               !absl::StartsWith(lower, "x-rio-"));
    FUZZ_CHECK(value.find_first_of(std::string("\r\n\0", 3)) ==
               std::string::npos);
  }
  FUZZ_CHECK(total <= 8192);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckUrl(text);
  CheckName(text);
  CheckDisplayName(text);
  CheckUuid(text);
  FuzzedDataProvider provider(data, size);
  CheckHeaders(provider);
  return 0;
}
