#include "server/api/tls_credentials.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/grpc.h"
#include "grpc/grpc_security.h"

namespace rio::api {
namespace {

// The state the core credentials' fetcher reads; owned by the C++
// credentials object, which the server keeps alive.
class CertificateFetcher {
 public:
  explicit CertificateFetcher(std::shared_ptr<const util::TlsFiles> files)
      : files_(std::move(files)) {}

  static grpc_ssl_certificate_config_reload_status Fetch(
      void* self, grpc_ssl_server_certificate_config** config) {
    return static_cast<CertificateFetcher*>(self)->Fetch(config);
  }

 private:
  grpc_ssl_certificate_config_reload_status Fetch(
      grpc_ssl_server_certificate_config** config) {
    std::shared_ptr<const util::TlsMaterial> material = files_->Current();
    {
      absl::MutexLock lock(&mu_);
      if (material->generation == delivered_) {
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
      }
      delivered_ = material->generation;
    }
    grpc_ssl_pem_key_cert_pair pair{material->private_key_pem.c_str(),
                                    material->cert_chain_pem.c_str()};
    // gRPC 1.51 insists on root certificates in a fetched config even when
    // it asks for no client certificate (and then never uses them): the
    // server's own chain stands in.
    const std::string& roots = material->client_ca_pem.empty()
                                   ? material->cert_chain_pem
                                   : material->client_ca_pem;
    // Copies the strings; gRPC takes ownership of the config.
    *config =
        grpc_ssl_server_certificate_config_create(roots.c_str(), &pair, 1);
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }

  const std::shared_ptr<const util::TlsFiles> files_;
  absl::Mutex mu_;
  uint64_t delivered_ ABSL_GUARDED_BY(mu_) = 0;  // Generation handed to gRPC.
};

// What grpc::SslServerCredentials builds, but on the fetcher API: a
// grpc::ServerCredentials that adds its port with core credentials.
class ReloadingCredentials final : public grpc::ServerCredentials {
 public:
  explicit ReloadingCredentials(std::shared_ptr<const util::TlsFiles> files)
      : fetcher_(files) {
    const grpc_ssl_client_certificate_request_type request =
        files->Current()->client_ca_pem.empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    grpc_ssl_server_credentials_options* options =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            request, &CertificateFetcher::Fetch, &fetcher_);
    credentials_ = grpc_ssl_server_credentials_create_with_options(options);
  }
  ~ReloadingCredentials() override {
    grpc_server_credentials_release(credentials_);
  }

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    // Rio authenticates in its handlers; nothing installs a processor.
    std::fprintf(stderr,
                 "rio-server: internal error: an auth metadata processor on "
                 "reloading TLS credentials is not supported\n");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& address,
                      grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }

  CertificateFetcher fetcher_;
  grpc_server_credentials* credentials_ = nullptr;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> ReloadingTlsServerCredentials(
    std::shared_ptr<const util::TlsFiles> files) {
  return std::make_shared<ReloadingCredentials>(std::move(files));
}

}  // namespace rio::api
