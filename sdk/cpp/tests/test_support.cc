#include "sdk/cpp/tests/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

extern char** environ;

namespace rio::sdk_test {
namespace {

std::unique_ptr<grpc::ClientContext> AdminContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", absl::StrCat("Bearer ", kAdminToken));
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
  return context;
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// The PEM text a BIO holds.
std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

// Exit code as a shell reports it.
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

// ---------------------------------------------------------------------------
// RioServer

absl::Status RioServer::Start() {
  absl::StatusOr<std::string> url =
      testkit::PgCluster::Shared().CreateDatabase("sdkcpp");
  if (!url.ok()) return url.status();
  database_url_ = *url;
  testkit::ServerProcess::Options options;
  options.database_url = database_url_;
  options.admin_token = kAdminToken;
  server_ = std::make_unique<testkit::ServerProcess>(options);
  if (absl::Status started = server_->Start(); !started.ok()) return started;
  projects_ = v1::ProjectService::NewStub(server_->Channel());
  handlers_ = v1::HandlerService::NewStub(server_->Channel());
  if (absl::Status created = CreateProject(kProject); !created.ok()) {
    return created;
  }
  absl::StatusOr<std::string> token = CreateSender(kProject, kSender);
  if (!token.ok()) return token.status();
  token_ = *token;
  return absl::OkStatus();
}

int RioServer::port() const {
  const std::string address = server_->grpc_address();
  int port = 0;
  (void)absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port);
  return port;
}

std::string RioServer::Dsn(const std::string& scheme, int port,
                           const std::string& path) const {
  return absl::StrCat(scheme, "://", kSender, ":", token_,
                      "@127.0.0.1:", port == 0 ? this->port() : port, "/",
                      path);
}

absl::Status RioServer::CreateProject(const std::string& slug) {
  v1::CreateProjectRequest request;
  request.set_slug(slug);
  v1::Project project;
  return FromGrpc(
      projects_->CreateProject(AdminContext().get(), request, &project),
      "CreateProject");
}

absl::StatusOr<std::string> RioServer::CreateSender(const std::string& project,
                                                    const std::string& name) {
  v1::CreateSenderRequest request;
  request.set_project(project);
  request.set_name(name);
  v1::CreateSenderResponse response;
  const absl::Status status = FromGrpc(
      projects_->CreateSender(AdminContext().get(), request, &response),
      "CreateSender");
  if (!status.ok()) return status;
  return response.token();
}

absl::StatusOr<v1::Handler> RioServer::CreateHandler(
    const std::string& url, bool json, const std::string& event,
    const std::string& project, v1::Handler::Method method) {
  v1::CreateHandlerRequest request;
  request.set_project(project);
  request.set_event(event);
  request.set_url(url);
  request.set_content_type(json ? v1::Handler::JSON : v1::Handler::FORM);
  request.set_method(method);
  v1::Handler handler;
  const absl::Status status = FromGrpc(
      handlers_->CreateHandler(AdminContext().get(), request, &handler),
      "CreateHandler");
  if (!status.ok()) return status;
  return handler;
}

absl::Status RioServer::SetHandlerUrl(const std::string& id,
                                      const std::string& url) {
  v1::UpdateHandlerRequest request;
  request.set_id(id);
  request.set_url(url);
  v1::Handler handler;
  return FromGrpc(
      handlers_->UpdateHandler(AdminContext().get(), request, &handler),
      "UpdateHandler");
}

absl::StatusOr<std::string> RioServer::Sql(const std::string& sql) const {
  return testkit::PgCluster::Query(database_url_, sql);
}

// ---------------------------------------------------------------------------
// Helpers

webhook::Headers HeadersOf(const testkit::ReceivedRequest& request) {
  return webhook::Headers(
      [request](absl::string_view name) -> std::optional<std::string> {
        for (const auto& [key, value] : request.headers) {
          if (key == name) return value;  // Names are lower-cased.
        }
        return std::nullopt;
      });
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

absl::StatusOr<KeyAndCertificate> SelfSignedCertificate() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"),
                                                          &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  if (key == nullptr || cert == nullptr) {
    return absl::InternalError("cannot make a key or certificate");
  }
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 2 * 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] :
       {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
        std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* extension =
        X509V3_EXT_conf_nid(nullptr, &context, nid, value);
    if (extension == nullptr) {
      return absl::InternalError("cannot make a certificate extension");
    }
    X509_add_ext(cert.get(), extension, -1);
    X509_EXTENSION_free(extension);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return absl::InternalError("cannot sign the certificate");
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new(BIO_s_mem()),
                                                    &BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(BIO_new(BIO_s_mem()),
                                                     &BIO_free);
  if (PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0,
                               nullptr, nullptr) != 1 ||
      PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) {
    return absl::InternalError("cannot write PEM");
  }
  return KeyAndCertificate{BioText(key_bio.get()), BioText(cert_bio.get())};
}

// ---------------------------------------------------------------------------
// FlakyProxy

class FlakyProxy::Service final : public v1::EmitService::Service {
 public:
  Service(const std::string& upstream, std::vector<Mode> modes)
      : stub_(v1::EmitService::NewStub(
            grpc::CreateChannel(upstream, grpc::InsecureChannelCredentials()))),
        modes_(modes.begin(), modes.end()) {}

  grpc::Status Emit(grpc::ServerContext* context,
                    const v1::EmitRequest* request,
                    v1::EmitResponse* response) override {
    return Forward(
        context, "Emit", {request->idempotency_key()},
        [&](grpc::ClientContext* upstream, v1::EmitBatchResponse* reply) {
          const grpc::Status status = stub_->Emit(upstream, *request, response);
          *reply->add_results() = *response;
          return status;
        });
  }

  grpc::Status EmitBatch(grpc::ServerContext* context,
                         const v1::EmitBatchRequest* request,
                         v1::EmitBatchResponse* response) override {
    std::vector<std::string> keys;
    for (const v1::EmitRequest& event : request->events()) {
      keys.push_back(event.idempotency_key());
    }
    return Forward(
        context, "EmitBatch", keys,
        [&](grpc::ClientContext* upstream, v1::EmitBatchResponse* reply) {
          const grpc::Status status =
              stub_->EmitBatch(upstream, *request, response);
          *reply = *response;
          return status;
        });
  }

  std::vector<Call> Calls() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  void Release() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

 private:
  using Upstream =
      std::function<grpc::Status(grpc::ClientContext*, v1::EmitBatchResponse*)>;

  grpc::Status Forward(grpc::ServerContext* context, const std::string& method,
                       std::vector<std::string> keys, const Upstream& call)
      ABSL_LOCKS_EXCLUDED(mu_) {
    Mode mode = Mode::kPass;
    size_t index;
    {
      absl::MutexLock lock(&mu_);
      if (!modes_.empty()) {
        mode = modes_.front();
        modes_.pop_front();
      }
      calls_.push_back(Call{method, std::move(keys), std::nullopt});
      index = calls_.size() - 1;
    }
    if (mode == Mode::kRefuse) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "proxy: refused");
    }
    if (mode == Mode::kHold) {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&released_));
    }
    grpc::ClientContext upstream;
    for (const auto& [name, value] : context->client_metadata()) {
      if (absl::string_view(name.data(), name.size()) == "authorization") {
        upstream.AddMetadata("authorization",
                             std::string(value.data(), value.size()));
      }
    }
    upstream.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(10));
    v1::EmitBatchResponse reply;
    const grpc::Status status = call(&upstream, &reply);
    if (!status.ok()) return status;
    {
      absl::MutexLock lock(&mu_);
      calls_[index].reply = reply;
    }
    if (mode == Mode::kDrop) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "proxy: reply lost");
    }
    if (mode == Mode::kLate) {
      const absl::Time deadline = absl::FromChrono(context->deadline());
      absl::SleepFor(std::min(deadline - absl::Now(), absl::Seconds(30)) +
                     absl::Milliseconds(300));
    }
    return grpc::Status::OK;
  }

  const std::unique_ptr<v1::EmitService::Stub> stub_;
  mutable absl::Mutex mu_;
  std::deque<Mode> modes_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

FlakyProxy::FlakyProxy(const std::string& upstream, std::vector<Mode> modes,
                       std::optional<KeyAndCertificate> tls)
    : service_(std::make_unique<Service>(upstream, std::move(modes))),
      tls_(std::move(tls)) {}

FlakyProxy::~FlakyProxy() {
  service_->Release();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(1));
    server_->Wait();
  }
}

absl::Status FlakyProxy::Start() {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (tls_.has_value()) {
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back(
        {tls_->key_pem, tls_->certificate_pem});
    credentials = grpc::SslServerCredentials(options);
  } else {
    credentials = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::InternalError("the proxy cannot listen on 127.0.0.1");
  }
  return absl::OkStatus();
}

std::vector<FlakyProxy::Call> FlakyProxy::Calls() const {
  return service_->Calls();
}

void FlakyProxy::Release() { service_->Release(); }

// ---------------------------------------------------------------------------
// ChildProcess

ChildProcess::~ChildProcess() {
  Stop();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

absl::Status ChildProcess::Start(
    const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env) {
  if (pid_ > 0) return absl::FailedPreconditionError("already started");
  char dir_template[] = "/tmp/rio-sdk-cpp-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    return absl::InternalError("mkdtemp failed");
  }
  dir_ = dir_template;
  output_path_ = dir_ + "/output";

  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view text(*entry);
    const std::string name(text.substr(0, text.find('=')));
    if (env.count(name) == 0) environment.emplace_back(text);
  }
  for (const auto& [name, value] : env) {
    environment.push_back(absl::StrCat(name, "=", value));
  }
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& arg : args) argp.push_back(arg.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  const int error =
      posix_spawnp(&pid_, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    pid_ = -1;
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", strerror(error)));
  }
  return absl::OkStatus();
}

int ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ExitCode(status);
    }
    if (absl::Now() >= deadline) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void ChildProcess::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (Wait(absl::Seconds(10)) == -1 && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

std::string ChildProcess::Output() const { return ReadFile(output_path_); }

RunResult RunToCompletion(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env) {
  ChildProcess child;
  const absl::Status started = child.Start(argv, env);
  if (!started.ok()) return RunResult{-1, started.ToString()};
  const int code = child.Wait(absl::Seconds(120));
  return RunResult{code, child.Output()};
}

}  // namespace rio::sdk_test
