// Sender DSNs of the C++ SDK (sdk/cpp/include/rio/dsn.h), which come from
// users and the environment.
//
// Invariants: a parsed DSN has a known scheme, a non-empty lower-case host,
// a port in 1-65535 and valid sender and project names; written out again
// (token percent-encoded) it parses to the same DSN; neither ToString() nor
// an error message shows the token.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rio/dsn.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool IsName(absl::string_view text) {
  if (text.empty() || text.size() > 128) return false;
  for (const char c : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string PercentEncodeAll(absl::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    absl::StrAppend(&out, "%",
                    absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
  }
  return out;
}

std::string PercentDecode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        rio::fuzz::HexDigitValue(text[i + 1]) >= 0 &&
        rio::fuzz::HexDigitValue(text[i + 2]) >= 0) {
      out.push_back(
          static_cast<char>(rio::fuzz::HexDigitValue(text[i + 1]) * 16 +
                            rio::fuzz::HexDigitValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

size_t CountOccurrences(absl::string_view haystack, absl::string_view needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != absl::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

void CheckParsed(const rio::Dsn& dsn) {
  FUZZ_CHECK(dsn.scheme == "rio" || dsn.scheme == "rios" ||
             dsn.scheme == "http" || dsn.scheme == "https");
  FUZZ_CHECK(!dsn.host.empty());
  FUZZ_CHECK(dsn.host == absl::AsciiStrToLower(dsn.host));
  FUZZ_CHECK(dsn.port >= 1 && dsn.port <= 65535);
  FUZZ_CHECK(IsName(dsn.sender));
  FUZZ_CHECK(IsName(dsn.project));
  FUZZ_CHECK(!dsn.token.empty());
  FUZZ_CHECK(absl::StrContains(dsn.ToString(), ":***@"));

  const std::string again = absl::StrCat(dsn.scheme, "://", dsn.sender, ":",
                                         PercentEncodeAll(dsn.token), "@",
                                         dsn.target(), "/", dsn.project);
  const absl::StatusOr<rio::Dsn> reparsed = rio::ParseDsn(again);
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(reparsed->scheme == dsn.scheme);
  FUZZ_CHECK(reparsed->host == dsn.host);
  FUZZ_CHECK(reparsed->port == dsn.port);
  FUZZ_CHECK(reparsed->sender == dsn.sender);
  FUZZ_CHECK(reparsed->token == dsn.token);
  FUZZ_CHECK(reparsed->project == dsn.project);
}

// The token as written: after "://", before the first of "/?#", in the
// userinfo before the last '@', after its first ':'.
std::string TokenIn(absl::string_view text) {
  const size_t scheme_end = text.find("://");
  if (scheme_end == absl::string_view::npos) return "";
  absl::string_view netloc = text.substr(scheme_end + 3);
  netloc = netloc.substr(0, netloc.find_first_of("/?#"));
  const size_t at = netloc.rfind('@');
  if (at == absl::string_view::npos) return "";
  const absl::string_view userinfo = netloc.substr(0, at);
  const size_t colon = userinfo.find(':');
  if (colon == absl::string_view::npos) return "";
  return std::string(userinfo.substr(colon + 1));
}

// The fixed parts of the parser's messages, lower-cased.
constexpr absl::string_view kMessageParts[] = {
    "the dsn is empty; expected rio://sender:token@host:port/project",
    "' has no scheme; expected rio://sender:token@host:port/project",
    "' has scheme '",
    "'; use rio:// or http:// (plaintext), rios:// or https:// (tls)",
    "' may not have a query or fragment; expected "
    "rio://sender:token@host:port/project",
    "' has no sender name; expected rio://sender:token@host:port/project",
    "' has no token after the sender name; expected "
    "rio://sender:token@host:port/project",
    "' has sender name '",
    "'; use 1-128 letters, digits, '.', '_' or '-'",
    "' has no host; expected rio://sender:token@host:port/project",
    "' is not a url: invalid ipv6 url",
    "' is not a url: '",
    "' is not an ipv6 address",
    "' has an empty port; use 1-65535 or leave it out",
    "' has an invalid port; use 1-65535",
    "' has port 0; use 1-65535",
    "' names no project (the last path segment); expected "
    "rio://sender:token@host:port/project",
    "' names project '",
};

void CheckRefused(absl::string_view text, const absl::Status& status) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  // Only a token long and unique enough not to be found in the message by
  // coincidence (as part of the host or the message's own words, say) is
  // looked for.
  const std::string token =
      absl::AsciiStrToLower(TokenIn(absl::StripAsciiWhitespace(text)));
  // Every part of a message taken from the input is quoted, so a token
  // without a quote cannot be made by a quoted part and fixed text together,
  // and one without '*' cannot be made by the redaction's "***".
  // A percent-encoded token is left out: its decoded form may also be made
  // by decoding raw text elsewhere.
  if (token.size() < 6 || token.find_first_of("'*%") != std::string::npos) {
    return;
  }
  for (const absl::string_view part : kMessageParts) {
    if (absl::StrContains(part, token)) return;
  }
  // Messages show some parts as written and some decoded.
  if (CountOccurrences(absl::AsciiStrToLower(text), token) != 1 ||
      CountOccurrences(absl::AsciiStrToLower(PercentDecode(text)), token) !=
          1) {
    return;
  }
  FUZZ_CHECK(
      !absl::StrContains(absl::AsciiStrToLower(status.message()), token));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<rio::Dsn> dsn = rio::ParseDsn(text);
  if (dsn.ok()) {
    CheckParsed(*dsn);
  } else {
    CheckRefused(text, dsn.status());
  }
  return 0;
}
