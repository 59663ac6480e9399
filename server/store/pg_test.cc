#include "server/store/pg.h"

#include "gtest/gtest.h"
#include "tests/testkit/testkit.h"

namespace rio::store {
namespace {

using testkit::PgCluster;

class PgConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("pg");
    ASSERT_TRUE(url.ok()) << url.status();
    auto conn = PgConnection::Connect(*url);
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = std::move(*conn);
    ASSERT_TRUE(
        conn_->ExecScript("CREATE TABLE t (k int PRIMARY KEY, v text)").ok());
  }

  // How many statements this session has prepared.
  int64_t Prepared() {
    auto r = conn_->Exec("SELECT count(*) FROM pg_prepared_statements");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->GetInt64(0, 0) : -1;
  }

  std::unique_ptr<PgConnection> conn_;
};

TEST_F(PgConnectionTest, ExecPreparedPreparesEachTextOnceAndBindsEveryRun) {
  constexpr const char* kInsert =
      "INSERT INTO t (k, v) SELECT * FROM unnest($1::int[], $2::text[]) "
      "RETURNING k";
  for (int i = 0; i < 3; ++i) {
    PgArray keys, values;
    keys.Add(int64_t{2 * i});
    keys.Add(int64_t{2 * i + 1});
    values.Add("even");
    values.AddNull();
    auto r = conn_->ExecPrepared(
        kInsert, {std::move(keys).Finish(), std::move(values).Finish()});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->rows(), 2);
    EXPECT_EQ(r->GetInt64(1, 0), 2 * i + 1);
  }
  EXPECT_EQ(Prepared(), 1);
  auto count = conn_->ExecPrepared(
      "SELECT count(*), count(v) FROM t WHERE k >= $1", {std::string("1")});
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->GetInt64(0, 0), 5);
  EXPECT_EQ(count->GetInt64(0, 1), 2);
  EXPECT_EQ(Prepared(), 2);
}

TEST_F(PgConnectionTest, ArraysCarryQuotesBackslashesAndNullsIntact) {
  const std::vector<std::string> values = {
      "",      "plain",      R"({"a": "b\"c", "d": "e\\f"})",
      R"(\)",  R"(")",       "\"\"",
      "end\\", "ünï \u2603", "NULL",
      "{1,2}"};
  PgArray array;
  for (const std::string& v : values) array.Add(v);
  array.AddNull();
  auto r = conn_->ExecPrepared(
      "SELECT v, v IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i) "
      "ORDER BY i",
      {std::move(array).Finish()});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rows(), static_cast<int>(values.size()) + 1);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(r->Get(static_cast<int>(i), 0), values[i]) << i;
    EXPECT_FALSE(r->GetBool(static_cast<int>(i), 1)) << i;
  }
  EXPECT_TRUE(r->GetBool(static_cast<int>(values.size()), 1));
}

TEST_F(PgConnectionTest, ExecPreparedReportsErrorsAndRecoversAfterReconnect) {
  auto bad = conn_->ExecPrepared("SELECT * FROM no_such_table WHERE k = $1",
                                 {std::string("1")});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInternal) << bad.status();
  ASSERT_TRUE(conn_->Exec("INSERT INTO t VALUES (1, 'one')").ok());
  auto dup = conn_->ExecPrepared("INSERT INTO t (k, v) VALUES ($1, $2)",
                                 {std::string("1"), std::string("again")});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists)
      << dup.status();

  // A new session has none of the old one's statements: they are prepared
  // again on first use.
  ASSERT_TRUE(conn_->Reconnect(absl::ZeroDuration()).ok());
  EXPECT_EQ(Prepared(), 0);
  auto v =
      conn_->ExecPrepared("SELECT v FROM t WHERE k = $1", {std::string("1")});
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->rows(), 1);
  EXPECT_EQ(v->Get(0, 0), "one");
  EXPECT_EQ(Prepared(), 1);
}

// The connection serves the next statement once the result is taken, also
// when the statement failed.
TEST_F(PgConnectionTest, SendPreparedThenTakeResultSplitsOneStatement) {
  constexpr const char* kInsert =
      "INSERT INTO t (k, v) VALUES ($1, $2) RETURNING v";
  ASSERT_TRUE(
      conn_->SendPrepared(kInsert, {std::string("7"), std::string("seven")})
          .ok());
  auto first = conn_->TakeResult();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->rows(), 1);
  EXPECT_EQ(first->Get(0, 0), "seven");

  ASSERT_TRUE(
      conn_->SendPrepared(kInsert, {std::string("7"), std::string("again")})
          .ok());
  EXPECT_EQ(conn_->TakeResult().status().code(),
            absl::StatusCode::kAlreadyExists);
  auto v = conn_->Exec("SELECT string_agg(v, ',') FROM t");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Get(0, 0), "seven");
  EXPECT_EQ(Prepared(), 1);
}

}  // namespace
}  // namespace rio::store
