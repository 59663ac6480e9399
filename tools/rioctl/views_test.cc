#include "tools/rioctl/views.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rio::rioctl {
namespace {

TEST(ProgressBar, ShowsRequeuedOfMatched) {
  v1::Recovery r;
  r.set_matched(10);
  r.set_requeued(5);
  r.set_succeeded(3);
  r.set_pending(2);
  EXPECT_EQ(ProgressBar(r, 10),
            "[#####.....]  50%  5/10 re-queued (succeeded 3, failed 0, "
            "pending 2)");
  r.set_requeued(10);
  EXPECT_EQ(ProgressBar(r, 4),
            "[####] 100%  10/10 re-queued (succeeded 3, failed 0, pending 2)");
  v1::Recovery empty;
  EXPECT_EQ(ProgressBar(empty, 4),
            "[....] 100%  0/0 re-queued (succeeded 0, failed 0, pending 0)");
}

TEST(DeliveriesTable, OneRowPerDelivery) {
  absl::Time now = absl::FromUnixSeconds(1714564863);
  v1::Delivery d;
  d.set_id("d1");
  d.set_event("order-paid");
  d.set_status(v1::Delivery::PENDING);
  d.set_attempt_count(2);
  d.set_last_error_class("timeout");
  d.set_handler_url("http://a/hook");
  d.mutable_create_time()->set_seconds(1714564803);
  d.mutable_next_attempt_time()->set_seconds(1714564868);
  v1::Delivery e = d;
  e.set_id("d2");
  e.set_status(v1::Delivery::FAILED);
  e.set_last_status_code(500);
  e.set_handler_url("");
  EXPECT_EQ(
      DeliveriesTable({d, e}, now, Colours(false)),
      "ID   STATUS    EVENT        ATTEMPTS   LAST      NEXT    AGE   URL\n"
      "d1   pending   order-paid   2          timeout   in 5s   1m    "
      "http://a/hook\n"
      "d2   failed    order-paid   2          500       -       1m    "
      "(handler deleted)\n");
}

TEST(TailLine, ColoursOnlyWhenAsked) {
  v1::TailDeliveriesResponse event;
  event.mutable_delivery()->set_id("d1");
  event.mutable_delivery()->set_event("order-paid");
  event.mutable_delivery()->set_status(v1::Delivery::PENDING);
  event.mutable_delivery()->set_handler_url("http://a/hook");
  event.mutable_attempt()->set_number(1);
  event.mutable_attempt()->set_status_code(0);
  event.mutable_attempt()->set_error_class("connect");
  event.mutable_attempt()->set_error_message("Connection refused");
  event.mutable_attempt()->set_duration_us(1500);
  event.mutable_attempt()->mutable_start_time()->set_seconds(1714564803);
  EXPECT_EQ(TailLine(event, Colours(false)),
            "12:00:03  connect  pending  order-paid  attempt 1  1ms  delivery "
            "d1  http://a/hook  Connection refused\n");
  EXPECT_EQ(TailLine(event, Colours(true)),
            "\033[2m12:00:03\033[0m  \033[31mconnect\033[0m  "
            "\033[33mpending\033[0m  order-paid  attempt 1  1ms  delivery d1  "
            "http://a/hook  Connection refused\n");
}

}  // namespace
}  // namespace rio::rioctl
