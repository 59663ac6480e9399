// rio::Client against the real rio-server, a real PostgreSQL and a real
// receiver: what lands where, every DSN form, TLS, authentication, bad
// input, retries (server down, coming back, a lost or late reply: never a
// duplicate), idempotency keys, batches, and sharing between threads.
#include "rio/client.h"

#include <stdlib.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/webhook.h"
#include "sdk/cpp/tests/status_matchers.h"
#include "sdk/cpp/tests/test_support.h"

namespace rio {
namespace {

using ::rio::sdk_test::FlakyProxy;
using ::rio::sdk_test::FreePort;
using ::rio::sdk_test::HeadersOf;
using ::rio::sdk_test::kEvent;
using ::rio::sdk_test::kProject;
using ::rio::sdk_test::kUuidV4Pattern;
using ::rio::sdk_test::RioServer;
using ::rio::testing::IsOk;
using ::rio::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::SizeIs;
using Code = absl::StatusCode;
using Mode = FlakyProxy::Mode;

// Quick retries, so that tests of retrying do not take seconds.
RetryPolicy FastRetry() {
  RetryPolicy retry;
  retry.max_attempts = 3;
  retry.initial_backoff = absl::Milliseconds(50);
  return retry;
}

ClientOptions Options(const std::string& dsn,
                      const RetryPolicy& retry = RetryPolicy(),
                      absl::Duration deadline = absl::Seconds(10)) {
  ClientOptions options;
  options.dsn = dsn;
  options.retry = retry;
  options.deadline = deadline;
  return options;
}

// Restores an environment variable when it goes out of scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name); old != nullptr) old_ = old;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------------------
// No server needed

TEST(ClientWithoutServer, MalformedDsnFailsEveryCallBeforeAnyNetworkCall) {
  const Client client("rio://app:s3cr3t@h");
  const std::string message =
      "DSN 'rio://app:***@h' names no project (the last path segment); "
      "expected rio://SENDER:TOKEN@HOST:PORT/PROJECT";
  EXPECT_THAT(client.status(), StatusIs(Code::kInvalidArgument, Eq(message)));
  const absl::StatusOr<EmitResult> result = client.Emit(kEvent, "{}");
  EXPECT_THAT(result, StatusIs(Code::kInvalidArgument, Eq(message)));
  EXPECT_EQ(AttemptsOf(result.status()), 0);
  EXPECT_THAT(client.EmitBatch({Event{kEvent}}),
              StatusIs(Code::kInvalidArgument, Eq(message)));
  EXPECT_EQ(client.project(), "");
}

TEST(ClientWithoutServer, DsnComesFromTheEnvironmentWhenNotGiven) {
  const ScopedEnv env(kDsnEnvironmentVariable,
                      "rio://env:t@env-host/env-project");
  EXPECT_EQ(Client().project(), "env-project");
  EXPECT_EQ(Client("").project(), "env-project");
  EXPECT_EQ(Client(ClientOptions()).project(), "env-project");
  // Explicit beats the environment.
  EXPECT_EQ(Client("rio://a:t@h/positional").project(), "positional");
  EXPECT_EQ(Client("http://a:t@h/1/seed").project(), "seed");
  EXPECT_EQ(Client("http://a:t@h/1/seed").dsn().ToString(),
            "http://a:***@h:50051/seed");
}

TEST(ClientWithoutServer, NoDsnAnywhereIsAClearError) {
  const std::string message =
      "no DSN: pass rio::Client(\"rio://SENDER:TOKEN@HOST:PORT/PROJECT\") or "
      "set RIO_DSN";
  {
    const ScopedEnv env(kDsnEnvironmentVariable, nullptr);
    EXPECT_THAT(Client().status(),
                StatusIs(Code::kInvalidArgument, Eq(message)));
  }
  {
    const ScopedEnv env(kDsnEnvironmentVariable, "");
    EXPECT_THAT(Client("").status(),
                StatusIs(Code::kInvalidArgument, Eq(message)));
  }
  {
    const ScopedEnv env(kDsnEnvironmentVariable, "rio://app:s3cr3t@h");
    EXPECT_THAT(Client().status(), StatusIs(Code::kInvalidArgument,
                                            HasSubstr("names no project")));
  }
}

TEST(ClientWithoutServer, BadOptionsAreRefused) {
  EXPECT_THAT(
      Client(Options("rio://a:t@h/p", RetryPolicy(), absl::ZeroDuration()))
          .status(),
      StatusIs(Code::kInvalidArgument,
               Eq("ClientOptions.deadline must be positive")));
  RetryPolicy retry;
  retry.max_attempts = 0;
  EXPECT_THAT(Client(Options("rio://a:t@h/p", retry)).status(),
              StatusIs(Code::kInvalidArgument, HasSubstr("max_attempts")));
}

TEST(ClientWithoutServer, TextThatIsNotUtf8IsRefusedBeforeSending) {
  const Client client(
      Options(absl::StrCat("rio://a:t@127.0.0.1:", FreePort(), "/p"),
              RetryPolicy::NoRetry()));
  const absl::StatusOr<EmitResult> result =
      client.Emit(kEvent, "{\"a\":\"\xff\"}");
  EXPECT_THAT(result, StatusIs(Code::kInvalidArgument,
                               Eq("payload_json is not valid UTF-8")));
  EXPECT_EQ(AttemptsOf(result.status()), 0);
  EXPECT_THAT(client.EmitBatch({Event{kEvent}, Event{"e\xc0"}}),
              StatusIs(Code::kInvalidArgument,
                       Eq("event 1: the event name is not valid UTF-8")));
}

TEST(ClientWithoutServer, ServerDownRetriesThenUnavailable) {
  const Client client(
      Options(absl::StrCat("rio://app:t@127.0.0.1:", FreePort(), "/comments"),
              FastRetry(), absl::Seconds(5)));
  const absl::Time start = absl::Now();
  const absl::StatusOr<EmitResult> result =
      client.Emit(kEvent, R"({"ip":"127.0.0.1"})");
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_THAT(result,
              StatusIs(Code::kUnavailable, HasSubstr("(after 3 attempts)")));
  EXPECT_EQ(AttemptsOf(result.status()), 3);
  // Two backoffs of at least 50 ms * 0.8 and 100 ms * 0.8 were waited.
  EXPECT_GE(elapsed, absl::Milliseconds(120));
}

TEST(ClientWithoutServer, ServerDownWithTheDefaultPolicyGivesUpInBoundedTime) {
  const Client client(
      absl::StrCat("rio://app:t@127.0.0.1:", FreePort(), "/comments"));
  const absl::Time start = absl::Now();
  const absl::StatusOr<EmitResult> result = client.Emit(kEvent);
  EXPECT_THAT(result,
              StatusIs(Code::kUnavailable, HasSubstr("(after 5 attempts)")));
  EXPECT_EQ(AttemptsOf(result.status()), 5);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// ---------------------------------------------------------------------------
// Against rio-server

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_THAT(rio_.Start(), IsOk());
    ASSERT_THAT(receiver_.Start(), IsOk());
  }

  // A JSON handler at the receiver; returns its secret.
  std::string AddHandler(bool json = true) {
    absl::StatusOr<v1::Handler> handler =
        rio_.CreateHandler(receiver_.Url(), json);
    EXPECT_THAT(handler, IsOk());
    return handler.ok() ? handler->secret() : "";
  }

  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> rows = rio_.Sql(sql);
    EXPECT_THAT(rows, IsOk()) << sql;
    return rows.ok() ? *rows : "";
  }

  std::string MessagesWithKey(const std::string& key) {
    return Sql(absl::StrCat(
        "SELECT count(*) FROM messages WHERE idempotency_key = '", key, "'"));
  }

  RioServer rio_;
  testkit::Receiver receiver_;
};

TEST_F(ClientTest, EmitLandsAtARealReceiverWithAValidSignature) {
  const std::string secret = AddHandler();
  const Client client(rio_.Dsn());
  ASSERT_THAT(client.status(), IsOk());
  const std::string payload =
      R"({"ip":"127.0.0.1","content":"I am a spammer"})";

  const absl::StatusOr<EmitResult> result =
      client.Emit("comment-published", payload);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->handlers, 1);
  EXPECT_FALSE(result->duplicate);
  EXPECT_THAT(result->idempotency_key, MatchesRegex(kUuidV4Pattern));

  ASSERT_TRUE(receiver_.WaitForCount(1));
  const testkit::ReceivedRequest request = receiver_.Requests()[0];
  EXPECT_EQ(request.body, payload);
  EXPECT_EQ(request.Header("webhook-id"), result->message_id);
  EXPECT_EQ(request.Header("content-type"), "application/json");
  EXPECT_THAT(webhook::Verify(secret, HeadersOf(request), request.body),
              IsOk());
  EXPECT_THAT(webhook::Verify(secret, HeadersOf(request), request.body + " "),
              StatusIs(Code::kUnauthenticated));
  EXPECT_EQ(MessagesWithKey(result->idempotency_key), "1");
}

// A GET handler gets the payload in the query string and an empty body; the
// signature covers the query string exactly as sent.
TEST_F(ClientTest, AGetDeliveryIsSignedOverItsQueryString) {
  const absl::StatusOr<v1::Handler> handler =
      rio_.CreateHandler(receiver_.Url("/hooks/get?static=1"), /*json=*/false,
                         kEvent, kProject, v1::Handler::GET);
  ASSERT_THAT(handler, IsOk());
  const Client client(rio_.Dsn());
  const absl::StatusOr<EmitResult> result = client.Emit(
      "comment-published", R"({"ip":"127.0.0.1","content":"I am a spammer"})");
  ASSERT_THAT(result, IsOk());

  ASSERT_TRUE(receiver_.WaitForCount(1));
  const testkit::ReceivedRequest request = receiver_.Requests()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.path, "/hooks/get");
  EXPECT_EQ(request.query, "static=1&ip=127.0.0.1&content=I+am+a+spammer");
  EXPECT_EQ(request.body, "");
  EXPECT_EQ(request.Header("webhook-id"), result->message_id);
  const std::string& secret = handler->secret();
  EXPECT_THAT(webhook::Verify(secret, HeadersOf(request), request.query),
              IsOk());
  // As a server that hands over the request line's target would.
  const std::string target = absl::StrCat(request.path, "?", request.query);
  EXPECT_THAT(webhook::Verify(
                  secret, HeadersOf(request),
                  webhook::SignedContent(request.method, target, request.body)),
              IsOk());
  // Not over the empty body, and no tampered query string.
  EXPECT_THAT(webhook::Verify(secret, HeadersOf(request), request.body),
              StatusIs(Code::kUnauthenticated));
  for (const std::string& tampered : std::vector<std::string>{
           "static=1&ip=127.0.0.1&content=I+am+a+friend",
           "static=1&ip=10.6.6.6&content=I+am+a+spammer",
           request.query + "&admin=1", "ip=127.0.0.1&content=I+am+a+spammer"}) {
    EXPECT_THAT(webhook::Verify(secret, HeadersOf(request), tampered),
                StatusIs(Code::kUnauthenticated,
                         Eq("no webhook-signature entry matches the secret")))
        << tampered;
  }
}

TEST_F(ClientTest, JsonTextIsSentAndDeliveredByteForByte) {
  AddHandler();
  const Client client(rio_.Dsn());
  // Spacing, key order, an integer beyond 2^64 and non-ASCII text.
  const std::string payload =
      "{ \"z\": 1,  \"big\": 123456789012345678901234567890, \"s\": "
      "\"caf\xc3\xa9 \xe2\x9c\x93\" }";
  ASSERT_THAT(client.Emit(kEvent, payload), IsOk());
  ASSERT_TRUE(receiver_.WaitForCount(1));
  EXPECT_EQ(receiver_.Requests()[0].body, payload);
}

TEST_F(ClientTest, NoPayloadEmitsAnEmptyObject) {
  AddHandler();
  ASSERT_THAT(Client(rio_.Dsn()).Emit(kEvent), IsOk());
  ASSERT_TRUE(receiver_.WaitForCount(1));
  EXPECT_EQ(receiver_.Requests()[0].body, "{}");
}

TEST_F(ClientTest, EveryDsnFormReachesTheServer) {
  AddHandler();
  const std::vector<std::string> forms = {
      rio_.Dsn("rio"),
      rio_.Dsn("http", 0, "1/comments"),  // The seed's form.
      rio_.Dsn("RIO", 0, "comments/"),
      absl::StrCat("  ", rio_.Dsn("rio"), "\n"),
  };
  for (const std::string& dsn : forms) {
    EXPECT_THAT(Client(dsn).Emit(kEvent), IsOk()) << dsn;
  }
  {
    const ScopedEnv env(kDsnEnvironmentVariable, rio_.Dsn().c_str());
    EXPECT_THAT(Client().Emit(kEvent), IsOk());
  }
  EXPECT_TRUE(receiver_.WaitForCount(forms.size() + 1));
}

TEST_F(ClientTest, TlsDsnsUseTls) {
  AddHandler();
  // rio-server speaks plaintext here, so a TLS-terminating proxy stands in.
  const absl::StatusOr<sdk_test::KeyAndCertificate> tls =
      sdk_test::SelfSignedCertificate();
  ASSERT_THAT(tls, IsOk());
  FlakyProxy proxy(absl::StrCat("127.0.0.1:", rio_.port()), {}, *tls);
  ASSERT_THAT(proxy.Start(), IsOk());

  for (const std::string& dsn :
       {rio_.Dsn("rios", proxy.port()),
        rio_.Dsn("https", proxy.port(), "1/comments")}) {
    ClientOptions options = Options(dsn);
    options.root_certificates = tls->certificate_pem;
    EXPECT_THAT(Client(options).Emit(kEvent), IsOk()) << dsn;
  }
  // Without the proxy's root the handshake fails: it really is TLS.
  EXPECT_THAT(
      Client(Options(rio_.Dsn("rios", proxy.port()), RetryPolicy::NoRetry()))
          .Emit(kEvent),
      StatusIs(Code::kUnavailable));
  EXPECT_THAT(
      Client(Options(rio_.Dsn("rio", proxy.port()), RetryPolicy::NoRetry()))
          .Emit(kEvent),
      StatusIs(Code::kUnavailable));
  EXPECT_THAT(proxy.Calls(), SizeIs(2));
  EXPECT_TRUE(receiver_.WaitForCount(2));
}

TEST_F(ClientTest, WrongTokenIsUnauthenticatedAndNotRetried) {
  const absl::StatusOr<EmitResult> wrong_token =
      Client(absl::StrCat("rio://app:not-the-token@127.0.0.1:", rio_.port(),
                          "/comments"))
          .Emit(kEvent);
  EXPECT_THAT(wrong_token, StatusIs(Code::kUnauthenticated));
  EXPECT_EQ(AttemptsOf(wrong_token.status()), 1);
  EXPECT_THAT(Client(absl::StrCat("rio://nobody:", rio_.token(),
                                  "@127.0.0.1:", rio_.port(), "/comments"))
                  .Emit(kEvent),
              StatusIs(Code::kUnauthenticated));
  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), "0");
}

TEST_F(ClientTest, AnotherProjectsSenderIsPermissionDenied) {
  ASSERT_THAT(rio_.CreateProject("other"), IsOk());
  const absl::StatusOr<std::string> token =
      rio_.CreateSender("other", "other-app");
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(Client(absl::StrCat("rio://other-app:", *token,
                                  "@127.0.0.1:", rio_.port(), "/comments"))
                  .Emit(kEvent),
              StatusIs(Code::kPermissionDenied));
}

TEST_F(ClientTest, BadInputIsInvalidArgumentAndNotRetried) {
  const Client client(rio_.Dsn());
  for (const auto& [event, payload] :
       std::vector<std::pair<std::string, std::string>>{{"bad event", "{}"},
                                                        {kEvent, "[1, 2]"},
                                                        {kEvent, "not json"},
                                                        {"", "{}"}}) {
    const absl::StatusOr<EmitResult> result = client.Emit(event, payload);
    EXPECT_THAT(result, StatusIs(Code::kInvalidArgument))
        << event << " " << payload;
    EXPECT_EQ(AttemptsOf(result.status()), 1);
  }
  const absl::StatusOr<EmitResult> long_key =
      client.Emit(Event{kEvent, "{}", std::string(257, 'k')});
  EXPECT_THAT(long_key, StatusIs(Code::kInvalidArgument));
  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), "0");
}

TEST_F(ClientTest, ServerThatComesBackDuringRetriesGetsTheEmit) {
  AddHandler();
  FlakyProxy proxy(absl::StrCat("127.0.0.1:", rio_.port()),
                   {Mode::kRefuse, Mode::kRefuse});
  ASSERT_THAT(proxy.Start(), IsOk());
  const absl::StatusOr<EmitResult> result =
      Client(Options(rio_.Dsn("rio", proxy.port()), FastRetry()))
          .Emit(kEvent, R"({"n":1})");
  ASSERT_THAT(result, IsOk());
  EXPECT_FALSE(result->duplicate);
  EXPECT_EQ(result->handlers, 1);
  const std::vector<FlakyProxy::Call> calls = proxy.Calls();
  ASSERT_THAT(calls, SizeIs(3));
  for (const FlakyProxy::Call& call : calls) {
    EXPECT_THAT(call.idempotency_keys, ElementsAre(result->idempotency_key));
  }
  EXPECT_TRUE(receiver_.WaitForCount(1));
}

// The server commits the first attempt but its reply never arrives (`mode`
// kDrop: UNAVAILABLE; kLate: past the deadline). The retry carries the same
// idempotency key, so Rio answers with the first message, duplicate, and
// creates nothing.
void ExpectLostReplyIsNotDuplicated(RioServer& rio, testkit::Receiver& receiver,
                                    Mode mode) {
  FlakyProxy proxy(absl::StrCat("127.0.0.1:", rio.port()), {mode});
  ASSERT_THAT(proxy.Start(), IsOk());
  const absl::StatusOr<EmitResult> result =
      Client(
          Options(rio.Dsn("rio", proxy.port()), FastRetry(), absl::Seconds(2)))
          .Emit(kEvent, R"({"ip":"127.0.0.1"})");
  ASSERT_THAT(result, IsOk());

  const std::vector<FlakyProxy::Call> calls = proxy.Calls();
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].idempotency_keys, ElementsAre(result->idempotency_key));
  EXPECT_THAT(calls[1].idempotency_keys, ElementsAre(result->idempotency_key));
  ASSERT_TRUE(calls[0].reply.has_value());
  const v1::EmitResponse& lost = calls[0].reply->results(0);
  EXPECT_FALSE(lost.duplicate());
  EXPECT_EQ(result->message_id, lost.message_id());
  EXPECT_TRUE(result->duplicate);

  auto sql = [&](const std::string& text) {
    absl::StatusOr<std::string> rows = rio.Sql(text);
    EXPECT_THAT(rows, IsOk());
    return rows.ok() ? *rows : "";
  };
  EXPECT_EQ(sql(absl::StrCat(
                "SELECT count(*) FROM messages WHERE idempotency_key = '",
                result->idempotency_key, "'")),
            "1");
  EXPECT_EQ(sql("SELECT count(*) FROM messages"), "1");
  EXPECT_EQ(
      sql(absl::StrCat("SELECT count(*) FROM deliveries WHERE message_id = '",
                       result->message_id, "'")),
      "1");
  ASSERT_TRUE(receiver.WaitForCount(1));
  EXPECT_EQ(receiver.Requests()[0].Header("webhook-id"), result->message_id);
}

TEST_F(ClientTest, RetriedEmitAfterADroppedReplyIsNotDuplicated) {
  AddHandler();
  ExpectLostReplyIsNotDuplicated(rio_, receiver_, Mode::kDrop);
}

TEST_F(ClientTest, RetriedEmitAfterALateReplyIsNotDuplicated) {
  AddHandler();
  ExpectLostReplyIsNotDuplicated(rio_, receiver_, Mode::kLate);
}

TEST_F(ClientTest, PerCallDeadlineOverridesTheClients) {
  FlakyProxy proxy(absl::StrCat("127.0.0.1:", rio_.port()), {Mode::kLate});
  ASSERT_THAT(proxy.Start(), IsOk());
  const Client client(Options(rio_.Dsn("rio", proxy.port()),
                              RetryPolicy::NoRetry(), absl::Seconds(30)));
  CallOptions call;
  call.deadline = absl::Milliseconds(500);
  const absl::Time start = absl::Now();
  EXPECT_THAT(client.Emit(Event{kEvent}, call),
              StatusIs(Code::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  call.deadline = absl::Seconds(-1);
  EXPECT_THAT(client.Emit(Event{kEvent}, call),
              StatusIs(Code::kInvalidArgument,
                       Eq("CallOptions.deadline may not be negative")));
}

TEST_F(ClientTest, ExplicitIdempotencyKeyReturnsTheFirstMessage) {
  const Client client(rio_.Dsn());
  const std::string key = "comment-42";
  const absl::StatusOr<EmitResult> first =
      client.Emit(Event{kEvent, R"({"n":1})", key});
  const absl::StatusOr<EmitResult> second =
      client.Emit(Event{kEvent, R"({"n":2})", key});
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(first->idempotency_key, key);
  EXPECT_FALSE(first->duplicate);
  EXPECT_TRUE(second->duplicate);
  EXPECT_EQ(second->message_id, first->message_id);
  EXPECT_EQ(MessagesWithKey(key), "1");
}

TEST_F(ClientTest, EachEmitGetsItsOwnKey) {
  const Client client(rio_.Dsn());
  std::set<std::string> keys;
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const absl::StatusOr<EmitResult> result = client.Emit(kEvent);
    ASSERT_THAT(result, IsOk());
    EXPECT_FALSE(result->duplicate);
    EXPECT_THAT(result->idempotency_key, MatchesRegex(kUuidV4Pattern));
    keys.insert(result->idempotency_key);
    ids.insert(result->message_id);
  }
  EXPECT_THAT(keys, SizeIs(5));
  EXPECT_THAT(ids, SizeIs(5));
}

TEST_F(ClientTest, EmitBatchAnswersInOrderWithOneKeyPerEvent) {
  AddHandler();
  const Client client(rio_.Dsn());
  const absl::StatusOr<std::vector<EmitResult>> results = client.EmitBatch({
      Event{kEvent, R"({"n":0})"},
      Event{"comment-deleted", R"({"n":1})"},
      Event{kEvent, R"({"n":2})", "batch-key-2"},
  });
  ASSERT_THAT(results, IsOk());
  ASSERT_THAT(*results, SizeIs(3));
  EXPECT_EQ((*results)[0].handlers, 1);
  EXPECT_EQ((*results)[1].handlers, 0);  // Nobody handles it.
  EXPECT_EQ((*results)[2].idempotency_key, "batch-key-2");
  EXPECT_THAT((*results)[0].idempotency_key, MatchesRegex(kUuidV4Pattern));
  EXPECT_NE((*results)[0].idempotency_key, (*results)[1].idempotency_key);
  ASSERT_TRUE(receiver_.WaitForCount(2));
  std::map<std::string, std::string> body_by_id;
  for (const testkit::ReceivedRequest& request : receiver_.Requests()) {
    body_by_id[request.Header("webhook-id")] = request.body;
  }
  EXPECT_EQ(body_by_id[(*results)[0].message_id], R"({"n":0})");
  EXPECT_EQ(body_by_id[(*results)[2].message_id], R"({"n":2})");
}

TEST_F(ClientTest, RetriedBatchAfterADroppedReplyIsNotDuplicated) {
  FlakyProxy proxy(absl::StrCat("127.0.0.1:", rio_.port()), {Mode::kDrop});
  ASSERT_THAT(proxy.Start(), IsOk());
  const absl::StatusOr<std::vector<EmitResult>> results =
      Client(Options(rio_.Dsn("rio", proxy.port()), FastRetry()))
          .EmitBatch({Event{kEvent}, Event{kEvent}});
  ASSERT_THAT(results, IsOk());
  const std::vector<FlakyProxy::Call> calls = proxy.Calls();
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_EQ(calls[0].idempotency_keys, calls[1].idempotency_keys);
  for (const EmitResult& result : *results) EXPECT_TRUE(result.duplicate);
  EXPECT_EQ(Sql("SELECT count(*) FROM messages"), "2");
}

TEST_F(ClientTest, CopiesShareOneClientAcrossThreads) {
  AddHandler();
  const Client client(rio_.Dsn());
  constexpr int kThreads = 4;
  constexpr int kEmitsPerThread = 10;
  std::vector<std::thread> threads;
  std::vector<std::vector<absl::StatusOr<EmitResult>>> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([copy = client, &results, t] {
      for (int i = 0; i < kEmitsPerThread; ++i) {
        results[t].push_back(
            copy.Emit(kEvent, absl::StrCat(R"({"t":)", t, R"(,"i":)", i, "}")));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> ids;
  for (const auto& per_thread : results) {
    for (const absl::StatusOr<EmitResult>& result : per_thread) {
      ASSERT_THAT(result, IsOk());
      ids.insert(result->message_id);
    }
  }
  EXPECT_THAT(ids, SizeIs(kThreads * kEmitsPerThread));
  EXPECT_TRUE(receiver_.WaitForCount(kThreads * kEmitsPerThread));
}

}  // namespace
}  // namespace rio
