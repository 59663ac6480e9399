// The statements of an emit on messages and deliveries: a group's messages
// and their deliveries in one statement, and what settles the idempotency
// keys it found taken. ingest::IngestWriter decides what to write; this is
// how it is written.
//
// Thread-safety: the functions use the connection they are given, which is
// not shared.
#ifndef RIO_SERVER_STORE_EMIT_STORE_H_
#define RIO_SERVER_STORE_EMIT_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg.h"

namespace rio::store {

// New messages, column by column.
class MessageRows {
 public:
  // An empty `idempotency_key` is none.
  void Add(absl::string_view id, int64_t project_id, absl::string_view event,
           absl::string_view payload, absl::string_view idempotency_key,
           absl::string_view sender);
  // The parameters of the insert; the rows may not be used afterwards.
  std::vector<PgParam> Finish() &&;

 private:
  PgArray ids_, project_ids_, events_, payloads_, keys_, senders_;
};

// Whom kLeased deliveries are leased to, and for how long.
struct Lease {
  std::string owner;  // an instance id
  absl::Duration duration;
};

// How a new delivery is written.
enum class NewDelivery {
  kLeased,     // PENDING, leased to the writing instance for the lease
  kQueued,     // PENDING, due now and leased to no one
  kCancelled,  // CANCELLED (its handler was disabled)
};

// New deliveries, column by column. Whatever the state asked for, a
// delivery to a handler disabled in the database is written CANCELLED and
// one to a handler deleted meanwhile is not written.
class DeliveryRows {
 public:
  void Add(absl::string_view id, absl::string_view message_id,
           absl::string_view handler_id, NewDelivery state);
  size_t size() const { return size_; }
  // The parameters of the insert, `lease` among them; the rows may not be
  // used afterwards.
  std::vector<PgParam> Finish(const Lease& lease) &&;

 private:
  PgArray ids_, message_ids_, handler_ids_, states_;
  size_t size_ = 0;
};

// What a group's statement wrote.
struct EmitRows {
  absl::flat_hash_set<std::string> messages;  // ids of the messages inserted
  absl::flat_hash_set<std::string> pending;   // ids of the PENDING deliveries
};

// Sends, without waiting for it, the one statement (its own transaction) of
// a group: the messages, except those whose idempotency key is taken, and
// the deliveries of the messages inserted. TakeEmitRows reads its answer.
absl::Status SendEmit(PgConnection& conn, MessageRows messages,
                      DeliveryRows deliveries, const Lease& lease);
absl::StatusOr<EmitRows> TakeEmitRows(PgConnection& conn);

// The message holding idempotency key `keys[i]` in project `project_ids[i]`,
// for each pair that has one.
struct KeyHolder {
  size_t index;  // i
  std::string message_id;
  bool within_window;      // created less than `window` ago
  int64_t deliveries = 0;  // its deliveries, except those cancelled unsent
};
absl::StatusOr<std::vector<KeyHolder>> FindKeyHolders(
    PgConnection& conn, const std::vector<int64_t>& project_ids,
    const std::vector<std::string>& keys, absl::Duration window);

// Releases idempotency key `keys[i]` of project `project_ids[i]` if message
// `message_ids[i]` still holds it (it is older than the window).
absl::Status FreeIdempotencyKeys(PgConnection& conn,
                                 const std::vector<int64_t>& project_ids,
                                 const std::vector<std::string>& keys,
                                 const std::vector<std::string>& message_ids);

// Inserts messages (skipping those whose key is taken) and, separately,
// deliveries; each returns the ids written (deliveries: those PENDING).
absl::StatusOr<absl::flat_hash_set<std::string>> InsertMessages(
    PgConnection& conn, MessageRows messages);
absl::StatusOr<absl::flat_hash_set<std::string>> InsertDeliveries(
    PgConnection& conn, DeliveryRows deliveries, const Lease& lease);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_EMIT_STORE_H_
