// HTTPS to receivers: certificates are always verified, --ca_file adds
// roots to the system's, and a certificate for another name is refused even
// when its CA is trusted. The receivers are real HTTPS servers (the test
// kit's Receiver over OpenSSL) with certificates made by the test.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/util/crypto.h"
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
using testkit::ReceiverTls;
using testkit::ServerProcess;
using testkit::TestCertificates;
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

class ReceiverTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certificates = TestCertificates::Make();
    ASSERT_TRUE(certificates.ok()) << certificates.status();
    certificates_ = *std::move(certificates);
    auto url = PgCluster::Shared().CreateDatabase("receiver_tls");
    ASSERT_TRUE(url.ok()) << url.status();
    database_url_ = *url;
  }

  void Start(std::vector<std::string> args) {
    ServerProcess::Options options;
    options.database_url = database_url_;
    options.admin_token = kAdminToken;
    args.push_back("--retry_schedule=1h");
    options.extra_args = std::move(args);
    server_ = std::make_unique<ServerProcess>(options);
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    auto projects = v1::ProjectService::NewStub(server_->Channel());
    handlers_ = v1::HandlerService::NewStub(server_->Channel());
    emitter_ = v1::EmitService::NewStub(server_->Channel());
    deliveries_ = v1::DeliveryService::NewStub(server_->Channel());
    v1::CreateProjectRequest project;
    project.set_slug(kProject);
    v1::Project created;
    ASSERT_TRUE(
        projects->CreateProject(Context().get(), project, &created).ok());
    v1::CreateSenderRequest sender;
    sender.set_project(kProject);
    sender.set_name("app");
    v1::CreateSenderResponse resp;
    ASSERT_TRUE(projects->CreateSender(Context().get(), sender, &resp).ok());
    sender_auth_ = absl::StrCat(
        "Basic ", util::Base64Encode(absl::StrCat("app:", resp.token())));
  }

  // Registers `url`, emits one event and returns its delivery once its
  // first attempt is recorded.
  v1::Delivery DeliverOnce(const std::string& url) {
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(kEvent);
    req.set_url(url);
    req.set_timeout_ms(5000);
    v1::Handler handler;
    const grpc::Status created =
        handlers_->CreateHandler(Context().get(), req, &handler);
    EXPECT_TRUE(created.ok()) << created.error_message();
    v1::EmitRequest emit;
    emit.set_project(kProject);
    emit.set_event(kEvent);
    emit.set_payload_json(R"({"n":1})");
    v1::EmitResponse emitted;
    EXPECT_TRUE(
        emitter_->Emit(Context(sender_auth_).get(), emit, &emitted).ok());
    v1::Delivery found;
    const bool attempted = WaitFor(
        [&] {
          v1::ListDeliveriesRequest list;
          list.set_project(kProject);
          list.set_handler_id(handler.id());
          v1::ListDeliveriesResponse resp;
          if (!deliveries_->ListDeliveries(Context().get(), list, &resp).ok() ||
              resp.deliveries_size() != 1 ||
              resp.deliveries(0).attempt_count() < 1) {
            return false;
          }
          v1::GetDeliveryRequest get;
          get.set_id(resp.deliveries(0).id());
          return deliveries_->GetDelivery(Context().get(), get, &found).ok();
        },
        milliseconds(20000));
    EXPECT_TRUE(attempted) << "no attempt recorded for " << url;
    return found;
  }

  ReceiverTls ServerCertificate(const std::string& name) const {
    return {certificates_->Path(name + ".pem"),
            certificates_->Path(name + ".key"), ""};
  }

  std::unique_ptr<TestCertificates> certificates_;
  std::string database_url_;
  std::string sender_auth_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
  std::unique_ptr<v1::DeliveryService::Stub> deliveries_;
};

TEST_F(ReceiverTlsTest, AReceiverSignedByAnUnknownCaIsRefused) {
  Receiver receiver(ServerCertificate("server"));
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(Start({}));
  const v1::Delivery delivery = DeliverOnce(receiver.Url("/hook"));
  ASSERT_EQ(delivery.attempts_size(), 1) << delivery.ShortDebugString();
  EXPECT_EQ(delivery.attempts(0).error_class(), "tls");
  EXPECT_EQ(delivery.attempts(0).status_code(), 0);
  EXPECT_THAT(delivery.attempts(0).error_message(), HasSubstr("certificate"));
  EXPECT_EQ(receiver.Count(), 0u);
}

TEST_F(ReceiverTlsTest, CaFileAddsARootAndNamesAreStillChecked) {
  Receiver receiver(ServerCertificate("server"));
  START_RECEIVER(receiver);
  Receiver wrong_name(ServerCertificate("wrong-name"));
  START_RECEIVER(wrong_name);
  ASSERT_NO_FATAL_FAILURE(
      Start({"--ca_file=" + certificates_->Path("ca.pem")}));

  const v1::Delivery delivered = DeliverOnce(receiver.Url("/hook"));
  EXPECT_EQ(delivered.status(), v1::Delivery::SUCCEEDED)
      << delivered.ShortDebugString();
  ASSERT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(receiver.Requests()[0].path, "/hook");
  EXPECT_EQ(receiver.Requests()[0].method, "POST");

  // Trusted CA, but the certificate names elsewhere.invalid.
  const v1::Delivery refused = DeliverOnce(wrong_name.Url("/hook"));
  ASSERT_EQ(refused.attempts_size(), 1);
  EXPECT_EQ(refused.attempts(0).error_class(), "tls");
  EXPECT_THAT(refused.attempts(0).error_message(), HasSubstr("127.0.0.1"));
  EXPECT_EQ(wrong_name.Count(), 0u);
}

TEST_F(ReceiverTlsTest, ACaFileWithoutCertificatesStopsTheServer) {
  ServerProcess::Options options;
  options.database_url = database_url_;
  options.extra_args = {"--ca_file=" + certificates_->Path("ca.key")};
  ServerProcess server(options);
  const absl::Status started = server.Start();
  EXPECT_THAT(started.message(), HasSubstr("exited with code 2"));
  EXPECT_THAT(server.Log(),
              HasSubstr(absl::StrCat("rio-server: --ca_file ",
                                     certificates_->Path("ca.key"),
                                     " holds no PEM certificate\n")));
}

}  // namespace
}  // namespace rio
