#include "server/util/validation.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/utf8.h"

namespace rio::util {
namespace {

constexpr size_t kMaxNameLength = 128;
constexpr size_t kMaxDisplayNameBytes = 256;
constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxHeaders = 64;
constexpr size_t kMaxHeaderBytes = 8192;

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '-';
}

// RFC 9110 tchar.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
         absl::string_view::npos;
}

// Quotes a user value for an error message, shortened and with control
// characters escaped so the message stays one readable line.
std::string Quote(absl::string_view value) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : value) {
    if (++n > 80) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  out += "\"";
  return out;
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (value.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", kMaxNameLength, " characters (",
                     value.size(), ")"));
  }
  for (char c : value) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", Quote(value),
                       " may contain only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDisplayName(absl::string_view field,
                                 absl::string_view value) {
  if (value.size() > kMaxDisplayNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is longer than ", kMaxDisplayNameBytes, " bytes"));
  }
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is not valid UTF-8"));
  }
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " contains control characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateWebhookUrl(absl::string_view field,
                                absl::string_view url) {
  if (url.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (url.size() > kMaxUrlBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", kMaxUrlBytes, " bytes"));
  }
  for (char c : url) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", Quote(url),
                       " contains whitespace or control characters"));
    }
  }
  absl::string_view rest;
  std::string lower = absl::AsciiStrToLower(url.substr(0, 8));
  if (absl::StartsWith(lower, "http://")) {
    rest = url.substr(7);
  } else if (absl::StartsWith(lower, "https://")) {
    rest = url.substr(8);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " ", Quote(url), " must start with http:// or https://"));
  }
  if (url.find('#') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", Quote(url), " must not have a fragment"));
  }
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " ", Quote(url),
        " must not carry credentials; use handler headers instead"));
  }
  absl::string_view host = authority;
  absl::string_view port;
  if (absl::StartsWith(host, "[")) {
    size_t close = host.find(']');
    if (close == absl::string_view::npos || close == 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", Quote(url), " has a malformed IPv6 host"));
    }
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty()) {
      if (port[0] != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " ", Quote(url), " has a malformed host"));
      }
      port.remove_prefix(1);
    }
  } else {
    size_t colon = host.rfind(':');
    if (colon != absl::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", Quote(url), " has no host"));
  }
  if (authority.size() > 0 && authority.back() == ':') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", Quote(url), " has an empty port"));
  }
  if (!port.empty()) {
    int value = 0;
    for (char c : port) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
          (value = value * 10 + (c - '0')) > 65535) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " ", Quote(url), " has an invalid port"));
      }
    }
    if (value == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " ", Quote(url), " has an invalid port"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTimeoutMs(absl::string_view field, int64_t timeout_ms) {
  if (timeout_ms < 1 || timeout_ms > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be between 1 and ", kMaxTimeoutMs,
                     " milliseconds (got ", timeout_ms, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateHeaders(
    absl::string_view field,
    const std::map<std::string, std::string>& headers) {
  if (headers.size() > kMaxHeaders) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " has more than ", kMaxHeaders, " entries"));
  }
  static constexpr absl::string_view kReserved[] = {"content-type",
                                                    "content-length",
                                                    "host",
                                                    "user-agent",
                                                    "connection",
                                                    "keep-alive",
                                                    "transfer-encoding",
                                                    "te",
                                                    "trailer",
                                                    "upgrade",
                                                    "proxy-connection",
                                                    "expect"};
  size_t total = 0;
  for (const auto& [name, value] : headers) {
    total += name.size() + value.size();
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has an empty header name"));
    }
    for (char c : name) {
      if (!IsTokenChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " name ", Quote(name), " is not a valid HTTP header name"));
      }
    }
    std::string lower = absl::AsciiStrToLower(name);
    for (absl::string_view reserved : kReserved) {
      if (lower == reserved) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " may not set ", Quote(name), "; Rio sets it itself"));
      }
    }
    if (absl::StartsWith(lower, "webhook-") ||
        absl::StartsWith(lower, "x-rio-")) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " may not set ", Quote(name), "; Rio sets it itself"));
    }
    for (char c : value) {
      if (c == '\r' || c == '\n' || c == '\0') {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " value of ", Quote(name),
                         " may not contain CR, LF or NUL"));
      }
    }
  }
  if (total > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " are larger than ", kMaxHeaderBytes, " bytes in total"));
  }
  return absl::OkStatus();
}

absl::Status ValidateUuid(absl::string_view field, absl::string_view value,
                          absl::string_view what) {
  if (value.empty())
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  bool ok = value.size() == 36;
  for (size_t i = 0; ok && i < value.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    ok = dash ? value[i] == '-'
              : absl::ascii_isxdigit(static_cast<unsigned char>(value[i]));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", Quote(value), " is not ", what));
  }
  return absl::OkStatus();
}

}  // namespace rio::util
