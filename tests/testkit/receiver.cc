// Receiver: an accept thread plus one thread per connection. Lifecycle of a
// connection: AcceptLoop registers it in `connections_` (fd and thread) and
// its thread serves requests until the peer closes, the request is
// unparsable, or Stop() shuts the socket down; the thread then removes the fd
// from `connections_` (so Stop() never shuts down a reused descriptor),
// closes it and marks itself done, to be joined by AcceptLoop or by Stop().
#include "tests/testkit/receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace rio::testkit {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 64 * 1024 * 1024;

std::string ErrnoMessage(absl::string_view what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

}  // namespace

// One accepted connection: its socket, and its TLS session when the
// receiver speaks HTTPS.
struct Receiver::Peer {
  int fd = -1;
  SSL* ssl = nullptr;
};

namespace {

// Appends what `peer` has to `*buffer`; false when the peer closed or the
// socket failed (e.g. shut down by Stop()).
bool ReadMore(Receiver::Peer& peer, std::string* buffer) {
  char chunk[16 * 1024];
  while (true) {
    if (peer.ssl != nullptr) {
      const int n = SSL_read(peer.ssl, chunk, sizeof(chunk));
      if (n <= 0) return false;
      buffer->append(chunk, static_cast<size_t>(n));
      return true;
    }
    const ssize_t n = recv(peer.fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool WriteAll(Receiver::Peer& peer, absl::string_view data) {
  while (!data.empty()) {
    if (peer.ssl != nullptr) {
      const int n =
          SSL_write(peer.ssl, data.data(), static_cast<int>(data.size()));
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    const ssize_t n = send(peer.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `*buffer` holds a line ending in CRLF; returns it without the
// CRLF and removes it from the buffer.
bool ReadLine(Receiver::Peer& peer, std::string* buffer, std::string* line) {
  size_t end;
  while ((end = buffer->find("\r\n")) == std::string::npos) {
    if (buffer->size() > kMaxHeaderBytes || !ReadMore(peer, buffer)) {
      return false;
    }
  }
  *line = buffer->substr(0, end);
  buffer->erase(0, end + 2);
  return true;
}

// Moves `n` bytes from the front of `*buffer` (reading more as needed) to
// `*out`.
bool ReadExactly(Receiver::Peer& peer, size_t n, std::string* buffer,
                 std::string* out) {
  while (buffer->size() < n) {
    if (!ReadMore(peer, buffer)) return false;
  }
  out->append(*buffer, 0, n);
  buffer->erase(0, n);
  return true;
}

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 410:
      return "Gone";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

std::string FormatResponse(const ReceiverReply& reply, bool head_request,
                           bool keep_alive) {
  const bool no_body = (reply.status >= 100 && reply.status < 200) ||
                       reply.status == 204 || reply.status == 304;
  std::string out = absl::StrCat("HTTP/1.1 ", reply.status, " ",
                                 ReasonPhrase(reply.status), "\r\n");
  for (const auto& [name, value] : reply.headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  if (!no_body) {
    absl::StrAppend(&out, "Content-Length: ", reply.body.size(), "\r\n");
  }
  if (!keep_alive) absl::StrAppend(&out, "Connection: close\r\n");
  absl::StrAppend(&out, "\r\n");
  if (!no_body && !head_request) absl::StrAppend(&out, reply.body);
  return out;
}

}  // namespace

std::string ReceivedRequest::Header(absl::string_view name) const {
  for (const auto& [header, value] : headers) {
    if (absl::EqualsIgnoreCase(header, name)) return value;
  }
  return "";
}

Receiver::Receiver(ReceiverScript script) : script_(std::move(script)) {}

Receiver::~Receiver() {
  Stop();
  if (tls_context_ != nullptr) SSL_CTX_free(tls_context_);
}

size_t Receiver::HandshakeFailures() const {
  absl::MutexLock lock(&mu_);
  return handshake_failures_;
}

absl::Status Receiver::Start(const std::string& host) {
  if (listen_fd_ >= 0) {
    return absl::FailedPreconditionError("the receiver is already started");
  }
  if (!tls_.cert_file.empty() && tls_context_ == nullptr) {
    // OpenSSL writes with write(): a peer that hangs up mid-handshake (a
    // client refusing the certificate) must not kill the test process.
    signal(SIGPIPE, SIG_IGN);
    tls_context_ = SSL_CTX_new(TLS_server_method());
    if (tls_context_ == nullptr ||
        SSL_CTX_use_certificate_chain_file(tls_context_,
                                           tls_.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_context_, tls_.key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError(
          "cannot load the receiver's certificate " + tls_.cert_file +
          " and key " + tls_.key_file);
    }
    if (!tls_.client_ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(
              tls_context_, tls_.client_ca_file.c_str(), nullptr) != 1) {
        return absl::InvalidArgumentError("cannot load the client CA " +
                                          tls_.client_ca_file);
      }
      SSL_CTX_set_verify(tls_context_,
                         SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                         nullptr);
    }
  }
  sockaddr_storage address = {};
  socklen_t length = 0;
  const bool v6 = host.find(':') != std::string::npos;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
      return absl::InvalidArgumentError("not an IPv6 address: " + host);
    }
    length = sizeof(sockaddr_in6);
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
    in4->sin_family = AF_INET;
    if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
      return absl::InvalidArgumentError("not an IPv4 address: " + host);
    }
    length = sizeof(sockaddr_in);
  }
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(ErrnoMessage("socket"));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(fd, SOMAXCONN) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string message = ErrnoMessage("listen on " + host + ":0");
    close(fd);
    return absl::InternalError(message);
  }
  host_ = v6 ? "[" + host + "]" : host;
  const int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    const std::string message = ErrnoMessage("eventfd");
    close(fd);
    return absl::InternalError(message);
  }
  listen_fd_ = fd;
  wake_fd_ = wake;
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                   : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void Receiver::Stop() {
  if (listen_fd_ < 0) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;  // Wakes delayed and hanging replies.
    for (auto& [id, connection] : connections_) {
      if (connection.fd >= 0) shutdown(connection.fd, SHUT_RDWR);
    }
  }
  const uint64_t one = 1;
  const ssize_t ignored = write(wake_fd_, &one, sizeof(one));
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
  close(wake_fd_);
  listen_fd_ = -1;
  wake_fd_ = -1;
}

std::string Receiver::Url(absl::string_view path) const {
  return absl::StrCat(tls_.cert_file.empty() ? "http://" : "https://", host_,
                      ":", port_, path);
}

std::vector<ReceivedRequest> Receiver::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

size_t Receiver::Count() const {
  absl::MutexLock lock(&mu_);
  return requests_.size();
}

bool Receiver::WaitForCount(size_t n, std::chrono::milliseconds timeout) const {
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= n;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&reached),
                              absl::FromChrono(timeout));
}

void Receiver::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // E.g. the client gave up already.
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    JoinFinishedConnections();
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    const int id = next_connection_id_++;
    Connection& connection = connections_[id];
    connection.fd = fd;
    // The thread blocks on mu_ before touching `connections_`, so it is safe
    // to start it while holding the lock.
    connection.thread = std::thread([this, id, fd] { Serve(id, fd); });
  }
}

void Receiver::JoinFinishedConnections() {
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

void Receiver::Serve(int id, int fd) {
  Peer peer;
  peer.fd = fd;
  std::string client_subject;
  bool serving = true;
  if (tls_context_ != nullptr) {
    peer.ssl = SSL_new(tls_context_);
    if (peer.ssl == nullptr || SSL_set_fd(peer.ssl, fd) != 1 ||
        SSL_accept(peer.ssl) != 1) {
      absl::MutexLock lock(&mu_);
      ++handshake_failures_;
      serving = false;
    } else if (X509* cert = SSL_get_peer_certificate(peer.ssl)) {
      char name[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
                                name, sizeof(name));
      client_subject = name;
      X509_free(cert);
    }
  }
  std::string buffer;
  while (serving) {
    ReceivedRequest request;
    bool keep_alive = true;
    if (!ReadRequest(peer, &buffer, &request, &keep_alive)) break;
    request.client_subject = client_subject;
    int index;
    {
      absl::MutexLock lock(&mu_);
      index = static_cast<int>(requests_.size());
      requests_.push_back(request);
    }
    const ReceiverReply reply =
        script_ ? script_(request, index) : ReceiverReply();
    {
      absl::MutexLock lock(&mu_);
      if (reply.hang) {
        mu_.Await(absl::Condition(&stopping_));
      } else if (reply.delay.count() > 0) {
        mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                             absl::FromChrono(reply.delay));
      }
      if (stopping_) break;
    }
    if (!WriteAll(peer, FormatResponse(reply, request.method == "HEAD",
                                       keep_alive)) ||
        !keep_alive) {
      break;
    }
  }
  absl::MutexLock lock(&mu_);
  auto it = connections_.find(id);
  if (it != connections_.end()) {
    it->second.fd = -1;
    it->second.done = true;
  }
  if (peer.ssl != nullptr) SSL_free(peer.ssl);
  close(fd);
}

bool Receiver::ReadRequest(Peer& peer, std::string* buffer,
                           ReceivedRequest* request, bool* keep_alive) {
  // Request line, skipping stray empty lines between requests (RFC 9112
  // section 2.2).
  std::string line;
  do {
    if (!ReadLine(peer, buffer, &line)) return false;
  } while (line.empty());
  std::vector<std::string> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return false;
  }
  request->method = parts[0];
  const size_t question = parts[1].find('?');
  request->path = parts[1].substr(0, question);
  request->query =
      question == std::string::npos ? "" : parts[1].substr(question + 1);
  const bool http10 = parts[2] == "HTTP/1.0";

  size_t header_bytes = 0;
  while (true) {
    if (!ReadLine(peer, buffer, &line)) return false;
    if (line.empty()) break;
    header_bytes += line.size();
    if (header_bytes > kMaxHeaderBytes) return false;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) return false;
    request->headers.emplace_back(
        absl::AsciiStrToLower(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(
            absl::string_view(line).substr(colon + 1))));
  }

  const std::string connection =
      absl::AsciiStrToLower(request->Header("connection"));
  *keep_alive = http10 ? absl::StrContains(connection, "keep-alive")
                       : !absl::StrContains(connection, "close");

  if (absl::EqualsIgnoreCase(request->Header("expect"), "100-continue") &&
      !WriteAll(peer, "HTTP/1.1 100 Continue\r\n\r\n")) {
    return false;
  }

  if (absl::StrContains(
          absl::AsciiStrToLower(request->Header("transfer-encoding")),
          "chunked")) {
    while (true) {
      if (!ReadLine(peer, buffer, &line)) return false;
      uint64_t size = 0;
      const absl::string_view hex =
          absl::StripAsciiWhitespace(absl::string_view(line).substr(
              0, line.find(';')));  // Chunk extensions are ignored.
      if (!absl::SimpleHexAtoi(hex, &size) ||
          request->body.size() + size > kMaxBodyBytes) {
        return false;
      }
      if (size == 0) break;
      std::string crlf;
      if (!ReadExactly(peer, size, buffer, &request->body) ||
          !ReadExactly(peer, 2, buffer, &crlf) || crlf != "\r\n") {
        return false;
      }
    }
    do {  // Trailers, up to the empty line.
      if (!ReadLine(peer, buffer, &line)) return false;
    } while (!line.empty());
  } else {
    const std::string length_text = request->Header("content-length");
    uint64_t length = 0;
    if (!length_text.empty() &&
        (!absl::SimpleAtoi(length_text, &length) || length > kMaxBodyBytes)) {
      return false;
    }
    if (!ReadExactly(peer, length, buffer, &request->body)) return false;
  }
  request->arrival = std::chrono::steady_clock::now();
  return true;
}

}  // namespace rio::testkit
