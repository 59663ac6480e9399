// Sender DSNs: where Rio is, which credential emits, and into which project.
//
//   rio://SENDER:TOKEN@HOST:PORT/PROJECT      plaintext gRPC
//   rios://SENDER:TOKEN@HOST:PORT/PROJECT     gRPC over TLS
//   http://SENDER:TOKEN@HOST/1/PROJECT        the original Rio's form: http is
//   https://SENDER:TOKEN@HOST/1/PROJECT       plaintext, https is TLS
//
// The last path segment is the project; the port defaults to 50051. The
// sender, token and project may be percent-encoded.
//
// Thread-safety: Dsn is a plain value; ParseDsn is thread-safe.
#ifndef RIO_DSN_H_
#define RIO_DSN_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rio {

inline constexpr int kDefaultPort = 50051;

// A parsed sender DSN. ToString() and operator<< never show the token.
struct Dsn {
  std::string scheme;  // Lower-case: "rio", "rios", "http" or "https".
  std::string host;    // Lower-case; an IPv6 literal without its brackets.
  int port = kDefaultPort;
  std::string sender;
  std::string token;
  std::string project;

  // Whether the scheme asks for TLS (rios, https).
  bool tls() const;
  // "host:port" as gRPC takes it (IPv6 literals in brackets).
  std::string target() const;
  // "scheme://sender:***@host:port/project".
  std::string ToString() const;
};

std::ostream& operator<<(std::ostream& out, const Dsn& dsn);

// Parses a sender DSN (surrounding whitespace is ignored). Touches no
// network.
//
// Returns INVALID_ARGUMENT with a message that names what is wrong and the
// form expected; the message never contains the token.
absl::StatusOr<Dsn> ParseDsn(absl::string_view text);

}  // namespace rio

#endif  // RIO_DSN_H_
