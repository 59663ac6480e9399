// Re-triggering and handler health through the real rio-server binary, a
// real PostgreSQL and real receivers: Redeliver (recorded as manual),
// RecoverFailed (dry run, pacing, a restart in the middle), the health
// policy (auto-disable, CANCELLED while disabled, recovery once enabled),
// and the live tail.
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

namespace rio {
namespace {

using google::protobuf::util::TimeUtil;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using testkit::PgCluster;
using testkit::ReceivedRequest;
using testkit::Receiver;
using testkit::ReceiverReply;
using testkit::ServerProcess;
using testkit::Sql;
using testkit::WaitFor;

constexpr char kToken[] = "recovery-admin-token-0123456789abcdef";
constexpr char kProject[] = "shop";
constexpr char kEvent[] = "order-paid";
constexpr milliseconds kSettle{20000};

std::unique_ptr<grpc::ClientContext> Admin() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(10));
  return ctx;
}

// A receiver whose answer can be switched while it runs.
class SwitchableReceiver {
 public:
  SwitchableReceiver()
      : receiver_([this](const ReceivedRequest&, int) {
          ReceiverReply reply;
          reply.status = status_.load();
          reply.body = reply.status == 200 ? "thanks" : "down for maintenance";
          return reply;
        }) {}
  absl::Status Start() { return receiver_.Start(); }
  void Answer(int status) { status_ = status; }
  Receiver& receiver() { return receiver_; }

 private:
  std::atomic<int> status_{200};
  Receiver receiver_;
};

class RecoveryTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra_args) {
    auto url = PgCluster::Shared().CreateDatabase("recovery");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    args_ = std::move(extra_args);
    ASSERT_NO_FATAL_FAILURE(Restart());
    v1::CreateProjectRequest project;
    project.set_slug(kProject);
    v1::Project created;
    grpc::Status s = projects_->CreateProject(Admin().get(), project, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::CreateSenderRequest sender;
    sender.set_project(kProject);
    sender.set_name("billing");
    v1::CreateSenderResponse token;
    s = projects_->CreateSender(Admin().get(), sender, &token);
    ASSERT_TRUE(s.ok()) << s.error_message();
    sender_auth_ = absl::StrCat(
        "Basic ", util::Base64Encode(absl::StrCat("billing:", token.token())));
  }

  // (Re)starts rio-server on the same database.
  void Restart() {
    ServerProcess::Options options;
    options.database_url = url_;
    options.admin_token = kToken;
    options.extra_args = args_;
    server_ = std::make_unique<ServerProcess>(options);
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    projects_ = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
    deliveries_ = v1::DeliveryService::NewStub(server_->Channel());
  }

  v1::Handler CreateHandler(const std::string& url,
                            const std::string& event = kEvent) {
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(event);
    req.set_url(url);
    v1::Handler handler;
    grpc::Status s = handlers_->CreateHandler(Admin().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  v1::Handler SetEnabled(const std::string& id, bool enabled) {
    v1::UpdateHandlerRequest req;
    req.set_id(id);
    req.set_enabled(enabled);
    v1::Handler handler;
    grpc::Status s = handlers_->UpdateHandler(Admin().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  v1::Handler GetHandler(const std::string& id) {
    v1::GetHandlerRequest req;
    req.set_id(id);
    v1::Handler handler;
    grpc::Status s = handlers_->GetHandler(Admin().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  // Emits `n` events of `event` in batches; returns the message ids.
  std::vector<std::string> Emit(int n, const std::string& event = kEvent) {
    std::vector<std::string> ids;
    while (static_cast<int>(ids.size()) < n) {
      v1::EmitBatchRequest batch;
      for (int i = 0; i < 100 && static_cast<int>(ids.size()) + i < n; ++i) {
        v1::EmitRequest* e = batch.add_events();
        e->set_project(kProject);
        e->set_event(event);
        e->set_payload_json(absl::StrCat(R"({"order":)", ids.size() + i, "}"));
      }
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", sender_auth_);
      v1::EmitBatchResponse response;
      grpc::Status s = emitter_->EmitBatch(&ctx, batch, &response);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      for (const auto& r : response.results()) ids.push_back(r.message_id());
    }
    return ids;
  }

  // "STATUS:count,..." of every delivery, by status name.
  std::string StatusCounts() {
    return Sql(url_,
               "SELECT coalesce(string_agg(status || ':' || n, ',' ORDER BY "
               "status), '') FROM (SELECT status, count(*) AS n FROM "
               "deliveries GROUP BY status) s");
  }

  ::testing::AssertionResult StatusCountsReach(const std::string& want,
                                               milliseconds timeout = kSettle) {
    std::string got;
    if (WaitFor(
            [&] {
              got = StatusCounts();
              return got == want;
            },
            timeout)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "deliveries are \"" << got << "\", not \"" << want << "\"";
  }

  std::string url_;
  std::vector<std::string> args_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
  std::string sender_auth_;
};

TEST_F(RecoveryTest, RedeliverMakesAManualAttemptThatSucceeds) {
  SwitchableReceiver receiver;
  START_RECEIVER(receiver);
  receiver.Answer(500);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule="}));
  v1::Handler handler = CreateHandler(receiver.receiver().Url());
  std::vector<std::string> ids = Emit(1);
  ASSERT_EQ(ids.size(), 1u);
  ASSERT_TRUE(StatusCountsReach("FAILED:1"));
  std::string delivery_id = Sql(url_, "SELECT id FROM deliveries");

  receiver.Answer(200);
  v1::RedeliverRequest req;
  req.set_delivery_id(delivery_id);
  v1::Delivery delivery;
  grpc::Status s = deliveries_->Redeliver(Admin().get(), req, &delivery);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(delivery.id(), delivery_id);
  EXPECT_EQ(delivery.status(), v1::Delivery::PENDING);
  EXPECT_EQ(delivery.attempt_count(), 1);

  ASSERT_TRUE(StatusCountsReach("SUCCEEDED:1"));
  EXPECT_EQ(Sql(url_,
                "SELECT string_agg(number || '|' || status_code || '|' || "
                "manual, ';' ORDER BY number) FROM attempts"),
            "1|500|false;2|200|true");
  ASSERT_EQ(receiver.receiver().Count(), 2u);
  // The same message and delivery, attempt 2.
  ReceivedRequest again = receiver.receiver().Requests()[1];
  EXPECT_EQ(again.Header("webhook-id"), ids[0]);
  EXPECT_EQ(again.Header("x-rio-delivery"), delivery_id);
  EXPECT_EQ(again.Header("x-rio-attempt"), "2");

  // A succeeded delivery may be re-triggered too.
  s = deliveries_->Redeliver(Admin().get(), req, &delivery);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(receiver.receiver().WaitForCount(3));
  ASSERT_TRUE(StatusCountsReach("SUCCEEDED:1"));
  EXPECT_EQ(Sql(url_, "SELECT count(*) FROM attempts WHERE manual"), "2");
}

TEST_F(RecoveryTest,
       RedeliverRejectsBadIdsUnknownDeliveriesAndDisabledHandlers) {
  Receiver receiver;
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule="}));
  v1::Handler handler = CreateHandler(receiver.Url());
  Emit(1);
  ASSERT_TRUE(StatusCountsReach("SUCCEEDED:1"));
  std::string delivery_id = Sql(url_, "SELECT id FROM deliveries");

  v1::RedeliverRequest req;
  v1::Delivery delivery;
  grpc::Status s = deliveries_->Redeliver(Admin().get(), req, &delivery);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "delivery_id is required");

  req.set_delivery_id("not-a-uuid");
  s = deliveries_->Redeliver(Admin().get(), req, &delivery);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "delivery_id \"not-a-uuid\" is not a delivery id (a UUID)");

  req.set_delivery_id("00000000-0000-0000-0000-000000000000");
  s = deliveries_->Redeliver(Admin().get(), req, &delivery);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(),
            "delivery \"00000000-0000-0000-0000-000000000000\" not found");

  SetEnabled(handler.id(), false);
  req.set_delivery_id(delivery_id);
  s = deliveries_->Redeliver(Admin().get(), req, &delivery);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("handler \"", handler.id(),
                         "\" is disabled (disabled by an administrator); "
                         "enable it with UpdateHandler before re-triggering "
                         "its deliveries"));

  grpc::ClientContext anonymous;
  s = deliveries_->Redeliver(&anonymous, req, &delivery);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Nothing was re-sent.
  EXPECT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(Sql(url_, "SELECT count(*) FROM attempts"), "1");
}

// 500 deliveries fail while the receiver is down; a dry run counts them, the
// real run re-sends all of them at the configured pace, and a SIGKILL of the
// server in the middle does not lose the job.
TEST_F(RecoveryTest,
       RecoverFailedResendsEveryFailedDeliveryAtItsPaceAcrossARestart) {
  SwitchableReceiver receiver;
  START_RECEIVER(receiver);
  receiver.Answer(503);
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--retry_schedule=", "--lease_timeout=1s"}));
  v1::Handler handler = CreateHandler(receiver.receiver().Url());
  absl::Time before = absl::Now() - absl::Seconds(1);
  std::vector<std::string> ids = Emit(500);
  ASSERT_EQ(ids.size(), 500u);
  ASSERT_TRUE(StatusCountsReach("FAILED:500"));
  ASSERT_EQ(receiver.receiver().Count(), 500u);

  v1::RecoverFailedRequest req;
  req.set_project(kProject);
  *req.mutable_since() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(before));
  req.set_dry_run(true);
  v1::Recovery dry;
  grpc::Status s = deliveries_->RecoverFailed(Admin().get(), req, &dry);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(dry.matched(), 500);
  EXPECT_EQ(dry.id(), "");
  EXPECT_EQ(StatusCounts(), "FAILED:500");  // a dry run changes nothing

  receiver.Answer(200);
  req.set_dry_run(false);
  req.set_rate_per_second(100);
  v1::Recovery job;
  s = deliveries_->RecoverFailed(Admin().get(), req, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(job.matched(), 500);
  EXPECT_EQ(job.state(), v1::Recovery::RUNNING);
  EXPECT_EQ(job.rate_per_second(), 100);
  ASSERT_FALSE(job.id().empty());

  // Kill the server while the job is part-way through.
  ASSERT_TRUE(
      WaitFor([&] { return receiver.receiver().Count() >= 600; }, kSettle));
  server_->Kill();
  size_t at_kill = receiver.receiver().Count();
  EXPECT_LT(at_kill, 1000u) << "the job was not paced";
  ASSERT_NO_FATAL_FAILURE(Restart());

  v1::GetRecoveryRequest get;
  get.set_id(job.id());
  v1::Recovery progress;
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::Status st =
            deliveries_->GetRecovery(Admin().get(), get, &progress);
        return st.ok() && progress.state() == v1::Recovery::DONE &&
               progress.succeeded() == 500;
      },
      kSettle))
      << progress.DebugString();
  EXPECT_EQ(progress.requeued(), 500);
  EXPECT_EQ(progress.failed(), 0);
  EXPECT_EQ(progress.pending(), 0);
  EXPECT_TRUE(progress.has_finish_time());
  EXPECT_EQ(StatusCounts(), "SUCCEEDED:500");

  // Every message arrived again (at least once), and the re-sends were
  // paced: 500 at 100/s cannot take less than ~4 s.
  std::vector<ReceivedRequest> requests = receiver.receiver().Requests();
  std::set<std::string> resent;
  auto first = requests[500].arrival, last = requests[500].arrival;
  for (size_t i = 500; i < requests.size(); ++i) {
    resent.insert(requests[i].Header("webhook-id"));
    first = std::min(first, requests[i].arrival);
    last = std::max(last, requests[i].arrival);
  }
  EXPECT_EQ(resent, std::set<std::string>(ids.begin(), ids.end()));
  EXPECT_GE(last - first, std::chrono::milliseconds(3500));
  EXPECT_EQ(Sql(url_,
                "SELECT count(*) FROM attempts WHERE manual AND status_code "
                "= 200"),
            "500");

  v1::ListRecoveriesRequest list;
  list.set_project(kProject);
  v1::ListRecoveriesResponse listed;
  s = deliveries_->ListRecoveries(Admin().get(), list, &listed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(listed.recoveries_size(), 1);
  EXPECT_EQ(listed.recoveries(0).id(), job.id());

  v1::CancelRecoveryRequest cancel;
  cancel.set_id(job.id());
  v1::Recovery cancelled;
  s = deliveries_->CancelRecovery(Admin().get(), cancel, &cancelled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("recovery \"", job.id(),
                         "\" is already DONE: every delivery it matched was "
                         "re-queued"));
}

TEST_F(RecoveryTest, RecoverFailedValidatesItsRequest) {
  Receiver receiver;
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(StartServer({}));
  v1::Handler handler = CreateHandler(receiver.Url());
  struct Case {
    std::function<void(v1::RecoverFailedRequest&)> edit;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.clear_project(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "project is required"},
      {[](auto& r) { r.set_project("nope"); }, grpc::StatusCode::NOT_FOUND,
       "project \"nope\" not found"},
      {[](auto& r) { r.set_handler_id("h1"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "handler_id \"h1\" is not a handler id (a UUID as returned by "
       "CreateHandler)"},
      {[](auto& r) {
         r.set_handler_id("00000000-0000-0000-0000-000000000000");
       },
       grpc::StatusCode::NOT_FOUND,
       "handler \"00000000-0000-0000-0000-000000000000\" not found in "
       "project \"shop\""},
      {[](auto& r) {
         *r.mutable_since() = TimeUtil::MicrosecondsToTimestamp(
             absl::ToUnixMicros(absl::Now() + absl::Hours(1)));
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       "since must be earlier than until (and than now)"},
      {[](auto& r) { r.set_rate_per_second(20000); },
       grpc::StatusCode::INVALID_ARGUMENT,
       "rate_per_second must be between 1 and 10000 (got 20000); 0 means "
       "100"},
  };
  for (const Case& c : cases) {
    v1::RecoverFailedRequest req;
    req.set_project(kProject);
    c.edit(req);
    v1::Recovery recovery;
    grpc::Status s = deliveries_->RecoverFailed(Admin().get(), req, &recovery);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_EQ(s.error_message(), c.message);
  }
  EXPECT_EQ(Sql(url_, "SELECT count(*) FROM recoveries"), "0");

  v1::GetRecoveryRequest get;
  get.set_id("00000000-0000-0000-0000-000000000001");
  v1::Recovery recovery;
  grpc::Status s = deliveries_->GetRecovery(Admin().get(), get, &recovery);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(),
            "recovery \"00000000-0000-0000-0000-000000000001\" not found");
}

// The health policy: consecutive failures disable the handler with a reason;
// while disabled its deliveries are CANCELLED (nothing is sent); once
// enabled again, RecoverFailed re-sends them.
TEST_F(RecoveryTest,
       FailingHandlerIsDisabledThenItsCancelledDeliveriesRecover) {
  SwitchableReceiver receiver;
  START_RECEIVER(receiver);
  receiver.Answer(500);
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--retry_schedule=", "--disable_after_failures=3",
                   "--disable_after=0s"}));
  v1::Handler handler = CreateHandler(receiver.receiver().Url());
  absl::Time before = absl::Now() - absl::Seconds(1);

  // Two failures, a success, two failures: the success resets the count.
  Emit(2);
  ASSERT_TRUE(StatusCountsReach("FAILED:2"));
  receiver.Answer(200);
  Emit(1);
  ASSERT_TRUE(StatusCountsReach("FAILED:2,SUCCEEDED:1"));
  receiver.Answer(500);
  Emit(2);
  ASSERT_TRUE(StatusCountsReach("FAILED:4,SUCCEEDED:1"));
  EXPECT_TRUE(GetHandler(handler.id()).enabled());
  EXPECT_EQ(Sql(url_, "SELECT consecutive_failures FROM handler_health"), "2");

  // The third in a row disables it.
  Emit(1);
  ASSERT_TRUE(StatusCountsReach("FAILED:5,SUCCEEDED:1"));
  ASSERT_TRUE(WaitFor([&] { return !GetHandler(handler.id()).enabled(); }));
  EXPECT_THAT(GetHandler(handler.id()).disabled_reason(),
              HasSubstr("3 consecutive failed attempts since "));
  EXPECT_EQ(receiver.receiver().Count(), 6u);

  // While disabled: recorded as CANCELLED, not sent.
  std::vector<std::string> while_disabled = Emit(4);
  ASSERT_EQ(while_disabled.size(), 4u);
  EXPECT_EQ(StatusCounts(), "CANCELLED:4,FAILED:5,SUCCEEDED:1");
  EXPECT_EQ(receiver.receiver().Count(), 6u);

  // A disabled handler cannot be recovered.
  v1::RecoverFailedRequest req;
  req.set_project(kProject);
  req.set_handler_id(handler.id());
  *req.mutable_since() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(before));
  v1::Recovery job;
  grpc::Status s = deliveries_->RecoverFailed(Admin().get(), req, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Enabled again (which restarts its failure count): every failed and
  // cancelled delivery is re-sent.
  receiver.Answer(200);
  EXPECT_TRUE(SetEnabled(handler.id(), true).enabled());
  EXPECT_EQ(Sql(url_, "SELECT consecutive_failures FROM handler_health"), "0");
  s = deliveries_->RecoverFailed(Admin().get(), req, &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(job.matched(), 9);
  ASSERT_TRUE(StatusCountsReach("SUCCEEDED:10"));
  EXPECT_EQ(receiver.receiver().Count(), 15u);
  std::set<std::string> got;
  for (const ReceivedRequest& r : receiver.receiver().Requests()) {
    got.insert(r.Header("webhook-id"));
  }
  for (const std::string& id : while_disabled) EXPECT_TRUE(got.count(id)) << id;
}

TEST_F(RecoveryTest, TailStreamsAttemptsAsTheyFinish) {
  SwitchableReceiver receiver;
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule="}));
  v1::Handler paid = CreateHandler(receiver.receiver().Url());
  v1::Handler other = CreateHandler(receiver.receiver().Url(), "order-shipped");

  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  v1::TailDeliveriesRequest req;
  req.set_project(kProject);
  req.set_event(kEvent);
  auto stream = deliveries_->TailDeliveries(&ctx, req);
  // The server sends its initial metadata once the tail is subscribed.
  stream->WaitForInitialMetadata();
  receiver.Answer(500);
  std::vector<std::string> ids = Emit(1);
  Emit(1, "order-shipped");  // another event: filtered out
  v1::TailDeliveriesResponse first;
  ASSERT_TRUE(stream->Read(&first));
  EXPECT_EQ(first.delivery().message_id(), ids[0]);
  EXPECT_EQ(first.delivery().project(), kProject);
  EXPECT_EQ(first.delivery().event(), kEvent);
  EXPECT_EQ(first.delivery().handler_id(), paid.id());
  EXPECT_EQ(first.delivery().status(), v1::Delivery::FAILED);
  EXPECT_EQ(first.attempt().number(), 1);
  EXPECT_EQ(first.attempt().status_code(), 500);
  EXPECT_EQ(first.attempt().error_class(), "http_status");
  EXPECT_EQ(first.attempt().response_body(), "down for maintenance");

  receiver.Answer(200);
  std::vector<std::string> next = Emit(1);
  Emit(1, "order-shipped");
  v1::TailDeliveriesResponse update;
  ASSERT_TRUE(stream->Read(&update));
  EXPECT_EQ(update.delivery().message_id(), next[0]);
  EXPECT_EQ(update.delivery().status(), v1::Delivery::SUCCEEDED);
  EXPECT_EQ(update.attempt().status_code(), 200);
  EXPECT_EQ(update.delivery().handler_id(), paid.id());
  ctx.TryCancel();
  EXPECT_FALSE(stream->Read(&update));

  // Bad requests.
  grpc::ClientContext bad_ctx;
  bad_ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  v1::TailDeliveriesRequest bad;
  bad.set_project("nope");
  auto bad_stream = deliveries_->TailDeliveries(&bad_ctx, bad);
  v1::TailDeliveriesResponse none;
  EXPECT_FALSE(bad_stream->Read(&none));
  grpc::Status s = bad_stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "project \"nope\" not found");
  (void)other;

  // SIGTERM ends open tails at once, so they do not hold up the shutdown.
  grpc::ClientContext open_ctx;
  open_ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  auto open_stream = deliveries_->TailDeliveries(&open_ctx, req);
  open_stream->WaitForInitialMetadata();
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_FALSE(open_stream->Read(&none));
  s = open_stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "the server is shutting down");
}

// Open tails are bounded: one more than --max_tail_streams is refused with a
// message naming the flag; once a tail closes, a new one is taken.
TEST_F(RecoveryTest, TailStreamsAreCapped) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_tail_streams=1"}));
  v1::TailDeliveriesRequest req;
  req.set_project(kProject);
  auto open = [&](grpc::ClientContext& ctx) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    return deliveries_->TailDeliveries(&ctx, req);
  };
  auto first_ctx = std::make_unique<grpc::ClientContext>();
  auto first = open(*first_ctx);
  first->WaitForInitialMetadata();

  grpc::ClientContext second_ctx;
  auto second = open(second_ctx);
  v1::TailDeliveriesResponse none;
  EXPECT_FALSE(second->Read(&none));
  grpc::Status s = second->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "the limit of 1 open tail streams (--max_tail_streams) is reached");

  first_ctx->TryCancel();
  EXPECT_FALSE(first->Read(&none));
  // The server notices the cancelled stream when the next one subscribes.
  EXPECT_TRUE(testkit::WaitFor([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(500));
    auto third = open(ctx);
    third->WaitForInitialMetadata();
    v1::TailDeliveriesResponse ignored;
    third->Read(&ignored);  // ends at the deadline when subscribed
    return third->Finish().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  }));
}

}  // namespace
}  // namespace rio
