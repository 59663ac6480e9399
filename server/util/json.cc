#include "server/util/json.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rio::util {
namespace {

bool IsJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value of the four hex digits at `at`: -1 if one is not a hex digit,
// -2 if the text ends first.
int Hex4(absl::string_view text, size_t at) {
  int value = 0;
  for (size_t i = at; i < at + 4; ++i) {
    if (i >= text.size()) return -2;
    const int digit = HexValue(text[i]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

bool IsHighSurrogate(int u) { return u >= 0xD800 && u <= 0xDBFF; }
bool IsLowSurrogate(int u) { return u >= 0xDC00 && u <= 0xDFFF; }

size_t SkipSpace(absl::string_view text, size_t pos) {
  while (pos < text.size() && IsJsonSpace(text[pos])) ++pos;
  return pos;
}

// `text[pos]` is an opening quote; returns the index just past the closing
// quote, or text.size() if there is none. Does not validate.
size_t SkipString(absl::string_view text, size_t pos) {
  for (size_t i = pos + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return text.size();
}

// Returns the index just past the value that starts at `pos` (no leading
// whitespace). Containers are skipped by counting brackets outside strings,
// which is enough because the text has been validated.
size_t SkipValue(absl::string_view text, size_t pos) {
  if (pos >= text.size()) return pos;
  const char first = text[pos];
  if (first == '"') return SkipString(text, pos);
  if (first == '{' || first == '[') {
    int depth = 0;
    size_t i = pos;
    while (i < text.size()) {
      const char c = text[i];
      if (c == '"') {
        i = SkipString(text, i);
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return i + 1;
      }
      ++i;
    }
    return text.size();
  }
  // A number or a literal: it runs to the next delimiter.
  size_t i = pos;
  while (i < text.size() && !IsJsonSpace(text[i]) && text[i] != ',' &&
         text[i] != '}' && text[i] != ']') {
    ++i;
  }
  return i;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Appends the decoded contents of the string literal `literal` (quotes
// included) to `out`. Best effort on malformed input; never reads out of
// bounds.
void AppendDecodedString(absl::string_view literal, std::string* out) {
  const size_t n = literal.size();
  size_t i = (n > 0 && literal[0] == '"') ? 1 : 0;
  while (i < n) {
    // Copy the run up to the next quote or backslash in one append.
    size_t run_end = i;
    while (run_end < n && literal[run_end] != '"' && literal[run_end] != '\\') {
      ++run_end;
    }
    out->append(literal.data() + i, run_end - i);
    i = run_end;
    if (i + 1 >= n || literal[i] == '"') break;
    const char escape = literal[i + 1];
    i += 2;
    switch (escape) {
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        int unit = Hex4(literal, i);
        if (unit < 0) {
          out->append("\\u");
          break;
        }
        i += 4;
        uint32_t cp = static_cast<uint32_t>(unit);
        if (IsHighSurrogate(unit) && i + 1 < n && literal[i] == '\\' &&
            literal[i + 1] == 'u' && IsLowSurrogate(Hex4(literal, i + 2))) {
          const int low = Hex4(literal, i + 2);
          cp = 0x10000 + ((static_cast<uint32_t>(unit) - 0xD800) << 10) +
               (static_cast<uint32_t>(low) - 0xDC00);
          i += 6;
        } else if (IsHighSurrogate(unit) || IsLowSurrogate(unit)) {
          cp = 0xFFFD;  // A lone surrogate has no UTF-8 encoding.
        }
        AppendUtf8(cp, out);
        break;
      }
      default:  // '"', '\\', '/', or (unvalidated input) anything else.
        out->push_back(escape);
        break;
    }
  }
}

// Checks one JSON text with an explicit stack instead of recursion, so that
// hostile nesting costs at most kMaxJsonDepth bytes of stack. Allocates only
// to describe a failure.
class Validator {
 public:
  explicit Validator(absl::string_view text) : text_(text) {}

  // True iff the text is one JSON value with optional surrounding whitespace;
  // otherwise reason() and offset() describe the first problem.
  bool Run();

  const std::string& reason() const { return reason_; }
  size_t offset() const { return offset_; }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }

  bool Fail(std::string reason, size_t offset) {
    reason_ = std::move(reason);
    offset_ = offset;
    return false;
  }

  // The byte at `at` (or the end of input) is not what the grammar allows.
  bool Unexpected(size_t at) {
    if (at >= text_.size()) {
      return Fail("unexpected end of input", text_.size());
    }
    // Printable ASCII as itself, anything else as \xNN, so that the message
    // stays one readable line whatever the input.
    const unsigned char c = static_cast<unsigned char>(text_[at]);
    const std::string shown = c >= 0x20 && c < 0x7F
                                  ? std::string(1, static_cast<char>(c))
                                  : absl::StrFormat("\\x%02x", c);
    return Fail(absl::StrCat("unexpected character '", shown, "'"), at);
  }

  // Each scanner starts at the first byte of its token and, on success,
  // leaves pos_ just past it.
  bool ScanString();
  bool ScanEscape(size_t string_start);
  bool ScanUtf8Sequence();
  bool ScanNumber();
  bool ScanDigits();
  bool ScanLiteral(absl::string_view word);

  const absl::string_view text_;
  size_t pos_ = 0;
  std::string reason_;
  size_t offset_ = 0;
};

bool Validator::Run() {
  // The kind of each open container: '{' or '['.
  char open[kMaxJsonDepth];
  int depth = 0;
  enum class Next { kValue, kKey, kAfterValue };
  Next next = Next::kValue;
  for (;;) {
    pos_ = SkipSpace(text_, pos_);
    if (next == Next::kAfterValue) {
      if (depth == 0) break;
      if (AtEnd()) return Unexpected(pos_);
      const char c = text_[pos_];
      const bool in_object = open[depth - 1] == '{';
      if (c == ',') {
        ++pos_;
        next = in_object ? Next::kKey : Next::kValue;
      } else if (c == (in_object ? '}' : ']')) {
        ++pos_;
        --depth;
      } else {
        return Unexpected(pos_);
      }
      continue;
    }
    if (next == Next::kKey) {
      if (AtEnd() || text_[pos_] != '"') return Unexpected(pos_);
      if (!ScanString()) return false;
      pos_ = SkipSpace(text_, pos_);
      if (AtEnd() || text_[pos_] != ':') return Unexpected(pos_);
      ++pos_;
      next = Next::kValue;
      continue;
    }
    if (AtEnd()) return Unexpected(pos_);
    const char c = text_[pos_];
    if (c == '{' || c == '[') {
      if (depth == kMaxJsonDepth) {
        return Fail(absl::StrCat("nesting deeper than ", kMaxJsonDepth), pos_);
      }
      open[depth++] = c;
      pos_ = SkipSpace(text_, pos_ + 1);
      if (!AtEnd() && text_[pos_] == (c == '{' ? '}' : ']')) {
        ++pos_;
        --depth;
        next = Next::kAfterValue;
      } else {
        next = c == '{' ? Next::kKey : Next::kValue;
      }
      continue;
    }
    bool ok;
    if (c == '"') {
      ok = ScanString();
    } else if (c == '-' || IsDigit(c)) {
      ok = ScanNumber();
    } else if (c == 't') {
      ok = ScanLiteral("true");
    } else if (c == 'f') {
      ok = ScanLiteral("false");
    } else if (c == 'n') {
      ok = ScanLiteral("null");
    } else {
      return Unexpected(pos_);
    }
    if (!ok) return false;
    next = Next::kAfterValue;
  }
  if (!AtEnd()) return Fail("trailing characters", pos_);
  return true;
}

bool Validator::ScanString() {
  const size_t start = pos_;
  ++pos_;
  while (!AtEnd()) {
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      ++pos_;
      return true;
    }
    if (c == '\\') {
      if (!ScanEscape(start)) return false;
    } else if (c < 0x20) {
      return Fail("unescaped control character in string", pos_);
    } else if (c < 0x80) {
      ++pos_;
    } else if (!ScanUtf8Sequence()) {
      return false;
    }
  }
  return Fail("unterminated string", start);
}

bool Validator::ScanEscape(size_t string_start) {
  const size_t backslash = pos_;
  if (backslash + 1 >= text_.size()) {
    return Fail("unterminated string", string_start);
  }
  switch (text_[backslash + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
      pos_ += 2;
      return true;
    case 'u':
      break;
    default:
      return Fail("invalid escape", backslash);
  }
  const int unit = Hex4(text_, backslash + 2);
  if (unit == -2) return Fail("unterminated string", string_start);
  if (unit == -1) return Fail("invalid escape", backslash);
  pos_ = backslash + 6;
  if (IsLowSurrogate(unit)) return Fail("unpaired UTF-16 surrogate", backslash);
  if (!IsHighSurrogate(unit)) return true;
  // A high surrogate must be followed at once by an escaped low one, or the
  // string has no UTF-8 form.
  if (pos_ + 1 < text_.size() && text_[pos_] == '\\' &&
      text_[pos_ + 1] == 'u') {
    const int low = Hex4(text_, pos_ + 2);
    if (low == -2) return Fail("unterminated string", string_start);
    if (low == -1) return Fail("invalid escape", pos_);
    if (IsLowSurrogate(low)) {
      pos_ += 6;
      return true;
    }
  }
  return Fail("unpaired UTF-16 surrogate", backslash);
}

// Well-formed sequences per Unicode 15 table 3-7: no overlong forms, no
// encoded surrogates, nothing above U+10FFFF.
bool Validator::ScanUtf8Sequence() {
  const size_t start = pos_;
  const unsigned char lead = static_cast<unsigned char>(text_[start]);
  int continuation_bytes;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation_bytes = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuation_bytes = 2;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuation_bytes = 3;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return Fail("invalid UTF-8", start);
  }
  if (text_.size() - start <= static_cast<size_t>(continuation_bytes)) {
    return Fail("invalid UTF-8", start);
  }
  for (int i = 1; i <= continuation_bytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(text_[start + i]);
    const unsigned char min = i == 1 ? second_min : 0x80;
    const unsigned char max = i == 1 ? second_max : 0xBF;
    if (c < min || c > max) return Fail("invalid UTF-8", start);
  }
  pos_ = start + 1 + continuation_bytes;
  return true;
}

// number = [ "-" ] int [ frac ] [ exp ] (RFC 8259 section 6).
bool Validator::ScanNumber() {
  if (text_[pos_] == '-') ++pos_;
  if (!AtEnd() && text_[pos_] == '0') {
    ++pos_;
    if (!AtEnd() && IsDigit(text_[pos_])) {
      return Fail("leading zero in number", pos_ - 1);
    }
  } else if (!ScanDigits()) {
    return false;
  }
  if (!AtEnd() && text_[pos_] == '.') {
    ++pos_;
    if (!ScanDigits()) return false;
  }
  if (!AtEnd() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (!AtEnd() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (!ScanDigits()) return false;
  }
  return true;
}

// One or more digits.
bool Validator::ScanDigits() {
  if (AtEnd()) return Unexpected(pos_);
  if (!IsDigit(text_[pos_])) return Fail("invalid number", pos_);
  while (!AtEnd() && IsDigit(text_[pos_])) ++pos_;
  return true;
}

bool Validator::ScanLiteral(absl::string_view word) {
  for (size_t i = 0; i < word.size(); ++i) {
    if (pos_ + i >= text_.size() || text_[pos_ + i] != word[i]) {
      return Unexpected(pos_ + i);
    }
  }
  pos_ += word.size();
  return true;
}

}  // namespace

absl::Status ValidateJsonObject(absl::string_view field,
                                absl::string_view text) {
  Validator validator(text);
  if (!validator.Run()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is not valid JSON: ", validator.reason(),
                     " at byte ", validator.offset()));
  }
  // Valid JSON text starts with its value once whitespace is skipped.
  if (text[SkipSpace(text, 0)] != '{') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be a JSON object"));
  }
  return absl::OkStatus();
}

void ForEachMember(absl::string_view object,
                   const std::function<void(const std::string& key,
                                            absl::string_view raw_value)>& fn) {
  size_t pos = SkipSpace(object, 0);
  if (pos >= object.size() || object[pos] != '{') return;
  ++pos;
  std::string key;  // Reused so that members cost no allocation once grown.
  for (;;) {
    pos = SkipSpace(object, pos);
    if (pos >= object.size() || object[pos] != '"') return;  // '}' ends.
    const size_t key_end = SkipString(object, pos);
    key.clear();
    AppendDecodedString(object.substr(pos, key_end - pos), &key);
    pos = SkipSpace(object, key_end);
    if (pos >= object.size() || object[pos] != ':') return;
    pos = SkipSpace(object, pos + 1);
    const size_t value_end = SkipValue(object, pos);
    if (value_end == pos) return;
    fn(key, object.substr(pos, value_end - pos));
    pos = SkipSpace(object, value_end);
    if (pos >= object.size() || object[pos] != ',') return;
    ++pos;
  }
}

std::string DecodeJsonString(absl::string_view literal) {
  std::string out;
  out.reserve(literal.size());
  AppendDecodedString(literal, &out);
  return out;
}

std::string CompactJson(absl::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    if (raw[i] == '"') {
      const size_t end = SkipString(raw, i);
      out.append(raw.data() + i, end - i);
      i = end;
    } else {
      if (!IsJsonSpace(raw[i])) out.push_back(raw[i]);
      ++i;
    }
  }
  return out;
}

}  // namespace rio::util
