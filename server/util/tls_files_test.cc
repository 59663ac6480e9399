#include "server/util/tls_files.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

namespace rio::util {
namespace {

using testkit::TestCertificates;

class TlsFilesTest : public ::testing::Test {
 protected:
  // One set of certificates for the suite (openssl takes a second).
  static void SetUpTestSuite() {
    auto made = TestCertificates::Make();
    ASSERT_TRUE(made.ok()) << made.status();
    certs_ = std::move(made).value().release();
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  // Copies certificate files under names that a test then rewrites.
  TlsFilePaths Installed(const std::string& cert, const std::string& key) {
    Install(cert, "live.pem");
    Install(key, "live.key");
    return TlsFilePaths{certs_->Path("live.pem"), certs_->Path("live.key"), ""};
  }
  void Install(const std::string& from, const std::string& to) {
    std::filesystem::copy_file(
        certs_->Path(from), certs_->Path(to),
        std::filesystem::copy_options::overwrite_existing);
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(certs_->Path(name), std::ios::binary | std::ios::trunc)
        << text;
  }

  static TestCertificates* certs_;
};

TestCertificates* TlsFilesTest::certs_ = nullptr;

TEST_F(TlsFilesTest, LoadsCertificateKeyAndClientCa) {
  auto material =
      LoadTlsMaterial({certs_->Path("server.pem"), certs_->Path("server.key"),
                       certs_->Path("ca.pem")});
  ASSERT_TRUE(material.ok()) << material.status();
  EXPECT_EQ(material->cert_chain_pem, certs_->Read("server.pem"));
  EXPECT_EQ(material->private_key_pem, certs_->Read("server.key"));
  EXPECT_EQ(material->client_ca_pem, certs_->Read("ca.pem"));
  EXPECT_EQ(material->subject, "CN=localhost");
  EXPECT_EQ(material->serial, "1001");
  EXPECT_GT(material->not_after, absl::Now() + absl::Hours(47));
  EXPECT_LT(material->not_after, absl::Now() + absl::Hours(49));
}

TEST_F(TlsFilesTest, NoClientCaMeansNoClientCertificates) {
  auto material = LoadTlsMaterial(
      {certs_->Path("server.pem"), certs_->Path("server.key"), ""});
  ASSERT_TRUE(material.ok()) << material.status();
  EXPECT_EQ(material->client_ca_pem, "");
}

TEST_F(TlsFilesTest, FlagsMustComeTogether) {
  EXPECT_EQ(CheckTlsFilePaths({"cert.pem", "", ""}),
            absl::InvalidArgumentError(
                "--tls_cert needs --tls_key (the certificate's private key)"));
  EXPECT_EQ(CheckTlsFilePaths({"", "key.pem", ""}),
            absl::InvalidArgumentError(
                "--tls_key needs --tls_cert (the certificate it belongs to)"));
  EXPECT_EQ(CheckTlsFilePaths({"", "", "ca.pem"}),
            absl::InvalidArgumentError(
                "--tls_client_ca needs --tls_cert and --tls_key (client "
                "certificates are checked only over TLS)"));
  EXPECT_TRUE(CheckTlsFilePaths({"", "", ""}).ok());
  EXPECT_FALSE(TlsRequested({"", "", ""}));
  EXPECT_TRUE(TlsRequested({"cert.pem", "key.pem", ""}));
}

TEST_F(TlsFilesTest, UnreadableFileIsNamed) {
  const std::string missing = certs_->Path("missing.pem");
  EXPECT_EQ(LoadTlsMaterial({missing, certs_->Path("server.key"), ""}).status(),
            absl::InvalidArgumentError(
                absl::StrCat("--tls_cert ", missing,
                             ": cannot read it: No such file or directory")));
  EXPECT_EQ(LoadTlsMaterial({certs_->Path("server.pem"), missing, ""}).status(),
            absl::InvalidArgumentError(
                absl::StrCat("--tls_key ", missing,
                             ": cannot read it: No such file or directory")));
  EXPECT_EQ(LoadTlsMaterial({certs_->Path("server.pem"),
                             certs_->Path("server.key"), missing})
                .status(),
            absl::InvalidArgumentError(
                absl::StrCat("--tls_client_ca ", missing,
                             ": cannot read it: No such file or directory")));
}

TEST_F(TlsFilesTest, KeyOfAnotherCertificateIsRefused) {
  EXPECT_EQ(LoadTlsMaterial(
                {certs_->Path("server.pem"), certs_->Path("client.key"), ""})
                .status(),
            absl::InvalidArgumentError(
                absl::StrCat("--tls_key ", certs_->Path("client.key"),
                             ": does not belong to the certificate in ",
                             certs_->Path("server.pem"), " (CN=localhost)")));
}

TEST_F(TlsFilesTest, FilesWithoutPemAreRefused) {
  Write("empty.pem", "");
  Write("garbage.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END "
        "CERTIFICATE-----\n");
  EXPECT_EQ(LoadTlsMaterial(
                {certs_->Path("empty.pem"), certs_->Path("server.key"), ""})
                .status(),
            absl::InvalidArgumentError(
                absl::StrCat("--tls_cert ", certs_->Path("empty.pem"),
                             ": holds no PEM certificate (-----BEGIN "
                             "CERTIFICATE-----)")));
  const absl::Status garbage = LoadTlsMaterial({certs_->Path("garbage.pem"),
                                                certs_->Path("server.key"), ""})
                                   .status();
  EXPECT_EQ(garbage.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StartsWith(garbage.message(),
                       absl::StrCat("--tls_cert ", certs_->Path("garbage.pem"),
                                    ": has a malformed PEM certificate (")))
      << garbage;
  const absl::Status no_key = LoadTlsMaterial({certs_->Path("server.pem"),
                                               certs_->Path("server.pem"), ""})
                                  .status();
  EXPECT_EQ(no_key.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(
      no_key.message(), absl::StrCat("--tls_key ", certs_->Path("server.pem"),
                                     ": holds no usable PEM private key (")))
      << no_key;
  EXPECT_EQ(
      LoadTlsMaterial({certs_->Path("server.pem"), certs_->Path("server.key"),
                       certs_->Path("empty.pem")})
          .status(),
      absl::InvalidArgumentError(
          absl::StrCat("--tls_client_ca ", certs_->Path("empty.pem"),
                       ": holds no PEM certificate (-----BEGIN "
                       "CERTIFICATE-----)")));
}

TEST_F(TlsFilesTest, ReloadReplacesOnlyWithValidFiles) {
  auto files = TlsFiles::Open(Installed("server.pem", "server.key"));
  ASSERT_TRUE(files.ok()) << files.status();
  std::shared_ptr<const TlsMaterial> first = (*files)->Current();
  EXPECT_EQ(first->generation, 1u);
  EXPECT_EQ(first->subject, "CN=localhost");

  Install("server2.pem", "live.pem");
  Install("server2.key", "live.key");
  ASSERT_TRUE((*files)->Reload().ok());
  std::shared_ptr<const TlsMaterial> second = (*files)->Current();
  EXPECT_EQ(second->generation, 2u);
  EXPECT_EQ(second->subject, "CN=rio-rotated");
  EXPECT_EQ(second->serial, "1002");
  EXPECT_EQ(first->subject, "CN=localhost");  // Earlier snapshots stay valid.

  // Half a rotation: the new certificate, the old key.
  Install("server.pem", "live.pem");
  const absl::Status half = (*files)->Reload();
  EXPECT_EQ(half.code(), absl::StatusCode::kInvalidArgument) << half;
  EXPECT_EQ((*files)->Current(), second);
}

TEST_F(TlsFilesTest, OpenWithoutCertificateIsRefused) {
  EXPECT_EQ(TlsFiles::Open({"", "", ""}).status(),
            absl::InvalidArgumentError("--tls_cert is not set"));
}

}  // namespace
}  // namespace rio::util
