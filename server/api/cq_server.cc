#include "server/api/cq_server.h"

#include <pthread.h>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/resource_quota.h"

namespace rio::api {

CqServer::CqServer(Options options) : options_(std::move(options)) {}

CqServer::~CqServer() {
  if (server_ != nullptr && !shutting_down_.load()) {
    Shutdown(absl::ZeroDuration(), [] {});
  }
}

absl::StatusOr<std::string> CqServer::Start() {
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's health service is built without protobuf descriptors; reflection
  // describes it from the generated pool, which holds health.proto only if
  // its generated code is linked in. Using it here makes sure it is.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (options_.memory_quota_bytes > 0) {
    grpc::ResourceQuota quota("rio-grpc");
    quota.Resize(static_cast<size_t>(options_.memory_quota_bytes));
    builder.SetResourceQuota(quota);
  }
  if (options_.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options_.max_concurrent_streams);
  }
  int port = 0;
  builder.AddListeningPort(options_.listen,
                           options_.credentials != nullptr
                               ? options_.credentials
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.SetMaxReceiveMessageSize(options_.max_receive_message_bytes);
  for (grpc::Service* service : services_) builder.RegisterService(service);
  for (int i = 0; i < std::max(options_.threads, 1); ++i) {
    cqs_.push_back(builder.AddCompletionQueue());
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options_.listen, " (address in use or invalid)"));
  }
  for (auto& cq : cqs_) {
    for (auto& arm : armers_) arm(cq.get());
  }
  for (auto& cq : cqs_) threads_.emplace_back(&CqServer::Poll, this, cq.get());
  SetServing(true);
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  return absl::StrCat(host, ":", port);
}

void CqServer::SetServing(bool serving) {
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
}

std::shared_ptr<grpc::Channel> CqServer::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(options_.max_receive_message_bytes);
  return server_->InProcessChannel(args);
}

void CqServer::Poll(grpc::ServerCompletionQueue* cq) {
  pthread_setname_np(pthread_self(), "rio-grpc-cq");
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) static_cast<CallTag*>(tag)->Proceed(ok);
}

void CqServer::Shutdown(absl::Duration deadline,
                        const std::function<void()>& drain_work) {
  if (server_ == nullptr || shutting_down_.exchange(true)) return;
  if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  drain_work();
  for (auto& cq : cqs_) cq->Shutdown();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace rio::api
