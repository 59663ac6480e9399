// Project files that `rioctl apply -f` reads (tools/rioctl/project_file.h):
// YAML through yaml-cpp, then Rio's own checks.
//
// Invariants: no exception escapes; a refusal is INVALID_ARGUMENT starting
// with "PATH:LINE:COL: "; an accepted file holds only what the server would
// accept (slugs, display name, event names, URLs, headers, timeouts,
// methods), no duplicate senders, events or (method, url) pairs, and
// 1-based locations. Placeholders are filled the way `rioctl apply` fills
// them (PlaceholderVariables) from a --var and an environment that also
// holds RIO_ADMIN_TOKEN and HOME: neither value ever appears in an accepted
// file or in a refusal.
#include <cstddef>
#include <cstdint>
#include <map>
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

// Values that a project file must never be able to read.
constexpr char kAdminToken[] = "ADMINTOKENxq7";
constexpr char kHome[] = "HOMEDIRxq7";

// The environment of whoever runs `rioctl apply`: one RIO_VAR_ variable,
// and the secrets.
std::optional<std::string> Environment(const std::string& name) {
  if (name == "RIO_VAR_HOST") return "127.0.0.1:5000";
  if (name == "RIO_ADMIN_TOKEN") return kAdminToken;
  if (name == "HOME") return kHome;
  return std::nullopt;
}

// {{ HOST }} from RIO_VAR_HOST, {{ TEAM }} from --var; everything else is
// missing, so that placeholders are both filled and missing.
const rio::rioctl::VariableLookup& Lookup() {
  static const auto* lookup = new rio::rioctl::VariableLookup(
      rio::rioctl::PlaceholderVariables({{"TEAM", "antispam"}}, Environment));
  return *lookup;
}

bool Leaks(absl::string_view text) {
  return absl::StrContains(text, kAdminToken) || absl::StrContains(text, kHome);
}

void CheckLocation(const FileLocation& at) {
  FUZZ_CHECK(at.line >= 1 && at.column >= 1);
}

// `check_leaks`: false when the input spells a secret out itself.
void CheckAccepted(const rio::rioctl::ProjectFile& file, bool check_leaks) {
  auto leaks = [check_leaks](absl::string_view text) {
    return check_leaks && Leaks(text);
  };
  FUZZ_CHECK(rio::util::ValidateName("project", file.project).ok());
  if (file.name) {
    FUZZ_CHECK(rio::util::ValidateDisplayName("name", *file.name).ok());
    FUZZ_CHECK(!leaks(*file.name));
  }
  for (const std::string& warning : file.warnings) FUZZ_CHECK(!leaks(warning));
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
      FUZZ_CHECK(!leaks(hook.url));
      for (const auto& [name, value] : hook.headers) {
        FUZZ_CHECK(!leaks(name) && !leaks(value));
      }
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
      rio::rioctl::ParseProjectFile("rio.yaml", text, Lookup());
  // The input may spell a secret out itself; only a value that came from a
  // variable is a leak.
  const bool check_leaks = !Leaks(text);
  if (file.ok()) {
    CheckAccepted(*file, check_leaks);
  } else {
    FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(file.status().message(), "rio.yaml:"));
    FUZZ_CHECK(!check_leaks || !Leaks(file.status().message()));
  }
  return 0;
}
