// Command-line parsing for rioctl: a tree of commands (`project create`),
// each with its own flags on top of the global ones, in the style of kubectl
// and gh: `--flag value`, `--flag=value`, `-o json`, `-ojson`, repeatable
// flags, boolean flags (`--dry-run`, `--dry-run=false`), `--` ending flags,
// and global flags accepted before or after the command's name.
//
// Pure functions and plain values; thread-compatible.
#ifndef RIO_TOOLS_RIOCTL_ARGS_H_
#define RIO_TOOLS_RIOCTL_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rio::rioctl {

struct FlagDef {
  enum class Kind {
    kBool,    // --name, --name=true|false
    kValue,   // --name VALUE; the last one given wins
    kRepeat,  // --name VALUE, repeatable; every value is kept
  };
  std::string name;    // Without dashes: "output".
  char shorthand = 0;  // 'o' for -o; 0 for none.
  Kind kind = Kind::kValue;
  std::string value_name;  // For help: "FORMAT".
  std::string help;
};

// The flags and positional arguments of one invocation.
class Args {
 public:
  const std::vector<std::string>& positional() const { return positional_; }
  // Whether the flag was given at all.
  bool Has(absl::string_view name) const;
  // The last value given, or `fallback`.
  std::string Get(absl::string_view name,
                  absl::string_view fallback = "") const;
  // Every value given, in order.
  std::vector<std::string> GetAll(absl::string_view name) const;
  // A boolean flag: false unless given (as --name or --name=true).
  bool Bool(absl::string_view name) const;

  std::vector<std::string>& mutable_positional() { return positional_; }
  void Add(const std::string& name, const std::string& value);

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
};

// Parses `tokens` against `flags`. Unknown flags, a missing value, and a
// value given to --bool=... that is not true/false are INVALID_ARGUMENT with
// a message naming the flag. `-h`/`--help` are not special here.
absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& tokens,
                               const std::vector<FlagDef>& flags);

// Finds which flag `token` (e.g. "--output=json", "-o") names; nullptr when
// none. Sets `*inline_value` to the text after '=' (or after a shorthand
// letter), if any.
const FlagDef* MatchFlag(absl::string_view token,
                         const std::vector<FlagDef>& flags,
                         std::optional<std::string>* inline_value);

// "1h", "30m", "2h30m", "90s", "500ms", "7d". INVALID_ARGUMENT otherwise.
absl::StatusOr<int64_t> ParseDurationMs(absl::string_view text);

// When something given now should expire: a duration from `now` ("12h",
// "30d", "1d12h") or an RFC 3339 time ("2030-01-01T00:00:00Z"). It must be
// after `now`. INVALID_ARGUMENT quoting `text` otherwise.
absl::StatusOr<absl::Time> ParseExpiry(absl::string_view text, absl::Time now);

// "15s", "1m30s", "500ms", "2h": the shortest exact form of `ms`.
std::string FormatDurationMs(int64_t ms);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_ARGS_H_
