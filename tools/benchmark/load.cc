// rio-bench-load: the load generator of tools/bench.
//
// Sets up a project, a sender and one JSON handler per --handler_urls entry
// (admin calls), then emits through the async gRPC API: one thread driving a
// completion queue with up to --concurrency unary Emit (or EmitBatch) calls
// outstanding, as fast as possible or paced at --rate events/s. Every
// acknowledged message is written to --sends as
// "<message_id> <send_ns> <ack_ns>" (CLOCK_REALTIME), so that latency is the
// receiver's arrival time minus the send time.
//
// Prints one JSON object on stdout: what was sent and acknowledged, the
// acknowledgement rate, ack latency percentiles, how far pacing fell behind
// (so a slow generator shows), and this process's CPU time.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "tools/benchmark/common.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "rio-server gRPC address");
ABSL_FLAG(std::string, admin_token, "", "Admin token of rio-server");
ABSL_FLAG(std::string, project, "bench", "Project slug to create");
ABSL_FLAG(std::string, event, "bench.event", "Event name to emit");
ABSL_FLAG(std::vector<std::string>, handler_urls, {},
          "One JSON handler of the event per URL (none: ingest only)");
ABSL_FLAG(int, handler_timeout_ms, 15000, "timeout_ms of the handlers");
ABSL_FLAG(std::string, mode, "unary", "unary (Emit) or batch (EmitBatch)");
ABSL_FLAG(int, batch, 100, "Events per EmitBatch call");
ABSL_FLAG(int, concurrency, 64, "Calls outstanding at most");
ABSL_FLAG(double, rate, 0, "Events per second (0: as fast as possible)");
ABSL_FLAG(int64_t, count, 10000, "Events to emit (at most)");
ABSL_FLAG(double, duration, 60, "Stop emitting after this many seconds");
ABSL_FLAG(int, channels, 1, "gRPC channels (connections), used round-robin");
ABSL_FLAG(bool, idempotency_keys, true,
          "Give every event an idempotency key, as the SDKs do");
ABSL_FLAG(std::string, payload,
          R"({"ip":"127.0.0.1","content":"I am a spammer","n":12345})",
          "payload_json of every event");
ABSL_FLAG(int64_t, payload_bytes, 0,
          "When set: every payload is {\"pad\":\"xx...\"} of this many bytes "
          "instead of --payload");
ABSL_FLAG(bool, versions, false, "Print {\"grpc_version\": ...} and exit");
ABSL_FLAG(std::string, sends, "",
          "Write '<message_id> <send_ns> <ack_ns>' per acknowledged message");

namespace rio::bench {
namespace {

using rio::v1::EmitService;

std::unique_ptr<grpc::ClientContext> AdminContext(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  return ctx;
}

// Creates the project, a sender and the handlers; returns the sender's
// Basic credentials ("sender:token") or an empty string after printing why.
std::string SetUp(const std::shared_ptr<grpc::Channel>& channel) {
  const std::string token = absl::GetFlag(FLAGS_admin_token);
  const std::string project = absl::GetFlag(FLAGS_project);
  auto projects = rio::v1::ProjectService::NewStub(channel);
  auto handlers = rio::v1::HandlerService::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(30))) {
    std::fprintf(stderr, "rio-bench-load: cannot connect to %s\n",
                 absl::GetFlag(FLAGS_target).c_str());
    return "";
  }
  rio::v1::CreateProjectRequest preq;
  preq.set_slug(project);
  rio::v1::Project p;
  grpc::Status s = projects->CreateProject(AdminContext(token).get(), preq, &p);
  if (!s.ok()) {
    std::fprintf(stderr, "rio-bench-load: CreateProject: %s\n",
                 s.error_message().c_str());
    return "";
  }
  rio::v1::CreateSenderRequest sreq;
  sreq.set_project(project);
  sreq.set_name("bench-load");
  rio::v1::CreateSenderResponse sender;
  s = projects->CreateSender(AdminContext(token).get(), sreq, &sender);
  if (!s.ok()) {
    std::fprintf(stderr, "rio-bench-load: CreateSender: %s\n",
                 s.error_message().c_str());
    return "";
  }
  for (const std::string& url : absl::GetFlag(FLAGS_handler_urls)) {
    rio::v1::CreateHandlerRequest hreq;
    hreq.set_project(project);
    hreq.set_event(absl::GetFlag(FLAGS_event));
    hreq.set_url(url);
    hreq.set_content_type(rio::v1::Handler::JSON);
    hreq.set_timeout_ms(absl::GetFlag(FLAGS_handler_timeout_ms));
    rio::v1::Handler h;
    s = handlers->CreateHandler(AdminContext(token).get(), hreq, &h);
    if (!s.ok()) {
      std::fprintf(stderr, "rio-bench-load: CreateHandler %s: %s\n",
                   url.c_str(), s.error_message().c_str());
      return "";
    }
  }
  return absl::StrCat("bench-load:", sender.token());
}

// One outstanding call; owned by the loop from start to completion.
struct Call {
  grpc::ClientContext ctx;
  rio::v1::EmitRequest request;
  rio::v1::EmitResponse response;
  rio::v1::EmitBatchRequest batch_request;
  rio::v1::EmitBatchResponse batch_response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<rio::v1::EmitResponse>> unary;
  std::unique_ptr<grpc::ClientAsyncResponseReader<rio::v1::EmitBatchResponse>>
      batch;
  grpc::Status status;
  int64_t send_ns = 0;
  int events = 0;
};

struct Acked {
  std::string message_id;
  int64_t send_ns;
  int64_t ack_ns;
};

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Emits events into rio-server for tools/bench.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_versions)) {
    std::printf("{\"grpc_version\": %s}\n",
                JsonString(grpc::Version()).c_str());
    return 0;
  }
  const std::string target = absl::GetFlag(FLAGS_target);
  const bool batch_mode = absl::GetFlag(FLAGS_mode) == "batch";
  if (!batch_mode && absl::GetFlag(FLAGS_mode) != "unary") {
    std::fprintf(stderr, "rio-bench-load: --mode is unary or batch\n");
    return 2;
  }
  const int per_call = batch_mode ? std::max(1, absl::GetFlag(FLAGS_batch)) : 1;
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const int64_t count = absl::GetFlag(FLAGS_count);
  const double duration = absl::GetFlag(FLAGS_duration);
  const bool keys = absl::GetFlag(FLAGS_idempotency_keys);
  std::string payload = absl::GetFlag(FLAGS_payload);
  if (const int64_t bytes = absl::GetFlag(FLAGS_payload_bytes); bytes > 0) {
    constexpr int64_t kFrame = sizeof("{\"pad\":\"\"}") - 1;
    payload = absl::StrCat(
        "{\"pad\":\"", std::string(std::max<int64_t>(0, bytes - kFrame), 'x'),
        "\"}");
  }
  const std::string project = absl::GetFlag(FLAGS_project);
  const std::string event = absl::GetFlag(FLAGS_event);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_channels)); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("rio.bench.channel", i);  // a distinct connection each
    channels.push_back(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args));
  }
  const std::string credentials = SetUp(channels[0]);
  if (credentials.empty()) return 1;
  const std::string authorization =
      absl::StrCat("Basic ", absl::Base64Escape(credentials));
  std::vector<std::unique_ptr<EmitService::Stub>> stubs;
  for (auto& channel : channels) {
    channel->WaitForConnected(std::chrono::system_clock::now() +
                              std::chrono::seconds(10));
    stubs.push_back(EmitService::NewStub(channel));
  }

  grpc::CompletionQueue cq;
  std::vector<Acked> acked;
  acked.reserve(static_cast<size_t>(std::min<int64_t>(count, 1 << 22)));
  std::map<std::string, int64_t> errors;  // by gRPC code name
  int64_t sent_events = 0, ok_events = 0, failed_events = 0, deliveries = 0;
  int64_t outstanding = 0, calls = 0, max_lag_ns = 0;
  int64_t first_send_ns = 0, last_ack_ns = 0;
  std::vector<double> ack_ms;
  const std::string run = absl::StrCat(RealtimeNs());

  const double cpu_start = SelfCpuSeconds();
  const int64_t start = MonotonicNs();
  const int64_t stop_sending = start + static_cast<int64_t>(duration * 1e9);
  Pacer pacer(absl::GetFlag(FLAGS_rate) / per_call, start);
  const int64_t total_calls = (count + per_call - 1) / per_call;

  auto fill = [&](rio::v1::EmitRequest* r) {
    r->set_project(project);
    r->set_event(event);
    r->set_payload_json(payload);
    if (keys)
      r->set_idempotency_key(absl::StrCat("bench-", run, "-", sent_events));
    ++sent_events;
  };

  for (;;) {
    int64_t now = MonotonicNs();
    bool sending = now < stop_sending && calls < total_calls;
    if (sending) {
      int64_t due = std::min(total_calls, pacer.Due(now));
      while (calls < due && outstanding < concurrency) {
        if (pacer.paced()) {
          max_lag_ns = std::max(max_lag_ns, now - pacer.DueTime(calls));
        }
        auto* call = new Call;
        call->ctx.AddMetadata("authorization", authorization);
        call->ctx.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(60));
        EmitService::Stub* stub = stubs[calls % stubs.size()].get();
        int n =
            static_cast<int>(std::min<int64_t>(per_call, count - sent_events));
        call->events = n;
        if (batch_mode) {
          for (int i = 0; i < n; ++i) fill(call->batch_request.add_events());
        } else {
          fill(&call->request);
        }
        call->send_ns = RealtimeNs();
        if (first_send_ns == 0) first_send_ns = call->send_ns;
        if (batch_mode) {
          call->batch =
              stub->PrepareAsyncEmitBatch(&call->ctx, call->batch_request, &cq);
          call->batch->StartCall();
          call->batch->Finish(&call->batch_response, &call->status, call);
        } else {
          call->unary = stub->PrepareAsyncEmit(&call->ctx, call->request, &cq);
          call->unary->StartCall();
          call->unary->Finish(&call->response, &call->status, call);
        }
        ++calls;
        ++outstanding;
      }
      sending = calls < total_calls;
    }
    if (!sending && outstanding == 0) break;

    // Wait for a completion, or until the next paced send is due.
    auto deadline =
        std::chrono::system_clock::now() + std::chrono::milliseconds(100);
    if (sending && outstanding < concurrency) {
      int64_t wait = pacer.paced() ? pacer.DueTime(calls) - MonotonicNs() : 0;
      deadline = std::chrono::system_clock::now() +
                 std::chrono::nanoseconds(std::max<int64_t>(0, wait));
    }
    void* tag = nullptr;
    bool ok = false;
    grpc::CompletionQueue::NextStatus next = cq.AsyncNext(&tag, &ok, deadline);
    while (next == grpc::CompletionQueue::GOT_EVENT) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      --outstanding;
      const int64_t ack = RealtimeNs();
      last_ack_ns = ack;
      if (ok && call->status.ok()) {
        ok_events += call->events;
        ack_ms.push_back((ack - call->send_ns) / 1e6);
        if (batch_mode) {
          for (const auto& r : call->batch_response.results()) {
            acked.push_back({r.message_id(), call->send_ns, ack});
            deliveries += r.handlers();
          }
        } else {
          acked.push_back({call->response.message_id(), call->send_ns, ack});
          deliveries += call->response.handlers();
        }
      } else {
        failed_events += call->events;
        static const char* kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
        int code = call->status.error_code();
        std::string name = code >= 0 && code <= 16 ? kNames[code] : "?";
        if (errors[name]++ == 0) {
          std::fprintf(stderr, "rio-bench-load: %s: %s\n", name.c_str(),
                       call->status.error_message().c_str());
        }
      }
      // Drain what else is ready without waiting.
      next = cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now());
    }
  }
  const double cpu = SelfCpuSeconds() - cpu_start;
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }

  if (!absl::GetFlag(FLAGS_sends).empty()) {
    FILE* f = std::fopen(absl::GetFlag(FLAGS_sends).c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "rio-bench-load: cannot write the sends file\n");
      return 1;
    }
    std::vector<char> buffer(1 << 20);
    setvbuf(f, buffer.data(), _IOFBF, buffer.size());
    for (const Acked& a : acked) {
      std::fprintf(f, "%s %lld %lld\n", a.message_id.c_str(),
                   static_cast<long long>(a.send_ns),
                   static_cast<long long>(a.ack_ns));
    }
    std::fclose(f);
  }

  const double seconds = (last_ack_ns - first_send_ns) / 1e9;
  std::string error_json;
  for (const auto& [name, n] : errors) {
    absl::StrAppend(&error_json, error_json.empty() ? "" : ", ", "\"", name,
                    "\": ", n);
  }
  std::vector<double> sorted = ack_ms;
  double p50 = Percentile(&sorted, 50), p99 = Percentile(&sorted, 99),
         max = sorted.empty() ? 0 : sorted.back();
  std::printf(
      "{\"mode\": \"%s\", \"sent_events\": %lld, \"ok_events\": %lld, "
      "\"failed_events\": %lld, \"deliveries\": %lld, \"errors\": {%s}, "
      "\"seconds\": %.6f, \"events_per_s\": %.1f, \"ack_p50_ms\": %.3f, "
      "\"ack_p99_ms\": %.3f, \"ack_max_ms\": %.3f, \"max_lag_ms\": %.3f, "
      "\"first_send_ns\": %lld, \"last_ack_ns\": %lld, \"cpu_s\": %.3f, "
      "\"grpc_version\": %s}\n",
      batch_mode ? "batch" : "unary", static_cast<long long>(sent_events),
      static_cast<long long>(ok_events), static_cast<long long>(failed_events),
      static_cast<long long>(deliveries), error_json.c_str(), seconds,
      seconds > 0 ? ok_events / seconds : 0.0, p50, p99, max, max_lag_ns / 1e6,
      static_cast<long long>(first_send_ns),
      static_cast<long long>(last_ack_ns), cpu,
      JsonString(grpc::Version()).c_str());
  return ok_events > 0 ? 0 : 1;
}

}  // namespace
}  // namespace rio::bench

int main(int argc, char** argv) { return rio::bench::Main(argc, argv); }
