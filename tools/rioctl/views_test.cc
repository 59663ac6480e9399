#include "tools/rioctl/views.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/rioctl/certificate.h"
#include "tools/rioctl/test_certificates.h"

namespace rio::rioctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::Handler ShownHandler() {
  v1::Handler h;
  h.set_id("h1");
  h.set_project("shop");
  h.set_event("order-paid");
  h.set_url("https://127.0.0.1:1/hook");
  h.set_method(v1::Handler::POST);
  h.set_content_type(v1::Handler::FORM);
  h.set_timeout_ms(15000);
  h.set_enabled(true);
  h.mutable_create_time()->set_seconds(1714564803);
  h.mutable_update_time()->set_seconds(1714564803);
  return h;
}

TEST(HandlerFields, ClientCertificateAsSubjectAndExpiryKeyOnlyMasked) {
  const absl::Time now = absl::FromUnixSeconds(1714564863);
  v1::Handler h = ShownHandler();
  h.set_client_certificate(testing::kCertA);
  h.set_client_key(kMaskedValue);
  EXPECT_EQ(HandlerFields(h, now),
            "ID:            h1\n"
            "Project:       shop\n"
            "Event:         order-paid\n"
            "URL:           https://127.0.0.1:1/hook\n"
            "Method:        POST\n"
            "Content type:  form\n"
            "Timeout:       15s\n"
            "Headers:       none\n"
            "Client cert:   CN=rioctl-unit-test,O=Rio, expires "
            "2126-11-10T22:32:27Z (in 37447d)\n"
            "Client key:    •••\n"
            "Enabled:       yes\n"
            "Created:       2024-05-01T12:00:03Z (1m ago)\n"
            "Updated:       2024-05-01T12:00:03Z (1m ago)\n");

  // Never a key's value, even if a reply carried one.
  h.set_client_key(testing::kKeyA);
  EXPECT_THAT(HandlerFields(h, now), HasSubstr("\nClient key:    •••\n"));
  EXPECT_THAT(HandlerFields(h, now), Not(HasSubstr("PRIVATE KEY")));

  h.clear_client_certificate();
  h.clear_client_key();
  EXPECT_THAT(HandlerFields(h, now),
              HasSubstr("\nClient cert:   none\nClient key:    none\n"));
}

TEST(ClientCertificateLine, SaysSoWhenExpiredOrUnreadable) {
  EXPECT_EQ(ClientCertificateLine(testing::kCertB,
                                  absl::FromUnixSeconds(1799015547 + 300)),
            "CN=rioctl-other, expires 2027-01-03T22:32:27Z (expired 5m ago)");
  EXPECT_EQ(ClientCertificateLine("-----BEGIN CERTIFICATE-----\nbad\n",
                                  absl::UnixEpoch()),
            "set (not a readable PEM certificate)");
  EXPECT_EQ(ClientCertificateLine("", absl::UnixEpoch()), "none");
  EXPECT_EQ(ClientCertificateName(testing::kCertA),
            "CN=rioctl-unit-test,O=Rio");
  EXPECT_EQ(ClientCertificateName("junk"), "set");
  EXPECT_EQ(ClientCertificateName(""), "none");
  EXPECT_EQ(ClientKeyLine(""), "none");
  EXPECT_EQ(ClientKeyLine("anything"), "•••");
}

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

TEST(Scope, ParsesWhatItPrints) {
  for (auto scope : {v1::AccessToken::ADMIN, v1::AccessToken::PROJECT_ADMIN,
                     v1::AccessToken::READ_ONLY}) {
    absl::StatusOr<v1::AccessToken::Scope> parsed =
        ParseScope(ScopeName(scope));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, scope);
  }
  EXPECT_EQ(ScopeName(v1::AccessToken::PROJECT_ADMIN), "project-admin");
  EXPECT_EQ(ScopeName(v1::AccessToken::SCOPE_UNSPECIFIED), "unknown");
  // The proto's names too.
  EXPECT_EQ(*ParseScope("READ_ONLY"), v1::AccessToken::READ_ONLY);
  EXPECT_EQ(*ParseScope("Project_Admin"), v1::AccessToken::PROJECT_ADMIN);
  for (const char* bad : {"", "owner", "scope-unspecified", "readonly"}) {
    absl::StatusOr<v1::AccessToken::Scope> parsed = ParseScope(bad);
    EXPECT_EQ(parsed.status(),
              absl::InvalidArgumentError(absl::StrCat(
                  "--scope must be admin, project-admin or read-only (got \"",
                  bad, "\")")));
  }
}

TEST(Expiry, RelativeToNowRoundedAndMarkedWhenPast) {
  const absl::Time now = absl::FromUnixSeconds(1714564863);
  auto at = [&](absl::Duration from_now) { return ToProto(now + from_now); };
  EXPECT_EQ(Expiry(google::protobuf::Timestamp(), now), "never");
  // A 30-day token read a moment after it was made.
  EXPECT_EQ(Expiry(at(absl::Hours(24 * 30) - absl::Milliseconds(300)), now),
            "in 30d");
  EXPECT_EQ(Expiry(at(absl::Hours(12) - absl::Seconds(2)), now), "in 12h");
  EXPECT_EQ(Expiry(at(absl::Minutes(59) + absl::Seconds(45)), now), "in 1h");
  EXPECT_EQ(Expiry(at(absl::Hours(47) + absl::Minutes(40)), now), "in 2d");
  EXPECT_EQ(Expiry(at(absl::Seconds(42)), now), "in 42s");
  EXPECT_EQ(Expiry(at(absl::ZeroDuration()), now), "expired 0s ago");
  EXPECT_EQ(Expiry(at(-absl::Minutes(5)), now), "expired 5m ago");
  EXPECT_EQ(Expiry(at(-absl::Hours(24 * 3)), now), "expired 3d ago");
}

TEST(AccessTokensTable, OneRowPerToken) {
  const absl::Time now = absl::FromUnixSeconds(1714564863);
  v1::AccessToken admin;
  admin.set_name("deploy");
  admin.set_scope(v1::AccessToken::ADMIN);
  *admin.mutable_create_time() = ToProto(now - absl::Hours(3));
  v1::AccessToken reader;
  reader.set_name("ci-reader");
  reader.set_scope(v1::AccessToken::READ_ONLY);
  *reader.mutable_create_time() = ToProto(now - absl::Seconds(4));
  *reader.mutable_expire_time() = ToProto(now + absl::Hours(24 * 30));
  v1::AccessToken ops;
  ops.set_name("shop-ops");
  ops.set_scope(v1::AccessToken::PROJECT_ADMIN);
  ops.set_project("shop");
  *ops.mutable_create_time() = ToProto(now - absl::Hours(24 * 9));
  *ops.mutable_expire_time() = ToProto(now - absl::Hours(2));
  EXPECT_EQ(AccessTokensTable({reader, admin, ops}, now),
            "NAME        SCOPE           PROJECT   CREATED   EXPIRES\n"
            "ci-reader   read-only       (all)     4s ago    in 30d\n"
            "deploy      admin           (all)     3h ago    never\n"
            "shop-ops    project-admin   shop      9d ago    expired 2h ago\n");
}

TEST(AccessTokenFields, NameScopeProjectAndExpiry) {
  const absl::Time now = absl::FromUnixSeconds(1714564863);
  v1::AccessToken token;
  token.set_name("shop-ops");
  token.set_scope(v1::AccessToken::PROJECT_ADMIN);
  token.set_project("shop");
  *token.mutable_create_time() = ToProto(now);
  EXPECT_EQ(AccessTokenFields(token, now),
            "Name:     shop-ops\n"
            "Scope:    project-admin\n"
            "Project:  shop\n"
            "Expires:  never\n");
  *token.mutable_expire_time() = ToProto(now + absl::Hours(12));
  EXPECT_EQ(AccessTokenFields(token, now),
            "Name:     shop-ops\n"
            "Scope:    project-admin\n"
            "Project:  shop\n"
            "Expires:  2024-05-02T00:01:03Z (in 12h)\n");

  v1::AccessToken bootstrap;
  bootstrap.set_name("bootstrap");
  bootstrap.set_scope(v1::AccessToken::ADMIN);
  EXPECT_EQ(CallerFields(bootstrap),
            "Name:     bootstrap\n"
            "Scope:    admin\n"
            "Project:  (all)\n");
}

}  // namespace
}  // namespace rio::rioctl
