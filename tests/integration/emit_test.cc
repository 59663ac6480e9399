// Emit and dispatch through the real rio-server binary, a real PostgreSQL and
// real HTTP receivers on 127.0.0.1 (the test kit's Receiver, and the original
// Rio's Flask receiver): fan-out at once, the request a receiver gets (form
// fields, exact JSON bytes, Standard Webhooks signatures through a secret
// rotation, Rio's headers), retries, 410, Retry-After, hanging receivers,
// timeouts and connection errors, SIGKILL mid-burst, two instances on one
// database, idempotency, every bad input (and nothing written), and
// EmitBatch.
//
// Outcomes are written back to PostgreSQL in batches, so final states are
// polled from the database with a deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "rio/v1/emit.grpc.pb.h"
#include "rio/v1/handler.grpc.pb.h"
#include "rio/v1/project.grpc.pb.h"
#include "server/util/crypto.h"
#include "tests/testkit/fixture.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

extern char** environ;

namespace rio {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using testkit::PgCluster;
using testkit::ReceivedRequest;
using testkit::Receiver;
using testkit::ReceiverReply;
using testkit::ServerProcess;
using testkit::Sql;
using testkit::WaitFor;
using Code = grpc::StatusCode;

constexpr char kAdminToken[] = "test-admin-token-0123456789abcdef";
constexpr char kProject[] = "comments";
constexpr char kSender[] = "app";
constexpr char kEvent[] = "comment-published";
constexpr char kUuidPattern[] =
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
// How long final delivery states may take to show up in the database.
constexpr milliseconds kSettle(30000);

std::unique_ptr<grpc::ClientContext> Context(
    const std::string& authorization, milliseconds deadline = seconds(10)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  return ctx;
}

// "INVALID_ARGUMENT" etc. (gRPC and absl codes are the same numbers).
std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string AdminAuth() { return absl::StrCat("Bearer ", kAdminToken); }

std::string BasicAuth(const std::string& sender, const std::string& token) {
  return absl::StrCat("Basic ",
                      util::Base64Encode(absl::StrCat(sender, ":", token)));
}

// The Standard Webhooks v1 signature of `body`, as a receiver computes it.
std::string Signature(const std::string& secret, const std::string& id,
                      const std::string& timestamp, const std::string& body) {
  absl::string_view encoded_key = secret;
  if (!absl::ConsumePrefix(&encoded_key, "whsec_")) {
    ADD_FAILURE() << "secret " << secret << " does not start with whsec_";
  }
  const std::optional<std::string> key = util::Base64Decode(encoded_key);
  if (!key.has_value()) {
    ADD_FAILURE() << "secret " << secret << " is not base64 after whsec_";
    return "";
  }
  return absl::StrCat("v1,",
                      util::Base64Encode(util::HmacSha256(
                          *key, absl::StrCat(id, ".", timestamp, ".", body))));
}

// The entries of a webhook-signature header.
std::vector<std::string> SignatureEntries(const ReceivedRequest& request) {
  return absl::StrSplit(request.Header("webhook-signature"), ' ',
                        absl::SkipEmpty());
}

// What `request` is signed with, computed with `secret`.
std::string ExpectedSignature(const ReceivedRequest& request,
                              const std::string& secret) {
  return Signature(secret, request.Header("webhook-id"),
                   request.Header("webhook-timestamp"), request.body);
}

// Decodes application/x-www-form-urlencoded text; fails the test on a
// repeated field.
std::map<std::string, std::string> ParseForm(absl::string_view body) {
  auto decode = [](absl::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '+') {
        out.push_back(' ');
      } else if (text[i] == '%' && i + 2 < text.size() &&
                 absl::ascii_isxdigit(text[i + 1]) &&
                 absl::ascii_isxdigit(text[i + 2])) {
        int value = 0;
        (void)absl::SimpleHexAtoi(text.substr(i + 1, 2), &value);
        out.push_back(static_cast<char>(value));
        i += 2;
      } else {
        out.push_back(text[i]);
      }
    }
    return out;
  };
  std::map<std::string, std::string> fields;
  for (absl::string_view pair : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    const size_t equals = pair.find('=');
    const std::string name = decode(pair.substr(0, equals));
    const std::string value = equals == absl::string_view::npos
                                  ? ""
                                  : decode(pair.substr(equals + 1));
    EXPECT_TRUE(fields.emplace(name, value).second)
        << "field " << name << " repeated in " << body;
  }
  return fields;
}

// A Struct from JSON text (test data; fails the test when malformed).
google::protobuf::Struct StructFromJson(const std::string& json) {
  google::protobuf::Struct value;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return value;
}

v1::EmitRequest JsonEvent(const std::string& payload_json,
                          const std::string& event = kEvent,
                          const std::string& project = kProject) {
  v1::EmitRequest req;
  req.set_project(project);
  req.set_event(event);
  req.set_payload_json(payload_json);
  return req;
}

std::string Quoted(const std::string& text) {
  return absl::StrCat("'", text, "'");  // Ids and names only: no quotes.
}

// "messages|deliveries|attempts" row counts.
std::string RowCounts(const std::string& url) {
  return Sql(url,
             "SELECT (SELECT count(*) FROM messages) || '|' || (SELECT "
             "count(*) FROM deliveries) || '|' || (SELECT count(*) FROM "
             "attempts)");
}

std::string DeliveryId(const std::string& url, const std::string& message_id,
                       const std::string& handler_id) {
  return Sql(url, absl::StrCat("SELECT id FROM deliveries WHERE message_id = ",
                               Quoted(message_id),
                               " AND handler_id = ", Quoted(handler_id)));
}

// "STATUS|attempts" of one delivery.
std::string DeliveryState(const std::string& url,
                          const std::string& delivery_id) {
  return Sql(url,
             absl::StrCat("SELECT status || '|' || attempts FROM deliveries "
                          "WHERE id = ",
                          Quoted(delivery_id)));
}

// Waits until the delivery is in `want` ("STATUS|attempts").
::testing::AssertionResult DeliveryReaches(const std::string& url,
                                           const std::string& delivery_id,
                                           const std::string& want,
                                           milliseconds timeout = kSettle) {
  std::string state;
  if (WaitFor(
          [&] {
            state = DeliveryState(url, delivery_id);
            return state == want;
          },
          timeout)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "delivery " << delivery_id << " is \"" << state << "\", not \""
         << want << "\" after " << timeout.count() << " ms";
}

// "number|status_code|error_class" of each attempt, ';'-separated.
std::string AttemptLog(const std::string& url, const std::string& delivery_id) {
  return Sql(url,
             absl::StrCat("SELECT string_agg(number || '|' || status_code || "
                          "'|' || error_class, ';' ORDER BY number) FROM "
                          "attempts WHERE delivery_id = ",
                          Quoted(delivery_id)));
}

// Waits until no delivery is PENDING.
::testing::AssertionResult AllDeliveriesSettle(const std::string& url,
                                               milliseconds timeout = kSettle) {
  std::string pending;
  if (WaitFor(
          [&] {
            pending = Sql(url,
                          "SELECT count(*) FROM deliveries WHERE status = "
                          "'PENDING'");
            return pending == "0";
          },
          timeout)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << pending << " deliveries still PENDING after " << timeout.count()
         << " ms";
}

// Every webhook-id a receiver got, with how often.
std::map<std::string, int> WebhookIds(const Receiver& receiver) {
  std::map<std::string, int> ids;
  for (const ReceivedRequest& request : receiver.Requests()) {
    ++ids[request.Header("webhook-id")];
  }
  return ids;
}

// Admin and sender calls against one rio-server.
class RioClient {
 public:
  explicit RioClient(const std::shared_ptr<grpc::Channel>& channel)
      : projects_(v1::ProjectService::NewStub(channel)),
        handlers_(v1::HandlerService::NewStub(channel)),
        emitter_(v1::EmitService::NewStub(channel)) {}

  void CreateProject(const std::string& slug) {
    v1::CreateProjectRequest req;
    req.set_slug(slug);
    v1::Project project;
    const grpc::Status s =
        projects_->CreateProject(Context(AdminAuth()).get(), req, &project);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  // Returns the sender's `authorization` value.
  std::string CreateSender(const std::string& project,
                           const std::string& name) {
    v1::CreateSenderRequest req;
    req.set_project(project);
    req.set_name(name);
    v1::CreateSenderResponse resp;
    const grpc::Status s =
        projects_->CreateSender(Context(AdminAuth()).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(resp.token().empty());
    return BasicAuth(name, resp.token());
  }

  v1::Handler CreateHandler(
      const std::string& url, const std::string& event = kEvent,
      const std::function<void(v1::CreateHandlerRequest&)>& customize = nullptr,
      const std::string& project = kProject) {
    v1::CreateHandlerRequest req;
    req.set_project(project);
    req.set_event(event);
    req.set_url(url);
    if (customize) customize(req);
    v1::Handler handler;
    const grpc::Status s =
        handlers_->CreateHandler(Context(AdminAuth()).get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_THAT(handler.secret(), StartsWith("whsec_"));
    return handler;
  }

  v1::Handler GetHandler(const std::string& id) {
    v1::GetHandlerRequest req;
    req.set_id(id);
    v1::Handler handler;
    const grpc::Status s =
        handlers_->GetHandler(Context(AdminAuth()).get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  v1::Handler RotateSecret(const std::string& id, bool expire_previous) {
    v1::RotateHandlerSecretRequest req;
    req.set_id(id);
    req.set_expire_previous(expire_previous);
    v1::Handler handler;
    const grpc::Status s = handlers_->RotateHandlerSecret(
        Context(AdminAuth()).get(), req, &handler);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return handler;
  }

  grpc::Status Emit(const std::string& authorization,
                    const v1::EmitRequest& req, v1::EmitResponse* resp) {
    return emitter_->Emit(Context(authorization).get(), req, resp);
  }

  grpc::Status EmitBatch(const std::string& authorization,
                         const v1::EmitBatchRequest& req,
                         v1::EmitBatchResponse* resp) {
    return emitter_->EmitBatch(Context(authorization).get(), req, resp);
  }

  // Emits and expects OK.
  v1::EmitResponse MustEmit(const std::string& authorization,
                            const v1::EmitRequest& req) {
    v1::EmitResponse resp;
    const grpc::Status s = Emit(authorization, req, &resp);
    EXPECT_TRUE(s.ok()) << CodeName(s.error_code()) << ": "
                        << s.error_message();
    return resp;
  }

 private:
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::HandlerService::Stub> handlers_;
  std::unique_ptr<v1::EmitService::Stub> emitter_;
};

ServerProcess::Options ServerOptions(const std::string& url,
                                     std::vector<std::string> extra_args) {
  ServerProcess::Options options;
  options.database_url = url;
  options.admin_token = kAdminToken;
  options.extra_args = std::move(extra_args);
  return options;
}

// One rio-server on a fresh database, with project "comments" and its
// sender "app". Each test starts it with the flags it needs.
class EmitTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra_args = {}) {
    auto url = PgCluster::Shared().CreateDatabase("emit");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    server_ = std::make_unique<ServerProcess>(ServerOptions(url_, extra_args));
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    rio_ = std::make_unique<RioClient>(server_->Channel());
    rio_->CreateProject(kProject);
    auth_ = rio_->CreateSender(kProject, kSender);
    ASSERT_FALSE(HasFailure());
  }

  // Waits until the server's log has a line containing `text`.
  ::testing::AssertionResult LogShows(const std::string& text) {
    if (WaitFor([&] { return absl::StrContains(server_->Log(), text); })) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "the server log has no \"" << text << "\"";
  }

  std::string url_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<RioClient> rio_;
  std::string auth_;  // Sender "app" of project "comments".
};

// ---------------------------------------------------------------------------
// The signature helper itself, against the Standard Webhooks test vector.

TEST(StandardWebhooksSignature, TestHelperMatchesTheSpecificationVector) {
  EXPECT_EQ(Signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                      "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                      R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// ---------------------------------------------------------------------------
// The happy path: committed before the reply, delivered, logged.

TEST_F(EmitTest, EmitIsCommittedBeforeTheReplyThenDeliveredAndLogged) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const std::string payload = R"({"ip": "127.0.0.1", "content": "hi"})";

  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(payload));
  EXPECT_THAT(resp.message_id(), MatchesRegex(kUuidPattern));
  EXPECT_EQ(resp.handlers(), 1);
  EXPECT_FALSE(resp.duplicate());
  // Committed by the time the reply came: no polling here.
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT event || '|' || payload || '|' || "
                                   "coalesce(idempotency_key, '<null>') FROM "
                                   "messages WHERE id = ",
                                   Quoted(resp.message_id()))),
            absl::StrCat(kEvent, "|", payload, "|<null>"));
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT count(*) FROM deliveries WHERE "
                                   "message_id = ",
                                   Quoted(resp.message_id()),
                                   " AND handler_id = ", Quoted(handler.id()))),
            "1");

  ASSERT_TRUE(receiver.WaitForCount(1));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|1"));
  EXPECT_EQ(AttemptLog(url_, delivery_id), "1|200|");

  EXPECT_TRUE(LogShows(absl::StrCat("EMIT ", resp.message_id(), " ", kProject,
                                    " ", kEvent, " handlers=1\n")));
  EXPECT_TRUE(
      LogShows(absl::StrCat("REQUEST ", resp.message_id(), " ", delivery_id,
                            " POST ", receiver.Url(), " attempt=1\n")));
  EXPECT_TRUE(LogShows(
      absl::StrCat("RESPONSE ", resp.message_id(), " ", delivery_id, " 200 ")));
  EXPECT_THAT(server_->Log(),
              ContainsRegex(absl::StrCat("RESPONSE ", resp.message_id(), " ",
                                         delivery_id, " 200 [0-9]+ms\n")));
  EXPECT_EQ(receiver.Count(), 1u);
}

TEST_F(EmitTest, RequestCarriesStandardWebhooksAndRioHeaders) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  const v1::Handler handler =
      rio_->CreateHandler(receiver.Url("/hooks/json"), kEvent, [](auto& r) {
        r.set_method(v1::Handler::PUT);
        r.set_content_type(v1::Handler::JSON);
        (*r.mutable_headers())["X-Team"] = "spam";
      });
  const std::time_t before = std::time(nullptr);
  const v1::EmitResponse resp =
      rio_->MustEmit(auth_, JsonEvent(R"({"content":"hi"})"));
  ASSERT_TRUE(receiver.WaitForCount(1));
  const std::time_t after = std::time(nullptr);
  const ReceivedRequest request = receiver.Requests()[0];
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());

  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.path, "/hooks/json");
  EXPECT_EQ(request.query, "");
  EXPECT_EQ(request.Header("content-type"), "application/json");
  EXPECT_EQ(request.body, R"({"content":"hi"})");
  EXPECT_EQ(request.Header("webhook-id"), resp.message_id());
  int64_t timestamp = 0;
  ASSERT_TRUE(absl::SimpleAtoi(request.Header("webhook-timestamp"), &timestamp))
      << request.Header("webhook-timestamp");
  EXPECT_GE(timestamp, before - 1);
  EXPECT_LE(timestamp, after + 1);
  EXPECT_THAT(SignatureEntries(request),
              ElementsAre(ExpectedSignature(request, handler.secret())));
  EXPECT_EQ(request.Header("x-rio-event"),
            absl::StrCat("uuid=", resp.message_id(), ",project=", kProject,
                         ",action=", kEvent));
  EXPECT_EQ(request.Header("x-rio-delivery"), delivery_id);
  EXPECT_EQ(request.Header("x-rio-attempt"), "1");
  EXPECT_EQ(request.Header("user-agent"), "rio/" RIO_VERSION);
  EXPECT_EQ(request.Header("x-team"), "spam");
  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|1"));
}

// ---------------------------------------------------------------------------
// Fan-out

TEST_F(EmitTest, FanOutCallsEveryHandlerAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  auto slow = [](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.delay = seconds(1);
    return reply;
  };
  Receiver a(slow), b(slow), c(slow);
  START_RECEIVER(a);
  START_RECEIVER(b);
  START_RECEIVER(c);
  std::vector<std::string> handler_ids;
  for (Receiver* r : {&a, &b, &c}) {
    handler_ids.push_back(rio_->CreateHandler(r->Url()).id());
  }

  const steady_clock::time_point emitted = steady_clock::now();
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({"n":1})"));
  EXPECT_EQ(resp.handlers(), 3);
  for (Receiver* r : {&a, &b, &c}) {
    ASSERT_TRUE(r->WaitForCount(1, seconds(5)));
    const milliseconds after = std::chrono::duration_cast<milliseconds>(
        r->Requests()[0].arrival - emitted);
    // Sequential calls would put the third at >= 2 s.
    EXPECT_LT(after, milliseconds(1500)) << r->Url();
  }
  for (const std::string& handler_id : handler_ids) {
    EXPECT_TRUE(DeliveryReaches(
        url_, DeliveryId(url_, resp.message_id(), handler_id), "SUCCEEDED|1"));
  }
}

TEST_F(EmitTest, HandlersCountsOnlyEnabledHandlersOfThatEventAndProject) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  const v1::Handler enabled = rio_->CreateHandler(receiver.Url("/enabled"));
  const v1::Handler disabled = rio_->CreateHandler(
      receiver.Url("/disabled"), kEvent, [](auto& r) { r.set_enabled(false); });
  rio_->CreateHandler(receiver.Url("/other-event"), "comment-deleted");
  rio_->CreateProject("billing");
  rio_->CreateHandler(receiver.Url("/other-project"), kEvent, nullptr,
                      "billing");

  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  EXPECT_EQ(resp.handlers(), 1);
  // The disabled handler's delivery is recorded CANCELLED (so that it can be
  // recovered once the handler is enabled), and never sent.
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT string_agg(handler_id || ':' || "
                                   "(status = 'CANCELLED'), ',' ORDER BY "
                                   "status = 'CANCELLED') FROM deliveries "
                                   "WHERE message_id = ",
                                   Quoted(resp.message_id()))),
            absl::StrCat(enabled.id(), ":false,", disabled.id(), ":true"));
  ASSERT_TRUE(receiver.WaitForCount(1));
  EXPECT_TRUE(AllDeliveriesSettle(url_));
  EXPECT_EQ(receiver.Count(), 1u);
  EXPECT_EQ(receiver.Requests()[0].path, "/enabled");
}

// ---------------------------------------------------------------------------
// What a receiver gets

// The original Rio's Flask receiver, run by /usr/bin/python3.
class FlaskReceiver {
 public:
  ~FlaskReceiver() { Stop(); }

  absl::Status Start() {
    const char* from_env = getenv("RIO_FLASK_RECEIVER");
    const std::string script =
        from_env != nullptr && *from_env != '\0'
            ? std::string(from_env)
            : std::string(RIO_INTEGRATION_TESTS_DIR "/flask_receiver.py");
    if (access(script.c_str(), R_OK) != 0) {
      return absl::NotFoundError(absl::StrCat(
          "no ", script, "; set RIO_FLASK_RECEIVER to flask_receiver.py"));
    }
    char dir_template[] = "/tmp/rio-flask-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) {
      return absl::InternalError("mkdtemp failed");
    }
    dir_ = dir_template;
    record_path_ = dir_ + "/requests.jsonl";
    log_path_ = dir_ + "/flask.log";

    // A free port: bound, read back, released for the child to take.
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd < 0 ||
        bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      if (fd >= 0) close(fd);
      return absl::InternalError("cannot pick a free port");
    }
    close(fd);
    port_ = ntohs(address.sin_port);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = {"/usr/bin/python3", "-u", script,
                                     std::to_string(port_), record_path_};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int error =
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("posix_spawn python3: ", error));
    }
    const bool listening = WaitFor(
        [&] {
          int status = 0;
          if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;  // Exited: stop waiting.
          }
          const int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          const bool ok = connect(probe, reinterpret_cast<sockaddr*>(&address),
                                  sizeof(address)) == 0;
          close(probe);
          return ok;
        },
        seconds(30));
    if (!listening || pid_ < 0) {
      return absl::UnavailableError(
          absl::StrCat("the Flask receiver did not start listening on port ",
                       port_, "; its log:\n", Read(log_path_)));
    }
    return absl::OkStatus();
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      if (!WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; },
                   seconds(10))) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
      dir_.clear();
    }
  }

  std::string Url(absl::string_view path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }
  // The JSON lines the app recorded, one per request.
  std::vector<std::string> Records() const {
    return absl::StrSplit(Read(record_path_), '\n', absl::SkipEmpty());
  }
  std::string Log() const { return Read(log_path_); }

 private:
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in),
                       std::istreambuf_iterator<char>());
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  std::string record_path_;
  std::string log_path_;
};

TEST_F(EmitTest, FlaskReceiverGetsTheSeedPayloadAsFormFields) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  FlaskReceiver flask;
  const absl::Status started = flask.Start();
  ASSERT_TRUE(started.ok()) << started;
  const v1::Handler handler =
      rio_->CreateHandler(flask.Url("/webhook/comment/antispam"));
  EXPECT_EQ(handler.content_type(), v1::Handler::FORM);
  EXPECT_EQ(handler.method(), v1::Handler::POST);

  v1::EmitRequest req;
  req.set_project(kProject);
  req.set_event(kEvent);
  *req.mutable_payload() =
      StructFromJson(R"({"ip": "127.0.0.1", "content": "I am a spammer"})");
  const v1::EmitResponse resp = rio_->MustEmit(auth_, req);
  EXPECT_EQ(resp.handlers(), 1);

  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|1"))
      << "Flask log:\n"
      << flask.Log();
  EXPECT_EQ(AttemptLog(url_, delivery_id), "1|200|");
  EXPECT_THAT(flask.Records(),
              ElementsAre(absl::StrCat(
                  R"({"content": "I am a spammer", )",
                  R"("content_type": "application/x-www-form-urlencoded", )",
                  R"("ip": "127.0.0.1", "webhook_id": ")", resp.message_id(),
                  R"(", "x_rio_event": "uuid=)", resp.message_id(),
                  ",project=", kProject, ",action=", kEvent, R"("})")));
  // The receiver's answer is kept with the attempt.
  EXPECT_THAT(
      Sql(url_, absl::StrCat("SELECT convert_from(response_body, "
                             "'UTF8') FROM attempts WHERE "
                             "delivery_id = ",
                             Quoted(delivery_id))),
      AllOf(HasSubstr(R"("status":"success")"), HasSubstr(R"("retval":0)")));
}

TEST_F(EmitTest, FormHandlerGetsEachTopLevelKeyAsAField) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  rio_->CreateHandler(receiver.Url());
  rio_->MustEmit(
      auth_,
      JsonEvent(R"({"s": "a b&c=d+e%f \u00e9", "n": 12345678901234567890,)"
                R"( "t": true, "z": null, "o": {"k": [1, "x"]}, "e": ""})"));
  ASSERT_TRUE(receiver.WaitForCount(1));
  const ReceivedRequest request = receiver.Requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.Header("content-type"),
            "application/x-www-form-urlencoded");
  const std::map<std::string, std::string> expected = {
      {"s", "a b&c=d+e%f \xc3\xa9"},
      {"n", "12345678901234567890"},
      {"t", "true"},
      {"z", "null"},
      {"o", R"({"k":[1,"x"]})"},
      {"e", ""}};
  EXPECT_EQ(ParseForm(request.body), expected) << request.body;
}

TEST_F(EmitTest, GetHandlerGetsTheFieldsInTheQueryStringSigned) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  const v1::Handler handler =
      rio_->CreateHandler(receiver.Url("/hook?static=1&key=s3cret"), kEvent,
                          [](auto& r) { r.set_method(v1::Handler::GET); });
  const v1::EmitResponse resp = rio_->MustEmit(
      auth_, JsonEvent(R"({"content": "I am a spammer", "n": 2})"));
  ASSERT_TRUE(receiver.WaitForCount(1));
  const ReceivedRequest request = receiver.Requests()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.path, "/hook");
  EXPECT_EQ(request.body, "");
  EXPECT_EQ(request.query, "static=1&key=s3cret&content=I+am+a+spammer&n=2");
  const std::map<std::string, std::string> expected = {
      {"static", "1"},
      {"key", "s3cret"},
      {"content", "I am a spammer"},
      {"n", "2"}};
  EXPECT_EQ(ParseForm(request.query), expected) << request.query;
  // Signed over the query string exactly as received (the body is empty).
  EXPECT_EQ(request.Header("webhook-id"), resp.message_id());
  EXPECT_THAT(SignatureEntries(request),
              ElementsAre(Signature(handler.secret(), resp.message_id(),
                                    request.Header("webhook-timestamp"),
                                    request.query)));
  // The log shows neither the handler's query nor the payload.
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_TRUE(LogShows(absl::StrCat("REQUEST ", resp.message_id(), " ",
                                    delivery_id, " GET ", receiver.Url("/hook"),
                                    "?\u2022\u2022\u2022 attempt=1\n")));
  EXPECT_THAT(server_->Log(), Not(HasSubstr("s3cret")));
  EXPECT_THAT(server_->Log(), Not(HasSubstr("spammer")));
}

TEST_F(EmitTest, JsonHandlerGetsTheExactBytesEmitted) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  rio_->CreateHandler(receiver.Url(), kEvent,
                      [](auto& r) { r.set_content_type(v1::Handler::JSON); });
  // Above 2^53, an escape, odd spacing: a re-encoding would change them.
  const std::string verbatim =
      "{\"big\": 12345678901234567890, \"s\":\"\\u00e9\"}";
  const v1::EmitResponse first = rio_->MustEmit(auth_, JsonEvent(verbatim));

  v1::EmitRequest from_struct;
  from_struct.set_project(kProject);
  from_struct.set_event(kEvent);
  *from_struct.mutable_payload() =
      StructFromJson(R"({"tags": ["a", 1.5, true, null]})");
  std::string printed;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(from_struct.payload(),
                                                          &printed)
                  .ok());
  const v1::EmitResponse second = rio_->MustEmit(auth_, from_struct);

  ASSERT_TRUE(receiver.WaitForCount(2));
  std::map<std::string, std::string> body_by_id;
  for (const ReceivedRequest& request : receiver.Requests()) {
    EXPECT_EQ(request.Header("content-type"), "application/json");
    body_by_id[request.Header("webhook-id")] = request.body;
  }
  EXPECT_EQ(body_by_id[first.message_id()], verbatim);
  EXPECT_EQ(body_by_id[second.message_id()], printed);
  EXPECT_EQ(printed, R"({"tags":["a",1.5,true,null]})");
}

TEST_F(EmitTest, SignaturesVerifyWithEverySecretDuringRotation) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  const v1::Handler created = rio_->CreateHandler(receiver.Url());

  rio_->MustEmit(auth_, JsonEvent(R"({"n":1})"));
  ASSERT_TRUE(receiver.WaitForCount(1));
  {
    const ReceivedRequest request = receiver.Requests()[0];
    EXPECT_THAT(SignatureEntries(request),
                ElementsAre(ExpectedSignature(request, created.secret())));
  }

  // The previous secret keeps signing (a day by default): two entries.
  const v1::Handler rotated = rio_->RotateSecret(created.id(), false);
  ASSERT_NE(rotated.secret(), created.secret());
  EXPECT_GT(rotated.previous_secret_expire_time().seconds(),
            std::time(nullptr));
  rio_->MustEmit(auth_, JsonEvent(R"({"n":2})"));
  ASSERT_TRUE(receiver.WaitForCount(2));
  {
    const ReceivedRequest request = receiver.Requests()[1];
    EXPECT_THAT(
        SignatureEntries(request),
        UnorderedElementsAre(ExpectedSignature(request, created.secret()),
                             ExpectedSignature(request, rotated.secret())))
        << request.Header("webhook-signature");
  }

  // Expiring the previous secret at once leaves one entry again.
  const v1::Handler again = rio_->RotateSecret(created.id(), true);
  rio_->MustEmit(auth_, JsonEvent(R"({"n":3})"));
  ASSERT_TRUE(receiver.WaitForCount(3));
  {
    const ReceivedRequest request = receiver.Requests()[2];
    EXPECT_THAT(SignatureEntries(request),
                ElementsAre(ExpectedSignature(request, again.secret())))
        << request.Header("webhook-signature");
  }
}

// ---------------------------------------------------------------------------
// Outcomes and retries

TEST_F(EmitTest, RetriesUntilTheReceiverSucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=100ms,200ms"}));
  Receiver receiver([](const ReceivedRequest&, int index) {
    ReceiverReply reply;
    if (index < 2) reply.status = 500;
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());

  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|3"));
  EXPECT_EQ(AttemptLog(url_, delivery_id),
            "1|500|http_status;2|500|http_status;3|200|");
  const std::vector<ReceivedRequest> requests = receiver.Requests();
  ASSERT_THAT(requests, SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    const ReceivedRequest& request = requests[i];
    EXPECT_EQ(request.Header("x-rio-attempt"), std::to_string(i + 1));
    EXPECT_EQ(request.Header("webhook-id"), resp.message_id());
    EXPECT_EQ(request.Header("x-rio-delivery"), delivery_id);
    EXPECT_THAT(SignatureEntries(request),
                ElementsAre(ExpectedSignature(request, handler.secret())));
  }
  // The schedule (with its +-20 % jitter) spaces the attempts.
  EXPECT_GE(requests[1].arrival - requests[0].arrival, milliseconds(80));
  EXPECT_GE(requests[2].arrival - requests[1].arrival, milliseconds(160));
}

TEST_F(EmitTest, FailsOnceTheRetryScheduleIsExhausted) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=100ms,200ms"}));
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 500;
    reply.body = "boom";
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());

  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "FAILED|3"));
  EXPECT_EQ(AttemptLog(url_, delivery_id),
            "1|500|http_status;2|500|http_status;3|500|http_status");
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT last_status_code FROM deliveries "
                                   "WHERE id = ",
                                   Quoted(delivery_id))),
            "500");
  EXPECT_EQ(receiver.Count(), 3u);
  // Failing deliveries do not disable the handler; only 410 does.
  EXPECT_TRUE(rio_->GetHandler(handler.id()).enabled());
}

TEST_F(EmitTest, RedirectsAreNotFollowed) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=100ms,200ms"}));
  Receiver target;
  START_RECEIVER(target);
  const std::string location = target.Url("/elsewhere");
  Receiver redirecting([location](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 302;
    reply.headers = {{"Location", location}};
    return reply;
  });
  START_RECEIVER(redirecting);
  const v1::Handler handler = rio_->CreateHandler(redirecting.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "FAILED|3"));
  EXPECT_EQ(AttemptLog(url_, delivery_id),
            "1|302|http_status;2|302|http_status;3|302|http_status");
  EXPECT_EQ(redirecting.Count(), 3u);
  EXPECT_EQ(target.Count(), 0u);
}

TEST_F(EmitTest, AttemptKeepsTheFirst64KiBOfTheResponse) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.body = std::string(100000, 'r');
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|1"));
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT length(response_body) || '|' || "
                                   "(response_body = decode(repeat('72', "
                                   "65536), 'hex')) FROM attempts WHERE "
                                   "delivery_id = ",
                                   Quoted(delivery_id))),
            "65536|true");
}

TEST_F(EmitTest, GoneDisablesTheHandler) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=100ms,200ms"}));
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.status = 410;
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());

  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "FAILED|1"));
  EXPECT_EQ(AttemptLog(url_, delivery_id), "1|410|http_status");
  EXPECT_EQ(receiver.Count(), 1u);
  EXPECT_TRUE(
      WaitFor([&] { return !rio_->GetHandler(handler.id()).enabled(); }));
  const v1::Handler disabled = rio_->GetHandler(handler.id());
  EXPECT_FALSE(disabled.enabled());
  EXPECT_NE(disabled.disabled_reason(), "");
  // New messages no longer go to it (once every cache has heard).
  EXPECT_TRUE(WaitFor([&] {
    return rio_->MustEmit(auth_, JsonEvent(R"({})")).handlers() == 0;
  }));
  EXPECT_EQ(receiver.Count(), 1u);
}

TEST_F(EmitTest, RetryAfterIsHonoured) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=100ms"}));
  auto busy_once = [](int status) {
    return [status](const ReceivedRequest&, int index) {
      ReceiverReply reply;
      if (index == 0) {
        reply.status = status;
        reply.headers = {{"Retry-After", "1"}};
      }
      return reply;
    };
  };
  Receiver unavailable(busy_once(503));
  Receiver too_many(busy_once(429));
  START_RECEIVER(unavailable);
  START_RECEIVER(too_many);
  const v1::Handler h503 = rio_->CreateHandler(unavailable.Url());
  const v1::Handler h429 = rio_->CreateHandler(too_many.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));

  for (const auto& [receiver, handler, status] :
       {std::make_tuple(&unavailable, &h503, 503),
        std::make_tuple(&too_many, &h429, 429)}) {
    SCOPED_TRACE(status);
    const std::string delivery_id =
        DeliveryId(url_, resp.message_id(), handler->id());
    EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|2"));
    EXPECT_EQ(AttemptLog(url_, delivery_id),
              absl::StrCat("1|", status, "|http_status;2|200|"));
    const std::vector<ReceivedRequest> requests = receiver->Requests();
    ASSERT_THAT(requests, SizeIs(2));
    // The schedule says 100 ms; the receiver asked for 1 s.
    EXPECT_GE(requests[1].arrival - requests[0].arrival, seconds(1));
  }
}

TEST_F(EmitTest, AHangingReceiverDoesNotDelayOtherHandlers) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--max_in_flight=4", "--max_per_handler=2"}));
  Receiver hanging([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.hang = true;
    return reply;
  });
  Receiver healthy;
  START_RECEIVER(hanging);
  START_RECEIVER(healthy);
  rio_->CreateHandler(hanging.Url());  // Default timeout: 15 s.
  rio_->CreateHandler(healthy.Url());

  // More messages than the in-flight limit: the hanging handler may hold
  // only its own share of the slots.
  for (int i = 0; i < 6; ++i) {
    const steady_clock::time_point emitted = steady_clock::now();
    const v1::EmitResponse resp =
        rio_->MustEmit(auth_, JsonEvent(absl::StrCat(R"({"i":)", i, "}")));
    ASSERT_EQ(resp.handlers(), 2);
    ASSERT_TRUE(healthy.WaitForCount(i + 1, seconds(5))) << i;
    const ReceivedRequest request = healthy.Requests()[i];
    EXPECT_EQ(request.Header("webhook-id"), resp.message_id());
    EXPECT_LT(request.arrival - emitted, milliseconds(500)) << i;
  }
  EXPECT_TRUE(hanging.WaitForCount(1));
  EXPECT_LE(hanging.Count(), 2u) << "--max_per_handler=2";
}

TEST_F(EmitTest, TimeoutsAndConnectionErrorsAreRetriedThenFail) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--retry_schedule=100ms,200ms"}));
  Receiver hanging([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.hang = true;
    return reply;
  });
  START_RECEIVER(hanging);
  std::string closed_url;
  {
    Receiver gone;
    START_RECEIVER(gone);
    closed_url = gone.Url();
  }  // Nothing listens there any more.
  const v1::Handler slow = rio_->CreateHandler(
      hanging.Url(), kEvent, [](auto& r) { r.set_timeout_ms(300); });
  const v1::Handler refused = rio_->CreateHandler(closed_url);
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));

  const std::string slow_id = DeliveryId(url_, resp.message_id(), slow.id());
  const std::string refused_id =
      DeliveryId(url_, resp.message_id(), refused.id());
  EXPECT_TRUE(DeliveryReaches(url_, slow_id, "FAILED|3"));
  EXPECT_TRUE(DeliveryReaches(url_, refused_id, "FAILED|3"));
  EXPECT_EQ(AttemptLog(url_, slow_id), "1|0|timeout;2|0|timeout;3|0|timeout");
  EXPECT_EQ(AttemptLog(url_, refused_id),
            "1|0|connect;2|0|connect;3|0|connect");
  EXPECT_EQ(hanging.Count(), 3u);
  // Each timed-out attempt took about timeout_ms.
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT bool_and(duration_us BETWEEN "
                                   "250000 AND 5000000) FROM attempts WHERE "
                                   "delivery_id = ",
                                   Quoted(slow_id))),
            "t");
}

TEST_F(EmitTest, SigtermReleasesAHangingDeliveryForTheNextStart) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--shutdown_grace=2s", "--lease_timeout=2s"}));
  // Hangs the first time, answers afterwards.
  Receiver receiver([](const ReceivedRequest&, int index) {
    ReceiverReply reply;
    reply.hang = index == 0;
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  ASSERT_TRUE(receiver.WaitForCount(1));

  const steady_clock::time_point stopping = steady_clock::now();
  EXPECT_EQ(server_->Stop(), 0);
  EXPECT_LT(steady_clock::now() - stopping, seconds(2) + seconds(3));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_THAT(DeliveryState(url_, delivery_id), StartsWith("PENDING|"));

  // Nothing is lost: the next start delivers it.
  const absl::Status restarted = server_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_TRUE(receiver.WaitForCount(2, seconds(20)));
  const std::vector<ReceivedRequest> requests = receiver.Requests();
  EXPECT_EQ(requests[1].Header("webhook-id"), resp.message_id());
  EXPECT_EQ(requests[1].Header("x-rio-delivery"), delivery_id);
  EXPECT_TRUE(DeliveryReaches(
      url_, delivery_id,
      absl::StrCat("SUCCEEDED|", requests[1].Header("x-rio-attempt"))));
}

// Released deliveries are due at once, so another instance (or the next
// start) sends them without waiting out the lease.
TEST_F(EmitTest, SigtermMakesReleasedDeliveriesDueAtOnce) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--shutdown_grace=1s", "--lease_timeout=60s"}));
  Receiver receiver([](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.hang = true;
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  ASSERT_TRUE(receiver.WaitForCount(1));
  EXPECT_EQ(server_->Stop(), 0);
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT status || '|' || (lease_owner IS "
                                   "NULL) || '|' || (next_attempt_time <= "
                                   "now()) FROM deliveries WHERE id = ",
                                   Quoted(delivery_id))),
            "PENDING|true|true");
}

// After a kill -9, a restart with the same --instance_id sends its own
// acknowledged deliveries at once rather than after --lease_timeout; a
// second live process cannot take the same id.
TEST_F(EmitTest, ARestartWithTheSameInstanceIdTakesItsLeasesBackAtOnce) {
  const std::string id = "6f1c2a9e-1111-4222-8333-944455556666";
  ASSERT_NO_FATAL_FAILURE(StartServer(
      {absl::StrCat("--instance_id=", id), "--lease_timeout=120s"}));
  Receiver receiver([](const ReceivedRequest&, int index) {
    ReceiverReply reply;
    reply.hang = index == 0;
    return reply;
  });
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  const v1::EmitResponse resp = rio_->MustEmit(auth_, JsonEvent(R"({})"));
  ASSERT_TRUE(receiver.WaitForCount(1));

  ServerProcess twin(ServerOptions(
      url_, {absl::StrCat("--instance_id=", id), "--lease_timeout=120s"}));
  EXPECT_FALSE(twin.Start().ok());
  EXPECT_EQ(twin.WaitExit(seconds(30)), 1);
  EXPECT_THAT(twin.Log(),
              HasSubstr(absl::StrCat(
                  "another rio-server is running with --instance_id=", id,
                  "; each instance needs its own")));

  server_->Kill();
  const steady_clock::time_point restart = steady_clock::now();
  const absl::Status restarted = server_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_TRUE(receiver.WaitForCount(2, seconds(30)));
  EXPECT_LT(steady_clock::now() - restart, seconds(30));
  const std::string delivery_id =
      DeliveryId(url_, resp.message_id(), handler.id());
  EXPECT_EQ(receiver.Requests()[1].Header("x-rio-delivery"), delivery_id);
  EXPECT_TRUE(DeliveryReaches(url_, delivery_id, "SUCCEEDED|1"));
}

// ---------------------------------------------------------------------------
// Idempotency, events without handlers, bad input

TEST_F(EmitTest, IdempotencyKeyReturnsTheFirstMessage) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver receiver;
  START_RECEIVER(receiver);
  const v1::Handler handler = rio_->CreateHandler(receiver.Url());
  v1::EmitRequest req = JsonEvent(R"({"order":1})");
  req.set_idempotency_key("order-1");
  const v1::EmitResponse first = rio_->MustEmit(auth_, req);
  EXPECT_FALSE(first.duplicate());
  EXPECT_EQ(first.handlers(), 1);
  const std::string counts = RowCounts(url_);
  EXPECT_THAT(counts, StartsWith("1|1|"));

  const v1::EmitResponse again = rio_->MustEmit(auth_, req);
  EXPECT_EQ(again.message_id(), first.message_id());
  EXPECT_TRUE(again.duplicate());
  EXPECT_THAT(RowCounts(url_), StartsWith("1|1|"));

  // A key is per project.
  rio_->CreateProject("billing");
  const std::string billing = rio_->CreateSender("billing", "billing-app");
  v1::EmitRequest other = req;
  other.set_project("billing");
  const v1::EmitResponse elsewhere = rio_->MustEmit(billing, other);
  EXPECT_NE(elsewhere.message_id(), first.message_id());
  EXPECT_FALSE(elsewhere.duplicate());
  EXPECT_EQ(elsewhere.handlers(), 0);

  // A 256-byte key is fine.
  v1::EmitRequest longest = JsonEvent(R"({"order":2})");
  longest.set_idempotency_key(std::string(256, 'k'));
  EXPECT_FALSE(rio_->MustEmit(auth_, longest).duplicate());
  EXPECT_TRUE(rio_->MustEmit(auth_, longest).duplicate());

  EXPECT_TRUE(AllDeliveriesSettle(url_));
  std::map<std::string, int> ids = WebhookIds(receiver);
  EXPECT_EQ(ids[first.message_id()], 1);
  EXPECT_EQ(receiver.Count(), 2u);
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT idempotency_key FROM messages "
                                   "WHERE id = ",
                                   Quoted(first.message_id()))),
            "order-1");
}

// A key whose first use is older than --idempotency_window is free again:
// a new message, while the old one keeps its history.
TEST_F(EmitTest, IdempotencyKeyOlderThanTheWindowIsFreeAgain) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--idempotency_window=1h"}));
  Receiver receiver;
  START_RECEIVER(receiver);
  rio_->CreateHandler(receiver.Url());
  v1::EmitRequest req = JsonEvent(R"({"order":7})");
  req.set_idempotency_key("order-7");
  const v1::EmitResponse first = rio_->MustEmit(auth_, req);
  EXPECT_TRUE(AllDeliveriesSettle(url_));
  Sql(url_, "UPDATE messages SET create_time = now() - interval '2 hours'");

  // In a batch with a fresh event, which must commit with it.
  v1::EmitBatchRequest batch;
  *batch.add_events() = req;
  *batch.add_events() = JsonEvent(R"({"order":8})");
  v1::EmitBatchResponse resp;
  const grpc::Status s = rio_->EmitBatch(auth_, batch, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_NE(resp.results(0).message_id(), first.message_id());
  EXPECT_FALSE(resp.results(0).duplicate());
  EXPECT_EQ(resp.results(0).handlers(), 1);
  EXPECT_EQ(resp.results(1).handlers(), 1);
  // Both messages were emitted with the key; it now names the new one.
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT string_agg(idempotency_key, ',') "
                                   "FROM messages WHERE id IN (",
                                   Quoted(first.message_id()), ", ",
                                   Quoted(resp.results(0).message_id()), ")")),
            "order-7,order-7");
  EXPECT_EQ(Sql(url_, "SELECT message_id FROM idempotency_keys"),
            resp.results(0).message_id());
  // Within the window again: a duplicate of the new message.
  const v1::EmitResponse again = rio_->MustEmit(auth_, req);
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.message_id(), resp.results(0).message_id());
  EXPECT_TRUE(AllDeliveriesSettle(url_));
  EXPECT_TRUE(receiver.WaitForCount(3));
  EXPECT_EQ(Sql(url_,
                "SELECT count(*) FROM deliveries WHERE status = "
                "'SUCCEEDED'"),
            "3");
}

TEST_F(EmitTest, EventWithNoHandlerIsRecorded) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const v1::EmitResponse resp =
      rio_->MustEmit(auth_, JsonEvent(R"({"x":1})", "nobody.listens_here"));
  EXPECT_THAT(resp.message_id(), MatchesRegex(kUuidPattern));
  EXPECT_EQ(resp.handlers(), 0);
  EXPECT_FALSE(resp.duplicate());
  EXPECT_EQ(Sql(url_, absl::StrCat("SELECT event FROM messages WHERE id = ",
                                   Quoted(resp.message_id()))),
            "nobody.listens_here");
  EXPECT_EQ(RowCounts(url_), "1|0|0");
  EXPECT_TRUE(LogShows(absl::StrCat("EMIT ", resp.message_id(), " ", kProject,
                                    " nobody.listens_here handlers=0\n")));
}

TEST_F(EmitTest, BadInputIsRejectedAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_payload_bytes=1000"}));
  Receiver receiver;
  START_RECEIVER(receiver);
  rio_->CreateHandler(receiver.Url());
  rio_->CreateProject("billing");
  rio_->CreateHandler(receiver.Url(), kEvent, nullptr, "billing");
  const std::string billing_auth = rio_->CreateSender("billing", "billing-app");
  const std::string token =
      std::string(*util::Base64Decode(absl::StripPrefix(auth_, "Basic ")))
          .substr(sizeof(kSender));  // After "app:".

  // A JSON object of exactly `n` bytes.
  auto object_of_size = [](size_t n) {
    return absl::StrCat(R"({"a":")", std::string(n - 8, 'x'), R"("})");
  };
  ASSERT_EQ(object_of_size(1001).size(), 1001u);

  struct BadCall {
    std::string what;
    std::function<grpc::Status()> call;
    Code code;
    std::string message;
    bool prefix_only = false;
  };
  auto emit = [this](const std::string& authorization, v1::EmitRequest req) {
    return [this, authorization, req] {
      v1::EmitResponse resp;
      return rio_->Emit(authorization, req, &resp);
    };
  };
  auto emit_json = [&](const std::string& payload_json) {
    return emit(auth_, JsonEvent(payload_json));
  };
  auto batch = [this](const std::string& authorization,
                      std::vector<v1::EmitRequest> events) {
    return [this, authorization, events] {
      v1::EmitBatchRequest req;
      for (const v1::EmitRequest& event : events) *req.add_events() = event;
      v1::EmitBatchResponse resp;
      return rio_->EmitBatch(authorization, req, &resp);
    };
  };
  const v1::EmitRequest good = JsonEvent(R"({"ok":true})");
  v1::EmitRequest no_payload = good;
  no_payload.clear_body();
  v1::EmitRequest long_key = good;
  long_key.set_idempotency_key(std::string(257, 'k'));
  v1::EmitRequest nul_key = good;
  nul_key.set_idempotency_key(std::string("order\0-1", 8));
  v1::EmitRequest control_key = good;
  control_key.set_idempotency_key("order\n1");
  const char kBadEvent[] =
      "event \"comment published\" may contain only letters, digits, '.', "
      "'_' and '-'";

  const std::vector<BadCall> cases = {
      {"no credentials", emit("", good), Code::UNAUTHENTICATED,
       "missing sender credentials: send 'authorization: Basic "
       "base64(<sender>:<token>)'"},
      {"unknown sender", emit(BasicAuth("ghost", token), good),
       Code::UNAUTHENTICATED, "invalid sender credentials"},
      {"wrong token", emit(BasicAuth(kSender, "not-the-token"), good),
       Code::UNAUTHENTICATED, "invalid sender credentials"},
      {"another project's sender", emit(billing_auth, good),
       Code::PERMISSION_DENIED,
       "sender \"billing-app\" of project \"billing\" may not emit into "
       "project \"comments\""},
      {"into another project", emit(auth_, JsonEvent("{}", kEvent, "billing")),
       Code::PERMISSION_DENIED,
       "sender \"app\" of project \"comments\" may not emit into project "
       "\"billing\""},
      {"into a missing project", emit(auth_, JsonEvent("{}", kEvent, "nope")),
       Code::PERMISSION_DENIED,
       "sender \"app\" of project \"comments\" may not emit into project "
       "\"nope\""},
      {"empty project", emit(auth_, JsonEvent("{}", kEvent, "")),
       Code::INVALID_ARGUMENT, "project is required"},
      {"bad event", emit(auth_, JsonEvent("{}", "comment published")),
       Code::INVALID_ARGUMENT, kBadEvent},
      {"empty event", emit(auth_, JsonEvent("{}", "")), Code::INVALID_ARGUMENT,
       "event is required"},
      {"no payload", emit(auth_, no_payload), Code::INVALID_ARGUMENT,
       "payload or payload_json is required"},
      {"invalid JSON", emit_json(R"({"a": )"), Code::INVALID_ARGUMENT,
       "payload_json is not valid JSON: ", true},
      {"trailing garbage", emit_json(R"({"a": 1} x)"), Code::INVALID_ARGUMENT,
       "payload_json is not valid JSON: ", true},
      {"array", emit_json("[1]"), Code::INVALID_ARGUMENT,
       "payload_json must be a JSON object"},
      {"string", emit_json(R"("s")"), Code::INVALID_ARGUMENT,
       "payload_json must be a JSON object"},
      {"too large", emit_json(object_of_size(1001)), Code::RESOURCE_EXHAUSTED,
       "payload is 1001 bytes, more than the limit of 1000 "
       "(--max_payload_bytes)"},
      {"long idempotency key", emit(auth_, long_key), Code::INVALID_ARGUMENT,
       "idempotency_key is longer than 256 bytes"},
      // Once INTERNAL, after re-committing the whole group one by one.
      {"NUL in the idempotency key", emit(auth_, nul_key),
       Code::INVALID_ARGUMENT,
       "idempotency_key has a control character (byte 0x00) at offset 5"},
      {"newline in the idempotency key", emit(auth_, control_key),
       Code::INVALID_ARGUMENT,
       "idempotency_key has a control character (byte 0x0a) at offset 5"},
      {"batch with a NUL in a key", batch(auth_, {good, nul_key}),
       Code::INVALID_ARGUMENT,
       "events[1]: idempotency_key has a control character (byte 0x00) at "
       "offset 5"},
      {"empty batch", batch(auth_, {}), Code::INVALID_ARGUMENT,
       "events is required"},
      {"batch without credentials", batch("", {good}), Code::UNAUTHENTICATED,
       "missing sender credentials: send 'authorization: Basic "
       "base64(<sender>:<token>)'"},
      {"batch with a bad event",
       batch(auth_, {good, JsonEvent("{}", "comment published"), good}),
       Code::INVALID_ARGUMENT, absl::StrCat("events[1]: ", kBadEvent)},
      {"batch with a non-object", batch(auth_, {good, good, JsonEvent("[1]")}),
       Code::INVALID_ARGUMENT, "events[2]: payload_json must be a JSON object"},
      {"batch with a large payload",
       batch(auth_, {JsonEvent(object_of_size(1001)), good}),
       Code::RESOURCE_EXHAUSTED,
       "events[0]: payload is 1001 bytes, more than the limit of 1000 "
       "(--max_payload_bytes)"},
      {"batch into another project",
       batch(auth_, {good, JsonEvent("{}", kEvent, "billing")}),
       Code::PERMISSION_DENIED,
       "events[1]: sender \"app\" of project \"comments\" may not emit into "
       "project \"billing\""},
  };
  for (const BadCall& c : cases) {
    const grpc::Status s = c.call();
    EXPECT_EQ(s.error_code(), c.code)
        << c.what << ": " << CodeName(s.error_code()) << " "
        << s.error_message();
    if (c.prefix_only) {
      EXPECT_THAT(s.error_message(), StartsWith(c.message)) << c.what;
      EXPECT_GT(s.error_message().size(), c.message.size()) << c.what;
    } else {
      EXPECT_EQ(s.error_message(), c.message) << c.what;
    }
  }
  EXPECT_EQ(RowCounts(url_), "0|0|0");
  EXPECT_EQ(receiver.Count(), 0u);

  // At the limit is fine.
  const v1::EmitResponse at_limit =
      rio_->MustEmit(auth_, JsonEvent(object_of_size(1000)));
  EXPECT_EQ(at_limit.handlers(), 1);
  EXPECT_THAT(RowCounts(url_), StartsWith("1|1|"));
}

// ---------------------------------------------------------------------------
// EmitBatch

// A burst larger than the per-handler cap drains round after round: freed
// slots are refilled at once, not after the dispatcher's idle poll (which
// would take about a second per round here: 100 rounds).
TEST_F(EmitTest, ABurstBeyondTheConcurrencyCapDrainsWithoutStalling) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max_per_handler=2"}));
  Receiver receiver;
  START_RECEIVER(receiver);
  rio_->CreateHandler(receiver.Url(), kEvent,
                      [](auto& r) { r.set_content_type(v1::Handler::JSON); });
  constexpr int kEvents = 200;
  v1::EmitBatchRequest req;
  for (int i = 0; i < kEvents; ++i) {
    *req.add_events() = JsonEvent(absl::StrCat(R"({"i":)", i, "}"), kEvent);
  }
  v1::EmitBatchResponse resp;
  const grpc::Status s = rio_->EmitBatch(auth_, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(receiver.WaitForCount(kEvents, std::chrono::seconds(20)))
      << receiver.Count() << " of " << kEvents << " arrived";
  EXPECT_TRUE(AllDeliveriesSettle(url_));
  EXPECT_EQ(Sql(url_,
                "SELECT count(*) FROM deliveries WHERE status = "
                "'SUCCEEDED'"),
            std::to_string(kEvents));
}

// What the dispatcher has no room for is written once, due and leased to no
// one, in the emit's own transaction: not leased, refused and handed back.
TEST_F(EmitTest, DeliveriesBeyondTheDispatchersRoomWaitUnleasedInPostgres) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--max_per_handler=1", "--max_queued_per_handler=2"}));
  absl::Notification open;
  Receiver gated([&open](const ReceivedRequest&, int) {
    open.WaitForNotificationWithTimeout(absl::Seconds(30));
    return ReceiverReply();
  });
  START_RECEIVER(gated);
  // Before `gated` stops, on every way out.
  absl::Cleanup release = [&open] {
    if (!open.HasBeenNotified()) open.Notify();
  };
  rio_->CreateHandler(gated.Url());
  constexpr int kEvents = 10;
  v1::EmitBatchRequest req;
  for (int i = 0; i < kEvents; ++i) {
    *req.add_events() = JsonEvent(absl::StrCat(R"({"i":)", i, "}"));
  }
  v1::EmitBatchResponse resp;
  const grpc::Status s = rio_->EmitBatch(auth_, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(gated.WaitForCount(1));
  // One in flight and one waiting are leased to the instance; the other
  // eight rows are as the emit wrote them (same transaction as their
  // messages, never updated).
  const std::string unleased =
      Sql(url_,
          "SELECT count(*) FROM deliveries d JOIN messages m ON m.id = "
          "d.message_id WHERE d.status = 'PENDING' AND d.lease_owner IS NULL "
          "AND d.xmin = m.xmin AND d.next_attempt_time <= now()");
  const std::string leased = Sql(
      url_, "SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL");
  std::move(release).Invoke();
  EXPECT_EQ(unleased, "8");
  EXPECT_EQ(leased, "2");
  EXPECT_TRUE(gated.WaitForCount(kEvents, std::chrono::seconds(20)))
      << gated.Count() << " of " << kEvents << " arrived";
  EXPECT_TRUE(AllDeliveriesSettle(url_));
  EXPECT_EQ(Sql(url_,
                "SELECT count(*), count(DISTINCT message_id) FROM "
                "deliveries WHERE status = 'SUCCEEDED' AND attempts = 1"),
            "10|10");
  EXPECT_EQ(gated.Count(), static_cast<size_t>(kEvents));
}

TEST_F(EmitTest, EmitBatchAnswersInOrderAndDeliversEach) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Receiver on_a, on_b1, on_b2;
  START_RECEIVER(on_a);
  START_RECEIVER(on_b1);
  START_RECEIVER(on_b2);
  auto json = [](auto& r) { r.set_content_type(v1::Handler::JSON); };
  rio_->CreateHandler(on_a.Url(), "a", json);
  rio_->CreateHandler(on_b1.Url(), "b", json);
  rio_->CreateHandler(on_b2.Url(), "b", json);

  v1::EmitBatchRequest req;
  *req.add_events() = JsonEvent(R"({"i":0})", "a");
  *req.add_events() = JsonEvent(R"({"i":1})", "b");
  *req.add_events() = JsonEvent(R"({"i":2})", "a");
  v1::EmitBatchResponse resp;
  const grpc::Status s = rio_->EmitBatch(auth_, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_THAT(resp.results(), SizeIs(3));
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    const v1::EmitResponse& result = resp.results(i);
    EXPECT_THAT(result.message_id(), MatchesRegex(kUuidPattern));
    EXPECT_FALSE(result.duplicate());
    ids.insert(result.message_id());
    // Committed, and in request order.
    EXPECT_EQ(
        Sql(url_, absl::StrCat("SELECT event || ' ' || payload FROM "
                               "messages WHERE id = ",
                               Quoted(result.message_id()))),
        absl::StrCat(req.events(i).event(), " ", req.events(i).payload_json()));
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(resp.results(0).handlers(), 1);
  EXPECT_EQ(resp.results(1).handlers(), 2);
  EXPECT_EQ(resp.results(2).handlers(), 1);

  EXPECT_TRUE(AllDeliveriesSettle(url_));
  EXPECT_EQ(Sql(url_, "SELECT string_agg(status, ',') FROM deliveries"),
            "SUCCEEDED,SUCCEEDED,SUCCEEDED,SUCCEEDED");
  auto bodies = [](const Receiver& r) {
    std::map<std::string, std::string> out;
    for (const ReceivedRequest& request : r.Requests()) {
      out[request.Header("webhook-id")] = request.body;
    }
    return out;
  };
  EXPECT_EQ(bodies(on_a), (std::map<std::string, std::string>{
                              {resp.results(0).message_id(), R"({"i":0})"},
                              {resp.results(2).message_id(), R"({"i":2})"}}));
  for (const Receiver* r : {&on_b1, &on_b2}) {
    EXPECT_EQ(bodies(*r), (std::map<std::string, std::string>{
                              {resp.results(1).message_id(), R"({"i":1})"}}));
  }
}

// ---------------------------------------------------------------------------
// Durability and scale-out

// Emits `count` events named by `key_prefix` + index from `threads` threads,
// each emit retried under its idempotency key until acknowledged or
// `give_up` passes. `stub_for(thread)` says which server a thread talks to
// now. Returns the acknowledged message ids.
std::set<std::string> EmitBurst(
    int count, int threads, const std::string& key_prefix,
    const std::string& authorization,
    const std::function<std::shared_ptr<v1::EmitService::Stub>(int)>& stub_for,
    std::atomic<int>* acknowledged, milliseconds give_up = seconds(60)) {
  std::mutex mu;
  std::set<std::string> ids;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < count; i += threads) {
        v1::EmitRequest req =
            JsonEvent(absl::StrCat(R"({"i":)", i, R"(,"pad":"x"})"));
        req.set_idempotency_key(absl::StrCat(key_prefix, i));
        v1::EmitResponse resp;
        const bool ok = WaitFor(
            [&] {
              auto ctx = Context(authorization, seconds(5));
              return stub_for(t)->Emit(ctx.get(), req, &resp).ok();
            },
            give_up);
        if (!ok) continue;  // Not acknowledged: not counted.
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(resp.message_id());
        ++*acknowledged;
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  return ids;
}

// Waits until `receiver` has had every id in `ids`.
::testing::AssertionResult ReceivedAll(const Receiver& receiver,
                                       const std::set<std::string>& ids,
                                       milliseconds timeout = seconds(90)) {
  size_t missing = ids.size();
  const bool done = WaitFor(
      [&] {
        if (receiver.Count() < ids.size()) return false;
        const std::map<std::string, int> got = WebhookIds(receiver);
        missing = 0;
        for (const std::string& id : ids) missing += got.count(id) == 0;
        return missing == 0;
      },
      timeout);
  if (done) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << receiver.Url() << " is missing " << missing << " of " << ids.size()
         << " acknowledged messages (it has " << receiver.Count()
         << " requests)";
}

// Requests beyond the first per webhook-id.
int Duplicates(const Receiver& receiver) {
  int duplicates = 0;
  for (const auto& [id, n] : WebhookIds(receiver)) duplicates += n - 1;
  return duplicates;
}

TEST(EmitDurability, SigkillMidBurstLosesNothingAcknowledged) {
  auto url = PgCluster::Shared().CreateDatabase("emit_kill");
  ASSERT_TRUE(url.ok()) << url.status();
  // Few slots and slow receivers, so that the kill leaves many committed
  // deliveries undelivered, leased to the dead instance.
  ServerProcess server(
      ServerOptions(*url, {"--lease_timeout=2s", "--max_per_handler=2"}));
  ASSERT_TRUE(server.Start().ok());
  auto slowish = [](const ReceivedRequest&, int) {
    ReceiverReply reply;
    reply.delay = milliseconds(20);
    return reply;
  };
  Receiver a(slowish), b(slowish);
  START_RECEIVER(a);
  START_RECEIVER(b);
  std::string auth;
  {
    RioClient rio(server.Channel());
    rio.CreateProject(kProject);
    auth = rio.CreateSender(kProject, kSender);
    rio.CreateHandler(a.Url());
    rio.CreateHandler(b.Url());
    ASSERT_FALSE(::testing::Test::HasFailure());
  }

  std::mutex stub_mu;
  std::shared_ptr<v1::EmitService::Stub> stub =
      v1::EmitService::NewStub(server.Channel());
  auto current_stub = [&](int) {
    std::lock_guard<std::mutex> lock(stub_mu);
    return stub;
  };
  constexpr int kEmits = 1000;
  std::atomic<int> acknowledged{0};
  std::set<std::string> ids;
  std::thread burst([&] {
    ids = EmitBurst(kEmits, 4, "kill-", auth, current_stub, &acknowledged);
  });

  EXPECT_TRUE(WaitFor([&] { return acknowledged >= 300; }, seconds(60)));
  const size_t received_before_kill = std::min(a.Count(), b.Count());
  server.Kill();
  const int acknowledged_before_kill = acknowledged;
  const absl::Status restarted = server.Start();
  if (restarted.ok()) {
    std::lock_guard<std::mutex> lock(stub_mu);
    stub = v1::EmitService::NewStub(server.Channel());
  }
  burst.join();
  ASSERT_TRUE(restarted.ok()) << restarted;
  std::printf(
      "acknowledged %zu of %d emits (%d before SIGKILL, when a receiver had "
      "only %zu requests)\n",
      ids.size(), kEmits, acknowledged_before_kill, received_before_kill);
  EXPECT_LT(acknowledged_before_kill, kEmits) << "the kill came too late";
  EXPECT_LT(received_before_kill + 50,
            static_cast<size_t>(acknowledged_before_kill))
      << "the kill left little undelivered; the test proves little";
  EXPECT_GT(static_cast<int>(ids.size()), acknowledged_before_kill);

  EXPECT_TRUE(ReceivedAll(a, ids));
  EXPECT_TRUE(ReceivedAll(b, ids));
  EXPECT_TRUE(AllDeliveriesSettle(*url, seconds(60)));
  EXPECT_EQ(Sql(*url,
                "SELECT count(*) FROM deliveries WHERE status <> "
                "'SUCCEEDED'"),
            "0");
  const int duplicates_a = Duplicates(a);
  const int duplicates_b = Duplicates(b);
  ::testing::Test::RecordProperty("acknowledged", static_cast<int>(ids.size()));
  ::testing::Test::RecordProperty("duplicates_a", duplicates_a);
  ::testing::Test::RecordProperty("duplicates_b", duplicates_b);
  std::printf(
      "duplicates after SIGKILL: %d at receiver a (%zu requests), %d at "
      "receiver b (%zu requests)\n",
      duplicates_a, a.Count(), duplicates_b, b.Count());
}

TEST(EmitScaleOut, TwoInstancesShareABurstWithoutDuplicates) {
  auto url = PgCluster::Shared().CreateDatabase("emit_two");
  ASSERT_TRUE(url.ok()) << url.status();
  ServerProcess first(ServerOptions(*url, {}));
  ASSERT_TRUE(first.Start().ok());
  ServerProcess second(ServerOptions(*url, {}));
  ASSERT_TRUE(second.Start().ok());
  Receiver a, b;
  START_RECEIVER(a);
  START_RECEIVER(b);
  RioClient via_first(first.Channel());
  via_first.CreateProject(kProject);
  const std::string auth = via_first.CreateSender(kProject, kSender);
  via_first.CreateHandler(a.Url());
  via_first.CreateHandler(b.Url());
  ASSERT_FALSE(::testing::Test::HasFailure());

  // The second instance hears of the catalog change through NOTIFY.
  std::set<std::string> probes;
  RioClient via_second(second.Channel());
  ASSERT_TRUE(WaitFor([&] {
    v1::EmitResponse resp;
    if (!via_second.Emit(auth, JsonEvent(R"({"probe":true})"), &resp).ok()) {
      return false;
    }
    // A probe answered before the second handler was heard of goes to the
    // first receiver only: only the others count below.
    if (resp.handlers() != 2) return false;
    probes.insert(resp.message_id());
    return true;
  }));

  const std::shared_ptr<v1::EmitService::Stub> stubs[2] = {
      v1::EmitService::NewStub(first.Channel()),
      v1::EmitService::NewStub(second.Channel())};
  std::atomic<int> acknowledged{0};
  std::set<std::string> ids = EmitBurst(
      400, 4, "two-", auth, [&](int thread) { return stubs[thread % 2]; },
      &acknowledged, seconds(10));
  EXPECT_EQ(ids.size(), 400u);
  ids.insert(probes.begin(), probes.end());

  EXPECT_TRUE(ReceivedAll(a, ids));
  EXPECT_TRUE(ReceivedAll(b, ids));
  EXPECT_TRUE(AllDeliveriesSettle(*url));
  EXPECT_EQ(Sql(*url,
                "SELECT count(*) FROM deliveries WHERE status <> "
                "'SUCCEEDED'"),
            "0");
  // Exactly once each.
  EXPECT_EQ(Duplicates(a), 0);
  EXPECT_EQ(Duplicates(b), 0);
  EXPECT_EQ(a.Count(), ids.size());
  EXPECT_EQ(b.Count(), ids.size());
  // Both instances sent their share.
  EXPECT_THAT(first.Log(), HasSubstr("REQUEST "));
  EXPECT_THAT(second.Log(), HasSubstr("REQUEST "));
}

}  // namespace
}  // namespace rio
