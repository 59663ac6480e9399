#include "tools/rioctl/certificate.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "server/util/tls_files.h"
#include "tools/rioctl/output.h"
#include "tools/rioctl/views.h"

namespace rio::rioctl {

using util::CertificateSummary;
using util::SummarizeCertificate;

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
