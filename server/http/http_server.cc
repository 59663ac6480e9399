#include "server/http/http_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// CONNECTION LIFECYCLE
//
// Everything below runs on the server thread, inside one io_context: the
// Listener accepts, and each Connection (owned by the shared_ptrs its pending
// operations hold) cycles through:
//
//   [handshake] TLS only: the first bytes must start a TLS record, else the
//             client gets a plaintext 400 and the connection lingers.
//   reading   bytes accumulate in `buffer_` until ParseRequestHead finds a
//             full head, then until Content-Length body bytes are buffered.
//             Reading stops while a response is pending, which bounds the
//             buffer and answers pipelined requests strictly in order.
//   awaiting  an asynchronous handler has the request; nothing is read until
//             its Responder posts the response to the loop, or
//             `handler_timeout` passes and the client gets 504.
//   writing   Beast serializes one response (or an interim 100 Continue).
//             Then the connection reads again, or lingers if it said "close".
//   lingering TLS close_notify, then shutdown(SHUT_WR) sends FIN; input is
//             read and discarded until the peer closes or kLingerTimeout
//             passes. Closing at once with unread input would make the kernel
//             send RST, which can destroy the error response (e.g. 413)
//             before the client reads it.
//
// Every state has a deadline (beast::tcp_stream's timer closes the socket
// when it passes); a request's deadline counts from its first byte and is not
// extended by later bytes, so a client that trickles a head one byte at a
// time costs one descriptor for at most `request_timeout`.

namespace rio::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 64 * 1024;
// No route takes more (RouteOptions::max_body_bytes may take less).
constexpr size_t kMaxBodyBytes = 8 * 1024 * 1024;
constexpr size_t kReadChunkBytes = 64 * 1024;

constexpr auto kWriteTimeout = std::chrono::seconds(30);
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// After EMFILE/ENFILE the listener stays readable; without a pause the loop
// would spin on it.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

// A TLS connection starts with a handshake record.
constexpr unsigned char kTlsHandshakeRecord = 0x16;

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

// Unlisted codes get Beast's phrase for them.
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

// A line of the head that starts with SP or HTAB continues the previous one
// (obs-fold, RFC 9112 5.2). Beast would join it to the value; proxies
// disagree on what it means, so it is refused.
bool HasObsFold(absl::string_view head) {
  for (size_t at = head.find("\r\n"); at != absl::string_view::npos;
       at = head.find("\r\n", at + 2)) {
    if (at + 2 < head.size() && (head[at + 2] == ' ' || head[at + 2] == '\t')) {
      return true;
    }
  }
  return false;
}

// Whether the request line ends in a well-formed version other than 1.0 and
// 1.1, which Beast refuses like a malformed one.
bool NamesOtherHttpVersion(absl::string_view head) {
  const absl::string_view line = head.substr(0, head.find("\r\n"));
  const size_t space = line.rfind(' ');
  if (space == absl::string_view::npos) return false;
  const absl::string_view version = line.substr(space + 1);
  return version.size() == 8 && absl::StartsWith(version, "HTTP/") &&
         absl::ascii_isdigit(version[5]) && version[6] == '.' &&
         absl::ascii_isdigit(version[7]) && version != "HTTP/1.0" &&
         version != "HTTP/1.1";
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

// Outcomes of ParseRequestHead other than an error status.
constexpr int kIncomplete = 0;
constexpr int kParsed = 200;

// The oldest OpenSSL error, for messages; clears the queue.
std::string OpenSslError() {
  const unsigned long code = ERR_peek_error();
  std::string text = "unknown error";
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text = buffer;
  }
  ERR_clear_error();
  return text;
}

using TlsContext = asio::ssl::context;

// Reads a certificate chain and its key into a new server context.
absl::StatusOr<std::shared_ptr<TlsContext>> LoadTlsContext(
    const std::string& cert_file, const std::string& key_file) {
  auto context = std::make_shared<TlsContext>(TlsContext::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load the TLS certificate chain from \"", cert_file,
                     "\": ", OpenSslError()));
  }
  if (SSL_CTX_use_PrivateKey_file(native, key_file.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(
          "the TLS private key in \"", key_file,
          "\" does not match the certificate in \"", cert_file, "\""));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load the TLS private key from \"", key_file,
                     "\": ", OpenSslError()));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the TLS private key in \"", key_file,
                     "\" does not match the certificate in \"", cert_file,
                     "\": ", OpenSslError()));
  }
  return context;
}

// The certificate new TLS connections get; replaced by ReloadCertificate.
class TlsContexts {
 public:
  std::shared_ptr<TlsContext> Current() {
    absl::MutexLock lock(&mu_);
    return current_;
  }
  void Set(std::shared_ptr<TlsContext> context) {
    absl::MutexLock lock(&mu_);
    current_ = std::move(context);
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<TlsContext> current_ ABSL_GUARDED_BY(mu_);
};

// Shared with every Responder, so one called after Stop finds `io` null and
// drops its response.
struct Completions {
  absl::Mutex mu;
  asio::io_context* io ABSL_GUARDED_BY(mu) = nullptr;
};

class Listener;

// What the Listener and Responders need of a connection, whatever its stream.
class ConnectionBase : public std::enable_shared_from_this<ConnectionBase> {
 public:
  virtual ~ConnectionBase() = default;
  virtual void Begin() = 0;
  // Closes the socket; pending operations end with operation_aborted.
  virtual void Close() = 0;
  // The response of an asynchronous handler to request `request_id`.
  virtual void Answer(uint64_t request_id, Response response) = 0;
};

// The accepting side and its bookkeeping. Lives on, and is only touched by,
// the server thread, except Stop.
class Listener {
 public:
  Listener(const Router& router, const HttpServer::Options& options,
           TlsContexts* tls, std::shared_ptr<Completions> completions)
      : router_(router),
        options_(options),
        tls_(tls),
        completions_(std::move(completions)),
        work_(asio::make_work_guard(io_)),
        acceptor_(io_),
        accept_backoff_(io_) {
    absl::MutexLock lock(&completions_->mu);
    completions_->io = &io_;
  }

  ~Listener() {
    // Handlers still queued hold connections, whose destructors call
    // Release: they must find the bookkeeping alive, and must not accept.
    stopped_ = true;
    acceptor_.close();
    accept_backoff_.cancel();
  }

  // Binds and listens. Returns the bound address.
  absl::StatusOr<tcp::endpoint> Listen(const tcp::endpoint& endpoint,
                                       const std::string& address) {
    ErrorCode ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) {
      return absl::ErrnoToStatus(
          ec.value(), absl::StrCat("socket() for HTTP listener ", address));
    }
    // Lets a restarted server rebind while old connections sit in TIME_WAIT.
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_.bind(endpoint, ec);
    if (ec) {
      return absl::ErrnoToStatus(
          ec.value(), absl::StrCat("cannot bind HTTP listener to ", address));
    }
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::ErrnoToStatus(
          ec.value(), absl::StrCat("cannot listen for HTTP on ", address));
    }
    tcp::endpoint bound = acceptor_.local_endpoint(ec);
    if (ec) {
      return absl::ErrnoToStatus(
          ec.value(),
          absl::StrCat("getsockname() for HTTP listener ", address));
    }
    return bound;
  }

  // The server thread's body.
  void Run() {
    Accept();
    io_.run();
  }

  // From the thread that started the server: closes the listener and every
  // connection, and makes Run return. Responders find the loop gone.
  void Stop() {
    {
      absl::MutexLock lock(&completions_->mu);
      completions_->io = nullptr;
    }
    asio::post(io_, [this] {
      stopped_ = true;
      ErrorCode ignored;
      acceptor_.close(ignored);
      accept_backoff_.cancel();
      // Close() may destroy nothing here (pending operations hold the
      // connections), but copy first all the same.
      std::vector<ConnectionBase*> open(live_.begin(), live_.end());
      for (ConnectionBase* connection : open) connection->Close();
      io_.stop();
    });
  }

  const Router& router() const { return router_; }
  const HttpServer::Options& options() const { return options_; }
  const std::shared_ptr<Completions>& completions() const {
    return completions_;
  }

  // Called by a connection's destructor.
  void Release(ConnectionBase* connection, uint32_t client) {
    live_.erase(connection);
    --open_;
    auto it = per_client_.find(client);
    if (--it->second == 0) per_client_.erase(it);
    if (!accepting_ && !stopped_ && open_ < options_.max_connections) {
      Accept();
    }
  }

 private:
  void Accept() {
    accepting_ = true;
    acceptor_.async_accept([this](ErrorCode ec, tcp::socket socket) {
      if (stopped_ || ec == asio::error::operation_aborted) return;
      if (ec) {
        const bool out_of_resources = ec == asio::error::no_descriptors ||
                                      ec == asio::error::no_buffer_space ||
                                      ec == asio::error::no_memory ||
                                      ec.value() == ENFILE;
        if (out_of_resources) {
          accept_backoff_.expires_after(kAcceptBackoff);
          accept_backoff_.async_wait([this](ErrorCode wait_ec) {
            if (!wait_ec && !stopped_) Accept();
          });
          return;
        }
        Accept();
        return;
      }
      Admit(std::move(socket));
      // Past the bound the listener is not accepting, so further clients
      // wait in the kernel's backlog instead of exhausting descriptors.
      if (open_ < options_.max_connections) {
        Accept();
      } else {
        accepting_ = false;
      }
    });
  }

  void Admit(tcp::socket socket);

  const Router& router_;
  const HttpServer::Options options_;
  TlsContexts* const tls_;  // null for plain HTTP
  const std::shared_ptr<Completions> completions_;

  // Bookkeeping, declared before io_ so that connections destroyed with the
  // io_context's queued handlers still find it.
  bool stopped_ = false;
  bool accepting_ = false;
  size_t open_ = 0;
  absl::flat_hash_set<ConnectionBase*> live_;
  // Open connections by client address.
  absl::flat_hash_map<uint32_t, size_t> per_client_;

  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;
};

template <bool kTls>
class Connection final : public ConnectionBase {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>,
                                    beast::tcp_stream>;

  Connection(Listener& listener, tcp::socket socket, uint32_t client,
             std::shared_ptr<TlsContext> tls)
      : listener_(listener),
        options_(listener.options()),
        client_(client),
        tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        handler_timer_(beast::get_lowest_layer(stream_).get_executor()) {}

  ~Connection() override { listener_.Release(this, client_); }

  void Begin() override {
    if constexpr (kTls) {
      Tcp().expires_after(ToChrono(options_.request_timeout));
      ReadSome(Tcp(), &Connection::StartTls);
    } else {
      ReadHead();
    }
  }

  void Close() override {
    handler_timer_.cancel();
    awaiting_ = false;
    Tcp().close();
  }

  void Answer(uint64_t request_id, Response response) override {
    if (!awaiting_ || request_id != request_id_) return;
    awaiting_ = false;
    handler_timer_.cancel();
    Respond(std::move(response), keep_alive_);
  }

 private:
  static Stream MakeStream(tcp::socket socket, TlsContext* tls) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  static std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
    return std::chrono::duration_cast<SteadyClock::duration>(
        absl::ToChronoNanoseconds(d));
  }

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  std::shared_ptr<Connection> Self() {
    return std::static_pointer_cast<Connection>(shared_from_this());
  }

  absl::string_view Buffered() const {
    return absl::string_view(static_cast<const char*>(buffer_.data().data()),
                             buffer_.size());
  }

  // Reads what `stream` has into `buffer_`, then calls `next`; on EOF,
  // error or timeout the connection closes (a partial request has nobody
  // left to answer).
  template <class AnyStream>
  void ReadSome(AnyStream& stream, void (Connection::*next)()) {
    stream.async_read_some(buffer_.prepare(kReadChunkBytes),
                           [self = Self(), next](ErrorCode ec, size_t bytes) {
                             if (ec) {
                               self->Close();
                               return;
                             }
                             self->buffer_.commit(bytes);
                             ((*self).*next)();
                           });
  }

  // TLS: the bytes read so far start the handshake, or show a plaintext
  // client, which is told so.
  void StartTls() {
    if constexpr (kTls) {
      if (static_cast<unsigned char>(Buffered()[0]) != kTlsHandshakeRecord) {
        RefusePlaintext();
        return;
      }
      stream_.async_handshake(asio::ssl::stream_base::server, buffer_.data(),
                              [self = Self()](ErrorCode ec, size_t used) {
                                if (ec) {
                                  self->Close();
                                  return;
                                }
                                self->buffer_.consume(used);
                                self->ReadHead();
                              });
    }
  }

  void RefusePlaintext() {
    static const std::string kRefusal = [] {
      const std::string body =
          "400 Bad Request: this port speaks HTTPS; use https://\n";
      return absl::StrCat(
          "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
          "charset=utf-8\r\nContent-Length: ",
          body.size(), "\r\nConnection: close\r\n\r\n", body);
    }();
    buffer_.consume(buffer_.size());
    Tcp().expires_after(kWriteTimeout);
    asio::async_write(Tcp(), asio::buffer(kRefusal),
                      [self = Self()](ErrorCode ec, size_t) {
                        if (ec) {
                          self->Close();
                          return;
                        }
                        self->LingerTcp();
                      });
  }

  // Parses the next request's head from what is buffered (pipelined
  // requests first), reading more while it is incomplete.
  void ReadHead() {
    const absl::string_view in = Buffered();
    if (in.empty()) {
      in_request_ = false;
      scanned_ = 0;
      Tcp().expires_after(ToChrono(options_.idle_timeout));
      ReadSome(stream_, &Connection::ReadHead);
      return;
    }
    if (!in_request_) {
      // The request's deadline counts from its first byte.
      in_request_ = true;
      Tcp().expires_after(ToChrono(options_.request_timeout));
    }
    // Parsing waits for the head's end, so each head is parsed once.
    const size_t from = scanned_ >= 3 ? scanned_ - 3 : 0;
    scanned_ = in.size();
    if (in.find("\r\n\r\n", from) == absl::string_view::npos &&
        in.size() <= kMaxHeaderBytes) {
      ReadSome(stream_, &Connection::ReadHead);
      return;
    }
    RequestHead head;
    const int result = ParseRequestHead(in, &head);
    if (result == kIncomplete) {
      ReadSome(stream_, &Connection::ReadHead);
      return;
    }
    if (result != kParsed) {
      RespondAndClose(ErrorResponse(result));
      return;
    }
    OnHead(std::move(head));
  }

  // Before the body is read: whether the route takes a body that large, and
  // whether its head check lets the request through. A refused request is
  // answered and its connection closed (the body is never read).
  void OnHead(RequestHead head) {
    route_ = listener_.router().Find(head.request.path);
    // An unknown path (404 once the request is read) takes what a route
    // takes by default.
    const size_t max_body_bytes = route_ != nullptr
                                      ? route_->options.max_body_bytes
                                      : RouteOptions().max_body_bytes;
    if (head.body_bytes > max_body_bytes) {
      RespondAndClose(ErrorResponse(413));
      return;
    }
    if (route_ != nullptr && route_->options.check_head) {
      std::optional<Response> refusal =
          route_->options.check_head(head.request);
      if (refusal.has_value()) {
        RespondAndClose(std::move(*refusal));
        return;
      }
    }
    request_ = std::move(head.request);
    head_bytes_ = head.head_bytes;
    body_bytes_ = head.body_bytes;
    keep_alive_ = head.keep_alive;
    http10_ = head.http10;
    if (head.expect_continue && buffer_.size() < head_bytes_ + body_bytes_) {
      static constexpr absl::string_view kContinue =
          "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_,
                        asio::buffer(kContinue.data(), kContinue.size()),
                        [self = Self()](ErrorCode ec, size_t) {
                          if (ec) {
                            self->Close();
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (buffer_.size() < head_bytes_ + body_bytes_) {
      ReadSome(stream_, &Connection::ReadBody);
      return;
    }
    request_.body = std::string(Buffered().substr(head_bytes_, body_bytes_));
    buffer_.consume(head_bytes_ + body_bytes_);
    in_request_ = false;
    scanned_ = 0;
    Dispatch();
  }

  void Dispatch() {
    head_method_ = request_.method == "HEAD";
    if (route_ != nullptr && route_->async_handler) {
      awaiting_ = true;
      const uint64_t id = ++request_id_;
      handler_timer_.expires_after(ToChrono(options_.handler_timeout));
      handler_timer_.async_wait([self = Self(), id](ErrorCode ec) {
        if (ec || !self->awaiting_ || self->request_id_ != id) return;
        self->awaiting_ = false;
        self->Respond(ErrorResponse(504), /*keep_alive=*/false);
      });
      Request request = std::move(request_);
      route_->async_handler(request, MakeResponder(id));
      return;
    }
    const bool found = route_ != nullptr && route_->handler;
    Response response = found ? route_->handler(request_) : ErrorResponse(404);
    request_ = Request();
    Respond(std::move(response), keep_alive_);
  }

  Responder MakeResponder(uint64_t request_id) {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<ConnectionBase> weak = shared_from_this();
    return [completions = listener_.completions(), weak, request_id,
            answered](Response response) {
      if (answered->exchange(true)) return;
      absl::MutexLock lock(&completions->mu);
      if (completions->io == nullptr) return;  // the server stopped
      asio::post(*completions->io,
                 [weak, request_id, response = std::move(response)]() mutable {
                   if (auto connection = weak.lock()) {
                     connection->Answer(request_id, std::move(response));
                   }
                 });
    };
  }

  static Response ErrorResponse(int status) {
    Response response;
    response.status = status;
    response.body = absl::StrCat(status, " ", ReasonPhrase(status), "\n");
    return response;
  }

  // Answers a request that cannot be framed or served, or was refused on
  // its head; the rest of the input is untrustworthy or unread, so the
  // connection closes after the response.
  void RespondAndClose(Response response) {
    buffer_.consume(buffer_.size());
    request_ = Request();
    Respond(std::move(response), /*keep_alive=*/false);
  }

  // Serializes and sends `response`. Content-Length, Connection and
  // Transfer-Encoding are the server's to set, so handler headers with those
  // names are dropped; a handler's own Content-Type header wins over
  // `response.content_type`. Headers with invalid names or values (e.g.
  // CR/LF) are dropped rather than allowed to split the response.
  void Respond(Response response, bool keep_alive) {
    if (response.status < 200 || response.status > 599) {
      // Handlers cannot send interim responses; anything else is a bug.
      response = ErrorResponse(500);
    }
    // RFC 9110 6.4.1: these never carry content, and 204 never a length.
    const bool bodyless = response.status == 204 || response.status == 304;

    auto out = std::make_shared<bhttp::response<bhttp::string_body>>();
    out->version(11);
    out->result(static_cast<unsigned>(response.status));
    const absl::string_view reason = ReasonPhrase(response.status);
    if (!reason.empty()) out->reason({reason.data(), reason.size()});
    std::string content_type = response.content_type;
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
      out->insert(name, value);
    }
    if (content_type.empty() || !IsFieldValue(content_type)) {
      content_type = "application/octet-stream";
    }
    out->set(bhttp::field::content_type, content_type);
    if (!bodyless) {
      out->set(bhttp::field::content_length,
               std::to_string(response.body.size()));
      // A response to HEAD says how long the body is, without it.
      if (!head_method_) out->body() = std::move(response.body);
    }
    if (!keep_alive) {
      out->set(bhttp::field::connection, "close");
    } else if (http10_) {
      out->set(bhttp::field::connection, "keep-alive");
    }
    head_method_ = false;

    Tcp().expires_after(kWriteTimeout);
    bhttp::async_write(stream_, *out,
                       [self = Self(), out, keep_alive](ErrorCode ec, size_t) {
                         if (ec) {
                           self->Close();
                           return;
                         }
                         if (!keep_alive) {
                           self->Linger();
                           return;
                         }
                         self->ReadHead();
                       });
  }

  void Linger() {
    if constexpr (kTls) {
      Tcp().expires_after(kLingerTimeout);
      // close_notify; then whatever the peer sends is discarded below.
      stream_.async_shutdown([self = Self()](ErrorCode) { self->LingerTcp(); });
    } else {
      LingerTcp();
    }
  }

  void LingerTcp() {
    ErrorCode ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(kLingerTimeout);
    Discard();
  }

  void Discard() {
    Tcp().async_read_some(asio::buffer(scratch_),
                          [self = Self()](ErrorCode ec, size_t) {
                            if (ec) {
                              self->Close();
                              return;
                            }
                            self->Discard();
                          });
  }

  Listener& listener_;
  const HttpServer::Options& options_;
  const uint32_t client_;  // The peer's IPv4 address, for the per-client cap.
  const std::shared_ptr<TlsContext> tls_;  // Kept for the connection's life.
  Stream stream_;
  asio::steady_timer handler_timer_;

  beast::flat_buffer buffer_;  // Received bytes not yet consumed.
  size_t scanned_ = 0;  // How much of `buffer_` was searched for a head end.
  bool in_request_ = false;  // Bytes of a request have arrived.
  std::array<char, 16 * 1024> scratch_;

  // The request being received or answered.
  const Route* route_ = nullptr;
  Request request_;
  size_t head_bytes_ = 0;
  size_t body_bytes_ = 0;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool head_method_ = false;
  bool awaiting_ = false;    // An asynchronous handler has the request.
  uint64_t request_id_ = 0;  // Names the request to its Responder.
};

void Listener::Admit(tcp::socket socket) {
  ErrorCode ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  const uint32_t client = peer.address().to_v4().to_uint();
  size_t& from_client = per_client_[client];
  if (from_client >= options_.max_connections_per_client) {
    if (from_client == 0) per_client_.erase(client);
    return;  // closed at once: one client may not take every slot
  }
  ++from_client;
  ++open_;
  std::shared_ptr<ConnectionBase> connection;
  if (tls_ != nullptr) {
    connection = std::make_shared<Connection<true>>(*this, std::move(socket),
                                                    client, tls_->Current());
  } else {
    connection = std::make_shared<Connection<false>>(*this, std::move(socket),
                                                     client, nullptr);
  }
  live_.insert(connection.get());
  connection->Begin();
}

absl::StatusOr<tcp::endpoint> ParseListenAddress(const std::string& address) {
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
  const std::string numeric = host == "localhost" ? "127.0.0.1" : host;
  ErrorCode ec;
  const asio::ip::address_v4 ip = asio::ip::make_address_v4(numeric, ec);
  // make_address_v4 takes inet_aton's shorthand forms ("1.2.3"); only the
  // dotted quad is an address here.
  if (ec || ip.to_string() != numeric) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP listen address \"", address,
                     "\": host must be an IPv4 address or localhost"));
  }
  return tcp::endpoint(ip, static_cast<uint16_t>(port));
}

}  // namespace

int ParseRequestHead(absl::string_view in, RequestHead* head) {
  // RFC 9112 2.2: ignore empty lines before a request line. They count
  // towards the head size, so a stream of them still hits the cap.
  size_t start = 0;
  while (absl::StartsWith(in.substr(start), "\r\n")) start += 2;

  // A head ends at the first empty line: field lines cannot hold CRLF, and
  // obs-fold continues with SP or HTAB.
  const size_t end = in.find("\r\n\r\n", start);
  if (end == absl::string_view::npos) {
    return in.size() > kMaxHeaderBytes ? 431 : kIncomplete;
  }
  const size_t head_bytes = end + 4;
  if (head_bytes > kMaxHeaderBytes) return 431;
  const absl::string_view raw = in.substr(start, head_bytes - start);
  if (HasObsFold(raw)) return 400;

  bhttp::request_parser<bhttp::empty_body> parser;
  parser.eager(false);  // The head only; the server frames the body.
  parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  ErrorCode ec;
  const size_t used = parser.put(asio::buffer(raw.data(), raw.size()), ec);
  if (ec == bhttp::error::header_limit) return 431;
  if (ec == bhttp::error::bad_version && NamesOtherHttpVersion(raw)) return 505;
  if (ec || !parser.is_header_done() || used != raw.size()) return 400;

  const auto& message = parser.get();
  const unsigned version = message.version();
  const absl::string_view method(message.method_string().data(),
                                 message.method_string().size());
  const absl::string_view target(message.target().data(),
                                 message.target().size());
  if (!IsToken(method) || !IsOriginFormTarget(target)) return 400;

  Request request;
  request.method = std::string(method);
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != absl::string_view::npos) {
    request.query = std::string(target.substr(question + 1));
  }
  for (const auto& field : message) {
    const absl::string_view name(field.name_string().data(),
                                 field.name_string().size());
    const absl::string_view value =
        TrimOws(absl::string_view(field.value().data(), field.value().size()));
    if (!IsToken(name) || !IsFieldValue(value)) return 400;
    std::string key = absl::AsciiStrToLower(name);
    auto [it, inserted] = request.headers.emplace(key, std::string(value));
    if (!inserted) absl::StrAppend(&it->second, ", ", value);
  }
  const auto& headers = request.headers;

  // Beast has refused Transfer-Encoding together with Content-Length; bodies
  // are framed by Content-Length only.
  if (headers.count("transfer-encoding") != 0) return 411;
  size_t body_bytes = 0;
  if (auto it = headers.find("content-length"); it != headers.end()) {
    // Beast has checked that every listed value is the same decimal number
    // that fits 64 bits.
    const absl::string_view first =
        TrimOws(absl::string_view(it->second).substr(0, it->second.find(',')));
    uint64_t length = 0;
    if (!absl::SimpleAtoi(first, &length)) return 400;
    if (length > kMaxBodyBytes) return 413;
    body_bytes = static_cast<size_t>(length);
  }

  const bool http10 = version == 10;
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

struct HttpServer::Impl {
  // Written before Start, read-only while the thread runs.
  Router router;
  HttpServer::Options options;

  TlsContexts tls;
  // Owned by the thread calling Start/Stop.
  std::unique_ptr<Listener> listener;
  std::thread thread;

  bool tls_enabled() const { return !options.tls_cert_file.empty(); }
};

HttpServer::HttpServer(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
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

bool HttpServer::tls() const { return impl_->tls_enabled(); }

absl::StatusOr<std::string> HttpServer::Start(const std::string& address) {
  if (impl_->thread.joinable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("HTTP server already started; cannot start on ", address));
  }
  absl::StatusOr<tcp::endpoint> endpoint = ParseListenAddress(address);
  if (!endpoint.ok()) return endpoint.status();
  const Options& options = impl_->options;
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "HTTPS needs both a certificate file and a key file");
  }
  if (impl_->tls_enabled()) {
    absl::StatusOr<std::shared_ptr<TlsContext>> context =
        LoadTlsContext(options.tls_cert_file, options.tls_key_file);
    if (!context.ok()) return context.status();
    impl_->tls.Set(*std::move(context));
  }

  auto listener = std::make_unique<Listener>(
      impl_->router, options, impl_->tls_enabled() ? &impl_->tls : nullptr,
      std::make_shared<Completions>());
  absl::StatusOr<tcp::endpoint> bound = listener->Listen(*endpoint, address);
  if (!bound.ok()) return bound.status();

  impl_->listener = std::move(listener);
  Listener* running = impl_->listener.get();
  impl_->thread = std::thread([running] { running->Run(); });
  return absl::StrCat(bound->address().to_string(), ":", bound->port());
}

absl::Status HttpServer::ReloadCertificate() {
  if (!impl_->tls_enabled()) {
    return absl::FailedPreconditionError(
        "the HTTP listener has no TLS certificate to reload");
  }
  absl::StatusOr<std::shared_ptr<TlsContext>> context =
      LoadTlsContext(impl_->options.tls_cert_file, impl_->options.tls_key_file);
  if (!context.ok()) return context.status();
  impl_->tls.Set(*std::move(context));
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->listener->Stop();
  impl_->thread.join();
  // Destroys the connections still held by queued handlers.
  impl_->listener.reset();
}

}  // namespace rio::http
