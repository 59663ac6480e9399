// What flows between the parts of the delivery pipeline:
//   ingest / scheduler --DeliveryJob--> Dispatcher --AttemptOutcome-->
//   OutcomeWriter --> PostgreSQL.
// Plain values; payloads and handlers are shared, immutable.
#ifndef RIO_SERVER_DISPATCH_JOB_H_
#define RIO_SERVER_DISPATCH_JOB_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "rio/v1/delivery.pb.h"
#include "server/dispatch/retry_policy.h"
#include "server/store/catalog.h"

namespace rio::dispatch {

// One attempt to make: a delivery leased to this instance.
struct DeliveryJob {
  std::string delivery_id;
  std::string message_id;
  std::string project;  // slug
  std::string event;
  std::shared_ptr<const std::string> payload;  // JSON object text
  std::shared_ptr<const store::CachedHandler> handler;
  int attempt = 1;      // number of the attempt to make, from 1
  bool manual = false;  // asked for by an operator (Redeliver, recovery)
};

// The result of one attempt, or of a delivery that cannot be attempted.
struct AttemptOutcome {
  std::string delivery_id;
  std::string message_id;
  std::string handler_id;
  int attempt = 1;
  bool manual = false;
  // False when no HTTP call was made (the delivery is only resolved, e.g.
  // cancelled because its handler is disabled): no attempt row is written.
  bool attempted = true;
  absl::Time start_time;
  int64_t duration_us = 0;
  int64_t dns_us = 0, connect_us = 0, tls_us = 0, first_byte_us = 0,
          total_us = 0;
  int status_code = 0;
  std::string request_headers;
  std::string response_headers;
  std::string response_body;  // at most 64 KiB
  std::string error_message;
  // What happens next: verdict, next_attempt_time, error class, reason.
  Decision decision;
  // CANCELLED instead of FAILED (Verdict::kFailed only).
  bool cancelled = false;
};

// The delivery's status once `outcome` is recorded: SUCCEEDED, PENDING (a
// retry is due), CANCELLED or FAILED. deliveries.status stores its name
// (v1::Delivery::Status_Name).
inline v1::Delivery::Status StatusAfter(const AttemptOutcome& outcome) {
  switch (outcome.decision.verdict) {
    case Verdict::kSucceeded:
      return v1::Delivery::SUCCEEDED;
    case Verdict::kRetry:
      return v1::Delivery::PENDING;
    default:
      return outcome.cancelled ? v1::Delivery::CANCELLED : v1::Delivery::FAILED;
  }
}

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_JOB_H_
