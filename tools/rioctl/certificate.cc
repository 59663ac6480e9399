#include "tools/rioctl/certificate.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/util/tls_files.h"
#include "tools/rioctl/output.h"
#include "tools/rioctl/views.h"

namespace rio::rioctl {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

}  // namespace

std::optional<CertificateSummary> SummarizeCertificate(absl::string_view pem) {
  if (pem.empty()) return std::nullopt;
  std::unique_ptr<BIO, BioFree> in(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) return std::nullopt;
  CertificateSummary summary;
  std::unique_ptr<BIO, BioFree> out(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(out.get(), X509_get_subject_name(cert.get()), 0,
                     XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  summary.subject.assign(data, static_cast<size_t>(size));
  std::tm tm{};
  summary.not_after = ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) == 1
                          ? absl::FromTM(tm, absl::UTCTimeZone())
                          : absl::InfinitePast();
  return summary;
}

std::string ClientCertificateLine(absl::string_view pem, absl::Time now) {
  if (pem.empty()) return "none";
  std::optional<CertificateSummary> summary = SummarizeCertificate(pem);
  if (!summary.has_value()) return "set (not a readable PEM certificate)";
  const google::protobuf::Timestamp not_after = ToProto(summary->not_after);
  return absl::StrCat(
      summary->subject.empty() ? "(no subject)" : summary->subject,
      ", expires ", Rfc3339(not_after), " (", Expiry(not_after, now), ")");
}

std::string ClientCertificateName(absl::string_view pem) {
  if (pem.empty()) return "none";
  std::optional<CertificateSummary> summary = SummarizeCertificate(pem);
  if (!summary.has_value() || summary->subject.empty()) return "set";
  return summary->subject;
}

std::string ClientKeyLine(absl::string_view key) {
  return key.empty() ? "none" : kMaskedValue;
}

absl::StatusOr<std::string> ReadPemFile(absl::string_view what,
                                        const std::string& path) {
  const std::string where = what.empty() ? path : absl::StrCat(what, " ", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", where, ": ", strerror(errno)));
  }
  // Read one byte past the limit so that a mistaken path (a device, a huge
  // file) is refused without being read whole.
  std::string text(util::kMaxClientPemBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", where, ": ", strerror(errno)));
  }
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > util::kMaxClientPemBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": is larger than ", util::kMaxClientPemBytes, " bytes"));
  }
  return text;
}

}  // namespace rio::rioctl
