// Triage: rioctl deliveries list|show, redeliver, recover, recovery
// list|get|cancel, tail and stats, on the DeliveryService.
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/util/status_macros.h"
#include "tools/rioctl/cli.h"
#include "tools/rioctl/views.h"

namespace rio::rioctl {
namespace {

using K = FlagDef::Kind;

const FlagDef kProjectFlag{"project", 'p', K::kValue, "SLUG",
                           "the project (env RIO_PROJECT; found from "
                           "--handler when not given)"};
const FlagDef kHandlerFlag{"handler", 0, K::kValue, "ID",
                           "only this handler's deliveries"};
const FlagDef kEventFlag{"event", 0, K::kValue, "EVENT",
                         "only deliveries of this event"};

template <typename T>
std::vector<const google::protobuf::Message*> Pointers(
    const std::vector<T>& items) {
  std::vector<const google::protobuf::Message*> out;
  for (const T& item : items) out.push_back(&item);
  return out;
}

// "2h" (that long ago) or an RFC 3339 time.
absl::StatusOr<absl::Time> ParseTimeFlag(const std::string& flag,
                                         const std::string& text,
                                         absl::Time now) {
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return time;
  absl::StatusOr<int64_t> ms = ParseDurationMs(text);
  if (!ms.ok()) {
    return UsageError(absl::StrCat(
        "--", flag, " \"", text,
        "\" is neither a duration (30m, 2h, 7d) nor an RFC 3339 time "
        "(2024-05-01T12:00:00Z)"));
  }
  return now - absl::Milliseconds(*ms);
}

// The project: --project, $RIO_PROJECT, or the handler's.
absl::StatusOr<std::string> ResolveProject(Context& ctx, Connection* rio) {
  std::string project = ctx.Project();
  if (!project.empty()) return project;
  const std::string handler_id = ctx.args().Get("handler");
  if (handler_id.empty()) {
    return UsageError(
        "--project (-p) is required (or set RIO_PROJECT, or give --handler)");
  }
  v1::GetHandlerRequest req;
  req.set_id(handler_id);
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().GetHandler(c, req, &handler);
  }));
  return handler.project();
}

absl::StatusOr<v1::ListDeliveriesRequest::Status> ParseStatusFlag(
    const std::string& text) {
  v1::ListDeliveriesRequest::Status status;
  std::string upper = absl::AsciiStrToUpper(text);
  if (upper == "ALL") upper = "ANY";
  if (!v1::ListDeliveriesRequest::Status_Parse(upper, &status)) {
    return UsageError(absl::StrCat(
        "--status must be pending, succeeded, failed, cancelled, failing or "
        "all (got \"",
        text, "\")"));
  }
  return status;
}

absl::Status DeliveriesList(Context& ctx) {
  const Args& args = ctx.args();
  v1::ListDeliveriesRequest req;
  if (args.Bool("failing")) {
    if (args.Has("status")) {
      return UsageError("--failing and --status exclude each other");
    }
    req.set_status(v1::ListDeliveriesRequest::FAILING);
  } else if (args.Has("status")) {
    RIO_ASSIGN_OR_RETURN(v1::ListDeliveriesRequest::Status status,
                         ParseStatusFlag(args.Get("status")));
    req.set_status(status);
  }
  if (args.Has("since")) {
    RIO_ASSIGN_OR_RETURN(absl::Time since,
                         ParseTimeFlag("since", args.Get("since"), ctx.now()));
    *req.mutable_since() = ToProto(since);
  }
  if (args.Has("until")) {
    RIO_ASSIGN_OR_RETURN(absl::Time until,
                         ParseTimeFlag("until", args.Get("until"), ctx.now()));
    *req.mutable_until() = ToProto(until);
  }
  int limit = 50;
  if (args.Has("limit") &&
      (!absl::SimpleAtoi(args.Get("limit"), &limit) || limit < 1)) {
    return UsageError(absl::StrCat("--limit must be a positive number (got \"",
                                   args.Get("limit"), "\")"));
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(std::string project, ResolveProject(ctx, rio));
  req.set_project(project);
  req.set_handler_id(args.Get("handler"));
  req.set_event(args.Get("event"));
  std::vector<v1::Delivery> deliveries;
  bool more = false;
  do {
    req.set_page_size(
        std::min(1000, limit - static_cast<int>(deliveries.size())));
    v1::ListDeliveriesResponse resp;
    RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
      return rio->deliveries().ListDeliveries(c, req, &resp);
    }));
    for (auto& d : *resp.mutable_deliveries())
      deliveries.push_back(std::move(d));
    req.set_page_token(resp.next_page_token());
    more = !req.page_token().empty();
  } while (more && static_cast<int>(deliveries.size()) < limit);
  ctx.PrintList(Pointers(deliveries), [&]() -> std::string {
    if (deliveries.empty()) return "No deliveries match.\n";
    std::string out =
        DeliveriesTable(deliveries, ctx.now(), Colours(ctx.colour()));
    if (more) {
      absl::StrAppend(&out, "(showing the newest ", deliveries.size(),
                      "; --limit shows more)\n");
    }
    return out;
  });
  return absl::OkStatus();
}

absl::StatusOr<v1::Delivery> GetDelivery(Connection* rio,
                                         const std::string& id) {
  v1::GetDeliveryRequest req;
  req.set_id(id);
  v1::Delivery delivery;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->deliveries().GetDelivery(c, req, &delivery);
  }));
  return delivery;
}

absl::Status DeliveriesShow(Context& ctx) {
  int attempt = 0;
  if (ctx.args().Has("attempt") &&
      (!absl::SimpleAtoi(ctx.args().Get("attempt"), &attempt) || attempt < 1)) {
    return UsageError("--attempt must be a positive number");
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(v1::Delivery delivery, GetDelivery(rio, ctx.arg(0)));
  if (attempt > delivery.attempts_size()) {
    return absl::NotFoundError(absl::StrCat("delivery ", delivery.id(), " has ",
                                            delivery.attempts_size(),
                                            " attempts"));
  }
  ctx.Print(delivery,
            [&] { return DeliveryDetails(delivery, ctx.now(), attempt); });
  return absl::OkStatus();
}

absl::Status Redeliver(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  const bool wait = ctx.args().Bool("wait");
  std::vector<v1::Delivery> results;
  for (const std::string& id : ctx.args().positional()) {
    v1::RedeliverRequest req;
    req.set_delivery_id(id);
    v1::Delivery delivery;
    RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
      return rio->deliveries().Redeliver(c, req, &delivery);
    }));
    if (wait) {
      const int before = delivery.attempt_count();
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (delivery.attempt_count() <= before) {
        if (absl::Now() > deadline || ctx.io().interrupted()) {
          return absl::DeadlineExceededError(absl::StrCat(
              "delivery ", id,
              " was re-queued but no attempt finished within 60s"));
        }
        absl::SleepFor(absl::Milliseconds(100));
        RIO_ASSIGN_OR_RETURN(delivery, GetDelivery(rio, id));
      }
    }
    results.push_back(delivery);
    if (ctx.format() == Format::kTable) {
      if (wait) {
        ctx.out() << "delivery " << id << ": attempt "
                  << delivery.attempt_count() << " -> " << LastResult(delivery)
                  << ", " << StatusName(delivery.status()) << "\n";
      } else {
        ctx.out() << "delivery " << id << " re-queued\n";
      }
    }
  }
  if (ctx.format() != Format::kTable) {
    if (results.size() == 1) {
      ctx.Print(results[0], nullptr);
    } else {
      ctx.PrintList(Pointers(results), nullptr);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Recovery> GetRecovery(Connection* rio,
                                         const std::string& id) {
  v1::GetRecoveryRequest req;
  req.set_id(id);
  v1::Recovery recovery;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->deliveries().GetRecovery(c, req, &recovery);
  }));
  return recovery;
}

absl::Status Recover(Context& ctx) {
  const Args& args = ctx.args();
  if (!args.Has("since")) {
    return UsageError("--since is required (e.g. --since 2h)");
  }
  v1::RecoverFailedRequest req;
  RIO_ASSIGN_OR_RETURN(absl::Time since,
                       ParseTimeFlag("since", args.Get("since"), ctx.now()));
  *req.mutable_since() = ToProto(since);
  if (args.Has("until")) {
    RIO_ASSIGN_OR_RETURN(absl::Time until,
                         ParseTimeFlag("until", args.Get("until"), ctx.now()));
    *req.mutable_until() = ToProto(until);
  }
  if (args.Has("rate")) {
    int rate = 0;
    if (!absl::SimpleAtoi(args.Get("rate"), &rate) || rate < 1 ||
        rate > 10000) {
      return UsageError("--rate must be between 1 and 10000 per second");
    }
    req.set_rate_per_second(rate);
  }
  req.set_dry_run(args.Bool("dry-run"));
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(std::string project, ResolveProject(ctx, rio));
  req.set_project(project);
  req.set_handler_id(args.Get("handler"));
  req.set_event(args.Get("event"));
  v1::Recovery recovery;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->deliveries().RecoverFailed(c, req, &recovery);
  }));
  if (req.dry_run()) {
    ctx.Print(recovery, [&] {
      return absl::StrCat(
          recovery.matched(),
          recovery.matched() == 1 ? " delivery" : " deliveries",
          " would be re-sent (dry run: nothing was re-queued)\n");
    });
    return absl::OkStatus();
  }
  const bool bar = ctx.io().err_is_terminal;
  if (ctx.format() == Format::kTable) {
    ctx.out() << "recovery " << recovery.id()
              << " started: " << recovery.matched()
              << " deliveries to re-send\n"
              << std::flush;
  }
  if (!args.Bool("no-wait")) {
    while (recovery.state() == v1::Recovery::RUNNING) {
      if (bar) ctx.err() << "\r" << ProgressBar(recovery, 30) << std::flush;
      if (ctx.io().interrupted()) {
        if (bar) ctx.err() << "\n";
        ctx.err() << "recovery " << recovery.id()
                  << " goes on on the server; follow it with `rioctl recovery "
                     "get "
                  << recovery.id() << "`\n";
        return absl::OkStatus();
      }
      absl::SleepFor(absl::Milliseconds(200));
      RIO_ASSIGN_OR_RETURN(recovery, GetRecovery(rio, recovery.id()));
    }
    if (bar) ctx.err() << "\r" << ProgressBar(recovery, 30) << "\n";
  }
  ctx.Print(recovery, [&] {
    return absl::StrCat(
        "recovery ", recovery.id(), " ",
        absl::AsciiStrToLower(v1::Recovery::State_Name(recovery.state())), ": ",
        recovery.requeued(), " of ", recovery.matched(),
        " re-queued (succeeded ", recovery.succeeded(), ", failed ",
        recovery.failed(), ", pending ", recovery.pending(), ")\n");
  });
  return absl::OkStatus();
}

absl::Status RecoveryList(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(std::string project, ctx.RequireProject());
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::ListRecoveriesRequest req;
  req.set_project(project);
  v1::ListRecoveriesResponse resp;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->deliveries().ListRecoveries(c, req, &resp);
  }));
  std::vector<v1::Recovery> recoveries(resp.recoveries().begin(),
                                       resp.recoveries().end());
  ctx.PrintList(Pointers(recoveries), [&]() -> std::string {
    if (recoveries.empty())
      return absl::StrCat("No recoveries in project ", project, ".\n");
    return RecoveriesTable(recoveries, ctx.now());
  });
  return absl::OkStatus();
}

absl::Status RecoveryGet(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(v1::Recovery recovery, GetRecovery(rio, ctx.arg(0)));
  ctx.Print(recovery, [&] { return RecoveryFields(recovery, ctx.now()); });
  return absl::OkStatus();
}

absl::Status RecoveryCancel(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::CancelRecoveryRequest req;
  req.set_id(ctx.arg(0));
  v1::Recovery recovery;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->deliveries().CancelRecovery(c, req, &recovery);
  }));
  ctx.Print(recovery, [&] {
    return absl::StrCat("recovery ", recovery.id(), " cancelled after ",
                        recovery.requeued(), " of ", recovery.matched(),
                        " re-queued\n");
  });
  return absl::OkStatus();
}

absl::Status Tail(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(std::string project, ResolveProject(ctx, rio));
  v1::TailDeliveriesRequest req;
  req.set_project(project);
  req.set_handler_id(ctx.args().Get("handler"));
  req.set_event(ctx.args().Get("event"));
  std::unique_ptr<grpc::ClientContext> context = rio->StreamContext();
  auto reader = rio->deliveries().TailDeliveries(context.get(), req);
  // Read() blocks; a signal cancels the call from this thread.
  std::atomic<bool> finished{false};
  std::thread watcher([&] {
    while (!finished.load()) {
      if (ctx.io().interrupted()) {
        context->TryCancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  ctx.err() << "Tailing deliveries of project " << project
            << " (Ctrl-C to stop)\n"
            << std::flush;
  const Colours colours(ctx.colour());
  v1::TailDeliveriesResponse event;
  while (reader->Read(&event)) {
    switch (ctx.format()) {
      case Format::kTable:
        ctx.out() << TailLine(event, colours);
        break;
      case Format::kJson: {
        std::string json = ToJson(event);
        // One object per line (NDJSON), for jq and friends.
        std::string line;
        bool in_string = false, escaped = false;
        for (char c : json) {
          if (in_string) {
            line.push_back(c);
            if (escaped) {
              escaped = false;
            } else if (c == '\\') {
              escaped = true;
            } else if (c == '"') {
              in_string = false;
            }
          } else if (c == '"') {
            in_string = true;
            line.push_back(c);
          } else if (c != '\n' && c != ' ') {
            line.push_back(c);
          }
        }
        ctx.out() << line << "\n";
        break;
      }
      case Format::kYaml:
        ctx.out() << "---\n" << ToYaml(event);
        break;
    }
    ctx.out().flush();
  }
  grpc::Status status = reader->Finish();
  finished = true;
  watcher.join();
  if (ctx.io().interrupted()) return absl::OkStatus();
  return rio->StreamStatus(status);
}

absl::Status Stats(Context& ctx) {
  if (!ctx.args().Has("handler")) return UsageError("--handler is required");
  v1::GetHandlerStatsRequest req;
  req.set_handler_id(ctx.args().Get("handler"));
  if (ctx.args().Has("window")) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(ctx.args().Get("window"));
    if (!ms.ok() || *ms < 1000) {
      return UsageError(absl::StrCat(
          "--window: ", ms.ok() ? "at least 1s" : ms.status().message()));
    }
    req.mutable_window()->set_seconds(*ms / 1000);
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::HandlerStats stats;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->deliveries().GetHandlerStats(c, req, &stats);
  }));
  ctx.Print(stats, [&] { return StatsFields(stats); });
  return absl::OkStatus();
}

}  // namespace

void AddDeliveryCommands(std::vector<CommandSpec>* commands) {
  commands->push_back(
      {"deliveries list",
       "",
       "List deliveries, newest first",
       "Example (the latest failing calls of the last hour):\n"
       "  rioctl deliveries list -p comments --failing --since 1h",
       {kProjectFlag,
        {"failing", 0, K::kBool, "",
         "only deliveries that are not succeeded and have a failed attempt"},
        {"status", 0, K::kValue, "STATUS",
         "pending, succeeded, failed, cancelled, failing or all (default)"},
        kHandlerFlag,
        kEventFlag,
        {"since", 0, K::kValue, "WHEN",
         "created since: a duration ago (1h, 30m, 7d) or an RFC 3339 time"},
        {"until", 0, K::kValue, "WHEN", "created before (same forms)"},
        {"limit", 0, K::kValue, "N", "at most N deliveries (default 50)"}},
       0,
       0,
       DeliveriesList});
  commands->push_back(
      {"deliveries show",
       "ID",
       "Show a delivery: its status, attempts, timings and response",
       "Example:\n  rioctl deliveries show 0b7f… --attempt 1",
       {{"attempt", 0, K::kValue, "N",
         "whose response to show in full (default: the last)"}},
       1,
       1,
       DeliveriesShow});
  commands->push_back(
      {"redeliver",
       "ID...",
       "Make a new attempt of deliveries now",
       "Whatever a delivery's state, Rio calls the handler again at once; the "
       "attempt is recorded as manual.\n\nExample:\n"
       "  rioctl redeliver 0b7f… --wait",
       {{"wait", 0, K::kBool, "", "wait for the attempt and print its result"}},
       1,
       -1,
       Redeliver});
  commands->push_back(
      {"recover",
       "",
       "Re-send every failed (or cancelled) delivery that matches",
       "Starts a recovery job on the server (paced, it survives restarts) "
       "and follows it with a progress bar; Ctrl-C stops following, not the "
       "job.\n\nExamples:\n"
       "  rioctl recover --handler 0b7f… --since 2h --dry-run\n"
       "  rioctl recover --handler 0b7f… --since 2h",
       {kProjectFlag,
        kHandlerFlag,
        kEventFlag,
        {"since", 0, K::kValue, "WHEN",
         "deliveries created since: a duration ago or an RFC 3339 time "
         "(required)"},
        {"until", 0, K::kValue, "WHEN", "created before (default: now)"},
        {"rate", 0, K::kValue, "N",
         "at most N re-sends per second (default 100)"},
        {"dry-run", 0, K::kBool, "", "only count the matching deliveries"},
        {"no-wait", 0, K::kBool, "", "start the job and return"}},
       0,
       0,
       Recover});
  commands->push_back(
      {"recovery list",
       "",
       "List a project's recoveries",
       "Example:\n  rioctl recovery list -p comments",
       {{"project", 'p', K::kValue, "SLUG", "the project (env RIO_PROJECT)"}},
       0,
       0,
       RecoveryList});
  commands->push_back({"recovery get",
                       "ID",
                       "Show a recovery's progress",
                       "Example:\n  rioctl recovery get 5d1e…",
                       {},
                       1,
                       1,
                       RecoveryGet});
  commands->push_back({"recovery cancel",
                       "ID",
                       "Stop a running recovery",
                       "Deliveries already re-queued stay queued.\n\nExample:\n"
                       "  rioctl recovery cancel 5d1e…",
                       {},
                       1,
                       1,
                       RecoveryCancel});
  commands->push_back(
      {"tail",
       "",
       "Stream attempts as they happen",
       "Prints one line per attempt made by the server answering the call, "
       "coloured when printing to a terminal; -o json prints one JSON object "
       "per line. Ctrl-C stops.\n\nExample:\n  rioctl tail -p comments",
       {kProjectFlag, kHandlerFlag, kEventFlag},
       0,
       0,
       Tail});
  commands->push_back(
      {"stats",
       "",
       "Counts, success ratio and latency of a handler",
       "Example:\n  rioctl stats --handler 0b7f… --window 24h",
       {{"handler", 0, K::kValue, "ID", "the handler (required)"},
        {"window", 0, K::kValue, "DURATION",
         "how far back to look (default 1h)"}},
       0,
       0,
       Stats});
}

}  // namespace rio::rioctl
