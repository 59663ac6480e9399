#include "server/store/database.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>

#include "server/util/status_macros.h"

namespace rio::store {

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& url,
                                                         int pool_size) {
  std::unique_ptr<Database> db(new Database(url));
  for (int i = 0; i < std::max(pool_size, 1); ++i) {
    RIO_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(url));
    db->connections_.push_back(std::move(conn));
  }
  for (auto& conn : db->connections_) {
    db->workers_.emplace_back(&Database::WorkerLoop, db.get(), conn.get());
  }
  return db;
}

Database::~Database() { Stop(); }

void Database::Post(Task task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    std::fprintf(stderr, "rio-server: bug: database task posted after Stop\n");
    std::abort();
  }
  queue_.push_back(std::move(task));
}

void Database::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

void Database::WorkerLoop(PgConnection* conn) {
  pthread_setname_np(pthread_self(), "rio-db-worker");
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Database* db) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db->mu_) {
            return db->stopping_ || !db->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    // A failed reconnect leaves the connection broken: the task's queries
    // then fail fast with UNAVAILABLE.
    if (!conn->ok()) (void)conn->Reconnect();
    task(*conn);
  }
}

}  // namespace rio::store
