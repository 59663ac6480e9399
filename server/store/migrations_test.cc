#include "server/store/migrations.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

namespace rio::store {
namespace {

using testkit::PgCluster;

std::unique_ptr<PgConnection> Connect(const std::string& url) {
  auto conn = PgConnection::Connect(url);
  EXPECT_TRUE(conn.ok()) << conn.status();
  return conn.ok() ? std::move(*conn) : nullptr;
}

std::string FreshDatabase() {
  auto url = PgCluster::Shared().CreateDatabase("migr");
  EXPECT_TRUE(url.ok()) << url.status();
  return url.ok() ? *url : "";
}

TEST(Migrations, AppliesAllOnceThenNothing) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  auto first = ApplyMigrations(*conn);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, static_cast<int>(SchemaMigrations().size()));
  auto second = ApplyMigrations(*conn);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 0);
  auto versions =
      PgCluster::Query(url, "SELECT count(*) FROM rio_schema_migrations");
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_EQ(*versions, std::to_string(SchemaMigrations().size()));
  auto tables = PgCluster::Query(
      url,
      "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
      "WHERE tablename IN ('projects', 'senders', 'handlers')");
  EXPECT_EQ(*tables, "handlers,projects,senders");
}

TEST(Migrations, ConcurrentRunnersApplyEachMigrationExactlyOnce) {
  std::string url = FreshDatabase();
  constexpr int kRunners = 4;
  std::vector<std::unique_ptr<PgConnection>> conns;
  for (int i = 0; i < kRunners; ++i) conns.push_back(Connect(url));
  std::vector<absl::StatusOr<int>> results(kRunners, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRunners; ++i) {
    threads.emplace_back([&, i] { results[i] = ApplyMigrations(*conns[i]); });
  }
  for (auto& t : threads) t.join();
  int total = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    total += *r;
  }
  EXPECT_EQ(total, static_cast<int>(SchemaMigrations().size()));
}

TEST(Migrations, FailingMigrationRollsBackAndIsReported) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  std::vector<Migration> migrations = {
      {1, "good", "CREATE TABLE a (x int)"},
      {2, "bad", "CREATE TABLE b (x int); SELECT * FROM no_such_table"},
  };
  auto result = ApplyMigrations(*conn, migrations);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(result.status().message().find("migration 2 (bad) failed"),
            absl::string_view::npos)
      << result.status();
  EXPECT_EQ(
      *PgCluster::Query(url, "SELECT max(version) FROM rio_schema_migrations"),
      "1");
  EXPECT_EQ(*PgCluster::Query(
                url, "SELECT count(*) FROM pg_tables WHERE tablename = 'b'"),
            "0");
}

TEST(Migrations, RefusesDatabaseFromNewerServer) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  ASSERT_TRUE(ApplyMigrations(*conn).ok());
  ASSERT_TRUE(PgCluster::Query(url,
                               "INSERT INTO rio_schema_migrations (version, "
                               "name) VALUES (999, 'future')")
                  .ok());
  auto result = ApplyMigrations(*conn);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("version 999"),
            absl::string_view::npos);
}

// The schema before history was partitioned (migrations 1 to 8).
std::vector<Migration> BeforePartitions() {
  std::vector<Migration> before;
  for (const Migration& m : SchemaMigrations()) {
    if (m.version < 9) before.push_back(m);
  }
  return before;
}

std::string Q(const std::string& url, const std::string& sql) {
  auto r = PgCluster::Query(url, sql);
  EXPECT_TRUE(r.ok()) << r.status() << "\n" << sql;
  return r.ok() ? *r : "";
}

// An id for row `n` of a table (`salt`): time-ordered (version 7, of two
// hours ago) as the previous rio-server made them, or random (version 4) as
// builds before that did (here all sorting after today's time-ordered ids,
// as most random ones do).
std::string IdSql(bool time_ordered, const std::string& salt) {
  if (!time_ordered) {
    return absl::StrCat("('f' || substr(md5('", salt,
                        "' || n), 1, 11) || '4' || substr(md5('x", salt,
                        "' || n), 1, 19))::uuid");
  }
  return absl::StrCat(
      "(lpad(to_hex(floor(extract(epoch FROM now() - interval '2 hours') * "
      "1000)::bigint), 12, '0') || '7' || substr(md5('",
      salt, "' || n), 1, 19))::uuid");
}

// Fills the previous schema the way rio-server wrote it: three messages
// (one with an idempotency key), their deliveries in each state, attempts.
void FillPreviousSchema(const std::string& url, bool time_ordered) {
  Q(url, "INSERT INTO projects (slug, name) VALUES ('shop', 'Shop')");
  Q(url,
    "INSERT INTO handlers (id, project_id, event, url, method, content_type, "
    "timeout_ms, secret) VALUES ('6a1f0c2e-0000-4000-8000-000000000001', 1, "
    "'paid', 'http://127.0.0.1:9/', 'POST', 'JSON', 1000, 's')");
  Q(url, absl::StrCat(
             "INSERT INTO messages (id, project_id, event, payload, "
             "idempotency_key, sender, create_time) SELECT ",
             IdSql(time_ordered, "m"),
             ", 1, 'paid', '{\"n\":' || n || '}', CASE n WHEN 1 THEN 'k1' "
             "END, 'shop', now() - interval '2 hours' FROM generate_series(1, "
             "3) n"));
  Q(url, absl::StrCat(
             "INSERT INTO deliveries (id, message_id, handler_id, status, "
             "attempts, create_time) SELECT ",
             IdSql(time_ordered, "d"),
             ", m.id, '6a1f0c2e-0000-4000-8000-000000000001', "
             "(ARRAY['SUCCEEDED', 'PENDING', 'FAILED'])[n], n - 1, "
             "m.create_time FROM (SELECT id, create_time, row_number() OVER "
             "(ORDER BY id) AS n FROM messages) m"));
  Q(url,
    "INSERT INTO attempts (delivery_id, number, start_time, duration_us, "
    "status_code) SELECT d.id, k, now() - interval '1 hour', 1000, 500 FROM "
    "deliveries d, generate_series(1, 2) k WHERE k <= d.attempts");
}

void ExpectHistoryKept(const std::string& url) {
  EXPECT_EQ(Q(url, "SELECT count(*) FROM messages"), "3");
  EXPECT_EQ(Q(url,
              "SELECT string_agg(status, ',' ORDER BY status) FROM "
              "deliveries"),
            "FAILED,PENDING,SUCCEEDED");
  EXPECT_EQ(Q(url, "SELECT count(*) FROM attempts"), "3");
  EXPECT_EQ(Q(url,
              "SELECT count(*) FROM messages m JOIN deliveries d ON "
              "d.message_id = m.id JOIN attempts a ON a.delivery_id = d.id"),
            "3");
  // The idempotency key moved to its table, still naming its message.
  EXPECT_EQ(Q(url,
              "SELECT k.project_id || '/' || k.key || '/' || m.payload FROM "
              "idempotency_keys k JOIN messages m ON m.id = k.message_id"),
            "1/k1/{\"n\":1}");
  EXPECT_EQ(Q(url,
              "SELECT lower_time IS NULL AND upper_time = (SELECT apply_time "
              "FROM rio_schema_migrations WHERE version = 9) FROM "
              "rio_history_partitions WHERE suffix = 'legacy'"),
            "t");
}

// The bound of each table's legacy partition, as PostgreSQL says it.
std::string LegacyBounds(const std::string& url) {
  return Q(url,
           "SELECT string_agg(c.relname || ' ' || "
           "split_part(pg_get_expr(c.relpartbound, c.oid), ' TO', 1), '; ' "
           "ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid "
           "= i.inhrelid WHERE c.relname LIKE '%_legacy'");
}

TEST(Migrations, PartitionsAFilledPreviousSchemaInPlace) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  ASSERT_TRUE(ApplyMigrations(*conn, BeforePartitions()).ok());
  FillPreviousSchema(url, /*time_ordered=*/true);
  auto applied = ApplyMigrations(*conn);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(*applied, 1);
  ExpectHistoryKept(url);
  EXPECT_EQ(LegacyBounds(url),
            "attempts_legacy FOR VALUES FROM (MINVALUE); deliveries_legacy "
            "FOR VALUES FROM (MINVALUE); messages_legacy FOR VALUES FROM "
            "(MINVALUE)");
  // New ranges begin where the legacy one ends, then follow the grid.
  EXPECT_EQ(Q(url,
              "SELECT rio_create_partitions(now(), now() + interval '90 "
              "minutes', '1 hour') BETWEEN 2 AND 3"),
            "t");
  EXPECT_EQ(Q(url,
              "SELECT lower_time = (SELECT upper_time FROM "
              "rio_history_partitions WHERE suffix = 'legacy') AND "
              "extract(epoch FROM upper_time)::bigint % 3600 = 0 FROM "
              "rio_history_partitions WHERE suffix <> 'legacy' ORDER BY "
              "lower_time LIMIT 1"),
            "t");
  // A new message lands in the range of its id's time.
  Q(url,
    "INSERT INTO messages (id, project_id, event, payload, sender) VALUES "
    "(rio_new_uuid(), 1, 'paid', '{}', 'shop')");
  EXPECT_EQ(Q(url,
              "SELECT m.tableoid::regclass::text = 'messages_' || p.suffix "
              "FROM messages m, rio_history_partitions p WHERE m.create_time "
              "> now() - interval '1 minute' AND now() >= p.lower_time AND "
              "now() < p.upper_time"),
            "t");
  // Creating them again makes nothing.
  EXPECT_EQ(Q(url,
              "SELECT rio_create_partitions(now(), now() + interval '90 "
              "minutes', '1 hour')"),
            "0");
}

TEST(Migrations, RowsWithRandomIdsBecomeTheDefaultPartition) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  ASSERT_TRUE(ApplyMigrations(*conn, BeforePartitions()).ok());
  FillPreviousSchema(url, /*time_ordered=*/false);
  auto applied = ApplyMigrations(*conn);
  ASSERT_TRUE(applied.ok()) << applied.status();
  ExpectHistoryKept(url);
  EXPECT_EQ(LegacyBounds(url),
            "attempts_legacy DEFAULT; deliveries_legacy DEFAULT; "
            "messages_legacy DEFAULT");
  EXPECT_EQ(Q(url,
              "SELECT rio_create_partitions(now(), now() + interval '1 "
              "hour', '1 hour') > 0"),
            "t");
  Q(url,
    "INSERT INTO messages (id, project_id, event, payload, sender) VALUES "
    "(rio_new_uuid(), 1, 'paid', '{}', 'shop')");
  EXPECT_EQ(Q(url,
              "SELECT count(*) FROM messages WHERE tableoid = "
              "'messages_legacy'::regclass"),
            "3");
}

// Partitioned or not, a project's deletion takes its history and its
// idempotency keys with it, and nothing of another project's.
TEST(Migrations, DeletingAProjectDeletesItsHistoryAndKeys) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  ASSERT_TRUE(ApplyMigrations(*conn, BeforePartitions()).ok());
  FillPreviousSchema(url, /*time_ordered=*/true);
  ASSERT_TRUE(ApplyMigrations(*conn).ok());
  Q(url, "INSERT INTO projects (slug, name) VALUES ('other', 'Other')");
  Q(url,
    "SELECT rio_create_partitions(now(), now() + interval '1 hour', '1 "
    "hour')");
  Q(url,
    "WITH m AS (INSERT INTO messages (id, project_id, event, payload, "
    "idempotency_key, sender) SELECT rio_new_uuid(), id, 'paid', '{}', 'k1', "
    "'other' FROM projects WHERE slug = 'other' RETURNING id, project_id) "
    "INSERT INTO idempotency_keys (project_id, key, message_id) SELECT "
    "project_id, 'k1', id FROM m");
  Q(url, "DELETE FROM projects WHERE slug = 'shop'");
  EXPECT_EQ(Q(url,
              "SELECT (SELECT count(*) FROM messages) || ',' || (SELECT "
              "count(*) FROM deliveries) || ',' || (SELECT count(*) FROM "
              "attempts) || ',' || (SELECT string_agg(p.slug || '/' || k.key, "
              "',') FROM idempotency_keys k JOIN projects p ON p.id = "
              "k.project_id)"),
            "1,0,0,other/k1");
}

TEST(Migrations, AFreshDatabaseHasNoLegacyRange) {
  std::string url = FreshDatabase();
  auto conn = Connect(url);
  ASSERT_TRUE(ApplyMigrations(*conn).ok());
  EXPECT_EQ(Q(url, "SELECT count(*) FROM rio_history_partitions"), "0");
  EXPECT_EQ(Q(url,
              "SELECT count(*) FROM pg_class WHERE relname LIKE "
              "'%\\_legacy%'"),
            "0");
  // Without a range for its time, a row is refused rather than misplaced.
  auto refused = PgCluster::Query(
      url,
      "INSERT INTO messages (id, project_id, event, payload, sender) VALUES "
      "(rio_new_uuid(), 1, 'paid', '{}', 'shop')");
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("no partition"),
            absl::string_view::npos)
      << refused.status();
}

}  // namespace
}  // namespace rio::store
