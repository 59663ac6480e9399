// Thin RAII wrappers over libpq. SQLSTATEs and connection failures become
// absl::Status codes here, once: UNAVAILABLE when the database cannot be
// reached (retry later), ALREADY_EXISTS for unique violations, ABORTED for
// serialization failures and deadlocks, INTERNAL otherwise. Messages carry no
// SQL or server text a client should not see; details go to stderr.
//
// Thread-compatibility: a PgConnection is used by one thread at a time.
#ifndef RIO_SERVER_STORE_PG_H_
#define RIO_SERVER_STORE_PG_H_

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rio::store {

// One SQL parameter in text format; nullopt is SQL NULL.
using PgParam = std::optional<std::string>;

// An owned PGresult.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}

  int rows() const { return result_ ? PQntuples(result_.get()) : 0; }
  int affected() const;  // rows touched by INSERT/UPDATE/DELETE
  bool IsNull(int row, int col) const {
    return PQgetisnull(result_.get(), row, col);
  }
  absl::string_view Get(int row, int col) const;
  int64_t GetInt64(int row, int col) const;
  bool GetBool(int row, int col) const { return Get(row, col) == "t"; }
  // Columns selected as epoch microseconds (bigint).
  absl::Time GetMicros(int row, int col) const {
    return absl::FromUnixMicros(GetInt64(row, col));
  }
  PGresult* get() const { return result_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_{nullptr, &PQclear};
};

// Builds a PostgreSQL array literal ('{"a","b",NULL}') for one text
// parameter, so a whole batch travels in a handful of parameters and is
// expanded server-side with unnest().
class PgArray {
 public:
  PgArray() { text_ = "{"; }
  PgArray& Add(absl::string_view value);
  PgArray& AddNull();
  PgArray& Add(int64_t value);
  // The literal; the builder may not be used afterwards.
  std::string Finish() && {
    text_ += '}';
    return std::move(text_);
  }

 private:
  void Separate() {
    if (text_.size() > 1) text_ += ',';
  }
  std::string text_;
};

// Removes the password from a libpq URL or keyword/value string for logs.
std::string RedactDatabaseUrl(absl::string_view url);

class PgConnection {
 public:
  // Connects to `url` (a libpq URI or keyword/value string). UNAVAILABLE with
  // libpq's reason when the server cannot be reached or refuses.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(
      const std::string& url);

  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Whether the connection is believed usable.
  bool ok() const { return PQstatus(conn_.get()) == CONNECTION_OK; }

  // Re-establishes a broken connection. Attempts are spaced by at least
  // `min_interval` so a database outage is not hammered; an attempt skipped
  // for that reason returns UNAVAILABLE.
  absl::Status Reconnect(absl::Duration min_interval = absl::Milliseconds(250));

  // Runs one statement with text parameters. Returns the result of a
  // successful command, or the mapped error.
  absl::StatusOr<PgResult> Exec(absl::string_view sql,
                                const std::vector<PgParam>& params = {});

  // Like Exec, for a statement run over and over (the hot paths): it is
  // parsed and planned once per connection, on first use, and later runs
  // only bind their parameters. `sql` must be a fixed text, not one built
  // per call (every distinct text stays prepared while the connection
  // lives).
  absl::StatusOr<PgResult> ExecPrepared(
      absl::string_view sql, const std::vector<PgParam>& params = {});

  // ExecPrepared in two halves, so that the caller can work while the
  // database runs the statement: SendPrepared returns once the statement is
  // sent, TakeResult waits for its result. Nothing else may run on the
  // connection in between.
  absl::Status SendPrepared(absl::string_view sql,
                            const std::vector<PgParam>& params = {});
  absl::StatusOr<PgResult> TakeResult();

  // Runs several statements separated by ';' (no parameters), e.g. a
  // migration.
  absl::Status ExecScript(absl::string_view sql);

  // Runs `body` inside BEGIN ... COMMIT; rolls back when it returns an error.
  // Nested calls join the outermost transaction.
  absl::Status InTransaction(const std::function<absl::Status()>& body);

  PGconn* raw() const { return conn_.get(); }
  const std::string& url() const { return url_; }

 private:
  PgConnection(std::string url, PGconn* conn);
  static PGconn* Open(const std::string& url);

  std::string url_;
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn_;
  absl::Time last_connect_attempt_;
  bool in_transaction_ = false;
  // Statement text → name of its prepared statement on this connection.
  absl::flat_hash_map<std::string, std::string> prepared_;
  // The text of the statement sent and not yet taken (for error messages).
  const std::string* sent_ = nullptr;
};

// Maps a failed result (or a connection failure, when result is null) to a
// Status, logging the database's own message to stderr.
absl::Status StatusFromPg(PGconn* conn, const PGresult* result,
                          absl::string_view what);

// SQLSTATE of a failed result, or "" when there is none.
std::string SqlState(const PGresult* result);

// Failed database operations since the process started, counted here for
// metrics. Thread-safe.
struct PgErrorCounts {
  uint64_t connect = 0;  // connection attempts that failed
  // Failed statements, by the code StatusFromPg gave them.
  uint64_t unavailable = 0;     // connection lost, shutdown, out of resources
  uint64_t already_exists = 0;  // unique violations
  uint64_t aborted = 0;         // serialization failures, deadlocks, lock waits
                                // past lock_timeout, statement_timeout
  uint64_t internal = 0;        // anything else
};
PgErrorCounts PgErrorsSoFar();

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_PG_H_
