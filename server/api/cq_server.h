// The gRPC server on the asynchronous completion-queue API: one completion
// queue per polling thread, every registered method kept armed on every
// queue.
//
// CALL LIFECYCLE (UnaryCall). A call object is created armed: it asks gRPC
// for the next request of its method on its queue, with itself as the tag.
//  1. Tag returns with ok=false: the server is shutting down; the object
//     deletes itself.
//  2. Tag returns with ok=true: a request arrived. Unless shutting down, a
//     fresh object is armed first, so the method keeps accepting. The
//     handler then runs on the polling thread; it must not block, so it
//     validates, and hands slow work (database) to another thread together
//     with the Reply.
//  3. Whoever holds the Reply completes it exactly once, from any thread
//     (a Reply dropped unanswered completes with INTERNAL). That queues
//     Finish with the object as tag.
//  4. The Finish tag returns (ok or not): the object deletes itself.
//
// SHUTDOWN (Shutdown()): health NOT_SERVING, stop re-arming, Server::Shutdown
// with a deadline while the queues keep being drained, the caller's
// `drain_work` (joins the threads that complete Replies, so nothing is queued
// on a dead queue), then each queue is shut down and drained, threads joined.
//
// Thread-safety: Add*/Register* before Start; Shutdown once, from one thread.
#ifndef RIO_SERVER_API_CQ_SERVER_H_
#define RIO_SERVER_API_CQ_SERVER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/api/status.h"

namespace rio::api {

// Anything that travels through a completion queue as a tag.
class CallTag {
 public:
  virtual ~CallTag() = default;
  virtual void Proceed(bool ok) = 0;
};

// Completes one unary call. Copyable; the first completion wins and later
// ones are ignored.
template <class Response>
class Reply {
 public:
  using FinishFn = std::function<void(const Response*, const grpc::Status&)>;
  explicit Reply(FinishFn finish)
      : state_(std::make_shared<State>(std::move(finish))) {}

  void operator()(const absl::StatusOr<Response>& result) const {
    if (result.ok()) {
      state_->Complete(&*result, grpc::Status::OK);
    } else {
      state_->Complete(nullptr, ToGrpcStatus(result.status()));
    }
  }
  void operator()(const absl::Status& status) const {
    state_->Complete(nullptr, ToGrpcStatus(status));
  }

 private:
  struct State {
    explicit State(FinishFn f) : finish(std::move(f)) {}
    ~State() {
      if (!done.exchange(true)) {
        finish(nullptr,
               grpc::Status(grpc::StatusCode::INTERNAL,
                            "internal error: the call was not answered"));
      }
    }
    void Complete(const Response* response, const grpc::Status& status) {
      if (done.exchange(true)) return;
      finish(response, status);
    }
    FinishFn finish;
    std::atomic<bool> done{false};
  };
  std::shared_ptr<State> state_;
};

template <class AsyncService, class Request, class Response>
using RequestUnaryFn = void (AsyncService::*)(
    grpc::ServerContext*, Request*, grpc::ServerAsyncResponseWriter<Response>*,
    grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

template <class Request, class Response>
using UnaryHandler =
    std::function<void(grpc::ServerContext& context, const Request& request,
                       Reply<Response> reply)>;

// See CALL LIFECYCLE above.
template <class AsyncService, class Request, class Response>
class UnaryCall final : public CallTag {
 public:
  struct Method {
    AsyncService* service;
    RequestUnaryFn<AsyncService, Request, Response> request;
    UnaryHandler<Request, Response> handler;
    const std::atomic<bool>* shutting_down;
  };

  static void Arm(const Method* method, grpc::ServerCompletionQueue* cq) {
    new UnaryCall(method, cq);
  }

  void Proceed(bool ok) override {
    if (finishing_ || !ok) {
      delete this;
      return;
    }
    if (!method_->shutting_down->load()) Arm(method_, cq_);
    method_->handler(context_, request_,
                     Reply<Response>([this](const Response* response,
                                            const grpc::Status& status) {
                       finishing_ = true;
                       if (response != nullptr) {
                         writer_.Finish(*response, status, this);
                       } else {
                         writer_.FinishWithError(status, this);
                       }
                     }));
  }

 private:
  UnaryCall(const Method* method, grpc::ServerCompletionQueue* cq)
      : method_(method), cq_(cq), writer_(&context_) {
    (method_->service->*method_->request)(&context_, &request_, &writer_, cq_,
                                          cq_, this);
  }

  const Method* const method_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  Request request_;
  grpc::ServerAsyncResponseWriter<Response> writer_;
  bool finishing_ = false;
};

// The writing end of one server-streaming call. Thread-safe; whoever holds
// it may write from any thread.
template <class Response>
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Queues `message`. False once the call is over (finished, or the client
  // went away): stop writing then. A client that falls more than the
  // method's `max_queued` messages behind gets RESOURCE_EXHAUSTED.
  virtual bool Write(const Response& message) = 0;
  // Ends the call with `status` once the queued messages are written.
  virtual void Finish(const grpc::Status& status) = 0;
  // False once the call is over.
  virtual bool open() const = 0;
};

template <class AsyncService, class Request, class Response>
using RequestStreamFn = void (AsyncService::*)(
    grpc::ServerContext*, Request*, grpc::ServerAsyncWriter<Response>*,
    grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

template <class Request, class Response>
using StreamHandler =
    std::function<void(grpc::ServerContext& context, const Request& request,
                       std::shared_ptr<StreamWriter<Response>> writer)>;

// A server-streaming call. Armed like a UnaryCall; when a request arrives the
// handler gets a StreamWriter and may keep it as long as it likes. Every
// operation gRPC has pending (the request, the done notification, a write,
// the finish) and every StreamWriter handed out holds a reference; the
// object deletes itself when the last one goes. One write is in flight at a
// time; the rest wait in a bounded queue.
template <class AsyncService, class Request, class Response>
class StreamCall final : public StreamWriter<Response> {
 public:
  struct Method {
    AsyncService* service;
    RequestStreamFn<AsyncService, Request, Response> request;
    StreamHandler<Request, Response> handler;
    const std::atomic<bool>* shutting_down;
    size_t max_queued_bytes;
  };

  static void Arm(const Method* method, grpc::ServerCompletionQueue* cq) {
    new StreamCall(method, cq);
  }

  bool Write(const Response& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (over_ || finish_requested_) return false;
    const size_t bytes = message.ByteSizeLong();
    if (queued_bytes_ + bytes > method_->max_queued_bytes) {
      queue_.clear();
      queued_bytes_ = 0;
      RequestFinishLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("the client fell more than ", method_->max_queued_bytes,
                       " bytes behind the stream")));
      return false;
    }
    queued_bytes_ += bytes;
    queue_.push_back(message);
    if (!writing_) StartWriteLocked();
    return true;
  }

  void Finish(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (over_ || finish_requested_) return;
    RequestFinishLocked(status);
  }

  bool open() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return !over_ && !finish_requested_;
  }

 private:
  enum class Op { kRequest, kWrite, kFinish, kDone };
  struct Tag final : CallTag {
    Tag(StreamCall* c, Op o) : call(c), op(o) {}
    void Proceed(bool ok) override { call->OnEvent(op, ok); }
    StreamCall* const call;
    const Op op;
  };

  StreamCall(const Method* method, grpc::ServerCompletionQueue* cq)
      : method_(method), cq_(cq), writer_(&context_) {
    refs_ = 1;  // the request
    context_.AsyncNotifyWhenDone(&done_tag_);
    (method_->service->*method_->request)(&context_, &request_, &writer_, cq_,
                                          cq_, &request_tag_);
  }

  void OnEvent(Op op, bool ok) {
    if (op == Op::kRequest && ok) {
      if (!method_->shutting_down->load()) Arm(method_, cq_);
      {
        std::lock_guard<std::mutex> lock(mu_);
        refs_ += 2;  // the done notification, the handler's writer
      }
      method_->handler(context_, request_,
                       std::shared_ptr<StreamWriter<Response>>(
                           this, [](StreamWriter<Response>* w) {
                             static_cast<StreamCall*>(w)->Release();
                           }));
      {
        // Tell the client its call is set up (it may wait for the initial
        // metadata before doing what it wants to watch), unless the handler
        // wrote or finished already. Sent as a write: one at a time.
        std::lock_guard<std::mutex> lock(mu_);
        if (!over_ && !finish_requested_ && !writing_) {
          writing_ = true;
          ++refs_;
          writer_.SendInitialMetadata(&write_tag_);
        }
      }
      Release();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      switch (op) {
        case Op::kRequest:  // shutting down before a call came
          over_ = true;
          break;
        case Op::kWrite:
          writing_ = false;
          if (!ok) {  // the client is gone
            over_ = true;
            queue_.clear();
            queued_bytes_ = 0;
          } else if (!queue_.empty()) {
            StartWriteLocked();
          } else if (finish_requested_ && !finishing_) {
            StartFinishLocked();
          }
          break;
        case Op::kFinish:
          over_ = true;
          break;
        case Op::kDone:
          over_ = true;
          queue_.clear();
          queued_bytes_ = 0;
          break;
      }
    }
    Release();
  }

  void Release() {
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  void StartWriteLocked() {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= std::min(queued_bytes_, current_.ByteSizeLong());
    writing_ = true;
    ++refs_;
    writer_.Write(current_, &write_tag_);
  }

  void RequestFinishLocked(const grpc::Status& status) {
    finish_requested_ = true;
    finish_status_ = status;
    if (!writing_) StartFinishLocked();
  }

  void StartFinishLocked() {
    finishing_ = true;
    ++refs_;
    writer_.Finish(finish_status_, &finish_tag_);
  }

  const Method* const method_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext context_;
  Request request_;
  grpc::ServerAsyncWriter<Response> writer_;
  Tag request_tag_{this, Op::kRequest};
  Tag write_tag_{this, Op::kWrite};
  Tag finish_tag_{this, Op::kFinish};
  Tag done_tag_{this, Op::kDone};

  mutable std::mutex mu_;
  int refs_;
  std::deque<Response> queue_;
  size_t queued_bytes_ = 0;  // serialized size of queue_
  Response current_;         // the message being written
  bool writing_ = false;
  bool finish_requested_ = false;
  bool finishing_ = false;
  bool over_ = false;
  grpc::Status finish_status_;
};

class CqServer {
 public:
  struct Options {
    std::string listen = "127.0.0.1:50051";
    int threads = 2;
    int max_receive_message_bytes = 8 << 20;
    // gRPC's own memory for calls and connections (its ResourceQuota): when
    // it is used up, new calls and connections wait or are refused. 0: no
    // quota.
    int64_t memory_quota_bytes = 0;
    // Concurrent calls on one HTTP/2 connection. 0: gRPC's default.
    int max_concurrent_streams = 0;
    // How the listener authenticates itself (e.g. ReloadingTlsServerCredentials
    // in api/tls_credentials.h); null: plaintext. Kept for the server's life.
    std::shared_ptr<grpc::ServerCredentials> credentials;
  };

  explicit CqServer(Options options);
  ~CqServer();

  // Registers a service (async services, or sync ones gRPC runs itself).
  void RegisterService(grpc::Service* service) { services_.push_back(service); }

  // Serves `request` of `service` with `handler` on every queue.
  template <class AsyncService, class Request, class Response>
  void AddUnary(AsyncService* service,
                RequestUnaryFn<AsyncService, Request, Response> request,
                UnaryHandler<Request, Response> handler) {
    using Call = UnaryCall<AsyncService, Request, Response>;
    auto method = std::make_shared<typename Call::Method>(typename Call::Method{
        service, request, std::move(handler), &shutting_down_});
    armers_.push_back([method](grpc::ServerCompletionQueue* cq) {
      Call::Arm(method.get(), cq);
    });
    methods_.push_back(method);
  }

  // Serves the server-streaming `request` of `service` with `handler` on
  // every queue; a client more than `max_queued_bytes` of messages behind is
  // cut off with RESOURCE_EXHAUSTED.
  template <class AsyncService, class Request, class Response>
  void AddServerStream(AsyncService* service,
                       RequestStreamFn<AsyncService, Request, Response> request,
                       StreamHandler<Request, Response> handler,
                       size_t max_queued_bytes) {
    using Call = StreamCall<AsyncService, Request, Response>;
    auto method = std::make_shared<typename Call::Method>(
        typename Call::Method{service, request, std::move(handler),
                              &shutting_down_, max_queued_bytes});
    armers_.push_back([method](grpc::ServerCompletionQueue* cq) {
      Call::Arm(method.get(), cq);
    });
    methods_.push_back(method);
  }

  // Binds, starts the polling threads and marks health SERVING. Returns the
  // bound address (the real port when the listen port was 0).
  absl::StatusOr<std::string> Start();

  // See SHUTDOWN above.
  void Shutdown(absl::Duration deadline,
                const std::function<void()>& drain_work);

  // Sets the overall health status ("" service) and every registered one.
  void SetServing(bool serving);

  // A channel to this server that stays inside the process (the dashboard's
  // JSON API calls the services through it). REQUIRES: Start succeeded.
  std::shared_ptr<grpc::Channel> InProcessChannel();

 private:
  void Poll(grpc::ServerCompletionQueue* cq);

  const Options options_;  // Outlives server_ (its credentials must).
  std::vector<grpc::Service*> services_;
  std::vector<std::function<void(grpc::ServerCompletionQueue*)>> armers_;
  std::vector<std::shared_ptr<void>> methods_;  // keeps Method structs alive
  std::atomic<bool> shutting_down_{false};
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  std::vector<std::string> service_names_;
};

}  // namespace rio::api

#endif  // RIO_SERVER_API_CQ_SERVER_H_
