#include "server/store/migrations.h"

#include <cstdio>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

// Arbitrary, fixed: "rio" in ASCII, namespacing Rio's advisory lock.
constexpr const char* kMigrationLockKey = "7498095";

constexpr const char* kCatalogSchema = R"sql(
CREATE TABLE projects (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug        text NOT NULL UNIQUE,
  name        text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE senders (
  project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name        text NOT NULL,
  token_hash  bytea NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);

CREATE TABLE handlers (
  id                          uuid PRIMARY KEY,
  project_id                  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  event                       text NOT NULL,
  url                         text NOT NULL,
  method                      text NOT NULL CHECK (method IN ('POST', 'PUT', 'GET')),
  content_type                text NOT NULL CHECK (content_type IN ('FORM', 'JSON')),
  headers                     jsonb NOT NULL DEFAULT '{}',
  timeout_ms                  integer NOT NULL,
  enabled                     boolean NOT NULL DEFAULT true,
  disabled_reason             text NOT NULL DEFAULT '',
  secret                      text NOT NULL,
  previous_secret             text,
  previous_secret_expire_time timestamptz,
  create_time                 timestamptz NOT NULL DEFAULT now(),
  update_time                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handlers_by_event ON handlers (project_id, event);

-- Every instance keeps projects, sender hashes and handlers in memory and
-- reloads them when told.
CREATE FUNCTION rio_notify_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('rio_catalog', TG_TABLE_NAME);
  RETURN NULL;
END
$$;
CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE ON projects
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
CREATE TRIGGER senders_changed AFTER INSERT OR UPDATE OR DELETE ON senders
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
CREATE TRIGGER handlers_changed AFTER INSERT OR UPDATE OR DELETE ON handlers
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
)sql";

}  // namespace

const std::vector<Migration>& SchemaMigrations() {
  static const auto* migrations = new std::vector<Migration>{
      {1, "catalog: projects, senders, handlers", kCatalogSchema},
  };
  return *migrations;
}

absl::StatusOr<int> ApplyMigrations(PgConnection& conn,
                                    const std::vector<Migration>& migrations) {
  RIO_RETURN_IF_ERROR(conn.Exec(absl::StrCat("SELECT pg_advisory_lock(",
                                             kMigrationLockKey, ")"))
                          .status());
  absl::Cleanup unlock = [&conn] {
    if (conn.ok()) {
      (void)conn.Exec(
          absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockKey, ")"));
    }
  };
  RIO_RETURN_IF_ERROR(conn.Exec(R"sql(
      CREATE TABLE IF NOT EXISTS rio_schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        apply_time timestamptz NOT NULL DEFAULT now()))sql")
                          .status());
  RIO_ASSIGN_OR_RETURN(
      PgResult current,
      conn.Exec("SELECT coalesce(max(version), 0) FROM rio_schema_migrations"));
  int64_t version = current.GetInt64(0, 0);
  int64_t newest = migrations.empty() ? 0 : migrations.back().version;
  if (version > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("the database schema is at version ", version,
                     ", newer than this rio-server knows (", newest,
                     "); upgrade rio-server"));
  }
  int applied = 0;
  for (const Migration& m : migrations) {
    if (m.version <= version) continue;
    absl::Status status = conn.InTransaction([&]() -> absl::Status {
      RIO_RETURN_IF_ERROR(conn.ExecScript(m.sql));
      return conn
          .Exec(
              "INSERT INTO rio_schema_migrations (version, name) "
              "VALUES ($1, $2)",
              {std::to_string(m.version), std::string(m.name)})
          .status();
    });
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("migration ", m.version, " (", m.name,
                                       ") failed: ", status.message()));
    }
    std::fprintf(stderr, "rio-server: applied migration %d (%s)\n", m.version,
                 m.name);
    ++applied;
  }
  return applied;
}

}  // namespace rio::store
