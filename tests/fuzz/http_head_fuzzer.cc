// What a client sends to the HTTP listener: the request head parser
// (server/http/http_server.h, ParseRequestHead: Boost.Beast's parser and the
// checks around it) fed raw bytes.
//
// Invariants: the result is "incomplete", "parsed" or one of the documented
// error statuses; a parsed head ends with CRLF CRLF within the input and the
// 64 KiB cap, holds no folded line, has a token method, an origin-form path,
// lower-case token header names, field values without CR, LF or NUL, a body
// of at most 8 MiB and never Transfer-Encoding; any shorter prefix of it is
// incomplete.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/http/http_server.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
             absl::string_view::npos;
}

bool IsToken(absl::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

void CheckParsed(absl::string_view in, const rio::http::RequestHead& head) {
  FUZZ_CHECK(head.head_bytes >= 4 && head.head_bytes <= in.size());
  FUZZ_CHECK(head.head_bytes <= 64 * 1024);
  FUZZ_CHECK(in.substr(head.head_bytes - 4, 4) == "\r\n\r\n");
  const absl::string_view raw = in.substr(0, head.head_bytes);
  FUZZ_CHECK(!absl::StrContains(raw, "\r\n ") &&
             !absl::StrContains(raw, "\r\n\t"));
  FUZZ_CHECK(head.body_bytes <= 8 * 1024 * 1024);
  FUZZ_CHECK(head.request.body.empty());

  const rio::http::Request& request = head.request;
  FUZZ_CHECK(IsToken(request.method));
  FUZZ_CHECK(absl::StartsWith(request.path, "/"));
  FUZZ_CHECK(request.path.find('?') == std::string::npos);
  for (const char c : request.path + request.query) {
    const auto byte = static_cast<unsigned char>(c);
    FUZZ_CHECK(byte > 0x20 && byte < 0x7f);
  }
  for (const auto& [name, value] : request.headers) {
    FUZZ_CHECK(IsToken(name));
    FUZZ_CHECK(name == absl::AsciiStrToLower(name));
    for (const char c : value) {
      FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
    }
    // Trimmed; a repeated header's values are joined by ", ", so only the
    // first value's start is known to be a value's start.
    FUZZ_CHECK(value.empty() ||
               (value.front() != ' ' && value.front() != '\t'));
  }
  FUZZ_CHECK(request.headers.count("transfer-encoding") == 0);
  if (head.http10) FUZZ_CHECK(!head.expect_continue);
  if (head.body_bytes > 0) {
    FUZZ_CHECK(request.headers.count("content-length") == 1);
  }

  // The head was not complete one byte earlier.
  rio::http::RequestHead shorter;
  FUZZ_CHECK(rio::http::ParseRequestHead(in.substr(0, head.head_bytes - 1),
                                         &shorter) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  rio::http::RequestHead head;
  const int result = rio::http::ParseRequestHead(in, &head);
  switch (result) {
    case 0:
      FUZZ_CHECK(in.size() <= 64 * 1024);
      FUZZ_CHECK(head.head_bytes == 0 && head.request.method.empty());
      break;
    case 200:
      CheckParsed(in, head);
      break;
    case 400:
    case 411:
    case 413:
    case 417:
    case 431:
    case 505:
      FUZZ_CHECK(head.head_bytes == 0 && head.request.method.empty());
      break;
    default:
      FUZZ_CHECK(false && "undocumented result");
  }
  return 0;
}
