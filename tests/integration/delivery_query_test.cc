// The read side of rio.v1.DeliveryService through the real rio-server
// binary, a real PostgreSQL and real HTTP receivers: the latest failing
// calls, one delivery with every attempt as the receiver saw and answered
// it, every filter, pagination with ties in create_time, messages, handler
// stats, and every bad input with its code and message.
//
// Outcomes reach PostgreSQL in batches, so the tests wait (polling the
// database with a deadline) until deliveries have settled before asking.
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;
using testkit::PgCluster;
using testkit::ReceivedRequest;
using testkit::Receiver;
using testkit::ReceiverReply;
using testkit::ServerProcess;
using testkit::Sql;
using testkit::WaitFor;
using Code = grpc::StatusCode;
using ListStatus = v1::ListDeliveriesRequest;

constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
constexpr char kProject[] = "shop";
constexpr char kPaid[] = "order-paid";
constexpr char kShipped[] = "order-shipped";
constexpr char kUnknownId[] = "0b7f3a52-9c1e-4d2a-8f00-1234567890ab";
constexpr char kFffd[] = "\xEF\xBF\xBD";
constexpr milliseconds kSettle(30000);

std::unique_ptr<grpc::ClientContext> Context(
    const std::string& authorization = absl::StrCat("Bearer ", kAdminToken)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() + seconds(10));
  return ctx;
}

std::string CodeName(Code code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// "CODE: message", for exact comparisons that print well.
std::string Describe(const grpc::Status& s) {
  return absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Header list as (name, value) pairs.
std::vector<std::pair<std::string, std::string>> Pairs(
    const google::protobuf::RepeatedPtrField<v1::Header>& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const v1::Header& h : headers) out.emplace_back(h.name(), h.value());
  return out;
}

std::string HeaderValue(
    const google::protobuf::RepeatedPtrField<v1::Header>& headers,
    const std::string& name) {
  for (const v1::Header& h : headers) {
    if (h.name() == name) return h.value();
  }
  return "<absent>";
}

std::vector<std::string> Ids(
    const google::protobuf::RepeatedPtrField<v1::Delivery>& deliveries) {
  std::vector<std::string> ids;
  for (const v1::Delivery& d : deliveries) ids.push_back(d.id());
  return ids;
}

std::vector<std::string> MessageIds(
    const google::protobuf::RepeatedPtrField<v1::Delivery>& deliveries) {
  std::vector<std::string> ids;
  for (const v1::Delivery& d : deliveries) ids.push_back(d.message_id());
  return ids;
}

// One rio-server on a fresh database with project "shop" and its sender.
class DeliveryQueryTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra_args = {}) {
    auto url = PgCluster::Shared().CreateDatabase("dq");
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
    deliveries_ = v1::DeliveryService::NewStub(server_->Channel());
    sender_auth_ = CreateProjectWithSender(kProject);
    ASSERT_FALSE(HasFailure());
  }

  // Returns the sender's authorization value.
  std::string CreateProjectWithSender(const std::string& slug) {
    v1::CreateProjectRequest project;
    project.set_slug(slug);
    v1::Project created;
    grpc::Status s =
        projects_->CreateProject(Context().get(), project, &created);
    EXPECT_TRUE(s.ok()) << Describe(s);
    v1::CreateSenderRequest sender;
    sender.set_project(slug);
    sender.set_name("app");
    v1::CreateSenderResponse resp;
    s = projects_->CreateSender(Context().get(), sender, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return absl::StrCat("Basic ",
                        util::Base64Encode(absl::StrCat("app:", resp.token())));
  }

  v1::Handler CreateHandler(
      const std::string& url, const std::string& event,
      const std::string& project = kProject,
      const std::function<void(v1::CreateHandlerRequest&)>& customize =
          nullptr) {
    v1::CreateHandlerRequest req;
    req.set_project(project);
    req.set_event(event);
    req.set_url(url);
    if (customize) customize(req);
    v1::Handler handler;
    const grpc::Status s =
        handlers_->CreateHandler(Context().get(), req, &handler);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return handler;
  }

  // Emits and returns the message id.
  std::string Emit(const std::string& event,
                   const std::string& payload_json = "{}",
                   const std::string& idempotency_key = "") {
    v1::EmitRequest req;
    req.set_project(kProject);
    req.set_event(event);
    req.set_payload_json(payload_json);
    req.set_idempotency_key(idempotency_key);
    v1::EmitResponse resp;
    const grpc::Status s =
        emitter_->Emit(Context(sender_auth_).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return resp.message_id();
  }

  // Emits `count` events in one batch (one transaction: one create_time).
  std::vector<std::string> EmitBatch(const std::string& event, int count) {
    v1::EmitBatchRequest req;
    for (int i = 0; i < count; ++i) {
      v1::EmitRequest* item = req.add_events();
      item->set_project(kProject);
      item->set_event(event);
      item->set_payload_json(absl::StrCat("{\"n\":", i, "}"));
    }
    v1::EmitBatchResponse resp;
    const grpc::Status s =
        emitter_->EmitBatch(Context(sender_auth_).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    std::vector<std::string> ids;
    for (const auto& result : resp.results())
      ids.push_back(result.message_id());
    return ids;
  }

  // Waits until no delivery is PENDING.
  ::testing::AssertionResult AllSettle() {
    std::string pending;
    if (WaitFor(
            [&] {
              pending = Sql(url_,
                            "SELECT count(*) FROM deliveries WHERE status = "
                            "'PENDING'");
              return pending == "0";
            },
            kSettle)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << pending << " still PENDING";
  }

  grpc::Status List(const v1::ListDeliveriesRequest& req,
                    v1::ListDeliveriesResponse* resp,
                    const std::string& auth = absl::StrCat("Bearer ",
                                                           kAdminToken)) {
    return deliveries_->ListDeliveries(Context(auth).get(), req, resp);
  }

  // Every delivery that `req` lists, following page tokens; fails the test
  // on an error or a page larger than asked.
  std::vector<v1::Delivery> ListAll(v1::ListDeliveriesRequest req,
                                    int* pages = nullptr) {
    std::vector<v1::Delivery> all;
    int n = 0;
    for (;;) {
      v1::ListDeliveriesResponse resp;
      const grpc::Status s = List(req, &resp);
      EXPECT_TRUE(s.ok()) << Describe(s);
      if (!s.ok() || ++n > 100) break;
      EXPECT_LE(resp.deliveries_size(),
                req.page_size() == 0 ? 100 : req.page_size());
      all.insert(all.end(), resp.deliveries().begin(), resp.deliveries().end());
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    if (pages != nullptr) *pages = n;
    return all;
  }

  // The message ids `req` lists (one page of up to 1000).
  std::vector<std::string> ListedMessageIds(v1::ListDeliveriesRequest req) {
    req.set_page_size(1000);
    v1::ListDeliveriesResponse resp;
    const grpc::Status s = List(req, &resp);
    EXPECT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(resp.next_page_token(), "");
    return MessageIds(resp.deliveries());
  }

  v1::Delivery MustGetDelivery(const std::string& id) {
    v1::GetDeliveryRequest req;
    req.set_id(id);
    v1::Delivery delivery;
    const grpc::Status s =
        deliveries_->GetDelivery(Context().get(), req, &delivery);
    EXPECT_TRUE(s.ok()) << Describe(s);
    return delivery;
  }

  std::string DeliveryIdOf(const std::string& message_id,
                           const std::string& handler_id) {
    return Sql(url_, absl::StrCat(
                         "SELECT id FROM deliveries WHERE message_id = '",
                         message_id, "' AND handler_id = '", handler_id, "'"));
  }

  std::string url_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
  std::string sender_auth_;
};

// ---------------------------------------------------------------------------
// The latest failing calls

TEST_F(DeliveryQueryTest, FailingListsExactlyTheFailedCallsNewestFirst) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=50ms,50ms"}));
  Receiver failing([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 500;
    reply.body = "boom \xFF";  // not UTF-8
    reply.headers = {{"X-Reason", "overloaded"}};
    return reply;
  });
  Receiver working;
  START_RECEIVER(failing);
  START_RECEIVER(working);
  const v1::Handler billing =
      CreateHandler(failing.Url("/billing"), kPaid, kProject,
                    [](v1::CreateHandlerRequest& req) {
                      (*req.mutable_headers())["X-Team"] = "billing";
                    });
  const v1::Handler shipping =
      CreateHandler(working.Url("/shipping"), kShipped);
  std::vector<std::string> paid;
  for (int i = 0; i < 3; ++i) {
    paid.push_back(Emit(kPaid));
    Emit(kShipped);
  }
  ASSERT_TRUE(AllSettle());

  v1::ListDeliveriesRequest req;
  req.set_project(kProject);
  req.set_status(ListStatus::FAILING);
  v1::ListDeliveriesResponse resp;
  const grpc::Status s = List(req, &resp);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(resp.next_page_token(), "");
  EXPECT_THAT(MessageIds(resp.deliveries()),
              ElementsAre(paid[2], paid[1], paid[0]));
  for (const v1::Delivery& d : resp.deliveries()) {
    EXPECT_EQ(d.id(), DeliveryIdOf(d.message_id(), billing.id()));
    EXPECT_EQ(d.project(), kProject);
    EXPECT_EQ(d.event(), kPaid);
    EXPECT_EQ(d.handler_id(), billing.id());
    EXPECT_EQ(d.handler_url(), failing.Url("/billing"));
    EXPECT_EQ(d.status(), v1::Delivery::FAILED);
    EXPECT_EQ(d.attempt_count(), 3);
    EXPECT_EQ(d.last_status_code(), 500);
    EXPECT_EQ(d.last_error_class(), "http_status");
    EXPECT_FALSE(d.has_next_attempt_time());
    EXPECT_TRUE(d.has_create_time());
    EXPECT_GE(TimeUtil::TimestampToMicroseconds(d.update_time()),
              TimeUtil::TimestampToMicroseconds(d.create_time()));
    EXPECT_EQ(d.attempts_size(), 0);  // only GetDelivery has them
  }
  EXPECT_EQ(working.Count(), 3u);
  EXPECT_EQ(failing.Count(), 9u);
  // The working handler's deliveries are all there otherwise.
  req.set_status(ListStatus::ANY);
  EXPECT_THAT(ListedMessageIds(req), SizeIs(6));
}

TEST_F(DeliveryQueryTest, GetDeliveryShowsEveryAttemptAsSentAndAnswered) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=50ms,50ms"}));
  Receiver failing([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 500;
    reply.body = "boom \xFF";
    reply.headers = {{"X-Reason", "overloaded"}};
    return reply;
  });
  START_RECEIVER(failing);
  const v1::Handler billing =
      CreateHandler(failing.Url("/billing"), kPaid, kProject,
                    [](v1::CreateHandlerRequest& req) {
                      (*req.mutable_headers())["X-Team"] = "billing";
                    });
  const std::string message_id = Emit(kPaid, R"({"order":42})");
  ASSERT_TRUE(AllSettle());
  const std::string delivery_id = DeliveryIdOf(message_id, billing.id());

  const v1::Delivery d = MustGetDelivery(delivery_id);
  EXPECT_EQ(d.id(), delivery_id);
  EXPECT_EQ(d.message_id(), message_id);
  EXPECT_EQ(d.status(), v1::Delivery::FAILED);
  EXPECT_EQ(d.attempt_count(), 3);
  ASSERT_THAT(d.attempts(), SizeIs(3));
  const std::vector<ReceivedRequest> received = failing.Requests();
  ASSERT_THAT(received, SizeIs(3));
  int64_t previous_start = 0;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("attempt ", i + 1));
    const v1::Attempt& a = d.attempts(i);
    EXPECT_EQ(a.delivery_id(), delivery_id);
    EXPECT_EQ(a.number(), i + 1);
    EXPECT_FALSE(a.manual());
    const int64_t start = TimeUtil::TimestampToMicroseconds(a.start_time());
    EXPECT_GT(start, previous_start);
    previous_start = start;
    EXPECT_GT(a.duration_us(), 0);
    EXPECT_GT(a.total_us(), 0);
    EXPECT_GE(a.first_byte_us(), a.connect_us());
    EXPECT_GE(a.total_us(), a.first_byte_us());
    EXPECT_EQ(a.tls_us(), 0);  // plain http
    EXPECT_EQ(a.status_code(), 500);
    EXPECT_EQ(a.error_class(), "http_status");
    EXPECT_EQ(a.error_message(),
              i < 2 ? "HTTP 500" : "gave up after 3 attempts: HTTP 500");
    EXPECT_EQ(a.response_body(), absl::StrCat("boom ", kFffd));
    EXPECT_THAT(Pairs(a.response_headers()),
                ElementsAre(Pair("X-Reason", "overloaded"),
                            Pair("Content-Length", "6")));
    // The request as the receiver got it; the handler's own header value
    // is not shown.
    const ReceivedRequest& r = received[i];
    std::vector<std::string> names;
    for (const v1::Header& h : a.request_headers()) names.push_back(h.name());
    EXPECT_THAT(
        names, ElementsAre("Content-Type", "webhook-id", "webhook-timestamp",
                           "webhook-signature", "X-Rio-Event", "X-Rio-Delivery",
                           "X-Rio-Attempt", "X-Team"));
    EXPECT_EQ(HeaderValue(a.request_headers(), "webhook-id"), message_id);
    EXPECT_EQ(HeaderValue(a.request_headers(), "webhook-id"),
              r.Header("webhook-id"));
    EXPECT_EQ(HeaderValue(a.request_headers(), "webhook-timestamp"),
              r.Header("webhook-timestamp"));
    EXPECT_EQ(HeaderValue(a.request_headers(), "webhook-signature"),
              r.Header("webhook-signature"));
    EXPECT_EQ(HeaderValue(a.request_headers(), "X-Rio-Event"),
              absl::StrCat("uuid=", message_id, ",project=", kProject,
                           ",action=", kPaid));
    EXPECT_EQ(HeaderValue(a.request_headers(), "X-Rio-Delivery"), delivery_id);
    EXPECT_EQ(HeaderValue(a.request_headers(), "X-Rio-Attempt"),
              absl::StrCat(i + 1));
    EXPECT_EQ(HeaderValue(a.request_headers(), "X-Team"), "[redacted]");
    EXPECT_EQ(r.Header("x-team"), "billing");
  }
}

TEST_F(DeliveryQueryTest, GetDeliveryOfAPendingDeliveryHasItsNextAttempt) {
  // One failed attempt, the retry an hour away.
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=1h"}));
  Receiver failing([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 503;
    return reply;
  });
  START_RECEIVER(failing);
  const v1::Handler handler = CreateHandler(failing.Url(), kPaid);
  const std::string message_id = Emit(kPaid);
  const std::string delivery_id = DeliveryIdOf(message_id, handler.id());
  ASSERT_TRUE(WaitFor(
      [&] {
        return Sql(url_, absl::StrCat("SELECT status || attempts FROM "
                                      "deliveries WHERE id = '",
                                      delivery_id, "'")) == "PENDING1";
      },
      kSettle));
  const v1::Delivery d = MustGetDelivery(delivery_id);
  EXPECT_EQ(d.status(), v1::Delivery::PENDING);
  EXPECT_EQ(d.last_status_code(), 503);
  ASSERT_TRUE(d.has_next_attempt_time());
  // 1h +-20 % after the attempt.
  const int64_t wait_s =
      d.next_attempt_time().seconds() - d.attempts(0).start_time().seconds();
  EXPECT_GE(wait_s, 2870);
  EXPECT_LE(wait_s, 4321);
  EXPECT_THAT(d.attempts(), SizeIs(1));
}

// ---------------------------------------------------------------------------
// Filters

TEST_F(DeliveryQueryTest, EachFilterSelectsExactlyItsDeliveries) {
  // A retry an hour away keeps failed deliveries PENDING with one attempt;
  // a hanging receiver keeps one PENDING with none.
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=1h"}));
  Receiver ok;
  Receiver failing([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 500;
    return reply;
  });
  Receiver hanging([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.hang = true;
    return reply;
  });
  START_RECEIVER(ok);
  START_RECEIVER(failing);
  START_RECEIVER(hanging);
  const v1::Handler a = CreateHandler(ok.Url("/a"), kPaid);
  const v1::Handler b = CreateHandler(failing.Url("/b"), kPaid);
  const v1::Handler c = CreateHandler(ok.Url("/c"), kShipped);
  const v1::Handler h = CreateHandler(
      hanging.Url("/h"), "order-held", kProject,
      [](v1::CreateHandlerRequest& req) { req.set_timeout_ms(300000); });
  // A project of its own, whose deliveries never show in "shop".
  const std::string other_auth = CreateProjectWithSender("other");
  CreateHandler(ok.Url("/other"), kPaid, "other");

  const std::string m1 = Emit(kPaid);
  const std::string m2 = Emit(kShipped);
  const std::string m3 = Emit(kPaid);
  const std::string m4 = Emit("order-held");
  {
    v1::EmitRequest req;
    req.set_project("other");
    req.set_event(kPaid);
    req.set_payload_json("{}");
    v1::EmitResponse resp;
    const grpc::Status s =
        emitter_->Emit(Context(other_auth).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
  }
  ASSERT_TRUE(hanging.WaitForCount(1));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Sql(url_,
                   "SELECT string_agg(status || attempts, ',' ORDER BY "
                   "status, attempts) FROM deliveries") ==
               "PENDING0,PENDING1,PENDING1,SUCCEEDED1,SUCCEEDED1,SUCCEEDED1,"
               "SUCCEEDED1";
      },
      kSettle));
  // A cancelled one, as the outcome writer leaves it when the handler is
  // disabled before a retry.
  ASSERT_EQ(
      Sql(url_, absl::StrCat("UPDATE deliveries SET status = "
                             "'CANCELLED' WHERE id = '",
                             DeliveryIdOf(m1, b.id()), "' RETURNING 'done'")),
      "done");

  v1::ListDeliveriesRequest all;
  all.set_project(kProject);
  EXPECT_THAT(ListedMessageIds(all), ElementsAre(m4, m3, m3, m2, m1, m1));

  v1::ListDeliveriesRequest by_handler = all;
  by_handler.set_handler_id(a.id());
  EXPECT_THAT(ListedMessageIds(by_handler), ElementsAre(m3, m1));
  // Ids are accepted in capitals too.
  by_handler.set_handler_id(absl::AsciiStrToUpper(b.id()));
  EXPECT_THAT(ListedMessageIds(by_handler), ElementsAre(m3, m1));
  by_handler.set_handler_id(h.id());
  EXPECT_THAT(ListedMessageIds(by_handler), ElementsAre(m4));

  v1::ListDeliveriesRequest by_event = all;
  by_event.set_event(kShipped);
  EXPECT_THAT(ListedMessageIds(by_event), ElementsAre(m2));
  by_event.set_event(kPaid);
  EXPECT_THAT(ListedMessageIds(by_event), ElementsAre(m3, m3, m1, m1));
  by_event.set_event("order-refunded");  // nobody handles it
  EXPECT_THAT(ListedMessageIds(by_event), ElementsAre());
  by_event.set_event(kShipped);
  by_event.set_handler_id(a.id());  // a handles order-paid only
  EXPECT_THAT(ListedMessageIds(by_event), ElementsAre());

  auto with_status = [&](ListStatus::Status status) {
    v1::ListDeliveriesRequest req = all;
    req.set_status(status);
    std::vector<std::string> listed;
    for (const std::string& id : ListedMessageIds(req)) {
      listed.push_back(id);
    }
    return listed;
  };
  EXPECT_THAT(with_status(ListStatus::SUCCEEDED), ElementsAre(m3, m2, m1));
  EXPECT_THAT(with_status(ListStatus::PENDING), ElementsAre(m4, m3));
  EXPECT_THAT(with_status(ListStatus::FAILED), ElementsAre());
  EXPECT_THAT(with_status(ListStatus::CANCELLED), ElementsAre(m1));
  // Pending with a failed attempt, and cancelled after one; not the call
  // still in flight.
  EXPECT_THAT(with_status(ListStatus::FAILING), ElementsAre(m3, m1));
  {
    v1::ListDeliveriesRequest req = all;
    req.set_status(ListStatus::FAILING);
    v1::ListDeliveriesResponse resp;
    ASSERT_TRUE(List(req, &resp).ok());
    ASSERT_THAT(resp.deliveries(), SizeIs(2));
    EXPECT_EQ(resp.deliveries(0).status(), v1::Delivery::PENDING);
    EXPECT_TRUE(resp.deliveries(0).has_next_attempt_time());
    EXPECT_EQ(resp.deliveries(0).last_status_code(), 500);
    EXPECT_EQ(resp.deliveries(1).status(), v1::Delivery::CANCELLED);
    EXPECT_FALSE(resp.deliveries(1).has_next_attempt_time());
  }

  // since is inclusive, until exclusive, both on the delivery's
  // create_time.
  const v1::Delivery d2 = MustGetDelivery(DeliveryIdOf(m2, c.id()));
  const v1::Delivery d3 = MustGetDelivery(DeliveryIdOf(m3, a.id()));
  v1::ListDeliveriesRequest timed = all;
  *timed.mutable_since() = d2.create_time();
  EXPECT_THAT(ListedMessageIds(timed), ElementsAre(m4, m3, m3, m2));
  timed.clear_since();
  *timed.mutable_until() = d2.create_time();
  EXPECT_THAT(ListedMessageIds(timed), ElementsAre(m1, m1));
  *timed.mutable_since() = d2.create_time();
  *timed.mutable_until() = d3.create_time();
  EXPECT_THAT(ListedMessageIds(timed), ElementsAre(m2));
  // A nanosecond after a create time excludes it from since.
  timed.clear_until();
  timed.mutable_since()->set_nanos(timed.since().nanos() + 1);
  EXPECT_THAT(ListedMessageIds(timed), ElementsAre(m4, m3, m3));

  // Filters combine.
  v1::ListDeliveriesRequest combined = all;
  combined.set_event(kPaid);
  combined.set_status(ListStatus::SUCCEEDED);
  *combined.mutable_since() = d2.create_time();
  EXPECT_THAT(ListedMessageIds(combined), ElementsAre(m3));
}

// ---------------------------------------------------------------------------
// Pagination

TEST_F(DeliveryQueryTest, PagesReturnEveryDeliveryOnceInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver ok;
  START_RECEIVER(ok);
  CreateHandler(ok.Url("/one"), kPaid);
  CreateHandler(ok.Url("/two"), kPaid);
  // Batches share a create_time: order among them is by id.
  EmitBatch(kPaid, 4);
  Emit(kPaid);
  EmitBatch(kPaid, 3);
  Emit(kPaid);
  ASSERT_TRUE(AllSettle());
  const std::vector<std::string> expected = Lines(Sql(
      url_, "SELECT id FROM deliveries ORDER BY create_time DESC, id DESC"));
  ASSERT_THAT(expected, SizeIs(18));
  // Two batches and two single emits: four create times, so pages end
  // inside groups of equal create_time.
  EXPECT_EQ(Sql(url_, "SELECT count(DISTINCT create_time) FROM deliveries"),
            "4");

  for (int page_size : {1, 3, 7, 18, 1000}) {
    SCOPED_TRACE(absl::StrCat("page_size ", page_size));
    v1::ListDeliveriesRequest req;
    req.set_project(kProject);
    req.set_page_size(page_size);
    int pages = 0;
    const std::vector<v1::Delivery> listed = ListAll(req, &pages);
    std::vector<std::string> ids;
    for (const v1::Delivery& d : listed) ids.push_back(d.id());
    EXPECT_THAT(ids, ElementsAreArray(expected));
    EXPECT_EQ(pages, (18 + page_size - 1) / page_size);
  }
  // The default page holds them all.
  v1::ListDeliveriesRequest req;
  req.set_project(kProject);
  v1::ListDeliveriesResponse resp;
  ASSERT_TRUE(List(req, &resp).ok());
  EXPECT_THAT(Ids(resp.deliveries()), ElementsAreArray(expected));
  EXPECT_EQ(resp.next_page_token(), "");

  // A token belongs to its list: other filters refuse it.
  req.set_page_size(5);
  ASSERT_TRUE(List(req, &resp).ok());
  ASSERT_NE(resp.next_page_token(), "");
  v1::ListDeliveriesRequest other = req;
  other.set_page_token(resp.next_page_token());
  other.set_status(ListStatus::SUCCEEDED);
  v1::ListDeliveriesResponse refused;
  EXPECT_EQ(Describe(List(other, &refused)),
            "INVALID_ARGUMENT: page_token is not valid for this list");
  // ... but a different page size is fine.
  other = req;
  other.set_page_token(resp.next_page_token());
  other.set_page_size(100);
  v1::ListDeliveriesResponse rest;
  ASSERT_TRUE(List(other, &rest).ok());
  EXPECT_THAT(Ids(rest.deliveries()),
              ElementsAreArray(expected.begin() + 5, expected.end()));
}

// ---------------------------------------------------------------------------
// Messages

TEST_F(DeliveryQueryTest, ListsMessagesNewestFirstAndGetsOneWithDeliveries) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule="}));
  Receiver ok;
  Receiver failing([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 500;
    return reply;
  });
  START_RECEIVER(ok);
  START_RECEIVER(failing);
  const v1::Handler a = CreateHandler(ok.Url("/a"), kPaid);
  const v1::Handler b = CreateHandler(failing.Url("/b"), kPaid);
  const std::string m1 =
      Emit(kPaid, R"({"total": 1.50, "big": 12345678901234567890})", "order-1");
  const std::string m2 = Emit(kShipped, R"({"order":1})");
  EmitBatch(kPaid, 3);
  ASSERT_TRUE(AllSettle());
  std::vector<std::string> expected = Lines(
      Sql(url_, "SELECT id FROM messages ORDER BY create_time DESC, id DESC"));
  ASSERT_THAT(expected, SizeIs(5));
  EXPECT_EQ(expected[3], m2);
  EXPECT_EQ(expected[4], m1);

  v1::ListMessagesRequest req;
  req.set_project(kProject);
  v1::ListMessagesResponse resp;
  grpc::Status s = deliveries_->ListMessages(Context().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << Describe(s);
  std::vector<std::string> ids;
  for (const v1::Message& m : resp.messages()) ids.push_back(m.id());
  EXPECT_THAT(ids, ElementsAreArray(expected));
  EXPECT_EQ(resp.next_page_token(), "");
  const v1::Message& first = resp.messages(4);
  EXPECT_EQ(first.project(), kProject);
  EXPECT_EQ(first.event(), kPaid);
  EXPECT_EQ(first.payload(), R"({"total": 1.50, "big": 12345678901234567890})");
  EXPECT_EQ(first.idempotency_key(), "order-1");
  EXPECT_EQ(first.sender(), "app");
  EXPECT_EQ(first.deliveries_size(), 0);

  // Pages of two, then by event and time.
  req.set_page_size(2);
  ids.clear();
  int pages = 0;
  for (;;) {
    s = deliveries_->ListMessages(Context().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    ++pages;
    for (const v1::Message& m : resp.messages()) ids.push_back(m.id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_THAT(ids, ElementsAreArray(expected));
  EXPECT_EQ(pages, 3);
  req = v1::ListMessagesRequest();
  req.set_project(kProject);
  req.set_event(kShipped);
  ASSERT_TRUE(deliveries_->ListMessages(Context().get(), req, &resp).ok());
  ASSERT_THAT(resp.messages(), SizeIs(1));
  EXPECT_EQ(resp.messages(0).id(), m2);
  req.clear_event();
  *req.mutable_since() = resp.messages(0).create_time();
  ASSERT_TRUE(deliveries_->ListMessages(Context().get(), req, &resp).ok());
  EXPECT_THAT(resp.messages(), SizeIs(4));
  req.clear_since();
  *req.mutable_until() = resp.messages(3).create_time();
  ASSERT_TRUE(deliveries_->ListMessages(Context().get(), req, &resp).ok());
  ASSERT_THAT(resp.messages(), SizeIs(1));
  EXPECT_EQ(resp.messages(0).id(), m1);

  // One message with its deliveries, without their attempts.
  v1::GetMessageRequest get;
  get.set_id(m1);
  v1::Message message;
  s = deliveries_->GetMessage(Context().get(), get, &message);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(message.id(), m1);
  EXPECT_EQ(message.payload(),
            R"({"total": 1.50, "big": 12345678901234567890})");
  EXPECT_EQ(message.idempotency_key(), "order-1");
  ASSERT_THAT(message.deliveries(), SizeIs(2));
  std::set<std::pair<std::string, int>> states;
  for (const v1::Delivery& d : message.deliveries()) {
    EXPECT_EQ(d.message_id(), m1);
    EXPECT_EQ(d.event(), kPaid);
    EXPECT_EQ(d.attempts_size(), 0);
    EXPECT_EQ(d.id(), DeliveryIdOf(m1, d.handler_id()));
    states.emplace(d.handler_id(), d.status());
  }
  EXPECT_EQ(states, (std::set<std::pair<std::string, int>>{
                        {a.id(), v1::Delivery::SUCCEEDED},
                        {b.id(), v1::Delivery::FAILED}}));
  // A message nobody handles has no deliveries.
  get.set_id(m2);
  s = deliveries_->GetMessage(Context().get(), get, &message);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(message.payload(), R"({"order":1})");
  EXPECT_EQ(message.deliveries_size(), 0);
}

TEST_F(DeliveryQueryTest, ListMessagesCutsAPageOfLargePayloadsShort) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string big =
      absl::StrCat("{\"blob\":\"", std::string(600 * 1024, 'x'), "\"}");
  const std::string m1 = Emit(kPaid, big);
  const std::string m2 = Emit(kPaid, big);
  const std::string m3 = Emit(kPaid, big);
  v1::ListMessagesRequest req;
  req.set_project(kProject);
  std::vector<std::vector<std::string>> pages;
  for (;;) {
    v1::ListMessagesResponse resp;
    const grpc::Status s =
        deliveries_->ListMessages(Context().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    std::vector<std::string>& page = pages.emplace_back();
    for (const v1::Message& m : resp.messages()) {
      EXPECT_EQ(m.payload(), big);
      page.push_back(m.id());
    }
    if (resp.next_page_token().empty() || pages.size() > 5) break;
    req.set_page_token(resp.next_page_token());
  }
  // At most 1 MiB of payloads after the first message of a page.
  EXPECT_THAT(pages, ElementsAre(ElementsAre(m3, m2), ElementsAre(m1)));
}

// ---------------------------------------------------------------------------
// Handler stats

// Answers 500 to the payloads that ask for it ("fail"), 200 to the others.
ReceiverReply FailWhenAsked(const ReceivedRequest& request, int) {
  ReceiverReply reply;
  if (absl::StrContains(request.body, "fail")) reply.status = 500;
  return reply;
}

TEST_F(DeliveryQueryTest, HandlerStatsCountOutcomesAttemptsAndLatency) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=50ms"}));
  Receiver receiver(FailWhenAsked);
  START_RECEIVER(receiver);
  const v1::Handler handler = CreateHandler(receiver.Url(), kPaid);
  const v1::Handler idle = CreateHandler(receiver.Url("/idle"), kShipped);
  for (int i = 0; i < 4; ++i) Emit(kPaid, R"({"result":"ok"})");
  ASSERT_TRUE(AllSettle());  // the successes come before every failure
  for (int i = 0; i < 2; ++i) Emit(kPaid, R"({"result":"fail"})");
  ASSERT_TRUE(AllSettle());

  v1::GetHandlerStatsRequest req;
  req.set_handler_id(handler.id());
  v1::HandlerStats stats;
  grpc::Status s = deliveries_->GetHandlerStats(Context().get(), req, &stats);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(stats.handler_id(), handler.id());
  EXPECT_EQ(stats.window().seconds(), 3600);
  EXPECT_EQ(stats.window().nanos(), 0);
  EXPECT_EQ(stats.succeeded(), 4);
  EXPECT_EQ(stats.failed(), 2);
  EXPECT_EQ(stats.pending(), 0);
  EXPECT_EQ(stats.cancelled(), 0);
  EXPECT_DOUBLE_EQ(stats.success_ratio(), 4.0 / 6.0);
  EXPECT_EQ(stats.attempts(), 4 + 2 * 2);
  EXPECT_EQ(stats.failed_attempts(), 4);
  EXPECT_GT(stats.latency_p50_ms(), 0);
  EXPECT_GE(stats.latency_p90_ms(), stats.latency_p50_ms());
  EXPECT_GE(stats.latency_p99_ms(), stats.latency_p90_ms());
  // Each percentile lies in the histogram bucket of the attempt of its rank
  // (8 attempts: the 4th for p50, the 8th for p90 and p99).
  auto bucket_of = [&](int rank) {
    const std::string bounds = Sql(
        url_, absl::StrCat("SELECT coalesce(b[i], 0) || ' ' || coalesce(b[i "
                           "+ 1], 1e12) FROM (SELECT rio_latency_bounds_us() "
                           "AS b, width_bucket(duration_us, "
                           "rio_latency_bounds_us()) AS i FROM attempts "
                           "ORDER BY duration_us OFFSET ",
                           rank - 1, " LIMIT 1) t"));
    const std::vector<std::string> edges = absl::StrSplit(bounds, ' ');
    return std::make_pair(std::stod(edges[0]) / 1000,
                          std::stod(edges[1]) / 1000);
  };
  for (const auto& [percentile, rank] : {std::pair{stats.latency_p50_ms(), 4},
                                         {stats.latency_p90_ms(), 8},
                                         {stats.latency_p99_ms(), 8}}) {
    const auto [lower, upper] = bucket_of(rank);
    EXPECT_GE(percentile, lower) << rank;
    EXPECT_LE(percentile, upper) << rank;
  }
  // Two deliveries of two failed attempts each since the last success.
  EXPECT_EQ(stats.consecutive_failures(), 4);
  EXPECT_TRUE(stats.enabled());
  EXPECT_EQ(stats.disabled_reason(), "");

  // What the health policy counts, and a disabled handler.
  Sql(url_, absl::StrCat("UPDATE handler_health SET consecutive_failures = 7 "
                         "WHERE handler_id = '",
                         handler.id(), "'"));
  v1::UpdateHandlerRequest disable;
  disable.set_id(handler.id());
  disable.set_enabled(false);
  v1::Handler updated;
  ASSERT_TRUE(
      handlers_->UpdateHandler(Context().get(), disable, &updated).ok());
  req.mutable_window()->set_seconds(90 * 86400);
  s = deliveries_->GetHandlerStats(Context().get(), req, &stats);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(stats.window().seconds(), 90 * 86400);
  EXPECT_EQ(stats.succeeded(), 4);
  EXPECT_EQ(stats.consecutive_failures(), 7);
  EXPECT_FALSE(stats.enabled());
  EXPECT_EQ(stats.disabled_reason(), updated.disabled_reason());

  // Counting is by whole minutes: a window of a nanosecond counts from the
  // start of the current minute.
  req.mutable_window()->set_seconds(0);
  req.mutable_window()->set_nanos(1);
  s = deliveries_->GetHandlerStats(Context().get(), req, &stats);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(stats.since().seconds() % 60, 0);
  EXPECT_EQ(stats.since().nanos(), 0);
  // A window that starts after every delivery (its counters moved back an
  // hour): nothing counted.
  Sql(url_,
      "UPDATE delivery_counts SET start_time = start_time - interval '1 hour'");
  Sql(url_,
      "UPDATE attempt_counts SET start_time = start_time - interval '1 hour'");
  req.mutable_window()->set_seconds(600);
  req.mutable_window()->set_nanos(0);
  s = deliveries_->GetHandlerStats(Context().get(), req, &stats);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(stats.succeeded() + stats.failed() + stats.attempts(), 0);
  EXPECT_EQ(stats.success_ratio(), 0);
  EXPECT_EQ(stats.latency_p50_ms(), 0);

  // A handler with no deliveries at all.
  req.set_handler_id(idle.id());
  req.clear_window();
  s = deliveries_->GetHandlerStats(Context().get(), req, &stats);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(stats.succeeded() + stats.failed() + stats.pending() +
                stats.cancelled() + stats.attempts(),
            0);
  EXPECT_EQ(stats.success_ratio(), 0);
  EXPECT_TRUE(stats.enabled());
}

TEST_F(DeliveryQueryTest, HandlerStatsPerBucketAndTheirLimits) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule="}));
  Receiver receiver(FailWhenAsked);
  START_RECEIVER(receiver);
  const v1::Handler handler = CreateHandler(receiver.Url(), kPaid);
  for (int i = 0; i < 3; ++i) Emit(kPaid, R"({"result":"ok"})");
  Emit(kPaid, R"({"result":"fail"})");
  ASSERT_TRUE(AllSettle());

  v1::GetHandlerStatsRequest req;
  req.set_handler_id(handler.id());
  req.mutable_window()->set_seconds(3600);
  req.mutable_bucket()->set_seconds(300);
  v1::HandlerStats stats;
  grpc::Status s = deliveries_->GetHandlerStats(Context().get(), req, &stats);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(stats.since().seconds() % 300, 0);
  ASSERT_EQ(stats.buckets_size(), 13);
  int64_t succeeded = 0, failed = 0, attempts = 0;
  for (int i = 0; i < stats.buckets_size(); ++i) {
    const v1::HandlerStats::Bucket& b = stats.buckets(i);
    EXPECT_EQ(b.start_time().seconds(), stats.since().seconds() + 300 * i);
    succeeded += b.succeeded();
    failed += b.failed();
    attempts += b.attempts();
    EXPECT_EQ(b.pending() + b.cancelled(), 0);
  }
  EXPECT_EQ(succeeded, 3);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(attempts, 4);
  EXPECT_EQ(stats.succeeded(), 3);
  EXPECT_EQ(stats.failed(), 1);

  // Buckets the counters cannot make, and too many of them.
  auto refused = [&](int64_t window, int64_t bucket) {
    req.mutable_window()->set_seconds(window);
    req.mutable_bucket()->set_seconds(bucket);
    const grpc::Status status =
        deliveries_->GetHandlerStats(Context().get(), req, &stats);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    return status.error_message();
  };
  EXPECT_EQ(refused(3600, 90),
            "bucket must be a whole number of minutes for a window up to 6 "
            "hours (got 1m30s)");
  EXPECT_EQ(refused(86400, 60),
            "bucket must be a whole number of hours for a window over 6 "
            "hours (got 1m)");
  EXPECT_EQ(refused(90 * 86400, 3600),
            "window / bucket must be at most 1440 buckets (2160h / 1h makes "
            "2160)");
  EXPECT_EQ(refused(3600, 0),
            "bucket must be more than 0 and at most 90 days (got 0)");
}

// What an operator does with grpcurl: JSON through reflection, enums and
// durations by name.
TEST_F(DeliveryQueryTest, GrpcurlStyleCallsWork) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule="}));
  Receiver failing([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 502;
    return reply;
  });
  START_RECEIVER(failing);
  const v1::Handler handler = CreateHandler(failing.Url(), kPaid);
  const std::string message_id = Emit(kPaid);
  ASSERT_TRUE(AllSettle());
  const std::string delivery_id = DeliveryIdOf(message_id, handler.id());

  testkit::ReflectionClient cli(server_->Channel());
  const std::map<std::string, std::string> auth = {
      {"authorization", absl::StrCat("Bearer ", kAdminToken)}};
  auto call = [&](const std::string& method, const std::string& json) {
    auto reply =
        cli.Call(absl::StrCat("rio.v1.DeliveryService/", method), json, auth);
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (!reply.ok()) return std::string();
    EXPECT_EQ(reply->code, Code::OK) << method << ": " << reply->message;
    return reply->json;
  };
  const std::string failing_json =
      call("ListDeliveries", R"({"project":"shop","status":"FAILING"})");
  EXPECT_THAT(failing_json, HasSubstr(absl::StrCat(R"("id":")", delivery_id)));
  EXPECT_THAT(failing_json, HasSubstr(R"("status":"FAILED")"));
  EXPECT_THAT(failing_json, HasSubstr(R"("last_status_code":502)"));
  EXPECT_EQ(call("ListDeliveries", R"({"project":"shop","status":"PENDING"})"),
            "{}");
  EXPECT_THAT(
      call("GetDelivery", absl::StrCat(R"({"id":")", delivery_id, R"("})")),
      HasSubstr(R"("error_message":"gave up after 1 attempt: HTTP 502")"));
  EXPECT_THAT(
      call("GetHandlerStats", absl::StrCat(R"({"handler_id":")", handler.id(),
                                           R"(","window":"90s"})")),
      HasSubstr(R"("window":"90s","failed":"1")"));
}

// ---------------------------------------------------------------------------
// Bad input

TEST_F(DeliveryQueryTest, EveryBadInputGetsItsCodeAndMessage) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver ok;
  START_RECEIVER(ok);
  const v1::Handler mine = CreateHandler(ok.Url(), kPaid);
  CreateProjectWithSender("other");
  const v1::Handler theirs = CreateHandler(ok.Url(), kPaid, "other");

  auto list = [&](const std::function<void(v1::ListDeliveriesRequest&)>& f) {
    v1::ListDeliveriesRequest req;
    req.set_project(kProject);
    f(req);
    v1::ListDeliveriesResponse resp;
    return Describe(List(req, &resp));
  };
  auto ts = [](int64_t seconds, int32_t nanos) {
    google::protobuf::Timestamp t;
    t.set_seconds(seconds);
    t.set_nanos(nanos);
    return t;
  };
  EXPECT_EQ(list([](auto& r) { r.clear_project(); }),
            "INVALID_ARGUMENT: project is required");
  EXPECT_EQ(list([](auto& r) { r.set_project("no shop"); }),
            "INVALID_ARGUMENT: project \"no shop\" may contain only letters, "
            "digits, '.', '_' and '-'");
  EXPECT_EQ(list([](auto& r) { r.set_project("ghost"); }),
            "NOT_FOUND: project \"ghost\" not found");
  EXPECT_EQ(list([](auto& r) { r.set_handler_id("42"); }),
            "INVALID_ARGUMENT: handler_id \"42\" is not a handler id (a UUID "
            "as returned by CreateHandler)");
  EXPECT_EQ(list([&](auto& r) { r.set_handler_id(theirs.id()); }),
            absl::StrCat("NOT_FOUND: handler \"", theirs.id(),
                         "\" not found in project \"shop\""));
  EXPECT_EQ(list([&](auto& r) { r.set_handler_id(kUnknownId); }),
            absl::StrCat("NOT_FOUND: handler \"", kUnknownId,
                         "\" not found in project \"shop\""));
  EXPECT_EQ(list([](auto& r) { r.set_event("order paid"); }),
            "INVALID_ARGUMENT: event \"order paid\" may contain only "
            "letters, digits, '.', '_' and '-'");
  EXPECT_EQ(
      list([](auto& r) { r.set_status(static_cast<ListStatus::Status>(9)); }),
      "INVALID_ARGUMENT: status must be ANY, PENDING, SUCCEEDED, "
      "FAILED, CANCELLED or FAILING (got 9)");
  EXPECT_EQ(list([&](auto& r) {
              *r.mutable_since() = ts(1714564800, 0);
              *r.mutable_until() = ts(1714564800, 0);
            }),
            "INVALID_ARGUMENT: since (2024-05-01T12:00:00Z) must be before "
            "until (2024-05-01T12:00:00Z)");
  EXPECT_EQ(list([&](auto& r) {
              *r.mutable_since() = ts(1714564800, 1);
              *r.mutable_until() = ts(1714564800, 0);
            }),
            "INVALID_ARGUMENT: since (2024-05-01T12:00:00.000000001Z) must "
            "be before until (2024-05-01T12:00:00Z)");
  EXPECT_EQ(list([&](auto& r) { *r.mutable_since() = ts(0, -1); }),
            "INVALID_ARGUMENT: since is not a valid timestamp (years 1 to "
            "9999, nanos 0 to 999999999)");
  EXPECT_EQ(list([&](auto& r) { *r.mutable_until() = ts(253402300800, 0); }),
            "INVALID_ARGUMENT: until is not a valid timestamp (years 1 to "
            "9999, nanos 0 to 999999999)");
  EXPECT_EQ(list([](auto& r) { r.set_page_size(-1); }),
            "INVALID_ARGUMENT: page_size must be between 1 and 1000, or 0 "
            "for 100 (got -1)");
  EXPECT_EQ(list([](auto& r) { r.set_page_size(1001); }),
            "INVALID_ARGUMENT: page_size must be between 1 and 1000, or 0 "
            "for 100 (got 1001)");
  EXPECT_EQ(list([](auto& r) { r.set_page_token("garbage!"); }),
            "INVALID_ARGUMENT: page_token is not valid for this list");
  EXPECT_EQ(list([&](auto& r) { r.set_handler_id(mine.id()); }), "OK: ");

  auto get_delivery = [&](const std::string& id) {
    v1::GetDeliveryRequest req;
    req.set_id(id);
    v1::Delivery resp;
    return Describe(deliveries_->GetDelivery(Context().get(), req, &resp));
  };
  EXPECT_EQ(get_delivery(""), "INVALID_ARGUMENT: id is required");
  EXPECT_EQ(get_delivery("d-1"),
            "INVALID_ARGUMENT: id \"d-1\" is not a delivery id (a UUID as "
            "listed by ListDeliveries)");
  EXPECT_EQ(get_delivery(kUnknownId),
            absl::StrCat("NOT_FOUND: delivery \"", kUnknownId, "\" not found"));

  auto list_messages =
      [&](const std::function<void(v1::ListMessagesRequest&)>& f) {
        v1::ListMessagesRequest req;
        req.set_project(kProject);
        f(req);
        v1::ListMessagesResponse resp;
        return Describe(deliveries_->ListMessages(Context().get(), req, &resp));
      };
  EXPECT_EQ(list_messages([](auto& r) { r.clear_project(); }),
            "INVALID_ARGUMENT: project is required");
  EXPECT_EQ(list_messages([](auto& r) { r.set_project("ghost"); }),
            "NOT_FOUND: project \"ghost\" not found");
  EXPECT_EQ(list_messages([](auto& r) { r.set_event("a/b"); }),
            "INVALID_ARGUMENT: event \"a/b\" may contain only letters, "
            "digits, '.', '_' and '-'");
  EXPECT_EQ(list_messages([&](auto& r) {
              *r.mutable_since() = ts(1714564801, 0);
              *r.mutable_until() = ts(1714564800, 0);
            }),
            "INVALID_ARGUMENT: since (2024-05-01T12:00:01Z) must be before "
            "until (2024-05-01T12:00:00Z)");
  EXPECT_EQ(list_messages([](auto& r) { r.set_page_size(5000); }),
            "INVALID_ARGUMENT: page_size must be between 1 and 1000, or 0 "
            "for 100 (got 5000)");
  {
    // A ListDeliveries token is not a ListMessages token.
    v1::ListDeliveriesRequest req;
    req.set_project(kProject);
    req.set_page_size(1);
    Emit(kPaid);
    Emit(kPaid);
    v1::ListDeliveriesResponse resp;
    ASSERT_TRUE(List(req, &resp).ok());
    ASSERT_NE(resp.next_page_token(), "");
    EXPECT_EQ(list_messages(
                  [&](auto& r) { r.set_page_token(resp.next_page_token()); }),
              "INVALID_ARGUMENT: page_token is not valid for this list");
  }

  auto get_message = [&](const std::string& id) {
    v1::GetMessageRequest req;
    req.set_id(id);
    v1::Message resp;
    return Describe(deliveries_->GetMessage(Context().get(), req, &resp));
  };
  EXPECT_EQ(get_message(""), "INVALID_ARGUMENT: id is required");
  EXPECT_EQ(get_message("m"),
            "INVALID_ARGUMENT: id \"m\" is not a message id (a UUID as "
            "returned by Emit)");
  EXPECT_EQ(get_message(kUnknownId),
            absl::StrCat("NOT_FOUND: message \"", kUnknownId, "\" not found"));

  auto stats = [&](const std::string& id,
                   std::optional<std::pair<int64_t, int32_t>> window) {
    v1::GetHandlerStatsRequest req;
    req.set_handler_id(id);
    if (window) {
      req.mutable_window()->set_seconds(window->first);
      req.mutable_window()->set_nanos(window->second);
    }
    v1::HandlerStats resp;
    return Describe(deliveries_->GetHandlerStats(Context().get(), req, &resp));
  };
  EXPECT_EQ(stats("", std::nullopt),
            "INVALID_ARGUMENT: handler_id is required");
  EXPECT_EQ(stats("h1", std::nullopt),
            "INVALID_ARGUMENT: handler_id \"h1\" is not a handler id (a "
            "UUID as returned by CreateHandler)");
  EXPECT_EQ(stats(kUnknownId, std::nullopt),
            absl::StrCat("NOT_FOUND: handler \"", kUnknownId, "\" not found"));
  EXPECT_EQ(stats(mine.id(), std::make_pair(0, 0)),
            "INVALID_ARGUMENT: window must be more than 0 and at most 90 "
            "days (got 0)");
  EXPECT_EQ(stats(mine.id(), std::make_pair(-60, 0)),
            "INVALID_ARGUMENT: window must be more than 0 and at most 90 "
            "days (got -1m)");
  EXPECT_EQ(stats(mine.id(), std::make_pair(90 * 86400 + 1, 0)),
            "INVALID_ARGUMENT: window must be more than 0 and at most 90 "
            "days (got 2160h1s)");
  EXPECT_EQ(stats(mine.id(), std::make_pair(1, -5)),
            "INVALID_ARGUMENT: window must be more than 0 and at most 90 "
            "days (got an invalid duration)");
  EXPECT_EQ(stats(mine.id(), std::make_pair(90 * 86400, 0)), "OK: ");
}

TEST_F(DeliveryQueryTest, EveryCallNeedsTheAdminToken) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const std::string& auth :
       {std::string(""), std::string("Bearer nope"), sender_auth_}) {
    SCOPED_TRACE(auth);
    const std::string want =
        auth.empty()
            ? "UNAUTHENTICATED: missing admin token: send 'authorization: "
              "Bearer <admin token or access token>'"
        : absl::StartsWith(auth, "Basic")
            ? "UNAUTHENTICATED: authorization must be 'Bearer <admin token or "
              "access token>'"
            : "UNAUTHENTICATED: invalid admin token";
    {
      v1::ListDeliveriesRequest req;
      req.set_project(kProject);
      v1::ListDeliveriesResponse resp;
      EXPECT_EQ(Describe(deliveries_->ListDeliveries(Context(auth).get(), req,
                                                     &resp)),
                want);
    }
    {
      v1::GetDeliveryRequest req;
      req.set_id(kUnknownId);
      v1::Delivery resp;
      EXPECT_EQ(
          Describe(deliveries_->GetDelivery(Context(auth).get(), req, &resp)),
          want);
    }
    {
      v1::ListMessagesRequest req;
      req.set_project(kProject);
      v1::ListMessagesResponse resp;
      EXPECT_EQ(
          Describe(deliveries_->ListMessages(Context(auth).get(), req, &resp)),
          want);
    }
    {
      v1::GetMessageRequest req;
      req.set_id(kUnknownId);
      v1::Message resp;
      EXPECT_EQ(
          Describe(deliveries_->GetMessage(Context(auth).get(), req, &resp)),
          want);
    }
    {
      v1::GetHandlerStatsRequest req;
      req.set_handler_id(kUnknownId);
      v1::HandlerStats resp;
      EXPECT_EQ(Describe(deliveries_->GetHandlerStats(Context(auth).get(), req,
                                                      &resp)),
                want);
    }
  }
}

}  // namespace
}  // namespace rio
