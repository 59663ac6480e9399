// Mirrors the Python SDK's rio_client.dsn (urllib.parse.urlsplit rules), so
// that one DSN means the same thing, and fails with the same message, in
// every SDK.
#include "rio/dsn.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rio {
namespace {

constexpr char kForm[] = "rio://SENDER:TOKEN@HOST:PORT/PROJECT";
constexpr char kNameRule[] = "use 1-128 letters, digits, '.', '_' or '-'";

// Rio's rule for slugs and sender names.
bool IsName(absl::string_view text) {
  if (text.empty() || text.size() > 128) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

// Replaces a DSN-looking token (at the start, or after "://") with ***.
std::string Redact(absl::string_view text) {
  // At `start`: [^:/]* ':' [^/]* '@' -> keep through ':', then "***@". As
  // when the DSN is parsed, the sender runs to the first ':' and the token
  // to the last '@' before any '/', so that a token is hidden whole even
  // when it or the sender has an '@' in it.
  auto redact_at = [&](size_t start, std::string* out) -> size_t {
    size_t i = start;
    while (i < text.size() && text[i] != ':' && text[i] != '/') ++i;
    if (i >= text.size() || text[i] != ':') return absl::string_view::npos;
    const absl::string_view rest = text.substr(i + 1);
    const size_t j = rest.substr(0, rest.find('/')).rfind('@');
    if (j == absl::string_view::npos) return absl::string_view::npos;
    absl::StrAppend(out, text.substr(start, i + 1 - start), "***@");
    return i + 1 + j + 1;
  };
  std::string out;
  size_t done = 0;  // text[0, done) is in `out`.
  const size_t first = redact_at(0, &out);
  if (first != absl::string_view::npos) done = first;
  for (size_t at = text.find("://", done); at != absl::string_view::npos;
       at = text.find("://", done)) {
    absl::StrAppend(&out, text.substr(done, at + 3 - done));
    done = at + 3;
    const size_t end = redact_at(done, &out);
    if (end != absl::string_view::npos) done = end;
  }
  absl::StrAppend(&out, text.substr(done));
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding; a '%' not followed by two hex digits stays as it is.
std::string PercentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
        HexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(text[i + 1]) * 16 +
                                      HexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

absl::Status Invalid(absl::string_view shown, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("DSN '", shown, "' ", problem));
}

absl::Status InvalidExpected(absl::string_view shown,
                             absl::string_view problem) {
  return Invalid(shown, absl::StrCat(problem, "; expected ", kForm));
}

}  // namespace

bool Dsn::tls() const { return scheme == "rios" || scheme == "https"; }

std::string Dsn::target() const {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::string Dsn::ToString() const {
  return absl::StrCat(scheme, "://", sender, ":***@", target(), "/", project);
}

std::ostream& operator<<(std::ostream& out, const Dsn& dsn) {
  return out << dsn.ToString();
}

absl::StatusOr<Dsn> ParseDsn(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the DSN is empty; expected ", kForm));
  }
  const std::string shown = Redact(text);
  const size_t scheme_end = text.find("://");
  if (scheme_end == absl::string_view::npos) {
    return InvalidExpected(shown, "has no scheme");
  }

  // scheme://netloc/path?query#fragment
  absl::string_view rest = text.substr(scheme_end + 3);
  const size_t netloc_end = rest.find_first_of("/?#");
  const absl::string_view netloc = rest.substr(0, netloc_end);
  rest = netloc_end == absl::string_view::npos ? absl::string_view()
                                               : rest.substr(netloc_end);
  absl::string_view fragment;
  if (const size_t hash = rest.find('#'); hash != absl::string_view::npos) {
    fragment = rest.substr(hash + 1);
    rest = rest.substr(0, hash);
  }
  absl::string_view query;
  if (const size_t question = rest.find('?');
      question != absl::string_view::npos) {
    query = rest.substr(question + 1);
    rest = rest.substr(0, question);
  }
  const absl::string_view path = rest;

  // userinfo@hostinfo, split at the last '@'.
  const size_t at = netloc.rfind('@');
  const bool has_userinfo = at != absl::string_view::npos;
  const absl::string_view userinfo =
      has_userinfo ? netloc.substr(0, at) : absl::string_view();
  const absl::string_view hostinfo =
      has_userinfo ? netloc.substr(at + 1) : netloc;

  if (absl::StrContains(hostinfo, '[') != absl::StrContains(hostinfo, ']')) {
    return Invalid(shown, "is not a URL: Invalid IPv6 URL");
  }
  absl::string_view host;
  absl::string_view port_text;
  bool has_port_colon = false;
  if (const size_t open = hostinfo.find('['); open != absl::string_view::npos) {
    const size_t close = hostinfo.find(']', open);
    if (open != 0 || close == absl::string_view::npos) {
      return Invalid(shown, "is not a URL: Invalid IPv6 URL");
    }
    host = hostinfo.substr(1, close - 1);
    in6_addr ignored;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &ignored) != 1) {
      return Invalid(shown, absl::StrCat("is not a URL: '", host,
                                         "' is not an IPv6 address"));
    }
    const absl::string_view after = hostinfo.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':')
        return Invalid(shown, "has an invalid port; use 1-65535");
      has_port_colon = true;
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = hostinfo.find(':');
    host = hostinfo.substr(0, colon);
    if (colon != absl::string_view::npos) {
      has_port_colon = true;
      port_text = hostinfo.substr(colon + 1);
    }
  }

  Dsn dsn;
  dsn.scheme = absl::AsciiStrToLower(text.substr(0, scheme_end));
  if (dsn.scheme != "rio" && dsn.scheme != "http" && dsn.scheme != "rios" &&
      dsn.scheme != "https") {
    return Invalid(shown, absl::StrCat("has scheme '", dsn.scheme,
                                       "'; use rio:// or http:// (plaintext), "
                                       "rios:// or https:// (TLS)"));
  }
  if (!query.empty() || !fragment.empty()) {
    return InvalidExpected(shown, "may not have a query or fragment");
  }

  const size_t colon = userinfo.find(':');
  const absl::string_view sender = userinfo.substr(0, colon);
  if (!has_userinfo || sender.empty()) {
    return InvalidExpected(shown, "has no sender name");
  }
  if (colon == absl::string_view::npos || colon + 1 == userinfo.size()) {
    return InvalidExpected(shown, "has no token after the sender name");
  }
  dsn.sender = PercentDecode(sender);
  dsn.token = PercentDecode(userinfo.substr(colon + 1));
  if (!IsName(dsn.sender)) {
    return Invalid(
        shown, absl::StrCat("has sender name '", dsn.sender, "'; ", kNameRule));
  }

  if (host.empty()) return InvalidExpected(shown, "has no host");
  dsn.host = absl::AsciiStrToLower(host);

  if (port_text.empty()) {
    if (has_port_colon) {
      return Invalid(shown, "has an empty port; use 1-65535 or leave it out");
    }
    dsn.port = kDefaultPort;
  } else {
    uint32_t port = 0;
    const bool digits =
        std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit);
    if (!digits || !absl::SimpleAtoi(port_text, &port) || port > 65535) {
      return Invalid(shown, "has an invalid port; use 1-65535");
    }
    if (port == 0) return Invalid(shown, "has port 0; use 1-65535");
    dsn.port = static_cast<int>(port);
  }

  const std::vector<absl::string_view> segments =
      absl::StrSplit(path, '/', absl::SkipEmpty());
  if (segments.empty()) {
    return InvalidExpected(shown, "names no project (the last path segment)");
  }
  dsn.project = PercentDecode(segments.back());
  if (!IsName(dsn.project)) {
    return Invalid(
        shown, absl::StrCat("names project '", dsn.project, "'; ", kNameRule));
  }
  return dsn;
}

}  // namespace rio
