// The egress guard in a real rio-server: handler URLs with refused literal
// addresses are refused when saved, names that resolve to refused addresses
// fail their attempts with destination_refused (the address is checked when
// curl connects, after resolution), and --egress_allow, --egress=public,
// --egress_refuse_host_addresses and --https_only do what they say.
//
// Names are pinned with --egress_resolve (curl's --resolve), so "a name that
// resolves to 127.0.0.1" needs no DNS server.
#include <ifaddrs.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/empty.pb.h"
#include "gtest/gtest.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/dispatch/egress_guard.h"
#include "server/util/crypto.h"
#include "tests/testkit/connect_proxy.h"
#include "tests/testkit/fixture.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using testkit::PgCluster;
using testkit::Receiver;
using testkit::ServerProcess;
using testkit::WaitFor;

constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
constexpr char kProject[] = "shop";
constexpr char kEvent[] = "order-paid";

std::unique_ptr<grpc::ClientContext> Context(
    const std::string& authorization = absl::StrCat("Bearer ", kAdminToken)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() + seconds(10));
  return ctx;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), ": ", s.error_message());
}

// An address of this host's interfaces in a private range (10/8,
// 172.16/12, 192.168/16, 100.64/10 or fc00::/7), as written in URLs
// ("[fd00::2]"), and bare; "" when it has none.
struct PrivateAddress {
  std::string bare;
  std::string in_url;
};
PrivateAddress FindPrivateAddress() {
  static const char* const kPrivate[] = {"10.0.0.0/8", "172.16.0.0/12",
                                         "192.168.0.0/16", "100.64.0.0/10",
                                         "fc00::/7"};
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {};
  PrivateAddress found;
  for (ifaddrs* a = list; a != nullptr && found.bare.empty(); a = a->ifa_next) {
    dispatch::IpAddress ip;
    if (!dispatch::IpAddressOf(a->ifa_addr, &ip)) continue;
    for (const char* cidr : kPrivate) {
      if (!dispatch::ParseIpNetwork(cidr)->Contains(ip)) continue;
      found.bare = dispatch::IpAddressText(ip);
      found.in_url =
          ip[0] == 0 && ip[10] == 0xff ? found.bare : "[" + found.bare + "]";
      break;
    }
  }
  freeifaddrs(list);
  return found;
}

// One rio-server per Start() on a fresh database, with project "shop" and a
// sender.
class EgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("egress");
    ASSERT_TRUE(url.ok()) << url.status();
    database_url_ = *url;
  }

  // Starts rio-server with `args` and no loopback allowance of the test
  // kit's, then creates the project and sender.
  void Start(std::vector<std::string> args) {
    ServerProcess::Options options;
    options.database_url = database_url_;
    options.admin_token = kAdminToken;
    options.allow_loopback_receivers = false;
    args.push_back("--retry_schedule=1h");
    options.extra_args = std::move(args);
    server_ = std::make_unique<ServerProcess>(options);
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
    deliveries_ = v1::DeliveryService::NewStub(server_->Channel());
    if (!sender_auth_.empty()) return;  // a restart on the same database
    auto projects = v1::ProjectService::NewStub(server_->Channel());
    v1::CreateProjectRequest project;
    project.set_slug(kProject);
    v1::Project created;
    grpc::Status s =
        projects->CreateProject(Context().get(), project, &created);
    ASSERT_TRUE(s.ok()) << Describe(s);
    v1::CreateSenderRequest sender;
    sender.set_project(kProject);
    sender.set_name("app");
    v1::CreateSenderResponse resp;
    s = projects->CreateSender(Context().get(), sender, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    sender_auth_ = absl::StrCat(
        "Basic ", util::Base64Encode(absl::StrCat("app:", resp.token())));
  }

  grpc::Status CreateHandler(const std::string& url, v1::Handler* handler) {
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(kEvent);
    req.set_url(url);
    req.set_timeout_ms(5000);
    return handlers_->CreateHandler(Context().get(), req, handler);
  }

  std::string CreateHandlerOk(const std::string& url) {
    v1::Handler handler;
    const grpc::Status s = CreateHandler(url, &handler);
    EXPECT_TRUE(s.ok()) << url << ": " << Describe(s);
    return handler.id();
  }

  // Emits one event to `handlers` handlers.
  void Emit(int handlers) {
    v1::EmitRequest req;
    req.set_project(kProject);
    req.set_event(kEvent);
    req.set_payload_json(R"({"n":1})");
    v1::EmitResponse resp;
    const grpc::Status s =
        emitter_->Emit(Context(sender_auth_).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << Describe(s);
    ASSERT_EQ(resp.handlers(), handlers);
  }

  // The handler's only delivery once its first attempt is recorded, as
  // GetDelivery shows it.
  v1::Delivery FirstAttempted(const std::string& handler_id) {
    v1::Delivery found;
    const bool attempted = WaitFor(
        [&] {
          v1::ListDeliveriesRequest req;
          req.set_project(kProject);
          req.set_handler_id(handler_id);
          v1::ListDeliveriesResponse resp;
          if (!deliveries_->ListDeliveries(Context().get(), req, &resp).ok() ||
              resp.deliveries_size() != 1 ||
              resp.deliveries(0).attempt_count() < 1) {
            return false;
          }
          v1::GetDeliveryRequest get;
          get.set_id(resp.deliveries(0).id());
          return deliveries_->GetDelivery(Context().get(), get, &found).ok();
        },
        milliseconds(20000));
    EXPECT_TRUE(attempted) << "no attempt recorded for handler " << handler_id;
    return found;
  }

  // The delivery once it has `n` attempts, as GetDelivery shows it.
  v1::Delivery WaitForAttempts(const std::string& delivery_id, int n) {
    v1::Delivery found;
    const bool attempted = WaitFor(
        [&] {
          v1::GetDeliveryRequest get;
          get.set_id(delivery_id);
          return deliveries_->GetDelivery(Context().get(), get, &found).ok() &&
                 found.attempts_size() >= n;
        },
        milliseconds(20000));
    EXPECT_TRUE(attempted) << delivery_id << " has no attempt " << n << ": "
                           << found.ShortDebugString();
    return found;
  }

  // Expects the handler's delivery to have failed its one attempt with
  // destination_refused and `message`, without reaching `receiver`.
  void ExpectRefused(const std::string& handler_id, const std::string& message,
                     const Receiver& receiver) {
    const v1::Delivery delivery = FirstAttempted(handler_id);
    ASSERT_EQ(delivery.attempts_size(), 1) << delivery.ShortDebugString();
    EXPECT_EQ(delivery.status(), v1::Delivery::PENDING);
    EXPECT_EQ(delivery.attempts(0).error_class(), "destination_refused");
    EXPECT_EQ(delivery.attempts(0).status_code(), 0);
    EXPECT_EQ(delivery.attempts(0).error_message(), message);
    EXPECT_EQ(receiver.Count(), 0u);
  }

  void ExpectDelivered(const std::string& handler_id,
                       const Receiver& receiver) {
    const v1::Delivery delivery = FirstAttempted(handler_id);
    EXPECT_EQ(delivery.status(), v1::Delivery::SUCCEEDED)
        << delivery.ShortDebugString();
    EXPECT_EQ(receiver.Count(), 1u);
  }

  std::string database_url_;
  std::string sender_auth_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
};

TEST_F(EgressTest, RefusedLiteralAddressesAreRefusedWhenSaved) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  const std::pair<std::string, std::string> refused[] = {
      {"http://127.0.0.1:8080/hook",
       "127.0.0.1 is loopback (127.0.0.0/8), refused under --egress=private; "
       "--egress_allow=127.0.0.1/32 allows it"},
      {"http://[::1]:8080/hook",
       "::1 is loopback (::1), refused under --egress=private; "
       "--egress_allow=::1/128 allows it"},
      {"http://[::ffff:127.0.0.1]/hook",
       "127.0.0.1 is loopback (127.0.0.0/8), refused under --egress=private; "
       "--egress_allow=127.0.0.1/32 allows it"},
      {"http://169.254.169.254/latest/meta-data/",
       "169.254.169.254 is the cloud instance metadata service, refused "
       "under --egress=private; --egress_allow=169.254.169.254/32 allows it"},
      {"http://[fd00:ec2::254]/latest/meta-data/",
       "fd00:ec2::254 is the cloud instance metadata service (AWS), refused "
       "under --egress=private; --egress_allow=fd00:ec2::254/128 allows it"},
      {"http://[fe80::1]/",
       "fe80::1 is link-local (fe80::/10), refused under "
       "--egress=private; --egress_allow=fe80::1/128 "
       "allows it"},
      {"http://0.0.0.0:5432/",
       "0.0.0.0 is \"this network\" (0.0.0.0/8), "
       "refused under --egress=private; "
       "--egress_allow=0.0.0.0/32 allows it"},
      {"http://localhost:6379/",
       "localhost means 127.0.0.1, and 127.0.0.1 is loopback (127.0.0.0/8), "
       "refused under --egress=private; --egress_allow=127.0.0.1/32 allows "
       "it"},
  };
  for (const auto& [url, why] : refused) {
    v1::Handler handler;
    const grpc::Status s = CreateHandler(url, &handler);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << url;
    EXPECT_EQ(s.error_message(), absl::StrCat("url \"", url, "\": ", why));
  }
  // UpdateHandler refuses them too, and changes nothing.
  const std::string id = CreateHandlerOk("http://10.0.0.7:8080/hook");
  v1::UpdateHandlerRequest update;
  update.set_id(id);
  update.set_url("http://127.0.0.1:8080/hook");
  v1::Handler updated;
  const grpc::Status s =
      handlers_->UpdateHandler(Context().get(), update, &updated);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("127.0.0.1 is loopback"));
  v1::GetHandlerRequest get;
  get.set_id(id);
  v1::Handler stored;
  ASSERT_TRUE(handlers_->GetHandler(Context().get(), get, &stored).ok());
  EXPECT_EQ(stored.url(), "http://10.0.0.7:8080/hook");
}

// A name is checked where it leads when the call is made: pinned to
// 127.0.0.1, the attempt is refused without connecting; --egress_allow lets
// the same name through.
TEST_F(EgressTest, ANameResolvingToLoopbackFailsItsAttempt) {
  Receiver receiver;
  START_RECEIVER(receiver);
  const std::string pin = absl::StrCat(
      "--egress_resolve=hooks.internal.test:", receiver.port(), ":127.0.0.1");
  ASSERT_NO_FATAL_FAILURE(Start({pin}));
  const std::string id = CreateHandlerOk(
      absl::StrCat("http://hooks.internal.test:", receiver.port(), "/hook"));
  ASSERT_NO_FATAL_FAILURE(Emit(1));
  ExpectRefused(id,
                "127.0.0.1 is loopback (127.0.0.0/8), refused under "
                "--egress=private; --egress_allow=127.0.0.1/32 allows it",
                receiver);

  // The same server with the receiver's address allowed.
  server_->Stop();
  ASSERT_NO_FATAL_FAILURE(Start({pin, "--egress_allow=127.0.0.1/32"}));
  v1::RedeliverRequest redeliver;
  const std::string delivery_id = FirstAttempted(id).id();
  redeliver.set_delivery_id(delivery_id);
  v1::Delivery requeued;
  const grpc::Status s =
      deliveries_->Redeliver(Context().get(), redeliver, &requeued);
  ASSERT_TRUE(s.ok()) << Describe(s);
  const v1::Delivery delivered = WaitForAttempts(delivery_id, 2);
  EXPECT_EQ(delivered.status(), v1::Delivery::SUCCEEDED)
      << delivered.ShortDebugString();
  ASSERT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(receiver.Requests()[0].path, "/hook");
}

// "localhost" passes no DNS server, and is refused when saved; a handler
// saved while loopback was allowed is refused at its next attempt.
TEST_F(EgressTest, AHandlerSavedUnderAnotherPolicyIsCheckedWhenCalled) {
  Receiver receiver;
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(Start({"--egress_allow=127.0.0.0/8,::1/128"}));
  const std::string id = CreateHandlerOk(
      absl::StrCat("http://localhost:", receiver.port(), "/hook"));
  server_->Stop();
  ASSERT_NO_FATAL_FAILURE(Start({}));
  ASSERT_NO_FATAL_FAILURE(Emit(1));
  const v1::Delivery delivery = FirstAttempted(id);
  ASSERT_EQ(delivery.attempts_size(), 1);
  EXPECT_EQ(delivery.attempts(0).error_class(), "destination_refused");
  // curl tries ::1 and 127.0.0.1; the last refusal is reported.
  EXPECT_THAT(delivery.attempts(0).error_message(), HasSubstr("is loopback"));
  EXPECT_EQ(receiver.Count(), 0u);
}

// A receiver on a private address of this host: reached under the default
// policy once this host's own addresses are allowed, refused under
// --egress=public (when saved and when called), and refused as this host's
// own address under the default flags.
TEST_F(EgressTest, PrivateRangesAreReachableUnderPrivateAndNotUnderPublic) {
  const PrivateAddress address = FindPrivateAddress();
  ASSERT_FALSE(address.bare.empty())
      << "this machine has no interface address in a private range";
  Receiver receiver;
  ASSERT_TRUE(receiver.Start(address.bare).ok());
  const std::string url = receiver.Url("/hook");

  ASSERT_NO_FATAL_FAILURE(Start({"--egress_refuse_host_addresses=false"}));
  const std::string id = CreateHandlerOk(url);
  ASSERT_NO_FATAL_FAILURE(Emit(1));
  const std::string first = FirstAttempted(id).id();
  ASSERT_TRUE(WaitForAttempts(first, 1).status() == v1::Delivery::SUCCEEDED);
  EXPECT_EQ(receiver.Count(), 1u);
  server_->Stop();

  ASSERT_NO_FATAL_FAILURE(Start({"--egress=public"}));
  v1::Handler handler;
  const grpc::Status s = CreateHandler(url, &handler);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr(absl::StrCat(address.bare, " is ")));
  EXPECT_THAT(s.error_message(), HasSubstr("refused under --egress=public"));
  ASSERT_NO_FATAL_FAILURE(Emit(1));  // to the handler saved before
  std::string second;
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::ListDeliveriesRequest req;
        req.set_project(kProject);
        req.set_handler_id(id);
        v1::ListDeliveriesResponse resp;
        if (!deliveries_->ListDeliveries(Context().get(), req, &resp).ok()) {
          return false;
        }
        for (const v1::Delivery& d : resp.deliveries()) {
          if (d.id() != first) second = d.id();
        }
        return !second.empty();
      },
      milliseconds(20000)));
  v1::Delivery refused = WaitForAttempts(second, 1);
  ASSERT_EQ(refused.attempts_size(), 1);
  EXPECT_EQ(refused.attempts(0).error_class(), "destination_refused");
  EXPECT_THAT(refused.attempts(0).error_message(),
              HasSubstr(absl::StrCat(address.bare, " is ")));
  EXPECT_THAT(refused.attempts(0).error_message(),
              HasSubstr("refused under --egress=public"));
  server_->Stop();

  // Default flags: the address is this host's own.
  ASSERT_NO_FATAL_FAILURE(Start({}));
  v1::RedeliverRequest redeliver;
  redeliver.set_delivery_id(second);
  v1::Delivery requeued;
  const grpc::Status r =
      deliveries_->Redeliver(Context().get(), redeliver, &requeued);
  ASSERT_TRUE(r.ok()) << Describe(r);
  refused = WaitForAttempts(second, 2);
  ASSERT_EQ(refused.attempts_size(), 2);
  EXPECT_EQ(refused.attempts(1).error_class(), "destination_refused");
  EXPECT_EQ(refused.attempts(1).error_message(),
            absl::StrCat(address.bare,
                         " is an address of this host, refused under "
                         "--egress_refuse_host_addresses; --egress_allow=",
                         address.bare,
                         address.in_url == address.bare ? "/32" : "/128",
                         " allows it"));
  EXPECT_EQ(receiver.Count(), 1u);
}

TEST_F(EgressTest, HttpsOnlyRefusesHttpUrls) {
  Receiver receiver;
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(Start({"--egress_allow=127.0.0.1/32"}));
  const std::string id = CreateHandlerOk(receiver.Url("/hook"));
  server_->Stop();
  ASSERT_NO_FATAL_FAILURE(
      Start({"--egress_allow=127.0.0.1/32", "--https_only"}));
  v1::Handler handler;
  const grpc::Status s = CreateHandler(receiver.Url("/other"), &handler);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("url \"", receiver.Url("/other"),
                         "\" must be https://: this server calls only "
                         "https:// URLs (--https_only)"));
  ASSERT_NO_FATAL_FAILURE(Emit(1));
  ExpectRefused(id,
                "the URL is http://; this server calls only https:// URLs "
                "(--https_only)",
                receiver);
}

// With --egress_proxy every call is a CONNECT tunnel and the proxy decides:
// Rio neither resolves the name nor checks the proxy's (loopback) address;
// literal addresses are still refused when handlers are saved.
TEST_F(EgressTest, AProxyTunnelsEveryCallAndDecidesWhereItGoes) {
  Receiver receiver;
  START_RECEIVER(receiver);
  const std::string allowed =
      absl::StrCat("hooks.internal.test:", receiver.port());
  const std::string blocked =
      absl::StrCat("blocked.internal.test:", receiver.port());
  testkit::ConnectProxy proxy({allowed}, receiver.port());
  START_RECEIVER(proxy);
  ASSERT_NO_FATAL_FAILURE(Start({"--egress_proxy=" + proxy.Url()}));
  const std::string through = CreateHandlerOk("http://" + allowed + "/hook");
  const std::string refused = CreateHandlerOk("http://" + blocked + "/hook");
  v1::Handler handler;
  EXPECT_EQ(CreateHandler("http://127.0.0.1:9/", &handler).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_NO_FATAL_FAILURE(Emit(2));

  EXPECT_EQ(FirstAttempted(through).status(), v1::Delivery::SUCCEEDED);
  const v1::Delivery denied = FirstAttempted(refused);
  ASSERT_EQ(denied.attempts_size(), 1);
  EXPECT_EQ(denied.attempts(0).status_code(), 0);
  EXPECT_THAT(denied.attempts(0).error_message(), HasSubstr("403"));
  ASSERT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(receiver.Requests()[0].path, "/hook");
  std::vector<std::string> targets = proxy.Targets();
  std::sort(targets.begin(), targets.end());
  EXPECT_EQ(targets, (std::vector<std::string>{blocked, allowed}));
}

TEST_F(EgressTest, BadFlagsStopTheServerWithAClearMessage) {
  const std::pair<std::string, std::string> cases[] = {
      {"--egress=open",
       "--egress must be private (refuse this host, link-local and metadata "
       "addresses) or public (also refuse private ranges), not \"open\""},
      {"--egress_allow=10.0.0.0/33",
       "--egress_allow: \"10.0.0.0/33\" has a prefix length that is not 0 to "
       "32"},
      {"--egress_deny=example.com",
       "--egress_deny: \"example.com\" is not an IPv4 or IPv6 network (like "
       "10.0.0.0/8 or fd00::/8)"},
      {"--egress_resolve=hooks.test:80",
       "--egress_resolve entry \"hooks.test:80\" is not HOST:PORT:ADDRESS "
       "(like hooks.internal:443:10.0.0.7)"},
      {"--egress_proxy=socks5://127.0.0.1:1080",
       "--egress_proxy \"socks5://127.0.0.1:1080\" is not an http:// or "
       "https:// URL"},
      {"--ca_file=/nonexistent/ca.pem",
       "--ca_file /nonexistent/ca.pem: No such file or directory"},
  };
  for (const auto& [flag, message] : cases) {
    ServerProcess::Options options;
    options.database_url = database_url_;
    options.extra_args = {flag};
    ServerProcess server(options);
    const absl::Status started = server.Start();
    EXPECT_THAT(started.message(), HasSubstr("exited with code 2")) << flag;
    EXPECT_THAT(server.Log(), HasSubstr("rio-server: " + message + "\n"))
        << flag;
  }
}

}  // namespace
}  // namespace rio
