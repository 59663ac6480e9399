// Self-tests of the webhook Receiver, driven by libcurl (what rio-server's
// dispatcher uses).
#include "tests/testkit/receiver.h"

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rio::testkit {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::Pair;

struct CurlHandleDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlHandleDeleter>;

CurlHandle NewCurl() { return CurlHandle(curl_easy_init()); }

struct CurlRequest {
  std::string method = "POST";
  std::string url;
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
  milliseconds timeout{10000};
  bool http10 = false;
};

struct CurlResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::string headers;  // Raw response header block(s).
  long new_connections = 0;
  milliseconds elapsed{0};
};

size_t AppendTo(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Performs `request` on `curl` (reusing its connection when possible).
CurlResult Perform(CURL* curl, const CurlRequest& request) {
  CurlResult result;
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(request.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendTo);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &AppendTo);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
  if (request.http10) {
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_0);
  }
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method != "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  }
  curl_slist* headers = nullptr;
  for (const std::string& header : request.headers) {
    headers = curl_slist_append(headers, header.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const auto start = steady_clock::now();
  result.code = curl_easy_perform(curl);
  result.elapsed =
      std::chrono::duration_cast<milliseconds>(steady_clock::now() - start);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &result.new_connections);
  curl_slist_free_all(headers);
  return result;
}

CurlResult Perform(const CurlRequest& request) {
  CurlHandle curl = NewCurl();
  return Perform(curl.get(), request);
}

CurlResult Post(const std::string& url, const std::string& body = "") {
  CurlRequest request;
  request.url = url;
  request.body = body;
  return Perform(request);
}

TEST(Receiver, RecordsMethodPathQueryHeadersAndBody) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  EXPECT_GT(receiver.port(), 0);
  EXPECT_EQ(receiver.Url(),
            absl::StrCat("http://127.0.0.1:", receiver.port(), "/hook"));

  CurlRequest request;
  request.method = "PUT";
  request.url = receiver.Url("/webhook/comment?x=1&y=%20");
  request.body = "content=I+am+a+spammer&ip=127.0.0.1";
  request.headers = {"X-Rio-Event: uuid=1,project=p,action=a",
                     "Content-Type: application/x-www-form-urlencoded"};
  const auto before = steady_clock::now();
  const CurlResult result = Perform(request);
  ASSERT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "ok");

  ASSERT_EQ(receiver.Count(), 1u);
  const ReceivedRequest got = receiver.Requests()[0];
  EXPECT_EQ(got.method, "PUT");
  EXPECT_EQ(got.path, "/webhook/comment");
  EXPECT_EQ(got.query, "x=1&y=%20");
  EXPECT_EQ(got.body, "content=I+am+a+spammer&ip=127.0.0.1");
  EXPECT_EQ(got.Header("X-Rio-Event"), "uuid=1,project=p,action=a");
  EXPECT_EQ(got.Header("x-rio-event"), "uuid=1,project=p,action=a");
  EXPECT_EQ(got.Header("content-length"), "35");
  EXPECT_EQ(got.Header("X-Absent"), "");
  EXPECT_THAT(got.headers,
              testing::Contains(
                  Pair("content-type", "application/x-www-form-urlencoded")));
  EXPECT_GE(got.arrival, before);
  EXPECT_LE(got.arrival, steady_clock::now());
}

TEST(Receiver, ScriptChoosesStatusBodyAndHeadersAndSeesTheIndex) {
  std::vector<int> indexes;
  std::mutex indexes_mu;
  Receiver receiver([&](const ReceivedRequest& request, int index) {
    {
      std::lock_guard<std::mutex> lock(indexes_mu);
      indexes.push_back(index);
    }
    ReceiverReply reply;
    if (index == 0) {
      reply.status = 503;
      reply.body = "busy";
      reply.headers = {{"Retry-After", "1"}};
    } else {
      reply.status = 410;
      reply.body = absl::StrCat("gone ", request.path);
    }
    return reply;
  });
  ASSERT_TRUE(receiver.Start().ok());

  const CurlResult first = Post(receiver.Url("/a"));
  ASSERT_EQ(first.code, CURLE_OK);
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(first.body, "busy");
  EXPECT_THAT(first.headers, HasSubstr("\r\nRetry-After: 1\r\n"));
  EXPECT_THAT(first.headers, HasSubstr("HTTP/1.1 503 Service Unavailable"));

  const CurlResult second = Post(receiver.Url("/b"));
  ASSERT_EQ(second.code, CURLE_OK);
  EXPECT_EQ(second.status, 410);
  EXPECT_EQ(second.body, "gone /b");
  EXPECT_EQ(indexes, (std::vector<int>{0, 1}));
}

TEST(Receiver, KeepsConnectionsAlive) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  CurlHandle curl = NewCurl();
  CurlRequest request;
  request.url = receiver.Url();
  for (int i = 0; i < 3; ++i) {
    request.body = absl::StrCat("body ", i);
    const CurlResult result = Perform(curl.get(), request);
    ASSERT_EQ(result.code, CURLE_OK);
    EXPECT_EQ(result.status, 200);
    // Only the first request opens a connection.
    EXPECT_EQ(result.new_connections, i == 0 ? 1 : 0) << i;
  }
  const std::vector<ReceivedRequest> requests = receiver.Requests();
  ASSERT_EQ(requests.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(requests[i].body, absl::StrCat("body ", i));
  }
}

TEST(Receiver, ClosesWhenTheClientAsksOrSpeaksHttp10) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  CurlHandle curl = NewCurl();
  CurlRequest request;
  request.url = receiver.Url();
  request.headers = {"Connection: close"};
  for (int i = 0; i < 2; ++i) {
    const CurlResult result = Perform(curl.get(), request);
    ASSERT_EQ(result.code, CURLE_OK);
    EXPECT_EQ(result.new_connections, 1) << i;
    EXPECT_THAT(result.headers, HasSubstr("Connection: close"));
  }
  request.headers.clear();
  request.http10 = true;
  const CurlResult result = Perform(curl.get(), request);
  ASSERT_EQ(result.code, CURLE_OK);
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "ok");
  EXPECT_EQ(receiver.Count(), 3u);
}

TEST(Receiver, RecordsOnArrivalAndDelaysTheReply) {
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.delay = milliseconds(2000);
    return reply;
  });
  ASSERT_TRUE(receiver.Start().ok());
  CurlResult result;
  const auto start = steady_clock::now();
  std::thread client([&] { result = Post(receiver.Url()); });
  // Recorded when it arrived, long before the reply.
  ASSERT_TRUE(receiver.WaitForCount(1));
  EXPECT_LT(steady_clock::now() - start, milliseconds(1500));
  client.join();
  ASSERT_EQ(result.code, CURLE_OK);
  EXPECT_EQ(result.status, 200);
  EXPECT_GE(result.elapsed, milliseconds(2000));
}

TEST(Receiver, ASlowReplyDoesNotBlockOtherConnections) {
  Receiver receiver([](const ReceivedRequest& request, int) {
    ReceiverReply reply;
    if (request.path == "/slow") reply.delay = milliseconds(3000);
    if (request.path == "/hang") reply.hang = true;
    return reply;
  });
  ASSERT_TRUE(receiver.Start().ok());
  std::thread slow([&] { Post(receiver.Url("/slow")); });
  std::thread hang([&] { Post(receiver.Url("/hang")); });
  ASSERT_TRUE(receiver.WaitForCount(2));

  const auto start = steady_clock::now();
  const CurlResult fast = Post(receiver.Url("/fast"));
  EXPECT_EQ(fast.code, CURLE_OK);
  EXPECT_EQ(fast.status, 200);
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
  receiver.Stop();
  slow.join();
  hang.join();
}

TEST(Receiver, StopReturnsPromptlyWithHangingAndDelayedConnections) {
  Receiver receiver([](const ReceivedRequest& request, int) {
    ReceiverReply reply;
    if (request.path == "/hang") reply.hang = true;
    if (request.path == "/slow") reply.delay = milliseconds(60000);
    return reply;
  });
  ASSERT_TRUE(receiver.Start().ok());
  CurlResult hung;
  CurlResult slowed;
  std::thread hang([&] {
    CurlRequest request;
    request.url = receiver.Url("/hang");
    request.timeout = milliseconds(30000);
    hung = Perform(request);
  });
  std::thread slow([&] {
    CurlRequest request;
    request.url = receiver.Url("/slow");
    request.timeout = milliseconds(30000);
    slowed = Perform(request);
  });
  // An idle keep-alive connection too.
  CurlHandle idle = NewCurl();
  CurlRequest request;
  request.url = receiver.Url("/idle");
  ASSERT_EQ(Perform(idle.get(), request).code, CURLE_OK);
  ASSERT_TRUE(receiver.WaitForCount(3));

  const auto start = steady_clock::now();
  receiver.Stop();
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
  hang.join();
  slow.join();
  // The clients saw the connection go away with no reply.
  EXPECT_NE(hung.code, CURLE_OK);
  EXPECT_NE(slowed.code, CURLE_OK);
  EXPECT_LT(hung.elapsed, milliseconds(5000));
  EXPECT_LT(slowed.elapsed, milliseconds(5000));

  // Requests stay readable; a second Stop is harmless; nothing listens.
  EXPECT_EQ(receiver.Count(), 3u);
  receiver.Stop();
  EXPECT_NE(Post(receiver.Url()).code, CURLE_OK);
}

TEST(Receiver, AnswersExpectContinueAtOnce) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  CurlRequest request;
  request.url = receiver.Url();
  request.body = std::string(2 * 1024 * 1024, 'x');
  request.headers = {"Expect: 100-continue"};
  const CurlResult result = Perform(request);
  ASSERT_EQ(result.code, CURLE_OK);
  EXPECT_EQ(result.status, 200);
  // curl waits a whole second for "100 Continue" when none comes.
  EXPECT_LT(result.elapsed, milliseconds(900));
  ASSERT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(receiver.Requests()[0].body.size(), request.body.size());
}

TEST(Receiver, DecodesChunkedBodies) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  CurlRequest request;
  request.url = receiver.Url();
  request.body = "a chunked body";
  request.headers = {"Transfer-Encoding: chunked"};
  const CurlResult result = Perform(request);
  ASSERT_EQ(result.code, CURLE_OK);
  ASSERT_EQ(receiver.Count(), 1u);
  const ReceivedRequest got = receiver.Requests()[0];
  EXPECT_EQ(got.Header("transfer-encoding"), "chunked");
  EXPECT_EQ(got.body, "a chunked body");
}

TEST(Receiver, ServesManyConcurrentClients) {
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.delay = milliseconds(20);
    return reply;
  });
  ASSERT_TRUE(receiver.Start().ok());
  constexpr int kThreads = 16;
  constexpr int kPerThread = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      CurlHandle curl = NewCurl();
      for (int i = 0; i < kPerThread; ++i) {
        CurlRequest request;
        request.url = receiver.Url(absl::StrCat("/t", t, "/", i));
        if (Perform(curl.get(), request).status == 200) ++ok;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(receiver.Count(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(Receiver, WaitForCountTimesOut) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  const auto start = steady_clock::now();
  EXPECT_FALSE(receiver.WaitForCount(1, milliseconds(100)));
  EXPECT_GE(steady_clock::now() - start, milliseconds(100));
  EXPECT_TRUE(receiver.WaitForCount(0, milliseconds(0)));
}

TEST(Receiver, WaitForCountWakesOnArrival) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  std::thread client([&] { Post(receiver.Url()); });
  EXPECT_TRUE(receiver.WaitForCount(1, milliseconds(5000)));
  client.join();
}

TEST(Receiver, StartTwiceFails) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  EXPECT_EQ(receiver.Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Receiver, StopWithoutStartIsHarmless) {
  Receiver receiver;
  receiver.Stop();
  EXPECT_EQ(receiver.Count(), 0u);
}

}  // namespace
}  // namespace rio::testkit
