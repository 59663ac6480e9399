// The outcome writer's statements: the attempts it records, what they do to
// their deliveries (and the per-handler counters), the handlers' health and
// the handlers it disables. dispatch::OutcomeWriter decides what to write;
// this is how it is written.
//
// Thread-safety: the functions use the connection they are given, which is
// not shared; OutcomeRows is a value.
#ifndef RIO_SERVER_STORE_OUTCOME_STORE_H_
#define RIO_SERVER_STORE_OUTCOME_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg.h"
#include "server/store/stats_store.h"

namespace rio::store {

// One attempt as recorded. The views must outlive the OutcomeRows call.
struct AttemptRecord {
  absl::string_view delivery_id;
  absl::string_view handler_id;  // for the counters
  int number = 0;
  absl::Time start;
  int64_t duration_us = 0;
  int64_t dns_us = 0;
  int64_t connect_us = 0;
  int64_t tls_us = 0;
  int64_t first_byte_us = 0;
  int64_t total_us = 0;
  int status_code = 0;  // 0: no response
  absl::string_view request_headers;
  absl::string_view response_headers;
  absl::string_view response_body;  // bytes
  absl::string_view error_class;    // "" when the attempt succeeded
  absl::string_view error_message;
  bool manual = false;
};

// What an attempt (or giving up on a delivery unattempted) leaves its
// PENDING delivery as.
struct DeliveryChange {
  absl::string_view delivery_id;
  absl::string_view status;  // the stored name
  int attempts = 0;
  absl::Time next_attempt_time;
  // The last attempt's answer; none when it was not attempted.
  std::optional<int> status_code;
  absl::string_view error_class;
};

// A batch's rows, column by column.
class OutcomeRows {
 public:
  void AddAttempt(const AttemptRecord& a);
  void AddDelivery(const DeliveryChange& d);

  // In the caller's transaction: inserts the attempts (except those of
  // deliveries deleted meanwhile and those recorded already, as after a
  // crash), moves the deliveries still PENDING to their new state and adds
  // both to the per-handler counters (delivery counters first, then attempt
  // counters: the lock order of migration 8). The rows may not be used
  // afterwards.
  absl::Status Write(PgConnection& conn) &&;

 private:
  PgArray a_delivery_, a_number_, a_start_, a_duration_, a_dns_, a_connect_,
      a_tls_, a_first_byte_, a_total_, a_status_, a_request_headers_,
      a_response_headers_, a_body_, a_class_, a_message_, a_manual_;
  PgArray d_id_, d_status_, d_attempts_, d_next_, d_code_, d_class_;
  AttemptTally tally_;
};

// A handler's attempts in a batch, for handler_health: the failures after
// its last success in the batch, the start of the first of them, and that
// success.
struct HealthChange {
  absl::string_view handler_id;
  int64_t failures = 0;
  std::optional<absl::Time> failing_since;
  std::optional<absl::Time> last_success;
};

// A batch with a success for the handler restarts its count; one without
// adds to it. Rows that would not change are left alone; handlers deleted
// meanwhile are skipped.
absl::Status AddToHealth(PgConnection& conn,
                         const std::vector<HealthChange>& changes);

// The enabled handlers among `handler_ids` with at least `failures` failed
// attempts in a row, the first of them at least `span` ago.
struct FailingHandler {
  std::string handler_id;
  int64_t failures = 0;
  std::string failing_since;  // RFC 3339, UTC, whole seconds
};
absl::StatusOr<std::vector<FailingHandler>> FailingHandlers(
    PgConnection& conn, const std::vector<std::string>& handler_ids,
    int64_t failures, absl::Duration span);

// Disables the handlers still enabled among `handler_ids[i]`, with
// `reasons[i]`. Its trigger makes every instance reload its catalog.
absl::Status DisableHandlers(PgConnection& conn,
                             const std::vector<std::string>& handler_ids,
                             const std::vector<std::string>& reasons);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_OUTCOME_STORE_H_
