// The PEM files that put a listener under TLS (--tls_cert, --tls_key and
// --tls_client_ca): read, checked with OpenSSL, and held as text ready for a
// TLS library, so that every listener loads them the same way.
//
// RELOAD. Open() reads the files once; Reload() (rio-server calls it on
// SIGHUP) reads them again and replaces what Current() returns only when the
// new files are valid as a whole, so a half-written rotation never reaches a
// listener: the old certificate stays in use and the error is returned.
// Every replacement carries a larger `generation`, so a listener can tell
// whether it already uses the latest.
//
// Thread-safety: thread-safe. Current() may be called from any thread,
// Reload() from any thread (calls are serialised).
#ifndef RIO_SERVER_UTIL_TLS_FILES_H_
#define RIO_SERVER_UTIL_TLS_FILES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rio::util {

// Where the files are. Error messages name them by their flags.
struct TlsFilePaths {
  std::string cert_file;       // --tls_cert: certificate chain, leaf first
  std::string key_file;        // --tls_key: the leaf's private key
  std::string client_ca_file;  // --tls_client_ca: empty, no client certs
};

// One consistent set of the files' contents.
struct TlsMaterial {
  std::string cert_chain_pem;
  std::string private_key_pem;
  std::string client_ca_pem;  // Empty when no --tls_client_ca.
  // The leaf certificate, for logs: its subject (RFC 2253), serial number
  // (upper-case hex) and end of validity.
  std::string subject;
  std::string serial;
  absl::Time not_after;
  // 1 for what Open() read, one more for each successful Reload().
  uint64_t generation = 0;
};

// Whether TLS is asked for at all, and the flags make sense together:
// --tls_cert and --tls_key both or neither; --tls_client_ca only with them.
// INVALID_ARGUMENT naming the flag that is missing.
absl::Status CheckTlsFilePaths(const TlsFilePaths& paths);
inline bool TlsRequested(const TlsFilePaths& paths) {
  return !paths.cert_file.empty();
}

// Reads and checks the files: each readable; the certificate file holds at
// least one PEM certificate (the first is the leaf); the key is an
// unencrypted PEM private key that belongs to the leaf; the client CA file,
// when given, holds at least one PEM certificate. INVALID_ARGUMENT with a
// message naming the flag, the file and the problem. `generation` is 0.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFilePaths& paths);

// The first certificate of a PEM chain: its subject (RFC 2253,
// "CN=rio-test-client") and the end of its validity.
struct CertificateSummary {
  std::string subject;
  absl::Time not_after;
};
// nullopt when `pem` holds no certificate OpenSSL can parse.
std::optional<CertificateSummary> SummarizeCertificate(absl::string_view pem);

// The most a handler's client certificate chain or key may hold.
inline constexpr size_t kMaxClientPemBytes = 64 << 10;

// Checks a PEM certificate chain and its private key given in memory (a
// handler's client certificate): each at most kMaxClientPemBytes, at least
// one certificate, an unencrypted key that belongs to the first. Returns the
// first certificate's subject; INVALID_ARGUMENT naming `cert_field` or
// `key_field` and the problem.
absl::StatusOr<std::string> CheckCertifiedKey(absl::string_view cert_pem,
                                              absl::string_view key_pem,
                                              absl::string_view cert_field,
                                              absl::string_view key_field);

class TlsFiles {
 public:
  // CheckTlsFilePaths and LoadTlsMaterial; REQUIRES: TlsRequested(paths).
  static absl::StatusOr<std::unique_ptr<TlsFiles>> Open(TlsFilePaths paths);

  // Reads the files again. On success Current() returns the new material
  // (with the next generation); on error it keeps returning the old one.
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(mu_);

  // The latest valid material; never null.
  std::shared_ptr<const TlsMaterial> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  const TlsFilePaths& paths() const { return paths_; }

 private:
  TlsFiles(TlsFilePaths paths, TlsMaterial material);

  const TlsFilePaths paths_;
  absl::Mutex reload_mu_;  // Serialises Reload() (file reads outside mu_).
  mutable absl::Mutex mu_;
  std::shared_ptr<const TlsMaterial> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_TLS_FILES_H_
