// Leases on deliveries and the instances that hold them (rio_instances):
// how the scheduler claims due deliveries, hands back those it could not
// take, and lets go of all of them at shutdown. dispatch::Scheduler decides
// when; this is how.
//
// A lease is valid while its instance's row has a heartbeat younger than the
// lease time; a leased delivery's next_attempt_time is moved to the lease's
// end, so that due scans skip it cheaply.
//
// Thread-safety: the functions use the connection they are given, which is
// not shared; Leases is immutable.
#ifndef RIO_SERVER_STORE_LEASE_STORE_H_
#define RIO_SERVER_STORE_LEASE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg.h"

namespace rio::store {

// A delivery leased by Claim, with what sending it needs.
struct ClaimedDelivery {
  std::string delivery_id;
  std::string message_id;
  std::string handler_id;
  int attempts = 0;     // made so far
  std::string project;  // its slug; empty when the project was deleted
  std::string event;
  std::shared_ptr<const std::string> payload;
  bool manual = false;
};

class Leases {
 public:
  // `instance_id`: this instance's; `lease`: how long a lease outlives the
  // instance's last heartbeat.
  Leases(std::string instance_id, absl::Duration lease)
      : instance_id_(std::move(instance_id)), lease_(lease) {}

  // Takes the session advisory lock of the instance id, waiting up to 5 s
  // for a process killed a moment ago to let go of it; FAILED_PRECONDITION
  // when another process holds it.
  absl::Status LockInstanceId(PgConnection& conn) const;
  absl::Status Heartbeat(PgConnection& conn) const;
  // Makes due now the deliveries an earlier process with this id leased.
  absl::Status ReclaimEarlierLeases(PgConnection& conn) const;

  // Leases up to `limit` due deliveries, oldest due first, none of the
  // handlers in `skip_handlers`: unleased ones, this instance's own, and
  // those of instances whose heartbeat is older than the lease.
  absl::StatusOr<std::vector<ClaimedDelivery>> Claim(
      PgConnection& conn, int limit,
      const std::vector<std::string>& skip_handlers) const;
  // Ends this instance's leases of `delivery_ids`: due now, for anyone.
  absl::Status Release(PgConnection& conn,
                       const std::vector<std::string>& delivery_ids) const;
  // Makes this instance's leased `delivery_ids` due a second from now
  // instead of at the lease's end (their outcome is on its way).
  absl::Status DueSoon(PgConnection& conn,
                       const std::vector<std::string>& delivery_ids) const;
  // In one transaction: ends every lease of this instance (keeping earlier
  // due times), deletes its row and wakes the other instances.
  absl::Status ReleaseAll(PgConnection& conn) const;

 private:
  // SET `set` on this instance's PENDING leased deliveries among `ids`.
  absl::Status UpdateLeased(PgConnection& conn,
                            const std::vector<std::string>& delivery_ids,
                            absl::string_view set) const;

  const std::string instance_id_;
  const absl::Duration lease_;
};

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_LEASE_STORE_H_
