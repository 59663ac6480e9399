#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

namespace rio::http {
namespace {

constexpr size_t kMaxBody = 8 * 1024 * 1024;

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlHeaders = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::string content_type;
  // Final response's headers, names lower-cased.
  std::map<std::string, std::string> headers;
  long num_connects = -1;
};

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t CollectHeader(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  const absl::string_view line(data, size * count);
  // A new status line (after "100 Continue") starts a new header block.
  if (absl::StartsWith(line, "HTTP/")) headers->clear();
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    (*headers)[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

// Performs one request on `curl` (reusing its connection cache). `body` is
// sent as a POST when set.
Reply Perform(CURL* curl, const std::string& url,
              const std::string* body = nullptr,
              const std::vector<std::string>& extra_headers = {}) {
  Reply reply;
  CurlHeaders headers;
  for (const std::string& header : extra_headers) {
    headers.reset(curl_slist_append(headers.release(), header.c_str()));
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  if (body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body->size()));
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }
  reply.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &reply.num_connects);
  const char* content_type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type);
  if (content_type != nullptr) reply.content_type = content_type;
  // The slist dies with this frame; curl must not keep pointing at it.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  return reply;
}

Reply Get(const std::string& url) {
  CurlHandle curl(curl_easy_init());
  return Perform(curl.get(), url);
}

Response TextResponse(std::string body) {
  Response response;
  response.body = std::move(body);
  return response;
}

// Polls `condition` until it holds or 10 s pass.
bool WaitUntil(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

// Connects a plain blocking socket to "127.0.0.1:port"; -1 on failure.
int ConnectRaw(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return -1;
  }
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval timeout{};
  timeout.tv_sec = 10;  // A hung server fails the test instead of hanging it.
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until the server closes the connection (or the receive timeout).
std::string ReadUntilClosed(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) out.append(buffer, n);
  return out;
}

// Sends `request` on a fresh raw connection and returns everything the server
// wrote before closing.
std::string RawExchange(const std::string& address, absl::string_view request) {
  const int fd = ConnectRaw(address);
  if (fd < 0) return "<connect failed>";
  std::string response;
  if (SendAll(fd, request)) response = ReadUntilClosed(fd);
  close(fd);
  return response;
}

// Lets a test route take bodies up to the server's own cap.
RouteOptions LargeBodies() {
  RouteOptions options;
  options.max_body_bytes = kMaxBody;
  return options;
}

// A running server with a few routes, on an ephemeral loopback port.
class ServerFixture {
 public:
  ServerFixture() {
    server_.Route("/healthz", [](const Request&) {
      Response response = TextResponse("ok\n");
      response.headers["X-Rio-Test"] = "yes";
      return response;
    });
    server_.Route(
        "/echo",
        [](const Request& request) {
          Response response;
          auto it = request.headers.find("content-type");
          if (it != request.headers.end()) response.content_type = it->second;
          response.body = request.body;
          return response;
        },
        LargeBodies());
    server_.Route(
        "/size",
        [](const Request& request) {
          return TextResponse(absl::StrCat(request.body.size()));
        },
        LargeBodies());
    server_.Route("/inspect", [this](const Request& request) {
      absl::MutexLock lock(&mu_);
      last_request_ = request;
      return TextResponse("seen");
    });
  }

  HttpServer& server() { return server_; }

  std::string Start() {
    absl::StatusOr<std::string> address = server_.Start("127.0.0.1:0");
    EXPECT_TRUE(address.ok()) << address.status();
    address_ = address.value_or("");
    return address_;
  }

  std::string Url(absl::string_view path) const {
    return absl::StrCat("http://", address_, path);
  }

  Request last_request() {
    absl::MutexLock lock(&mu_);
    return last_request_;
  }

 private:
  absl::Mutex mu_;
  Request last_request_ ABSL_GUARDED_BY(mu_);
  std::string address_;
  // Last, so it stops (joining the thread that calls the handlers above)
  // before the state they use is destroyed.
  HttpServer server_;
};

TEST(HttpServer, StartReturnsBoundLoopbackAddress) {
  HttpServer server;
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_TRUE(absl::StartsWith(*address, "127.0.0.1:")) << *address;
  EXPECT_NE(*address, "127.0.0.1:0");
}

TEST(HttpServer, StartAcceptsLocalhost) {
  HttpServer server;
  absl::StatusOr<std::string> address = server.Start("localhost:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_TRUE(absl::StartsWith(*address, "127.0.0.1:")) << *address;
}

TEST(HttpServer, StartRejectsMalformedAddresses) {
  for (const char* address :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:65536",
        "127.0.0.1:-1", "example.com:80", "::1:80", "1.2.3:80"}) {
    HttpServer server;
    absl::StatusOr<std::string> result = server.Start(address);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
        << address;
    if (!result.ok()) {
      EXPECT_TRUE(absl::StrContains(result.status().message(),
                                    absl::StrCat("\"", address, "\"")))
          << result.status();
    }
  }
}

TEST(HttpServer, StartFailsWhenPortIsTaken) {
  HttpServer first;
  absl::StatusOr<std::string> address = first.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  HttpServer second;
  absl::StatusOr<std::string> result = second.Start(*address);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(absl::StrContains(result.status().message(), *address))
      << result.status();
}

TEST(HttpServer, StartTwiceFailsPrecondition) {
  HttpServer server;
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  EXPECT_EQ(server.Start("127.0.0.1:0").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(HttpServer, GetExactRouteReturnsHandlerResponse) {
  ServerFixture fixture;
  fixture.Start();
  const Reply reply = Get(fixture.Url("/healthz"));
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "ok\n");
  EXPECT_EQ(reply.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(reply.headers.at("content-length"), "3");
  EXPECT_EQ(reply.headers.at("x-rio-test"), "yes");
}

TEST(HttpServer, HandlerSeesMethodPathQueryAndLowerCasedHeaders) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  CurlHandle curl(curl_easy_init());
  const Reply reply = Perform(curl.get(), fixture.Url("/inspect?a=1&b=%20"),
                              nullptr, {"X-Custom-Header:  Value  "});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.body, "seen");
  const Request request = fixture.last_request();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.path, "/inspect");
  EXPECT_EQ(request.query, "a=1&b=%20");
  EXPECT_EQ(request.headers.at("x-custom-header"), "Value");
  EXPECT_EQ(request.headers.at("host"), address);
  EXPECT_EQ(request.body, "");
}

TEST(HttpServer, PrefixRoutesPickLongestPrefixAndExactWins) {
  HttpServer server;
  server.RoutePrefix("/api/", [](const Request& request) {
    return TextResponse("api:" + request.path);
  });
  server.RoutePrefix("/api/v1/", [](const Request& request) {
    return TextResponse("v1:" + request.path);
  });
  server.Route("/api/v1/exact",
               [](const Request&) { return TextResponse("exact"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string base = "http://" + *address;

  EXPECT_EQ(Get(base + "/api/x").body, "api:/api/x");
  EXPECT_EQ(Get(base + "/api/").body, "api:/api/");
  EXPECT_EQ(Get(base + "/api/v1/y?q=1").body, "v1:/api/v1/y");
  EXPECT_EQ(Get(base + "/api/v1/exact").body, "exact");
  EXPECT_EQ(Get(base + "/api/v1/exact/more").body, "v1:/api/v1/exact/more");
  const Reply miss = Get(base + "/api");
  EXPECT_EQ(miss.status, 404);
}

TEST(HttpServer, UnknownPathReturns404WithTextBody) {
  ServerFixture fixture;
  fixture.Start();
  const Reply reply = Get(fixture.Url("/nope"));
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(reply.body, "404 Not Found\n");
  EXPECT_EQ(reply.content_type, "text/plain; charset=utf-8");
}

TEST(HttpServer, PostBodyIsEchoed) {
  ServerFixture fixture;
  fixture.Start();
  CurlHandle curl(curl_easy_init());
  const std::string body("{\"a\": 1, \"bin\": \"\0\xff\"}", 22);
  const Reply reply = Perform(curl.get(), fixture.Url("/echo"), &body,
                              {"Content-Type: application/json"});
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, body);
  EXPECT_EQ(reply.content_type, "application/json");
}

TEST(HttpServer, LargePostBodyIsEchoedWithAndWithoutExpectContinue) {
  ServerFixture fixture;
  fixture.Start();
  std::string body(3 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i % 251);
  CurlHandle curl(curl_easy_init());
  const Reply expecting = Perform(curl.get(), fixture.Url("/echo"), &body,
                                  {"Expect: 100-continue"});
  ASSERT_EQ(expecting.code, CURLE_OK) << curl_easy_strerror(expecting.code);
  EXPECT_EQ(expecting.status, 200);
  EXPECT_TRUE(expecting.body == body) << expecting.body.size();
  const Reply direct =
      Perform(curl.get(), fixture.Url("/echo"), &body, {"Expect:"});
  ASSERT_EQ(direct.code, CURLE_OK) << curl_easy_strerror(direct.code);
  EXPECT_EQ(direct.status, 200);
  EXPECT_TRUE(direct.body == body) << direct.body.size();
}

TEST(HttpServer, KeepAliveReusesOneConnection) {
  ServerFixture fixture;
  fixture.Start();
  CurlHandle curl(curl_easy_init());
  const Reply first = Perform(curl.get(), fixture.Url("/healthz"));
  ASSERT_EQ(first.code, CURLE_OK) << curl_easy_strerror(first.code);
  EXPECT_EQ(first.num_connects, 1);
  const std::string body = "second";
  const Reply second = Perform(curl.get(), fixture.Url("/echo"), &body);
  ASSERT_EQ(second.code, CURLE_OK) << curl_easy_strerror(second.code);
  EXPECT_EQ(second.body, "second");
  EXPECT_EQ(second.num_connects, 0);
}

TEST(HttpServer, ConnectionCloseIsHonoured) {
  ServerFixture fixture;
  fixture.Start();
  CurlHandle curl(curl_easy_init());
  const Reply first = Perform(curl.get(), fixture.Url("/healthz"), nullptr,
                              {"Connection: close"});
  ASSERT_EQ(first.code, CURLE_OK) << curl_easy_strerror(first.code);
  EXPECT_EQ(first.headers.at("connection"), "close");
  const Reply second = Perform(curl.get(), fixture.Url("/healthz"));
  ASSERT_EQ(second.code, CURLE_OK) << curl_easy_strerror(second.code);
  EXPECT_EQ(second.num_connects, 1);
}

TEST(HttpServer, Http10ClosesUnlessKeepAliveRequested) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  const std::string response =
      RawExchange(address, "GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_TRUE(absl::StrContains(response, "\r\nConnection: close\r\n"))
      << response;
  EXPECT_TRUE(absl::EndsWith(response, "\r\n\r\nok\n")) << response;
}

TEST(HttpServer, BodyAtLimitIsAccepted) {
  ServerFixture fixture;
  fixture.Start();
  CurlHandle curl(curl_easy_init());
  const std::string body(kMaxBody, 'x');
  const Reply reply = Perform(curl.get(), fixture.Url("/size"), &body);
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, absl::StrCat(kMaxBody));
}

TEST(HttpServer, OversizedBodyGets413) {
  ServerFixture fixture;
  fixture.Start();
  const std::string body(kMaxBody + 1, 'x');
  // With "Expect: 100-continue" (curl's default for large bodies) the body is
  // never sent; without it the server must answer while the client is still
  // uploading, and the answer must survive the close.
  for (const char* expect : {"Expect: 100-continue", "Expect:"}) {
    CurlHandle curl(curl_easy_init());
    const Reply reply =
        Perform(curl.get(), fixture.Url("/size"), &body, {expect});
    ASSERT_EQ(reply.code, CURLE_OK)
        << expect << ": " << curl_easy_strerror(reply.code);
    EXPECT_EQ(reply.status, 413) << expect;
    EXPECT_EQ(reply.body, "413 Content Too Large\n") << expect;
    EXPECT_EQ(reply.headers.at("connection"), "close") << expect;
  }
}

// A route's own body cap is checked on the head: the body is never read.
TEST(HttpServer, RouteBodyLimitAnswers413BeforeTheBody) {
  HttpServer server;
  RouteOptions small;
  small.max_body_bytes = 10;
  server.Route(
      "/small",
      [](const Request& request) {
        return TextResponse(absl::StrCat(request.body.size()));
      },
      small);
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_TRUE(absl::StartsWith(
      RawExchange(*address,
                  "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  "11\r\n\r\n"),
      "HTTP/1.1 413 Content Too Large\r\n"));
  EXPECT_TRUE(absl::EndsWith(
      RawExchange(*address,
                  "POST /small HTTP/1.1\r\nHost: x\r\nConnection: "
                  "close\r\nContent-Length: 10\r\n\r\n0123456789"),
      "\r\n\r\n10"));
}

// An unauthenticated client is answered on its head alone: the server never
// waits for (or buffers) the 5 MB body it announced.
TEST(HttpServer, HeadCheckAnswersBeforeTheBody) {
  HttpServer server;
  RouteOptions guarded = LargeBodies();
  guarded.check_head = [](const Request& head) -> std::optional<Response> {
    auto it = head.headers.find("authorization");
    if (it != head.headers.end() && it->second == "Bearer yes") {
      return std::nullopt;
    }
    Response refusal = TextResponse("who are you?\n");
    refusal.status = 401;
    return refusal;
  };
  server.Route(
      "/guarded",
      [](const Request& request) {
        return TextResponse(absl::StrCat(request.body.size()));
      },
      guarded);
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string refused = RawExchange(
      *address,
      "POST /guarded HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(refused, "HTTP/1.1 401 Unauthorized\r\n"))
      << refused;
  EXPECT_TRUE(absl::StrContains(refused, "Connection: close\r\n")) << refused;
  EXPECT_TRUE(absl::EndsWith(refused, "who are you?\n")) << refused;
  EXPECT_TRUE(absl::EndsWith(
      RawExchange(*address,
                  "POST /guarded HTTP/1.1\r\nHost: x\r\nAuthorization: "
                  "Bearer yes\r\nConnection: close\r\nContent-Length: "
                  "3\r\n\r\nabc"),
      "\r\n\r\n3"));
}

// One client cannot take every connection: past its share, a new connection
// is closed at once while the ones it has keep working.
TEST(HttpServer, ConnectionsPerClientAreCapped) {
  HttpServer::Options options;
  options.max_connections_per_client = 2;
  HttpServer server(options);
  server.Route("/healthz", [](const Request&) { return TextResponse("ok"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const int first = ConnectRaw(*address);
  const int second = ConnectRaw(*address);
  const int third = ConnectRaw(*address);
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  ASSERT_GE(third, 0);
  // The third is accepted by the kernel, then closed by the server.
  char byte;
  EXPECT_EQ(recv(third, &byte, 1, 0), 0);
  for (int fd : {first, second}) {
    ASSERT_TRUE(SendAll(
        fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    EXPECT_TRUE(absl::EndsWith(ReadUntilClosed(fd), "\r\n\r\nok"));
  }
  close(first);
  close(second);
  close(third);
  // Their slots are free again once they are gone.
  EXPECT_TRUE(WaitUntil([&] {
    return absl::EndsWith(
        RawExchange(*address,
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: "
                    "close\r\n\r\n"),
        "\r\n\r\nok");
  }));
}

TEST(HttpServer, StopRefusesNewConnectionsAndIsIdempotent) {
  ServerFixture fixture;
  fixture.Start();
  CurlHandle curl(curl_easy_init());
  // Leaves an idle keep-alive connection open across Stop().
  ASSERT_EQ(Perform(curl.get(), fixture.Url("/healthz")).status, 200);
  fixture.server().Stop();
  fixture.server().Stop();
  const Reply reused = Perform(curl.get(), fixture.Url("/healthz"));
  EXPECT_EQ(reused.code, CURLE_COULDNT_CONNECT)
      << curl_easy_strerror(reused.code);
  const Reply fresh = Get(fixture.Url("/healthz"));
  EXPECT_EQ(fresh.code, CURLE_COULDNT_CONNECT)
      << curl_easy_strerror(fresh.code);
}

TEST(HttpServer, CanRestartAfterStop) {
  ServerFixture fixture;
  fixture.Start();
  fixture.server().Stop();
  fixture.Start();
  EXPECT_EQ(Get(fixture.Url("/healthz")).body, "ok\n");
}

TEST(HttpServer, MalformedRequestsGet400AndClose) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  for (const char* request : {
           "NONSENSE\r\n\r\n",
           "GET /healthz\r\n\r\n",
           "GET /healthz HTTP/1.1 extra\r\n\r\n",
           "GET  /healthz HTTP/1.1\r\n\r\n",
           "GET healthz HTTP/1.1\r\n\r\n",
           "GET /health\x01z HTTP/1.1\r\n\r\n",
           "G(T /healthz HTTP/1.1\r\n\r\n",
           "GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
           "GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n",
           "GET /healthz HTTP/1.1\r\nName : x\r\n\r\n",
           "GET /healthz HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
           "GET /healthz FTP/1.1\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n"
           "Content-Length: 2\r\n\r\nab",
           "POST /echo HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab",
           // Request smuggling: framing that a proxy in front may read
           // differently.
           "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
           "Content-Length: 5\r\n\r\n0\r\n\r\n",
           "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n 0\r\n\r\n"
           "0123456789",
           "POST /echo HTTP/1.1\r\nContent-Length:\r\n\t5\r\n\r\nhello",
           "GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n",
       }) {
    const std::string response = RawExchange(address, request);
    EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 400 Bad Request\r\n"))
        << request << "\n=> " << response;
    EXPECT_TRUE(absl::StrContains(response, "\r\nConnection: close\r\n"))
        << response;
    EXPECT_TRUE(absl::StrContains(response, "\r\nContent-Length: "))
        << response;
    EXPECT_TRUE(absl::StrContains(response, "\r\nContent-Type: ")) << response;
  }
}

TEST(HttpServer, OtherHeadErrorsGetSpecificStatus) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  EXPECT_TRUE(absl::StartsWith(
      RawExchange(address, "GET /healthz HTTP/2.0\r\n\r\n"), "HTTP/1.1 505 "));
  EXPECT_TRUE(absl::StartsWith(
      RawExchange(address,
                  "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n0\r\n\r\n"),
      "HTTP/1.1 411 "));
  EXPECT_TRUE(absl::StartsWith(
      RawExchange(address,
                  "POST /echo HTTP/1.1\r\nExpect: something\r\n"
                  "Content-Length: 1\r\n\r\nx"),
      "HTTP/1.1 417 "));
  EXPECT_TRUE(absl::StartsWith(
      RawExchange(address,
                  "POST /echo HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"),
      "HTTP/1.1 413 "));
  // Beyond 64 bits a length is no number at all.
  EXPECT_TRUE(
      absl::StartsWith(RawExchange(address,
                                   "POST /echo HTTP/1.1\r\nContent-Length: "
                                   "99999999999999999999999\r\n\r\n"),
                       "HTTP/1.1 400 "));
}

TEST(HttpServer, OversizedHeadersGet431) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  const std::string request =
      "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(70 * 1024, 'a') +
      "\r\n\r\n";
  const std::string response = RawExchange(address, request);
  EXPECT_TRUE(absl::StartsWith(
      response, "HTTP/1.1 431 Request Header Fields Too Large\r\n"))
      << response.substr(0, 200);

  // A head that never ends is cut off at the cap too.
  const std::string endless =
      "GET /healthz HTTP/1.1\r\n" + std::string(100 * 1024, 'a');
  EXPECT_TRUE(absl::StartsWith(RawExchange(address, endless), "HTTP/1.1 431 "));
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  const std::string response = RawExchange(
      address,
      "\r\nPOST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nfirst"
      "GET /healthz HTTP/1.1\r\n\r\n"
      "POST /echo HTTP/1.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
      "last");
  const size_t first = response.find("\r\n\r\nfirst");
  const size_t second = response.find("\r\n\r\nok\n");
  const size_t third = response.find("\r\n\r\nlast");
  ASSERT_NE(first, std::string::npos) << response;
  ASSERT_NE(second, std::string::npos) << response;
  ASSERT_NE(third, std::string::npos) << response;
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);
  EXPECT_TRUE(absl::EndsWith(response, "last"));
}

TEST(HttpServer, StalledClientDoesNotBlockOthers) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  // One client sends half a head, another half a body; neither finishes.
  const int stalled_head = ConnectRaw(address);
  ASSERT_GE(stalled_head, 0);
  ASSERT_TRUE(SendAll(stalled_head, "GET /healthz HTTP/1.1\r\nHo"));
  const int stalled_body = ConnectRaw(address);
  ASSERT_GE(stalled_body, 0);
  ASSERT_TRUE(SendAll(stalled_body,
                      "POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nab"));
  const Reply reply = Get(fixture.Url("/healthz"));
  EXPECT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.body, "ok\n");
  close(stalled_head);
  close(stalled_body);
}

TEST(HttpServer, ServerControlsFramingHeaders) {
  HttpServer server;
  server.Route("/framing", [](const Request&) {
    Response response = TextResponse("abc");
    response.headers["Content-Length"] = "999";
    response.headers["Connection"] = "close";
    response.headers["content-type"] = "application/json";
    response.headers["X-Injected"] = "a\r\nSet-Cookie: evil=1";
    return response;
  });
  server.Route("/empty", [](const Request&) {
    Response response;
    response.status = 204;
    response.body = "ignored";
    return response;
  });
  server.Route("/bad-status", [](const Request&) {
    Response response;
    response.status = 42;
    return response;
  });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string base = "http://" + *address;

  CurlHandle curl(curl_easy_init());
  const Reply framing = Perform(curl.get(), base + "/framing");
  ASSERT_EQ(framing.code, CURLE_OK) << curl_easy_strerror(framing.code);
  EXPECT_EQ(framing.body, "abc");
  EXPECT_EQ(framing.headers.at("content-length"), "3");
  EXPECT_EQ(framing.content_type, "application/json");
  EXPECT_EQ(framing.headers.count("connection"), 0u);
  EXPECT_EQ(framing.headers.count("x-injected"), 0u);
  EXPECT_EQ(framing.headers.count("set-cookie"), 0u);

  const Reply empty = Perform(curl.get(), base + "/empty");
  ASSERT_EQ(empty.code, CURLE_OK) << curl_easy_strerror(empty.code);
  EXPECT_EQ(empty.status, 204);
  EXPECT_EQ(empty.body, "");
  EXPECT_EQ(empty.num_connects, 0);  // Still framed correctly.

  const Reply bad = Perform(curl.get(), base + "/bad-status");
  ASSERT_EQ(bad.code, CURLE_OK) << curl_easy_strerror(bad.code);
  EXPECT_EQ(bad.status, 500);
}

TEST(HttpServer, AsyncHandlerAnswersFromAnotherThreadWhileOthersAreServed) {
  HttpServer server;
  absl::Notification release;
  std::vector<std::thread> workers;
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  server.RoutePrefixAsync(
      "/slow/", [&](const Request& request, Responder respond) {
        workers.emplace_back([&release, respond, path = request.path] {
          release.WaitForNotification();
          Response response = TextResponse(absl::StrCat("done ", path));
          response.status = 201;
          respond(response);
          respond(TextResponse("ignored"));  // the first answer wins
        });
      });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string base = "http://" + *address;

  Reply slow;
  std::thread client([&] {
    CurlHandle curl(curl_easy_init());
    slow = Perform(curl.get(), base + "/slow/x");
  });
  // The waiting request does not hold up others.
  for (int i = 0; i < 3; ++i) {
    const Reply health = Get(base + "/healthz");
    ASSERT_EQ(health.code, CURLE_OK) << curl_easy_strerror(health.code);
    EXPECT_EQ(health.body, "ok\n");
  }
  EXPECT_EQ(slow.status, 0);  // still waiting
  release.Notify();
  client.join();
  ASSERT_EQ(slow.code, CURLE_OK) << curl_easy_strerror(slow.code);
  EXPECT_EQ(slow.status, 201);
  EXPECT_EQ(slow.body, "done /slow/x");
  server.Stop();
  for (auto& worker : workers) worker.join();
}

TEST(HttpServer, AsyncAnswerAfterStopIsDropped) {
  HttpServer server;
  Responder kept;
  absl::Notification got_request;
  server.RoutePrefixAsync("/", [&](const Request&, Responder respond) {
    kept = respond;
    got_request.Notify();
  });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  std::thread client([&] {
    CurlHandle curl(curl_easy_init());
    Perform(curl.get(), "http://" + *address + "/x");
  });
  got_request.WaitForNotification();
  server.Stop();  // closes the waiting connection
  client.join();
  kept(TextResponse("late"));  // must not crash or write to a closed fd
}

TEST(HttpServer, HeadRequestGetsLengthWithoutBody) {
  ServerFixture fixture;
  const std::string address = fixture.Start();
  // Pipelined after the HEAD: if the HEAD's answer carried a body, the GET's
  // answer would not start where it does.
  const std::string response = RawExchange(
      address,
      "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const size_t second = response.find("HTTP/1.1 200 OK\r\n", 1);
  ASSERT_NE(second, std::string::npos) << response;
  const std::string head = response.substr(0, second);
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_TRUE(absl::StrContains(head, "\r\nContent-Length: 3\r\n")) << head;
  EXPECT_TRUE(absl::EndsWith(head, "\r\n\r\n")) << head;
  EXPECT_TRUE(absl::EndsWith(response, "\r\n\r\nok\n")) << response;
}

// Waits up to 10 s for the server to close `fd`; true if it did. Whatever
// the server sends first is appended to `*received`.
bool WaitForClose(int fd, std::string* received) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  char buffer[4096];
  while (absl::Now() < deadline) {
    pollfd entry{fd, POLLIN, 0};
    if (poll(&entry, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
    received->append(buffer, n);
  }
  return false;
}

// Sends `start`, then `more` every 50 ms until the server hangs up (or 10 s
// pass). Returns how long the server took to hang up (infinite if it did
// not), and in `*received` what it sent.
absl::Duration TrickleUntilClosed(const std::string& address,
                                  absl::string_view start,
                                  absl::string_view more,
                                  std::string* received) {
  const int fd = ConnectRaw(address);
  if (fd < 0) return absl::InfiniteDuration();
  const absl::Time begin = absl::Now();
  SendAll(fd, start);
  bool closed = false;
  while (!closed && absl::Now() - begin < absl::Seconds(10)) {
    pollfd entry{fd, POLLIN, 0};
    if (poll(&entry, 1, 50) > 0) {
      char buffer[256];
      const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) received->append(buffer, n);
      closed = n == 0 || (n < 0 && errno == ECONNRESET);
    } else {
      SendAll(fd, more);
    }
  }
  const absl::Duration elapsed = absl::Now() - begin;
  close(fd);
  return closed ? elapsed : absl::InfiniteDuration();
}

// Slowloris: a client that keeps a request coming, a little at a time, is
// cut off when the request's deadline passes, however often it sends; in
// the head and in the body alike.
TEST(HttpServer, TricklingClientIsCutOffAtTheRequestDeadline) {
  HttpServer::Options options;
  options.request_timeout = absl::Milliseconds(500);
  HttpServer server(options);
  server.Route("/healthz", [](const Request&) { return TextResponse("ok"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();

  std::string received;
  const absl::Duration head = TrickleUntilClosed(
      *address, "GET /healthz HTTP/1.1\r\n", "X-Slow: 1\r\n", &received);
  EXPECT_EQ(received, "");
  EXPECT_GE(head, absl::Milliseconds(450));
  EXPECT_LT(head, absl::Seconds(5));

  const absl::Duration body = TrickleUntilClosed(
      *address,
      "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n", "x",
      &received);
  EXPECT_EQ(received, "");
  EXPECT_GE(body, absl::Milliseconds(450));
  EXPECT_LT(body, absl::Seconds(5));
}

TEST(HttpServer, IdleConnectionIsClosedAfterIdleTimeout) {
  HttpServer::Options options;
  options.idle_timeout = absl::Milliseconds(200);
  HttpServer server(options);
  server.Route("/healthz", [](const Request&) { return TextResponse("ok"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const int fd = ConnectRaw(*address);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string received;
  EXPECT_TRUE(WaitForClose(fd, &received));
  EXPECT_TRUE(absl::StartsWith(received, "HTTP/1.1 200 OK\r\n")) << received;
  EXPECT_TRUE(absl::EndsWith(received, "\r\n\r\nok")) << received;
  close(fd);
}

TEST(HttpServer, AsyncHandlerThatNeverAnswersGets504) {
  HttpServer::Options options;
  options.handler_timeout = absl::Milliseconds(200);
  HttpServer server(options);
  std::vector<Responder> kept;  // Never called; touched on the server thread.
  server.RoutePrefixAsync("/stuck/", [&](const Request&, Responder respond) {
    kept.push_back(std::move(respond));
  });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const Reply reply = Get("http://" + *address + "/stuck/x");
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 504);
  EXPECT_EQ(reply.body, "504 Gateway Timeout\n");
  EXPECT_EQ(reply.headers.at("connection"), "close");
  server.Stop();
}

// Past max_connections the listener stops accepting: a new client waits in
// the backlog and is served once a connection closes.
TEST(HttpServer, ConnectionsInAllAreCappedAndTheRestWait) {
  HttpServer::Options options;
  options.max_connections = 2;
  HttpServer server(options);
  server.Route("/healthz", [](const Request&) { return TextResponse("ok"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string keep_alive = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const int first = ConnectRaw(*address);
  const int second = ConnectRaw(*address);
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  char buffer[4096];
  for (int fd : {first, second}) {
    ASSERT_TRUE(SendAll(fd, keep_alive));
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    ASSERT_GT(n, 0);
    EXPECT_TRUE(absl::EndsWith(absl::string_view(buffer, n), "\r\n\r\nok"));
  }
  const int third = ConnectRaw(*address);  // completed by the kernel
  ASSERT_GE(third, 0);
  ASSERT_TRUE(SendAll(
      third, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  // A round trip on an accepted connection: the server has had its chance
  // to answer the third, and has not.
  ASSERT_TRUE(SendAll(first, keep_alive));
  ASSERT_GT(recv(first, buffer, sizeof(buffer), 0), 0);
  EXPECT_EQ(recv(third, buffer, sizeof(buffer), MSG_DONTWAIT), -1);
  close(first);
  EXPECT_TRUE(absl::EndsWith(ReadUntilClosed(third), "\r\n\r\nok"));
  close(second);
  close(third);
}

// ---------------------------------------------------------------- HTTPS

using ::rio::testkit::TestCertificates;

// The subject of the certificate the last fresh connection of `curl` saw.
std::string PeerSubject(CURL* curl) {
  curl_certinfo* info = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CERTINFO, &info);
  if (info == nullptr || info->num_of_certs < 1) return "";
  for (curl_slist* line = info->certinfo[0]; line != nullptr;
       line = line->next) {
    if (absl::StartsWith(line->data, "Subject:")) return line->data;
  }
  return "";
}

// A curl handle that trusts the test CA and records peer certificates.
CurlHandle TlsClient(const TestCertificates& pki) {
  CurlHandle curl(curl_easy_init());
  curl_easy_setopt(curl.get(), CURLOPT_CAINFO, pki.Path("ca.pem").c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CERTINFO, 1L);
  return curl;
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certificates = TestCertificates::Make();
    ASSERT_TRUE(certificates.ok()) << certificates.status();
    pki_ = *std::move(certificates);
    ASSERT_TRUE(pki_->Install("server").ok());
  }

  HttpServer::Options TlsOptions() const {
    HttpServer::Options options;
    options.tls_cert_file = pki_->Path("active.pem");
    options.tls_key_file = pki_->Path("active.key");
    return options;
  }

  std::unique_ptr<TestCertificates> pki_;
};

TEST_F(HttpsTest, ServesRoutesOverTlsWithTheConfiguredCertificate) {
  HttpServer server(TlsOptions());
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  server.Route("/echo", [](const Request& request) {
    return TextResponse(request.body);
  });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_TRUE(server.tls());
  CurlHandle curl = TlsClient(*pki_);
  const Reply reply = Perform(curl.get(), "https://" + *address + "/healthz");
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "ok\n");
  EXPECT_TRUE(absl::StrContains(PeerSubject(curl.get()), "CN = localhost"))
      << PeerSubject(curl.get());
  const std::string body = "over TLS";
  const Reply echoed =
      Perform(curl.get(), "https://" + *address + "/echo", &body);
  ASSERT_EQ(echoed.code, CURLE_OK) << curl_easy_strerror(echoed.code);
  EXPECT_EQ(echoed.body, "over TLS");
  EXPECT_EQ(echoed.num_connects, 0);
  // By name too: the certificate names localhost.
  const std::string port = address->substr(address->rfind(':') + 1);
  const Reply by_name =
      Perform(curl.get(), "https://localhost:" + port + "/healthz");
  ASSERT_EQ(by_name.code, CURLE_OK) << curl_easy_strerror(by_name.code);
  EXPECT_EQ(by_name.body, "ok\n");
}

TEST_F(HttpsTest, ClientWithoutTheCaRefusesTheCertificate) {
  HttpServer server(TlsOptions());
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const Reply reply = Get("https://" + *address + "/healthz");
  EXPECT_EQ(reply.code, CURLE_PEER_FAILED_VERIFICATION)
      << curl_easy_strerror(reply.code);
}

TEST_F(HttpsTest, PlaintextRequestIsAnswered400AndClosed) {
  HttpServer server(TlsOptions());
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string response =
      RawExchange(*address, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 400 Bad Request\r\n"))
      << response;
  EXPECT_TRUE(absl::StrContains(response, "\r\nConnection: close\r\n"))
      << response;
  EXPECT_TRUE(
      absl::EndsWith(response,
                     "\r\n\r\n400 Bad Request: this port speaks HTTPS; use "
                     "https://\n"))
      << response;
  const Reply plain = Get("http://" + *address + "/healthz");
  ASSERT_EQ(plain.code, CURLE_OK) << curl_easy_strerror(plain.code);
  EXPECT_EQ(plain.status, 400);
  // The listener is unharmed.
  CurlHandle curl = TlsClient(*pki_);
  EXPECT_EQ(Perform(curl.get(), "https://" + *address + "/healthz").body,
            "ok\n");
}

TEST_F(HttpsTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  HttpServer server(TlsOptions());
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string url = "https://" + *address + "/healthz";

  CurlHandle old_client = TlsClient(*pki_);
  const Reply before = Perform(old_client.get(), url);
  ASSERT_EQ(before.code, CURLE_OK) << curl_easy_strerror(before.code);
  EXPECT_TRUE(
      absl::StrContains(PeerSubject(old_client.get()), "CN = localhost"));

  ASSERT_TRUE(pki_->Install("server2").ok());
  ASSERT_TRUE(server.ReloadCertificate().ok());

  CurlHandle new_client = TlsClient(*pki_);
  const Reply fresh = Perform(new_client.get(), url);
  ASSERT_EQ(fresh.code, CURLE_OK) << curl_easy_strerror(fresh.code);
  EXPECT_EQ(fresh.num_connects, 1);
  EXPECT_TRUE(
      absl::StrContains(PeerSubject(new_client.get()), "CN = rio-rotated"))
      << PeerSubject(new_client.get());

  // The connection opened before the reload carries on.
  const Reply reused = Perform(old_client.get(), url);
  ASSERT_EQ(reused.code, CURLE_OK) << curl_easy_strerror(reused.code);
  EXPECT_EQ(reused.num_connects, 0);
  EXPECT_EQ(reused.body, "ok\n");
}

TEST_F(HttpsTest, FailedReloadKeepsTheCurrentCertificate) {
  HttpServer server(TlsOptions());
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();

  // A certificate without its key.
  std::filesystem::copy_file(pki_->Path("server2.pem"),
                             pki_->Path("active.pem"),
                             std::filesystem::copy_options::overwrite_existing);
  const absl::Status mismatch = server.ReloadCertificate();
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument) << mismatch;
  EXPECT_TRUE(absl::StrContains(mismatch.message(), "does not match"))
      << mismatch;
  std::ofstream(pki_->Path("active.pem")) << "not a certificate\n";
  const absl::Status garbage = server.ReloadCertificate();
  EXPECT_EQ(garbage.code(), absl::StatusCode::kInvalidArgument) << garbage;
  EXPECT_TRUE(absl::StrContains(garbage.message(), pki_->Path("active.pem")))
      << garbage;

  CurlHandle curl = TlsClient(*pki_);
  const Reply reply = Perform(curl.get(), "https://" + *address + "/healthz");
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_TRUE(absl::StrContains(PeerSubject(curl.get()), "CN = localhost"));
}

TEST_F(HttpsTest, StartRefusesMissingOrUnusableFiles) {
  HttpServer::Options no_key = TlsOptions();
  no_key.tls_key_file.clear();
  EXPECT_EQ(HttpServer(no_key).Start("127.0.0.1:0").status().code(),
            absl::StatusCode::kInvalidArgument);

  HttpServer::Options missing = TlsOptions();
  missing.tls_cert_file = pki_->Path("absent.pem");
  const absl::Status status = HttpServer(missing).Start("127.0.0.1:0").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), pki_->Path("absent.pem")))
      << status;

  HttpServer plain;
  EXPECT_EQ(plain.ReloadCertificate().code(),
            absl::StatusCode::kFailedPrecondition);
}

// /healthz answers over TLS while an API call waits on another connection.
TEST_F(HttpsTest, AsyncHandlerWaitsWhileOthersAreServed) {
  HttpServer server(TlsOptions());
  absl::Notification release;
  std::thread worker;
  server.Route("/healthz", [](const Request&) { return TextResponse("ok\n"); });
  server.RoutePrefixAsync("/slow/", [&](const Request&, Responder respond) {
    worker = std::thread([&release, respond] {
      release.WaitForNotification();
      respond(TextResponse("done"));
    });
  });
  absl::StatusOr<std::string> address = server.Start("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  const std::string base = "https://" + *address;
  Reply slow;
  std::thread client([&] {
    CurlHandle curl = TlsClient(*pki_);
    slow = Perform(curl.get(), base + "/slow/x");
  });
  for (int i = 0; i < 3; ++i) {
    CurlHandle curl = TlsClient(*pki_);
    const Reply health = Perform(curl.get(), base + "/healthz");
    ASSERT_EQ(health.code, CURLE_OK) << curl_easy_strerror(health.code);
    EXPECT_EQ(health.body, "ok\n");
  }
  EXPECT_EQ(slow.status, 0);  // still waiting
  release.Notify();
  client.join();
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.body, "done");
  server.Stop();
  worker.join();
}

}  // namespace
}  // namespace rio::http
