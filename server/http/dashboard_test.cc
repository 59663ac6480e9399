#include "server/http/dashboard.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace rio::http {
namespace {

Request Get(const std::string& path) {
  Request request;
  request.method = "GET";
  request.path = path;
  return request;
}

TEST(WebAssets, EmbedsThePageItsScriptAndStyles) {
  std::set<std::string> names;
  for (size_t i = 0; i < kWebAssetCount; ++i) {
    names.insert(kWebAssets[i].name);
    EXPECT_GT(kWebAssets[i].size, 0u) << kWebAssets[i].name;
  }
  EXPECT_EQ(names.count("index.html"), 1u);
  EXPECT_EQ(names.count("app.js"), 1u);
  EXPECT_EQ(names.count("app.css"), 1u);
}

TEST(ServeDashboardAsset, RootIsTheIndexPageWithSecurityHeaders) {
  Response response = ServeDashboardAsset(Get("/"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/html; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(response.body, "<script src=\"assets/app.js\""))
      << response.body;
  EXPECT_EQ(response.headers.at("Cache-Control"), "no-cache");
  const std::string csp = response.headers.at("Content-Security-Policy");
  EXPECT_TRUE(absl::StrContains(csp, "default-src 'self'")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "script-src 'self';")) << csp;
  EXPECT_FALSE(absl::StrContains(csp, "unsafe-inline")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "frame-ancestors 'none'")) << csp;
  EXPECT_EQ(response.headers.at("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(response.headers.at("Referrer-Policy"), "no-referrer");
}

TEST(ServeDashboardAsset, AssetsHaveTheirContentType) {
  Response js = ServeDashboardAsset(Get("/assets/app.js"));
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  Response css = ServeDashboardAsset(Get("/assets/app.css"));
  EXPECT_EQ(css.status, 200);
  EXPECT_EQ(css.content_type, "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeForAsset("x.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeForAsset("x.bin"), "application/octet-stream");
}

TEST(ServeDashboardAsset, UnknownNamesAre404AndOtherMethods405) {
  EXPECT_EQ(ServeDashboardAsset(Get("/assets/")).status, 404);
  EXPECT_EQ(ServeDashboardAsset(Get("/assets/nope.js")).status, 404);
  EXPECT_EQ(ServeDashboardAsset(Get("/assets/../index.html")).status, 404);
  EXPECT_EQ(ServeDashboardAsset(Get("/index.html")).status, 404);
  Request post = Get("/");
  post.method = "POST";
  Response response = ServeDashboardAsset(post);
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.headers.at("Allow"), "GET, HEAD");
}

TEST(ServeDashboardAsset, MatchingETagIs304) {
  Response first = ServeDashboardAsset(Get("/assets/app.js"));
  const std::string etag = first.headers.at("ETag");
  EXPECT_EQ(etag.size(), 18u);
  Request again = Get("/assets/app.js");
  again.headers["if-none-match"] = etag;
  Response second = ServeDashboardAsset(again);
  EXPECT_EQ(second.status, 304);
  EXPECT_EQ(second.body, "");
  again.headers["if-none-match"] = "\"0000000000000000\"";
  EXPECT_EQ(ServeDashboardAsset(again).status, 200);
}

}  // namespace
}  // namespace rio::http
