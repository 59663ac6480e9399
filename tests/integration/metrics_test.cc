// /metrics and retention through the real rio-server binary, a real
// PostgreSQL and real HTTP receivers on 127.0.0.1.
//
// /metrics is read with a strict parser of the Prometheus text format
// (0.0.4): every line is a HELP, a TYPE or a sample; every sample belongs to
// a family announced by TYPE; label values are properly quoted; histogram
// buckets are cumulative and end with +Inf equal to _count. The values are
// then compared, exactly, with what the test sent. Outcomes, samples and
// retention passes happen on the server's own threads, so each expected
// state is polled with a deadline.
#include <curl/curl.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/store/pg.h"
#include "server/store/retention.h"
#include "server/util/crypto.h"
#include "tests/testkit/fixture.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testkit::PgCluster;
using testkit::Receiver;
using testkit::ReceiverReply;
using testkit::ServerProcess;
using testkit::Sql;
using testkit::WaitFor;

constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
constexpr char kProject[] = "comments";
constexpr milliseconds kSettle(30000);

// ---------------------------------------------------------------------------
// A strict parser of the Prometheus text exposition format.

using Labels = std::map<std::string, std::string>;

struct MetricFamily {
  std::string help;
  std::string type;  // counter, gauge, histogram
};

class Exposition {
 public:
  // Parses `text`; on any violation, returns the first one as an error.
  static absl::StatusOr<Exposition> Parse(const std::string& text);

  // The value of the sample `name` with exactly `labels`, if present.
  std::optional<double> Value(const std::string& name,
                              const Labels& labels = {}) const {
    auto it = samples_.find(Key(name, labels));
    if (it == samples_.end()) return std::nullopt;
    return it->second;
  }
  // Value(), or -1 when absent (so that exact comparisons fail).
  double Get(const std::string& name, const Labels& labels = {}) const {
    return Value(name, labels).value_or(-1);
  }
  const std::map<std::string, MetricFamily>& families() const {
    return families_;
  }
  // Every sample of the family `name` (histograms: of its _bucket series),
  // as label sets.
  std::vector<Labels> SeriesOf(const std::string& name) const;

 private:
  static std::string Key(const std::string& name, const Labels& labels) {
    std::string key = name;
    for (const auto& [k, v] : labels) absl::StrAppend(&key, "|", k, "=", v);
    return key;
  }

  std::map<std::string, MetricFamily> families_;
  std::map<std::string, double> samples_;  // by Key()
  std::vector<std::pair<std::string, Labels>> order_;
};

bool IsName(absl::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!(absl::ascii_isalpha(c) || c == '_' || (allow_colon && c == ':') ||
          (i > 0 && absl::ascii_isdigit(c)))) {
      return false;
    }
  }
  return true;
}

bool ParseValue(absl::string_view text, double* value) {
  if (text == "+Inf") {
    *value = INFINITY;
  } else if (text == "-Inf") {
    *value = -INFINITY;
  } else if (text == "NaN") {
    *value = NAN;
  } else {
    if (text.empty() || absl::StrContains(text, ' ')) return false;
    return absl::SimpleAtod(text, value) && std::isfinite(*value);
  }
  return true;
}

// Parses `{a="x",b="y"}` at the start of `*rest`, consuming it.
absl::Status ParseLabels(absl::string_view* rest, Labels* labels) {
  if (!absl::ConsumePrefix(rest, "{")) return absl::OkStatus();
  while (!absl::ConsumePrefix(rest, "}")) {
    if (!labels->empty() && !absl::ConsumePrefix(rest, ",")) {
      return absl::InvalidArgumentError("labels not separated by ','");
    }
    size_t eq = rest->find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError("label without '='");
    }
    std::string name(rest->substr(0, eq));
    if (!IsName(name, false)) {
      return absl::InvalidArgumentError(absl::StrCat("bad label name ", name));
    }
    rest->remove_prefix(eq + 1);
    if (!absl::ConsumePrefix(rest, "\"")) {
      return absl::InvalidArgumentError("label value not quoted");
    }
    std::string value;
    for (;;) {
      if (rest->empty()) {
        return absl::InvalidArgumentError("unterminated label value");
      }
      char c = rest->front();
      rest->remove_prefix(1);
      if (c == '"') break;
      if (c == '\n') return absl::InvalidArgumentError("raw newline in value");
      if (c == '\\') {
        if (rest->empty()) return absl::InvalidArgumentError("dangling '\\'");
        char e = rest->front();
        rest->remove_prefix(1);
        if (e == 'n') {
          value += '\n';
        } else if (e == '\\' || e == '"') {
          value += e;
        } else {
          return absl::InvalidArgumentError("bad escape in label value");
        }
      } else {
        value += c;
      }
    }
    if (!labels->emplace(name, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("label ", name, " twice"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Exposition> Exposition::Parse(const std::string& text) {
  Exposition e;
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("does not end with a newline");
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(text).substr(0, text.size() - 1), '\n');
  std::string current;  // family whose lines are being read
  std::set<std::string> seen;
  std::map<std::string, std::string> pending_help;  // HELP before its TYPE
  for (size_t n = 0; n < lines.size(); ++n) {
    absl::string_view line = lines[n];
    auto fail = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", n + 1, " \"", line, "\": ", why));
    };
    if (absl::ConsumePrefix(&line, "# HELP ")) {
      size_t space = line.find(' ');
      std::string name(line.substr(0, space));
      if (!IsName(name, true)) return fail("bad metric name");
      if (seen.count(name) > 0) return fail("family repeated");
      pending_help[name] = space == absl::string_view::npos
                               ? std::string()
                               : std::string(line.substr(space + 1));
      continue;
    }
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() != 2) return fail("TYPE needs a name and a type");
      const std::string& name = parts[0];
      if (!IsName(name, true)) return fail("bad metric name");
      if (parts[1] != "counter" && parts[1] != "gauge" &&
          parts[1] != "histogram") {
        return fail("unexpected type");
      }
      if (!seen.insert(name).second) return fail("family repeated");
      auto help = pending_help.find(name);
      if (help == pending_help.end()) return fail("TYPE without HELP");
      e.families_[name] = MetricFamily{help->second, parts[1]};
      pending_help.erase(help);
      current = name;
      continue;
    }
    if (absl::StartsWith(line, "#")) return fail("unexpected comment");
    if (line.empty()) return fail("empty line");
    size_t end = line.find_first_of("{ ");
    if (end == absl::string_view::npos) return fail("sample without value");
    std::string name(line.substr(0, end));
    absl::string_view rest = line.substr(end);
    Labels labels;
    if (auto s = ParseLabels(&rest, &labels); !s.ok()) {
      return fail(std::string(s.message()));
    }
    if (!absl::ConsumePrefix(&rest, " ")) return fail("no space before value");
    double value;
    if (!ParseValue(rest, &value)) return fail("bad value");
    if (current.empty()) return fail("sample before any TYPE");
    const MetricFamily& family = e.families_[current];
    bool belongs = name == current;
    if (family.type == "histogram") {
      belongs = name == current + "_bucket" || name == current + "_sum" ||
                name == current + "_count";
      if (name == current + "_bucket" && labels.count("le") == 0) {
        return fail("bucket without le");
      }
    }
    if (!belongs) return fail(absl::StrCat("not of family ", current));
    if (family.type == "counter" && value < 0) return fail("negative counter");
    if (!e.samples_.emplace(Key(name, labels), value).second) {
      return fail("series repeated");
    }
    e.order_.emplace_back(name, labels);
  }
  if (!pending_help.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("HELP without TYPE: ", pending_help.begin()->first));
  }
  // Histograms: per series, buckets in increasing le, cumulative, +Inf last
  // and equal to _count; _sum present.
  for (const auto& [name, family] : e.families_) {
    if (family.type != "histogram") continue;
    std::map<std::string, std::vector<std::pair<double, double>>> buckets;
    std::map<std::string, Labels> series_labels;
    for (const auto& [sample, labels] : e.order_) {
      if (sample != name + "_bucket") continue;
      Labels rest = labels;
      double le;
      if (!ParseValue(rest["le"], &le)) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": bad le"));
      }
      rest.erase("le");
      std::string key = Key(name, rest);
      buckets[key].emplace_back(le, *e.Value(sample, labels));
      series_labels[key] = rest;
    }
    if (buckets.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": no buckets"));
    }
    for (const auto& [key, list] : buckets) {
      for (size_t i = 1; i < list.size(); ++i) {
        if (!(list[i].first > list[i - 1].first)) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ": le not increasing"));
        }
        if (list[i].second < list[i - 1].second) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ": buckets not cumulative"));
        }
      }
      if (!std::isinf(list.back().first)) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": no +Inf"));
      }
      auto count = e.Value(name + "_count", series_labels[key]);
      auto sum = e.Value(name + "_sum", series_labels[key]);
      if (!count || !sum || *count != list.back().second) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": _count missing or not the +Inf bucket"));
      }
    }
  }
  return e;
}

std::vector<Labels> Exposition::SeriesOf(const std::string& name) const {
  std::vector<Labels> out;
  for (const auto& [sample, labels] : order_) {
    if (sample == name) out.push_back(labels);
  }
  return out;
}

// ---------------------------------------------------------------------------
// HTTP and gRPC helpers.

struct HttpReply {
  long status = 0;
  std::string content_type;
  std::string body;
};

HttpReply HttpGet(const std::string& address, const std::string& path) {
  HttpReply reply;
  CURL* curl = curl_easy_init();
  std::string url = absl::StrCat("http://", address, path);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION,
      +[](char* data, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) reply.content_type = type;
  }
  curl_easy_cleanup(curl);
  return reply;
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& authorization) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() + seconds(10));
  return ctx;
}

std::string AdminAuth() { return absl::StrCat("Bearer ", kAdminToken); }

// A rio-server on a fresh database with project "comments" and its sender.
class MetricsTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra_args,
                   PgCluster& cluster = PgCluster::Shared()) {
    auto url = cluster.CreateDatabase("metrics");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    ServerProcess::Options options;
    options.database_url = url_;
    options.admin_token = kAdminToken;
    options.extra_args = std::move(extra_args);
    server_ = std::make_unique<ServerProcess>(options);
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    projects_ = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
    v1::CreateProjectRequest project;
    project.set_slug(kProject);
    v1::Project created;
    ASSERT_TRUE(
        projects_->CreateProject(Context(AdminAuth()).get(), project, &created)
            .ok());
    v1::CreateSenderRequest sender;
    sender.set_project(kProject);
    sender.set_name("app");
    v1::CreateSenderResponse resp;
    ASSERT_TRUE(
        projects_->CreateSender(Context(AdminAuth()).get(), sender, &resp)
            .ok());
    auth_ = absl::StrCat(
        "Basic", " ", util::Base64Encode(absl::StrCat("app:", resp.token())));
  }

  std::string CreateHandler(const std::string& event, const std::string& url,
                            int timeout_ms = 0) {
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(event);
    req.set_url(url);
    if (timeout_ms > 0) req.set_timeout_ms(timeout_ms);
    v1::Handler handler;
    grpc::Status s =
        handlers_->CreateHandler(Context(AdminAuth()).get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler.id();
  }

  grpc::Status Emit(const std::string& event,
                    const std::string& idempotency_key = "",
                    const std::string& authorization = "") {
    v1::EmitRequest req;
    req.set_project(kProject);
    req.set_event(event);
    req.set_payload_json(R"({"n":1})");
    req.set_idempotency_key(idempotency_key);
    v1::EmitResponse resp;
    return emitter_->Emit(
        Context(authorization.empty() ? auth_ : authorization).get(), req,
        &resp);
  }

  void MustEmit(const std::string& event, const std::string& key = "") {
    grpc::Status s = Emit(event, key);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  // Scrapes and parses /metrics, failing the test on a malformed page.
  Exposition Scrape() {
    HttpReply reply = HttpGet(server_->http_address(), "/metrics");
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
    auto parsed = Exposition::Parse(reply.body);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << reply.body;
    return parsed.ok() ? *std::move(parsed) : Exposition();
  }

  // Polls /metrics until `condition` holds.
  ::testing::AssertionResult MetricsReach(
      const std::function<bool(const Exposition&)>& condition,
      const std::string& what, milliseconds timeout = kSettle) {
    if (WaitFor([&] { return condition(Scrape()); }, timeout)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << what << " not reached; /metrics:\n"
           << HttpGet(server_->http_address(), "/metrics").body;
  }

  std::string url_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::string auth_;
};

// ---------------------------------------------------------------------------

TEST_F(MetricsTest, PageIsWellFormedAndDocumentsEveryFamily) {
  StartServer({});
  Exposition m = Scrape();
  std::vector<std::string> names;
  for (const auto& [name, family] : m.families()) {
    names.push_back(absl::StrCat(name, " ", family.type));
    EXPECT_FALSE(family.help.empty()) << name;
    if (family.type == "counter") {
      EXPECT_TRUE(absl::EndsWith(name, "_total")) << name;
    }
  }
  EXPECT_THAT(
      names,
      ::testing::ElementsAre(
          "rio_attempt_duration_seconds histogram",
          "rio_attempt_errors_total counter", "rio_attempts_total counter",
          "rio_build_info gauge", "rio_database_errors_total counter",
          "rio_database_up gauge", "rio_deliveries_created_total counter",
          "rio_deliveries_finished_total counter",
          "rio_dispatch_in_flight gauge", "rio_duplicate_events_total counter",
          "rio_emit_commit_seconds histogram",
          "rio_emit_requests_total counter", "rio_emit_wait_seconds histogram",
          "rio_emitted_events_total counter", "rio_handlers_disabled gauge",
          "rio_oldest_due_delivery_age_seconds gauge",
          "rio_pending_deliveries gauge",
          "rio_process_start_time_seconds gauge",
          "rio_queue_sample_timestamp_seconds gauge",
          "rio_retention_deleted_total counter",
          "rio_retention_partitions_total counter",
          "rio_retention_runs_total counter"));
  EXPECT_EQ(m.Get("rio_build_info", {{"version", "0.1.0"}}), 1);
  const double now = static_cast<double>(
      std::chrono::duration_cast<seconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  EXPECT_GT(m.Get("rio_process_start_time_seconds"), now - 120);
  EXPECT_LE(m.Get("rio_process_start_time_seconds"), now + 1);
  EXPECT_EQ(m.Get("rio_database_up"), 1);
  EXPECT_EQ(m.SeriesOf("rio_attempt_duration_seconds_bucket").size(), 13u);
  EXPECT_EQ(m.Get("rio_attempt_duration_seconds_bucket", {{"le", "0.005"}}), 0);
  EXPECT_EQ(m.Get("rio_attempt_duration_seconds_bucket", {{"le", "30"}}), 0);
  EXPECT_EQ(m.Get("rio_attempt_duration_seconds_bucket", {{"le", "+Inf"}}), 0);
}

TEST_F(MetricsTest, CountersMatchWhatWasSent) {
  Receiver ok;
  Receiver broken([](const testkit::ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 500;
    reply.body = "broken";
    return reply;
  });
  START_RECEIVER(ok);
  START_RECEIVER(broken);
  // One attempt per delivery: a failure is final at once.
  StartServer({"--retry_schedule=", "--queue_sample_interval=200ms"});
  CreateHandler("good", ok.Url());
  CreateHandler("bad", broken.Url());

  for (int i = 0; i < 7; ++i) MustEmit("good", i == 0 ? "key-1" : "");
  for (int i = 0; i < 3; ++i) MustEmit("bad");
  MustEmit("good", "key-1");  // a duplicate: nothing new
  v1::EmitBatchRequest batch;
  for (int i = 0; i < 2; ++i) {
    v1::EmitRequest* event = batch.add_events();
    event->set_project(kProject);
    event->set_event("good");
    event->set_payload_json("{}");
  }
  v1::EmitBatchResponse batch_resp;
  ASSERT_TRUE(
      emitter_->EmitBatch(Context(auth_).get(), batch, &batch_resp).ok());
  // Rejections.
  EXPECT_EQ(Emit("bad name!").error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Emit("").error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Emit("good", "",
                 absl::StrCat("Basic ", util::Base64Encode("app:wrong-token")))
                .error_code(),
            grpc::UNAUTHENTICATED);
  v1::EmitBatchRequest empty;
  EXPECT_EQ(emitter_->EmitBatch(Context(auth_).get(), empty, &batch_resp)
                .error_code(),
            grpc::INVALID_ARGUMENT);

  // 9 calls to `ok`, 3 to `broken`.
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_deliveries_finished_total",
                     {{"status", "succeeded"}}) == 9 &&
               m.Get("rio_deliveries_finished_total", {{"status", "failed"}}) ==
                   3;
      },
      "12 finished deliveries"));
  ASSERT_TRUE(ok.WaitForCount(9));
  ASSERT_TRUE(broken.WaitForCount(3));
  Exposition m = Scrape();
  EXPECT_EQ(
      m.Get("rio_emit_requests_total", {{"method", "Emit"}, {"code", "OK"}}),
      11);
  EXPECT_EQ(m.Get("rio_emit_requests_total",
                  {{"method", "EmitBatch"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(m.Get("rio_emit_requests_total",
                  {{"method", "Emit"}, {"code", "INVALID_ARGUMENT"}}),
            2);
  EXPECT_EQ(m.Get("rio_emit_requests_total",
                  {{"method", "Emit"}, {"code", "UNAUTHENTICATED"}}),
            1);
  EXPECT_EQ(m.Get("rio_emit_requests_total",
                  {{"method", "EmitBatch"}, {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(m.SeriesOf("rio_emit_requests_total").size(), 5u);
  EXPECT_EQ(m.Get("rio_emitted_events_total"), 12);
  EXPECT_EQ(m.Get("rio_duplicate_events_total"), 1);
  EXPECT_EQ(m.Get("rio_deliveries_created_total"), 12);
  // The 12 accepted calls came one at a time: each waited for the writer
  // and was committed in a group of its own.
  EXPECT_EQ(m.Get("rio_emit_wait_seconds_count"), 12);
  EXPECT_EQ(m.Get("rio_emit_commit_seconds_count"), 12);
  EXPECT_EQ(m.Get("rio_emit_commit_seconds_bucket", {{"le", "+Inf"}}), 12);
  EXPECT_GT(m.Get("rio_emit_commit_seconds_sum"), 0);

  EXPECT_EQ(m.Get("rio_attempts_total", {{"outcome", "succeeded"}}), 9);
  EXPECT_EQ(m.Get("rio_attempts_total", {{"outcome", "failed"}}), 3);
  EXPECT_EQ(m.Get("rio_attempts_total", {{"outcome", "retry"}}), 0);
  EXPECT_EQ(m.Get("rio_attempts_total", {{"outcome", "cancelled"}}), 0);
  EXPECT_EQ(m.Get("rio_attempt_errors_total", {{"error_class", "http_status"}}),
            3);
  for (const char* error_class :
       {"timeout", "connect", "dns", "tls", "invalid_target"}) {
    EXPECT_EQ(m.Get("rio_attempt_errors_total", {{"error_class", error_class}}),
              0)
        << error_class;
  }
  EXPECT_EQ(m.Get("rio_attempt_duration_seconds_count"), 12);
  EXPECT_EQ(m.Get("rio_attempt_duration_seconds_bucket", {{"le", "+Inf"}}), 12);
  EXPECT_GT(m.Get("rio_attempt_duration_seconds_sum"), 0);
  EXPECT_EQ(m.Get("rio_deliveries_finished_total", {{"status", "cancelled"}}),
            0);
  EXPECT_EQ(m.Get("rio_dispatch_in_flight"), 0);
  EXPECT_EQ(m.Get("rio_handlers_disabled"), 0);
  for (const char* kind :
       {"connect", "unavailable", "already_exists", "aborted", "internal"}) {
    EXPECT_EQ(m.Get("rio_database_errors_total", {{"kind", kind}}), 0) << kind;
  }
  // The database agrees once the outcomes are written (they are counted on
  // their way to the writer).
  std::string statuses;
  EXPECT_TRUE(WaitFor(
      [&] {
        statuses = Sql(url_,
                       "SELECT string_agg(status || '=' || n, ',' ORDER BY "
                       "status) FROM (SELECT status, count(*) AS n FROM "
                       "deliveries GROUP BY status) s");
        return statuses == "FAILED=3,SUCCEEDED=9";
      },
      kSettle))
      << statuses;
  // Nothing is pending once the queue has been sampled again.
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_pending_deliveries", {{"state", "due"}}) == 0 &&
               m.Get("rio_pending_deliveries", {{"state", "scheduled"}}) == 0 &&
               m.Get("rio_queue_sample_timestamp_seconds") > 0;
      },
      "an empty queue"));
  EXPECT_EQ(Scrape().Get("rio_oldest_due_delivery_age_seconds"), 0);
}

TEST_F(MetricsTest, DisabledHandlersAreCounted) {
  Receiver ok;
  START_RECEIVER(ok);
  StartServer({});
  const std::string a = CreateHandler("e", ok.Url());
  CreateHandler("e", ok.Url());
  v1::UpdateHandlerRequest update;
  update.set_id(a);
  update.set_enabled(false);
  v1::Handler handler;
  ASSERT_TRUE(
      handlers_->UpdateHandler(Context(AdminAuth()).get(), update, &handler)
          .ok());
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) { return m.Get("rio_handlers_disabled") == 1; },
      "one disabled handler"));
}

// Retries of a receiver that is down become due while a hanging receiver
// holds the only slot (--max_in_flight=1): PostgreSQL has them due, and they
// wait, ageing, until there is room.
TEST_F(MetricsTest, RetriesOfADownReceiverAreDueWhileThereIsNoRoom) {
  Receiver hanging([](const testkit::ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.hang = true;
    return reply;
  });
  Receiver down;
  START_RECEIVER(hanging);
  START_RECEIVER(down);
  const std::string down_url = down.Url();
  down.Stop();  // nothing listens there any more
  StartServer({"--max_in_flight=1", "--retry_schedule=5s",
               "--queue_sample_interval=200ms"});
  CreateHandler("lost", down_url);
  CreateHandler("slow", hanging.Url(), /*timeout_ms=*/300000);

  constexpr int kLost = 4;
  for (int i = 0; i < kLost; ++i) MustEmit("lost");
  // Each fails to connect once and is scheduled again 4 to 6 s later.
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_pending_deliveries", {{"state", "scheduled"}}) ==
                   kLost &&
               m.Get("rio_attempts_total", {{"outcome", "retry"}}) == kLost;
      },
      "4 retries scheduled"));
  EXPECT_EQ(
      Scrape().Get("rio_attempt_errors_total", {{"error_class", "connect"}}),
      kLost);
  MustEmit("slow");
  ASSERT_TRUE(hanging.WaitForCount(1));
  // The slot was taken before any retry was due, so none can run now.
  ASSERT_EQ(Sql(url_,
                "SELECT count(*) FROM deliveries d JOIN messages m ON m.id = "
                "d.message_id WHERE m.event = 'lost' AND d.next_attempt_time "
                "> now()"),
            absl::StrCat(kLost));

  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_pending_deliveries", {{"state", "due"}}) == kLost &&
               m.Get("rio_oldest_due_delivery_age_seconds") > 0;
      },
      "4 due deliveries"));
  Exposition m = Scrape();
  // The hanging call's delivery is leased: scheduled, not due.
  EXPECT_EQ(m.Get("rio_pending_deliveries", {{"state", "scheduled"}}), 1);
  EXPECT_EQ(m.Get("rio_dispatch_in_flight"), 1);
  EXPECT_EQ(m.Get("rio_deliveries_created_total"), kLost + 1);
  EXPECT_EQ(m.Get("rio_attempts_total", {{"outcome", "retry"}}), kLost);
  EXPECT_EQ(m.Get("rio_attempt_duration_seconds_count"), kLost);
  // The age grows while nothing moves.
  const double age = m.Get("rio_oldest_due_delivery_age_seconds");
  ASSERT_TRUE(MetricsReach(
      [age](const Exposition& m) {
        return m.Get("rio_oldest_due_delivery_age_seconds") > age &&
               m.Get("rio_pending_deliveries", {{"state", "due"}}) == kLost;
      },
      "an older oldest due delivery"));
}

// While PostgreSQL is down, /readyz says 503, errors are counted and the
// queue gauges keep their last values; all recover with the database.
TEST_F(MetricsTest, DatabaseOutage) {
  PgCluster cluster;
  ASSERT_TRUE(cluster.Start().ok());
  Receiver down;
  START_RECEIVER(down);
  const std::string down_url = down.Url();
  down.Stop();
  StartServer({"--retry_schedule=1h", "--queue_sample_interval=200ms"},
              cluster);
  CreateHandler("lost", down_url);
  MustEmit("lost");
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_pending_deliveries", {{"state", "scheduled"}}) == 1 &&
               m.Get("rio_attempts_total", {{"outcome", "retry"}}) == 1;
      },
      "one scheduled retry"));
  EXPECT_EQ(HttpGet(server_->http_address(), "/readyz").status, 200);

  ASSERT_TRUE(cluster.Stop().ok());
  ASSERT_TRUE(WaitFor([&] {
    return HttpGet(server_->http_address(), "/readyz").status == 503;
  }));
  Exposition during = Scrape();
  EXPECT_EQ(during.Get("rio_database_up"), 0);
  const double sampled = during.Get("rio_queue_sample_timestamp_seconds");
  auto errors = [](const Exposition& m) {
    return m.Get("rio_database_errors_total", {{"kind", "connect"}}) +
           m.Get("rio_database_errors_total", {{"kind", "unavailable"}});
  };
  const double errors_before = errors(during);
  ASSERT_TRUE(MetricsReach(
      [&](const Exposition& m) { return errors(m) >= errors_before + 5; },
      "more database errors"));
  Exposition later = Scrape();
  EXPECT_EQ(later.Get("rio_queue_sample_timestamp_seconds"), sampled);
  EXPECT_EQ(later.Get("rio_pending_deliveries", {{"state", "scheduled"}}), 1);
  EXPECT_EQ(later.Get("rio_pending_deliveries", {{"state", "due"}}), 0);

  ASSERT_TRUE(cluster.Start().ok());
  ASSERT_TRUE(WaitFor(
      [&] { return HttpGet(server_->http_address(), "/readyz").status == 200; },
      seconds(20)));
  ASSERT_TRUE(MetricsReach(
      [&](const Exposition& m) {
        return m.Get("rio_database_up") == 1 &&
               m.Get("rio_queue_sample_timestamp_seconds") > sampled;
      },
      "sampling again"));
  EXPECT_EQ(Scrape().Get("rio_pending_deliveries", {{"state", "scheduled"}}),
            1);
  server_->Stop();
}

// ---------------------------------------------------------------------------
// Retention.

class RetentionTest : public MetricsTest {
 protected:
  // Emits 5 "old" events to a receiver that answers 200 and one "stuck"
  // event to a receiver that is down (retried in an hour), waits until they
  // are settled, then ages them: the old ones two hours, the stuck one
  // three (apart, in partitions of a minute); emits 3 "recent" events; adds
  // three recoveries (one finished two hours ago, one running since then,
  // one finished now). The running one's next batch is a day away: the
  // server would otherwise run it, find nothing and finish it.
  void MakeHistory() {
    START_RECEIVER(ok_);
    Receiver down;
    START_RECEIVER(down);
    const std::string down_url = down.Url();
    down.Stop();
    CreateHandler("old", ok_.Url());
    CreateHandler("stuck", down_url);
    CreateHandler("recent", ok_.Url());
    for (int i = 0; i < 5; ++i) MustEmit("old");
    MustEmit("stuck");
    ASSERT_TRUE(WaitFor(
        [&] {
          return Sql(url_,
                     "SELECT string_agg(status || ':' || attempts, ',' ORDER "
                     "BY status) FROM deliveries d JOIN attempts a ON "
                     "a.delivery_id = d.id") ==
                 "PENDING:1,SUCCEEDED:1,SUCCEEDED:1,SUCCEEDED:1,SUCCEEDED:1,"
                 "SUCCEEDED:1";
        },
        kSettle));
    Age("old", "2 hours");
    Age("stuck", "3 hours");
    for (int i = 0; i < 3; ++i) MustEmit("recent");
    ASSERT_TRUE(ok_.WaitForCount(8));
    // (Retention may be dropping the old ones meanwhile.)
    ASSERT_TRUE(WaitFor(
        [&] {
          return Sql(url_,
                     "SELECT count(*) FROM deliveries d JOIN messages m ON "
                     "m.id = d.message_id WHERE m.event = 'recent' AND "
                     "d.status = 'SUCCEEDED'") == "3";
        },
        kSettle));
    Sql(url_,
        "INSERT INTO recoveries (id, project_id, since, until, "
        "rate_per_second, state, matched, create_time, finish_time, "
        "next_batch_time) SELECT v.id::uuid, p.id, now(), now(), 1, v.state, "
        "0, now() - interval '3 hours', v.finish, now() + interval '1 day' "
        "FROM projects p, (VALUES "
        "('00000000-0000-0000-0000-00000000000a', 'DONE', now() - interval "
        "'2 hours'), ('00000000-0000-0000-0000-00000000000b', 'RUNNING', "
        "NULL), ('00000000-0000-0000-0000-00000000000c', 'CANCELLED', now())) "
        "AS v(id, state, finish)");
  }

  // Makes the messages of `event`, their deliveries and attempts as if
  // written `age` ago: their times, and the time their ids begin with (so
  // they move to the partition of that time, made here).
  void Age(const std::string& event, const std::string& age) {
    auto shifted = [&](const std::string& column) {
      return absl::StrCat(
          "(lpad(to_hex(('x' || substr(replace(", column,
          "::text, '-', ''), 1, 12))::bit(48)::bigint - (extract(epoch FROM "
          "interval '",
          age, "') * 1000)::bigint), 12, '0') || substr(replace(", column,
          "::text, '-', ''), 13))::uuid");
    };
    const std::string ago = absl::StrCat("now() - interval '", age, "'");
    const std::string ids =
        absl::StrCat("(SELECT id FROM messages WHERE event = '", event, "')");
    // One transaction: a retention pass sees all of it or none.
    Sql(url_, absl::StrCat(
                  "SELECT rio_create_partitions(", ago,
                  " - interval '2 minutes', ", ago,
                  " + interval '2 minutes', '1 minute'); UPDATE attempts SET "
                  "delivery_id = ",
                  shifted("delivery_id"),
                  " WHERE delivery_id IN (SELECT id FROM deliveries WHERE "
                  "message_id IN ",
                  ids, "); UPDATE deliveries SET id = ", shifted("id"),
                  ", message_id = ", shifted("message_id"),
                  ", create_time = create_time - interval '", age,
                  "' WHERE message_id IN ", ids, "; UPDATE messages SET id = ",
                  shifted("id"), ", create_time = create_time - interval '",
                  age, "' WHERE event = '", event, "'"));
  }

  // "event:messages:deliveries:attempts" per event, ';'-separated.
  std::string History() {
    return Sql(url_,
               "SELECT string_agg(event || ':' || n || ':' || d || ':' || a, "
               "';' ORDER BY event) FROM (SELECT m.event, count(DISTINCT "
               "m.id) AS n, count(DISTINCT d.id) AS d, count(a.*) AS a FROM "
               "messages m LEFT JOIN deliveries d ON d.message_id = m.id LEFT "
               "JOIN attempts a ON a.delivery_id = d.id GROUP BY m.event) s");
  }

  std::string Recoveries() {
    return Sql(url_,
               "SELECT string_agg(state, ',' ORDER BY id) FROM recoveries");
  }

  Receiver ok_;
};

TEST_F(RetentionTest, DropsOldPartitionsWithoutPendingDeliveries) {
  StartServer({"--retention=1h", "--partition_interval=1m",
               "--retention_interval=200ms", "--retry_schedule=1h"});
  MakeHistory();
  ASSERT_FALSE(HasFailure());
  // Statistics keep their own time: a minute row of 8 hours ago goes, an
  // hour row of 2 days ago stays.
  Sql(url_,
      "INSERT INTO delivery_counts (handler_id, span, start_time, shard, "
      "succeeded) SELECT id, s, rio_span_start(now() - a, s), 99, 7 FROM "
      "(SELECT id FROM handlers LIMIT 1) AS h, (VALUES (60, interval '8 "
      "hours'), (3600, interval '2 days')) AS v(s, a)");

  ASSERT_TRUE(
      WaitFor([&] { return History() == "recent:3:3:3;stuck:1:1:1"; }, kSettle))
      << History();
  // Nothing dangling: every delivery and attempt left has its parent.
  EXPECT_EQ(Sql(url_,
                "SELECT (SELECT count(*) FROM deliveries) || ',' || (SELECT "
                "count(*) FROM attempts)"),
            "4,4");
  ASSERT_TRUE(WaitFor([&] { return Recoveries() == "RUNNING,CANCELLED"; }))
      << Recoveries();
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_retention_deleted_total",
                     {{"table", "recoveries"}}) == 1;
      },
      "1 recovery deleted"));
  ASSERT_TRUE(MetricsReach(
      [](const Exposition& m) {
        return m.Get("rio_retention_deleted_total", {{"table", "counters"}}) ==
               1;
      },
      "1 counter row deleted"));
  EXPECT_EQ(Sql(url_, "SELECT span FROM delivery_counts WHERE shard = 99"),
            "3600");
  // Every partition of the old ones' time went (those made empty around
  // them too); the stuck one's stays while its delivery is pending.
  EXPECT_EQ(Sql(url_,
                "SELECT count(*) FROM rio_history_partitions WHERE "
                "upper_time < now() - interval '1 hour'"),
            "1");
  Exposition m = Scrape();
  EXPECT_GE(m.Get("rio_retention_partitions_total", {{"result", "dropped"}}),
            4);
  EXPECT_GE(m.Get("rio_retention_partitions_total", {{"result", "held"}}), 1);
  EXPECT_GE(m.Get("rio_retention_partitions_total", {{"result", "created"}}),
            3);
  EXPECT_EQ(m.Get("rio_retention_runs_total", {{"result", "failed"}}), 0);
  EXPECT_EQ(m.Get("rio_retention_runs_total", {{"result", "skipped"}}), 0);
  EXPECT_GE(m.Get("rio_retention_runs_total", {{"result", "completed"}}), 1);
  EXPECT_THAT(server_->Log(),
              ::testing::HasSubstr("rio-server: retention dropped the "
                                   "messages, deliveries and attempts of "
                                   "partition p"));
  EXPECT_THAT(server_->Log(),
              ::testing::ContainsRegex("rio-server: retention keeps partition "
                                       "p[0-9t]+: a delivery in it is still "
                                       "pending"));

  // Once the stuck delivery is finished, its message goes too.
  Sql(url_, "UPDATE deliveries SET status = 'FAILED' WHERE status = 'PENDING'");
  ASSERT_TRUE(WaitFor([&] { return History() == "recent:3:3:3"; }, kSettle))
      << History();
}

// Another instance holding the retention lock (here, the test) makes every
// pass skip; once it lets go, the next pass deletes.
TEST_F(RetentionTest, OneInstanceAtATime) {
  StartServer({"--retention=1h", "--partition_interval=1m",
               "--retention_interval=200ms", "--retry_schedule=1h"});
  auto holder = store::PgConnection::Connect(url_);
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)
                  ->Exec(absl::StrCat("SELECT pg_advisory_lock(",
                                      store::kRetentionLockKey, ")"))
                  .ok());
  // Once a pass has been skipped, none can complete any more (one that was
  // in progress when the lock was taken has ended and been counted).
  auto skipped_passes = [](const Exposition& m) {
    return m.Get("rio_retention_runs_total", {{"result", "skipped"}});
  };
  ASSERT_TRUE(
      MetricsReach([&](const Exposition& m) { return skipped_passes(m) >= 1; },
                   "a skipped pass"));
  const double completed =
      Scrape().Get("rio_retention_runs_total", {{"result", "completed"}});
  MakeHistory();
  ASSERT_FALSE(HasFailure());
  const std::string before = History();
  EXPECT_EQ(before, "old:5:5:5;recent:3:3:3;stuck:1:1:1");
  // Passes after the history was made: they skipped it.
  const double skipped = skipped_passes(Scrape());
  ASSERT_TRUE(MetricsReach(
      [&](const Exposition& m) { return skipped_passes(m) >= skipped + 2; },
      "two more skipped passes"));
  EXPECT_EQ(History(), before);
  EXPECT_EQ(Scrape().Get("rio_retention_runs_total", {{"result", "completed"}}),
            completed);

  ASSERT_TRUE((*holder)
                  ->Exec(absl::StrCat("SELECT pg_advisory_unlock(",
                                      store::kRetentionLockKey, ")"))
                  .ok());
  ASSERT_TRUE(
      WaitFor([&] { return History() == "recent:3:3:3;stuck:1:1:1"; }, kSettle))
      << History();
}

TEST_F(RetentionTest, ZeroKeepsEverything) {
  StartServer({"--retention=0", "--partition_interval=1m",
               "--retention_interval=200ms", "--retry_schedule=1h",
               "--queue_sample_interval=200ms"});
  MakeHistory();
  ASSERT_FALSE(HasFailure());
  // Several queue samples later, no pass has run and nothing is gone.
  const double sampled = Scrape().Get("rio_queue_sample_timestamp_seconds");
  ASSERT_TRUE(MetricsReach(
      [sampled](const Exposition& m) {
        return m.Get("rio_queue_sample_timestamp_seconds") >= sampled + 1;
      },
      "a second of samples"));
  EXPECT_EQ(History(), "old:5:5:5;recent:3:3:3;stuck:1:1:1");
  Exposition m = Scrape();
  for (const char* result : {"completed", "skipped", "failed"}) {
    EXPECT_EQ(m.Get("rio_retention_runs_total", {{"result", result}}), 0);
  }
  // Partitions are still made ahead of the clock, and none is dropped.
  EXPECT_GE(m.Get("rio_retention_partitions_total", {{"result", "created"}}),
            3);
  EXPECT_EQ(m.Get("rio_retention_partitions_total", {{"result", "dropped"}}),
            0);
}

}  // namespace
}  // namespace rio
