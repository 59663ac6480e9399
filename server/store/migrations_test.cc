#include "server/store/migrations.h"

#include <thread>

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

}  // namespace
}  // namespace rio::store
