// Form bodies and target URLs (server/dispatch/request.h): FormUrlEncode,
// FormEncode of a validated payload, AppendQuery, QueryOf (what a GET is
// signed over) and RedactUrl (what the log shows).
//
// Invariants: encoders emit only the bytes the form serializer allows and
// decode back to their input; FormEncode gives one key=value pair per
// member, in order; AppendQuery keeps the URL, the query and the fragment,
// and QueryOf of its result is the URL's query joined with the one added;
// RedactUrl keeps what precedes the query and fragment (less userinfo),
// shows a query and a fragment as "•••" at most, and is idempotent.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/dispatch/request.h"
#include "server/util/json.h"
#include "tests/fuzz/fuzz_check.h"

namespace rio::fuzz {
namespace {

bool IsFormByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '*' || c == '+' || c == '%';
}

// Only unreserved bytes, '+' and %XX with upper-case hex.
void CheckFormEncoded(absl::string_view encoded) {
  for (size_t i = 0; i < encoded.size(); ++i) {
    FUZZ_CHECK(IsFormByte(encoded[i]));
    if (encoded[i] == '%') {
      FUZZ_CHECK(i + 2 < encoded.size());
      for (size_t k = i + 1; k <= i + 2; ++k) {
        const char c = encoded[k];
        FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
      }
    }
  }
}

void CheckFormUrlEncode(absl::string_view bytes) {
  const std::string encoded = dispatch::FormUrlEncode(bytes);
  CheckFormEncoded(encoded);
  std::string decoded;
  FUZZ_CHECK(FormUrlDecode(encoded, &decoded));
  FUZZ_CHECK(decoded == bytes);
}

void CheckFormEncode(absl::string_view json) {
  if (!util::ValidateJsonObject("payload", json).ok()) return;
  std::vector<std::pair<std::string, std::string>> members;
  util::ForEachMember(json, [&](const std::string& key, absl::string_view raw) {
    members.emplace_back(key, raw.front() == '"' ? util::DecodeJsonString(raw)
                                                 : util::CompactJson(raw));
  });
  const std::string body = dispatch::FormEncode(json);
  if (members.empty()) {
    FUZZ_CHECK(body.empty());
    return;
  }
  const std::vector<absl::string_view> pairs = absl::StrSplit(body, '&');
  FUZZ_CHECK(pairs.size() == members.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const std::vector<absl::string_view> kv =
        absl::StrSplit(pairs[i], absl::MaxSplits('=', 1));
    FUZZ_CHECK(kv.size() == 2);
    CheckFormEncoded(kv[0]);
    CheckFormEncoded(kv[1]);
    std::string key, value;
    FUZZ_CHECK(FormUrlDecode(kv[0], &key) && key == members[i].first);
    FUZZ_CHECK(FormUrlDecode(kv[1], &value) && value == members[i].second);
  }
}

void CheckAppendQuery(absl::string_view url, absl::string_view query) {
  const std::string result = dispatch::AppendQuery(url, query);
  if (query.empty()) {
    FUZZ_CHECK(result == url);
    return;
  }
  const size_t hash = url.find('#');
  const absl::string_view base = url.substr(0, hash);
  const absl::string_view fragment =
      hash == absl::string_view::npos ? "" : url.substr(hash);
  FUZZ_CHECK(absl::StartsWith(result, base));
  FUZZ_CHECK(absl::EndsWith(result, fragment));
  FUZZ_CHECK(result.size() <= base.size() + 1 + query.size() + fragment.size());
  // Between the URL and the fragment: a separator (unless the URL ends with
  // one) and then the query.
  absl::string_view middle(result);
  middle.remove_prefix(base.size());
  middle.remove_suffix(fragment.size());
  FUZZ_CHECK(absl::EndsWith(middle, query));
  middle.remove_suffix(query.size());
  const bool has_query = base.find('?') != absl::string_view::npos;
  if (!has_query) {
    FUZZ_CHECK(middle == "?");
  } else if (absl::EndsWith(base, "?") || absl::EndsWith(base, "&")) {
    FUZZ_CHECK(middle.empty());
  } else {
    FUZZ_CHECK(middle == "&");
  }
}

// The query Rio signs for a GET is the handler URL's own query and then the
// payload's, exactly as appended.
void CheckQueryOf(absl::string_view url, absl::string_view query) {
  const absl::string_view base = url.substr(0, url.find('#'));
  const size_t question = base.find('?');
  const absl::string_view own = dispatch::QueryOf(url);
  if (question == absl::string_view::npos) {
    FUZZ_CHECK(own.empty());
  } else {
    FUZZ_CHECK(own == base.substr(question + 1));
  }
  if (base.size() != url.size() || query.empty() ||
      query.find('#') != absl::string_view::npos) {
    return;  // Handler URLs have no fragment; FormEncode never makes '#'.
  }
  const std::string sent = dispatch::AppendQuery(url, query);
  if (question == absl::string_view::npos || absl::EndsWith(url, "?") ||
      absl::EndsWith(url, "&")) {
    FUZZ_CHECK(dispatch::QueryOf(sent) == absl::StrCat(own, query));
  } else {
    FUZZ_CHECK(dispatch::QueryOf(sent) == absl::StrCat(own, "&", query));
  }
}

void CheckRedactUrl(absl::string_view url) {
  constexpr absl::string_view kDots = "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2";
  const std::string redacted = dispatch::RedactUrl(url);
  FUZZ_CHECK(dispatch::RedactUrl(redacted) == redacted);
  const absl::string_view query = dispatch::QueryOf(redacted);
  FUZZ_CHECK(query.empty() || query == kDots);
  // Up to the query or fragment, the URL is kept, but for userinfo.
  const absl::string_view head = url.substr(0, url.find_first_of("?#"));
  const absl::string_view shown =
      absl::string_view(redacted).substr(0, redacted.find_first_of("?#"));
  if (head.find('@') == absl::string_view::npos) {
    FUZZ_CHECK(shown == head);
  } else {
    FUZZ_CHECK(absl::EndsWith(head, shown.substr(shown.rfind('@') + 1)));
  }
  // What follows is at most "?•••" and "#•••".
  absl::string_view tail = absl::string_view(redacted).substr(shown.size());
  if (absl::ConsumePrefix(&tail, "?")) absl::ConsumePrefix(&tail, kDots);
  if (absl::ConsumePrefix(&tail, "#")) absl::ConsumePrefix(&tail, kDots);
  FUZZ_CHECK(tail.empty());
}

}  // namespace
}  // namespace rio::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view whole(reinterpret_cast<const char*>(data), size);
  rio::fuzz::CheckFormUrlEncode(whole);
  rio::fuzz::CheckFormEncode(whole);
  FuzzedDataProvider provider(data, size);
  const std::string url = provider.ConsumeRandomLengthString(4096);
  const std::string query = provider.ConsumeRemainingBytesAsString();
  rio::fuzz::CheckAppendQuery(url, query);
  rio::fuzz::CheckQueryOf(url, query);
  rio::fuzz::CheckRedactUrl(url);
  return 0;
}
