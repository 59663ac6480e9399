// Project files that `rioctl apply -f` reads (tools/rioctl/project_file.h):
// YAML through yaml-cpp, then Rio's own checks.
//
// Invariants: no exception escapes; a refusal is INVALID_ARGUMENT starting
// with "PATH:LINE:COL: "; an accepted file holds only what the server would
// accept (slugs, display name, event names, URLs, headers, timeouts,
// methods), no duplicate senders, events or (method, url) pairs, and
// 1-based locations.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "server/util/validation.h"
#include "tests/fuzz/fuzz_check.h"
#include "tools/rioctl/project_file.h"

namespace {

using rio::rioctl::FileLocation;

// Two variables are set, so that placeholders are both filled and missing.
std::optional<std::string> Lookup(const std::string& name) {
  if (name == "HOST") return "127.0.0.1:5000";
  if (name == "TEAM") return "antispam";
  return std::nullopt;
}

void CheckLocation(const FileLocation& at) {
  FUZZ_CHECK(at.line >= 1 && at.column >= 1);
}

void CheckAccepted(const rio::rioctl::ProjectFile& file) {
  FUZZ_CHECK(rio::util::ValidateName("project", file.project).ok());
  if (file.name) {
    FUZZ_CHECK(rio::util::ValidateDisplayName("name", *file.name).ok());
  }
  std::set<std::string> senders;
  for (const auto& sender : file.senders) {
    FUZZ_CHECK(rio::util::ValidateName("sender", sender.name).ok());
    FUZZ_CHECK(senders.insert(sender.name).second);
    CheckLocation(sender.location);
  }
  std::set<std::string> events;
  for (const auto& action : file.actions) {
    FUZZ_CHECK(rio::util::ValidateName("event", action.event).ok());
    FUZZ_CHECK(events.insert(action.event).second);
    CheckLocation(action.location);
    std::set<std::pair<int, std::string>> targets;
    for (const auto& hook : action.webhooks) {
      FUZZ_CHECK(rio::util::ValidateWebhookUrl("url", hook.url).ok());
      FUZZ_CHECK(rio::util::ValidateHeaders("headers", hook.headers).ok());
      FUZZ_CHECK(rio::util::ValidateTimeoutMs("timeout", hook.timeout_ms).ok());
      FUZZ_CHECK(hook.method == rio::v1::Handler::POST ||
                 hook.method == rio::v1::Handler::PUT ||
                 hook.method == rio::v1::Handler::GET);
      FUZZ_CHECK(hook.content_type == rio::v1::Handler::FORM ||
                 hook.content_type == rio::v1::Handler::JSON);
      FUZZ_CHECK(!(hook.method == rio::v1::Handler::GET &&
                   hook.content_type == rio::v1::Handler::JSON));
      FUZZ_CHECK(targets.emplace(hook.method, hook.url).second);
      CheckLocation(hook.location);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<rio::rioctl::ProjectFile> file =
      rio::rioctl::ParseProjectFile("rio.yaml", text, Lookup);
  if (file.ok()) {
    CheckAccepted(*file);
  } else {
    FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(file.status().message(), "rio.yaml:"));
  }
  return 0;
}
