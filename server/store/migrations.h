// Schema migrations, applied at start-up. Each migration runs in its own
// transaction and is recorded in rio_schema_migrations; the whole run holds a
// PostgreSQL advisory lock, so instances starting together apply each
// migration exactly once and the late ones simply find the work done.
#ifndef RIO_SERVER_STORE_MIGRATIONS_H_
#define RIO_SERVER_STORE_MIGRATIONS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "server/store/pg.h"

namespace rio::store {

struct Migration {
  int version;       // strictly increasing, from 1
  const char* name;  // for logs
  const char* sql;   // one or more statements
};

// Rio's schema, oldest first.
const std::vector<Migration>& SchemaMigrations();

// Applies every migration newer than the database's version and returns how
// many it applied. FAILED_PRECONDITION when the database was migrated by a
// newer rio-server; a failing migration is rolled back and reported.
absl::StatusOr<int> ApplyMigrations(
    PgConnection& conn,
    const std::vector<Migration>& migrations = SchemaMigrations());

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_MIGRATIONS_H_
