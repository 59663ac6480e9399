#include "tools/rioctl/output.h"

#include <algorithm>
#include <cstdint>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"

namespace rio::rioctl {
namespace {

// A JSON document with object members in their original order (protobuf's
// printer follows the .proto's field order, which reads best).
struct JsonNode {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  std::string text;  // kBool/kNumber: as written; kString: decoded.
  std::vector<JsonNode> items;
  std::vector<std::pair<std::string, JsonNode>> members;
};

class JsonReader {
 public:
  explicit JsonReader(absl::string_view text) : text_(text) {}

  bool Read(JsonNode* node) {
    if (!Value(node)) return false;
    SkipSpace();
    return pos_ == text_.size();
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() &&
           absl::ascii_isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }

  bool Value(JsonNode* node) {
    SkipSpace();
    if (pos_ >= text_.size()) return false;
    char c = text_[pos_];
    if (c == '{') {
      node->type = JsonNode::Type::kObject;
      ++pos_;
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == '}') return ++pos_, true;
      while (true) {
        SkipSpace();
        std::string key;
        if (!String(&key)) return false;
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != ':') return false;
        ++pos_;
        JsonNode child;
        if (!Value(&child)) return false;
        node->members.emplace_back(std::move(key), std::move(child));
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < text_.size() && text_[pos_] == '}') return ++pos_, true;
        return false;
      }
    }
    if (c == '[') {
      node->type = JsonNode::Type::kArray;
      ++pos_;
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ']') return ++pos_, true;
      while (true) {
        JsonNode child;
        if (!Value(&child)) return false;
        node->items.push_back(std::move(child));
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < text_.size() && text_[pos_] == ']') return ++pos_, true;
        return false;
      }
    }
    if (c == '"') {
      node->type = JsonNode::Type::kString;
      return String(&node->text);
    }
    size_t start = pos_;
    while (pos_ < text_.size() &&
           std::string_view(",]} \t\r\n").find(text_[pos_]) ==
               std::string_view::npos) {
      ++pos_;
    }
    node->text = std::string(text_.substr(start, pos_ - start));
    if (node->text == "null") {
      node->type = JsonNode::Type::kNull;
    } else if (node->text == "true" || node->text == "false") {
      node->type = JsonNode::Type::kBool;
    } else {
      double unused;
      if (!absl::SimpleAtod(node->text, &unused)) return false;
      node->type = JsonNode::Type::kNumber;
    }
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
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

  bool Hex4(uint32_t* value) {
    if (pos_ + 4 > text_.size()) return false;
    *value = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      int digit =
          absl::ascii_isdigit(static_cast<unsigned char>(h)) ? h - '0'
          : (absl::ascii_tolower(h) >= 'a' && absl::ascii_tolower(h) <= 'f')
              ? absl::ascii_tolower(h) - 'a' + 10
              : -1;
      if (digit < 0) return false;
      *value = *value * 16 + digit;
    }
    return true;
  }

  bool String(std::string* out) {
    if (pos_ >= text_.size() || text_[pos_] != '"') return false;
    ++pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return false;
      char e = text_[pos_++];
      switch (e) {
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 6 <= text_.size() &&
              text_[pos_] == '\\' && text_[pos_ + 1] == 'u') {
            pos_ += 2;
            uint32_t low;
            if (!Hex4(&low)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          out->push_back(e);
          break;
      }
    }
    return false;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

void WriteJson(const JsonNode& node, int indent, std::string* out) {
  const std::string pad(indent + 2, ' ');
  switch (node.type) {
    case JsonNode::Type::kNull:
      *out += "null";
      return;
    case JsonNode::Type::kBool:
    case JsonNode::Type::kNumber:
      *out += node.text;
      return;
    case JsonNode::Type::kString:
      *out += JsonQuote(node.text);
      return;
    case JsonNode::Type::kArray:
      if (node.items.empty()) {
        *out += "[]";
        return;
      }
      *out += "[\n";
      for (size_t i = 0; i < node.items.size(); ++i) {
        *out += pad;
        WriteJson(node.items[i], indent + 2, out);
        *out += i + 1 < node.items.size() ? ",\n" : "\n";
      }
      *out += std::string(indent, ' ') + "]";
      return;
    case JsonNode::Type::kObject:
      if (node.members.empty()) {
        *out += "{}";
        return;
      }
      *out += "{\n";
      for (size_t i = 0; i < node.members.size(); ++i) {
        *out += pad + JsonQuote(node.members[i].first) + ": ";
        WriteJson(node.members[i].second, indent + 2, out);
        *out += i + 1 < node.members.size() ? ",\n" : "\n";
      }
      *out += std::string(indent, ' ') + "}";
      return;
  }
}

// Whether YAML would read `text` unquoted as this very string.
bool PlainYamlSafe(absl::string_view text) {
  if (text.empty()) return false;
  if (absl::ascii_isspace(static_cast<unsigned char>(text.front())) ||
      absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    return false;
  }
  if (absl::string_view("-?:,[]{}#&*!|>'\"%@`").find(text.front()) !=
      absl::string_view::npos) {
    return false;
  }
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  if (text.find(": ") != absl::string_view::npos ||
      text.find(" #") != absl::string_view::npos || text.back() == ':') {
    return false;
  }
  std::string lower = absl::AsciiStrToLower(text);
  for (absl::string_view word : {"true", "false", "yes", "no", "on", "off", "y",
                                 "n", "null", "~", ".inf", ".nan"}) {
    if (lower == word) return false;
  }
  double number;
  if (absl::SimpleAtod(text, &number)) return false;
  if (lower.find_first_not_of("0123456789_:.+-eox") == std::string::npos) {
    return false;  // Octal, hex, sexagesimal and other numeric look-alikes.
  }
  return true;
}

std::string YamlScalar(const JsonNode& node) {
  switch (node.type) {
    case JsonNode::Type::kNull:
      return "null";
    case JsonNode::Type::kString:
      return PlainYamlSafe(node.text) ? node.text : JsonQuote(node.text);
    default:
      return node.text;
  }
}

bool IsCollection(const JsonNode& node) {
  return (node.type == JsonNode::Type::kArray && !node.items.empty()) ||
         (node.type == JsonNode::Type::kObject && !node.members.empty());
}

std::string YamlInline(const JsonNode& node) {
  if (node.type == JsonNode::Type::kArray) return "[]";
  if (node.type == JsonNode::Type::kObject) return "{}";
  return YamlScalar(node);
}

// Writes `node` as a block at `indent`; the caller has written the key (or
// "- ") that it belongs to, when any, and `first_inline` says the first line
// continues that line.
void WriteYaml(const JsonNode& node, int indent, bool first_inline,
               std::string* out) {
  const std::string pad(indent, ' ');
  if (node.type == JsonNode::Type::kObject) {
    bool first = true;
    for (const auto& [key, value] : node.members) {
      if (!(first && first_inline)) *out += pad;
      first = false;
      JsonNode key_node;
      key_node.type = JsonNode::Type::kString;
      key_node.text = key;
      *out += YamlScalar(key_node) + ":";
      if (IsCollection(value)) {
        *out += "\n";
        // Sequences under a key are not indented further (kubectl's style).
        WriteYaml(value,
                  value.type == JsonNode::Type::kArray ? indent : indent + 2,
                  false, out);
      } else {
        *out += " " + YamlInline(value) + "\n";
      }
    }
    return;
  }
  if (node.type == JsonNode::Type::kArray) {
    bool first = true;
    for (const JsonNode& item : node.items) {
      if (!(first && first_inline)) *out += pad;
      first = false;
      *out += "-";
      if (IsCollection(item)) {
        *out += " ";
        WriteYaml(item, indent + 2, true, out);
      } else {
        *out += " " + YamlInline(item) + "\n";
      }
    }
    return;
  }
  *out += YamlInline(node) + "\n";
}

std::string CompactJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options)
           .ok()) {
    return "{}";
  }
  return json;
}

JsonNode ToNode(const google::protobuf::Message& message) {
  JsonNode node;
  JsonReader(CompactJson(message)).Read(&node);
  return node;
}

JsonNode ToArrayNode(
    const std::vector<const google::protobuf::Message*>& messages) {
  JsonNode array;
  array.type = JsonNode::Type::kArray;
  for (const auto* message : messages) array.items.push_back(ToNode(*message));
  return array;
}

std::string RenderJson(const JsonNode& node) {
  std::string out;
  WriteJson(node, 0, &out);
  return out + "\n";
}

std::string RenderYaml(const JsonNode& node) {
  std::string out;
  if (!IsCollection(node)) return YamlInline(node) + "\n";
  WriteYaml(node, 0, false, &out);
  return out;
}

}  // namespace

absl::StatusOr<Format> ParseFormat(absl::string_view text) {
  if (text == "table") return Format::kTable;
  if (text == "json") return Format::kJson;
  if (text == "yaml") return Format::kYaml;
  return absl::InvalidArgumentError(absl::StrCat(
      "--output must be table, json or yaml (got \"", text, "\")"));
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

namespace {
// Display width: UTF-8 continuation bytes and ANSI colour sequences take no
// column.
size_t Width(absl::string_view text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\033') {
      while (i < text.size() && text[i] != 'm') ++i;
      continue;
    }
    width += (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
  }
  return width;
}
}  // namespace

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = Width(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], Width(row[i]));
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < cells.size(); ++i) {
      text += cells[i];
      if (i + 1 < cells.size()) {
        text += std::string(widths[i] - Width(cells[i]) + 3, ' ');
      }
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

std::string RenderFields(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& field : fields) width = std::max(width, Width(field.first));
  std::string out;
  for (const auto& [key, value] : fields) {
    std::string line =
        absl::StrCat(key, ":", std::string(width - Width(key) + 2, ' '), value);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  return RenderJson(ToNode(message));
}

std::string ToJsonArray(
    const std::vector<const google::protobuf::Message*>& messages) {
  return RenderJson(ToArrayNode(messages));
}

std::string ToYaml(const google::protobuf::Message& message) {
  return RenderYaml(ToNode(message));
}

std::string ToYamlArray(
    const std::vector<const google::protobuf::Message*>& messages) {
  return RenderYaml(ToArrayNode(messages));
}

std::string JsonToYaml(const std::string& json) {
  JsonNode node;
  if (!JsonReader(json).Read(&node)) return json;
  return RenderYaml(node);
}

std::string PrettyJson(const std::string& json) {
  JsonNode node;
  if (!JsonReader(json).Read(&node)) return json;
  return RenderJson(node);
}

JsonObject& JsonObject::Add(const std::string& key, const std::string& value) {
  if (!members_.empty()) members_ += ",";
  members_ += JsonQuote(key) + ":" + JsonQuote(value);
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, int64_t value) {
  if (!members_.empty()) members_ += ",";
  members_ += JsonQuote(key) + ":" + absl::StrCat(value);
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, bool value) {
  if (!members_.empty()) members_ += ",";
  members_ += JsonQuote(key) + ":" + (value ? "true" : "false");
  return *this;
}

JsonObject& JsonObject::AddRaw(const std::string& key,
                               const std::string& json) {
  if (!members_.empty()) members_ += ",";
  members_ += JsonQuote(key) + ":" + json;
  return *this;
}

std::string JsonArray(const std::vector<std::string>& json_items) {
  return "[" + absl::StrJoin(json_items, ",") + "]";
}

std::string JsonStringArray(const std::vector<std::string>& strings) {
  std::vector<std::string> quoted;
  for (const std::string& s : strings) quoted.push_back(JsonQuote(s));
  return JsonArray(quoted);
}

absl::Time FromProto(const google::protobuf::Timestamp& time) {
  return absl::FromUnixSeconds(time.seconds()) +
         absl::Nanoseconds(time.nanos());
}

google::protobuf::Timestamp ToProto(absl::Time time) {
  google::protobuf::Timestamp out;
  const int64_t ns = absl::ToUnixNanos(time);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  if (out.nanos() < 0) {
    out.set_seconds(out.seconds() - 1);
    out.set_nanos(out.nanos() + 1000000000);
  }
  return out;
}

namespace {
bool IsUnset(const google::protobuf::Timestamp& time) {
  return time.seconds() == 0 && time.nanos() == 0;
}

std::string ShortDuration(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 48 * 3600) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}
}  // namespace

std::string Age(const google::protobuf::Timestamp& time, absl::Time now) {
  if (IsUnset(time)) return "-";
  absl::Duration age = now - FromProto(time);
  if (age < absl::ZeroDuration()) age = absl::ZeroDuration();
  return ShortDuration(age);
}

std::string Rfc3339(const google::protobuf::Timestamp& time) {
  if (IsUnset(time)) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProto(time),
                          absl::UTCTimeZone());
}

std::string TimeWithAge(const google::protobuf::Timestamp& time,
                        absl::Time now) {
  if (IsUnset(time)) return "-";
  absl::Duration delta = now - FromProto(time);
  if (delta < absl::ZeroDuration()) {
    return absl::StrCat(Rfc3339(time), " (in ", ShortDuration(-delta), ")");
  }
  return absl::StrCat(Rfc3339(time), " (", ShortDuration(delta), " ago)");
}

std::string Micros(int64_t us) {
  if (us < 1000) return absl::StrCat(us, "us");
  if (us < 1000000) return absl::StrCat(us / 1000, "ms");
  return absl::StrFormat("%.1fs", static_cast<double>(us) / 1e6);
}

std::string Colours::Wrap(absl::string_view code,
                          absl::string_view text) const {
  if (!enabled_) return std::string(text);
  return absl::StrCat("\033[", code, "m", text, "\033[0m");
}
std::string Colours::Green(absl::string_view text) const {
  return Wrap("32", text);
}
std::string Colours::Red(absl::string_view text) const {
  return Wrap("31", text);
}
std::string Colours::Yellow(absl::string_view text) const {
  return Wrap("33", text);
}
std::string Colours::Dim(absl::string_view text) const {
  return Wrap("2", text);
}
std::string Colours::Bold(absl::string_view text) const {
  return Wrap("1", text);
}

}  // namespace rio::rioctl
