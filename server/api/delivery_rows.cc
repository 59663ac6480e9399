#include "server/api/delivery_rows.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/time_util.h"
#include "server/util/crypto.h"
#include "server/util/utf8.h"
#include "server/util/validation.h"

namespace rio::api {
namespace {

using google::protobuf::util::TimeUtil;

// Version prefix of page tokens, so their format can change later.
constexpr char kPageTokenVersion[] = "p1";

std::string Text(const store::PgResult& r, int row, int column) {
  return util::ToValidUtf8(r.Get(row, column));
}

// First 8 bytes of SHA-256 of `list`, in hex: stable across instances and
// releases, unlike absl::Hash.
std::string ListFingerprint(absl::string_view list) {
  return util::HexEncode(util::Sha256(list).substr(0, 8));
}

absl::Status InvalidPageToken() {
  return absl::InvalidArgumentError("page_token is not valid for this list");
}

}  // namespace

v1::Delivery::Status ParseDeliveryStatus(absl::string_view stored) {
  v1::Delivery::Status status = v1::Delivery::STATUS_UNSPECIFIED;
  if (!v1::Delivery::Status_Parse(std::string(stored), &status)) {
    return v1::Delivery::STATUS_UNSPECIFIED;
  }
  return status;
}

void FillDelivery(const store::PgResult& r, int row, int first_column,
                  v1::Delivery* out) {
  const int c = first_column;
  out->set_id(std::string(r.Get(row, c)));
  out->set_message_id(std::string(r.Get(row, c + 1)));
  out->set_project(std::string(r.Get(row, c + 2)));
  out->set_event(std::string(r.Get(row, c + 3)));
  out->set_handler_id(std::string(r.Get(row, c + 4)));
  out->set_handler_url(Text(r, row, c + 5));
  out->set_status(ParseDeliveryStatus(r.Get(row, c + 6)));
  out->set_attempt_count(static_cast<int32_t>(r.GetInt64(row, c + 7)));
  out->set_last_status_code(static_cast<int32_t>(r.GetInt64(row, c + 8)));
  out->set_last_error_class(Text(r, row, c + 9));
  if (out->status() == v1::Delivery::PENDING) {
    *out->mutable_next_attempt_time() =
        TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, c + 10));
  }
  *out->mutable_create_time() =
      TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, c + 11));
  *out->mutable_update_time() =
      TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, c + 12));
}

void FillAttempt(const store::PgResult& r, int row, int first_column,
                 v1::Attempt* out) {
  const int c = first_column;
  out->set_delivery_id(std::string(r.Get(row, c)));
  out->set_number(static_cast<int32_t>(r.GetInt64(row, c + 1)));
  out->set_manual(r.GetBool(row, c + 2));
  *out->mutable_start_time() =
      TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, c + 3));
  out->set_duration_us(r.GetInt64(row, c + 4));
  out->set_dns_us(r.GetInt64(row, c + 5));
  out->set_connect_us(r.GetInt64(row, c + 6));
  out->set_tls_us(r.GetInt64(row, c + 7));
  out->set_first_byte_us(r.GetInt64(row, c + 8));
  out->set_total_us(r.GetInt64(row, c + 9));
  out->set_status_code(static_cast<int32_t>(r.GetInt64(row, c + 10)));
  AppendStoredHeaders(r.Get(row, c + 11), out->mutable_request_headers());
  AppendStoredHeaders(r.Get(row, c + 12), out->mutable_response_headers());
  out->set_response_body(
      util::ToValidUtf8(absl::HexStringToBytes(r.Get(row, c + 13))));
  out->set_error_class(Text(r, row, c + 14));
  out->set_error_message(Text(r, row, c + 15));
}

void FillMessage(const store::PgResult& r, int row, int first_column,
                 v1::Message* out) {
  const int c = first_column;
  out->set_id(std::string(r.Get(row, c)));
  out->set_project(std::string(r.Get(row, c + 1)));
  out->set_event(std::string(r.Get(row, c + 2)));
  if (!r.IsNull(row, c + kMessagePayloadColumn)) {
    out->set_payload(Text(r, row, c + kMessagePayloadColumn));
  }
  out->set_idempotency_key(Text(r, row, c + 4));
  out->set_sender(Text(r, row, c + 5));
  *out->mutable_create_time() =
      TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, c + 6));
}

void AppendStoredHeaders(absl::string_view block,
                         google::protobuf::RepeatedPtrField<v1::Header>* out) {
  v1::Header* last = nullptr;
  for (absl::string_view line : absl::StrSplit(block, '\n')) {
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') {
      // obs-fold (RFC 9112 5.2): the previous value goes on.
      absl::string_view more = absl::StripAsciiWhitespace(line);
      if (last != nullptr && !more.empty()) {
        absl::StrAppend(last->mutable_value(), " ", util::ToValidUtf8(more));
      }
      continue;
    }
    if (absl::StartsWith(line, "HTTP/")) continue;  // the status line
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, colon));
    if (name.empty()) continue;
    last = out->Add();
    last->set_name(util::ToValidUtf8(name));
    last->set_value(
        util::ToValidUtf8(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
}

std::string EncodePageToken(const PageCursor& cursor, absl::string_view list) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kPageTokenVersion, ",", ListFingerprint(list), ",",
                   cursor.create_time_micros, ",", cursor.id));
}

absl::StatusOr<std::optional<PageCursor>> DecodePageToken(
    absl::string_view token, absl::string_view list) {
  if (token.empty()) return std::optional<PageCursor>();
  std::string text;
  if (token.size() > 200 || !absl::WebSafeBase64Unescape(token, &text)) {
    return InvalidPageToken();
  }
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  PageCursor cursor;
  if (parts.size() != 4 || parts[0] != kPageTokenVersion ||
      parts[1] != ListFingerprint(list) ||
      !absl::SimpleAtoi(parts[2], &cursor.create_time_micros) ||
      !util::ValidateUuid("page_token", parts[3], "").ok()) {
    return InvalidPageToken();
  }
  cursor.id = absl::AsciiStrToLower(parts[3]);
  return std::optional<PageCursor>(std::move(cursor));
}

std::string PgTimestamp(absl::Time t) {
  return absl::FormatTime("%E4Y-%m-%dT%H:%M:%E6S+00:00", t,
                          absl::UTCTimeZone());
}

}  // namespace rio::api
