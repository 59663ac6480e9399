#include "tools/rioctl/args.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace rio::rioctl {

bool Args::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

std::string Args::Get(absl::string_view name,
                      absl::string_view fallback) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::string(fallback);
  return it->second.back();
}

std::vector<std::string> Args::GetAll(absl::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

bool Args::Bool(absl::string_view name) const { return Get(name) == "true"; }

void Args::Add(const std::string& name, const std::string& value) {
  values_[name].push_back(value);
}

const FlagDef* MatchFlag(absl::string_view token,
                         const std::vector<FlagDef>& flags,
                         std::optional<std::string>* inline_value) {
  inline_value->reset();
  if (absl::StartsWith(token, "--")) {
    absl::string_view name = token.substr(2);
    size_t eq = name.find('=');
    if (eq != absl::string_view::npos) {
      *inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    for (const FlagDef& flag : flags) {
      if (flag.name == name) return &flag;
    }
    return nullptr;
  }
  if (token.size() >= 2 && token[0] == '-' && token[1] != '-') {
    for (const FlagDef& flag : flags) {
      if (flag.shorthand != token[1]) continue;
      absl::string_view rest = token.substr(2);
      if (absl::StartsWith(rest, "=")) rest.remove_prefix(1);
      if (!rest.empty()) *inline_value = std::string(rest);
      return &flag;
    }
  }
  return nullptr;
}

absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& tokens,
                               const std::vector<FlagDef>& flags) {
  Args args;
  bool flags_done = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    if (flags_done || token == "-" || token.empty() || token[0] != '-') {
      args.mutable_positional().push_back(token);
      continue;
    }
    if (token == "--") {
      flags_done = true;
      continue;
    }
    std::optional<std::string> inline_value;
    const FlagDef* flag = MatchFlag(token, flags, &inline_value);
    if (flag == nullptr) {
      absl::string_view name = token;
      size_t eq = name.find('=');
      if (eq != absl::string_view::npos) name = name.substr(0, eq);
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", name));
    }
    const std::string shown = absl::StrCat("--", flag->name);
    if (flag->kind == FlagDef::Kind::kBool) {
      std::string value = "true";
      if (inline_value.has_value()) {
        std::string lower = absl::AsciiStrToLower(*inline_value);
        if (lower != "true" && lower != "false") {
          return absl::InvalidArgumentError(
              absl::StrCat(shown, " takes no value, or =true or =false (got \"",
                           *inline_value, "\")"));
        }
        value = lower;
      }
      args.Add(flag->name, value);
      continue;
    }
    if (inline_value.has_value()) {
      args.Add(flag->name, *inline_value);
      continue;
    }
    if (i + 1 >= tokens.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          shown, " needs a value (",
          flag->value_name.empty() ? "VALUE" : flag->value_name, ")"));
    }
    args.Add(flag->name, tokens[++i]);
  }
  return args;
}

absl::StatusOr<int64_t> ParseDurationMs(absl::string_view text) {
  std::string trimmed(absl::StripAsciiWhitespace(text));
  auto invalid = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text,
                     "\" is not a duration (use e.g. 500ms, 30s, 5m, 2h, 7d "
                     "or 1h30m)"));
  };
  if (trimmed.empty()) return invalid();
  // absl::ParseDuration knows no days; "7d" and "1d12h" are common here.
  absl::Duration days = absl::ZeroDuration();
  size_t d = trimmed.find('d');
  if (d != std::string::npos) {
    int64_t count = 0;
    if (!absl::SimpleAtoi(trimmed.substr(0, d), &count) || count < 0) {
      return invalid();
    }
    days = absl::Hours(24) * count;
    trimmed = trimmed.substr(d + 1);
    if (trimmed.empty()) return absl::ToInt64Milliseconds(days);
  }
  absl::Duration rest;
  if (trimmed == "0" || !absl::ParseDuration(trimmed, &rest) ||
      rest < absl::ZeroDuration()) {
    return invalid();
  }
  return absl::ToInt64Milliseconds(days + rest);
}

absl::StatusOr<absl::Time> ParseExpiry(absl::string_view text, absl::Time now) {
  std::string trimmed(absl::StripAsciiWhitespace(text));
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, trimmed, &time, &error)) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(trimmed);
    if (!ms.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text,
                       "\" is neither a duration from now (12h, 30d) nor an "
                       "RFC 3339 time (2030-01-01T00:00:00Z)"));
    }
    time = now + absl::Milliseconds(*ms);
  }
  if (time <= now) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not in the future"));
  }
  return time;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  const int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60,
                rest = ms % 1000;
  if (rest != 0 && h == 0 && m == 0 && s == 0)
    return absl::StrCat(out, rest, "ms");
  if (h > 0) absl::StrAppend(&out, h, "h");
  if (m > 0) absl::StrAppend(&out, m, "m");
  if (rest != 0) {
    char frac[8];
    snprintf(frac, sizeof(frac), "%03d", static_cast<int>(rest));
    std::string f(frac);
    while (!f.empty() && f.back() == '0') f.pop_back();
    absl::StrAppend(&out, s, ".", f, "s");
  } else if (s > 0) {
    absl::StrAppend(&out, s, "s");
  }
  return out;
}

}  // namespace rio::rioctl
