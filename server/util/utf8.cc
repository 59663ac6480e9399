#include "server/util/utf8.h"

namespace rio::util {
namespace {

constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

std::string ToValidUtf8(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // Length of the sequence `c` starts and the allowed range of its second
    // byte (narrower after E0, ED, F0 and F4: no overlongs, surrogates or
    // code points beyond U+10FFFF), per Unicode's table of well-formed
    // UTF-8.
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c == 0xE0) {
      length = 3;
      low = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      length = 3;
    } else if (c == 0xED) {
      length = 3;
      high = 0x9F;
    } else if (c == 0xF0) {
      length = 4;
      low = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      length = 4;
    } else if (c == 0xF4) {
      length = 4;
      high = 0x8F;
    }
    size_t end = i + 1;  // past the longest well-formed prefix
    if (length > 0 && end < n) {
      const auto second = static_cast<unsigned char>(bytes[end]);
      if (second >= low && second <= high) {
        ++end;
        while (end < i + length && end < n &&
               (static_cast<unsigned char>(bytes[end]) & 0xC0) == 0x80) {
          ++end;
        }
      }
    }
    if (length > 0 && end == i + length) {
      out.append(bytes.data() + i, length);
    } else {
      out.append(kReplacementCharacter);
    }
    i = end;
  }
  return out;
}

}  // namespace rio::util
