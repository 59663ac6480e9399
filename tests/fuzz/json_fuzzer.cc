// Payloads: the JSON object validator and the member walk that form encoding
// relies on (server/util/json.h).
//
// Invariants: whatever ValidateJsonObject accepts, ForEachMember splits into
// members whose values are themselves valid JSON, whose keys and string
// values decode to valid UTF-8, and whose compact form is still the same
// valid JSON; on input it rejects, the walk and the decoders stay
// memory-safe.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/json.h"
#include "tests/fuzz/fuzz_check.h"

namespace rio::fuzz {
namespace {

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// `raw` as the only member's value of an object, to validate a value of any
// type with the object validator.
std::string Wrap(absl::string_view raw) {
  return absl::StrCat("{\"v\":", raw, "}");
}

void CheckValidObject(absl::string_view text) {
  const std::string compact = util::CompactJson(text);
  FUZZ_CHECK(util::ValidateJsonObject("payload", compact).ok());
  FUZZ_CHECK(util::CompactJson(compact) == compact);

  int members = 0;
  util::ForEachMember(text, [&](const std::string& key, absl::string_view raw) {
    ++members;
    FUZZ_CHECK(IsValidUtf8(key));
    FUZZ_CHECK(!raw.empty());
    // The exact text of one value: no surrounding whitespace.
    FUZZ_CHECK(!IsJsonSpace(raw.front()) && !IsJsonSpace(raw.back()));
    FUZZ_CHECK(util::ValidateJsonObject("value", Wrap(raw)).ok());
    if (raw.front() == '"') {
      FUZZ_CHECK(IsValidUtf8(util::DecodeJsonString(raw)));
    }
  });

  // The compact text has the same members.
  int compact_members = 0;
  util::ForEachMember(compact, [&](const std::string&, absl::string_view) {
    ++compact_members;
  });
  FUZZ_CHECK(members == compact_members);
  const bool empty_object = compact == "{}";
  FUZZ_CHECK((members == 0) == empty_object);
}

}  // namespace
}  // namespace rio::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::Status status = rio::util::ValidateJsonObject("payload", text);
  if (status.ok()) {
    rio::fuzz::CheckValidObject(text);
  } else {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(status.message(), "payload "));
    // Documented as memory-safe on any input.
    rio::util::ForEachMember(text,
                             [](const std::string&, absl::string_view) {});
    (void)rio::util::DecodeJsonString(text);
  }
  return 0;
}
