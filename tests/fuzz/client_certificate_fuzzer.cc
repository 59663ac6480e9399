// A handler's client certificate and key as CreateHandler, UpdateHandler and
// rioctl receive them (server/util/tls_files.h): the input is the
// certificate PEM, a NUL byte, then the key PEM.
//
// Invariants: CheckCertifiedKey either accepts (and then the certificate
// summarises to the subject it returned) or answers INVALID_ARGUMENT naming
// one of the two fields; nothing over the size limit is accepted.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/util/tls_files.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t nul = bytes.find('\0');
  const absl::string_view certificate = bytes.substr(0, nul);
  const absl::string_view key = nul == absl::string_view::npos
                                    ? absl::string_view()
                                    : bytes.substr(nul + 1);

  const auto summary = rio::util::SummarizeCertificate(certificate);
  const auto checked = rio::util::CheckCertifiedKey(
      certificate, key, "client_certificate", "client_key");
  if (checked.ok()) {
    FUZZ_CHECK(certificate.size() <= rio::util::kMaxClientPemBytes);
    FUZZ_CHECK(key.size() <= rio::util::kMaxClientPemBytes);
    FUZZ_CHECK(summary.has_value());
    FUZZ_CHECK(summary->subject == *checked);
  } else {
    FUZZ_CHECK(checked.status().code() == absl::StatusCode::kInvalidArgument);
    const absl::string_view message = checked.status().message();
    FUZZ_CHECK(absl::StartsWith(message, "client_certificate: ") ||
               absl::StartsWith(message, "client_key: "));
  }
  return 0;
}
