#include "server/dispatch/outcome_writer.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/store/migrations.h"
#include "tests/testkit/testkit.h"

namespace rio::dispatch {
namespace {

using testkit::PgCluster;

constexpr char kHandler[] = "aaaaaaaa-0000-4000-8000-000000000001";

std::string DeliveryId(int i) {
  return absl::StrCat("018f3406-9e00-7000-9000-",
                      absl::Dec(i, absl::kZeroPad12));
}

// A database with one handler and `n` pending deliveries leased to an
// instance, as the ingest writer leaves them.
class OutcomeWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("outcomes");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto conn = store::PgConnection::Connect(url_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE(store::ApplyMigrations(**conn).ok());
    ASSERT_TRUE(
        (*conn)
            ->ExecScript(absl::StrCat(
                // The ids are of 2024-05-01 12:00:00 UTC.
                "SELECT rio_create_partitions('2024-05-01', '2024-05-02', "
                "'1 day'); INSERT INTO projects (slug, name) VALUES ('shop', "
                "'Shop'); INSERT INTO handlers (id, project_id, event, "
                "url, method, content_type, timeout_ms, secret) SELECT '",
                kHandler,
                "', id, 'order-paid', 'http://127.0.0.1:9/hook', "
                "'POST', 'JSON', 1000, 'whsec_x' FROM projects; "
                "INSERT INTO messages (id, project_id, event, payload, "
                "sender) SELECT '018f3406-9e00-7000-8000-000000000001', "
                "id, 'order-paid', '{}', 'checkout' FROM projects; "
                "INSERT INTO deliveries (id, message_id, handler_id, "
                "lease_owner, next_attempt_time) SELECT "
                "('018f3406-9e00-7000-9000-' || lpad(i::text, 12, '0'))::uuid, "
                "'018f3406-9e00-7000-8000-000000000001', '",
                kHandler,
                "', 'dddddddd-0000-4000-8000-000000000001', now() + "
                "interval '30 seconds' FROM generate_series(1, 4) i"))
            .ok());
  }

  // A 200 answer for delivery `i`.
  static AttemptOutcome Succeeded(int i, std::string response_headers) {
    AttemptOutcome o;
    o.delivery_id = DeliveryId(i);
    o.message_id = "018f3406-9e00-7000-8000-000000000001";
    o.handler_id = kHandler;
    o.start_time = absl::Now();
    o.status_code = 200;
    o.response_headers = std::move(response_headers);
    o.response_body = "ok";
    o.decision.verdict = Verdict::kSucceeded;
    o.decision.next_attempt_time = absl::InfiniteFuture();
    return o;
  }

  std::string Query(const std::string& sql) {
    auto out = PgCluster::Query(url_, sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or("");
  }

  std::string url_;
};

// An outcome whose row the database refuses (here: a Latin-1 byte, not
// UTF-8, in a header, which the dispatcher would have repaired) is recorded
// without the receiver's reply, as an internal_error attempt, and its delivery
// moves on as decided; it neither blocks the outcomes recorded after it nor is
// retried forever. Alone in its batch, or with others.
TEST_F(OutcomeWriterTest, ARefusedRowIsQuarantinedAndBlocksNothing) {
  OutcomeWriter writer(url_, nullptr);
  writer.Start();
  writer.Record(Succeeded(1, "X-Name: caf\xE9\r\n"));
  ASSERT_TRUE(testkit::WaitFor(
      [&] { return Query("SELECT count(*) FROM attempts") == "1"; }));
  writer.Record(Succeeded(2, "X-Good: yes\r\n"));
  writer.Record(Succeeded(3, "X-Name: caf\xE9\r\n"));
  writer.Record(Succeeded(4, "X-Good: yes\r\n"));
  ASSERT_TRUE(testkit::WaitFor([&] {
    return Query(
               "SELECT count(*) FROM deliveries WHERE status = "
               "'SUCCEEDED'") == "4";
  }));
  writer.Stop(absl::Seconds(5));
  EXPECT_EQ(Query("SELECT d.id, d.attempts, d.lease_owner IS NULL, "
                  "a.status_code, a.error_class, replace(a.response_headers, "
                  "E'\\r\\n', ';'), "
                  "length(a.response_body) FROM deliveries d JOIN attempts a "
                  "ON a.delivery_id = d.id ORDER BY d.id"),
            absl::StrCat(DeliveryId(1), "|1|t|200|internal_error||0\n",
                         DeliveryId(2), "|1|t|200||X-Good: yes;|2\n",
                         DeliveryId(3), "|1|t|200|internal_error||0\n",
                         DeliveryId(4), "|1|t|200||X-Good: yes;|2"));
  EXPECT_EQ(
      Query(absl::StrCat("SELECT error_message FROM attempts WHERE "
                         "delivery_id = '",
                         DeliveryId(1), "'")),
      "the attempt could not be recorded as made (database error (SQLSTATE "
      "22021)); the receiver's reply was not kept");
  EXPECT_FALSE(writer.Holds(DeliveryId(1)));
}

// A retry time beyond what the timestamp column holds is kept within it.
TEST_F(OutcomeWriterTest, ARetryTimeIsKeptWithinTheTimestampRange) {
  OutcomeWriter writer(url_, nullptr);
  writer.Start();
  AttemptOutcome o = Succeeded(1, "");
  o.status_code = 500;
  o.decision.verdict = Verdict::kRetry;
  o.decision.error_class = ErrorClass::kHttpStatus;
  o.decision.next_attempt_time = absl::InfiniteFuture();
  writer.Record(std::move(o));
  ASSERT_TRUE(testkit::WaitFor(
      [&] { return Query("SELECT count(*) FROM attempts") == "1"; }));
  writer.Stop(absl::Seconds(5));
  EXPECT_EQ(Query(absl::StrCat(
                "SELECT status, next_attempt_time < now() + interval '367 "
                "days', next_attempt_time > now() + interval '364 days' FROM "
                "deliveries WHERE id = '",
                DeliveryId(1), "'")),
            "PENDING|t|t");
}

}  // namespace
}  // namespace rio::dispatch
