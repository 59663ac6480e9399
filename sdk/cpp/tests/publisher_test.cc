// rio::Publisher against the real rio-server: events from many threads go
// out in batches and each gets its own answer; Flush, the bounded buffer,
// Shutdown, a lost batch reply (no duplicates), one bad event in a batch,
// and a server that is down.
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/client.h"
#include "sdk/cpp/tests/status_matchers.h"
#include "sdk/cpp/tests/test_support.h"

namespace rio {
namespace {

using ::rio::sdk_test::FlakyProxy;
using ::rio::sdk_test::FreePort;
using ::rio::sdk_test::kEvent;
using ::rio::sdk_test::RioServer;
using ::rio::testing::IsOk;
using ::rio::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Lt;
using ::testing::SizeIs;
using Code = absl::StatusCode;
using Future = std::future<absl::StatusOr<EmitResult>>;
using Mode = FlakyProxy::Mode;

RetryPolicy FastRetry() {
  RetryPolicy retry;
  retry.max_attempts = 3;
  retry.initial_backoff = absl::Milliseconds(50);
  return retry;
}

Client MakeClient(const std::string& dsn,
                  const RetryPolicy& retry = RetryPolicy()) {
  ClientOptions options;
  options.dsn = dsn;
  options.retry = retry;
  return Client(options);
}

// Options that never send a batch before it is full or flushed.
PublisherOptions FlushOnly() {
  PublisherOptions options;
  options.max_batch_delay = absl::Hours(1);
  return options;
}

bool IsReady(const Future& future) {
  return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

TEST(PublisherWithoutServer, InvalidOptionsOrClientFailEveryPublish) {
  PublisherOptions options;
  options.max_batch_events = 0;
  Publisher bad_options(Client("rio://a:t@h/p"), options);
  EXPECT_THAT(bad_options.status(),
              StatusIs(Code::kInvalidArgument,
                       Eq("PublisherOptions.max_batch_events must be 1 to "
                          "1000")));
  EXPECT_THAT(bad_options.Publish(kEvent).get(),
              StatusIs(Code::kInvalidArgument, HasSubstr("max_batch_events")));

  options.max_batch_events = 1001;
  EXPECT_THAT(Publisher(Client("rio://a:t@h/p"), options).status(),
              StatusIs(Code::kInvalidArgument));

  Publisher bad_client{Client("rio://a:t@h")};
  EXPECT_THAT(bad_client.Publish(kEvent).get(),
              StatusIs(Code::kInvalidArgument, HasSubstr("names no project")));
  bad_client.Flush();  // Nothing to wait for.
}

TEST(PublisherWithoutServer, ServerDownFailsEveryEventOfTheBatch) {
  Publisher publisher(
      MakeClient(absl::StrCat("rio://app:t@127.0.0.1:", FreePort(), "/p"),
                 FastRetry()),
      FlushOnly());
  std::vector<Future> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(publisher.Publish(kEvent));
  publisher.Flush();
  for (Future& future : futures) {
    ASSERT_TRUE(IsReady(future));
    const absl::StatusOr<EmitResult> result = future.get();
    EXPECT_THAT(result,
                StatusIs(Code::kUnavailable, HasSubstr("(after 3 attempts)")));
    EXPECT_EQ(AttemptsOf(result.status()), 3);
  }
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(rio_.Start(), IsOk());
    ASSERT_THAT(receiver_.Start(), IsOk());
  }

  void AddHandler() {
    EXPECT_THAT(rio_.CreateHandler(receiver_.Url()), IsOk());
  }

  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> rows = rio_.Sql(sql);
    EXPECT_THAT(rows, IsOk()) << sql;
    return rows.ok() ? *rows : "";
  }

  std::string Upstream() const {
    return absl::StrCat("127.0.0.1:", rio_.port());
  }

  RioServer rio_;
  testkit::Receiver receiver_;
};

TEST_F(PublisherTest, DeliversEveryEventFromManyThreadsInBatches) {
  AddHandler();
  FlakyProxy proxy(Upstream(), {});
  ASSERT_THAT(proxy.Start(), IsOk());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  constexpr int kTotal = kThreads * kPerThread;
  std::vector<std::vector<Future>> futures(kThreads);
  {
    Publisher publisher(Client(rio_.Dsn("rio", proxy.port())));
    ASSERT_THAT(publisher.status(), IsOk());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          futures[t].push_back(publisher.Publish(
              kEvent, absl::StrCat(R"({"t":)", t, R"(,"i":)", i, "}")));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    publisher.Flush();
  }

  std::set<std::string> ids;
  std::set<std::string> keys;
  for (std::vector<Future>& per_thread : futures) {
    for (Future& future : per_thread) {
      ASSERT_TRUE(IsReady(future));
      const absl::StatusOr<EmitResult> result = future.get();
      ASSERT_THAT(result, IsOk());
      EXPECT_EQ(result->handlers, 1);
      EXPECT_FALSE(result->duplicate);
      ids.insert(result->message_id);
      keys.insert(result->idempotency_key);
    }
  }
  EXPECT_THAT(ids, SizeIs(kTotal));
  EXPECT_THAT(keys, SizeIs(kTotal));

  // Batched: fewer calls than events, every event in exactly one call.
  const std::vector<FlakyProxy::Call> calls = proxy.Calls();
  EXPECT_THAT(calls.size(), Lt(static_cast<size_t>(kTotal)));
  std::multiset<std::string> sent;
  for (const FlakyProxy::Call& call : calls) {
    sent.insert(call.idempotency_keys.begin(), call.idempotency_keys.end());
  }
  EXPECT_EQ(sent, std::multiset<std::string>(keys.begin(), keys.end()));

  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), absl::StrCat(kTotal));
  EXPECT_TRUE(receiver_.WaitForCount(kTotal, std::chrono::seconds(60)));
}

TEST_F(PublisherTest, EventsFromOneThreadAreSentInOrder) {
  FlakyProxy proxy(Upstream(), {});
  ASSERT_THAT(proxy.Start(), IsOk());
  PublisherOptions options;
  options.max_batch_events = 7;
  Publisher publisher(Client(rio_.Dsn("rio", proxy.port())), options);
  std::vector<std::string> published;
  for (int i = 0; i < 30; ++i) {
    const std::string key = absl::StrCat("ordered-", i);
    published.push_back(key);
    publisher.Publish(Event{kEvent, "{}", key});
  }
  publisher.Flush();
  std::vector<std::string> sent;
  for (const FlakyProxy::Call& call : proxy.Calls()) {
    EXPECT_LE(call.idempotency_keys.size(), 7u);
    sent.insert(sent.end(), call.idempotency_keys.begin(),
                call.idempotency_keys.end());
  }
  EXPECT_EQ(sent, published);
}

TEST_F(PublisherTest, FlushSendsWithoutWaitingForAFullBatch) {
  FlakyProxy proxy(Upstream(), {});
  ASSERT_THAT(proxy.Start(), IsOk());
  Publisher publisher(Client(rio_.Dsn("rio", proxy.port())), FlushOnly());
  std::vector<Future> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(publisher.Publish(kEvent));
  publisher.Flush();
  for (Future& future : futures) {
    ASSERT_TRUE(IsReady(future));
    EXPECT_THAT(future.get(), IsOk());
  }
  ASSERT_THAT(proxy.Calls(), SizeIs(1));
  EXPECT_EQ(proxy.Calls()[0].method, "EmitBatch");
}

TEST_F(PublisherTest, ShutdownSendsWhatIsQueuedThenRefusesNewEvents) {
  Publisher publisher(Client(rio_.Dsn()), FlushOnly());
  std::vector<Future> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(publisher.Publish(kEvent));
  publisher.Shutdown();
  for (Future& future : futures) {
    ASSERT_TRUE(IsReady(future));
    EXPECT_THAT(future.get(), IsOk());
  }
  EXPECT_THAT(
      publisher.Publish(kEvent).get(),
      StatusIs(Code::kFailedPrecondition, Eq("the Publisher is shut down")));
  publisher.Shutdown();  // Idempotent.
  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), "5");
}

TEST_F(PublisherTest, ARetriedBatchAfterADroppedReplyIsNotDuplicated) {
  AddHandler();
  FlakyProxy proxy(Upstream(), {Mode::kDrop});
  ASSERT_THAT(proxy.Start(), IsOk());
  Publisher publisher(MakeClient(rio_.Dsn("rio", proxy.port()), FastRetry()),
                      FlushOnly());
  std::vector<Future> futures;
  for (int i = 0; i < 5; ++i) {
    futures.push_back(
        publisher.Publish(kEvent, absl::StrCat(R"({"i":)", i, "}")));
  }
  publisher.Flush();

  const std::vector<FlakyProxy::Call> calls = proxy.Calls();
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].idempotency_keys, SizeIs(5));
  EXPECT_EQ(calls[0].idempotency_keys, calls[1].idempotency_keys);
  ASSERT_TRUE(calls[0].reply.has_value());
  for (size_t i = 0; i < futures.size(); ++i) {
    const absl::StatusOr<EmitResult> result = futures[i].get();
    ASSERT_THAT(result, IsOk());
    EXPECT_TRUE(result->duplicate);
    EXPECT_EQ(result->message_id, calls[0].reply->results(i).message_id());
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), "5");
  EXPECT_EQ(Sql("SELECT count(*) FROM deliveries"), "5");
  EXPECT_TRUE(receiver_.WaitForCount(5));
}

TEST_F(PublisherTest, OneBadEventFailsAloneInsteadOfItsBatch) {
  Publisher publisher(Client(rio_.Dsn()), FlushOnly());
  Future good1 = publisher.Publish(kEvent, R"({"n":1})");
  Future bad = publisher.Publish("bad event", R"({"n":2})");
  Future good2 = publisher.Publish(kEvent, R"({"n":3})");
  publisher.Flush();
  EXPECT_THAT(good1.get(), IsOk());
  EXPECT_THAT(bad.get(), StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(good2.get(), IsOk());
  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), "2");
}

TEST_F(PublisherTest, AFullBufferAnswersResourceExhaustedWhenNotBlocking) {
  FlakyProxy proxy(Upstream(), {Mode::kHold});
  ASSERT_THAT(proxy.Start(), IsOk());
  PublisherOptions options;
  options.max_pending_events = 2;
  options.block_when_full = false;
  Publisher publisher(Client(rio_.Dsn("rio", proxy.port())), options);
  Future first = publisher.Publish(kEvent);
  Future second = publisher.Publish(kEvent);
  // Both are unanswered: the proxy holds whatever was sent.
  Future third = publisher.Publish(kEvent);
  ASSERT_TRUE(IsReady(third));
  EXPECT_THAT(third.get(),
              StatusIs(Code::kResourceExhausted,
                       HasSubstr("already holds 2 unanswered events")));
  proxy.Release();
  publisher.Flush();
  EXPECT_THAT(first.get(), IsOk());
  EXPECT_THAT(second.get(), IsOk());
  EXPECT_THAT(publisher.Publish(kEvent).get(), IsOk());
}

TEST_F(PublisherTest, AFullBufferBlocksPublishUntilThereIsRoom) {
  FlakyProxy proxy(Upstream(), {Mode::kHold});
  ASSERT_THAT(proxy.Start(), IsOk());
  PublisherOptions options;
  options.max_pending_events = 1;
  Publisher publisher(Client(rio_.Dsn("rio", proxy.port())), options);
  Future first = publisher.Publish(kEvent);
  std::promise<void> published;
  Future second;
  std::thread blocked([&] {
    second = publisher.Publish(kEvent);
    published.set_value();
  });
  std::future<void> returned = published.get_future();
  // A negative: Publish() must still be waiting a while later.
  EXPECT_EQ(returned.wait_for(std::chrono::milliseconds(300)),
            std::future_status::timeout);
  proxy.Release();
  EXPECT_EQ(returned.wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  blocked.join();
  publisher.Flush();
  EXPECT_THAT(first.get(), IsOk());
  EXPECT_THAT(second.get(), IsOk());
}

}  // namespace
}  // namespace rio
