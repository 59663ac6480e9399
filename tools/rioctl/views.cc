#include "tools/rioctl/views.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/rioctl/args.h"
#include "tools/rioctl/certificate.h"
#include "tools/rioctl/plan.h"

namespace rio::rioctl {
namespace {

std::string HeadersLine(
    const google::protobuf::Map<std::string, std::string>& headers) {
  if (headers.empty()) return "none";
  std::map<std::string, std::string> sorted(headers.begin(), headers.end());
  return absl::StrJoin(sorted, ", ", [](std::string* out, const auto& h) {
    absl::StrAppend(out, h.first, ": ", h.second);
  });
}

std::string Enabled(const v1::Handler& h) {
  if (h.enabled()) return "yes";
  return h.disabled_reason().empty()
             ? "no"
             : absl::StrCat("no (", h.disabled_reason(), ")");
}

bool IsSet(const google::protobuf::Timestamp& t) {
  return t.seconds() != 0 || t.nanos() != 0;
}

std::string Percent(double ratio) {
  return absl::StrFormat("%.1f%%", ratio * 100);
}

std::string Ms(double ms) {
  if (ms < 10) return absl::StrFormat("%.1fms", ms);
  if (ms < 1000) return absl::StrFormat("%.0fms", ms);
  return absl::StrFormat("%.2fs", ms / 1000);
}

std::string AttemptResult(const v1::Attempt& a) {
  if (a.status_code() != 0) return absl::StrCat(a.status_code());
  return a.error_class().empty() ? "-" : a.error_class();
}

std::string ColouredStatus(v1::Delivery::Status status,
                           const Colours& colours) {
  std::string name = StatusName(status);
  switch (status) {
    case v1::Delivery::SUCCEEDED:
      return colours.Green(name);
    case v1::Delivery::FAILED:
      return colours.Red(name);
    case v1::Delivery::PENDING:
      return colours.Yellow(name);
    default:
      return colours.Dim(name);
  }
}

// A duration to the nearest of the units Age uses, so that a token made to
// last 30d reads "30d" a moment later (not "29d").
std::string RoundedDuration(absl::Duration d) {
  const double s = absl::ToDoubleSeconds(d);
  const int64_t seconds = std::llround(s);
  if (seconds < 60) return absl::StrCat(seconds, "s");
  const int64_t minutes = std::llround(s / 60);
  if (minutes < 60) return absl::StrCat(minutes, "m");
  const int64_t hours = std::llround(s / 3600);
  if (hours < 48) return absl::StrCat(hours, "h");
  return absl::StrCat(std::llround(s / 86400), "d");
}

std::string ProjectOrAll(const std::string& project) {
  return project.empty() ? "(all)" : project;
}

}  // namespace

std::string StatusName(v1::Delivery::Status status) {
  switch (status) {
    case v1::Delivery::PENDING:
      return "pending";
    case v1::Delivery::SUCCEEDED:
      return "succeeded";
    case v1::Delivery::FAILED:
      return "failed";
    case v1::Delivery::CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string ProjectsTable(const std::vector<v1::Project>& projects,
                          absl::Time now) {
  Table table({"SLUG", "NAME", "AGE"});
  for (const auto& p : projects) {
    table.AddRow({p.slug(), p.name(), Age(p.create_time(), now)});
  }
  return table.Render();
}

std::string ProjectFields(const v1::Project& p, absl::Time now) {
  return RenderFields({{"Slug", p.slug()},
                       {"Name", p.name()},
                       {"Created", TimeWithAge(p.create_time(), now)},
                       {"Updated", TimeWithAge(p.update_time(), now)}});
}

std::string SendersTable(const std::vector<v1::Sender>& senders,
                         absl::Time now) {
  Table table({"NAME", "PROJECT", "AGE"});
  for (const auto& s : senders) {
    table.AddRow({s.name(), s.project(), Age(s.create_time(), now)});
  }
  return table.Render();
}

std::string HandlersTable(const std::vector<v1::Handler>& handlers,
                          absl::Time now) {
  Table table(
      {"ID", "EVENT", "METHOD", "URL", "TYPE", "TIMEOUT", "ENABLED", "AGE"});
  for (const auto& h : handlers) {
    table.AddRow({h.id(), h.event(), MethodName(h.method()), h.url(),
                  ContentTypeName(h.content_type()),
                  FormatDurationMs(h.timeout_ms()), h.enabled() ? "yes" : "no",
                  Age(h.create_time(), now)});
  }
  return table.Render();
}

std::string HandlerFields(const v1::Handler& h, absl::Time now) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"ID", h.id()},
      {"Project", h.project()},
      {"Event", h.event()},
      {"URL", h.url()},
      {"Method", MethodName(h.method())},
      {"Content type", ContentTypeName(h.content_type())},
      {"Timeout", FormatDurationMs(h.timeout_ms())},
      {"Headers", HeadersLine(h.headers())},
      {"Client cert", ClientCertificateLine(h.client_certificate(), now)},
      {"Client key", ClientKeyLine(h.client_key())},
      {"Enabled", Enabled(h)},
      {"Created", TimeWithAge(h.create_time(), now)},
      {"Updated", TimeWithAge(h.update_time(), now)},
  };
  if (IsSet(h.previous_secret_expire_time()) &&
      FromProto(h.previous_secret_expire_time()) > now) {
    fields.emplace_back("Previous secret until",
                        TimeWithAge(h.previous_secret_expire_time(), now));
  }
  if (!h.secret().empty()) {
    fields.emplace_back("Secret",
                        absl::StrCat(h.secret(), "  (shown only now)"));
  }
  return RenderFields(fields);
}

std::string LastResult(const v1::Delivery& d) {
  if (d.last_status_code() != 0) return absl::StrCat(d.last_status_code());
  if (!d.last_error_class().empty()) return d.last_error_class();
  return "-";
}

std::string DeliveriesTable(const std::vector<v1::Delivery>& deliveries,
                            absl::Time now, const Colours& colours) {
  Table table(
      {"ID", "STATUS", "EVENT", "ATTEMPTS", "LAST", "NEXT", "AGE", "URL"});
  for (const auto& d : deliveries) {
    std::string next = "-";
    if (d.status() == v1::Delivery::PENDING && IsSet(d.next_attempt_time())) {
      absl::Duration in = FromProto(d.next_attempt_time()) - now;
      next = in <= absl::ZeroDuration()
                 ? "now"
                 : absl::StrCat("in ", Age(ToProto(now - in), now));
    }
    table.AddRow(
        {d.id(), ColouredStatus(d.status(), colours), d.event(),
         absl::StrCat(d.attempt_count()), LastResult(d), next,
         Age(d.create_time(), now),
         d.handler_url().empty() ? "(handler deleted)" : d.handler_url()});
  }
  return table.Render();
}

std::string DeliveryDetails(const v1::Delivery& d, absl::Time now,
                            int attempt_number) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"ID", d.id()},
      {"Message", d.message_id()},
      {"Project", d.project()},
      {"Event", d.event()},
      {"Handler",
       absl::StrCat(d.handler_id(), " ",
                    d.handler_url().empty() ? "(deleted)" : d.handler_url())},
      {"Status", StatusName(d.status())},
      {"Attempts", absl::StrCat(d.attempt_count())},
      {"Last result", LastResult(d)},
  };
  if (d.status() == v1::Delivery::PENDING && IsSet(d.next_attempt_time())) {
    fields.emplace_back("Next attempt",
                        TimeWithAge(d.next_attempt_time(), now));
  }
  fields.emplace_back("Created", TimeWithAge(d.create_time(), now));
  fields.emplace_back("Updated", TimeWithAge(d.update_time(), now));
  std::string out = RenderFields(fields);
  if (d.attempts().empty()) {
    absl::StrAppend(&out, "\nNo attempts yet.\n");
    return out;
  }
  Table table({"#", "STARTED", "RESULT", "DURATION", "DNS", "CONNECT", "TLS",
               "FIRST BYTE", "MANUAL", "ERROR"});
  for (const auto& a : d.attempts()) {
    table.AddRow({absl::StrCat(a.number()), Rfc3339(a.start_time()),
                  AttemptResult(a), Micros(a.duration_us()), Micros(a.dns_us()),
                  Micros(a.connect_us()),
                  a.tls_us() > 0 ? Micros(a.tls_us()) : "-",
                  a.first_byte_us() > 0 ? Micros(a.first_byte_us()) : "-",
                  a.manual() ? "yes" : "no",
                  a.error_message().empty() ? "-" : a.error_message()});
  }
  absl::StrAppend(&out, "\n", table.Render());
  const v1::Attempt* shown = &d.attempts(d.attempts_size() - 1);
  for (const auto& a : d.attempts()) {
    if (a.number() == attempt_number) shown = &a;
  }
  absl::StrAppend(&out, "\nResponse to attempt ", shown->number(), ": ",
                  AttemptResult(*shown), "\n");
  for (const auto& h : shown->response_headers()) {
    absl::StrAppend(&out, "  ", h.name(), ": ", h.value(), "\n");
  }
  if (shown->response_body().empty()) {
    absl::StrAppend(&out, "  (empty body)\n");
  } else {
    absl::StrAppend(&out, "\n", shown->response_body());
    if (shown->response_body().back() != '\n') out += "\n";
  }
  return out;
}

std::string RecoveryFields(const v1::Recovery& r, absl::Time now) {
  std::string state = v1::Recovery::State_Name(r.state());
  std::vector<std::pair<std::string, std::string>> fields = {
      {"ID", r.id().empty() ? "(dry run)" : r.id()},
      {"Project", r.project()},
      {"Handler", r.handler_id().empty() ? "(all)" : r.handler_id()},
      {"Event", r.event().empty() ? "(all)" : r.event()},
      {"Since", Rfc3339(r.since())},
      {"Until", IsSet(r.until()) ? Rfc3339(r.until()) : "(now)"},
      {"State", absl::AsciiStrToLower(state)},
      {"Matched", absl::StrCat(r.matched())},
      {"Re-queued", absl::StrCat(r.requeued())},
      {"Outcome", absl::StrCat("succeeded ", r.succeeded(), ", failed ",
                               r.failed(), ", pending ", r.pending())},
      {"Rate", absl::StrCat(r.rate_per_second(), "/s")},
      {"Created", TimeWithAge(r.create_time(), now)},
  };
  if (IsSet(r.finish_time())) {
    fields.emplace_back("Finished", TimeWithAge(r.finish_time(), now));
  }
  return RenderFields(fields);
}

std::string RecoveriesTable(const std::vector<v1::Recovery>& recoveries,
                            absl::Time now) {
  Table table({"ID", "STATE", "HANDLER", "EVENT", "MATCHED", "REQUEUED",
               "SUCCEEDED", "FAILED", "PENDING", "AGE"});
  for (const auto& r : recoveries) {
    table.AddRow({r.id(),
                  absl::AsciiStrToLower(v1::Recovery::State_Name(r.state())),
                  r.handler_id().empty() ? "(all)" : r.handler_id(),
                  r.event().empty() ? "(all)" : r.event(),
                  absl::StrCat(r.matched()), absl::StrCat(r.requeued()),
                  absl::StrCat(r.succeeded()), absl::StrCat(r.failed()),
                  absl::StrCat(r.pending()), Age(r.create_time(), now)});
  }
  return table.Render();
}

std::string StatsFields(const v1::HandlerStats& s) {
  const int64_t window_ms =
      s.window().seconds() * 1000 + s.window().nanos() / 1000000;
  std::vector<std::pair<std::string, std::string>> fields = {
      {"Handler", s.handler_id()},
      {"Enabled", s.enabled()
                      ? "yes"
                      : (s.disabled_reason().empty()
                             ? "no"
                             : absl::StrCat("no (", s.disabled_reason(), ")"))},
      {"Window", FormatDurationMs(window_ms)},
      {"Succeeded", absl::StrCat(s.succeeded())},
      {"Failed", absl::StrCat(s.failed())},
      {"Pending", absl::StrCat(s.pending())},
      {"Cancelled", absl::StrCat(s.cancelled())},
      {"Success ratio", Percent(s.success_ratio())},
      {"Attempts",
       absl::StrCat(s.attempts(), " (", s.failed_attempts(), " failed)")},
      {"Latency",
       absl::StrCat("p50 ", Ms(s.latency_p50_ms()), ", p90 ",
                    Ms(s.latency_p90_ms()), ", p99 ", Ms(s.latency_p99_ms()))},
      {"Consecutive failures", absl::StrCat(s.consecutive_failures())},
  };
  return RenderFields(fields);
}

std::string TailLine(const v1::TailDeliveriesResponse& event,
                     const Colours& colours) {
  const v1::Delivery& d = event.delivery();
  const v1::Attempt& a = event.attempt();
  std::string result = AttemptResult(a);
  result = (a.status_code() >= 200 && a.status_code() < 300)
               ? colours.Green(result)
               : colours.Red(result);
  std::string time = absl::FormatTime("%H:%M:%S", FromProto(a.start_time()),
                                      absl::UTCTimeZone());
  std::string line = absl::StrCat(
      colours.Dim(time), "  ", result, "  ",
      ColouredStatus(d.status(), colours), "  ", d.event(), "  attempt ",
      a.number(), a.manual() ? " (manual)" : "", "  ", Micros(a.duration_us()),
      "  delivery ", d.id(), "  ", d.handler_url());
  if (!a.error_message().empty())
    absl::StrAppend(&line, "  ", a.error_message());
  return line + "\n";
}

std::string ScopeName(v1::AccessToken::Scope scope) {
  switch (scope) {
    case v1::AccessToken::ADMIN:
      return "admin";
    case v1::AccessToken::PROJECT_ADMIN:
      return "project-admin";
    case v1::AccessToken::READ_ONLY:
      return "read-only";
    default:
      return "unknown";
  }
}

absl::StatusOr<v1::AccessToken::Scope> ParseScope(absl::string_view text) {
  std::string name(absl::StripAsciiWhitespace(text));
  absl::AsciiStrToLower(&name);
  std::replace(name.begin(), name.end(), '_', '-');
  for (v1::AccessToken::Scope scope :
       {v1::AccessToken::ADMIN, v1::AccessToken::PROJECT_ADMIN,
        v1::AccessToken::READ_ONLY}) {
    if (name == ScopeName(scope)) return scope;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--scope must be admin, project-admin or read-only (got \"",
                   text, "\")"));
}

std::string Expiry(const google::protobuf::Timestamp& expire_time,
                   absl::Time now) {
  if (!IsSet(expire_time)) return "never";
  const absl::Duration left = FromProto(expire_time) - now;
  if (left <= absl::ZeroDuration()) {
    return absl::StrCat("expired ", RoundedDuration(-left), " ago");
  }
  return absl::StrCat("in ", RoundedDuration(left));
}

std::string AccessTokensTable(const std::vector<v1::AccessToken>& tokens,
                              absl::Time now) {
  Table table({"NAME", "SCOPE", "PROJECT", "CREATED", "EXPIRES"});
  for (const auto& t : tokens) {
    table.AddRow({t.name(), ScopeName(t.scope()), ProjectOrAll(t.project()),
                  IsSet(t.create_time())
                      ? absl::StrCat(Age(t.create_time(), now), " ago")
                      : "-",
                  Expiry(t.expire_time(), now)});
  }
  return table.Render();
}

std::string AccessTokenFields(const v1::AccessToken& t, absl::Time now) {
  return RenderFields(
      {{"Name", t.name()},
       {"Scope", ScopeName(t.scope())},
       {"Project", ProjectOrAll(t.project())},
       {"Expires", IsSet(t.expire_time())
                       ? absl::StrCat(Rfc3339(t.expire_time()), " (",
                                      Expiry(t.expire_time(), now), ")")
                       : "never"}});
}

std::string CallerFields(const v1::AccessToken& caller) {
  return RenderFields({{"Name", caller.name()},
                       {"Scope", ScopeName(caller.scope())},
                       {"Project", ProjectOrAll(caller.project())}});
}

std::string ProgressBar(const v1::Recovery& r, int width) {
  const int64_t total = std::max<int64_t>(r.matched(), 1);
  const int64_t done = std::min<int64_t>(r.requeued(), total);
  const int filled = static_cast<int>(done * width / total);
  return absl::StrFormat(
      "[%s%s] %3d%%  %d/%d re-queued (succeeded %d, failed %d, pending %d)",
      std::string(filled, '#'), std::string(width - filled, '.'),
      static_cast<int>(r.matched() == 0 ? 100 : done * 100 / total),
      r.requeued(), r.matched(), r.succeeded(), r.failed(), r.pending());
}

}  // namespace rio::rioctl
