#include "server/api/delivery_rows.h"

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "server/store/migrations.h"
#include "tests/testkit/testkit.h"

namespace rio::api {
namespace {

using google::protobuf::util::TimeUtil;
using testkit::PgCluster;

constexpr char kFffd[] = "\xEF\xBF\xBD";

TEST(ParseDeliveryStatus, ReadsTheStoredNamesOnly) {
  EXPECT_EQ(ParseDeliveryStatus("PENDING"), v1::Delivery::PENDING);
  EXPECT_EQ(ParseDeliveryStatus("SUCCEEDED"), v1::Delivery::SUCCEEDED);
  EXPECT_EQ(ParseDeliveryStatus("FAILED"), v1::Delivery::FAILED);
  EXPECT_EQ(ParseDeliveryStatus("CANCELLED"), v1::Delivery::CANCELLED);
  for (const char* other : {"", "pending", "PENDING ", "RETRYING"}) {
    EXPECT_EQ(ParseDeliveryStatus(other), v1::Delivery::STATUS_UNSPECIFIED)
        << other;
  }
}

// (name, value) pairs, for comparing header lists.
std::vector<std::pair<std::string, std::string>> Pairs(
    const google::protobuf::RepeatedPtrField<v1::Header>& headers) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const v1::Header& h : headers) out.emplace_back(h.name(), h.value());
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseHeaders(
    absl::string_view block) {
  google::protobuf::RepeatedPtrField<v1::Header> headers;
  AppendStoredHeaders(block, &headers);
  return Pairs(headers);
}

using Headers = std::vector<std::pair<std::string, std::string>>;

TEST(AppendStoredHeaders, ReadsRequestHeadersAsTheDispatcherStoresThem) {
  EXPECT_EQ(ParseHeaders("Content-Type: application/json\r\n"
                         "webhook-id: 6c1e\r\n"
                         "X-Rio-Event: uuid=6c1e,project=p,action=e\r\n"
                         "X-Team: [redacted]\r\n"),
            (Headers{{"Content-Type", "application/json"},
                     {"webhook-id", "6c1e"},
                     {"X-Rio-Event", "uuid=6c1e,project=p,action=e"},
                     {"X-Team", "[redacted]"}}));
}

TEST(AppendStoredHeaders, SkipsTheStatusLineAndTheBlankLineOfAResponse) {
  EXPECT_EQ(ParseHeaders("HTTP/1.1 503 Service Unavailable\r\n"
                         "Retry-After: 5\r\n"
                         "Content-Length: 0\r\n"
                         "\r\n"),
            (Headers{{"Retry-After", "5"}, {"Content-Length", "0"}}));
  EXPECT_EQ(ParseHeaders("HTTP/2 200\r\n\r\n"), Headers{});
  EXPECT_EQ(ParseHeaders(""), Headers{});
}

TEST(AppendStoredHeaders, TrimsAndKeepsColonsOfValues) {
  EXPECT_EQ(ParseHeaders("Location:   http://127.0.0.1:5000/x?a=b  \r\n"
                         "Empty:\r\n"
                         "X-Spaced :  v \n"),
            (Headers{{"Location", "http://127.0.0.1:5000/x?a=b"},
                     {"Empty", ""},
                     {"X-Spaced", "v"}}));
}

TEST(AppendStoredHeaders, JoinsFoldedLinesAndSkipsLinesWithoutAName) {
  EXPECT_EQ(ParseHeaders(" orphan continuation\r\n"
                         "X-Long: first\r\n"
                         "\t second\r\n"
                         "   third\r\n"
                         "no colon here\r\n"
                         ": no name\r\n"
                         "X-After: 1\r\n"),
            (Headers{{"X-Long", "first second third"}, {"X-After", "1"}}));
}

TEST(AppendStoredHeaders, AppendsWithoutFoldingIntoEarlierHeaders) {
  google::protobuf::RepeatedPtrField<v1::Header> headers;
  AppendStoredHeaders("A: 1\r\n", &headers);
  AppendStoredHeaders(" folded\r\nB: 2\r\n", &headers);
  EXPECT_EQ(Pairs(headers), (Headers{{"A", "1"}, {"B", "2"}}));
}

TEST(AppendStoredHeaders, MakesNamesAndValuesValidUtf8) {
  EXPECT_EQ(ParseHeaders("X-Bin\xFF: caf\xC3\xA9 \xE9t\xE9\r\n"),
            (Headers{{absl::StrCat("X-Bin", kFffd),
                      absl::StrCat("caf\xC3\xA9 ", kFffd, "t", kFffd)}}));
}

TEST(PageToken, RoundTripsItsCursor) {
  for (const PageCursor& cursor :
       {PageCursor{1714564800123456, "0b7f3a52-9c1e-4d2a-8f00-1234567890ab"},
        PageCursor{-1, "00000000-0000-0000-0000-000000000000"},
        PageCursor{0, "ffffffff-ffff-ffff-ffff-ffffffffffff"}}) {
    const std::string token = EncodePageToken(cursor, "list\nfilters");
    EXPECT_EQ(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                      "nopqrstuvwxyz0123456789-_="),
              std::string::npos)
        << token;
    auto decoded = DecodePageToken(token, "list\nfilters");
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_TRUE(decoded->has_value());
    EXPECT_EQ(**decoded, cursor);
  }
}

TEST(PageToken, EmptyMeansTheFirstPage) {
  auto decoded = DecodePageToken("", "list");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_FALSE(decoded->has_value());
}

TEST(PageToken, RefusesATokenOfAnotherList) {
  const std::string token = EncodePageToken(
      PageCursor{5, "0b7f3a52-9c1e-4d2a-8f00-1234567890ab"}, "deliveries a");
  auto decoded = DecodePageToken(token, "deliveries b");
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decoded.status().message(),
            "page_token is not valid for this list");
}

TEST(PageToken, RefusesAnythingItDidNotMake) {
  const std::string fingerprint_of_list = [] {
    // Take a real token apart to forge near-misses with the right list.
    std::string text;
    EXPECT_TRUE(absl::WebSafeBase64Unescape(
        EncodePageToken(PageCursor{5, "0b7f3a52-9c1e-4d2a-8f00-1234567890ab"},
                        "list"),
        &text));
    return text.substr(3, 16);
  }();
  for (const std::string& bad :
       {std::string("not base64!"), std::string("AAAA"),
        absl::WebSafeBase64Escape(
            absl::StrCat("p1,", fingerprint_of_list,
                         ",x5,0b7f3a52-9c1e-4d2a-8f00-1234567890ab")),
        absl::WebSafeBase64Escape(
            absl::StrCat("p1,", fingerprint_of_list, ",5,not-a-uuid")),
        absl::WebSafeBase64Escape(
            absl::StrCat("p9,", fingerprint_of_list,
                         ",5,0b7f3a52-9c1e-4d2a-8f00-1234567890ab")),
        absl::WebSafeBase64Escape(
            absl::StrCat("p1,", fingerprint_of_list,
                         ",5,0b7f3a52-9c1e-4d2a-8f00-1234567890ab,extra")),
        std::string(300, 'A')}) {
    auto decoded = DecodePageToken(bad, "list");
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(decoded.status().message(),
              "page_token is not valid for this list");
  }
  // The forgery helper itself is right: the untouched form decodes.
  auto good = DecodePageToken(absl::WebSafeBase64Escape(absl::StrCat(
                                  "p1,", fingerprint_of_list,
                                  ",5,0B7F3A52-9C1E-4D2A-8F00-1234567890AB")),
                              "list");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)->id, "0b7f3a52-9c1e-4d2a-8f00-1234567890ab");
}

TEST(PgTimestamp, IsExactToTheMicrosecond) {
  EXPECT_EQ(PgTimestamp(absl::FromUnixMicros(1)),
            "1970-01-01T00:00:00.000001+00:00");
  EXPECT_EQ(PgTimestamp(absl::FromUnixMicros(-1)),
            "1969-12-31T23:59:59.999999+00:00");
  EXPECT_EQ(PgTimestamp(absl::FromUnixMicros(1714564800123456)),
            "2024-05-01T12:00:00.123456+00:00");
  EXPECT_EQ(PgTimestamp(absl::FromUnixSeconds(-62135596800)),
            "0001-01-01T00:00:00.000000+00:00");
  // Below a microsecond: rounded down.
  EXPECT_EQ(PgTimestamp(absl::FromUnixNanos(1999)),
            "1970-01-01T00:00:00.000001+00:00");
}

// The select lists against the real schema: every column lands in its
// field.
class DeliveryRowsDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("rows");
    ASSERT_TRUE(url.ok()) << url.status();
    auto conn = store::PgConnection::Connect(*url);
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = std::move(*conn);
    auto migrated = store::ApplyMigrations(*conn_);
    ASSERT_TRUE(migrated.ok()) << migrated.status();
    ASSERT_TRUE(conn_
                    ->ExecScript(R"sql(
      -- The ids are of 2024-05-01 12:00:00 UTC, as their rows say.
      SELECT rio_create_partitions('2024-05-01', '2024-05-02', '1 day');
      INSERT INTO projects (slug, name) VALUES ('shop', 'Shop');
      INSERT INTO handlers (id, project_id, event, url, method, content_type,
                            timeout_ms, secret)
        SELECT 'aaaaaaaa-0000-4000-8000-000000000001', id, 'order-paid',
               'http://127.0.0.1:9/hook', 'POST', 'JSON', 1000, 'whsec_x'
        FROM projects;
      INSERT INTO messages (id, project_id, event, payload, idempotency_key,
                            sender, create_time)
        SELECT '018f3406-9e00-7000-8000-000000000001', id, 'order-paid',
               '{"total":42,"note":"café"}', 'order-42', 'checkout',
               '2024-05-01 12:00:00.000001+00'
        FROM projects;
      INSERT INTO messages (id, project_id, event, payload, sender,
                            create_time)
        SELECT '018f3406-9e00-7000-8000-000000000002', id, 'order-paid',
               '{}', 'checkout', '2024-05-01 12:00:01+00'
        FROM projects;
      INSERT INTO deliveries (id, message_id, handler_id, status, attempts,
                              next_attempt_time, last_status_code,
                              last_error_class, create_time, update_time)
        VALUES ('018f3406-9e00-7000-9000-000000000001',
                '018f3406-9e00-7000-8000-000000000001',
                'aaaaaaaa-0000-4000-8000-000000000001', 'PENDING', 2,
                '2024-05-01 12:05:00+00', 503, 'http_status',
                '2024-05-01 12:00:00.000001+00', '2024-05-01 12:00:02.5+00'),
               ('018f3406-9e00-7000-9000-000000000002',
                '018f3406-9e00-7000-8000-000000000002',
                'aaaaaaaa-0000-4000-8000-000000000001', 'SUCCEEDED', 0,
                '2024-05-01 12:05:00+00', NULL, NULL,
                '2024-05-01 12:00:01+00', '2024-05-01 12:00:01+00');
      INSERT INTO attempts (delivery_id, number, manual, start_time,
                            duration_us, dns_us, connect_us, tls_us,
                            first_byte_us, total_us, status_code,
                            request_headers, response_headers, response_body,
                            error_class, error_message)
        VALUES ('018f3406-9e00-7000-9000-000000000001', 2, true,
                '2024-05-01 12:00:02.25+00', 1500, 10, 20, 30, 1400, 1450,
                503, E'webhook-id: bbbbbbbb\r\nX-Team: [redacted]\r\n',
                E'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n',
                '\x62757379ff', 'http_status', 'HTTP 503');
    )sql")
                    .ok());
  }

  std::unique_ptr<store::PgConnection> conn_;
};

TEST_F(DeliveryRowsDbTest, FillDeliveryReadsEveryColumn) {
  auto r = conn_->Exec(absl::StrCat("SELECT 'x', ", kDeliveryColumns,
                                    " FROM deliveries d", kDeliveryJoins,
                                    "ORDER BY d.create_time"));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rows(), 2);
  v1::Delivery pending;
  FillDelivery(*r, 0, 1, &pending);
  EXPECT_EQ(pending.id(), "018f3406-9e00-7000-9000-000000000001");
  EXPECT_EQ(pending.message_id(), "018f3406-9e00-7000-8000-000000000001");
  EXPECT_EQ(pending.project(), "shop");
  EXPECT_EQ(pending.event(), "order-paid");
  EXPECT_EQ(pending.handler_id(), "aaaaaaaa-0000-4000-8000-000000000001");
  EXPECT_EQ(pending.handler_url(), "http://127.0.0.1:9/hook");
  EXPECT_EQ(pending.status(), v1::Delivery::PENDING);
  EXPECT_EQ(pending.attempt_count(), 2);
  EXPECT_EQ(pending.last_status_code(), 503);
  EXPECT_EQ(pending.last_error_class(), "http_status");
  EXPECT_EQ(TimeUtil::ToString(pending.next_attempt_time()),
            "2024-05-01T12:05:00Z");
  EXPECT_EQ(TimeUtil::ToString(pending.create_time()),
            "2024-05-01T12:00:00.000001Z");
  EXPECT_EQ(TimeUtil::ToString(pending.update_time()),
            "2024-05-01T12:00:02.500Z");
  EXPECT_EQ(pending.attempts_size(), 0);

  v1::Delivery succeeded;
  FillDelivery(*r, 1, 1, &succeeded);
  EXPECT_EQ(succeeded.status(), v1::Delivery::SUCCEEDED);
  EXPECT_EQ(succeeded.attempt_count(), 0);
  EXPECT_EQ(succeeded.last_status_code(), 0);
  EXPECT_EQ(succeeded.last_error_class(), "");
  // Only a pending delivery has a next attempt.
  EXPECT_FALSE(succeeded.has_next_attempt_time());
}

TEST_F(DeliveryRowsDbTest, FillAttemptReadsEveryColumn) {
  auto r =
      conn_->Exec(absl::StrCat("SELECT ", kAttemptColumns, " FROM attempts a"));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rows(), 1);
  v1::Attempt attempt;
  FillAttempt(*r, 0, 0, &attempt);
  EXPECT_EQ(attempt.delivery_id(), "018f3406-9e00-7000-9000-000000000001");
  EXPECT_EQ(attempt.number(), 2);
  EXPECT_TRUE(attempt.manual());
  EXPECT_EQ(TimeUtil::ToString(attempt.start_time()),
            "2024-05-01T12:00:02.250Z");
  EXPECT_EQ(attempt.duration_us(), 1500);
  EXPECT_EQ(attempt.dns_us(), 10);
  EXPECT_EQ(attempt.connect_us(), 20);
  EXPECT_EQ(attempt.tls_us(), 30);
  EXPECT_EQ(attempt.first_byte_us(), 1400);
  EXPECT_EQ(attempt.total_us(), 1450);
  EXPECT_EQ(attempt.status_code(), 503);
  EXPECT_EQ(Pairs(attempt.request_headers()),
            (Headers{{"webhook-id", "bbbbbbbb"}, {"X-Team", "[redacted]"}}));
  EXPECT_EQ(Pairs(attempt.response_headers()), (Headers{{"Retry-After", "5"}}));
  EXPECT_EQ(attempt.response_body(), absl::StrCat("busy", kFffd));
  EXPECT_EQ(attempt.error_class(), "http_status");
  EXPECT_EQ(attempt.error_message(), "HTTP 503");
}

TEST_F(DeliveryRowsDbTest, FillMessageReadsEveryColumn) {
  auto r = conn_->Exec(
      absl::StrCat("SELECT ", kMessageColumns,
                   " FROM messages m JOIN projects p ON p.id = m.project_id "
                   "ORDER BY m.create_time"));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rows(), 2);
  v1::Message first;
  FillMessage(*r, 0, 0, &first);
  EXPECT_EQ(first.id(), "018f3406-9e00-7000-8000-000000000001");
  EXPECT_EQ(first.project(), "shop");
  EXPECT_EQ(first.event(), "order-paid");
  EXPECT_EQ(first.payload(), "{\"total\":42,\"note\":\"caf\xC3\xA9\"}");
  EXPECT_EQ(first.idempotency_key(), "order-42");
  EXPECT_EQ(first.sender(), "checkout");
  EXPECT_EQ(TimeUtil::ToString(first.create_time()),
            "2024-05-01T12:00:00.000001Z");
  v1::Message second;
  FillMessage(*r, 1, 0, &second);
  EXPECT_EQ(second.idempotency_key(), "");
  EXPECT_EQ(second.payload(), "{}");
}

TEST_F(DeliveryRowsDbTest, PgTimestampRoundTripsThroughPostgres) {
  const absl::Time t = absl::FromUnixMicros(1714564800000001);
  auto r = conn_->Exec(
      "SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::bigint",
      {PgTimestamp(t)});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->GetInt64(0, 0), 1714564800000001);
}

}  // namespace
}  // namespace rio::api
