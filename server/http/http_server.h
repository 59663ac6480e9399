// A small HTTP/1.1 server for operational endpoints (/healthz, /metrics and
// the dashboard's assets and JSON API). It runs its own thread; handlers are
// called on that thread, one request at a time, and must not block for long.
// Asynchronous handlers return at once and answer later, from any thread,
// through their Responder; the connection waits meanwhile while others are
// served.
//
// Thread-safety: Start/Stop from one thread. Routes are registered before
// Start and constant after. Responders may be called from any thread, also
// after Stop (the response is then dropped).
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

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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
// Content-Length only). Returns 0 while `in` holds no complete head yet, 200
// with `*head` set once it does, or else the status to answer with before
// closing: 400 malformed, 411 Transfer-Encoding, 413 a body over 8 MiB, 417
// an Expect other than 100-continue, 431 a head over 64 KiB, 505 another HTTP
// version. `*head` is left alone unless the result is 200. Thread-safe.
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
  // Returns the bound "host:port", or an error naming the address.
  absl::StatusOr<std::string> Start(const std::string& address);
  // Closes the listener and open connections and joins the thread.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rio::http

#endif  // RIO_SERVER_HTTP_HTTP_SERVER_H_
