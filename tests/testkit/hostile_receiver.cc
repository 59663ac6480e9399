// HostileReceiver: an accept thread plus one thread per connection, with the
// same lifecycle as Receiver's (receiver.cc): AcceptLoop registers a
// connection in `connections_`; its thread reads requests and answers each in
// the chosen bad way until the behaviour ends the connection, the peer
// closes, or Stop() shuts the socket down; the thread then marks itself done
// and closes its fd, to be joined by AcceptLoop or by Stop().
//
// Every blocking call is cut short by Stop(): send() and recv() by the
// shutdown of the socket, waits by the stop eventfd they poll.
#include "tests/testkit/hostile_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace rio::testkit {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 16 * 1024 * 1024;
// What kHugeBody and kEndlessChunked send, a block at a time.
constexpr size_t kFillBlockBytes = 64 * 1024;
// Interim responses per send() for kEndless1xx.
constexpr int kInterimPerSend = 64;

// The answers' fixed bytes. The unit test spells them out again.
constexpr absl::string_view kInvalidUtf8Response =
    "HTTP/1.1 200 OK\r\n"
    "X-Name: caf\xe9\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 8\r\n"
    "\r\n"
    "\xff\xfe ok \xc3\x28";
constexpr absl::string_view kGarbageResponse =
    "GARBAGE\x01\x02 not http\r\n\r\n";
constexpr absl::string_view kSlowlorisResponse =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
constexpr absl::string_view kResetResponse =
    "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";

std::string ErrnoMessage(absl::string_view what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

const std::string& FillBlock() {
  static const std::string* const block = new std::string(kFillBlockBytes, 'x');
  return *block;
}

// False when the peer closed or the socket was shut down.
bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool ReadMore(int fd, std::string* buffer) {
  char chunk[16 * 1024];
  while (true) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

std::string ManyHeadersResponse(int count) {
  std::string out = "HTTP/1.1 200 OK\r\n";
  out.reserve(out.size() + static_cast<size_t>(count) * 14 + 32);
  for (int i = 0; i < count; ++i) absl::StrAppend(&out, "X-H", i, ": v\r\n");
  absl::StrAppend(&out, "Content-Length: 2\r\n\r\nok");
  return out;
}

std::string InterimResponse(int status) {
  return absl::StrCat("HTTP/1.1 ", status, " ",
                      status == 102 ? "Processing" : "Continue", "\r\n\r\n");
}

}  // namespace

absl::string_view HostileBehaviourName(HostileBehaviour behaviour) {
  switch (behaviour) {
    case HostileBehaviour::kInvalidUtf8:
      return "InvalidUtf8";
    case HostileBehaviour::kHugeBody:
      return "HugeBody";
    case HostileBehaviour::kEndlessChunked:
      return "EndlessChunked";
    case HostileBehaviour::kManyHeaders:
      return "ManyHeaders";
    case HostileBehaviour::kGarbageStatus:
      return "GarbageStatus";
    case HostileBehaviour::kSlowloris:
      return "Slowloris";
    case HostileBehaviour::kResetMidResponse:
      return "ResetMidResponse";
    case HostileBehaviour::kNeverAnswer:
      return "NeverAnswer";
    case HostileBehaviour::kEndless1xx:
      return "Endless1xx";
    case HostileBehaviour::kRedirectLoop:
      return "RedirectLoop";
  }
  return "Unknown";
}

HostileReceiver::HostileReceiver(HostileBehaviour behaviour,
                                 HostileOptions options)
    : behaviour_(behaviour), options_(options) {}

HostileReceiver::~HostileReceiver() { Stop(); }

absl::Status HostileReceiver::Start() {
  if (listen_fd_ >= 0) {
    return absl::FailedPreconditionError(
        "the hostile receiver is already started");
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(ErrnoMessage("socket"));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, SOMAXCONN) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string message = ErrnoMessage("listen on 127.0.0.1:0");
    close(fd);
    return absl::InternalError(message);
  }
  const int stop = eventfd(0, EFD_CLOEXEC);
  if (stop < 0) {
    const std::string message = ErrnoMessage("eventfd");
    close(fd);
    return absl::InternalError(message);
  }
  listen_fd_ = fd;
  stop_fd_ = stop;
  port_ = ntohs(address.sin_port);
  switch (behaviour_) {
    case HostileBehaviour::kInvalidUtf8:
      canned_ = std::string(kInvalidUtf8Response);
      break;
    case HostileBehaviour::kManyHeaders:
      canned_ = ManyHeadersResponse(options_.many_headers);
      break;
    case HostileBehaviour::kRedirectLoop:
      canned_ = absl::StrCat("HTTP/1.1 302 Found\r\nLocation: ", Url(),
                             "\r\nContent-Length: 0\r\n\r\n");
      break;
    default:
      break;
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void HostileReceiver::Stop() {
  if (listen_fd_ < 0) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, connection] : connections_) {
      if (connection.fd >= 0) shutdown(connection.fd, SHUT_RDWR);
    }
  }
  const uint64_t one = 1;
  const ssize_t ignored = write(stop_fd_, &one, sizeof(one));
  (void)ignored;
  accept_thread_.join();
  // AcceptLoop has returned: no connection can be added any more.
  std::map<int, Connection> connections;
  {
    absl::MutexLock lock(&mu_);
    connections.swap(connections_);
  }
  for (auto& [id, connection] : connections) connection.thread.join();
  close(listen_fd_);
  close(stop_fd_);
  listen_fd_ = -1;
  stop_fd_ = -1;
}

std::string HostileReceiver::Url(absl::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", port_, path);
}

int HostileReceiver::RequestCount() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int HostileReceiver::ConnectionCount() const {
  absl::MutexLock lock(&mu_);
  return connections_accepted_;
}

bool HostileReceiver::WaitForRequests(int n,
                                      std::chrono::milliseconds timeout) const {
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_ >= n;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&reached),
                              absl::FromChrono(timeout));
}

void HostileReceiver::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // E.g. the client gave up already.
    // Slowloris bytes and short answers leave at once.
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    JoinFinishedConnections();
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    ++connections_accepted_;
    const int id = next_connection_id_++;
    Connection& connection = connections_[id];
    connection.fd = fd;
    // The thread takes mu_ before touching `connections_`, so it is safe to
    // start it while holding the lock.
    connection.thread = std::thread([this, id, fd] { Serve(id, fd); });
  }
}

void HostileReceiver::JoinFinishedConnections() {
  std::vector<std::thread> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->second.done) {
        finished.push_back(std::move(it->second.thread));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::thread& thread : finished) thread.join();
}

void HostileReceiver::Serve(int id, int fd) {
  std::string buffer;
  while (ReadRequest(fd, &buffer)) {
    {
      absl::MutexLock lock(&mu_);
      ++requests_;
    }
    if (!Answer(fd)) break;
  }
  absl::MutexLock lock(&mu_);
  auto it = connections_.find(id);
  if (it != connections_.end()) {
    it->second.fd = -1;
    it->second.done = true;
  }
  close(fd);
}

bool HostileReceiver::Answer(int fd) {
  switch (behaviour_) {
    case HostileBehaviour::kInvalidUtf8:
    case HostileBehaviour::kManyHeaders:
    case HostileBehaviour::kRedirectLoop:
      return WriteAll(fd, canned_);

    case HostileBehaviour::kHugeBody: {
      if (!WriteAll(fd,
                    absl::StrCat("HTTP/1.1 200 OK\r\n"
                                 "Content-Type: application/octet-stream\r\n"
                                 "Content-Length: ",
                                 options_.huge_body_bytes, "\r\n\r\n"))) {
        return false;
      }
      for (size_t left = options_.huge_body_bytes; left > 0;) {
        const size_t n = std::min(left, FillBlock().size());
        if (!WriteAll(fd, absl::string_view(FillBlock()).substr(0, n))) {
          return false;
        }
        left -= n;
      }
      return true;
    }

    case HostileBehaviour::kEndlessChunked: {
      const size_t size = std::max<size_t>(
          1, std::min(options_.chunk_bytes, FillBlock().size()));
      const std::string chunk =
          absl::StrCat(absl::StrFormat("%x", size), "\r\n",
                       absl::string_view(FillBlock()).substr(0, size), "\r\n");
      if (!WriteAll(fd,
                    "HTTP/1.1 200 OK\r\n"
                    "Content-Type: text/plain\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n")) {
        return false;
      }
      while (WriteAll(fd, chunk)) {
      }
      return false;
    }

    case HostileBehaviour::kGarbageStatus:
      WriteAll(fd, kGarbageResponse);
      shutdown(fd, SHUT_WR);
      return false;

    case HostileBehaviour::kSlowloris:
      for (size_t i = 0; i < kSlowlorisResponse.size(); ++i) {
        if (i > 0 &&
            WaitOn(fd, options_.slowloris_interval) != Wait::kElapsed) {
          return false;
        }
        if (!WriteAll(fd, kSlowlorisResponse.substr(i, 1))) return false;
      }
      return false;

    case HostileBehaviour::kResetMidResponse: {
      WriteAll(fd, kResetResponse);
      // close() then sends a RST instead of a FIN.
      const linger abort_on_close = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close,
                 sizeof(abort_on_close));
      return false;
    }

    case HostileBehaviour::kNeverAnswer:
      WaitOn(fd, milliseconds(-1));
      return false;

    case HostileBehaviour::kEndless1xx: {
      const std::string interim = InterimResponse(options_.interim_status);
      std::string burst;
      for (int i = 0; i < kInterimPerSend; ++i) burst += interim;
      while (WriteAll(fd, burst)) {
      }
      return false;
    }
  }
  return false;
}

bool HostileReceiver::ReadRequest(int fd, std::string* buffer) {
  size_t head_end;
  while ((head_end = buffer->find("\r\n\r\n")) == std::string::npos) {
    if (buffer->size() > kMaxHeadBytes || !ReadMore(fd, buffer)) return false;
  }
  const std::string head = buffer->substr(0, head_end);
  buffer->erase(0, head_end + 4);
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  if (lines.empty() || !absl::StrContains(lines[0], " HTTP/1.")) return false;
  uint64_t length = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return false;
    if (absl::EqualsIgnoreCase(
            absl::StripAsciiWhitespace(line.substr(0, colon)),
            "content-length") &&
        (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(colon + 1)),
                           &length) ||
         length > kMaxBodyBytes)) {
      return false;
    }
  }
  while (buffer->size() < length) {
    if (!ReadMore(fd, buffer)) return false;
  }
  buffer->erase(0, length);
  return true;
}

HostileReceiver::Wait HostileReceiver::WaitOn(
    int fd, std::chrono::milliseconds timeout) const {
  const bool forever = timeout.count() < 0;
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    int wait_ms = -1;
    if (!forever) {
      // Rounded up, so that the wait is never cut short.
      const auto left =
          std::chrono::ceil<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Wait::kElapsed;
      wait_ms = static_cast<int>(left.count());
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int ready = poll(fds, 2, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return Wait::kPeerClosed;
    }
    if (fds[1].revents != 0) return Wait::kStopped;
    if (ready == 0) return Wait::kElapsed;
    char discard[4096];
    const ssize_t n = recv(fd, discard, sizeof(discard), MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN))) continue;
    return Wait::kPeerClosed;
  }
}

}  // namespace rio::testkit
