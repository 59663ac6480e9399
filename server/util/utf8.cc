#include "server/util/utf8.h"

#include <algorithm>

namespace rio::util {
namespace {

constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";  // U+FFFD

// For the non-ASCII byte at bytes[i]: the length of the well-formed sequence
// it starts, or 0 when it starts none, with `*ill_formed` set to the length
// of the maximal ill-formed subpart there (at least 1).
size_t SequenceAt(absl::string_view bytes, size_t i, size_t* ill_formed) {
  const auto c = static_cast<unsigned char>(bytes[i]);
  // Length of the sequence `c` starts and the allowed range of its second
  // byte (narrower after E0, ED, F0 and F4: no overlongs, surrogates or code
  // points beyond U+10FFFF), per Unicode's table of well-formed UTF-8.
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
  const size_t n = bytes.size();
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
  if (length > 0 && end == i + length) return length;
  *ill_formed = end - i;
  return 0;
}

// ToValidUtf8, with NUL replaced too when `replace_nul`.
std::string Repair(absl::string_view bytes, bool replace_nul) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      if (c == 0 && replace_nul) {
        out.append(kReplacementCharacter);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    size_t ill_formed = 0;
    if (size_t length = SequenceAt(bytes, i, &ill_formed); length > 0) {
      out.append(bytes.data() + i, length);
      i += length;
    } else {
      out.append(kReplacementCharacter);
      i += ill_formed;
    }
  }
  return out;
}

// Whether `s` is valid UTF-8, and free of NUL when `no_nul`.
bool Clean(absl::string_view s, bool no_nul) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == 0 && no_nul) return false;
      ++i;
      continue;
    }
    size_t ill_formed = 0;
    const size_t length = SequenceAt(s, i, &ill_formed);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

}  // namespace

bool IsValidUtf8(absl::string_view s) { return Clean(s, /*no_nul=*/false); }

std::string ToValidUtf8(absl::string_view bytes) {
  return Repair(bytes, /*replace_nul=*/false);
}

bool MakeStorableText(std::string* text) {
  if (Clean(*text, /*no_nul=*/true)) return false;
  *text = Repair(*text, /*replace_nul=*/true);
  return true;
}

}  // namespace rio::util
