// Rio's C++ sender SDK: emits events into the project of one sender DSN.
//
//   #include <rio/client.h>
//
//   rio::Client client("rio://comments-app:TOKEN@127.0.0.1:50051/comments");
//   absl::StatusOr<rio::EmitResult> result =
//       client.Emit("comment-published", R"({"ip":"127.0.0.1"})");
//
// Client sends one emit (or one batch) per call and blocks until Rio has
// committed it. Publisher buffers events from many threads and sends them in
// batches from a background thread, for high-rate senders.
//
// Every call carries the sender's credentials and a deadline per attempt,
// and is retried on UNAVAILABLE and DEADLINE_EXCEEDED (see rio/retry.h). Each
// event carries an idempotency key (a random UUID unless given) that every
// attempt reuses, so a retried emit whose first reply was lost returns the
// first message with `duplicate == true` instead of creating a second one.
//
// Errors are absl::Status values with the call's gRPC code (the numbers are
// the same): UNAUTHENTICATED (wrong token), PERMISSION_DENIED (another
// project's sender), INVALID_ARGUMENT (bad event name or payload, or a
// malformed DSN, found before any network call), RESOURCE_EXHAUSTED (payload
// too large), UNAVAILABLE / DEADLINE_EXCEEDED once retries are exhausted
// (also when a TLS handshake fails: an untrusted or misnamed server
// certificate, or a client certificate the server refuses or lacks).
// AttemptsOf() tells how many attempts a failed call made.
#ifndef RIO_CLIENT_H_
#define RIO_CLIENT_H_

#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rio/dsn.h"
#include "rio/retry.h"

namespace rio {

// The environment variable a Client reads its DSN from when given none.
inline constexpr char kDsnEnvironmentVariable[] = "RIO_DSN";

// What Rio answered to one emitted event.
struct EmitResult {
  // The message's id: the `webhook-id` receivers get.
  std::string message_id;
  // Deliveries created: one per enabled handler of the event (0 when nobody
  // handles it; the message is still recorded).
  int handlers = 0;
  // True when the idempotency key matched an earlier message: nothing new
  // was created and `message_id` is the earlier message's.
  bool duplicate = false;
  // The key the event was sent with.
  std::string idempotency_key;
};

// One event to emit: Event{"comment-published", R"({"ip":"127.0.0.1"})"}.
struct Event {
  Event() = default;
  explicit Event(std::string event, std::string payload_json = "{}",
                 std::string idempotency_key = "")
      : event(std::move(event)),
        payload_json(std::move(payload_json)),
        idempotency_key(std::move(idempotency_key)) {}

  // Letters, digits, '.', '_' and '-'; 1 to 128 characters.
  std::string event;
  // A JSON object as text, sent and delivered byte for byte (so integers
  // beyond 2^53 survive).
  std::string payload_json = "{}";
  // Empty: a random UUID, generated once and reused by every retry.
  std::string idempotency_key;
};

// Options of one call.
struct CallOptions {
  // How long each attempt may take; zero: the client's deadline.
  absl::Duration deadline = absl::ZeroDuration();
};

struct ClientOptions {
  // rio://SENDER:TOKEN@HOST:PORT/PROJECT (see rio/dsn.h). Empty: $RIO_DSN.
  std::string dsn;
  // How long each attempt of a call may take.
  absl::Duration deadline = absl::Seconds(10);
  RetryPolicy retry;
  // TLS, for rios:// and https:// DSNs. Each setting left empty is taken
  // from its environment variable (files named by RIO_TLS_CA,
  // RIO_TLS_CLIENT_CERT and RIO_TLS_CLIENT_KEY; the name in
  // RIO_TLS_SERVER_NAME). With a plaintext DSN, any TLS setting (given or
  // from the environment) is INVALID_ARGUMENT rather than ignored.
  //
  // PEM root certificates to trust instead of the system's (e.g. a private
  // CA's).
  std::string root_certificates;
  // The name the server's certificate must carry when it is not the DSN's
  // host (e.g. connecting by IP address or through a tunnel).
  std::string tls_server_name;
  // This client's certificate chain and private key (PEM), for servers that
  // require client certificates (mutual TLS). Both or neither.
  std::string client_certificate_chain;
  std::string client_private_key;
};

// The environment variables ClientOptions' TLS settings default to.
inline constexpr char kTlsCaEnvironmentVariable[] = "RIO_TLS_CA";
inline constexpr char kTlsServerNameEnvironmentVariable[] =
    "RIO_TLS_SERVER_NAME";
inline constexpr char kTlsClientCertEnvironmentVariable[] =
    "RIO_TLS_CLIENT_CERT";
inline constexpr char kTlsClientKeyEnvironmentVariable[] = "RIO_TLS_CLIENT_KEY";

// How many times the call that returned `status` was tried, retries
// included; 0 when no call was made (e.g. a malformed DSN) or `status` did
// not come from a Client call.
int AttemptsOf(const absl::Status& status);

// A connection to Rio for one sender DSN.
//
// Construction never fails and never touches the network: a missing or
// malformed DSN (or bad options) makes status() INVALID_ARGUMENT, and every
// call then returns that status. The gRPC channel connects on first use and
// reconnects by itself.
//
// Thread-safety: thread-safe. Copies are cheap and share one channel; make
// one Client per process and share it.
class Client {
 public:
  // The DSN from $RIO_DSN.
  Client();
  // `dsn` as in ClientOptions::dsn (empty: $RIO_DSN).
  explicit Client(absl::string_view dsn);
  explicit Client(ClientOptions options);
  ~Client();

  Client(const Client&);
  Client& operator=(const Client&);
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  // OK, or the INVALID_ARGUMENT that every call returns.
  absl::Status status() const;
  // The parsed DSN (ToString() hides the token); empty unless status() is OK.
  const Dsn& dsn() const;
  const std::string& project() const;

  // Emits `event` with `payload_json` into the DSN's project, with a new
  // idempotency key. Returns once Rio has committed the message and one
  // delivery per enabled handler.
  absl::StatusOr<EmitResult> Emit(absl::string_view event,
                                  absl::string_view payload_json = "{}") const;
  // The same for a full Event (e.g. with your own idempotency key, such as
  // "comment-42", to make your own retries safe too).
  absl::StatusOr<EmitResult> Emit(const Event& event,
                                  const CallOptions& options = {}) const;

  // Emits up to 1000 events in one transaction: all are recorded or none.
  // Results are in the order of `events`. Retried like Emit, each event
  // keeping its key.
  absl::StatusOr<std::vector<EmitResult>> EmitBatch(
      const std::vector<Event>& events, const CallOptions& options = {}) const;

 private:
  struct Impl;

  absl::Status status_;
  std::shared_ptr<const Impl> impl_;  // Null unless status_ is OK.
};

struct PublisherOptions {
  // A batch is sent when it holds this many events (1 to 1000) ...
  size_t max_batch_events = 100;
  // ... or this many bytes of events (an event larger than this goes alone) ...
  size_t max_batch_bytes = 1 << 20;
  // ... or when its oldest event has waited this long.
  absl::Duration max_batch_delay = absl::Milliseconds(10);
  // At most this many events are published but not yet answered.
  size_t max_pending_events = 10000;
  // When that many are pending, Publish() waits for room (true) or answers
  // RESOURCE_EXHAUSTED at once (false).
  bool block_when_full = true;
};

// Buffers events and emits them in batches (EmitBatch) from one background
// thread, for senders that emit at a high rate.
//
// Lifecycle: Publish() assigns the event its idempotency key (unless it has
// one) and queues it; the background thread takes queued events in order,
// sends them as one batch with the client's deadline and retry policy, and
// completes each event's future with its own result. A batch that Rio
// rejects as a whole for INVALID_ARGUMENT or RESOURCE_EXHAUSTED (one bad or
// oversized event; nothing was recorded) is re-sent event by event, so only
// the bad event fails. Any other error fails every event of the batch. The
// destructor calls Shutdown().
//
// Thread-safety: thread-safe. Events published from one thread are sent in
// that order.
class Publisher {
 public:
  explicit Publisher(Client client, PublisherOptions options = {});
  ~Publisher();

  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // OK, or the INVALID_ARGUMENT (bad options, or the client's own status)
  // that every Publish() answers.
  absl::Status status() const;

  // Queues `event`; the future becomes ready once Rio answered for it.
  // Returns an already-ready future with FAILED_PRECONDITION after
  // Shutdown(), RESOURCE_EXHAUSTED when full and !block_when_full, or
  // status() when that is not OK.
  std::future<absl::StatusOr<EmitResult>> Publish(Event event);
  std::future<absl::StatusOr<EmitResult>> Publish(
      absl::string_view event, absl::string_view payload_json = "{}");

  // Sends whatever is queued now and blocks until every event published
  // before the call has been answered.
  void Flush();

  // Stops accepting events, sends everything queued, waits for the answers
  // and stops the background thread. Idempotent.
  void Shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rio

#endif  // RIO_CLIENT_H_
