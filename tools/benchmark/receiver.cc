// rio-bench-receiver: the fast webhook receiver of tools/bench.
//
// An epoll HTTP/1.1 server (keep-alive, Content-Length bodies) that answers
// every request with 200 "ok" at once, except requests whose path starts
// with --hang_prefix, which are never answered. For every complete request
// it records the arrival time (CLOCK_REALTIME, ns), the `webhook-id` header
// and the path, so the harness can join arrivals with send times.
//
// --threads event-loop threads each own a SO_REUSEPORT listening socket, an
// epoll set and their connections; nothing is shared on the request path
// but a per-thread mutex around the thread's record list.
//
// A control port takes one-line commands (one connection at a time):
//   count            -> "<requests answered>" (recorded, minus hanging ones)
//   dump PATH        -> writes "<arrival_ns> <webhook-id> <path>" lines,
//                       answers "<lines written>"
//   reset            -> forgets every record, "0"
//   down SECONDS     -> closes the listening sockets and every connection
//                       for SECONDS (clients get ECONNREFUSED), answers
//                       "ok <CLOCK_REALTIME ns when it listens again>"
//   quit             -> "ok", then exits (dumping to --dump if set)
// SIGTERM/SIGINT also exit (dumping to --dump if set).
//
// On start it prints "listening <port> control <port>" on stdout.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

ABSL_FLAG(int, port, 0, "Port on 127.0.0.1 for webhooks (0: a free one)");
ABSL_FLAG(int, control_port, 0, "Port on 127.0.0.1 for control commands");
ABSL_FLAG(int, threads, 1, "Event-loop threads (SO_REUSEPORT)");
ABSL_FLAG(std::string, hang_prefix, "/hang",
          "Requests whose path starts with this are never answered");
ABSL_FLAG(std::string, dump, "", "Write the records here on exit");

namespace rio::bench {
namespace {

constexpr char kOk[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    "2\r\n\r\nok";
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr size_t kMaxHeaderBytes = 64 * 1024;

int64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// One recorded request. Fixed-size so that recording never allocates
// beyond the vector's growth.
struct Record {
  int64_t arrival_ns;
  char id[48];    // webhook-id, NUL-terminated, truncated
  char path[48];  // request path, NUL-terminated, truncated
};

void CopyTruncated(absl::string_view from, char* to, size_t size) {
  size_t n = std::min(from.size(), size - 1);
  std::memcpy(to, from.data(), n);
  to[n] = '\0';
}

// Binds 127.0.0.1:port (non-blocking). Returns -1 on failure.
int Listen(int port, bool reuse_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// One event-loop thread: its listening socket, epoll set and connections.
class Worker {
 public:
  Worker(int listen_fd, int port, std::string hang_prefix)
      : port_(port),
        hang_prefix_(std::move(hang_prefix)),
        listen_fd_(listen_fd) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    Watch(wake_);
    Watch(listen_fd_);
    records_.reserve(1 << 16);
  }

  void Start() { thread_ = std::thread(&Worker::Loop, this); }

  void Join() {
    stop_ = true;
    Wake();
    if (thread_.joinable()) thread_.join();
  }

  // Down until `until_ms` (CLOCK_MONOTONIC): callable from any thread.
  void GoDown(int64_t until_ms) {
    down_until_ms_ = until_ms;
    Wake();
  }

  size_t Count() const { return count_.load(std::memory_order_relaxed); }

  void AppendTo(std::vector<Record>* out) {
    std::lock_guard<std::mutex> lock(mu_);
    out->insert(out->end(), records_.begin(), records_.end());
  }

  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    records_.clear();
    count_ = 0;
  }

 private:
  struct Conn {
    std::string in;
    bool hanging = false;  // a request was left unanswered: answer no more
  };

  void Watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_, &one, sizeof(one));
    (void)n;
  }

  void CloseConn(int fd) {
    epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns_.erase(fd);
  }

  void CloseEverything() {
    if (listen_fd_ >= 0) {
      epoll_ctl(epoll_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      close(listen_fd_);
      listen_fd_ = -1;
    }
    std::vector<int> fds;
    for (auto& [fd, conn] : conns_) fds.push_back(fd);
    for (int fd : fds) {
      // RST rather than FIN: a client sees the outage at once.
      linger lg{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      CloseConn(fd);
    }
  }

  void Loop() {
    epoll_event events[256];
    while (!stop_) {
      int64_t down_until = down_until_ms_.load();
      int64_t now = MonotonicMs();
      int timeout = 1000;
      if (down_until > now) {
        if (listen_fd_ >= 0 || !conns_.empty()) CloseEverything();
        timeout = static_cast<int>(std::min<int64_t>(down_until - now, 1000));
      } else if (listen_fd_ < 0) {
        listen_fd_ = Listen(port_, /*reuse_port=*/true);
        if (listen_fd_ >= 0) {
          Watch(listen_fd_);
        } else {
          timeout = 10;  // the port is briefly busy; try again soon
        }
      }
      int n = epoll_wait(epoll_, events, 256, timeout);
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wake_) {
          uint64_t v;
          ssize_t r = read(wake_, &v, sizeof(v));
          (void)r;
        } else if (fd == listen_fd_) {
          Accept();
        } else if (conns_.count(fd) != 0) {
          OnReadable(fd);
        }
      }
    }
    CloseEverything();
  }

  void Accept() {
    for (;;) {
      int fd =
          accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      conns_[fd];
      Watch(fd);
    }
  }

  void OnReadable(int fd) {
    Conn& conn = conns_[fd];
    char buf[64 * 1024];
    bool eof = false;
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        conn.in.append(buf, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof(buf)) break;
      } else if (n == 0) {
        eof = true;
        break;
      } else {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) eof = true;
        break;
      }
    }
    if (!conn.in.empty()) {
      out_.clear();
      if (!Parse(&conn)) eof = true;
      if (!out_.empty() && !WriteAll(fd)) eof = true;
    }
    if (eof) CloseConn(fd);
  }

  // Writes out_ fully; replies are tiny, so a short write is waited out
  // with poll rather than buffered (it does not happen on loopback).
  bool WriteAll(int fd) {
    size_t done = 0;
    while (done < out_.size()) {
      ssize_t n = write(fd, out_.data() + done, out_.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, 1000);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        return false;
      }
    }
    return true;
  }

  // Consumes every complete request in conn->in and appends the replies to
  // out_. Returns false on a malformed request (the connection is closed).
  bool Parse(Conn* conn) {
    size_t pos = 0;
    const std::string& in = conn->in;
    int64_t now = 0;
    for (;;) {
      size_t end = in.find("\r\n\r\n", pos);
      if (end == std::string::npos) {
        if (in.size() - pos > kMaxHeaderBytes) return false;
        break;
      }
      absl::string_view head(in.data() + pos, end - pos);
      size_t line_end = head.find("\r\n");
      absl::string_view request_line = head.substr(0, line_end);
      size_t sp1 = request_line.find(' ');
      if (sp1 == absl::string_view::npos) return false;
      size_t sp2 = request_line.find(' ', sp1 + 1);
      absl::string_view path = request_line.substr(
          sp1 + 1, sp2 == absl::string_view::npos ? absl::string_view::npos
                                                  : sp2 - sp1 - 1);
      size_t content_length = 0;
      absl::string_view webhook_id;
      bool expect_continue = false;
      absl::string_view rest =
          line_end == absl::string_view::npos ? "" : head.substr(line_end + 2);
      while (!rest.empty()) {
        size_t eol = rest.find("\r\n");
        absl::string_view line = rest.substr(0, eol);
        rest = eol == absl::string_view::npos ? "" : rest.substr(eol + 2);
        size_t colon = line.find(':');
        if (colon == absl::string_view::npos) continue;
        absl::string_view name = line.substr(0, colon);
        absl::string_view value =
            absl::StripAsciiWhitespace(line.substr(colon + 1));
        if (absl::EqualsIgnoreCase(name, "content-length")) {
          if (!absl::SimpleAtoi(value, &content_length)) return false;
        } else if (absl::EqualsIgnoreCase(name, "webhook-id")) {
          webhook_id = value;
        } else if (absl::EqualsIgnoreCase(name, "expect")) {
          expect_continue = absl::EqualsIgnoreCase(value, "100-continue");
        }
      }
      size_t body_start = end + 4;
      if (in.size() - body_start < content_length) {
        if (expect_continue && in.size() == body_start) out_ += kContinue;
        break;
      }
      if (now == 0) now = RealtimeNs();
      {
        std::lock_guard<std::mutex> lock(mu_);
        records_.emplace_back();
        Record& r = records_.back();
        r.arrival_ns = now;
        CopyTruncated(webhook_id, r.id, sizeof(r.id));
        CopyTruncated(path, r.path, sizeof(r.path));
      }
      bool hang = !hang_prefix_.empty() && absl::StartsWith(path, hang_prefix_);
      if (hang) {
        conn->hanging = true;
      } else {
        count_.fetch_add(1, std::memory_order_relaxed);
      }
      // Replies stay in order: after an unanswered request, none follow.
      if (!conn->hanging) out_ += kOk;
      pos = body_start + content_length;
    }
    conn->in.erase(0, pos);
    return true;
  }

  const int port_;
  const std::string hang_prefix_;
  int listen_fd_;
  int epoll_ = -1;
  int wake_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> down_until_ms_{0};
  std::unordered_map<int, Conn> conns_;
  std::string out_;
  std::atomic<size_t> count_{0};
  std::mutex mu_;
  std::vector<Record> records_;  // guarded by mu_
};

class Receiver {
 public:
  explicit Receiver(std::vector<std::unique_ptr<Worker>> workers)
      : workers_(std::move(workers)) {}

  size_t Count() const {
    size_t n = 0;
    for (const auto& w : workers_) n += w->Count();
    return n;
  }

  // Writes every record, sorted by arrival; returns how many or -1.
  long Dump(const std::string& path) {
    std::vector<Record> all;
    for (const auto& w : workers_) w->AppendTo(&all);
    std::sort(all.begin(), all.end(), [](const Record& a, const Record& b) {
      return a.arrival_ns < b.arrival_ns;
    });
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return -1;
    std::vector<char> buffer(1 << 20);
    setvbuf(f, buffer.data(), _IOFBF, buffer.size());
    for (const Record& r : all) {
      std::fprintf(f, "%lld %s %s\n", static_cast<long long>(r.arrival_ns),
                   r.id[0] != '\0' ? r.id : "-",
                   r.path[0] != '\0' ? r.path : "-");
    }
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
      return -1;
    }
    return static_cast<long>(all.size());
  }

  void Reset() {
    for (auto& w : workers_) w->Reset();
  }

  void GoDown(double seconds) {
    int64_t until = MonotonicMs() + static_cast<int64_t>(seconds * 1000);
    for (auto& w : workers_) w->GoDown(until);
  }

  void Start() {
    for (auto& w : workers_) w->Start();
  }

  void Stop() {
    for (auto& w : workers_) w->Join();
  }

  // Answers one command line; sets *quit on "quit".
  std::string Command(absl::string_view line, bool* quit) {
    line = absl::StripAsciiWhitespace(line);
    if (line == "count") return absl::StrCat(Count());
    if (line == "reset") {
      Reset();
      return "0";
    }
    if (line == "quit") {
      *quit = true;
      return "ok";
    }
    if (absl::ConsumePrefix(&line, "dump ")) {
      return absl::StrCat(Dump(std::string(absl::StripAsciiWhitespace(line))));
    }
    if (absl::ConsumePrefix(&line, "down ")) {
      double seconds = 0;
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(line), &seconds) ||
          !(seconds >= 0) || seconds > 3600) {
        return "error: down takes seconds (0-3600)";
      }
      GoDown(seconds);
      return absl::StrCat("ok ",
                          RealtimeNs() + static_cast<int64_t>(seconds * 1e9));
    }
    return "error: unknown command";
  }

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
};

std::atomic<bool> g_signalled{false};

// Serves control connections one at a time until "quit" or a signal.
void ServeControl(int control_fd, Receiver* receiver) {
  while (!g_signalled) {
    pollfd p{control_fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int fd = accept4(control_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval timeout{60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string pending;
    char buf[4096];
    bool quit = false;
    while (!quit) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      pending.append(buf, static_cast<size_t>(n));
      size_t eol;
      while (!quit && (eol = pending.find('\n')) != std::string::npos) {
        std::string reply =
            receiver->Command(absl::string_view(pending).substr(0, eol),
                              &quit) +
            "\n";
        pending.erase(0, eol + 1);
        ssize_t w = write(fd, reply.data(), reply.size());
        (void)w;
      }
    }
    close(fd);
    if (quit) return;
  }
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The fast webhook receiver of tools/bench (see the file comment).");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, [](int) { g_signalled = true; });
  signal(SIGINT, [](int) { g_signalled = true; });

  int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  int first = Listen(absl::GetFlag(FLAGS_port), /*reuse_port=*/true);
  if (first < 0) {
    std::fprintf(stderr, "rio-bench-receiver: cannot listen: %s\n",
                 std::strerror(errno));
    return 1;
  }
  int port = BoundPort(first);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) {
    int fd = i == 0 ? first : Listen(port, /*reuse_port=*/true);
    if (fd < 0) {
      std::fprintf(stderr, "rio-bench-receiver: cannot listen: %s\n",
                   std::strerror(errno));
      return 1;
    }
    workers.push_back(
        std::make_unique<Worker>(fd, port, absl::GetFlag(FLAGS_hang_prefix)));
  }
  int control = Listen(absl::GetFlag(FLAGS_control_port), false);
  if (control < 0) {
    std::fprintf(stderr, "rio-bench-receiver: cannot listen for control: %s\n",
                 std::strerror(errno));
    return 1;
  }
  Receiver receiver(std::move(workers));
  receiver.Start();
  std::printf("listening %d control %d\n", port, BoundPort(control));
  std::fflush(stdout);
  ServeControl(control, &receiver);
  receiver.Stop();
  if (std::string path = absl::GetFlag(FLAGS_dump); !path.empty()) {
    if (receiver.Dump(path) < 0) {
      std::fprintf(stderr, "rio-bench-receiver: cannot write %s\n",
                   path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace rio::bench

int main(int argc, char** argv) { return rio::bench::Main(argc, argv); }
