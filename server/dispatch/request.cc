#include "server/dispatch/request.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/util/crypto.h"
#include "server/util/json.h"

namespace rio::dispatch {
namespace {

constexpr absl::string_view kSecretPrefix = "whsec_";

bool IsFormSafe(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*';
}

void AppendFormUrlEncoded(absl::string_view bytes, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char ch : bytes) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (IsFormSafe(c)) {
      out->push_back(ch);
    } else if (c == ' ') {
      out->push_back('+');
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xF]);
    }
  }
}

}  // namespace

std::string FormUrlEncode(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  AppendFormUrlEncoded(bytes, &out);
  return out;
}

std::string FormEncode(absl::string_view json_object) {
  std::string out;
  out.reserve(json_object.size());
  util::ForEachMember(json_object, [&out](const std::string& key,
                                          absl::string_view raw_value) {
    if (!out.empty()) out.push_back('&');
    AppendFormUrlEncoded(key, &out);
    out.push_back('=');
    AppendFormUrlEncoded(raw_value[0] == '"' ? util::DecodeJsonString(raw_value)
                                             : util::CompactJson(raw_value),
                         &out);
  });
  return out;
}

absl::StatusOr<std::string> SignStandardWebhook(absl::string_view secret,
                                                absl::string_view message_id,
                                                int64_t timestamp,
                                                absl::string_view content) {
  absl::ConsumePrefix(&secret, kSecretPrefix);
  const std::optional<std::string> key = util::Base64Decode(secret);
  if (!key.has_value()) {
    return absl::InvalidArgumentError(
        "signing secret is not valid base64 (expected whsec_<base64>)");
  }
  if (key->empty()) {
    return absl::InvalidArgumentError("signing secret is empty");
  }
  // Signed as message_id.timestamp.content, without copying the content.
  const absl::AlphaNum timestamp_text(timestamp);
  return absl::StrCat(
      "v1,",
      util::Base64Encode(util::HmacSha256Concat(
          *key, {message_id, ".", timestamp_text.Piece(), ".", content})));
}

std::string AppendQuery(absl::string_view url, absl::string_view query) {
  if (query.empty()) return std::string(url);
  absl::string_view fragment;
  if (const size_t hash = url.find('#'); hash != absl::string_view::npos) {
    fragment = url.substr(hash);
    url = url.substr(0, hash);
  }
  absl::string_view separator = "?";
  if (url.find('?') != absl::string_view::npos) {
    separator = absl::EndsWith(url, "?") || absl::EndsWith(url, "&") ? "" : "&";
  }
  return absl::StrCat(url, separator, query, fragment);
}

absl::string_view QueryOf(absl::string_view url) {
  url = url.substr(0, url.find('#'));
  const size_t question = url.find('?');
  if (question == absl::string_view::npos) return absl::string_view();
  return url.substr(question + 1);
}

void AppendRedactedUrl(absl::string_view url, std::string* out) {
  static constexpr absl::string_view kRedacted =
      "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2";  // "•••"
  absl::string_view rest = url;
  if (const size_t scheme_end = rest.find("://");
      scheme_end != absl::string_view::npos &&
      rest.find_first_of("/?#") > scheme_end) {
    absl::StrAppend(out, rest.substr(0, scheme_end + 3));
    rest.remove_prefix(scheme_end + 3);
    const absl::string_view authority =
        rest.substr(0, rest.find_first_of("/?#"));
    if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      absl::StrAppend(out, kRedacted, "@");
      rest.remove_prefix(at + 1);
    }
  }
  const size_t path_end = rest.find_first_of("?#");
  absl::StrAppend(out, rest.substr(0, path_end));
  if (path_end == absl::string_view::npos) return;
  rest.remove_prefix(path_end);
  if (rest[0] == '?') {
    const size_t query_end = std::min(rest.find('#'), rest.size());
    out->push_back('?');
    if (query_end > 1) absl::StrAppend(out, kRedacted);
    rest.remove_prefix(query_end);
    if (rest.empty()) return;
  }
  // A fragment: '#' and what follows.
  out->push_back('#');
  if (rest.size() > 1) absl::StrAppend(out, kRedacted);
}

std::string RedactUrl(absl::string_view url) {
  std::string out;
  out.reserve(url.size());
  AppendRedactedUrl(url, &out);
  return out;
}

}  // namespace rio::dispatch
