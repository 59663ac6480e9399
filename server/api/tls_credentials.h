// gRPC server credentials for TLS (and mTLS) whose certificate, key and
// client CA come from a util::TlsFiles, so that a reload (SIGHUP) takes
// effect without a restart.
//
// Why this shape: gRPC 1.51's core SSL server credentials accept a
// certificate config fetcher that the listener asks on every new handshake
// (grpc_ssl_server_credentials_create_options_using_config_fetcher). The
// fetcher answers "unchanged" until TlsFiles::Reload() has produced a new
// generation, and then hands over the new PEM text once; gRPC builds a new
// handshaker factory from it for this and later handshakes, while
// connections already open keep their TLS sessions, so nothing is dropped.
// The C++ alternatives do not fit: FileWatcherCertificateProvider re-reads
// the files on a timer (not on the operator's signal, and may pick up a
// certificate whose key is not written yet), StaticDataCertificateProvider
// never changes, and a custom certificate provider is not public API in 1.51.
//
// With a client CA, clients must present a certificate it signed
// (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY); a client
// without one fails the handshake.
//
// Thread-safety: the credentials may be used by one server; the fetcher is
// called from gRPC's threads and only reads TlsFiles::Current().
#ifndef RIO_SERVER_API_TLS_CREDENTIALS_H_
#define RIO_SERVER_API_TLS_CREDENTIALS_H_

#include <memory>

#include "grpcpp/security/server_credentials.h"
#include "server/util/tls_files.h"

namespace rio::api {

// Credentials serving `files`' latest material. Whether client certificates
// are required is decided now, from whether `files` has a client CA. Keep the
// returned pointer alive as long as the server that uses it (the fetcher
// lives in it).
std::shared_ptr<grpc::ServerCredentials> ReloadingTlsServerCredentials(
    std::shared_ptr<const util::TlsFiles> files);

}  // namespace rio::api

#endif  // RIO_SERVER_API_TLS_CREDENTIALS_H_
