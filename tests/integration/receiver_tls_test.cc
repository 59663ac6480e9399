// HTTPS to receivers: certificates are always verified, --ca_file adds
// roots to the system's, and a certificate for another name is refused even
// when its CA is trusted; a handler's client certificate (mutual TLS) is
// presented to receivers that require one, and its key is write-only and
// sealed at rest. The receivers are real HTTPS servers (the test
// kit's Receiver over OpenSSL) with certificates made by the test.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
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
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;
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
  v1::Delivery DeliverOnce(const std::string& url,
                           const std::string& client_certificate = "") {
    // An event of its own, so that earlier handlers are not called.
    const std::string event = absl::StrCat(kEvent, "-", ++deliveries_made_);
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(event);
    req.set_url(url);
    req.set_timeout_ms(5000);
    if (!client_certificate.empty()) {
      req.set_client_certificate(
          certificates_->Read(client_certificate + ".pem"));
      req.set_client_key(certificates_->Read(client_certificate + ".key"));
    }
    v1::Handler handler;
    const grpc::Status created =
        handlers_->CreateHandler(Context().get(), req, &handler);
    EXPECT_TRUE(created.ok()) << created.error_message();
    handler_id_ = handler.id();
    v1::EmitRequest emit;
    emit.set_project(kProject);
    emit.set_event(event);
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
  std::string handler_id_;  // of the last DeliverOnce
  int deliveries_made_ = 0;
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

TEST_F(ReceiverTlsTest, AHandlerPresentsItsClientCertificate) {
  // The receiver requires a client certificate issued by the test CA.
  Receiver receiver(ReceiverTls{certificates_->Path("server.pem"),
                                certificates_->Path("server.key"),
                                certificates_->Path("ca.pem")});
  START_RECEIVER(receiver);
  ASSERT_NO_FATAL_FAILURE(
      Start({"--ca_file=" + certificates_->Path("ca.pem")}));

  const v1::Delivery delivered = DeliverOnce(receiver.Url("/hook"), "client");
  EXPECT_EQ(delivered.status(), v1::Delivery::SUCCEEDED)
      << delivered.ShortDebugString();
  ASSERT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(receiver.Requests()[0].client_subject, "rio-test-client");
  const std::string with_certificate = handler_id_;

  // Without a certificate, or with one of another CA, the receiver refuses
  // the handshake and nothing is delivered.
  for (const std::string certificate : {"", "other-client"}) {
    SCOPED_TRACE(certificate);
    const v1::Delivery refused =
        DeliverOnce(receiver.Url("/hook"), certificate);
    ASSERT_EQ(refused.attempts_size(), 1) << refused.ShortDebugString();
    // Under TLS 1.3 the client finishes its side of the handshake before
    // the receiver checks the certificate, so the refusal arrives as an
    // alert on the first read, or as a connection already closed.
    EXPECT_THAT(refused.attempts(0).error_class(),
                AnyOf("tls", "connection_lost"))
        << refused.attempts(0).error_message();
    EXPECT_EQ(receiver.Count(), 1u);
  }
  EXPECT_GE(receiver.HandshakeFailures(), 2u);

  // Replies show the certificate and mask the key; the database holds the
  // key sealed.
  v1::GetHandlerRequest get;
  get.set_id(with_certificate);
  v1::Handler handler;
  ASSERT_TRUE(handlers_->GetHandler(Context().get(), get, &handler).ok());
  EXPECT_EQ(handler.client_certificate(), certificates_->Read("client.pem"));
  EXPECT_EQ(handler.client_key(), "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2");
  const std::string stored =
      testkit::Sql(database_url_,
                   absl::StrCat("SELECT client_key FROM handlers WHERE id = '",
                                with_certificate, "'"));
  EXPECT_TRUE(absl::StartsWith(stored, "rio:v1:test:")) << stored;
  auto dump = PgCluster::Dump(database_url_);
  ASSERT_TRUE(dump.ok()) << dump.status();
  EXPECT_THAT(*dump, Not(HasSubstr("PRIVATE KEY")));

  // A new certificate with the masked key keeps the stored key, which must
  // belong to it; both empty removes them.
  v1::UpdateHandlerRequest update;
  update.set_id(with_certificate);
  update.set_client_certificate(certificates_->Read("other-client.pem"));
  update.set_client_key(handler.client_key());
  grpc::Status s = handlers_->UpdateHandler(Context().get(), update, &handler);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "client_key: does not belong to the client_certificate "
            "(CN=rio-other-client)");
  update.set_client_certificate(certificates_->Read("client.pem"));
  s = handlers_->UpdateHandler(Context().get(), update, &handler);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The kept key still opens and is presented: the handler (event
  // order-paid-1) delivers again.
  v1::EmitRequest emit;
  emit.set_project(kProject);
  emit.set_event(handler.event());
  emit.set_payload_json("{}");
  v1::EmitResponse emitted;
  ASSERT_TRUE(emitter_->Emit(Context(sender_auth_).get(), emit, &emitted).ok());
  ASSERT_TRUE(receiver.WaitForCount(2));
  EXPECT_EQ(receiver.Requests()[1].client_subject, "rio-test-client");
  update.set_client_certificate("");
  update.set_client_key("");
  s = handlers_->UpdateHandler(Context().get(), update, &handler);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(handler.client_certificate(), "");
  EXPECT_EQ(handler.client_key(), "");
  EXPECT_EQ(
      testkit::Sql(database_url_,
                   absl::StrCat("SELECT client_certificate || client_key FROM "
                                "handlers WHERE id = '",
                                with_certificate, "'")),
      "");
}

TEST_F(ReceiverTlsTest, BadClientCertificatesAreRefused) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  const std::string cert = certificates_->Read("client.pem");
  const std::string key = certificates_->Read("client.key");
  struct Case {
    std::string certificate, key, message;
  };
  const std::vector<Case> cases = {
      {cert, "",
       "client_certificate needs its client_key (the PEM private key)"},
      {"", key,
       "client_key needs a client_certificate (both empty removes them)"},
      {"not a certificate", key,
       "client_certificate: holds no PEM certificate (-----BEGIN "
       "CERTIFICATE-----)"},
      {cert, "not a key", "client_key: holds no usable PEM private key"},
      {cert, certificates_->Read("other-client.key"),
       "client_key: does not belong to the client_certificate "
       "(CN=rio-test-client)"},
      {cert, "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2",
       "client_key is the masked value"},
      {std::string(70000, 'x'), key,
       "client_certificate: is larger than 65536 bytes"},
  };
  for (const Case& c : cases) {
    v1::CreateHandlerRequest req;
    req.set_project(kProject);
    req.set_event(kEvent);
    req.set_url("https://127.0.0.1:1/hook");
    req.set_client_certificate(c.certificate);
    req.set_client_key(c.key);
    v1::Handler handler;
    const grpc::Status s =
        handlers_->CreateHandler(Context().get(), req, &handler);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_EQ(s.error_message().substr(0, c.message.size()), c.message);
  }
  EXPECT_EQ(testkit::Sql(database_url_, "SELECT count(*) FROM handlers"), "0");
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
