#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

// CONNECTION LIFECYCLE
//
// ServerLoop runs on the server thread and owns every accepted socket; the
// public methods only create the listener and wake the loop to stop it. A
// connection cycles through:
//
//   reading   POLLIN; bytes accumulate in `in` until a full head is parsed and
//             then until Content-Length body bytes are buffered. Reading stops
//             while a response is pending, which bounds both buffers and
//             answers pipelined requests strictly in order.
//   awaiting  an asynchronous handler has the request; nothing is polled but
//             errors until its Responder posts the response (through
//             Completions and the wake eventfd), or kHandlerTimeout passes
//             and the client gets 504.
//   writing   POLLOUT; `out` holds one serialized response (or an interim
//             "100 Continue"). When it drains, the connection goes back to
//             reading, or to lingering if the response said "close".
//   lingering shutdown(SHUT_WR) has sent FIN; input is read and discarded
//             until the peer closes or kLingerTimeout passes. Closing at once
//             with unread input would make the kernel send RST, which can
//             destroy the error response (e.g. 413) before the client reads it.
//
// Every state has a deadline; an expired connection is closed, so a client
// that stalls mid-request or never reads only costs one descriptor for a
// bounded time and never delays other connections.

namespace rio::http {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 64 * 1024;
// No route takes more (RouteOptions::max_body_bytes may take less).
constexpr size_t kMaxBodyBytes = 8 * 1024 * 1024;
constexpr size_t kReadChunkBytes = 64 * 1024;

constexpr Clock::duration kIdleTimeout = std::chrono::seconds(60);
constexpr Clock::duration kRequestTimeout = std::chrono::seconds(30);
constexpr Clock::duration kWriteTimeout = std::chrono::seconds(30);
constexpr Clock::duration kLingerTimeout = std::chrono::seconds(2);
constexpr Clock::duration kHandlerTimeout = std::chrono::seconds(60);
// After EMFILE/ENFILE the listener stays readable; without a pause the loop
// would spin on it.
constexpr Clock::duration kAcceptBackoff = std::chrono::milliseconds(100);

// Owns a file descriptor.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() { Reset(); }
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] void DieBecause(const char* what) {
  // No logging library at this layer; stderr is what survives an abort.
  std::fprintf(stderr, "rio: fatal: %s (errno %d)\n", what, errno);
  std::abort();
}

struct StatusReason {
  int status;
  absl::string_view reason;
};

constexpr StatusReason kReasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

// The reason phrase is optional (RFC 9112 4), so unlisted codes get none.
absl::string_view ReasonPhrase(int status) {
  for (const StatusReason& entry : kReasons) {
    if (entry.status == status) return entry.reason;
  }
  return "";
}

// RFC 9110 5.6.2 token characters.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
         absl::string_view::npos;
}

bool IsToken(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), IsTokenChar);
}

// Field values may hold visible ASCII, obs-text and inner SP/HTAB.
bool IsFieldValue(absl::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
  });
}

// Origin-form only ("/path?query"); the server is never a proxy.
bool IsOriginFormTarget(absl::string_view target) {
  if (target.empty() || target[0] != '/') return false;
  return std::all_of(target.begin(), target.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
  });
}

absl::string_view TrimOws(absl::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// Whether the comma-separated header `value` lists `token` (case-insensitive).
bool HasToken(absl::string_view value, absl::string_view token) {
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    if (absl::EqualsIgnoreCase(TrimOws(part), token)) return true;
  }
  return false;
}

// What answers a path: exactly one of the two is set.
struct Route {
  Handler handler;
  AsyncHandler async_handler;
  RouteOptions options;
};

// Exact and prefix routes. Constant while the server thread runs.
class Router {
 public:
  void Add(std::string path, Route route) {
    exact_[std::move(path)] = std::move(route);
  }
  void AddPrefix(std::string prefix, Route route) {
    prefixes_[std::move(prefix)] = std::move(route);
  }

  // The route for `path`, or nullptr.
  const Route* Find(absl::string_view path) const {
    if (auto it = exact_.find(path); it != exact_.end()) return &it->second;
    // Trying the path's own prefixes from longest down finds the longest
    // registered prefix in O(length * log routes).
    for (size_t length = path.size() + 1; length-- > 0;) {
      auto it = prefixes_.find(path.substr(0, length));
      if (it != prefixes_.end()) return &it->second;
    }
    return nullptr;
  }

 private:
  std::map<std::string, Route, std::less<>> exact_;
  std::map<std::string, Route, std::less<>> prefixes_;
};

// Responses of asynchronous handlers on their way to the server thread,
// which is woken through `wake_fd`. Shared with every Responder, so one
// called after Stop finds `wake_fd` closed (-1) and drops its response.
struct Completions {
  absl::Mutex mu;
  int wake_fd ABSL_GUARDED_BY(mu) = -1;
  std::vector<std::pair<uint64_t, Response>> ready ABSL_GUARDED_BY(mu);
};

struct Connection {
  Connection(ScopedFd socket, uint64_t connection_id, uint32_t client_address)
      : fd(std::move(socket)), id(connection_id), client(client_address) {}

  ScopedFd fd;
  const uint64_t id;      // Names the connection to Responders.
  const uint32_t client;  // The peer's IPv4 address (network order).
  bool awaiting = false;  // An asynchronous handler has the request.
  Clock::time_point deadline;
  std::string in;   // Received bytes not yet consumed by a request.
  std::string out;  // Serialized response not yet fully sent.
  size_t out_sent = 0;
  bool close_after_write = false;
  bool lingering = false;

  // The request being received, valid once `have_head`.
  bool have_head = false;
  Request request;
  size_t head_bytes = 0;
  size_t body_bytes = 0;
  bool keep_alive = true;
  bool http10 = false;
  bool expect_continue = false;
  bool sent_continue = false;
};

// Outcomes of ParseRequestHead other than an error status.
constexpr int kIncomplete = 0;
constexpr int kParsed = 200;

}  // namespace

int ParseRequestHead(absl::string_view in, RequestHead* head) {
  // RFC 9112 2.2: ignore empty lines before a request line. They count
  // towards the head size, so a stream of them still hits the cap.
  size_t start = 0;
  while (absl::StartsWith(in.substr(start), "\r\n")) start += 2;

  const size_t end = in.find("\r\n\r\n", start);
  if (end == absl::string_view::npos) {
    return in.size() > kMaxHeaderBytes ? 431 : kIncomplete;
  }
  const size_t head_bytes = end + 4;
  if (head_bytes > kMaxHeaderBytes) return 431;

  std::vector<absl::string_view> lines =
      absl::StrSplit(in.substr(start, end - start), "\r\n");
  std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
  if (request_line.size() != 3) return 400;
  const absl::string_view method = request_line[0];
  const absl::string_view target = request_line[1];
  const absl::string_view version = request_line[2];
  if (!IsToken(method) || !IsOriginFormTarget(target)) return 400;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    const bool well_formed =
        version.size() == 8 && absl::StartsWith(version, "HTTP/") &&
        absl::ascii_isdigit(version[5]) && version[6] == '.' &&
        absl::ascii_isdigit(version[7]);
    return well_formed ? 505 : 400;
  }

  Request request;
  request.method = std::string(method);
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != absl::string_view::npos) {
    request.query = std::string(target.substr(question + 1));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) return 400;
    // A name with surrounding whitespace, or a folded line, is rejected
    // (RFC 9112 5.1, 5.2): proxies disagree on what it means.
    const absl::string_view name = lines[i].substr(0, colon);
    const absl::string_view value = TrimOws(lines[i].substr(colon + 1));
    if (!IsToken(name) || !IsFieldValue(value)) return 400;
    std::string key = absl::AsciiStrToLower(name);
    auto [it, inserted] = request.headers.emplace(key, std::string(value));
    if (!inserted) absl::StrAppend(&it->second, ", ", value);
  }
  const auto& headers = request.headers;

  if (headers.count("transfer-encoding") != 0) return 411;
  size_t body_bytes = 0;
  if (auto it = headers.find("content-length"); it != headers.end()) {
    // Repeated identical values are allowed (RFC 9110 8.6); they arrive
    // here joined by commas.
    absl::string_view first;
    for (absl::string_view part : absl::StrSplit(it->second, ',')) {
      part = TrimOws(part);
      if (part.empty() ||
          !std::all_of(part.begin(), part.end(), absl::ascii_isdigit)) {
        return 400;
      }
      if (first.empty()) first = part;
      if (part != first) return 400;
    }
    while (first.size() > 1 && first[0] == '0') first.remove_prefix(1);
    uint64_t length = 0;
    // More than 15 digits overflows nothing but is surely over the cap.
    if (first.size() > 15 || !absl::SimpleAtoi(first, &length) ||
        length > kMaxBodyBytes) {
      return 413;
    }
    body_bytes = static_cast<size_t>(length);
  }

  const bool http10 = version == "HTTP/1.0";
  bool keep_alive = !http10;
  bool expect_continue = false;
  if (auto it = headers.find("connection"); it != headers.end()) {
    if (HasToken(it->second, "close")) {
      keep_alive = false;
    } else if (HasToken(it->second, "keep-alive")) {
      keep_alive = true;
    }
  }
  if (auto it = headers.find("expect"); it != headers.end()) {
    if (!absl::EqualsIgnoreCase(it->second, "100-continue")) return 417;
    // HTTP/1.0 clients do not understand interim responses.
    expect_continue = !http10;
  }

  head->request = std::move(request);
  head->head_bytes = head_bytes;
  head->body_bytes = body_bytes;
  head->http10 = http10;
  head->keep_alive = keep_alive;
  head->expect_continue = expect_continue;
  return kParsed;
}

namespace {

// The event loop. Lives on, and is only touched by, the server thread.
class ServerLoop {
 public:
  ServerLoop(const Router& router, const HttpServer::Options& options,
             int listen_fd, int wake_fd, const std::atomic<bool>& stopping,
             std::shared_ptr<Completions> completions)
      : router_(router),
        options_(options),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd),
        stopping_(stopping),
        completions_(std::move(completions)) {}

  void Run() {
    std::vector<pollfd> fds;
    while (!stopping_.load(std::memory_order_acquire)) {
      Clock::time_point now = Clock::now();
      for (auto& connection : connections_) {
        if (now < connection->deadline) continue;
        if (connection->awaiting) {
          connection->awaiting = false;
          QueueResponse(*connection, ErrorResponse(504), /*keep_alive=*/false);
          Flush(*connection);
        } else {
          connection->fd.Reset();
        }
      }
      RemoveClosed();

      // Past the bound the listener is not polled, so further clients wait
      // in the kernel's backlog instead of exhausting descriptors.
      const bool accepting = connections_.size() < options_.max_connections &&
                             now >= accept_paused_until_;
      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      // poll() skips negative descriptors.
      fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
      for (const auto& connection : connections_) {
        fds.push_back({connection->fd.get(), WantedEvents(*connection), 0});
      }

      if (poll(fds.data(), fds.size(), PollTimeoutMs(now, accepting)) < 0) {
        if (errno == EINTR || errno == ENOMEM) continue;
        DieBecause("poll failed in HTTP server");
      }
      if (fds[0].revents != 0) {  // Woken by Stop() or a Responder.
        uint64_t count;
        while (read(wake_fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
        }
        DeliverCompletions();
        continue;
      }

      // Only connections that existed before poll() have an entry in `fds`.
      const size_t polled = connections_.size();
      for (size_t i = 0; i < polled; ++i) {
        if (fds[i + 2].revents != 0) {
          HandleEvents(*connections_[i], fds[i + 2].revents);
        }
      }
      if ((fds[1].revents & POLLIN) != 0) AcceptAll();
      RemoveClosed();
    }
    connections_.clear();
  }

 private:
  static short WantedEvents(const Connection& connection) {
    if (connection.awaiting) return 0;  // errors and hang-ups only
    if (connection.lingering) return POLLIN;
    return connection.out_sent < connection.out.size() ? POLLOUT : POLLIN;
  }

  int PollTimeoutMs(Clock::time_point now, bool accepting) const {
    Clock::time_point next = Clock::time_point::max();
    for (const auto& connection : connections_) {
      next = std::min(next, connection->deadline);
    }
    if (!accepting && connections_.size() < options_.max_connections) {
      next = std::min(next, accept_paused_until_);
    }
    if (next == Clock::time_point::max()) return -1;
    if (next <= now) return 0;
    // Round up so the loop does not wake just before a deadline and spin.
    const auto ms =
        std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
  }

  void RemoveClosed() {
    connections_.erase(
        std::remove_if(connections_.begin(), connections_.end(),
                       [this](const std::unique_ptr<Connection>& connection) {
                         if (connection->fd.valid()) return false;
                         auto it = per_client_.find(connection->client);
                         if (--it->second == 0) per_client_.erase(it);
                         return true;
                       }),
        connections_.end());
  }

  void AcceptAll() {
    while (connections_.size() < options_.max_connections) {
      sockaddr_in peer{};
      socklen_t peer_size = sizeof(peer);
      const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer),
                             &peer_size, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
          accept_paused_until_ = Clock::now() + kAcceptBackoff;
        }
        return;  // EAGAIN: backlog drained.
      }
      ScopedFd socket(fd);
      size_t& from_client = per_client_[peer.sin_addr.s_addr];
      if (from_client >= options_.max_connections_per_client) {
        continue;  // closed at once: one client may not take every slot
      }
      ++from_client;
      auto connection = std::make_unique<Connection>(
          std::move(socket), next_id_++, peer.sin_addr.s_addr);
      connection->deadline = Clock::now() + kIdleTimeout;
      connections_.push_back(std::move(connection));
    }
  }

  void HandleEvents(Connection& connection, short revents) {
    if ((revents & (POLLERR | POLLNVAL)) != 0 ||
        (connection.awaiting && (revents & POLLHUP) != 0)) {
      connection.fd.Reset();
      return;
    }
    if (connection.awaiting) return;
    if (connection.lingering) {
      DiscardInput(connection);
    } else if (connection.out_sent < connection.out.size()) {
      // POLLHUP while writing: send() reports the error.
      if (Flush(connection)) ProcessInput(connection);
    } else {
      ReadInput(connection);
    }
  }

  void ReadInput(Connection& connection) {
    const size_t old_size = connection.in.size();
    if (old_size == 0 && !connection.have_head) {
      connection.deadline = Clock::now() + kRequestTimeout;
    }
    connection.in.resize(old_size + kReadChunkBytes);
    const ssize_t n =
        recv(connection.fd.get(), &connection.in[old_size], kReadChunkBytes, 0);
    connection.in.resize(old_size + std::max<ssize_t>(n, 0));
    if (n > 0) {
      ProcessInput(connection);
    } else if (n == 0 ||
               (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      // EOF or reset; a partial request has nobody left to answer.
      connection.fd.Reset();
    }
  }

  void DiscardInput(Connection& connection) {
    char scratch[16 * 1024];
    const ssize_t n = recv(connection.fd.get(), scratch, sizeof(scratch), 0);
    if (n == 0 ||
        (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      connection.fd.Reset();
    }
  }

  // Answers every complete request in `in`, one at a time, stopping when a
  // response cannot be sent at once or more input is needed.
  void ProcessInput(Connection& connection) {
    while (connection.fd.valid() && !connection.lingering &&
           !connection.awaiting && connection.out.empty()) {
      if (!connection.have_head) {
        const int result = ParseHead(connection);
        if (result == kIncomplete) return;
        if (result != kParsed) {
          QueueError(connection, result);
          Flush(connection);
          return;
        }
        if (!AdmitBody(connection)) return;
      }
      const size_t needed = connection.head_bytes + connection.body_bytes;
      if (connection.in.size() < needed) {
        if (connection.expect_continue && !connection.sent_continue) {
          connection.sent_continue = true;
          connection.out = "HTTP/1.1 100 Continue\r\n\r\n";
          Flush(connection);
        }
        return;
      }
      connection.request.body =
          connection.in.substr(connection.head_bytes, connection.body_bytes);
      connection.in.erase(0, needed);
      connection.have_head = false;

      const Route* route = router_.Find(connection.request.path);
      if (route != nullptr && route->async_handler) {
        connection.awaiting = true;
        connection.deadline = Clock::now() + kHandlerTimeout;
        route->async_handler(connection.request, MakeResponder(connection.id));
        return;
      }
      const bool found = route != nullptr && route->handler;
      QueueResponse(
          connection,
          found ? route->handler(connection.request) : ErrorResponse(404),
          connection.keep_alive);
      connection.request = Request();
      if (!Flush(connection)) return;
    }
  }

  // Before the body of a parsed head is read: whether its route takes a
  // body that large, and whether its head check lets it through. A refused
  // request is answered and its connection closed (the body is never read).
  bool AdmitBody(Connection& connection) {
    const Route* route = router_.Find(connection.request.path);
    // An unknown path (404 once the request is read) takes what a route
    // takes by default.
    const size_t max_body_bytes = route != nullptr
                                      ? route->options.max_body_bytes
                                      : RouteOptions().max_body_bytes;
    if (connection.body_bytes > max_body_bytes) {
      QueueError(connection, 413);
      Flush(connection);
      return false;
    }
    if (route == nullptr || !route->options.check_head) return true;
    std::optional<Response> refusal =
        route->options.check_head(connection.request);
    if (!refusal.has_value()) return true;
    connection.in.clear();
    connection.have_head = false;
    connection.request = Request();
    QueueResponse(connection, std::move(*refusal), /*keep_alive=*/false);
    Flush(connection);
    return false;
  }

  Responder MakeResponder(uint64_t connection_id) {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    return [completions = completions_, connection_id,
            answered](Response response) {
      if (answered->exchange(true)) return;
      absl::MutexLock lock(&completions->mu);
      if (completions->wake_fd < 0) return;  // the server stopped
      completions->ready.emplace_back(connection_id, std::move(response));
      const uint64_t one = 1;
      while (write(completions->wake_fd, &one, sizeof(one)) < 0 &&
             errno == EINTR) {
      }
    };
  }

  // Queues the responses that asynchronous handlers posted; those whose
  // connection closed meanwhile are dropped.
  void DeliverCompletions() {
    std::vector<std::pair<uint64_t, Response>> ready;
    {
      absl::MutexLock lock(&completions_->mu);
      ready.swap(completions_->ready);
    }
    for (auto& [id, response] : ready) {
      auto it = std::find_if(connections_.begin(), connections_.end(),
                             [id = id](const std::unique_ptr<Connection>& c) {
                               return c->id == id;
                             });
      if (it == connections_.end()) continue;
      Connection& connection = **it;
      if (!connection.fd.valid() || !connection.awaiting) continue;
      connection.awaiting = false;
      QueueResponse(connection, std::move(response), connection.keep_alive);
      connection.request = Request();
      if (Flush(connection)) ProcessInput(connection);
    }
  }

  // Parses the head at the start of `in` into `connection.request`.
  int ParseHead(Connection& connection) {
    RequestHead head;
    const int result = ParseRequestHead(connection.in, &head);
    if (result != kParsed) return result;
    connection.request = std::move(head.request);
    connection.head_bytes = head.head_bytes;
    connection.body_bytes = head.body_bytes;
    connection.http10 = head.http10;
    connection.keep_alive = head.keep_alive;
    connection.expect_continue = head.expect_continue;
    connection.have_head = true;
    connection.sent_continue = false;
    return kParsed;
  }

  static Response ErrorResponse(int status) {
    Response response;
    response.status = status;
    response.body = absl::StrCat(status, " ", ReasonPhrase(status), "\n");
    return response;
  }

  // Answers a request that cannot be framed or served; the rest of the input
  // is untrustworthy, so the connection closes after the response.
  void QueueError(Connection& connection, int status) {
    connection.in.clear();
    connection.have_head = false;
    QueueResponse(connection, ErrorResponse(status), /*keep_alive=*/false);
  }

  // Serializes `response`. Content-Length, Connection and Transfer-Encoding
  // are the server's to set, so handler headers with those names are dropped;
  // a handler's own Content-Type header wins over `response.content_type`.
  // Headers with invalid names or values (e.g. CR/LF) are dropped rather than
  // allowed to split the response.
  void QueueResponse(Connection& connection, Response response,
                     bool keep_alive) {
    if (response.status < 200 || response.status > 599) {
      // Handlers cannot send interim responses; anything else is a bug.
      response = ErrorResponse(500);
    }
    // RFC 9110 6.4.1: these never carry content, and 204 never a length.
    const bool bodyless = response.status == 204 || response.status == 304;

    std::string content_type = response.content_type;
    std::string extra;
    for (const auto& [name, value] : response.headers) {
      if (!IsToken(name) || !IsFieldValue(value)) continue;
      const std::string lower = absl::AsciiStrToLower(name);
      if (lower == "content-length" || lower == "connection" ||
          lower == "transfer-encoding") {
        continue;
      }
      if (lower == "content-type") {
        content_type = value;
        continue;
      }
      absl::StrAppend(&extra, name, ": ", value, "\r\n");
    }
    if (content_type.empty() || !IsFieldValue(content_type)) {
      content_type = "application/octet-stream";
    }

    std::string& out = connection.out;
    out.clear();
    connection.out_sent = 0;
    absl::StrAppend(&out, "HTTP/1.1 ", response.status, " ",
                    ReasonPhrase(response.status), "\r\n",
                    "Content-Type: ", content_type, "\r\n");
    if (!bodyless) {
      absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n");
    }
    if (!keep_alive) {
      out.append("Connection: close\r\n");
    } else if (connection.http10) {
      out.append("Connection: keep-alive\r\n");
    }
    absl::StrAppend(&out, extra, "\r\n");
    if (!bodyless) out.append(response.body);
    connection.close_after_write = !keep_alive;
    connection.deadline = Clock::now() + kWriteTimeout;
  }

  // Sends as much of `out` as the socket takes. Returns true when all of it
  // went out and the connection can read again.
  bool Flush(Connection& connection) {
    while (connection.out_sent < connection.out.size()) {
      const ssize_t n =
          send(connection.fd.get(), connection.out.data() + connection.out_sent,
               connection.out.size() - connection.out_sent, MSG_NOSIGNAL);
      if (n >= 0) {
        connection.out_sent += static_cast<size_t>(n);
        connection.deadline = Clock::now() + kWriteTimeout;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) connection.fd.Reset();
      return false;
    }
    connection.out.clear();
    connection.out_sent = 0;
    if (connection.close_after_write) {
      shutdown(connection.fd.get(), SHUT_WR);
      connection.lingering = true;
      connection.in.clear();
      connection.deadline = Clock::now() + kLingerTimeout;
      return false;
    }
    const bool mid_request = connection.have_head || !connection.in.empty();
    connection.deadline =
        Clock::now() + (mid_request ? kRequestTimeout : kIdleTimeout);
    return true;
  }

  const Router& router_;
  const HttpServer::Options& options_;
  const int listen_fd_;
  const int wake_fd_;
  const std::atomic<bool>& stopping_;
  const std::shared_ptr<Completions> completions_;

  std::vector<std::unique_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;
  Clock::time_point accept_paused_until_;
  // Open connections by client address.
  absl::flat_hash_map<uint32_t, size_t> per_client_;
};

struct ParsedAddress {
  in_addr host;
  uint16_t port;
};

absl::StatusOr<ParsedAddress> ParseListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP listen address \"", address, "\" is not host:port"));
  }
  const std::string host = address.substr(0, colon);
  const absl::string_view port_text =
      absl::string_view(address).substr(colon + 1);
  int port = -1;
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HTTP listen address \"", address, "\" has no valid port (0-65535)"));
  }
  ParsedAddress parsed;
  parsed.port = static_cast<uint16_t>(port);
  const std::string numeric = host == "localhost" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, numeric.c_str(), &parsed.host) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP listen address \"", address,
                     "\": host must be an IPv4 address or localhost"));
  }
  return parsed;
}

}  // namespace

struct HttpServer::Impl {
  // Written before Start, read-only while the thread runs.
  Router router;
  HttpServer::Options options;

  // Owned by the thread calling Start/Stop; the server thread only uses the
  // raw descriptors, which stay open until it has been joined.
  ScopedFd listen_fd;
  ScopedFd wake_fd;
  std::thread thread;
  std::shared_ptr<Completions> completions;  // one per Start

  std::atomic<bool> stopping{false};
};

HttpServer::HttpServer(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string path, Handler handler,
                       RouteOptions options) {
  impl_->router.Add(std::move(path),
                    {std::move(handler), nullptr, std::move(options)});
}

void HttpServer::RoutePrefix(std::string prefix, Handler handler,
                             RouteOptions options) {
  impl_->router.AddPrefix(std::move(prefix),
                          {std::move(handler), nullptr, std::move(options)});
}

void HttpServer::RoutePrefixAsync(std::string prefix, AsyncHandler handler,
                                  RouteOptions options) {
  impl_->router.AddPrefix(std::move(prefix),
                          {nullptr, std::move(handler), std::move(options)});
}

absl::StatusOr<std::string> HttpServer::Start(const std::string& address) {
  if (impl_->thread.joinable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("HTTP server already started; cannot start on ", address));
  }
  absl::StatusOr<ParsedAddress> parsed = ParseListenAddress(address);
  if (!parsed.ok()) return parsed.status();

  ScopedFd listen_fd(
      socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listen_fd.valid()) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("socket() for HTTP listener ", address));
  }
  // Lets a restarted server rebind while old connections sit in TIME_WAIT.
  const int one = 1;
  setsockopt(listen_fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in bind_address{};
  bind_address.sin_family = AF_INET;
  bind_address.sin_addr = parsed->host;
  bind_address.sin_port = htons(parsed->port);
  if (bind(listen_fd.get(), reinterpret_cast<const sockaddr*>(&bind_address),
           sizeof(bind_address)) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot bind HTTP listener to ", address));
  }
  if (listen(listen_fd.get(), SOMAXCONN) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("cannot listen for HTTP on ", address));
  }
  sockaddr_in bound{};
  socklen_t bound_size = sizeof(bound);
  if (getsockname(listen_fd.get(), reinterpret_cast<sockaddr*>(&bound),
                  &bound_size) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("getsockname() for HTTP listener ", address));
  }
  ScopedFd wake_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd.valid()) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("eventfd() for HTTP listener ", address));
  }

  char host[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &bound.sin_addr, host, sizeof(host));

  impl_->listen_fd = std::move(listen_fd);
  impl_->wake_fd = std::move(wake_fd);
  impl_->stopping.store(false, std::memory_order_release);
  impl_->completions = std::make_shared<Completions>();
  impl_->completions->wake_fd = impl_->wake_fd.get();
  Impl* impl = impl_.get();
  impl_->thread = std::thread([impl] {
    ServerLoop(impl->router, impl->options, impl->listen_fd.get(),
               impl->wake_fd.get(), impl->stopping, impl->completions)
        .Run();
  });
  return absl::StrCat(host, ":", ntohs(bound.sin_port));
}

void HttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping.store(true, std::memory_order_release);
  const uint64_t one = 1;
  // The counter cannot overflow from one write; EINTR is the only retryable
  // failure.
  while (write(impl_->wake_fd.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  impl_->thread.join();
  {
    absl::MutexLock lock(&impl_->completions->mu);
    impl_->completions->wake_fd = -1;
    impl_->completions->ready.clear();
  }
  impl_->listen_fd.Reset();
  impl_->wake_fd.Reset();
}

}  // namespace rio::http
