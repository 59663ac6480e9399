// Self-tests of HostileReceiver, read with a plain socket so that every byte
// it sends (and how the connection ends) is seen as sent.
#include "tests/testkit/hostile_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

namespace rio::testkit {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kReadTimeout(10000);

// The answers as the behaviours' comments promise them, byte for byte.
const std::string kInvalidUtf8Bytes =
    "HTTP/1.1 200 OK\r\n"
    "X-Name: caf\xe9\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 8\r\n"
    "\r\n"
    "\xff\xfe ok \xc3\x28";
const std::string kGarbageBytes = "GARBAGE\x01\x02 not http\r\n\r\n";
const std::string kSlowlorisBytes =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const std::string kResetBytes =
    "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";

// How a read ended.
enum class End { kEnough, kEof, kReset, kTimeout };

// A client connection to 127.0.0.1:port.
class Client {
 public:
  explicit Client(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&address),
                                     sizeof(address)) == 0;
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // A small POST as rio-server sends it.
  bool SendRequest() {
    const std::string request =
        "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 9\r\n\r\n"
        "{\"n\": 1}\n";
    return send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(request.size());
  }

  // Reads until `done(received)` holds, the connection ends, or the
  // timeout. `*reads` counts the recv() calls that returned data.
  End ReadUntil(const std::function<bool(const std::string&)>& done,
                milliseconds timeout = kReadTimeout, int* reads = nullptr) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done(received_)) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return End::kTimeout;
      pollfd p = {fd_, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return End::kTimeout;
      char chunk[64 * 1024];
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n > 0) {
        received_.append(chunk, static_cast<size_t>(n));
        if (reads != nullptr) ++*reads;
      } else if (n == 0) {
        return End::kEof;
      } else if (errno != EINTR) {
        return errno == ECONNRESET ? End::kReset : End::kEof;
      }
    }
    return End::kEnough;
  }
  End ReadBytes(size_t n, milliseconds timeout = kReadTimeout) {
    return ReadUntil([n](const std::string& r) { return r.size() >= n; },
                     timeout);
  }
  End ReadToEnd(milliseconds timeout = kReadTimeout, int* reads = nullptr) {
    return ReadUntil([](const std::string&) { return false; }, timeout, reads);
  }
  // Reads up to the end of the response head (the empty line).
  End ReadHead() {
    return ReadUntil(
        [](const std::string& r) { return absl::StrContains(r, "\r\n\r\n"); });
  }

  // Everything received so far; Take() also forgets it.
  const std::string& received() const { return received_; }
  std::string Take() { return std::exchange(received_, std::string()); }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

#define START_HOSTILE(receiver)                       \
  do {                                                \
    const absl::Status started_ = (receiver).Start(); \
    ASSERT_TRUE(started_.ok()) << started_;           \
  } while (false)

#define CONNECT_AND_SEND(client)         \
  do {                                   \
    ASSERT_TRUE((client).connected());   \
    ASSERT_TRUE((client).SendRequest()); \
  } while (false)

TEST(HostileReceiver, InvalidUtf8AnswersItsBytesAndKeepsTheConnection) {
  HostileReceiver receiver(HostileBehaviour::kInvalidUtf8);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  for (int i = 0; i < 2; ++i) {
    CONNECT_AND_SEND(client);
    ASSERT_EQ(client.ReadBytes(kInvalidUtf8Bytes.size()), End::kEnough);
    EXPECT_EQ(client.Take(), kInvalidUtf8Bytes);
  }
  EXPECT_EQ(receiver.RequestCount(), 2);
  EXPECT_EQ(receiver.ConnectionCount(), 1);
}

TEST(HostileReceiver, HugeBodySendsAllOfItsDeclaredLength) {
  HostileReceiver receiver(HostileBehaviour::kHugeBody);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: 10485760\r\n\r\n";
  ASSERT_EQ(client.ReadBytes(head.size() + 10 * 1024 * 1024), End::kEnough);
  const std::string received = client.Take();
  ASSERT_EQ(received.size(), head.size() + 10 * 1024 * 1024);
  EXPECT_EQ(received.substr(0, head.size()), head);
  EXPECT_EQ(received.find_first_not_of('x', head.size()), std::string::npos);
  // Nothing after the body, and the connection stays open.
  EXPECT_EQ(client.ReadToEnd(milliseconds(100)), End::kTimeout);
  EXPECT_EQ(client.received(), "");
}

TEST(HostileReceiver, EndlessChunkedSendsWellFormedChunksUntilStopped) {
  HostileOptions options;
  options.chunk_bytes = 1000;
  HostileReceiver receiver(HostileBehaviour::kEndlessChunked, options);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  const std::string chunk = "3e8\r\n" + std::string(1000, 'x') + "\r\n";
  // Far more than any socket buffer: the receiver keeps writing.
  const size_t chunks = 4000;
  ASSERT_EQ(client.ReadBytes(head.size() + chunks * chunk.size()),
            End::kEnough);
  const std::string received = client.Take();
  EXPECT_EQ(received.substr(0, head.size()), head);
  for (size_t i = 0; i < chunks; ++i) {
    ASSERT_EQ(received.substr(head.size() + i * chunk.size(), chunk.size()),
              chunk)
        << "chunk " << i;
  }
  const Clock::time_point before = Clock::now();
  receiver.Stop();
  EXPECT_LT(Clock::now() - before, milliseconds(1000));
}

TEST(HostileReceiver, ManyHeadersSendsEveryLineThenTheBody) {
  HostileReceiver receiver(HostileBehaviour::kManyHeaders);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  std::string expected = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 100000; ++i)
    absl::StrAppend(&expected, "X-H", i, ": v\r\n");
  absl::StrAppend(&expected, "Content-Length: 2\r\n\r\nok");
  ASSERT_EQ(client.ReadBytes(expected.size()), End::kEnough);
  EXPECT_TRUE(client.received() == expected)
      << "received " << client.received().size() << " bytes, expected "
      << expected.size();
  EXPECT_TRUE(absl::StrContains(client.received(), "\r\nX-H99999: v\r\n"));
}

TEST(HostileReceiver, GarbageStatusSendsNonHttpAndCloses) {
  HostileReceiver receiver(HostileBehaviour::kGarbageStatus);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  EXPECT_EQ(client.ReadToEnd(), End::kEof);
  EXPECT_EQ(client.received(), kGarbageBytes);
  EXPECT_EQ(receiver.RequestCount(), 1);
}

TEST(HostileReceiver, SlowlorisTricklesOneBytePerInterval) {
  const milliseconds interval(20);
  HostileOptions options;
  options.slowloris_interval = interval;
  HostileReceiver receiver(HostileBehaviour::kSlowloris, options);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  const Clock::time_point start = Clock::now();
  int reads = 0;
  EXPECT_EQ(client.ReadToEnd(kReadTimeout, &reads), End::kEof);
  EXPECT_EQ(client.received(), kSlowlorisBytes);
  // The first byte leaves at once, each later one after a pause.
  EXPECT_GE(Clock::now() - start,
            interval * static_cast<int>(kSlowlorisBytes.size() - 1));
  EXPECT_GT(reads, 1);
}

TEST(HostileReceiver, StopCutsSlowlorisShort) {
  HostileReceiver receiver(HostileBehaviour::kSlowloris);  // 1 byte/s.
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  ASSERT_EQ(client.ReadBytes(1), End::kEnough);
  EXPECT_EQ(client.received(), "H");
  const Clock::time_point before = Clock::now();
  receiver.Stop();
  EXPECT_LT(Clock::now() - before, milliseconds(500));
  EXPECT_EQ(client.ReadToEnd(), End::kEof);
  EXPECT_EQ(client.received(), "H");
}

TEST(HostileReceiver, ResetMidResponseSendsPartOfTheBodyThenResets) {
  HostileReceiver receiver(HostileBehaviour::kResetMidResponse);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  ASSERT_TRUE(receiver.WaitForRequests(1));
  // The reset is not a clean end: the bytes before it arrive, then the
  // connection fails.
  EXPECT_EQ(client.ReadToEnd(), End::kReset);
  EXPECT_EQ(client.received(), kResetBytes);
}

TEST(HostileReceiver, NeverAnswerSaysNothingUntilStopped) {
  HostileReceiver receiver(HostileBehaviour::kNeverAnswer);
  START_HOSTILE(receiver);
  Client client(receiver.port());
  CONNECT_AND_SEND(client);
  ASSERT_TRUE(receiver.WaitForRequests(1));
  EXPECT_EQ(client.ReadToEnd(milliseconds(200)), End::kTimeout);
  const Clock::time_point before = Clock::now();
  receiver.Stop();
  EXPECT_LT(Clock::now() - before, milliseconds(500));
  EXPECT_EQ(client.ReadToEnd(), End::kEof);
  EXPECT_EQ(client.received(), "");
  EXPECT_EQ(receiver.RequestCount(), 1);
}

TEST(HostileReceiver, Endless1xxRepeatsInterimResponses) {
  for (const auto& [status, line] :
       {std::pair<int, std::string>{100, "HTTP/1.1 100 Continue\r\n\r\n"},
        std::pair<int, std::string>{102, "HTTP/1.1 102 Processing\r\n\r\n"}}) {
    HostileOptions options;
    options.interim_status = status;
    HostileReceiver receiver(HostileBehaviour::kEndless1xx, options);
    START_HOSTILE(receiver);
    Client client(receiver.port());
    CONNECT_AND_SEND(client);
    const size_t repeats = 20000;  // More than any socket buffer holds.
    ASSERT_EQ(client.ReadBytes(repeats * line.size()), End::kEnough);
    const std::string received = client.Take();
    for (size_t i = 0; i < repeats; ++i) {
      ASSERT_EQ(received.substr(i * line.size(), line.size()), line)
          << "interim response " << i;
    }
    const Clock::time_point before = Clock::now();
    receiver.Stop();
    EXPECT_LT(Clock::now() - before, milliseconds(1000));
  }
}

TEST(HostileReceiver, RedirectLoopPointsAtItselfEveryTime) {
  HostileReceiver receiver(HostileBehaviour::kRedirectLoop);
  START_HOSTILE(receiver);
  const std::string expected = absl::StrCat(
      "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:", receiver.port(),
      "/hook\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(receiver.Url(),
            absl::StrCat("http://127.0.0.1:", receiver.port(), "/hook"));
  Client first(receiver.port());
  for (int i = 0; i < 2; ++i) {
    CONNECT_AND_SEND(first);
    ASSERT_EQ(first.ReadBytes(expected.size()), End::kEnough);
    EXPECT_EQ(first.Take(), expected);
  }
  Client second(receiver.port());
  CONNECT_AND_SEND(second);
  ASSERT_EQ(second.ReadBytes(expected.size()), End::kEnough);
  EXPECT_EQ(second.Take(), expected);
  EXPECT_EQ(receiver.RequestCount(), 3);
  EXPECT_EQ(receiver.ConnectionCount(), 2);
}

// Whatever each connection is doing (writing into a full socket buffer,
// trickling, waiting), Stop() ends it at once.
TEST(HostileReceiver, StopEndsBusyConnectionsPromptly) {
  for (HostileBehaviour behaviour : kAllHostileBehaviours) {
    SCOPED_TRACE(HostileBehaviourName(behaviour));
    HostileReceiver receiver(behaviour);
    START_HOSTILE(receiver);
    // Clients that send a request and then read nothing.
    Client a(receiver.port());
    Client b(receiver.port());
    CONNECT_AND_SEND(a);
    CONNECT_AND_SEND(b);
    ASSERT_TRUE(receiver.WaitForRequests(2));
    const Clock::time_point before = Clock::now();
    receiver.Stop();
    EXPECT_LT(Clock::now() - before, milliseconds(1000));
    EXPECT_EQ(receiver.ConnectionCount(), 2);
    EXPECT_EQ(receiver.RequestCount(), 2);
  }
}

TEST(HostileReceiver, RejectsASecondStart) {
  HostileReceiver receiver(HostileBehaviour::kNeverAnswer);
  START_HOSTILE(receiver);
  EXPECT_EQ(receiver.Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HostileReceiver, EveryBehaviourHasItsOwnName) {
  std::set<std::string> names;
  for (HostileBehaviour behaviour : kAllHostileBehaviours) {
    names.insert(std::string(HostileBehaviourName(behaviour)));
  }
  EXPECT_EQ(names.size(), std::size(kAllHostileBehaviours));
  EXPECT_EQ(HostileBehaviourName(HostileBehaviour::kEndless1xx), "Endless1xx");
}

}  // namespace
}  // namespace rio::testkit
