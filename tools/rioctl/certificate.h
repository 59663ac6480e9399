// A handler's client certificate as rioctl shows it, and the PEM files that
// `--client-cert`, `--client-key` and a project file's
// `client_certificate_file` / `client_key_file` name.
//
// Pure functions (and one file read); thread-compatible.
#ifndef RIO_TOOLS_RIOCTL_CERTIFICATE_H_
#define RIO_TOOLS_RIOCTL_CERTIFICATE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/util/tls_files.h"

namespace rio::rioctl {

// What a masked write-only value looks like in the server's replies
// (U+2022 three times).
inline constexpr char kMaskedValue[] = "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2";

// "CN=rio-test-client, expires 2030-01-01T00:00:00Z (in 3d)"; "none" when
// `pem` is empty; "set (not a readable PEM certificate)" when it does not
// parse.
std::string ClientCertificateLine(absl::string_view pem, absl::Time now);
// The subject alone ("set" when it does not parse, "none" when empty), for
// apply's plans.
std::string ClientCertificateName(absl::string_view pem);
// "•••" when a key is set, "none" when not: never the key itself.
std::string ClientKeyLine(absl::string_view key);

// The contents of a PEM file that `what` (a flag; may be empty) names:
// NOT_FOUND "cannot read WHAT PATH: REASON", or INVALID_ARGUMENT "WHAT PATH:
// is larger than 65536 bytes" (what the server accepts).
absl::StatusOr<std::string> ReadPemFile(absl::string_view what,
                                        const std::string& path);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_CERTIFICATE_H_
