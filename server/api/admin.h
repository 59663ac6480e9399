// What the administration services share: their dependencies and the way an
// admin call runs (authenticate and validate on the polling thread, then run
// the database work on a Database worker, which completes the Reply).
#ifndef RIO_SERVER_API_ADMIN_H_
#define RIO_SERVER_API_ADMIN_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "grpcpp/impl/codegen/service_type.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "server/api/auth.h"
#include "server/api/cq_server.h"
#include "server/dispatch/egress_guard.h"
#include "server/dispatch/scheduler.h"
#include "server/store/access_store.h"
#include "server/store/catalog.h"
#include "server/store/database.h"

namespace rio::api {

// "host:port" that senders use to reach this server, for DSNs. Set once the
// gRPC port is bound (it may have been chosen by the system). Thread-safe.
class PublicAddress {
 public:
  void Set(std::string address) {
    absl::MutexLock lock(&mu_);
    address_ = std::move(address);
  }
  std::string Get() const {
    absl::MutexLock lock(&mu_);
    return address_;
  }
  // Whether senders reach the address over TLS: their DSNs say rios://.
  void SetTls(bool tls) {
    absl::MutexLock lock(&mu_);
    tls_ = tls;
  }
  std::string DsnScheme() const {
    absl::MutexLock lock(&mu_);
    return tls_ ? "rios" : "rio";
  }

 private:
  mutable absl::Mutex mu_;
  std::string address_ ABSL_GUARDED_BY(mu_);
  bool tls_ ABSL_GUARDED_BY(mu_) = false;
};

struct AdminDeps {
  store::Database* database;
  store::Catalog* catalog;
  const AdminAuthenticator* auth;
  const PublicAddress* public_address;
  // Checks handler URLs when they are saved (literal addresses, localhost,
  // --https_only); null checks nothing more than their form.
  const dispatch::EgressGuard* egress = nullptr;
};

// For a call on one object named by id: OK when `caller` may touch it (for a
// caller limited to a project, one query finds the object's project).
absl::Status CheckObject(const Caller& caller, store::PgConnection& conn,
                         store::ObjectKind kind, const std::string& id,
                         absl::string_view method);

// Runs `work(conn)` on a database worker and answers with its result. For
// `writes`, the local catalog is reloaded before answering, so this
// instance's next emit already sees the change (others learn of it through
// NOTIFY).
template <class Response, class Work>
void RunOnDatabase(const AdminDeps& deps, Reply<Response> reply, bool writes,
                   Work work) {
  store::Catalog* catalog = deps.catalog;
  deps.database->Post([reply = std::move(reply), work = std::move(work), writes,
                       catalog](store::PgConnection& conn) {
    auto result = work(conn);
    if (writes && result.ok()) (void)catalog->Reload(conn);
    reply(result);
  });
}

// What Redeliver and the recovery jobs need besides the admin essentials.
struct RecoveryDeps {
  AdminDeps admin;
  // Told when a recovery job is created, so it starts at once.
  dispatch::Scheduler* scheduler;
  // Instances' lease timeout: a delivery leased by a live instance is not
  // re-triggered under it.
  absl::Duration lease_timeout;
};

// Register the services' methods with `server`; the returned service objects
// must outlive it.
std::unique_ptr<grpc::Service> RegisterProjectService(CqServer& server,
                                                      const AdminDeps& deps);
std::unique_ptr<grpc::Service> RegisterHandlerService(CqServer& server,
                                                      const AdminDeps& deps);
std::unique_ptr<grpc::Service> RegisterAccessService(CqServer& server,
                                                     const AdminDeps& deps);
// The read side of rio.v1.DeliveryService (ListDeliveries, GetDelivery,
// ListMessages, GetMessage, GetHandlerStats). Its other methods are added to
// the returned service by their own Register functions, before Start.
std::unique_ptr<v1::DeliveryService::AsyncService> RegisterDeliveryService(
    CqServer& server, const AdminDeps& deps);
// Redeliver and the recovery methods of the DeliveryService `service`.
void AddRecoveryMethods(CqServer& server,
                        v1::DeliveryService::AsyncService* service,
                        const RecoveryDeps& deps);

}  // namespace rio::api

#endif  // RIO_SERVER_API_ADMIN_H_
