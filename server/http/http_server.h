// A small HTTP/1.1 server, plain or HTTPS, for operational endpoints
// (/healthz, /metrics and the dashboard's assets and JSON API). It runs its
// own thread; handlers are called on that thread, one request at a time, and
// must not block for long. Asynchronous handlers return at once and answer
// later, from any thread, through their Responder; the connection waits
// meanwhile while others are served.
//
// Built on Boost.Beast (HTTP/1.1 parser and serializer) over Boost.Asio (event
// loop, timers, TLS through OpenSSL). Of Debian 12's libraries that do HTTP
// and TLS, it is the one that keeps every defence Rio needs:
//  - libmicrohttpd 0.9.75 has connection limits in all and per address and
//    suspend/resume, but its parser (read in its source) joins an obs-folded
//    line onto the header's *name* (so "Content-Length: 1\r\n 0" loses its
//    Content-Length and the body is read as the next request), accepts
//    whitespace before the colon, reads a body of unknown Transfer-Encoding
//    until the peer closes, only offers an inactivity timeout (a client
//    trickling bytes is never cut off), and brings GnuTLS beside the OpenSSL
//    Rio already uses;
//  - civetweb 1.15 and cpp-httplib 0.11 serve each connection on a blocking
//    worker thread, so a slow client holds a thread and an asynchronous API
//    call would too, and neither limits connections per client address;
//  - Beast's parser is strict (it refuses Content-Length with
//    Transfer-Encoding, differing Content-Lengths, malformed lines and
//    over-long heads), Asio's timers give absolute per-request deadlines,
//    a Responder posts to the loop, and each TLS connection keeps the
//    OpenSSL context it started with, so a reloaded certificate serves new
//    connections while old ones carry on. It is header-only.
// What stays ours is small: connection bookkeeping and limits, refusing
// obs-fold and Transfer-Encoding, and the request's framing by Content-Length
// (ParseRequestHead, fuzzed).
//
// Thread-safety: Start/Stop from one thread. Routes are registered before
// Start and constant after. Responders may be called from any thread, also
// after Stop (the response is then dropped). ReloadCertificate may be called
// from any thread.
#ifndef RIO_SERVER_HTTP_HTTP_SERVER_H_
#define RIO_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rio::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string query;   // raw, without '?'
  // Header names lower-cased.
  std::map<std::string, std::string> headers;
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::map<std::string, std::string> headers;
  std::string body;
};

// A request head and what it says about the connection.
struct RequestHead {
  Request request;  // Without the body.
  // Bytes of input the head takes: blank lines before the request line and
  // the final empty line included. The body follows.
  size_t head_bytes = 0;
  size_t body_bytes = 0;  // Content-Length; 0 when absent.
  bool http10 = false;
  // False after "Connection: close", or for HTTP/1.0 without
  // "Connection: keep-alive".
  bool keep_alive = true;
  bool expect_continue = false;  // An HTTP/1.1 "Expect: 100-continue".
};

// Parses the request head at the start of `in`, as the server does with what
// a client sends (RFC 9112; origin-form targets, HTTP/1.0 and 1.1, framed by
// Content-Length only): Beast's parser reads the head once it is complete,
// and the checks around it refuse what Beast would tolerate. Returns 0 while
// `in` holds no complete head yet, 200 with `*head` set once it does, or else
// the status to answer with before closing: 400 malformed (including
// obs-fold, a Content-Length that is not one decimal number, and
// Content-Length with Transfer-Encoding), 411 Transfer-Encoding, 413 a body
// over 8 MiB, 417 an Expect other than 100-continue, 431 a head over 64 KiB,
// 505 another HTTP version. `*head` is left alone unless the result is 200.
// Thread-safe.
int ParseRequestHead(absl::string_view in, RequestHead* head);

using Handler = std::function<Response(const Request&)>;

// Answers one asynchronous request. Copyable, callable from any thread; the
// first call wins. A request not answered within the server's handler
// timeout (60 s) has its connection closed.
using Responder = std::function<void(Response)>;
using AsyncHandler = std::function<void(const Request&, Responder)>;

// How a route takes its requests.
struct RouteOptions {
  // A larger Content-Length is answered 413 without reading the body.
  size_t max_body_bytes = 64 * 1024;
  // Called with the request's head (no body yet) before the body is read:
  // a response returned is sent instead and the connection closed, so an
  // unauthenticated client cannot make the server buffer a body.
  std::function<std::optional<Response>(const Request& head)> check_head;
};

class HttpServer {
 public:
  struct Options {
    // Open connections in all, and from one client address; past the first
    // the listener waits, past the second a new connection is closed at
    // once.
    size_t max_connections = 1024;
    size_t max_connections_per_client = 64;

    // A connection with no request under way is closed after
    // `idle_timeout`; a request's head and body must arrive within
    // `request_timeout` of its first byte (however slowly it trickles); an
    // asynchronous handler that has not answered after `handler_timeout`
    // gets its client a 504.
    absl::Duration idle_timeout = absl::Seconds(60);
    absl::Duration request_timeout = absl::Seconds(30);
    absl::Duration handler_timeout = absl::Seconds(60);

    // PEM files of the certificate (chain, leaf first) and its private key.
    // Both set: the listener speaks HTTPS (TLS 1.2 or later) only, and a
    // plaintext request is answered 400 and closed. Both empty: plain HTTP.
    std::string tls_cert_file;
    std::string tls_key_file;
  };

  HttpServer() : HttpServer(Options()) {}
  explicit HttpServer(Options options);
  ~HttpServer();  // Stops if running.
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact-path route for any method. Unknown paths answer 404.
  void Route(std::string path, Handler handler, RouteOptions options = {});
  // Route for every path starting with `prefix` (longest prefix wins; exact
  // routes win over prefixes).
  void RoutePrefix(std::string prefix, Handler handler,
                   RouteOptions options = {});
  // Route for every path starting with `prefix`, answered asynchronously.
  // Same precedence as RoutePrefix.
  void RoutePrefixAsync(std::string prefix, AsyncHandler handler,
                        RouteOptions options = {});

  // Binds `address` ("host:port"; port 0 picks a free one) and starts serving.
  // Returns the bound "host:port", or an error naming the address, or naming
  // the certificate or key file that cannot be used.
  absl::StatusOr<std::string> Start(const std::string& address);
  // Whether the listener speaks HTTPS (the options name a certificate).
  bool tls() const;
  // Reads the certificate and key files again. On success, connections
  // accepted from now on use them, while open connections keep the
  // certificate they started with; on error (naming the file) the current
  // certificate stays. FAILED_PRECONDITION without TLS. Any thread.
  absl::Status ReloadCertificate();
  // Closes the listener and open connections and joins the thread.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rio::http

#endif  // RIO_SERVER_HTTP_HTTP_SERVER_H_
