// The examples run: rio_send_example emits the seed's event, and the seed's
// flow works from C++: a Client with the original Rio's DSN form emits
// `comment-published` with the seed's payload, and the seed's Flask view
// (sdk/python/examples/flask_receiver.py, which checks Rio's signature)
// bans the IP.
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/client.h"
#include "sdk/cpp/tests/status_matchers.h"
#include "sdk/cpp/tests/test_support.h"

namespace rio {
namespace {

using ::rio::sdk_test::ChildProcess;
using ::rio::sdk_test::kEvent;
using ::rio::sdk_test::RioServer;
using ::rio::sdk_test::RunResult;
using ::rio::sdk_test::RunToCompletion;
using ::rio::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

constexpr char kSendExample[] = RIO_SEND_EXAMPLE;
constexpr char kPythonSdkDir[] = RIO_SDK_PYTHON_DIR;

class ExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_THAT(rio_.Start(), IsOk()); }

  RioServer rio_;
};

TEST_F(ExamplesTest, SendExampleEmitsTheSeedsEvent) {
  testkit::Receiver receiver;
  ASSERT_THAT(receiver.Start(), IsOk());
  ASSERT_THAT(rio_.CreateHandler(receiver.Url(), /*json=*/false), IsOk());

  const RunResult with_flag = RunToCompletion(
      {kSendExample, "--dsn", rio_.Dsn("http", 0, "1/comments")});
  EXPECT_EQ(with_flag.exit_code, 0) << with_flag.output;
  EXPECT_THAT(with_flag.output,
              MatchesRegex("emitted [0-9a-f-]{36} to 1 handler\\(s\\)\n"));

  const RunResult from_env = RunToCompletion(
      {kSendExample, "--ip", "10.0.0.7", "--content", "free \"money\""},
      {{"RIO_DSN", rio_.Dsn()}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.output;

  ASSERT_TRUE(receiver.WaitForCount(2));
  std::vector<std::string> bodies;
  for (const testkit::ReceivedRequest& request : receiver.Requests()) {
    bodies.push_back(request.body);
  }
  EXPECT_THAT(bodies, ::testing::UnorderedElementsAre(
                          "ip=127.0.0.1&content=I+am+a+spammer",
                          "ip=10.0.0.7&content=free+%22money%22"));
}

TEST_F(ExamplesTest, SendExampleReportsAMalformedDsn) {
  const RunResult result =
      RunToCompletion({kSendExample}, {{"RIO_DSN", "rio://a:b@h"}});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output,
              StartsWith("rio_send_example: INVALID_ARGUMENT: DSN "
                         "'rio://a:***@h' names no project"));
}

TEST_F(ExamplesTest, SeedEmitFromCppReachesTheSeedFlaskView) {
  const RunResult has_flask =
      RunToCompletion({"/usr/bin/python3", "-c", "import flask"});
  // tools/test installs python3-flask; its absence is a broken set-up.
  ASSERT_EQ(has_flask.exit_code, 0)
      << "python3 with flask is needed: " << has_flask.output;
  // The seed's names: project "project", sender "sender".
  ASSERT_THAT(rio_.CreateProject("project"), IsOk());
  const absl::StatusOr<std::string> token =
      rio_.CreateSender("project", "sender");
  ASSERT_THAT(token, IsOk());
  // The view needs the handler's secret before it starts, and the handler
  // needs the view's port: create it, start the view, then point it there.
  const absl::StatusOr<v1::Handler> handler = rio_.CreateHandler(
      "http://127.0.0.1:9/not-yet", /*json=*/false, kEvent, "project");
  ASSERT_THAT(handler, IsOk());

  ChildProcess flask;
  ASSERT_THAT(
      flask.Start({"/usr/bin/python3", "-u",
                   absl::StrCat(kPythonSdkDir, "/examples/flask_receiver.py"),
                   "--port", "0"},
                  {{"RIO_WEBHOOK_SECRET", handler->secret()},
                   {"PYTHONPATH", kPythonSdkDir},
                   {"PYTHONDONTWRITEBYTECODE", "1"}}),
      IsOk());
  int port = 0;
  ASSERT_TRUE(testkit::WaitFor(
      [&] {
        const std::string output = flask.Output();
        const size_t at = output.find("Running on http://127.0.0.1:");
        if (at == std::string::npos) return false;
        const std::string rest =
            output.substr(at + sizeof("Running on http://127.0.0.1:") - 1);
        return absl::SimpleAtoi(
            rest.substr(0, rest.find_first_not_of("0123456789")), &port);
      },
      std::chrono::seconds(30)))
      << flask.Output();
  ASSERT_THAT(rio_.SetHandlerUrl(handler->id(),
                                 absl::StrCat("http://127.0.0.1:", port,
                                              "/webhook/comment/antispam")),
              IsOk());

  // The seed's snippet, in C++.
  rio::Client client(absl::StrCat("http://sender:", *token,
                                  "@127.0.0.1:", rio_.port(), "/1/project"));
  const absl::StatusOr<rio::EmitResult> result =
      client.Emit("comment-published",
                  R"({"ip": "127.0.0.1", "content": "I am a spammer"})");
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->handlers, 1);

  EXPECT_TRUE(testkit::WaitFor([&] {
    const std::string output = flask.Output();
    return output.find("banned 127.0.0.1") != std::string::npos &&
           output.find("\"POST /webhook/comment/antispam HTTP/1.1\" 200") !=
               std::string::npos;
  })) << flask.Output();
}

}  // namespace
}  // namespace rio
