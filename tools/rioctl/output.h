// How rioctl prints: aligned tables for people, JSON and YAML for scripts,
// times as ages ("5m") or UTC RFC 3339, and ANSI colour only when asked.
//
// Pure functions and plain values; thread-compatible.
#ifndef RIO_TOOLS_RIOCTL_OUTPUT_H_
#define RIO_TOOLS_RIOCTL_OUTPUT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace rio::rioctl {

enum class Format { kTable, kJson, kYaml };

// "table", "json" or "yaml"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Format> ParseFormat(absl::string_view text);

// Rows under upper-case headers, columns separated by three spaces, the last
// column unpadded (kubectl's look). Cells must not contain newlines.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  // Every line ends with '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "Key:   value" lines with the values aligned (gh's `view` look).
std::string RenderFields(
    const std::vector<std::pair<std::string, std::string>>& fields);

// The proto3 JSON of `message` (field names as in the .proto, enums by name,
// every field present), pretty-printed, with a trailing newline.
std::string ToJson(const google::protobuf::Message& message);
// A JSON array of `messages`, pretty-printed, with a trailing newline.
std::string ToJsonArray(
    const std::vector<const google::protobuf::Message*>& messages);
// The same document as YAML (strings that would read as another type are
// quoted), with a trailing newline.
std::string ToYaml(const google::protobuf::Message& message);
std::string ToYamlArray(
    const std::vector<const google::protobuf::Message*>& messages);
// Any JSON text as YAML; the text itself if it is not JSON.
std::string JsonToYaml(const std::string& json);
// A JSON array of JSON texts, or of strings.
std::string JsonArray(const std::vector<std::string>& json_items);
std::string JsonStringArray(const std::vector<std::string>& strings);
// Any JSON text pretty-printed as ToJson does; the text itself if it is not
// JSON.
std::string PrettyJson(const std::string& json);

// A flat JSON object built in order, for commands that print no message
// (deletes, emits): JsonObject().Add("deleted", true).Add("id", id).
class JsonObject {
 public:
  JsonObject& Add(const std::string& key, const std::string& value);
  JsonObject& Add(const std::string& key, const char* value) {
    return Add(key, std::string(value));
  }
  JsonObject& Add(const std::string& key, int64_t value);
  JsonObject& Add(const std::string& key, int value) {
    return Add(key, static_cast<int64_t>(value));
  }
  JsonObject& Add(const std::string& key, bool value);
  // `json` is already JSON text (an object, an array).
  JsonObject& AddRaw(const std::string& key, const std::string& json);
  // Compact JSON text.
  std::string str() const { return "{" + members_ + "}"; }

 private:
  std::string members_;
};

// Age as kubectl prints it: "12s", "5m", "3h", "2d"; "-" for an unset time.
std::string Age(const google::protobuf::Timestamp& time, absl::Time now);
// "2024-05-01T12:00:03Z"; "-" for an unset time.
std::string Rfc3339(const google::protobuf::Timestamp& time);
// Both: "2024-05-01T12:00:03Z (5m ago)", "… (in 4s)" for future times.
std::string TimeWithAge(const google::protobuf::Timestamp& time,
                        absl::Time now);
absl::Time FromProto(const google::protobuf::Timestamp& time);
google::protobuf::Timestamp ToProto(absl::Time time);
// "3ms", "1.2s", "850us".
std::string Micros(int64_t us);

// ANSI SGR colours, or nothing when disabled.
class Colours {
 public:
  explicit Colours(bool enabled) : enabled_(enabled) {}
  std::string Green(absl::string_view text) const;
  std::string Red(absl::string_view text) const;
  std::string Yellow(absl::string_view text) const;
  std::string Dim(absl::string_view text) const;
  std::string Bold(absl::string_view text) const;

 private:
  std::string Wrap(absl::string_view code, absl::string_view text) const;
  bool enabled_;
};

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_OUTPUT_H_
