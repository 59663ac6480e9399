// A fixed pool of worker threads, each owning one PostgreSQL connection.
// Completion-queue threads post closures here instead of touching the
// database, so a slow or absent database never stalls request polling.
//
// A worker whose connection broke reconnects before running its next task
// (attempts spaced out, see PgConnection::Reconnect); while the database is
// down, tasks still run and their queries fail fast with UNAVAILABLE.
//
// Thread-safe: Post from any thread. Stop joins the workers after running
// every task already posted.
#ifndef RIO_SERVER_STORE_DATABASE_H_
#define RIO_SERVER_STORE_DATABASE_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/pg.h"

namespace rio::store {

class Database {
 public:
  using Task = std::function<void(PgConnection&)>;

  // Opens `pool_size` connections to `url`. UNAVAILABLE (with libpq's
  // reason) when the first cannot be made.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& url,
                                                        int pool_size);
  ~Database();  // Stop()

  // Runs `task` on some worker with that worker's connection.
  // REQUIRES: Stop() not called.
  void Post(Task task);
  // Runs every task already queued, then joins the workers. Idempotent.
  void Stop();

  const std::string& url() const { return url_; }

 private:
  explicit Database(std::string url) : url_(std::move(url)) {}
  void WorkerLoop(PgConnection* conn);

  const std::string url_;
  std::vector<std::unique_ptr<PgConnection>> connections_;
  std::vector<std::thread> workers_;

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_DATABASE_H_
