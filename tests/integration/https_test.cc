// The HTTP listener of the real rio-server over HTTPS: --tls_cert/--tls_key,
// a plaintext request refused, and SIGHUP swapping the certificate for new
// connections while an open one keeps working.
#include <curl/curl.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using testkit::PgCluster;
using testkit::ServerProcess;
using testkit::TestCertificates;
using testkit::WaitFor;

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  long num_connects = -1;
  std::string subject;  // Of the server's certificate, on a new connection.
};

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// GETs `url` on `curl` (reusing its connection), trusting `ca` when set.
Reply Get(CURL* curl, const std::string& url, const std::string& ca = "") {
  Reply reply;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_CERTINFO, 1L);
  if (!ca.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
  reply.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &reply.num_connects);
  curl_certinfo* info = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CERTINFO, &info);
  if (info != nullptr && info->num_of_certs > 0) {
    for (curl_slist* line = info->certinfo[0]; line != nullptr;
         line = line->next) {
      if (absl::StartsWith(line->data, "Subject:")) reply.subject = line->data;
    }
  }
  return reply;
}

class HttpsListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certificates = TestCertificates::Make();
    ASSERT_TRUE(certificates.ok()) << certificates.status();
    pki_ = *std::move(certificates);
    ASSERT_TRUE(pki_->Install("server").ok());
    auto url = PgCluster::Shared().CreateDatabase("https");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }

  ServerProcess::Options TlsServer() const {
    ServerProcess::Options options;
    options.database_url = url_;
    options.extra_args = {"--tls_cert=" + pki_->Path("active.pem"),
                          "--tls_key=" + pki_->Path("active.key")};
    return options;
  }

  std::unique_ptr<TestCertificates> pki_;
  std::string url_;
};

TEST_F(HttpsListenerTest, ServesHttpsAndReloadsTheCertificateOnSighup) {
  ServerProcess server(TlsServer());
  ASSERT_TRUE(server.Start().ok()) << server.Log();
  EXPECT_TRUE(absl::StrContains(
      server.Log(),
      absl::StrCat("rio-server: dashboard https://", server.http_address())))
      << server.Log();
  const std::string url =
      absl::StrCat("https://", server.http_address(), "/healthz");
  const std::string ca = pki_->Path("ca.pem");

  CurlHandle old_client(curl_easy_init());
  const Reply first = Get(old_client.get(), url, ca);
  ASSERT_EQ(first.code, CURLE_OK) << curl_easy_strerror(first.code);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "ok\n");
  EXPECT_TRUE(absl::StrContains(first.subject, "CN = localhost"))
      << first.subject;

  CurlHandle plain(curl_easy_init());
  const Reply refused = Get(
      plain.get(), absl::StrCat("http://", server.http_address(), "/healthz"));
  ASSERT_EQ(refused.code, CURLE_OK) << curl_easy_strerror(refused.code);
  EXPECT_EQ(refused.status, 400);

  ASSERT_TRUE(pki_->Install("server2").ok());
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    // The gRPC listener logs its own reload first.
    return absl::StrContains(server.Log(),
                             "rio-server: SIGHUP: TLS certificate reloaded "
                             "for new HTTP connections");
  })) << server.Log();
  CurlHandle new_client(curl_easy_init());
  const Reply fresh = Get(new_client.get(), url, ca);
  ASSERT_EQ(fresh.code, CURLE_OK) << curl_easy_strerror(fresh.code);
  EXPECT_TRUE(absl::StrContains(fresh.subject, "CN = rio-rotated"))
      << fresh.subject;

  // The connection from before the reload is still served.
  const Reply reused = Get(old_client.get(), url, ca);
  ASSERT_EQ(reused.code, CURLE_OK) << curl_easy_strerror(reused.code);
  EXPECT_EQ(reused.num_connects, 0);
  EXPECT_EQ(reused.body, "ok\n");

  // A broken file is reported and the certificate in use stays.
  std::ofstream(pki_->Path("active.key")) << "not a key\n";
  ASSERT_EQ(kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(
        server.Log(),
        absl::StrCat("rio-server: SIGHUP: cannot load the TLS private key "
                     "from \"",
                     pki_->Path("active.key"), "\""));
  })) << server.Log();
  CurlHandle after_failure(curl_easy_init());
  const Reply kept = Get(after_failure.get(), url, ca);
  ASSERT_EQ(kept.code, CURLE_OK) << curl_easy_strerror(kept.code);
  EXPECT_TRUE(absl::StrContains(kept.subject, "CN = rio-rotated"))
      << kept.subject;

  EXPECT_EQ(server.Stop(), 0);
}

TEST_F(HttpsListenerTest, UnusableCertificateStopsStartUp) {
  ServerProcess::Options options = TlsServer();
  options.extra_args = {"--tls_cert=" + pki_->Path("absent.pem"),
                        "--tls_key=" + pki_->Path("active.key")};
  ServerProcess server(options);
  EXPECT_FALSE(server.Start().ok());
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(10)), 1);
  EXPECT_TRUE(absl::StrContains(
      server.Log(),
      absl::StrCat("rio-server: --tls_cert ", pki_->Path("absent.pem"),
                   ": cannot read it: No such file or directory")))
      << server.Log();
}

}  // namespace
}  // namespace rio
