// rio-server against receivers that misbehave (testkit::HostileReceiver):
// invalid UTF-8, endless or huge bodies, a flood of headers, garbage status
// lines, slowloris, resets, silence, endless 1xx, redirect loops.
//
// For each behaviour a real rio-server sends every event to a healthy
// receiver and to the hostile one, and the tests check that
//   - the healthy receiver gets every delivery, each succeeding at once;
//   - each hostile call is recorded as exactly one attempt with the outcome
//     that the behaviour deserves (error class and status code);
//   - recording goes on afterwards (later deliveries still succeed);
//   - rio-server's peak memory stays bounded.
// Retries are an hour away (--retry_schedule=1h), so every delivery to the
// hostile receiver has exactly one attempt while the test runs.
#include "tests/testkit/hostile_receiver.h"

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/util/crypto.h"
#include "tests/testkit/fixture.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio::testkit {

// Test parameters print as their names.
void PrintTo(HostileBehaviour behaviour, std::ostream* os) {
  *os << HostileBehaviourName(behaviour);
}

}  // namespace rio::testkit

namespace rio {
namespace {

using google::protobuf::util::TimeUtil;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using testkit::HostileBehaviour;
using testkit::HostileReceiver;
using testkit::PgCluster;
using testkit::Receiver;
using testkit::ServerProcess;
using testkit::WaitFor;

constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
constexpr char kProject[] = "shop";
constexpr char kEvent[] = "order-paid";
constexpr char kFffd[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8.
constexpr int kHostileTimeoutMs = 2000;
constexpr int kEvents = 20;
constexpr int kMoreEvents = 5;
constexpr int64_t kMaxPeakRssKb = 400 * 1024;
// How long deliveries may take to settle (and be recorded) before a test
// gives up on them.
constexpr milliseconds kSettle(30000);
// How often the tests ask the server while they wait.
constexpr milliseconds kAskEvery(100);

// What a hostile receiver's attempt must look like.
struct Expected {
  HostileBehaviour behaviour;
  bool succeeds;
  std::string error_class;
  // Any of these status codes.
  std::set<int> status_codes;
};

const Expected& ExpectedFor(HostileBehaviour behaviour) {
  static const std::vector<Expected>* const table = new std::vector<Expected>{
      {HostileBehaviour::kInvalidUtf8, true, "", {200}},
      {HostileBehaviour::kHugeBody, true, "", {200}},
      {HostileBehaviour::kEndlessChunked, true, "", {200}},
      // The status line did arrive before the headers overflowed.
      {HostileBehaviour::kManyHeaders, false, "invalid_response", {0, 200}},
      {HostileBehaviour::kGarbageStatus, false, "invalid_response", {0}},
      {HostileBehaviour::kSlowloris, false, "timeout", {0}},
      // Its status line arrives before the reset.
      {HostileBehaviour::kResetMidResponse, false, "connection_lost", {0, 200}},
      {HostileBehaviour::kNeverAnswer, false, "timeout", {0}},
      {HostileBehaviour::kEndless1xx, false, "invalid_response", {0, 100}},
      {HostileBehaviour::kRedirectLoop, false, "http_status", {302}},
  };
  for (const Expected& expected : *table) {
    if (expected.behaviour == behaviour) return expected;
  }
  ADD_FAILURE() << "no expectation for "
                << testkit::HostileBehaviourName(behaviour);
  return table->front();
}

std::unique_ptr<grpc::ClientContext> Context(
    const std::string& authorization = absl::StrCat("Bearer ", kAdminToken)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() + seconds(10));
  return ctx;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(
      absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
      ": ", s.error_message());
}

// WaitFor, asking `condition` (which calls the server) only every kAskEvery.
bool WaitForServer(const std::function<bool()>& condition,
                   milliseconds timeout = kSettle) {
  auto last = std::chrono::steady_clock::now() - kAskEvery;
  return WaitFor(
      [&] {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < kAskEvery) return false;
        last = now;
        return condition();
      },
      timeout);
}

// VmHWM (peak resident set) of `pid` in kB, from /proc/<pid>/status; -1 if
// unreadable.
int64_t PeakRssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest(line);
    if (!absl::ConsumePrefix(&rest, "VmHWM:")) continue;
    absl::ConsumeSuffix(&rest, "kB");
    int64_t kb = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kb)) return kb;
  }
  return -1;
}

std::string HeaderValue(const v1::Attempt& attempt, absl::string_view name) {
  for (const v1::Header& h : attempt.response_headers()) {
    if (absl::EqualsIgnoreCase(h.name(), name)) return h.value();
  }
  return "<absent>";
}

// One line for a delivery's outcome, for grouping alike ones.
std::string Summary(const v1::Delivery& delivery) {
  std::string out = absl::StrCat(v1::Delivery::Status_Name(delivery.status()),
                                 " attempts=", delivery.attempts_size());
  if (delivery.attempts_size() > 0) {
    const v1::Attempt& a = delivery.attempts(0);
    absl::StrAppend(&out, " error_class=\"", a.error_class(),
                    "\" status_code=", a.status_code(),
                    " body_bytes=", a.response_body().size(),
                    " error_message=\"",
                    // Sizes and times vary from one call to the next.
                    a.error_message().substr(
                        0, a.error_message().find_first_of("0123456789")),
                    "...\"");
  }
  return out;
}

std::string BehaviourTestName(
    const ::testing::TestParamInfo<HostileBehaviour>& info) {
  return std::string(testkit::HostileBehaviourName(info.param));
}

// One rio-server on a fresh database with project "shop", its sender, and a
// healthy receiver registered for kEvent.
class HostileReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("hostile");
    ASSERT_TRUE(url.ok()) << url.status();
    ServerProcess::Options options;
    options.database_url = *url;
    options.admin_token = kAdminToken;
    options.extra_args = {"--retry_schedule=1h"};
    server_ = std::make_unique<ServerProcess>(options);
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    projects_ = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
    deliveries_ = v1::DeliveryService::NewStub(server_->Channel());
    ASSERT_NO_FATAL_FAILURE(CreateProjectWithSender());
    START_RECEIVER(healthy_);
    healthy_id_ = CreateHandler(healthy_.Url(), /*timeout_ms=*/10000);
    ASSERT_FALSE(healthy_id_.empty());
  }

  void CreateProjectWithSender() {
    v1::CreateProjectRequest project;
    project.set_slug(kProject);
    v1::Project created;
    grpc::Status s =
        projects_->CreateProject(Context().get(), project, &created);
    ASSERT_TRUE(s.ok()) << Describe(s);
    v1::CreateSenderRequest sender;
    sender.set_project(kProject);
    sender.set_name("app");
    v1::CreateSenderResponse resp;
    s = projects_->CreateSender(Context().get(), sender, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    sender_auth_ = absl::StrCat(
        "Basic ", util::Base64Encode(absl::StrCat("app:", resp.token())));
  }

  // Returns the handler's id ("" on failure, which fails the test).
  std::string CreateHandler(const std::string& url, int timeout_ms) {
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(kEvent);
    req.set_url(url);
    req.set_timeout_ms(timeout_ms);
    v1::Handler handler;
    const grpc::Status s =
        handlers_->CreateHandler(Context().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return handler.id();
  }

  void EmitEvents(int count) {
    for (int i = 0; i < count; ++i) {
      v1::EmitRequest req;
      req.set_project(kProject);
      req.set_event(kEvent);
      req.set_payload_json(absl::StrCat("{\"n\":", emitted_++, "}"));
      v1::EmitResponse resp;
      const grpc::Status s =
          emitter_->Emit(Context(sender_auth_).get(), req, &resp);
      ASSERT_TRUE(s.ok()) << Describe(s);
      ASSERT_EQ(resp.handlers(), handler_count_);
    }
  }

  // Every delivery of `handler_id`; fails the test on an error.
  std::vector<v1::Delivery> Deliveries(const std::string& handler_id) {
    v1::ListDeliveriesRequest req;
    req.set_project(kProject);
    req.set_handler_id(handler_id);
    req.set_page_size(1000);
    v1::ListDeliveriesResponse resp;
    const grpc::Status s =
        deliveries_->ListDeliveries(Context().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return {resp.deliveries().begin(), resp.deliveries().end()};
  }

  // Waits until the healthy handler has `n` deliveries, all SUCCEEDED after
  // one attempt, and its receiver got `n` requests.
  void ExpectHealthyDelivered(int n) {
    std::vector<v1::Delivery> last;
    const bool succeeded = WaitForServer([&] {
      last = Deliveries(healthy_id_);
      return static_cast<int>(last.size()) == n &&
             std::all_of(last.begin(), last.end(), [](const v1::Delivery& d) {
               return d.status() == v1::Delivery::SUCCEEDED;
             });
    });
    int done = 0;
    for (const v1::Delivery& d : last) {
      if (d.status() == v1::Delivery::SUCCEEDED) ++done;
      EXPECT_LE(d.attempt_count(), 1) << d.ShortDebugString();
    }
    EXPECT_TRUE(succeeded) << done << " of " << n
                           << " healthy deliveries SUCCEEDED within "
                           << kSettle.count() << " ms (" << last.size()
                           << " listed)";
    EXPECT_EQ(static_cast<int>(healthy_.Count()), n);
  }

  // Waits until every delivery of `handler_id` (there are `n`) has an
  // attempt recorded; returns them as GetDelivery shows them (with
  // attempts). Fails the test if they do not all get there.
  std::vector<v1::Delivery> WaitForAttempts(const std::string& handler_id,
                                            int n) {
    std::vector<v1::Delivery> last;
    const bool recorded = WaitForServer([&] {
      last = Deliveries(handler_id);
      return static_cast<int>(last.size()) == n &&
             std::all_of(last.begin(), last.end(), [](const v1::Delivery& d) {
               return d.attempt_count() >= 1;
             });
    });
    const int attempted = static_cast<int>(std::count_if(
        last.begin(), last.end(),
        [](const v1::Delivery& d) { return d.attempt_count() >= 1; }));
    EXPECT_TRUE(recorded) << "after " << kSettle.count() << " ms, " << attempted
                          << " of " << n
                          << " deliveries have an attempt recorded ("
                          << last.size() << " listed)";
    std::vector<v1::Delivery> full;
    for (const v1::Delivery& d : last) {
      if (d.attempt_count() < 1) continue;
      v1::GetDeliveryRequest req;
      req.set_id(d.id());
      v1::Delivery delivery;
      const grpc::Status s =
          deliveries_->GetDelivery(Context().get(), req, &delivery);
      EXPECT_TRUE(s.ok()) << "GetDelivery " << d.id() << ": " << Describe(s);
      if (s.ok()) full.push_back(std::move(delivery));
    }
    return full;
  }

  // Checks one delivery to `receiver` against what its behaviour deserves.
  void ExpectOutcome(const v1::Delivery& delivery,
                     const HostileReceiver& receiver) {
    const Expected& expected = ExpectedFor(receiver.behaviour());
    SCOPED_TRACE(delivery.ShortDebugString().substr(0, 2000));
    ASSERT_EQ(delivery.attempts_size(), 1);
    const v1::Attempt& attempt = delivery.attempts(0);
    EXPECT_EQ(attempt.error_class(), expected.error_class)
        << "error_message: " << attempt.error_message();
    EXPECT_TRUE(expected.status_codes.count(attempt.status_code()) == 1)
        << "status_code " << attempt.status_code() << ", expected one of "
        << absl::StrJoin(expected.status_codes, ", ");
    if (expected.succeeds) {
      EXPECT_EQ(delivery.status(), v1::Delivery::SUCCEEDED);
    } else {
      // Retried in an hour (±20 % jitter): still PENDING, or FAILED.
      const auto soonest =
          TimeUtil::GetCurrentTime() + TimeUtil::MinutesToDuration(30);
      EXPECT_TRUE(delivery.status() == v1::Delivery::FAILED ||
                  (delivery.status() == v1::Delivery::PENDING &&
                   delivery.next_attempt_time() > soonest))
          << "status " << v1::Delivery::Status_Name(delivery.status())
          << ", next attempt "
          << TimeUtil::ToString(delivery.next_attempt_time());
    }

    switch (receiver.behaviour()) {
      case HostileBehaviour::kInvalidUtf8:
        EXPECT_EQ(HeaderValue(attempt, "X-Name"), absl::StrCat("caf", kFffd));
        EXPECT_THAT(attempt.response_body(), HasSubstr(kFffd));
        EXPECT_THAT(attempt.response_body(), HasSubstr(" ok "));
        break;
      case HostileBehaviour::kHugeBody:
        EXPECT_EQ(attempt.response_body().size(), 65536u);
        break;
      case HostileBehaviour::kEndlessChunked:
        EXPECT_EQ(attempt.response_body().size(), 65536u);
        EXPECT_LT(attempt.duration_us(), 1500 * 1000);
        break;
      case HostileBehaviour::kManyHeaders:
        EXPECT_THAT(absl::AsciiStrToLower(attempt.error_message()),
                    HasSubstr("header"));
        break;
      default:
        break;
    }
  }

  // ExpectOutcome for every delivery, reporting the failures of the first
  // delivery that has any and, for the others, only how many share each
  // outcome.
  void ExpectOutcomes(const std::vector<v1::Delivery>& deliveries,
                      const HostileReceiver& receiver) {
    std::map<std::string, int> outcomes;
    bool reported = false;
    for (const v1::Delivery& delivery : deliveries) {
      ++outcomes[Summary(delivery)];
      if (reported) continue;
      const bool failed_before = HasFailure();
      ExpectOutcome(delivery, receiver);
      reported = HasFailure() && !failed_before;
    }
    if (reported) {
      std::string text;
      for (const auto& [summary, count] : outcomes) {
        absl::StrAppend(&text, "\n  ", count, " x ", summary);
      }
      ADD_FAILURE() << "the " << deliveries.size()
                    << " deliveries' outcomes (failures above are the first "
                       "failing delivery's):"
                    << text;
    }
  }

  void ExpectPeakRssBounded() {
    ASSERT_GT(server_->pid(), 0);
    const int64_t peak_kb = PeakRssKb(server_->pid());
    ASSERT_GT(peak_kb, 0) << "cannot read VmHWM of " << server_->pid();
    EXPECT_LT(peak_kb, kMaxPeakRssKb) << "rio-server's peak RSS";
    std::printf("rio-server peak RSS (VmHWM): %lld kB\n",
                static_cast<long long>(peak_kb));
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
  std::string sender_auth_;
  Receiver healthy_;
  std::string healthy_id_;
  int handler_count_ = 1;
  int emitted_ = 0;
};

class OneHostileReceiverTest
    : public HostileReceiverTest,
      public ::testing::WithParamInterface<HostileBehaviour> {};

TEST_P(OneHostileReceiverTest, RecordsItsOutcomeAndSparesTheHealthyHandler) {
  HostileReceiver hostile(GetParam());
  START_RECEIVER(hostile);
  const std::string hostile_id =
      CreateHandler(hostile.Url(), kHostileTimeoutMs);
  ASSERT_FALSE(hostile_id.empty());
  handler_count_ = 2;

  ASSERT_NO_FATAL_FAILURE(EmitEvents(kEvents));
  ExpectHealthyDelivered(kEvents);

  const std::vector<v1::Delivery> attempted =
      WaitForAttempts(hostile_id, kEvents);
  ExpectOutcomes(attempted, hostile);
  if (GetParam() == HostileBehaviour::kRedirectLoop) {
    // One request per attempt: the redirect was not followed.
    EXPECT_EQ(hostile.RequestCount(), static_cast<int>(attempted.size()));
  }

  // Recording goes on after the hostile outcomes.
  ASSERT_NO_FATAL_FAILURE(EmitEvents(kMoreEvents));
  ExpectHealthyDelivered(kEvents + kMoreEvents);

  ExpectPeakRssBounded();
}

INSTANTIATE_TEST_SUITE_P(EachBehaviour, OneHostileReceiverTest,
                         ::testing::ValuesIn(testkit::kAllHostileBehaviours),
                         BehaviourTestName);

// Every hostile receiver on the same event as the healthy one, at once.
TEST_F(HostileReceiverTest, AllAtOnceSpareTheHealthyHandler) {
  constexpr int kManyEvents = 50;
  std::vector<std::unique_ptr<HostileReceiver>> hostiles;
  std::vector<std::string> hostile_ids;
  for (HostileBehaviour behaviour : testkit::kAllHostileBehaviours) {
    hostiles.push_back(std::make_unique<HostileReceiver>(behaviour));
    START_RECEIVER(*hostiles.back());
    hostile_ids.push_back(
        CreateHandler(hostiles.back()->Url(), kHostileTimeoutMs));
    ASSERT_FALSE(hostile_ids.back().empty());
  }
  handler_count_ = 1 + static_cast<int>(hostiles.size());

  ASSERT_NO_FATAL_FAILURE(EmitEvents(kManyEvents));
  ExpectHealthyDelivered(kManyEvents);

  // Peak memory counts once every hostile call has run its course.
  std::vector<int> attempted(hostiles.size(), 0);
  const bool recorded = WaitForServer(
      [&] {
        for (size_t i = 0; i < hostiles.size(); ++i) {
          const std::vector<v1::Delivery> listed = Deliveries(hostile_ids[i]);
          attempted[i] = static_cast<int>(std::count_if(
              listed.begin(), listed.end(),
              [](const v1::Delivery& d) { return d.attempt_count() >= 1; }));
        }
        return std::all_of(attempted.begin(), attempted.end(),
                           [](int n) { return n == kManyEvents; });
      },
      2 * kSettle);
  std::string counts;
  for (size_t i = 0; i < hostiles.size(); ++i) {
    absl::StrAppend(&counts, " ",
                    testkit::HostileBehaviourName(hostiles[i]->behaviour()),
                    "=", attempted[i]);
  }
  EXPECT_TRUE(recorded) << "deliveries with an attempt recorded, of "
                        << kManyEvents << " each:" << counts;
  ExpectPeakRssBounded();
}

}  // namespace
}  // namespace rio
