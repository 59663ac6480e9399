#include "server/store/stats_store.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/migrations.h"
#include "tests/testkit/testkit.h"

namespace rio::store {
namespace {

using ::testing::ElementsAre;
using testkit::PgCluster;

constexpr char kHandler[] = "0190a0a0-0000-7000-8000-000000000001";
constexpr char kOther[] = "0190a0a0-0000-7000-8000-000000000002";

TEST(LatencyBucket, CountsDurationsFromEachBoundUp) {
  EXPECT_EQ(LatencyBucket(0), 0);
  EXPECT_EQ(LatencyBucket(99), 0);
  EXPECT_EQ(LatencyBucket(100), 1);
  EXPECT_EQ(LatencyBucket(149), 1);
  EXPECT_EQ(LatencyBucket(150), 2);
  EXPECT_EQ(LatencyBucket(59'999'999), 57);
  EXPECT_EQ(LatencyBucket(60'000'000), 58);
  EXPECT_EQ(LatencyBucket(int64_t{1} << 40), 58);
  ASSERT_EQ(LatencyBoundsUs().size(), 58u);
  for (size_t i = 1; i < LatencyBoundsUs().size(); ++i) {
    EXPECT_LE(LatencyBoundsUs()[i], LatencyBoundsUs()[i - 1] * 3 / 2) << i;
  }
}

TEST(LatencyPercentileMs, InterpolatesWithinTheBucket) {
  std::vector<int64_t> h(59, 0);
  EXPECT_EQ(LatencyPercentileMs(h, 0.5), 0);
  h[10] = 4;  // [1000, 1250) µs
  EXPECT_DOUBLE_EQ(LatencyPercentileMs(h, 0.5), 1.125);
  EXPECT_DOUBLE_EQ(LatencyPercentileMs(h, 1.0), 1.25);
  h[10] = 0;
  h[1] = 2;  // [100, 150)
  h[3] = 2;  // [200, 250)
  EXPECT_DOUBLE_EQ(LatencyPercentileMs(h, 0.5), 0.15);
  EXPECT_DOUBLE_EQ(LatencyPercentileMs(h, 0.99), 0.249);
  // The unbounded last bucket answers with its lower bound.
  h[58] = 100;
  EXPECT_DOUBLE_EQ(LatencyPercentileMs(h, 0.99), 60000);
}

TEST(StatsSpan, MinutesUpToSixHoursThenHours) {
  EXPECT_EQ(StatsSpan(absl::Seconds(1)), absl::Minutes(1));
  EXPECT_EQ(StatsSpan(absl::Hours(6)), absl::Minutes(1));
  EXPECT_EQ(StatsSpan(absl::Hours(6) + absl::Seconds(1)), absl::Hours(1));
}

// The counters in a database of their own, with a project and two handlers.
class StatsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open(SchemaMigrations())); }

  void Open(const std::vector<Migration>& migrations) {
    auto url = PgCluster::Shared().CreateDatabase("stats");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto conn = PgConnection::Connect(url_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = std::move(*conn);
    auto applied = ApplyMigrations(*conn_, migrations);
    ASSERT_TRUE(applied.ok()) << applied.status();
    if (migrations.size() == SchemaMigrations().size()) {
      Exec(
          "SELECT rio_create_partitions(now() - interval '1 day', now() + "
          "interval '1 day', '1 day')");
    }
    Exec("INSERT INTO projects (slug, name) VALUES ('shop', 'Shop')");
    for (const char* id : {kHandler, kOther}) {
      Exec(absl::StrCat(
          "INSERT INTO handlers (id, project_id, event, url, method, "
          "content_type, timeout_ms, secret) SELECT '",
          id,
          "', id, 'paid', 'http://127.0.0.1/', 'POST', 'JSON', 1000, 's' "
          "FROM projects"));
    }
  }

  void Exec(const std::string& sql) {
    auto r = conn_->Exec(sql);
    ASSERT_TRUE(r.ok()) << r.status() << "\n" << sql;
  }
  std::string Query(const std::string& sql) {
    auto r = PgCluster::Query(url_, sql);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : "";
  }

  // Inserts `n` deliveries of one message to `handler`, created `age` ago,
  // in `status`, counting them as the emit does (unless `counted` is false:
  // a database from before the counters).
  void InsertDeliveries(const char* handler, int n, const std::string& status,
                        const std::string& age = "0 seconds",
                        bool counted = true) {
    // Before the counters, ids were not yet partitioned by time.
    const char* id = counted ? "rio_new_uuid()" : "gen_random_uuid()";
    Exec(absl::StrCat(
        "WITH m AS (INSERT INTO messages (id, project_id, event, payload, "
        "sender) SELECT ",
        id,
        ", id, 'paid', '{}', 's' FROM projects RETURNING id), "
        "d AS (INSERT INTO deliveries (id, message_id, handler_id, status, "
        "create_time) SELECT ",
        id, ", m.id, '", handler, "', '", status, "', now() - interval '", age,
        "' FROM m, generate_series(1, ", n,
        ") RETURNING handler_id, create_time, status) SELECT ",
        counted ? CountDeliveriesSql("d", /*left_pending=*/false) : "0"));
  }

  StatsCounts Totals(const char* handler,
                     absl::Duration window = absl::Hours(1)) {
    auto stats =
        ReadHandlerStats(*conn_, handler, window, absl::ZeroDuration());
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->total : StatsCounts{};
  }

  std::string url_;
  std::unique_ptr<PgConnection> conn_;
};

std::vector<int64_t> DeliveryCounts(const StatsCounts& c) {
  return {c.pending, c.succeeded, c.failed, c.cancelled};
}

TEST_F(StatsStoreTest, BoundsAreTheDatabaseFunctions) {
  EXPECT_EQ(Query("SELECT rio_latency_bounds_us()::text"),
            absl::StrCat("{", absl::StrJoin(LatencyBoundsUs(), ","), "}"));
}

TEST_F(StatsStoreTest, TriggersCountEveryStatusChange) {
  InsertDeliveries(kHandler, 3, "PENDING");
  InsertDeliveries(kHandler, 1, "CANCELLED");
  InsertDeliveries(kOther, 2, "PENDING");
  EXPECT_THAT(DeliveryCounts(Totals(kHandler)), ElementsAre(3, 0, 0, 1));

  // Outcomes in one statement, counted as the outcome writer counts them.
  Exec(absl::StrCat(
      "WITH up AS (UPDATE deliveries SET status = CASE WHEN id = (SELECT "
      "min(id::text) FROM deliveries WHERE handler_id = '",
      kHandler,
      "' AND status = 'PENDING')::uuid THEN 'FAILED' ELSE 'SUCCEEDED' END "
      "WHERE handler_id = '",
      kHandler,
      "' AND status = 'PENDING' RETURNING handler_id, create_time, status) "
      "SELECT ",
      CountDeliveriesSql("up", /*left_pending=*/true)));
  EXPECT_THAT(DeliveryCounts(Totals(kHandler)), ElementsAre(0, 2, 1, 1));
  // Re-queued by an operator (the trigger counts it), a lease and a
  // redelivery of a pending one: only the first one counts.
  Exec("UPDATE deliveries SET status = 'PENDING' WHERE status = 'FAILED'");
  Exec("UPDATE deliveries SET lease_owner = gen_random_uuid()");
  Exec("UPDATE deliveries SET status = 'PENDING' WHERE status = 'PENDING'");
  EXPECT_THAT(DeliveryCounts(Totals(kHandler)), ElementsAre(1, 2, 0, 1));
  EXPECT_THAT(DeliveryCounts(Totals(kOther)), ElementsAre(2, 0, 0, 0));
  // A cancelled one re-queued, then succeeding.
  Exec("UPDATE deliveries SET status = 'PENDING' WHERE status = 'CANCELLED'");
  Exec(absl::StrCat(
      "WITH up AS (UPDATE deliveries SET status = 'SUCCEEDED' WHERE status = "
      "'PENDING' AND handler_id = '",
      kHandler,
      "' AND id = (SELECT max(id::text) FROM deliveries WHERE status = "
      "'PENDING' AND handler_id = '",
      kHandler, "')::uuid RETURNING handler_id, create_time, status) SELECT ",
      CountDeliveriesSql("up", /*left_pending=*/true)));
  EXPECT_THAT(DeliveryCounts(Totals(kHandler)), ElementsAre(1, 3, 0, 0));
  // The counters agree with the rows, minute and hour alike.
  EXPECT_EQ(Query("SELECT string_agg(status || count, ',' ORDER BY status) "
                  "FROM (SELECT status, count(*) FROM deliveries GROUP BY "
                  "status) s"),
            "PENDING3,SUCCEEDED3");
  EXPECT_EQ(Query("SELECT string_agg(span || ':' || p || s || f || c, ',' "
                  "ORDER BY span) FROM (SELECT span, sum(pending) p, "
                  "sum(succeeded) s, sum(failed) f, sum(cancelled) c FROM "
                  "delivery_counts GROUP BY span) t"),
            "60:3300,3600:3300");
}

TEST_F(StatsStoreTest, DeletingAHandlerDeletesItsCounters) {
  InsertDeliveries(kHandler, 2, "PENDING");
  InsertDeliveries(kOther, 1, "PENDING");
  AttemptTally tally;
  tally.Add(kHandler, absl::Now(), 1000, true, false);
  ASSERT_TRUE(tally.Write(*conn_).ok());
  Exec(absl::StrCat("DELETE FROM handlers WHERE id = '", kHandler, "'"));
  EXPECT_EQ(Query("SELECT count(DISTINCT handler_id)::text || count(*) FROM "
                  "delivery_counts"),
            "12");  // the other handler's minute and hour rows
  EXPECT_EQ(Query("SELECT count(*) FROM attempt_counts"), "0");
  // Attempts of a handler gone meanwhile are not counted.
  ASSERT_TRUE(tally.Write(*conn_).ok());
  EXPECT_EQ(Query("SELECT count(*) FROM attempt_counts"), "0");
}

TEST_F(StatsStoreTest, AttemptTallyAddsAttemptsAndLatency) {
  const absl::Time now = absl::Now();
  AttemptTally tally;
  EXPECT_TRUE(tally.empty());
  tally.Add(kHandler, now, 1100, /*responded=*/true, /*failed=*/false);
  tally.Add(kHandler, now, 1200, true, false);
  tally.Add(kHandler, now, 30'000, true, /*failed=*/true);         // a 500
  tally.Add(kHandler, now, 5'000'000, /*responded=*/false, true);  // timeout
  EXPECT_FALSE(tally.empty());
  for (int i = 0; i < 2; ++i) {  // two transactions add up
    Exec("BEGIN");
    ASSERT_TRUE(tally.Write(*conn_).ok());
    Exec("COMMIT");
  }
  auto stats = ReadHandlerStats(*conn_, kHandler, absl::Minutes(5),
                                absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->total.attempts, 8);
  EXPECT_EQ(stats->total.failed_attempts, 4);
  std::vector<int64_t> expected(59, 0);
  expected[10] = 4;  // 1.1 and 1.2 ms, twice
  expected[25] = 2;  // 30 ms
  EXPECT_EQ(stats->latency, expected);
  EXPECT_DOUBLE_EQ(LatencyPercentileMs(stats->latency, 0.5), 1.1875);
  // A minute and an hour row.
  EXPECT_EQ(Query("SELECT string_agg(span || ':' || attempts, ',' ORDER BY "
                  "span) FROM attempt_counts"),
            "60:8,3600:8");
}

TEST_F(StatsStoreTest, WindowsCountWholeSpansFromTheirStart) {
  InsertDeliveries(kHandler, 1, "SUCCEEDED");
  InsertDeliveries(kHandler, 2, "SUCCEEDED", "2 hours");
  InsertDeliveries(kHandler, 4, "SUCCEEDED", "30 hours");
  InsertDeliveries(kHandler, 8, "SUCCEEDED", "100 days");
  EXPECT_EQ(Totals(kHandler, absl::Minutes(1)).succeeded, 1);
  EXPECT_EQ(Totals(kHandler, absl::Hours(3)).succeeded, 3);
  EXPECT_EQ(Totals(kHandler, absl::Hours(24 * 2)).succeeded, 7);
  EXPECT_EQ(Totals(kHandler, absl::Hours(24 * 90)).succeeded, 7);

  auto stats = ReadHandlerStats(*conn_, kHandler, absl::Minutes(1),
                                absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  // From the start of the minute that holds now - 1 minute.
  const int64_t since = absl::ToUnixSeconds(stats->since);
  EXPECT_EQ(since % 60, 0);
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  EXPECT_GE(since, now - 120);
  EXPECT_LE(since, now - 60);
  stats =
      ReadHandlerStats(*conn_, kHandler, absl::Hours(7), absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(absl::ToUnixSeconds(stats->since) % 3600, 0);
}

TEST_F(StatsStoreTest, BucketsCoverTheWindowOldestFirst) {
  InsertDeliveries(kHandler, 2, "SUCCEEDED");
  InsertDeliveries(kHandler, 3, "FAILED", "40 minutes");
  AttemptTally tally;
  tally.Add(kHandler, absl::Now(), 2000, true, false);
  ASSERT_TRUE(tally.Write(*conn_).ok());
  auto stats =
      ReadHandlerStats(*conn_, kHandler, absl::Hours(1), absl::Minutes(5));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(absl::ToUnixSeconds(stats->since) % 300, 0);
  ASSERT_GE(stats->buckets.size(), 13u);
  ASSERT_LE(stats->buckets.size(), 14u);
  int64_t succeeded = 0, failed = 0, attempts = 0;
  for (size_t i = 0; i < stats->buckets.size(); ++i) {
    EXPECT_EQ(stats->buckets[i].first,
              stats->since + absl::Minutes(5) * static_cast<int64_t>(i));
    succeeded += stats->buckets[i].second.succeeded;
    failed += stats->buckets[i].second.failed;
    attempts += stats->buckets[i].second.attempts;
  }
  EXPECT_EQ(succeeded, 2);
  EXPECT_EQ(failed, 3);
  EXPECT_EQ(attempts, 1);
  // Now is in the last bucket, and so are the newest deliveries.
  EXPECT_EQ(stats->buckets.back().second.succeeded +
                stats->buckets[stats->buckets.size() - 2].second.succeeded,
            2);
}

TEST_F(StatsStoreTest, ReadingAMissingHandlerIsNotFound) {
  auto stats = ReadHandlerStats(*conn_, "0190a0a0-0000-7000-8000-00000000dead",
                                absl::Hours(1), absl::ZeroDuration());
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(stats.status().message(),
            "handler \"0190a0a0-0000-7000-8000-00000000dead\" not found");
}

TEST_F(StatsStoreTest, PruneDropsOldMinuteAndHourRows) {
  InsertDeliveries(kHandler, 1, "SUCCEEDED");
  InsertDeliveries(kHandler, 1, "SUCCEEDED", "8 hours");
  InsertDeliveries(kHandler, 1, "SUCCEEDED", "92 days");
  AttemptTally tally;
  tally.Add(kHandler, absl::Now() - absl::Hours(8), 2000, true, false);
  ASSERT_TRUE(tally.Write(*conn_).ok());
  auto deleted = PruneStats(*conn_);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  // The 8-hour-old minute rows (deliveries, attempts), the 92-day-old ones.
  EXPECT_EQ(*deleted, 4);
  EXPECT_EQ(Query("SELECT string_agg(span::text, ',' ORDER BY span, "
                  "start_time) FROM delivery_counts"),
            "60,3600,3600");
  EXPECT_EQ(Query("SELECT string_agg(span::text, ',') FROM attempt_counts"),
            "3600");
}

// An installation at schema 7 with history: migration 8 counts it.
TEST_F(StatsStoreTest, TheMigrationCountsTheHistoryThatIsThere) {
  std::vector<Migration> before;
  for (const Migration& m : SchemaMigrations()) {
    if (m.version < 8) before.push_back(m);
  }
  ASSERT_EQ(before.back().version, 7);
  ASSERT_NO_FATAL_FAILURE(Open(before));
  InsertDeliveries(kHandler, 3, "SUCCEEDED", "0 seconds", false);
  InsertDeliveries(kHandler, 2, "PENDING", "3 hours", false);
  InsertDeliveries(kOther, 1, "FAILED", "10 hours", false);
  InsertDeliveries(kOther, 1, "FAILED", "100 days", false);
  Exec(absl::StrCat(
      "INSERT INTO attempts (delivery_id, number, start_time, duration_us, "
      "status_code, error_class) SELECT id, 1, create_time, 1100, CASE "
      "status WHEN 'FAILED' THEN 500 ELSE 200 END, CASE status WHEN "
      "'FAILED' THEN 'http_status' ELSE '' END FROM deliveries WHERE status "
      "<> 'PENDING'"));
  auto applied = ApplyMigrations(*conn_);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(*applied, static_cast<int>(SchemaMigrations().size()) - 7);

  EXPECT_THAT(DeliveryCounts(Totals(kHandler, absl::Hours(6))),
              ElementsAre(2, 3, 0, 0));
  EXPECT_THAT(DeliveryCounts(Totals(kOther, absl::Hours(6))),
              ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(DeliveryCounts(Totals(kOther, absl::Hours(24 * 90))),
              ElementsAre(0, 0, 1, 0));
  auto stats =
      ReadHandlerStats(*conn_, kHandler, absl::Hours(1), absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->total.attempts, 3);
  EXPECT_EQ(stats->total.failed_attempts, 0);
  ASSERT_EQ(stats->latency.size(), 59u);
  EXPECT_EQ(stats->latency[10], 3);
  stats =
      ReadHandlerStats(*conn_, kOther, absl::Hours(24), absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->total.attempts, 1);
  EXPECT_EQ(stats->total.failed_attempts, 1);
  // And it goes on counting.
  InsertDeliveries(kHandler, 1, "CANCELLED");
  EXPECT_THAT(DeliveryCounts(Totals(kHandler, absl::Hours(6))),
              ElementsAre(2, 3, 0, 1));
}

}  // namespace
}  // namespace rio::store
