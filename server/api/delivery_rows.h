// Rows of messages, deliveries and attempts as rio.v1 protos, shared by the
// DeliveryService calls (lists, gets, redelivery, the live tail): the select
// lists that go with the Fill* functions, the conversion of what the
// dispatcher stored (header blocks, raw response bytes) into what proto3
// allows, and the opaque page tokens of the newest-first lists.

// Pure functions and constants; thread-safe.
#ifndef RIO_SERVER_API_DELIVERY_ROWS_H_
#define RIO_SERVER_API_DELIVERY_ROWS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "rio/v1/delivery.pb.h"
#include "server/store/pg.h"

namespace rio::api {

#define RIO_DELIVERY_ROWS_MICROS_(column) \
  "(extract(epoch FROM " column ") * 1000000)::bigint"

// The columns FillDelivery reads, in order. The query names the delivery
// `d` and follows it with kDeliveryJoins, e.g.
//   SELECT <kDeliveryColumns> FROM deliveries d <kDeliveryJoins> WHERE ...
// (`d` may also be a subquery with the columns of deliveries).
inline constexpr char kDeliveryColumns[] =
    "d.id, d.message_id, p.slug, m.event, d.handler_id, "
    "coalesce(h.url, ''), d.status, d.attempts, "
    "coalesce(d.last_status_code, 0), coalesce(d.last_error_class, ''), "
    RIO_DELIVERY_ROWS_MICROS_("d.next_attempt_time") ", "
    RIO_DELIVERY_ROWS_MICROS_("d.create_time") ", "
    RIO_DELIVERY_ROWS_MICROS_("d.update_time");
inline constexpr int kDeliveryColumnCount = 13;
// The handler is joined for its current URL; LEFT, so a delivery outliving
// its handler (which the schema's cascade prevents today) still shows.
//
// Each delivery's message is looked up by itself (a lateral subquery the
// planner may not flatten: OFFSET 0), so that the lookup reads the one
// partition of messages its id falls in. As a plain join, the planner,
// which does not count on that pruning, hashed every partition of messages
// for a page of 50 deliveries.
inline constexpr char kDeliveryJoins[] =
    " CROSS JOIN LATERAL (SELECT m.* FROM messages m WHERE m.id = "
    "d.message_id OFFSET 0) m"
    " JOIN projects p ON p.id = m.project_id"
    " LEFT JOIN handlers h ON h.id = d.handler_id ";

// The columns FillAttempt reads, in order, from attempts named `a`.
inline constexpr char kAttemptColumns[] =
    "a.delivery_id, a.number, a.manual, "
    RIO_DELIVERY_ROWS_MICROS_("a.start_time") ", "
    "a.duration_us, a.dns_us, a.connect_us, a.tls_us, a.first_byte_us, "
    "a.total_us, a.status_code, a.request_headers, a.response_headers, "
    "encode(a.response_body, 'hex'), a.error_class, a.error_message";
inline constexpr int kAttemptColumnCount = 16;

// The columns FillMessage reads, in order, from messages named `m` joined
// with their project `p`. The payload column may be selected as NULL (e.g.
// past a page's byte budget); FillMessage then leaves it empty.
inline constexpr char kMessageColumns[] =
    "m.id, p.slug, m.event, m.payload, coalesce(m.idempotency_key, ''), "
    "m.sender, " RIO_DELIVERY_ROWS_MICROS_("m.create_time");
inline constexpr int kMessageColumnCount = 7;
inline constexpr int kMessagePayloadColumn = 3;  // within kMessageColumns

#undef RIO_DELIVERY_ROWS_MICROS_

// Sets `*out` (without attempts) from the kDeliveryColumns that start at
// `first_column` of `row`. next_attempt_time is set for PENDING deliveries
// only.
void FillDelivery(const store::PgResult& r, int row, int first_column,
                  v1::Delivery* out);

// Sets `*out` from the kAttemptColumns that start at `first_column` of
// `row`.
void FillAttempt(const store::PgResult& r, int row, int first_column,
                 v1::Attempt* out);

// Sets `*out` (without deliveries) from the kMessageColumns that start at
// `first_column` of `row`.
void FillMessage(const store::PgResult& r, int row, int first_column,
                 v1::Message* out);

// Delivery status as stored ("PENDING", ...); STATUS_UNSPECIFIED for
// anything else.
v1::Delivery::Status ParseDeliveryStatus(absl::string_view stored);

// Appends the headers of a stored header block ("Name: value" lines ended
// by CRLF or LF) to `*out`, in order. A status line ("HTTP/1.1 200 OK"),
// blank lines and lines without a name are skipped; an obsolete folded
// line continues the previous header's value. Names and values are trimmed
// and made valid UTF-8.
void AppendStoredHeaders(absl::string_view block,
                         google::protobuf::RepeatedPtrField<v1::Header>* out);

// Where a newest-first list stopped: the last item returned.
struct PageCursor {
  int64_t create_time_micros = 0;
  std::string id;  // a UUID, lowercase

  bool operator==(const PageCursor& other) const {
    return create_time_micros == other.create_time_micros && id == other.id;
  }
};

// An opaque token for the page after `cursor`, tied to `list`: a string
// naming the list and every filter that shapes it (the page size excepted),
// so a token is refused by any other list.
std::string EncodePageToken(const PageCursor& cursor, absl::string_view list);

// The cursor in `token`; nullopt for "" (the first page). INVALID_ARGUMENT
// "page_token is not valid for this list" for anything EncodePageToken did
// not make for the same `list`.
absl::StatusOr<std::optional<PageCursor>> DecodePageToken(
    absl::string_view token, absl::string_view list);

// A timestamptz parameter exact to the microsecond, e.g.
// "2024-05-01T12:00:00.000001+00:00" (PostgreSQL stores microseconds, so
// `t` is rounded down to one).
std::string PgTimestamp(absl::Time t);

}  // namespace rio::api

#endif  // RIO_SERVER_API_DELIVERY_ROWS_H_
