// The dashboard: a single page (web/, embedded into the binary at build
// time) served at "/" and "/assets/...", and the JSON API it talks to at
// /api/v1/ (json_api.h). Everything the page does goes through that API.
//
// Thread-safety: the functions are pure or only read constant data.
#ifndef RIO_SERVER_HTTP_DASHBOARD_H_
#define RIO_SERVER_HTTP_DASHBOARD_H_

#include <cstddef>

#include "absl/strings/string_view.h"
#include "server/http/http_server.h"

namespace rio::http {

class JsonApi;

// One file of web/, as embedded by the build (web_assets.cc, generated).
struct WebAsset {
  const char* name;  // path under web/, e.g. "app.js"
  const char* data;
  size_t size;
};
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

// Content-Security-Policy (same-origin scripts, styles and requests; no
// inline script, no framing), nosniff, no referrer.
void AddSecurityHeaders(Response& response);

// Content-Type by file extension.
absl::string_view ContentTypeForAsset(absl::string_view name);

// Answers GET/HEAD of "/" (index.html) and "/assets/<name>" from the
// embedded files, with an ETag (If-None-Match -> 304) and "no-cache", so a
// new build is picked up at once. 404 for unknown names, 405 for other
// methods.
Response ServeDashboardAsset(const Request& request);

// Routes "/", "/assets/" and the JSON API (answered asynchronously).
// `api` must outlive `server`'s running.
void AddDashboardRoutes(HttpServer& server, JsonApi* api);

}  // namespace rio::http

#endif  // RIO_SERVER_HTTP_DASHBOARD_H_
