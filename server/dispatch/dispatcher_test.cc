#include "server/dispatch/dispatcher.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/dispatch/request.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio::dispatch {
namespace {

using testkit::ReceivedRequest;
using testkit::Receiver;
using testkit::ReceiverReply;

// Keeps every outcome; WaitFor polls with a deadline.
class RecordingSink : public OutcomeSink {
 public:
  void Record(AttemptOutcome outcome) override {
    absl::MutexLock lock(&mu_);
    outcomes_.push_back(std::move(outcome));
  }

  bool WaitFor(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return outcomes_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  std::vector<AttemptOutcome> Outcomes() {
    absl::MutexLock lock(&mu_);
    return outcomes_;
  }

 private:
  absl::Mutex mu_;
  std::vector<AttemptOutcome> outcomes_ ABSL_GUARDED_BY(mu_);
};

// A sink whose backlog of unwritten outcomes the test sets.
class BackloggedSink : public RecordingSink {
 public:
  size_t Backlog() const override { return backlog.load(); }
  std::atomic<size_t> backlog{0};
};

std::shared_ptr<const store::CachedHandler> Handler(
    const std::string& id, const std::string& url,
    std::vector<std::pair<std::string, std::string>> headers = {},
    int timeout_ms = 5000) {
  auto h = std::make_shared<store::CachedHandler>();
  h->id = id;
  h->url = url;
  h->method = "POST";
  h->content_type = "JSON";
  h->headers = std::move(headers);
  h->timeout_ms = timeout_ms;
  h->secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  return h;
}

std::vector<DeliveryJob> Jobs(
    const std::shared_ptr<const store::CachedHandler>& handler, int n,
    const std::string& prefix) {
  std::vector<DeliveryJob> jobs;
  for (int i = 0; i < n; ++i) {
    DeliveryJob job;
    job.delivery_id = absl::StrCat(prefix, "-d", i);
    job.message_id = absl::StrCat(prefix, "-m", i);
    job.project = "p";
    job.event = "e";
    job.payload =
        std::make_shared<const std::string>(absl::StrCat(R"({"i":)", i, "}"));
    job.handler = handler;
    jobs.push_back(std::move(job));
  }
  return jobs;
}

RetryPolicy Policy() { return RetryPolicy({absl::Seconds(5)}); }

// Submits jobs that must all fit.
void SubmitAll(Dispatcher& dispatcher, std::vector<DeliveryJob> jobs) {
  EXPECT_TRUE(dispatcher.Submit(std::move(jobs)).empty());
}

// Delivery ids of `jobs`, in order.
std::vector<std::string> Ids(const std::vector<DeliveryJob>& jobs) {
  std::vector<std::string> ids;
  for (const DeliveryJob& job : jobs) ids.push_back(job.delivery_id);
  return ids;
}

// A receiver's handler that reads the request and never answers.
ReceiverReply NeverAnswer(const ReceivedRequest&, int) {
  ReceiverReply reply;
  reply.hang = true;
  return reply;
}

// Many jobs over handles and connections that are reused: every request
// carries its own job's headers and body, and nothing of an earlier one.
TEST(Dispatcher, DeliversEveryJobWithItsOwnRequest) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_in_flight = 8;
  options.max_per_handler = 4;
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();
  auto with_header = Handler("a", receiver.Url("/a"), {{"X-Custom", "v1"}});
  auto without = Handler("b", receiver.Url("/b"));
  constexpr int kEach = 100;
  SubmitAll(dispatcher, Jobs(with_header, kEach, "a"));
  SubmitAll(dispatcher, Jobs(without, kEach, "b"));

  ASSERT_TRUE(sink.WaitFor(2 * kEach));
  for (const AttemptOutcome& o : sink.Outcomes()) {
    EXPECT_EQ(o.status_code, 200) << o.delivery_id << " " << o.error_message;
    EXPECT_EQ(o.decision.verdict, Verdict::kSucceeded);
    EXPECT_EQ(o.response_body, "ok");
    EXPECT_TRUE(absl::StrContains(
        o.request_headers,
        absl::StrCat("X-Rio-Delivery: ", o.delivery_id, "\r\n")));
    EXPECT_EQ(absl::StrContains(o.request_headers, "X-Custom: [redacted]"),
              o.handler_id == "a");
  }
  std::vector<ReceivedRequest> requests = receiver.Requests();
  ASSERT_EQ(requests.size(), 2u * kEach);
  for (const ReceivedRequest& r : requests) {
    const std::string delivery = r.Header("x-rio-delivery");
    const bool to_a = r.path == "/a";
    EXPECT_EQ(absl::StartsWith(delivery, "a-"), to_a) << delivery;
    EXPECT_EQ(r.Header("x-custom"), to_a ? "v1" : "");
    const std::string i = delivery.substr(delivery.find("-d") + 2);
    EXPECT_EQ(r.body, absl::StrCat(R"({"i":)", i, "}"));
    EXPECT_EQ(r.Header("webhook-id"), absl::StrCat(to_a ? "a" : "b", "-m", i));
    EXPECT_TRUE(absl::StartsWith(r.Header("webhook-signature"), "v1,"));
    EXPECT_EQ(r.Header("expect"), "");
  }
  EXPECT_TRUE(dispatcher.Stop(absl::Seconds(1)).empty());
}

// A GET carries the payload in its query string and an empty body: the
// signature (one entry per valid secret) covers the query string exactly as
// the receiver got it. A POST's covers its body.
TEST(Dispatcher, SignsAGetsQueryStringAndAPostsBody) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher dispatcher(Dispatcher::Options(), Policy(), &sink);
  dispatcher.Start();
  constexpr char kPrevious[] = "whsec_c2VjcmV0";
  auto get = std::make_shared<store::CachedHandler>(
      *Handler("get", receiver.Url("/g?static=%41&e=\xc3\xa9")));
  get->method = "GET";
  get->content_type = "FORM";
  get->previous_secret = kPrevious;
  get->previous_secret_expire_time = absl::Now() + absl::Hours(1);
  auto post = std::make_shared<store::CachedHandler>(
      *Handler("post", receiver.Url("/p?static=1")));
  post->content_type = "FORM";
  SubmitAll(dispatcher, Jobs(get, 1, "get"));
  SubmitAll(dispatcher, Jobs(post, 1, "post"));

  ASSERT_TRUE(sink.WaitFor(2));
  std::vector<ReceivedRequest> requests = receiver.Requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const ReceivedRequest& r : requests) {
    const bool is_get = r.method == "GET";
    const std::string& content = is_get ? r.query : r.body;
    if (is_get) {
      EXPECT_EQ(r.path, "/g");
      EXPECT_EQ(r.query, "static=%41&e=\xc3\xa9&i=0");
      EXPECT_EQ(r.body, "");
    } else {
      EXPECT_EQ(r.query, "static=1");
      EXPECT_EQ(r.body, "i=0");
    }
    int64_t timestamp = 0;
    ASSERT_TRUE(absl::SimpleAtoi(r.Header("webhook-timestamp"), &timestamp));
    std::string expected = *SignStandardWebhook(
        Handler("", "")->secret, r.Header("webhook-id"), timestamp, content);
    if (is_get) {
      absl::StrAppend(&expected, " ",
                      *SignStandardWebhook(kPrevious, r.Header("webhook-id"),
                                           timestamp, content));
    }
    EXPECT_EQ(r.Header("webhook-signature"), expected) << r.method;
  }
  EXPECT_TRUE(dispatcher.Stop(absl::Seconds(1)).empty());
}

// Curl's timer, not socket activity, ends a call to a receiver that never
// answers.
TEST(Dispatcher, AReceiverThatNeverAnswersTimesOut) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher dispatcher(Dispatcher::Options(), Policy(), &sink);
  dispatcher.Start();
  SubmitAll(dispatcher,
            Jobs(Handler("h", receiver.Url(), {}, /*timeout_ms=*/300), 1, "t"));

  ASSERT_TRUE(sink.WaitFor(1));
  const AttemptOutcome o = sink.Outcomes()[0];
  EXPECT_EQ(o.status_code, 0);
  EXPECT_EQ(o.decision.error_class, ErrorClass::kTimeout) << o.error_message;
  EXPECT_EQ(o.decision.verdict, Verdict::kRetry);
  EXPECT_GE(o.duration_us, 300 * 1000);
  EXPECT_LT(o.duration_us, 5 * 1000 * 1000);
  // The outcome is recorded before the call stops being held (so the
  // scheduler never misses it in both places); the release follows at once.
  EXPECT_TRUE(testkit::WaitFor(
      [&] { return !dispatcher.Holds("t-d0") && dispatcher.InFlight() == 0; }));
  EXPECT_TRUE(dispatcher.Stop(absl::Seconds(1)).empty());
}

// The per-handler cap holds jobs back; Stop gives the grace period to what
// is in flight, then returns it with the queued jobs.
TEST(Dispatcher, StopReturnsQueuedAndAbortedJobsAfterTheGrace) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_in_flight = 10;
  options.max_per_handler = 2;
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();
  SubmitAll(dispatcher, Jobs(Handler("h", receiver.Url()), 5, "s"));

  ASSERT_TRUE(receiver.WaitForCount(2));
  EXPECT_EQ(dispatcher.InFlight(), 2);
  EXPECT_EQ(dispatcher.Room(), 10 - 5);
  EXPECT_TRUE(dispatcher.Holds("s-d4"));
  const absl::Time start = absl::Now();
  std::vector<DeliveryJob> unfinished =
      dispatcher.Stop(absl::Milliseconds(300));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_EQ(unfinished.size(), 5u);
  EXPECT_EQ(receiver.Count(), 2u);
  EXPECT_TRUE(sink.Outcomes().empty());
  EXPECT_FALSE(dispatcher.Holds("s-d4"));
  EXPECT_EQ(dispatcher.Room(), 0);
}

// Handlers on one receiver share its cap: no more calls in flight to one
// scheme, host and port than max_per_host, whatever each handler may take.
TEST(Dispatcher, HandlersOnOneHostShareItsCap) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_in_flight = 10;
  options.max_per_handler = 2;
  options.max_per_host = 3;
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();
  for (const char* name : {"x", "y", "z"}) {
    SubmitAll(
        dispatcher,
        Jobs(Handler(name, receiver.Url(absl::StrCat("/", name))), 4, name));
  }

  ASSERT_TRUE(receiver.WaitForCount(3));
  EXPECT_EQ(dispatcher.InFlight(), 3);
  EXPECT_EQ(dispatcher.Room(), 0);
  EXPECT_EQ(dispatcher.Stop(absl::ZeroDuration()).size(), 12u);
  EXPECT_EQ(receiver.Count(), 3u);
}

// What the dispatcher holds is bounded: jobs beyond max_queued, beyond a
// handler's max_queued_per_handler or beyond max_queued_bytes of payload are
// handed back, and a full handler is named so that none of its deliveries
// are claimed.
TEST(Dispatcher, SubmitHandsBackWhatDoesNotFit) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_in_flight = 4;
  options.max_per_handler = 2;
  options.max_queued = 6;
  options.max_queued_per_handler = 4;
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();

  std::vector<DeliveryJob> refused =
      dispatcher.Submit(Jobs(Handler("a", receiver.Url("/a")), 5, "a"));
  EXPECT_EQ(Ids(refused), std::vector<std::string>{"a-d4"});
  EXPECT_EQ(dispatcher.FullHandlers(), std::vector<std::string>{"a"});
  // Submitting what is held already neither queues nor refuses it.
  EXPECT_TRUE(dispatcher.Submit(Jobs(Handler("a", receiver.Url("/a")), 1, "a"))
                  .empty());
  refused = dispatcher.Submit(Jobs(Handler("b", receiver.Url("/b")), 3, "b"));
  EXPECT_EQ(Ids(refused), std::vector<std::string>{"b-d2"});
  EXPECT_FALSE(dispatcher.Holds("b-d2"));
  EXPECT_TRUE(dispatcher.Holds("b-d1"));
  ASSERT_TRUE(receiver.WaitForCount(4));
  EXPECT_EQ(dispatcher.Room(), 0);
  EXPECT_EQ(dispatcher.Stop(absl::ZeroDuration()).size(), 6u);
}

// The forecast ingest leases by: what Submit would take, counting the jobs
// before in the same list, and changing nothing.
TEST(Dispatcher, WouldTakeForecastsSubmitWithoutTakingAnything) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_in_flight = 4;
  options.max_per_handler = 2;
  options.max_queued = 6;
  options.max_queued_per_handler = 3;
  options.max_queued_bytes_per_handler = 14;  // two payloads of Jobs()
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();
  SubmitAll(dispatcher, Jobs(Handler("a", receiver.Url("/a")), 1, "held"));

  // "a" has room for one more (its bytes), "b" for two (its bytes), "c" for
  // what is left of max_queued (6 - 1 - 1 - 2 = 2).
  std::vector<DeliveryJob> jobs;
  for (const char* h : {"a", "b", "c"}) {
    for (DeliveryJob& job : Jobs(Handler(h, receiver.Url("/h")), 3, h)) {
      jobs.push_back(std::move(job));
    }
  }
  const std::vector<bool> forecast = dispatcher.WouldTake(jobs);
  EXPECT_EQ(forecast, (std::vector<bool>{true, false, false, true, true, false,
                                         true, true, false}));
  EXPECT_EQ(dispatcher.WouldTake(jobs), forecast);  // nothing was taken
  EXPECT_FALSE(dispatcher.Holds("a-d0"));

  std::vector<std::string> expected_refused;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!forecast[i]) expected_refused.push_back(jobs[i].delivery_id);
  }
  EXPECT_EQ(Ids(dispatcher.Submit(std::move(jobs))), expected_refused);
  EXPECT_EQ(dispatcher.Stop(absl::ZeroDuration()).size(), 6u);
}

// Outcomes waiting to be written hold responses: at the bound, nothing more
// is taken or claimed, however many jobs would fit.
TEST(Dispatcher, AnOutcomeBacklogAtItsBoundStopsTakingJobs) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  BackloggedSink sink;
  Dispatcher::Options options;
  options.max_in_flight = 100;
  options.max_queued = 100;
  options.max_outcome_backlog = 5;
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();

  sink.backlog = 3;
  EXPECT_EQ(dispatcher.Room(), 2);  // the outcomes it may still buffer
  sink.backlog = 5;
  EXPECT_EQ(dispatcher.Room(), 0);
  std::vector<DeliveryJob> jobs = Jobs(Handler("h", receiver.Url()), 2, "h");
  EXPECT_EQ(dispatcher.WouldTake(jobs), (std::vector<bool>{false, false}));
  EXPECT_EQ(Ids(dispatcher.Submit(std::move(jobs))),
            (std::vector<std::string>{"h-d0", "h-d1"}));
  sink.backlog = 0;
  SubmitAll(dispatcher, Jobs(Handler("h", receiver.Url()), 2, "h"));
  EXPECT_EQ(dispatcher.Room(), 5);  // at most the outcomes it may buffer
  EXPECT_EQ(dispatcher.Stop(absl::ZeroDuration()).size(), 2u);
}

TEST(Dispatcher, PayloadBytesAreBounded) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_queued_bytes = 23;  // each payload of Jobs() is 7 bytes
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();
  std::vector<DeliveryJob> refused =
      dispatcher.Submit(Jobs(Handler("h", receiver.Url()), 4, "s"));
  EXPECT_EQ(Ids(refused), (std::vector<std::string>{"s-d3"}));
  // The 2 bytes left hold no payload of the size seen: nothing to claim.
  EXPECT_EQ(dispatcher.Room(), 0);
  // A smaller payload still fits.
  std::vector<DeliveryJob> small = Jobs(Handler("h", receiver.Url()), 1, "sm");
  small[0].payload = std::make_shared<const std::string>("{}");
  EXPECT_TRUE(dispatcher.Submit(std::move(small)).empty());
  EXPECT_EQ(dispatcher.Room(), 0);
  EXPECT_EQ(dispatcher.Stop(absl::ZeroDuration()).size(), 4u);
}

// One handler cannot take all the bytes: past its own bound it is full.
TEST(Dispatcher, PayloadBytesPerHandlerAreBounded) {
  Receiver receiver(NeverAnswer);
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher::Options options;
  options.max_queued_bytes = 1000;
  options.max_queued_bytes_per_handler = 14;  // two payloads of Jobs()
  Dispatcher dispatcher(options, Policy(), &sink);
  dispatcher.Start();
  EXPECT_EQ(Ids(dispatcher.Submit(Jobs(Handler("a", receiver.Url()), 3, "a"))),
            std::vector<std::string>{"a-d2"});
  EXPECT_EQ(dispatcher.FullHandlers(), std::vector<std::string>{"a"});
  EXPECT_TRUE(dispatcher.Submit(Jobs(Handler("b", receiver.Url("/b")), 2, "b"))
                  .empty());
  EXPECT_EQ(dispatcher.Stop(absl::ZeroDuration()).size(), 4u);
}

TEST(Dispatcher, OriginIsSchemeHostAndPort) {
  EXPECT_EQ(OriginOf("http://127.0.0.1:8080/hooks/a?x=1"),
            "http://127.0.0.1:8080");
  EXPECT_EQ(OriginOf("https://example.com?x=1"), "https://example.com");
  EXPECT_EQ(OriginOf("https://example.com#f"), "https://example.com");
  EXPECT_EQ(OriginOf("https://example.com"), "https://example.com");
  EXPECT_EQ(OriginOf("not a url"), "not a url");
}

// A transfer that ends within the grace is recorded, and Stop returns as
// soon as nothing is in flight.
TEST(Dispatcher, StopLetsATransferInFlightFinish) {
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.delay = std::chrono::milliseconds(200);
    return reply;
  });
  ASSERT_TRUE(receiver.Start().ok());
  RecordingSink sink;
  Dispatcher dispatcher(Dispatcher::Options(), Policy(), &sink);
  dispatcher.Start();
  SubmitAll(dispatcher, Jobs(Handler("h", receiver.Url()), 1, "g"));
  ASSERT_TRUE(receiver.WaitForCount(1));

  const absl::Time start = absl::Now();
  EXPECT_TRUE(dispatcher.Stop(absl::Seconds(10)).empty());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_EQ(sink.Outcomes().size(), 1u);
  EXPECT_EQ(sink.Outcomes()[0].status_code, 200);
}

}  // namespace
}  // namespace rio::dispatch
