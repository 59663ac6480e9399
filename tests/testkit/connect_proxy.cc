#include "tests/testkit/connect_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace rio::testkit {
namespace {

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

ConnectProxy::ConnectProxy(std::set<std::string> allowed, int upstream_port)
    : allowed_(std::move(allowed)), upstream_port_(upstream_port) {}

std::unique_ptr<ConnectProxy> ConnectProxy::SlowRelay(int upstream_port,
                                                      absl::Duration delay) {
  auto relay =
      std::make_unique<ConnectProxy>(std::set<std::string>{}, upstream_port);
  relay->relay_ = true;
  relay->relay_delay_ = delay;
  return relay;
}

ConnectProxy::~ConnectProxy() { Stop(); }

absl::Status ConnectProxy::Start() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, SOMAXCONN) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return absl::InternalError(
        absl::StrCat("proxy listen: ", std::strerror(errno)));
  }
  listen_fd_ = fd;
  port_ = ntohs(address.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void ConnectProxy::Stop() {
  if (listen_fd_ < 0) return;
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  shutdown(listen_fd_, SHUT_RDWR);
  accept_thread_.join();
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  close(listen_fd_);
  listen_fd_ = -1;
}

std::string ConnectProxy::Url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

std::vector<std::string> ConnectProxy::Targets() const {
  absl::MutexLock lock(&mu_);
  return targets_;
}

void ConnectProxy::AcceptLoop() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&mu_);
    if (fd < 0 || stopping_) {
      if (fd >= 0) close(fd);
      if (stopping_ || (errno != EINTR && errno != ECONNABORTED)) return;
      continue;
    }
    open_fds_.push_back(fd);
    threads_.emplace_back([this, fd] { relay_ ? Relay(fd) : Serve(fd); });
  }
}

void ConnectProxy::Serve(int client) {
  int upstream = -1;
  // The request head, up to the blank line.
  std::string head;
  char buffer[16384];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
    const ssize_t n = recv(client, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    head.append(buffer, static_cast<size_t>(n));
  }
  const size_t end = head.find("\r\n\r\n");
  std::string target;
  if (end != std::string::npos && absl::StartsWith(head, "CONNECT ")) {
    const size_t space = head.find(' ', 8);
    target = head.substr(8, space == std::string::npos ? 0 : space - 8);
  }
  {
    absl::MutexLock lock(&mu_);
    targets_.push_back(target);
  }
  if (allowed_.count(target) == 0) {
    WriteAll(client, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  } else if ((upstream = ConnectLoopback(upstream_port_)) < 0) {
    WriteAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
  } else if (WriteAll(client, "HTTP/1.1 200 Connection established\r\n\r\n") &&
             WriteAll(upstream, absl::string_view(head).substr(end + 4))) {
    Pump(client, upstream);
  }
  Close(client, upstream);
}

void ConnectProxy::Relay(int client) {
  absl::SleepFor(relay_delay_);  // the slow path being simulated
  const int upstream = ConnectLoopback(upstream_port_);
  if (upstream >= 0) Pump(client, upstream);
  Close(client, upstream);
}

// Relays bytes both ways until either side closes.
void ConnectProxy::Pump(int client, int upstream) {
  {
    absl::MutexLock lock(&mu_);
    open_fds_.push_back(upstream);
  }
  char buffer[16384];
  pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
  bool open = true;
  while (open && poll(fds, 2, -1) > 0) {
    for (int i = 0; i < 2 && open; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = recv(fds[i].fd, buffer, sizeof(buffer), 0);
      open =
          n > 0 && WriteAll(fds[1 - i].fd,
                            absl::string_view(buffer, static_cast<size_t>(n)));
    }
  }
}

void ConnectProxy::Close(int client, int upstream) {
  absl::MutexLock lock(&mu_);
  for (int fd : {client, upstream}) {
    if (fd < 0) continue;
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd),
                    open_fds_.end());
    close(fd);
  }
}

}  // namespace rio::testkit
