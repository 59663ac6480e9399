// The secret key file (--secret_key_file) and sealed values read back from
// the database (server/util/secret_box.h).
//
// Invariants: a parsed key file has at least one key, every key 32 bytes
// under a unique id of 1-64 [A-Za-z0-9._-], and writing the keys back in the
// documented format parses to the same keys; an error is INVALID_ARGUMENT
// and starts with the line it is about (or says there is no key). No input
// opens as a sealed value without the key (a forgery), and a value that
// does not open fails with one of the documented codes; LooksSealed and
// SealedKeyId agree.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/crypto.h"
#include "server/util/secret_box.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  auto keys = rio::util::ParseSecretKeyFile(bytes);
  if (keys.ok()) {
    FUZZ_CHECK(!keys->empty());
    std::string again;
    for (size_t i = 0; i < keys->size(); ++i) {
      const rio::util::SecretKey& key = (*keys)[i];
      FUZZ_CHECK(key.key.size() == rio::util::kSecretKeyBytes);
      FUZZ_CHECK(ValidId(key.id));
      for (size_t j = 0; j < i; ++j) FUZZ_CHECK((*keys)[j].id != key.id);
      absl::StrAppend(&again, key.id, " ", rio::util::Base64Encode(key.key),
                      "\n");
    }
    auto reparsed = rio::util::ParseSecretKeyFile(again);
    FUZZ_CHECK(reparsed.ok());
    FUZZ_CHECK(reparsed->size() == keys->size());
    for (size_t i = 0; i < keys->size(); ++i) {
      FUZZ_CHECK((*reparsed)[i].id == (*keys)[i].id);
      FUZZ_CHECK((*reparsed)[i].key == (*keys)[i].key);
    }
  } else {
    FUZZ_CHECK(keys.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(keys.status().message(), "line ") ||
               absl::StartsWith(keys.status().message(), "no key"));
  }

  // The same bytes as a stored value, opened with keys the input cannot
  // know.
  static const rio::util::SecretBox* const box = [] {
    auto created = rio::util::SecretBox::Create(
        {{"k1", std::string(rio::util::kSecretKeyBytes, '\x01')},
         {"k2", std::string(rio::util::kSecretKeyBytes, '\x02')}});
    FUZZ_CHECK(created.ok());
    return new rio::util::SecretBox(*std::move(created));
  }();
  auto opened = box->Open(bytes, "handler h signing secret");
  FUZZ_CHECK(!opened.ok());
  const absl::StatusCode code = opened.status().code();
  FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
             code == absl::StatusCode::kNotFound ||
             code == absl::StatusCode::kDataLoss);
  FUZZ_CHECK(rio::util::LooksSealed(bytes) ==
             rio::util::SealedKeyId(bytes).ok());
  FUZZ_CHECK((code == absl::StatusCode::kInvalidArgument) !=
             rio::util::LooksSealed(bytes));
  return 0;
}
