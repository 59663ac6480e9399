#include "server/http/dashboard.h"

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/http/json_api.h"

namespace rio::http {
namespace {

const WebAsset* FindAsset(absl::string_view name) {
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    if (name == kWebAssets[i].name) return &kWebAssets[i];
  }
  return nullptr;
}

// A strong validator for the embedded bytes: 64-bit FNV-1a.
std::string ETagFor(const WebAsset& asset) {
  uint64_t hash = 1469598103934665603ULL;
  for (size_t i = 0; i < asset.size; ++i) {
    hash ^= static_cast<unsigned char>(asset.data[i]);
    hash *= 1099511628211ULL;
  }
  return absl::StrCat("\"", absl::Hex(hash, absl::kZeroPad16), "\"");
}

Response PlainError(int status, absl::string_view text) {
  Response response;
  response.status = status;
  response.body = absl::StrCat(text, "\n");
  AddSecurityHeaders(response);
  return response;
}

}  // namespace

void AddSecurityHeaders(Response& response) {
  response.headers["Content-Security-Policy"] =
      "default-src 'self'; script-src 'self'; style-src 'self'; "
      "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
      "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  response.headers["X-Content-Type-Options"] = "nosniff";
  response.headers["X-Frame-Options"] = "DENY";
  response.headers["Referrer-Policy"] = "no-referrer";
  response.headers["Cross-Origin-Opener-Policy"] = "same-origin";
  response.headers["Cross-Origin-Resource-Policy"] = "same-origin";
}

absl::string_view ContentTypeForAsset(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(name, ".png")) return "image/png";
  if (absl::EndsWith(name, ".json")) return "application/json";
  return "application/octet-stream";
}

Response ServeDashboardAsset(const Request& request) {
  absl::string_view name;
  if (request.path == "/") {
    name = "index.html";
  } else {
    name = request.path;
    if (!absl::ConsumePrefix(&name, "/assets/")) {
      return PlainError(404, "not found");
    }
  }
  const WebAsset* asset = name.empty() ? nullptr : FindAsset(name);
  if (asset == nullptr) return PlainError(404, "not found");
  if (request.method != "GET" && request.method != "HEAD") {
    Response response = PlainError(405, "method not allowed");
    response.headers["Allow"] = "GET, HEAD";
    return response;
  }
  Response response;
  response.content_type = std::string(ContentTypeForAsset(name));
  response.headers["Cache-Control"] = "no-cache";
  const std::string etag = ETagFor(*asset);
  response.headers["ETag"] = etag;
  AddSecurityHeaders(response);
  auto match = request.headers.find("if-none-match");
  if (match != request.headers.end() &&
      absl::StrContains(match->second, etag)) {
    response.status = 304;
    return response;
  }
  if (request.method == "GET") response.body.assign(asset->data, asset->size);
  return response;
}

void AddDashboardRoutes(HttpServer& server, JsonApi* api) {
  server.Route("/", ServeDashboardAsset);
  server.RoutePrefix("/assets/", ServeDashboardAsset);
  RouteOptions api_options;
  api_options.max_body_bytes = api->options().max_body_bytes;
  api_options.check_head = [api](const Request& head) {
    return api->CheckHead(head);
  };
  server.RoutePrefixAsync(
      std::string(kJsonApiPrefix),
      [api](const Request& request, Responder respond) {
        api->Handle(request, std::move(respond));
      },
      std::move(api_options));
}

}  // namespace rio::http
