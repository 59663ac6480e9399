#include "server/store/partitions.h"

#include "gtest/gtest.h"
#include "server/store/migrations.h"
#include "tests/testkit/testkit.h"

namespace rio::store {
namespace {

using testkit::PgCluster;

// A database with two past hours of history: the older holds a PENDING
// delivery, the newer only a SUCCEEDED one with its attempt.
class PartitionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("parts");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto conn = PgConnection::Connect(url_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = std::move(*conn);
    ASSERT_TRUE(ApplyMigrations(*conn_).ok());
    Exec(R"sql(
      SELECT rio_create_partitions(date_trunc('hour', now()) - interval '3 hours',
                                   date_trunc('hour', now()) - interval '1 hour',
                                   '1 hour');
      INSERT INTO messages (id, project_id, event, payload, sender, create_time)
        SELECT rio_new_uuid(t), 1, v.e, '{}', 'app', t FROM (VALUES
          ('older', date_trunc('hour', now()) - interval '150 minutes'),
          ('newer', date_trunc('hour', now()) - interval '90 minutes')) AS v(e, t);
      INSERT INTO deliveries (id, message_id, handler_id, status, create_time)
        SELECT (substr(id::text, 1, 14) || '7' ||
                substr(gen_random_uuid()::text, 16))::uuid, id,
               gen_random_uuid(), CASE event WHEN 'older' THEN 'PENDING'
               ELSE 'SUCCEEDED' END, create_time FROM messages;
      INSERT INTO attempts (delivery_id, number, start_time, duration_us)
        SELECT id, 1, create_time, 1000 FROM deliveries;
    )sql");
  }

  void Exec(const std::string& sql) {
    ASSERT_TRUE(conn_->ExecScript(sql).ok()) << sql;
  }
  std::string Query(const std::string& sql) {
    auto r = PgCluster::Query(url_, sql);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : "";
  }
  std::string Cutoff() {
    return Query("SELECT (now() - interval '1 hour')::text");
  }
  // "event:partition" for each message, by event.
  std::string Where() {
    return Query(
        "SELECT string_agg(m.event || ':' || (SELECT count(*) FROM deliveries "
        "d WHERE d.message_id = m.id) || ':' || (SELECT count(*) FROM "
        "attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE "
        "d.message_id = m.id), ',' ORDER BY m.event) FROM messages m");
  }

  std::string url_;
  std::unique_ptr<PgConnection> conn_;
};

TEST_F(PartitionsTest, ExpiredAreOldestFirstAndAPendingDeliveryHoldsItsOwn) {
  auto expired = ExpiredPartitions(*conn_, Cutoff());
  ASSERT_TRUE(expired.ok()) << expired.status();
  ASSERT_EQ(expired->size(), 2u);
  const Partition older = (*expired)[0], newer = (*expired)[1];
  EXPECT_LT(older.upper_time, newer.upper_time);
  EXPECT_EQ(Where(), "newer:1:1,older:1:1");

  auto held = DropPartition(*conn_, older.suffix, absl::Seconds(5));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(*held, DropResult::kHeld);
  auto dropped = DropPartition(*conn_, newer.suffix, absl::Seconds(5));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, DropResult::kDropped);
  EXPECT_EQ(Where(), "older:1:1");
  EXPECT_EQ(Query("SELECT count(*) FROM pg_class WHERE relname IN "
                  "('messages_" +
                  newer.suffix + "', 'deliveries_" + newer.suffix +
                  "', 'attempts_" + newer.suffix + "')"),
            "0");
  EXPECT_EQ(Query("SELECT string_agg(suffix, ',') FROM rio_history_partitions "
                  "WHERE upper_time <= now() - interval '1 hour'"),
            older.suffix);

  // Once the delivery is finished, its partition goes too.
  Exec("UPDATE deliveries SET status = 'FAILED'");
  auto later = DropPartition(*conn_, older.suffix, absl::Seconds(5));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(*later, DropResult::kDropped);
  EXPECT_EQ(Query("SELECT count(*) FROM messages"), "0");
  auto none = ExpiredPartitions(*conn_, Cutoff());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

// A drop waits for the transactions that still use the partition, up to a
// limit; past it, it leaves the range whole for a later pass, which
// finishes it.
TEST_F(PartitionsTest, ADropThatWouldWaitTooLongGivesUpAndIsFinishedLater) {
  auto expired = ExpiredPartitions(*conn_, Cutoff());
  ASSERT_TRUE(expired.ok()) << expired.status();
  ASSERT_EQ(expired->size(), 2u);
  const std::string newer = (*expired)[1].suffix;
  // A reader in the middle of a transaction on deliveries.
  auto reader = PgConnection::Connect(url_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE(
      (*reader)->ExecScript("BEGIN; SELECT count(*) FROM deliveries").ok());
  auto busy = DropPartition(*conn_, newer, absl::Milliseconds(100));
  ASSERT_TRUE(busy.ok()) << busy.status();
  EXPECT_EQ(*busy, DropResult::kBusy);
  EXPECT_EQ(Query("SELECT (SELECT count(*) FROM messages_" + newer +
                  ") || ',' || (SELECT count(*) FROM deliveries_" + newer +
                  ") || ',' || (SELECT count(*) FROM rio_history_partitions "
                  "WHERE suffix = '" +
                  newer + "')"),
            "1,1,1");
  // The connection's own limit is back.
  EXPECT_EQ(conn_->Exec("SHOW statement_timeout")->Get(0, 0), "0");
  ASSERT_TRUE((*reader)->ExecScript("COMMIT").ok());
  auto dropped = DropPartition(*conn_, newer, absl::Seconds(5));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, DropResult::kDropped);
  EXPECT_EQ(Where(), "older:1:1");
}

// A delivery made PENDING while its table was being detached (here: the
// table detached by hand, as a pass cut short would leave it) puts the
// table back, and the range is kept.
TEST_F(PartitionsTest, APendingDeliveryFoundAfterTheDetachPutsItBack) {
  auto expired = ExpiredPartitions(*conn_, Cutoff());
  ASSERT_TRUE(expired.ok()) << expired.status();
  const std::string newer = (*expired)[1].suffix;
  Exec("ALTER TABLE deliveries DETACH PARTITION deliveries_" + newer +
       "; UPDATE deliveries_" + newer + " SET status = 'PENDING'");
  auto held = DropPartition(*conn_, newer, absl::Seconds(5));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(*held, DropResult::kHeld);
  EXPECT_EQ(Query("SELECT string_agg(m.event || ':' || d.status, ',' ORDER "
                  "BY m.event) FROM deliveries d JOIN messages m ON m.id = "
                  "d.message_id"),
            "newer:PENDING,older:PENDING");
}

TEST_F(PartitionsTest, CreatesAheadOnceOnTheGrid) {
  auto made = CreatePartitions(*conn_, absl::Hours(1), absl::Hours(2));
  ASSERT_TRUE(made.ok()) << made.status();
  // From an hour ago to two hours ahead: the hour before this one, this one
  // and the two after (one fewer when now is exactly on the hour).
  EXPECT_GE(*made, 3);
  EXPECT_LE(*made, 4);
  auto again = CreatePartitions(*conn_, absl::Hours(1), absl::Hours(2));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(Query("SELECT bool_and(extract(epoch FROM lower_time)::bigint % "
                  "3600 = 0 AND upper_time - lower_time = interval '1 hour') "
                  "FROM rio_history_partitions"),
            "t");
  // A message of now finds its partition.
  Exec(
      "INSERT INTO messages (id, project_id, event, payload, sender) VALUES "
      "(rio_new_uuid(), 1, 'now', '{}', 'app')");
}

}  // namespace
}  // namespace rio::store
