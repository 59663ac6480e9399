#include "server/util/tls_files.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::util {
namespace {

// Larger than any sane chain or CA bundle; stops a mistaken path (a device,
// a huge file) from being read whole.
constexpr size_t kMaxPemBytes = 4 << 20;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::Status InvalidAt(absl::string_view where, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", problem));
}

absl::Status Invalid(const char* flag, const std::string& path,
                     absl::string_view problem) {
  return InvalidAt(absl::StrCat(flag, " ", path), problem);
}

// OpenSSL's reason for the last failure, and a clean error queue.
std::string OpenSslReason() {
  const unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "no details";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : absl::StrCat("OpenSSL error ", code);
}

absl::StatusOr<std::string> ReadPem(const char* flag, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Invalid(flag, path,
                   absl::StrCat("cannot read it: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[16384];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, n);
    if (text.size() > kMaxPemBytes) break;
  }
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) {
    return Invalid(flag, path,
                   absl::StrCat("cannot read it: ", std::strerror(error)));
  }
  if (text.size() > kMaxPemBytes) {
    return Invalid(flag, path,
                   absl::StrCat("is larger than ", kMaxPemBytes, " bytes"));
  }
  return text;
}

// Every certificate in `pem`, in order; INVALID_ARGUMENT when there is none
// or one does not parse.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view where,
                                                       absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> certificates;
  while (true) {
    X509Ptr certificate(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (certificate == nullptr) break;
    certificates.push_back(std::move(certificate));
  }
  // Running out of PEM blocks is how the loop ends; anything else is a
  // malformed block.
  const unsigned long error = ERR_peek_last_error();
  if (error != 0 && !(ERR_GET_LIB(error) == ERR_LIB_PEM &&
                      ERR_GET_REASON(error) == PEM_R_NO_START_LINE)) {
    return InvalidAt(where, absl::StrCat("has a malformed PEM certificate (",
                                         OpenSslReason(), ")"));
  }
  ERR_clear_error();
  if (certificates.empty()) {
    return InvalidAt(where,
                     "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  return certificates;
}

// A PEM password callback that refuses: an encrypted key cannot be used by
// a server that restarts unattended.
int NoPassword(char*, int, int, void*) { return -1; }

absl::StatusOr<PkeyPtr> ParsePrivateKey(absl::string_view where,
                                        absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassword, nullptr));
  if (key == nullptr) {
    return InvalidAt(
        where,
        absl::StrCat("holds no usable PEM private key (", OpenSslReason(),
                     "); encrypted keys are not supported"));
  }
  return key;
}

std::string Subject(X509* certificate) {
  BioPtr out(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(out.get(), X509_get_subject_name(certificate), 0,
                     XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string Serial(X509* certificate) {
  std::unique_ptr<BIGNUM, BnFree> bn(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr));
  if (bn == nullptr) return "?";
  char* hex = BN_bn2hex(bn.get());
  std::string serial = hex != nullptr ? hex : "?";
  OPENSSL_free(hex);
  return serial;
}

absl::Time NotAfter(X509* certificate) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) != 1) {
    return absl::InfinitePast();
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

}  // namespace

absl::Status CheckTlsFilePaths(const TlsFilePaths& paths) {
  if (!paths.cert_file.empty() && paths.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert needs --tls_key (the certificate's private key)");
  }
  if (paths.cert_file.empty() && !paths.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_key needs --tls_cert (the certificate it belongs to)");
  }
  if (paths.cert_file.empty() && !paths.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca needs --tls_cert and --tls_key (client certificates "
        "are checked only over TLS)");
  }
  return absl::OkStatus();
}

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFilePaths& paths) {
  RIO_RETURN_IF_ERROR(CheckTlsFilePaths(paths));
  ERR_clear_error();
  TlsMaterial material;
  RIO_ASSIGN_OR_RETURN(material.cert_chain_pem,
                       ReadPem("--tls_cert", paths.cert_file));
  RIO_ASSIGN_OR_RETURN(material.private_key_pem,
                       ReadPem("--tls_key", paths.key_file));
  RIO_ASSIGN_OR_RETURN(
      std::vector<X509Ptr> chain,
      ParseCertificates(absl::StrCat("--tls_cert ", paths.cert_file),
                        material.cert_chain_pem));
  RIO_ASSIGN_OR_RETURN(
      PkeyPtr key, ParsePrivateKey(absl::StrCat("--tls_key ", paths.key_file),
                                   material.private_key_pem));
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return Invalid("--tls_key", paths.key_file,
                   absl::StrCat("does not belong to the certificate in ",
                                paths.cert_file, " (", Subject(leaf), ")"));
  }
  material.subject = Subject(leaf);
  material.serial = Serial(leaf);
  material.not_after = NotAfter(leaf);

  if (!paths.client_ca_file.empty()) {
    RIO_ASSIGN_OR_RETURN(material.client_ca_pem,
                         ReadPem("--tls_client_ca", paths.client_ca_file));
    RIO_RETURN_IF_ERROR(ParseCertificates(absl::StrCat("--tls_client_ca ",
                                                       paths.client_ca_file),
                                          material.client_ca_pem)
                            .status());
  }
  return material;
}

std::optional<CertificateSummary> SummarizeCertificate(absl::string_view pem) {
  if (pem.empty()) return std::nullopt;
  BioPtr in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr certificate(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (certificate == nullptr) return std::nullopt;
  return CertificateSummary{Subject(certificate.get()),
                            NotAfter(certificate.get())};
}

absl::StatusOr<std::string> CheckCertifiedKey(absl::string_view cert_pem,
                                              absl::string_view key_pem,
                                              absl::string_view cert_field,
                                              absl::string_view key_field) {
  if (cert_pem.size() > kMaxClientPemBytes) {
    return InvalidAt(cert_field, absl::StrCat("is larger than ",
                                              kMaxClientPemBytes, " bytes"));
  }
  if (key_pem.size() > kMaxClientPemBytes) {
    return InvalidAt(key_field, absl::StrCat("is larger than ",
                                             kMaxClientPemBytes, " bytes"));
  }
  ERR_clear_error();
  RIO_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                       ParseCertificates(cert_field, cert_pem));
  RIO_ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey(key_field, key_pem));
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return InvalidAt(key_field,
                     absl::StrCat("does not belong to the ", cert_field, " (",
                                  Subject(leaf), ")"));
  }
  return Subject(leaf);
}

absl::StatusOr<std::unique_ptr<TlsFiles>> TlsFiles::Open(TlsFilePaths paths) {
  if (!TlsRequested(paths)) {
    RIO_RETURN_IF_ERROR(CheckTlsFilePaths(paths));
    return absl::InvalidArgumentError("--tls_cert is not set");
  }
  RIO_ASSIGN_OR_RETURN(TlsMaterial material, LoadTlsMaterial(paths));
  return std::unique_ptr<TlsFiles>(
      new TlsFiles(std::move(paths), std::move(material)));
}

TlsFiles::TlsFiles(TlsFilePaths paths, TlsMaterial material)
    : paths_(std::move(paths)) {
  material.generation = 1;
  current_ = std::make_shared<const TlsMaterial>(std::move(material));
}

absl::Status TlsFiles::Reload() {
  absl::MutexLock serial(&reload_mu_);
  RIO_ASSIGN_OR_RETURN(TlsMaterial material, LoadTlsMaterial(paths_));
  absl::MutexLock lock(&mu_);
  material.generation = current_->generation + 1;
  current_ = std::make_shared<const TlsMaterial>(std::move(material));
  return absl::OkStatus();
}

std::shared_ptr<const TlsMaterial> TlsFiles::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

}  // namespace rio::util
