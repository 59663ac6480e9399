// The real rioctl binary, run as a child process (posix_spawn, its stdout,
// stderr and exit code captured), against the real rio-server and a real
// PostgreSQL: every command's output and exit code, apply's dry-run, prune
// and idempotency round trips, malformed project files (the exact error
// line, and nothing changed), and emits reaching real receivers.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testkit/receiver.h"
#include "tests/testkit/testkit.h"

namespace rio {
namespace {

using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;
using testkit::PgCluster;
using testkit::Receiver;
using testkit::ServerProcess;
using testkit::WaitFor;

constexpr char kToken[] = "test-admin-token-0123456789abcdef";
constexpr char kUuid[] =
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

std::string RioctlPath() {
  const char* from_env = std::getenv("RIOCTL_BINARY");
  if (from_env != nullptr && *from_env != '\0') return from_env;
  return RIOCTL_BINARY_PATH;
}

// A running rioctl with its output collected by a thread.
class Child {
 public:
  // With `terminal`, stdout and stderr are both a pseudo-terminal (whose
  // output Out() returns, with "\r\n" line ends) and Err() stays empty.
  Child(const std::vector<std::string>& args,
        const std::map<std::string, std::string>& env, const std::string& input,
        bool terminal = false) {
    int out[2], err[2], in[2];
    if (terminal) {
      int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
      EXPECT_GE(master, 0);
      EXPECT_EQ(grantpt(master), 0);
      EXPECT_EQ(unlockpt(master), 0);
      int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
      EXPECT_GE(slave, 0);
      out[0] = master;
      out[1] = slave;
      // err[0] sees end-of-file at once; stderr goes to the terminal too.
      EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
      close(err[1]);
      err[1] = fcntl(slave, F_DUPFD_CLOEXEC, 0);
    } else {
      EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
      EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    }
    EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    std::vector<std::string> argv_text = {RioctlPath()};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (const auto& [k, v] : env) env_text.push_back(absl::StrCat(k, "=", v));
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(),
                         envp.data());
    EXPECT_EQ(rc, 0) << "cannot run " << argv[0];
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    close(in[0]);
    // Small inputs fit in the pipe's buffer.
    if (!input.empty()) {
      EXPECT_EQ(write(in[1], input.data(), input.size()),
                static_cast<ssize_t>(input.size()));
    }
    close(in[1]);
    reader_ = std::thread([this, o = out[0], e = err[0]] { Read(o, e); });
  }

  ~Child() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      Wait();
    }
  }

  std::string Out() const {
    absl::MutexLock lock(&mu_);
    return out_;
  }
  std::string Err() const {
    absl::MutexLock lock(&mu_);
    return err_;
  }
  void Signal(int sig) { kill(pid_, sig); }

  // The exit code (128+signal when killed).
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    if (reader_.joinable()) reader_.join();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  void Read(int out, int err) {
    pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
      if (poll(fds, 2, -1) < 0) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
          continue;
        }
        absl::MutexLock lock(&mu_);
        (i == 0 ? out_ : err_).append(buf, n);
      }
    }
  }

  pid_t pid_ = -1;
  bool waited_ = false;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string out_ ABSL_GUARDED_BY(mu_);
  std::string err_ ABSL_GUARDED_BY(mu_);
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.code << "\n--- stdout\n"
            << r.out << "--- stderr\n"
            << r.err;
}

class RioctlTest : public ::testing::Test {
 public:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("rioctl");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    ServerProcess::Options options;
    options.database_url = url_;
    options.admin_token = kToken;
    // Short retries so failing deliveries settle quickly.
    options.extra_args = {"--retry_schedule", "100ms"};
    server_ = std::make_unique<ServerProcess>(options);
    ASSERT_TRUE(server_->Start().ok());
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("rioctl-test-", getpid(), "-", counter_++);
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::map<std::string, std::string> Env() const {
    return {{"RIO_SERVER", server_->grpc_address()},
            {"RIO_ADMIN_TOKEN", kToken}};
  }

  Result Run(const std::vector<std::string>& args,
             std::map<std::string, std::string> extra_env = {},
             const std::string& input = "") {
    std::map<std::string, std::string> env = Env();
    for (auto& [k, v] : extra_env) env[k] = v;
    Child child(args, env, input);
    Result r;
    r.code = child.Wait();
    r.out = child.Out();
    r.err = child.Err();
    return r;
  }

  // Runs a command that must succeed; returns its stdout.
  std::string Ok(const std::vector<std::string>& args,
                 std::map<std::string, std::string> extra_env = {}) {
    Result r = Run(args, std::move(extra_env));
    EXPECT_EQ(r.code, 0) << absl::StrJoin(args, " ") << "\n" << r;
    return r.out;
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  // Every row of the catalog, as text: equal fingerprints mean nothing
  // changed.
  std::string Fingerprint() {
    auto rows = PgCluster::Query(
        url_,
        "SELECT coalesce((SELECT string_agg(p::text, ';' ORDER BY id) FROM "
        "projects p), '') || '|' || coalesce((SELECT string_agg(s::text, ';' "
        "ORDER BY name) FROM senders s), '') || '|' || coalesce((SELECT "
        "string_agg(h::text, ';' ORDER BY id) FROM handlers h), '')");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : "";
  }

  // The first match of `pattern`'s group 1 in `text`.
  static std::string Capture(const std::string& text,
                             const std::string& pattern) {
    std::smatch m;
    if (!std::regex_search(text, m, std::regex(pattern))) return "";
    return m[1];
  }

  std::string url_;
  std::unique_ptr<ServerProcess> server_;
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

// --- help, usage and connection ------------------------------------------

TEST_F(RioctlTest, HelpOnEveryCommand) {
  for (const char* path : {"project create",  "project get",
                           "project list",    "project update",
                           "project delete",  "sender create",
                           "sender list",     "sender delete",
                           "handler create",  "handler get",
                           "handler list",    "handler update",
                           "handler enable",  "handler disable",
                           "handler delete",  "handler rotate-secret",
                           "apply",           "emit",
                           "deliveries list", "deliveries show",
                           "redeliver",       "recover",
                           "recovery list",   "recovery get",
                           "recovery cancel", "tail",
                           "stats",           "version",
                           "token create",    "token list",
                           "token revoke",    "whoami"}) {
    std::vector<std::string> args = absl::StrSplit(path, ' ');
    args.push_back("--help");
    Result r = Run(args);
    EXPECT_EQ(r.code, 0) << path << "\n" << r;
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("Usage:\n  rioctl ", path)))
        << path;
    EXPECT_THAT(r.out, HasSubstr("Global flags:\n")) << path;
    EXPECT_THAT(r.err, IsEmpty()) << path;
  }
  // Groups and the root list their commands.
  Result group = Run({"handler", "--help"});
  EXPECT_EQ(group.code, 0);
  EXPECT_THAT(group.out, HasSubstr("\n  rotate-secret   Issue a new signing "
                                   "secret\n"));
  Result root = Run({"help"});
  EXPECT_EQ(root.code, 0);
  EXPECT_THAT(root.out, HasSubstr("\n  apply        Make a project match a "
                                  "project file (YAML)\n"));
  EXPECT_THAT(root.out, HasSubstr("\n  token        Scoped access tokens for "
                                  "the admin services\n"));
  EXPECT_THAT(root.out, HasSubstr("\n  whoami       Show the token's name, "
                                  "scope and project\n"));
  Result tokens = Run({"tokens", "--help"});
  EXPECT_EQ(tokens.code, 0);
  EXPECT_THAT(tokens.out,
              HasSubstr("\n  revoke   Revoke an access token (it stops "
                        "working at once)\n"));
  EXPECT_EQ(Run({"token", "rm", "--help"}).out,
            Run({"token", "revoke", "--help"}).out);
  EXPECT_EQ(Run({"-h", "project", "get"}).out,
            Run({"project", "get", "-h"}).out);
}

TEST_F(RioctlTest, UsageErrorsExitTwo) {
  Result none = Run({});
  EXPECT_EQ(none.code, 2);
  EXPECT_THAT(none.err, StartsWith("rioctl administers Rio"));
  Result group = Run({"project"});
  EXPECT_EQ(group.code, 2);
  EXPECT_THAT(group.err,
              StartsWith("Create, show, rename and delete projects"));

  auto expect_usage = [&](const std::vector<std::string>& args,
                          const std::string& stderr_text) {
    Result r = Run(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << "\n" << r;
    EXPECT_EQ(r.err, stderr_text) << absl::StrJoin(args, " ");
    EXPECT_THAT(r.out, IsEmpty());
  };
  expect_usage({"frobnicate"},
               "error: unknown command \"frobnicate\" for \"rioctl\"\n"
               "Run 'rioctl --help' for usage.\n");
  expect_usage({"project", "frobnicate"},
               "error: unknown command \"frobnicate\" for \"rioctl project\"\n"
               "Run 'rioctl project --help' for usage.\n");
  expect_usage({"project", "get"},
               "error: \"rioctl project get\" needs SLUG\n"
               "Run 'rioctl project get --help' for usage.\n");
  expect_usage({"project", "get", "a", "b"},
               "error: unexpected argument \"b\" for \"rioctl project get\"\n"
               "Run 'rioctl project get --help' for usage.\n");
  expect_usage({"project", "list", "--bogus"},
               "error: unknown flag --bogus\n"
               "Run 'rioctl project list --help' for usage.\n");
  expect_usage({"project", "list", "-o", "xml"},
               "error: --output must be table, json or yaml (got \"xml\")\n"
               "Run 'rioctl project list --help' for usage.\n");
  expect_usage({"sender", "list"},
               "error: --project (-p) is required (or set RIO_PROJECT)\n"
               "Run 'rioctl sender list --help' for usage.\n");
  expect_usage({"project", "list", "--server", "rio://h:1/x"},
               "error: --server \"rio://h:1/x\" must be host:port (a sender "
               "DSN is for `rioctl emit --dsn`)\n"
               "Run 'rioctl project list --help' for usage.\n");
  expect_usage({"handler", "create", "-p", "x", "--event", "e"},
               "error: --event and --url are required\n"
               "Run 'rioctl handler create --help' for usage.\n");
  expect_usage({"project", "delete", "x"},
               "error: deleting project x deletes its senders, handlers and "
               "history; pass --yes to confirm\n"
               "Run 'rioctl project delete --help' for usage.\n");
}

TEST_F(RioctlTest, ConnectionErrorsExitOne) {
  Result bad_token = Run({"project", "list"}, {{"RIO_ADMIN_TOKEN", "wrong"}});
  EXPECT_EQ(bad_token.code, 1) << bad_token;
  EXPECT_EQ(bad_token.err, "error: invalid admin token (UNAUTHENTICATED)\n");

  Result no_token = Run({"project", "list"}, {{"RIO_ADMIN_TOKEN", ""}});
  EXPECT_EQ(no_token.code, 1) << no_token;
  EXPECT_THAT(no_token.err,
              HasSubstr("(no admin token: set --token or RIO_ADMIN_TOKEN) "
                        "(UNAUTHENTICATED)\n"));

  // Flags win over the environment.
  Result flag = Run({"project", "list", "--token", kToken},
                    {{"RIO_ADMIN_TOKEN", "wrong"}});
  EXPECT_EQ(flag.code, 0) << flag;

  // Nobody listens on port 1.
  Result unreachable = Run({"project", "list", "--server", "127.0.0.1:1",
                            "--request-timeout", "2s"});
  EXPECT_EQ(unreachable.code, 1) << unreachable;
  EXPECT_THAT(unreachable.err,
              StartsWith("error: cannot reach Rio at 127.0.0.1:1: "));
  EXPECT_THAT(unreachable.err, HasSubstr("(UNAVAILABLE)\n"));

  // TLS against a plaintext server fails the handshake.
  Result tls = Run({"project", "list", "--tls", "--request-timeout", "2s"});
  EXPECT_EQ(tls.code, 1) << tls;
  // One line: gRPC's own logging stays quiet.
  EXPECT_THAT(tls.err,
              MatchesRegex("error: cannot reach Rio at [^\n]*Ssl handshake "
                           "failed[^\n]* \\(UNAVAILABLE\\)\n"));
}

// --- projects, senders, handlers -------------------------------------------

TEST_F(RioctlTest, ProjectRoundTrip) {
  EXPECT_EQ(Ok({"project", "create", "comments", "--name", "Comments"}),
            "project comments created\n");
  Result dup = Run({"project", "create", "comments"});
  EXPECT_EQ(dup.code, 1);
  EXPECT_EQ(dup.err,
            "error: project \"comments\" already exists (ALREADY_EXISTS)\n");

  EXPECT_THAT(Ok({"project", "get", "comments"}),
              MatchesRegex("Slug:     comments\n"
                           "Name:     Comments\n"
                           "Created:  [-0-9T:]+Z \\([0-9]+s ago\\)\n"
                           "Updated:  [-0-9T:]+Z \\([0-9]+s ago\\)\n"));
  std::string json = Ok({"project", "get", "comments", "-o", "json"});
  EXPECT_THAT(json, StartsWith("{\n  \"slug\": \"comments\",\n  \"name\": "
                               "\"Comments\",\n  \"create_time\": \""));
  std::string yaml = Ok({"project", "get", "comments", "-o", "yaml"});
  EXPECT_THAT(yaml,
              StartsWith("slug: comments\nname: Comments\ncreate_time: "));

  Ok({"project", "create", "billing"});
  EXPECT_THAT(Ok({"project", "list"}),
              MatchesRegex("SLUG       NAME       AGE\n"
                           "billing    billing    [0-9]+s\n"
                           "comments   Comments   [0-9]+s\n"));
  EXPECT_THAT(Ok({"projects", "ls", "-o", "json"}),
              MatchesRegex("\\[\n  \\{\n    \"slug\": \"billing\",(.|\n)*"
                           "\"slug\": \"comments\"(.|\n)*\\]\n"));

  EXPECT_EQ(Ok({"project", "update", "comments", "--name", "All comments"}),
            "project comments updated\n");
  EXPECT_THAT(Ok({"project", "get", "comments"}),
              HasSubstr("Name:     All comments\n"));
  Result nothing = Run({"project", "update", "comments"});
  EXPECT_EQ(nothing.code, 2);

  EXPECT_EQ(Ok({"project", "delete", "comments", "--yes"}),
            "project comments deleted\n");
  Result gone = Run({"project", "get", "comments"});
  EXPECT_EQ(gone.code, 1);
  EXPECT_EQ(gone.out, "");
  EXPECT_EQ(gone.err, "error: project \"comments\" not found (NOT_FOUND)\n");
  EXPECT_EQ(Ok({"project", "delete", "billing", "-y", "-o", "json"}),
            "{\n  \"kind\": \"project\",\n  \"slug\": \"billing\",\n  "
            "\"deleted\": true\n}\n");
  EXPECT_EQ(Ok({"project", "list"}), "No projects.\n");
  EXPECT_EQ(Ok({"project", "list", "-o", "json"}), "[]\n");
}

TEST_F(RioctlTest, SenderRoundTripAndEmit) {
  Ok({"project", "create", "comments"});
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  Ok({"handler", "create", "-p", "comments", "--event", "comment-published",
      "--url", receiver.Url("/antispam")});

  std::string created = Ok({"sender", "create", "app", "-p", "comments"});
  EXPECT_THAT(created,
              MatchesRegex("sender app created in project comments\n"
                           "DSN \\(shown only now; Rio keeps only a hash of "
                           "its token\\):\n"
                           "rio://app:[A-Za-z0-9_-]+@127\\.0\\.0\\.1:[0-9]+/"
                           "comments\n"));
  std::string dsn = Capture(created, "(rio://[^\n]+)");
  EXPECT_THAT(
      Ok({"sender", "list"}, {{"RIO_PROJECT", "comments"}}),
      MatchesRegex("NAME   PROJECT    AGE\napp    comments   [0-9]+s\n"));

  // emit with the DSN reaches the handler.
  Result emitted = Run({"emit", "comments", "comment-published",
                        R"({"ip": "127.0.0.1", "content": "I am a spammer"})",
                        "--dsn", dsn});
  EXPECT_EQ(emitted.code, 0) << emitted;
  EXPECT_THAT(emitted.out,
              MatchesRegex(absl::StrCat("message ", kUuid, ": 1 delivery\n")));
  ASSERT_TRUE(receiver.WaitForCount(1));
  EXPECT_EQ(receiver.Requests()[0].path, "/antispam");
  EXPECT_EQ(receiver.Requests()[0].body, "ip=127.0.0.1&content=I+am+a+spammer");

  // The same idempotency key answers the first message.
  std::string first = Ok({"emit", "comments", "comment-published", "{}",
                          "--idempotency-key", "k1", "-o", "json"},
                         {{"RIO_DSN", dsn}});
  std::string again = Ok({"emit", "comments", "comment-published", "{}",
                          "--idempotency-key", "k1", "-o", "json"},
                         {{"RIO_DSN", dsn}});
  EXPECT_THAT(first, HasSubstr("\"duplicate\": false"));
  EXPECT_THAT(again, HasSubstr("\"duplicate\": true"));
  EXPECT_EQ(Capture(first, "\"message_id\": \"([^\"]+)\""),
            Capture(again, "\"message_id\": \"([^\"]+)\""));

  // Payload from standard input; an event nobody handles.
  Child child({"emit", "comments", "nobody-cares", "-"}, {{"RIO_DSN", dsn}},
              R"({"n": 1})");
  EXPECT_EQ(child.Wait(), 0) << child.Err();
  EXPECT_THAT(child.Out(), MatchesRegex(absl::StrCat("message ", kUuid,
                                                     ": 0 deliveries\n")));

  Result other = Run({"emit", "billing", "x", "{}", "--dsn", dsn});
  EXPECT_EQ(other.code, 2);
  EXPECT_EQ(other.err,
            "error: the DSN is for project comments, not billing\n"
            "Run 'rioctl emit --help' for usage.\n");
  Result bad = Run({"emit", "comments", "x", "[1]", "--dsn", dsn});
  EXPECT_EQ(bad.code, 1) << bad;
  EXPECT_THAT(bad.err, MatchesRegex("error: .* \\(INVALID_ARGUMENT\\)\n"));
  Result no_dsn = Run({"emit", "comments", "x"});
  EXPECT_EQ(no_dsn.code, 2);

  EXPECT_EQ(Ok({"sender", "delete", "app", "-p", "comments"}),
            "sender app deleted from project comments\n");
  EXPECT_EQ(Ok({"sender", "list", "-p", "comments"}),
            "No senders in project comments.\n");
  Result revoked = Run({"emit", "comments", "x", "{}", "--dsn", dsn});
  EXPECT_EQ(revoked.code, 1) << revoked;
  EXPECT_THAT(revoked.err, HasSubstr("(UNAUTHENTICATED)\n"));
}

TEST_F(RioctlTest, HandlerRoundTrip) {
  Ok({"project", "create", "comments"});
  std::string created =
      Ok({"handler", "create", "-p", "comments", "--event", "comment-published",
          "--url", "http://127.0.0.1:5000/hook", "--method", "put",
          "--content-type", "json", "-H", "X-Team: antispam", "--header",
          "X-Env=prod", "--timeout", "2.5s"});
  std::string id = Capture(created, "^handler (\\S+) created\n");
  ASSERT_THAT(id, MatchesRegex(kUuid)) << created;
  EXPECT_THAT(
      created,
      MatchesRegex(absl::StrCat(
          "handler ", id, " created\n", "ID:            ", id,
          "\n"
          "Project:       comments\n"
          "Event:         comment-published\n"
          "URL:           http://127\\.0\\.0\\.1:5000/hook\n"
          "Method:        PUT\n"
          "Content type:  json\n"
          "Timeout:       2\\.5s\n"
          "Headers:       X-Env: •••, X-Team: •••\n"
          "Client cert:   none\n"
          "Client key:    none\n"
          "Enabled:       yes\n"
          "Created:       .*\n"
          "Updated:       .*\n"
          "Secret:        whsec_[A-Za-z0-9+/=]+  \\(shown only now\\)\n")));
  EXPECT_THAT(Ok({"handler", "get", id}), Not(HasSubstr("Secret")));
  EXPECT_THAT(Ok({"handler", "list", "-p", "comments"}),
              MatchesRegex(absl::StrCat(
                  "ID +EVENT +METHOD +URL +TYPE +TIMEOUT +ENABLED +AGE\n", id,
                  "   comment-published   PUT      "
                  "http://127\\.0\\.0\\.1:5000/hook   json   2\\.5s      yes  "
                  "     [0-9]+s\n")));
  EXPECT_EQ(Ok({"handler", "list", "-p", "comments", "--event", "other"}),
            "No handlers in project comments.\n");

  EXPECT_EQ(Ok({"handler", "update", id, "--url", "http://127.0.0.1:5001/x",
                "--clear-headers", "--timeout", "1m"}),
            absl::StrCat("handler ", id, " updated\n"));
  std::string got = Ok({"handler", "get", id, "-o", "json"});
  EXPECT_THAT(got, HasSubstr("\"url\": \"http://127.0.0.1:5001/x\""));
  EXPECT_THAT(got, HasSubstr("\"headers\": {},"));
  EXPECT_THAT(got, HasSubstr("\"timeout_ms\": 60000,"));

  EXPECT_EQ(Ok({"handler", "disable", id}),
            absl::StrCat("handler ", id, " disabled\n"));
  EXPECT_THAT(Ok({"handler", "get", id}),
              HasSubstr("Enabled:       no (disabled by an administrator)\n"));
  EXPECT_EQ(Ok({"handler", "enable", id}),
            absl::StrCat("handler ", id, " enabled\n"));
  EXPECT_THAT(Ok({"handler", "get", id}), HasSubstr("Enabled:       yes\n"));

  std::string rotated =
      Ok({"handler", "rotate-secret", id, "--previous-valid-for", "1h"});
  EXPECT_THAT(rotated,
              MatchesRegex(absl::StrCat(
                  "handler ", id,
                  " has a new signing secret \\(shown only now\\):\n"
                  "whsec_[A-Za-z0-9+/=]+\n"
                  "The previous secret keeps signing until [-0-9T:]+Z\\.\n")));
  EXPECT_THAT(Ok({"handler", "get", id}),
              HasSubstr("Previous secret until:  "));

  Result bad = Run({"handler", "update", id, "--url", "ftp://x"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(bad.err,
            "error: url \"ftp://x\" must start with http:// or https:// "
            "(INVALID_ARGUMENT)\n");
  Result usage = Run({"handler", "update", id, "--method", "PATCH"});
  EXPECT_EQ(usage.code, 2);

  EXPECT_EQ(Ok({"handler", "delete", id}),
            absl::StrCat("handler ", id, " deleted\n"));
  Result gone = Run({"handler", "get", id});
  EXPECT_EQ(gone.code, 1);
  EXPECT_THAT(gone.err, HasSubstr("(NOT_FOUND)\n"));
}

// --- client certificates (mutual TLS) --------------------------------------

class RioctlClientCertificateTest : public RioctlTest {
 public:
  void SetUp() override {
    RioctlTest::SetUp();
    auto certificates = testkit::TestCertificates::Make();
    ASSERT_TRUE(certificates.ok()) << certificates.status();
    certificates_ = *std::move(certificates);
  }

  std::string Pem(const std::string& name) const {
    return certificates_->Path(name);
  }

  // What `handler get` shows of a client certificate of the test kit (valid
  // for two days from now).
  static std::string CertLine(const std::string& subject) {
    return absl::StrCat("Client cert:   ", subject,
                        ", expires [-0-9]+T[0-9:]+Z \\(in 2d\\)\n");
  }

  std::unique_ptr<testkit::TestCertificates> certificates_;
};

TEST_F(RioctlClientCertificateTest, CreateShowUpdateRemove) {
  Ok({"project", "create", "shop"});
  std::string created =
      Ok({"handler", "create", "-p", "shop", "--event", "order-paid", "--url",
          "https://127.0.0.1:1/hook", "--client-cert", Pem("client.pem"),
          "--client-key", Pem("client.key")});
  std::string id = Capture(created, "^handler (\\S+) created\n");
  ASSERT_THAT(id, MatchesRegex(kUuid)) << created;
  EXPECT_THAT(created,
              MatchesRegex(absl::StrCat(
                  "handler ", id, " created\n", "ID:            ", id,
                  "\n"
                  "Project:       shop\n"
                  "Event:         order-paid\n"
                  "URL:           https://127\\.0\\.0\\.1:1/hook\n"
                  "Method:        POST\n"
                  "Content type:  form\n"
                  "Timeout:       15s\n"
                  "Headers:       none\n",
                  CertLine("CN=rio-test-client"),
                  "Client key:    •••\n"
                  "Enabled:       yes\n"
                  "Created:       .*\n"
                  "Updated:       .*\n"
                  "Secret:        whsec_[A-Za-z0-9+/=]+  \\(shown only "
                  "now\\)\n")));
  std::string shown = Ok({"handler", "get", id});
  EXPECT_THAT(shown, ContainsRegex(absl::StrCat("\nHeaders:       none\n",
                                                CertLine("CN=rio-test-client"),
                                                "Client key:    •••\n"
                                                "Enabled:       yes\n")));
  // Scripts get the certificate itself and the masked key; never the key.
  const std::string key_pem = certificates_->Read("client.key");
  for (const char* format : {"json", "yaml"}) {
    std::string doc = Ok({"handler", "get", id, "-o", format});
    EXPECT_THAT(doc, HasSubstr("-----BEGIN CERTIFICATE-----")) << format;
    EXPECT_THAT(doc, HasSubstr("client_key")) << format;
    EXPECT_THAT(doc, HasSubstr("•••")) << format;
    EXPECT_THAT(doc, Not(HasSubstr("PRIVATE KEY"))) << format;
  }
  EXPECT_THAT(Ok({"handler", "get", id, "-o", "json"}),
              HasSubstr("\"client_key\": \"•••\""));
  EXPECT_THAT(Ok({"handler", "list", "-p", "shop", "-o", "json"}),
              Not(HasSubstr("PRIVATE KEY")));

  // Another CA's certificate with the stored key: the server says no.
  Result mismatch =
      Run({"handler", "update", id, "--client-cert", Pem("other-client.pem")});
  EXPECT_EQ(mismatch.code, 1) << mismatch;
  EXPECT_EQ(mismatch.err,
            "error: client_key: does not belong to the client_certificate "
            "(CN=rio-other-client) (INVALID_ARGUMENT)\n");
  EXPECT_THAT(mismatch.out, IsEmpty());
  // The same certificate again keeps the stored key.
  EXPECT_EQ(Ok({"handler", "update", id, "--client-cert", Pem("client.pem")}),
            absl::StrCat("handler ", id, " updated\n"));
  EXPECT_THAT(Ok({"handler", "get", id}),
              ContainsRegex(absl::StrCat(CertLine("CN=rio-test-client"),
                                         "Client key:    •••\n")));
  // Both replaced.
  EXPECT_EQ(
      Ok({"handler", "update", id, "--client-cert", Pem("other-client.pem"),
          "--client-key", Pem("other-client.key")}),
      absl::StrCat("handler ", id, " updated\n"));
  EXPECT_THAT(Ok({"handler", "get", id}),
              ContainsRegex(absl::StrCat(CertLine("CN=rio-other-client"),
                                         "Client key:    •••\n")));
  // A key that is not the certificate's.
  Result wrong_key =
      Run({"handler", "update", id, "--client-cert", Pem("client.pem"),
           "--client-key", Pem("other-client.key")});
  EXPECT_EQ(wrong_key.code, 1) << wrong_key;
  EXPECT_EQ(wrong_key.err,
            "error: client_key: does not belong to the client_certificate "
            "(CN=rio-test-client) (INVALID_ARGUMENT)\n");

  EXPECT_EQ(Ok({"handler", "update", id, "--no-client-cert"}),
            absl::StrCat("handler ", id, " updated\n"));
  EXPECT_THAT(Ok({"handler", "get", id}),
              HasSubstr("\nClient cert:   none\nClient key:    none\n"));
  // Nothing left to keep.
  Result no_key =
      Run({"handler", "update", id, "--client-cert", Pem("client.pem")});
  EXPECT_EQ(no_key.code, 1) << no_key;
  EXPECT_EQ(no_key.err,
            "error: client_key has the masked value •••, which keeps the "
            "stored key, but the handler has none (INVALID_ARGUMENT)\n");

  // A handler without one says so.
  std::string plain =
      Capture(Ok({"handler", "create", "-p", "shop", "--event", "order-paid",
                  "--url", "https://127.0.0.1:1/other"}),
              "^handler (\\S+) created\n");
  EXPECT_THAT(Ok({"handler", "get", plain}),
              HasSubstr("\nClient cert:   none\nClient key:    none\n"));
}

TEST_F(RioctlClientCertificateTest, UsageAndFileErrors) {
  Ok({"project", "create", "shop"});
  std::string id =
      Capture(Ok({"handler", "create", "-p", "shop", "--event", "order-paid",
                  "--url", "https://127.0.0.1:1/hook"}),
              "^handler (\\S+) created\n");
  ASSERT_THAT(id, MatchesRegex(kUuid));
  const std::string before = Fingerprint();

  auto expect_usage = [&](const std::vector<std::string>& args,
                          const std::string& message,
                          const std::string& command) {
    Result r = Run(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << "\n" << r;
    EXPECT_EQ(r.err, absl::StrCat("error: ", message, "\nRun 'rioctl ", command,
                                  " --help' for usage.\n"))
        << absl::StrJoin(args, " ");
    EXPECT_THAT(r.out, IsEmpty());
  };
  const std::vector<std::string> create = {
      "handler", "create",     "-p",    "shop",
      "--event", "order-paid", "--url", "https://127.0.0.1:1/new"};
  auto with = [](std::vector<std::string> args,
                 const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  expect_usage(with(create, {"--client-cert", Pem("client.pem")}),
               "--client-cert needs --client-key (its PEM private key)",
               "handler create");
  expect_usage(with(create, {"--client-key", Pem("client.key")}),
               "--client-key needs --client-cert (the certificate it belongs "
               "to)",
               "handler create");
  expect_usage(with(create, {"--no-client-cert"}),
               "unknown flag --no-client-cert", "handler create");
  expect_usage({"handler", "update", id, "--client-key", Pem("client.key")},
               "--client-key needs --client-cert (the certificate it belongs "
               "to)",
               "handler update");
  expect_usage({"handler", "update", id, "--no-client-cert", "--client-cert",
                Pem("client.pem")},
               "--no-client-cert excludes --client-cert and --client-key",
               "handler update");
  expect_usage({"handler", "update", id, "--no-client-cert", "--client-key",
                Pem("client.key")},
               "--no-client-cert excludes --client-cert and --client-key",
               "handler update");
  expect_usage({"handler", "update", id},
               "nothing to change: give --event, --url, --method, "
               "--content-type, --timeout, --header, --clear-headers, "
               "--client-cert or --no-client-cert",
               "handler update");

  // Unreadable files: exit 1 naming the flag and the file.
  const std::string missing = (dir_ / "missing.pem").string();
  Result unreadable = Run(with(
      create, {"--client-cert", missing, "--client-key", Pem("client.key")}));
  EXPECT_EQ(unreadable.code, 1) << unreadable;
  EXPECT_EQ(unreadable.err,
            absl::StrCat("error: cannot read --client-cert ", missing,
                         ": No such file or directory\n"));
  Result unreadable_key = Run({"handler", "update", id, "--client-cert",
                               Pem("client.pem"), "--client-key", missing});
  EXPECT_EQ(unreadable_key.code, 1) << unreadable_key;
  EXPECT_EQ(unreadable_key.err,
            absl::StrCat("error: cannot read --client-key ", missing,
                         ": No such file or directory\n"));
  // The server's checks: a certificate and a key that do not match.
  Result mismatch =
      Run(with(create, {"--client-cert", Pem("client.pem"), "--client-key",
                        Pem("other-client.key")}));
  EXPECT_EQ(mismatch.code, 1) << mismatch;
  EXPECT_EQ(mismatch.err,
            "error: client_key: does not belong to the client_certificate "
            "(CN=rio-test-client) (INVALID_ARGUMENT)\n");
  EXPECT_EQ(Fingerprint(), before);
}

TEST_F(RioctlClientCertificateTest, ApplyRoundTrip) {
  // The PEM files sit beside the project file, named relative to it; apply
  // runs from another directory.
  std::filesystem::create_directories(dir_ / "certs");
  WriteFile("certs/client.pem", certificates_->Read("client.pem"));
  WriteFile("certs/client.key", certificates_->Read("client.key"));
  WriteFile("certs/other.pem", certificates_->Read("other-client.pem"));
  WriteFile("certs/other.key", certificates_->Read("other-client.key"));
  auto file = [&](const std::string& name, const std::string& cert_lines) {
    return WriteFile(name,
                     absl::StrCat("project: shop\n"
                                  "actions:\n"
                                  "  - slug: order-paid\n"
                                  "    webhooks:\n"
                                  "      - url: https://127.0.0.1:1/hook\n",
                                  cert_lines));
  };
  const std::string with_client =
      file("v1.yml",
           "        client_certificate_file: certs/client.pem\n"
           "        client_key_file: certs/{{ KEY }}.key\n");
  Result first = Run({"apply", "-f", with_client, "--var", "KEY=client"});
  ASSERT_EQ(first.code, 0) << first;
  EXPECT_THAT(first.out,
              MatchesRegex("\\+ project shop\n"
                           "\\+ handler order-paid POST "
                           "https://127\\.0\\.0\\.1:1/hook \\[[-0-9a-f]+\\]\n"
                           "    secret: whsec_[A-Za-z0-9+/=]+  \\(shown only "
                           "now\\)\n"
                           "Applied: 2 created, 0 updated, 0 deleted\\.\n"));
  std::string id = Capture(Ok({"handler", "list", "-p", "shop"}),
                           "\n(\\S+) +order-paid +POST");
  ASSERT_THAT(id, MatchesRegex(kUuid));
  EXPECT_THAT(Ok({"handler", "get", id}),
              ContainsRegex(absl::StrCat(CertLine("CN=rio-test-client"),
                                         "Client key:    •••\n")));
  // Idempotent: the same certificate is no change (the key is not sent).
  EXPECT_EQ(Ok({"apply", "-f", with_client, "--var", "KEY=client"}),
            "Project shop is up to date.\n");
  // Unless asked to send the key again.
  EXPECT_EQ(
      Ok({"apply", "-f", with_client, "--var", "KEY=client",
          "--rewrite-client-keys", "--dry-run"}),
      absl::StrCat("~ handler order-paid POST https://127.0.0.1:1/hook [", id,
                   "]: client_certificate CN=rio-test-client (key "
                   "rewritten)\n"
                   "Dry run: 0 to create, 1 to update, 0 to delete; "
                   "nothing was changed.\n"));
  EXPECT_EQ(
      Ok({"apply", "-f", with_client, "--var", "KEY=client",
          "--rewrite-client-keys"}),
      absl::StrCat("~ handler order-paid POST https://127.0.0.1:1/hook [", id,
                   "]: client_certificate CN=rio-test-client (key "
                   "rewritten)\n"
                   "Applied: 0 created, 1 updated, 0 deleted.\n"));

  // A key that is not the certificate's is refused before anything changes.
  const std::string before = Fingerprint();
  Result mismatch = Run({"apply", "-f", with_client, "--var", "KEY=other"});
  EXPECT_EQ(mismatch.code, 1) << mismatch;
  EXPECT_EQ(mismatch.err,
            absl::StrCat("error: ", with_client,
                         ":7:26: actions[0].webhooks[0].client_key_file: does "
                         "not belong to the client_certificate_file "
                         "(CN=rio-test-client)\n"));
  const std::string missing =
      file("missing.yml",
           "        client_certificate_file: nope.pem\n"
           "        client_key_file: certs/client.key\n");
  Result unreadable = Run({"apply", "-f", missing});
  EXPECT_EQ(unreadable.code, 1) << unreadable;
  EXPECT_EQ(unreadable.err,
            absl::StrCat(
                "error: ", missing,
                ":6:34: actions[0].webhooks[0].client_certificate_file: "
                "cannot read ",
                (dir_ / "nope.pem").string(), ": No such file or directory\n"));
  EXPECT_EQ(Fingerprint(), before);

  // Another certificate: both are sent.
  const std::string with_other =
      file("v2.yml",
           "        client_certificate_file: certs/other.pem\n"
           "        client_key_file: certs/other.key\n");
  EXPECT_EQ(
      Ok({"apply", "-f", with_other}),
      absl::StrCat("~ handler order-paid POST https://127.0.0.1:1/hook [", id,
                   "]: client_certificate CN=rio-test-client -> "
                   "CN=rio-other-client\n"
                   "Applied: 0 created, 1 updated, 0 deleted.\n"));
  EXPECT_THAT(Ok({"handler", "get", id}),
              ContainsRegex(CertLine("CN=rio-other-client")));
  EXPECT_EQ(Ok({"apply", "-f", with_other}), "Project shop is up to date.\n");

  // Without the fields, the certificate goes (as headers do).
  const std::string without = file("v3.yml", "");
  EXPECT_EQ(
      Ok({"apply", "-f", without}),
      absl::StrCat("~ handler order-paid POST https://127.0.0.1:1/hook [", id,
                   "]: client_certificate CN=rio-other-client -> none\n"
                   "Applied: 0 created, 1 updated, 0 deleted.\n"));
  EXPECT_THAT(Ok({"handler", "get", id}),
              HasSubstr("\nClient cert:   none\nClient key:    none\n"));
  EXPECT_EQ(Ok({"apply", "-f", without}), "Project shop is up to date.\n");
}

// --- access tokens ----------------------------------------------------------

constexpr char kSecret[] = "rio_at_[A-Za-z0-9_-]{43}";

// What `token create` prints in table mode, as a pattern: the fields, then
// the secret once.
std::string CreatedPattern(const std::string& name, const std::string& scope,
                           const std::string& project,
                           const std::string& expires) {
  return absl::StrCat("access token ", name, " created\n", "Name:     ", name,
                      "\nScope:    ", scope, "\nProject:  ", project,
                      "\nExpires:  ", expires,
                      "\nToken \\(shown only now; Rio keeps only a hash of "
                      "it\\):\n(",
                      kSecret, ")\n");
}

TEST_F(RioctlTest, AccessTokenRoundTrip) {
  Ok({"project", "create", "shop"});
  EXPECT_EQ(Ok({"token", "list"}), "No access tokens.\n");
  EXPECT_EQ(Ok({"token", "list", "-o", "json"}), "[]\n");

  // One token of each scope.
  const std::string admin_out =
      Ok({"token", "create", "deploy", "--scope", "admin"});
  const std::string admin_pattern =
      CreatedPattern("deploy", "admin", "\\(all\\)", "never");
  EXPECT_THAT(admin_out, MatchesRegex(admin_pattern));
  const std::string admin = Capture(admin_out, admin_pattern);

  const std::string ops_out =
      Ok({"token", "create", "shop-ops", "--scope", "project-admin", "-p",
          "shop", "--expires", "2099-01-01T00:00:00Z"});
  const std::string ops_pattern =
      CreatedPattern("shop-ops", "project-admin", "shop",
                     "2099-01-01T00:00:00Z \\(in [0-9]+d\\)");
  EXPECT_THAT(ops_out, MatchesRegex(ops_pattern));
  const std::string ops = Capture(ops_out, ops_pattern);

  // json carries the secret too.
  const std::string reader_json =
      Ok({"token", "create", "ci-reader", "--scope", "read-only", "--expires",
          "30d", "-o", "json"});
  EXPECT_THAT(reader_json, MatchesRegex(absl::StrCat(
                               "\\{\n"
                               "  \"access_token\": \\{\n"
                               "    \"name\": \"ci-reader\",\n"
                               "    \"scope\": \"READ_ONLY\",\n"
                               "    \"project\": \"\",\n"
                               "    \"create_time\": \"[-0-9T:.]+Z\",\n"
                               "    \"expire_time\": \"[-0-9T:.]+Z\"\n"
                               "  \\},\n"
                               "  \"token\": \"",
                               kSecret, "\"\n\\}\n")));
  const std::string reader =
      Capture(reader_json, "\"token\": \"(rio_at_[^\"]+)\"");
  ASSERT_THAT(reader, MatchesRegex(kSecret));

  // RIO_PROJECT applies to a read-only token as to other commands, but not
  // to an admin token, which covers every project.
  EXPECT_THAT(Ok({"token", "create", "shop-reader", "--scope", "READ_ONLY"},
                 {{"RIO_PROJECT", "shop"}}),
              MatchesRegex(
                  CreatedPattern("shop-reader", "read-only", "shop", "never")));
  EXPECT_THAT(
      Ok({"tokens", "create", "root", "--scope", "admin"},
         {{"RIO_PROJECT", "shop"}}),
      MatchesRegex(CreatedPattern("root", "admin", "\\(all\\)", "never")));

  // Ordered by name; expiry relative to now.
  EXPECT_THAT(
      Ok({"token", "list"}),
      MatchesRegex("NAME          SCOPE           PROJECT   CREATED   EXPIRES\n"
                   "ci-reader     read-only       \\(all\\)     [0-9]s ago    "
                   "in 30d\n"
                   "deploy        admin           \\(all\\)     [0-9]s ago    "
                   "never\n"
                   "root          admin           \\(all\\)     [0-9]s ago    "
                   "never\n"
                   "shop-ops      project-admin   shop      [0-9]s ago    "
                   "in [0-9]+d\n"
                   "shop-reader   read-only       shop      [0-9]s ago    "
                   "never\n"));
  EXPECT_THAT(Ok({"tokens", "ls", "-o", "json"}),
              MatchesRegex("\\[\n  \\{\n    \"name\": \"ci-reader\",\n"
                           "    \"scope\": \"READ_ONLY\",(.|\n)*"
                           "\"name\": \"deploy\",(.|\n)*"
                           "\"name\": \"root\",(.|\n)*"
                           "\"name\": \"shop-ops\",\n"
                           "    \"scope\": \"PROJECT_ADMIN\",\n"
                           "    \"project\": \"shop\",(.|\n)*"
                           "\"name\": \"shop-reader\",(.|\n)*\\]\n"));

  // whoami with the bootstrap token and with access tokens.
  EXPECT_EQ(Ok({"whoami"}),
            "Name:     bootstrap\nScope:    admin\nProject:  (all)\n");
  EXPECT_EQ(Ok({"whoami", "--token", ops}),
            "Name:     shop-ops\nScope:    project-admin\nProject:  shop\n");
  EXPECT_EQ(Ok({"whoami", "-o", "json"}, {{"RIO_ADMIN_TOKEN", reader}}),
            "{\n  \"name\": \"ci-reader\",\n  \"scope\": \"READ_ONLY\",\n  "
            "\"project\": \"\"\n}\n");
  EXPECT_EQ(Ok({"whoami", "--token", admin}),
            "Name:     deploy\nScope:    admin\nProject:  (all)\n");

  // A read-only token reads but changes nothing.
  EXPECT_EQ(Ok({"handler", "list", "-p", "shop", "--token", reader}),
            "No handlers in project shop.\n");
  EXPECT_THAT(Ok({"project", "list", "--token", reader}),
              MatchesRegex("SLUG   NAME   AGE\nshop   shop   [0-9]+s\n"));
  Result denied = Run({"project", "create", "x", "--token", reader});
  EXPECT_EQ(denied.code, 1) << denied;
  EXPECT_EQ(denied.out, "");
  EXPECT_EQ(denied.err,
            "error: access token \"ci-reader\" (scope READ_ONLY) may not call "
            "CreateProject: it needs scope ADMIN (PERMISSION_DENIED)\n");
  Result listing = Run({"token", "list"}, {{"RIO_ADMIN_TOKEN", reader}});
  EXPECT_EQ(listing.code, 1) << listing;
  EXPECT_EQ(listing.err,
            "error: access token \"ci-reader\" (scope READ_ONLY) may not call "
            "ListAccessTokens: it needs scope ADMIN (PERMISSION_DENIED)\n");
  // A project admin stays in its project.
  Result other = Run({"handler", "list", "-p", "blog", "--token", ops});
  EXPECT_EQ(other.code, 1) << other;
  EXPECT_EQ(other.err,
            "error: access token \"shop-ops\" (scope PROJECT_ADMIN) is "
            "limited to project \"shop\"; ListHandlers named project "
            "\"blog\" (PERMISSION_DENIED)\n");
  // An admin access token manages tokens.
  EXPECT_THAT(
      Ok({"token", "create", "temp", "--scope", "read-only", "--token", admin}),
      MatchesRegex(CreatedPattern("temp", "read-only", "\\(all\\)", "never")));

  // Revoked: refused at once.
  EXPECT_EQ(Ok({"token", "revoke", "ci-reader"}),
            "access token ci-reader revoked\n");
  Result revoked = Run({"whoami", "--token", reader});
  EXPECT_EQ(revoked.code, 1) << revoked;
  EXPECT_EQ(revoked.out, "");
  EXPECT_EQ(revoked.err,
            "error: invalid access token (revoked, or never issued here) "
            "(UNAUTHENTICATED)\n");
  Result handlers = Run({"handler", "list", "-p", "shop", "--token", reader});
  EXPECT_EQ(handlers.code, 1) << handlers;
  EXPECT_EQ(handlers.err, revoked.err);
  Result again = Run({"token", "revoke", "ci-reader"});
  EXPECT_EQ(again.code, 1) << again;
  EXPECT_EQ(again.err,
            "error: access token \"ci-reader\" not found (NOT_FOUND)\n");
  // delete and rm name revoke too.
  EXPECT_EQ(Ok({"token", "rm", "temp", "-o", "json"}),
            "{\n  \"kind\": \"access_token\",\n  \"name\": \"temp\",\n  "
            "\"revoked\": true\n}\n");
  EXPECT_EQ(Ok({"tokens", "delete", "root"}), "access token root revoked\n");
  EXPECT_EQ(Ok({"token", "list", "-o", "yaml"}).find("name: ci-reader"),
            std::string::npos);
  EXPECT_THAT(Ok({"token", "list"}),
              MatchesRegex("NAME          SCOPE           PROJECT   CREATED   "
                           "EXPIRES\n"
                           "deploy        admin (.|\n)*"
                           "shop-ops      project-admin (.|\n)*"
                           "shop-reader   read-only (.|\n)*"));
  // The other tokens still work.
  EXPECT_EQ(Ok({"whoami", "--token", ops}),
            "Name:     shop-ops\nScope:    project-admin\nProject:  shop\n");
}

TEST_F(RioctlTest, AccessTokenUsageErrorsCreateNothing) {
  Ok({"project", "create", "shop"});
  auto expect_usage = [&](const std::vector<std::string>& args,
                          const std::string& message) {
    Result r = Run(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << "\n" << r;
    EXPECT_THAT(r.out, IsEmpty());
    EXPECT_EQ(r.err, absl::StrCat("error: ", message,
                                  "\nRun 'rioctl token create --help' for "
                                  "usage.\n"))
        << absl::StrJoin(args, " ");
  };
  expect_usage({"token", "create", "x"},
               "--scope is required: admin, project-admin or read-only");
  expect_usage({"token", "create", "x", "--scope", "owner"},
               "--scope must be admin, project-admin or read-only (got "
               "\"owner\")");
  expect_usage(
      {"token", "create", "x", "--scope", "read-only", "--expires", "soon"},
      "--expires \"soon\" is neither a duration from now (12h, 30d) "
      "nor an RFC 3339 time (2030-01-01T00:00:00Z)");
  expect_usage({"token", "create", "x", "--scope", "read-only", "--expires",
                "2020-01-01T00:00:00Z"},
               "--expires \"2020-01-01T00:00:00Z\" is not in the future");
  expect_usage({"token", "create", "x", "--scope", "admin", "-p", "shop"},
               "--project is not allowed with scope admin (it covers every "
               "project; use project-admin for one project)");
  expect_usage({"token", "create", "x", "--scope", "project-admin"},
               "--project (-p) is required for scope project-admin (or set "
               "RIO_PROJECT)");
  Result no_name = Run({"token", "create", "--scope", "admin"});
  EXPECT_EQ(no_name.code, 2) << no_name;
  EXPECT_EQ(no_name.err,
            "error: \"rioctl token create\" needs NAME\n"
            "Run 'rioctl token create --help' for usage.\n");

  // The server's refusals exit 1.
  Result reserved = Run({"token", "create", "bootstrap", "--scope", "admin"});
  EXPECT_EQ(reserved.code, 1) << reserved;
  EXPECT_EQ(reserved.err,
            "error: name \"bootstrap\" is reserved for the admin token "
            "(INVALID_ARGUMENT)\n");
  Result missing =
      Run({"token", "create", "x", "--scope", "project-admin", "-p", "nope"});
  EXPECT_EQ(missing.code, 1) << missing;
  EXPECT_EQ(missing.err, "error: project \"nope\" not found (NOT_FOUND)\n");
  EXPECT_EQ(Ok({"token", "list"}), "No access tokens.\n");
}

// --- apply ------------------------------------------------------------------

// The original Rio's examples/example.yml, byte for byte.
constexpr char kOriginalExample[] =
    "project: example\n"
    "\n"
    "senders:\n"
    "  - slug: example\n"
    "    token: example\n"
    "\n"
    "actions:\n"
    "  - slug: example\n"
    "    webhooks:\n"
    "      - method: POST\n"
    "        url: \"http://127.0.0.1:5000\"";

TEST_F(RioctlTest, ApplyTheOriginalExample) {
  std::string file = WriteFile("example.yml", kOriginalExample);
  const std::string warning = absl::StrCat(
      "warning: ", file,
      ":5:12: senders[0].token: ignored; Rio generates sender tokens and "
      "shows the DSN once, when apply creates the sender\n");
  const std::string before = Fingerprint();

  Result dry = Run({"apply", "-f", file, "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry;
  EXPECT_EQ(dry.out,
            "+ project example\n"
            "+ sender example\n"
            "+ handler example POST http://127.0.0.1:5000\n"
            "Dry run: 3 to create, 0 to update, 0 to delete; nothing was "
            "changed.\n");
  EXPECT_EQ(dry.err, warning);
  EXPECT_EQ(Fingerprint(), before);

  Result applied = Run({"apply", "-f", file});
  EXPECT_EQ(applied.code, 0) << applied;
  EXPECT_EQ(applied.err, warning);
  EXPECT_THAT(
      applied.out,
      MatchesRegex(absl::StrCat(
          "\\+ project example\n"
          "\\+ sender example\n"
          "    DSN: rio://example:[A-Za-z0-9_-]+@127\\.0\\.0\\.1:[0-9]+/example"
          "  \\(shown only now\\)\n"
          "\\+ handler example POST http://127\\.0\\.0\\.1:5000 \\[",
          kUuid,
          "\\]\n"
          "    secret: whsec_[A-Za-z0-9+/=]+  \\(shown only now\\)\n"
          "Applied: 3 created, 0 updated, 0 deleted\\.\n")));
  std::string dsn = Capture(applied.out, "DSN: (\\S+)");
  const std::string after = Fingerprint();

  // Idempotent.
  Result again = Run({"apply", "-f", file});
  EXPECT_EQ(again.code, 0) << again;
  EXPECT_EQ(again.out, "Project example is up to date.\n");
  EXPECT_EQ(Fingerprint(), after);
  EXPECT_EQ(Ok({"apply", "-f", file, "--dry-run", "--prune"}),
            "Project example is up to date.\n");

  // What it made is what the file says.
  EXPECT_THAT(Ok({"handler", "list", "-p", "example"}),
              HasSubstr("   example   POST     http://127.0.0.1:5000   form   "
                        "15s       yes       "));
  EXPECT_THAT(Ok({"sender", "list", "-p", "example"}), HasSubstr("\nexample "));
  // The DSN it printed works.
  Result emitted = Run({"emit", "example", "example", "{}", "--dsn", dsn});
  EXPECT_EQ(emitted.code, 0) << emitted;
  EXPECT_THAT(emitted.out, HasSubstr(": 1 delivery\n"));
}

TEST_F(RioctlTest, ApplyUpdatesKeepsAndPrunes) {
  Receiver a, b;
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  std::string v1 =
      WriteFile("v1.yml", absl::StrCat("project: comments\n"
                                       "name: Comments\n"
                                       "senders:\n"
                                       "  - slug: web\n"
                                       "  - slug: batch\n"
                                       "actions:\n"
                                       "  - slug: comment-published\n"
                                       "    webhooks:\n"
                                       "      - url: ",
                                       a.Url("/antispam"),
                                       "\n"
                                       "        headers: {X-Team: antispam}\n"
                                       "      - url: ",
                                       b.Url("/search"),
                                       "\n"
                                       "        method: PUT\n"
                                       "        content_type: json\n"
                                       "  - slug: comment-deleted\n"
                                       "    webhooks:\n"
                                       "      - url: ",
                                       b.Url("/search"), "\n"));
  Result first = Run({"apply", "-f", v1});
  ASSERT_EQ(first.code, 0) << first;
  EXPECT_THAT(first.out,
              HasSubstr("Applied: 6 created, 0 updated, 0 deleted.\n"));
  EXPECT_EQ(Ok({"apply", "-f", v1}), "Project comments is up to date.\n");

  // Find the handlers' ids.
  std::string list = Ok({"handler", "list", "-p", "comments"});
  std::string antispam = Capture(
      list,
      absl::StrCat("(\\S+) +comment-published +POST +", a.Url("/antispam")));
  std::string search_published = Capture(
      list, absl::StrCat("(\\S+) +comment-published +PUT +", b.Url("/search")));
  std::string search_deleted = Capture(
      list, absl::StrCat("(\\S+) +comment-deleted +POST +", b.Url("/search")));
  ASSERT_FALSE(antispam.empty() || search_published.empty() ||
               search_deleted.empty())
      << list;

  // v2: a new name, a changed handler, a changed method, one handler and one
  // sender fewer.
  std::string v2 =
      WriteFile("v2.yml", absl::StrCat("project: comments\n"
                                       "name: All comments\n"
                                       "senders:\n"
                                       "  - slug: web\n"
                                       "actions:\n"
                                       "  - slug: comment-published\n"
                                       "    webhooks:\n"
                                       "      - url: ",
                                       a.Url("/antispam"),
                                       "\n"
                                       "        headers: {X-Team: spam, X-Env: "
                                       "prod}\n"
                                       "        timeout: 5s\n"
                                       "        enabled: false\n"
                                       "      - url: ",
                                       b.Url("/search"),
                                       "\n"
                                       "        method: POST\n"
                                       "        content_type: json\n"));
  const std::string before = Fingerprint();
  const std::string plan = absl::StrCat(
      "~ project comments: name \"Comments\" -> \"All comments\"\n"
      "~ handler comment-published POST ",
      a.Url("/antispam"), " [", antispam,
      "]: timeout 15s -> 5s, headers {X-Team} -> {X-Env, X-Team}, "
      "disable\n"
      "~ handler comment-published POST ",
      b.Url("/search"), " [", search_published, "]: method PUT -> POST\n");
  const std::string kept = absl::StrCat(
      "Not in the file, kept (--prune deletes them):\n"
      "  handler comment-deleted POST ",
      b.Url("/search"), " [", search_deleted,
      "]\n"
      "  sender batch\n");
  EXPECT_EQ(Ok({"apply", "-f", v2, "--dry-run"}),
            absl::StrCat(plan, kept,
                         "Dry run: 0 to create, 3 to update, 0 to delete; "
                         "nothing was changed.\n"));
  EXPECT_EQ(Fingerprint(), before);
  const std::string deletions = absl::StrCat(
      "- handler comment-deleted POST ", b.Url("/search"), " [", search_deleted,
      "]\n"
      "- sender batch\n");
  EXPECT_EQ(Ok({"apply", "-f", v2, "--dry-run", "--prune"}),
            absl::StrCat(plan, deletions,
                         "Dry run: 0 to create, 3 to update, 2 to delete; "
                         "nothing was changed.\n"));
  EXPECT_EQ(Fingerprint(), before);

  // Without --prune the extra objects stay.
  EXPECT_EQ(
      Ok({"apply", "-f", v2}),
      absl::StrCat(plan, kept, "Applied: 0 created, 3 updated, 0 deleted.\n"));
  EXPECT_EQ(Ok({"apply", "-f", v2}),
            absl::StrCat(kept, "Project comments is up to date.\n"));
  // Header values cannot be read back to compare; --rewrite-headers sends
  // them again.
  EXPECT_EQ(Ok({"apply", "-f", v2, "--rewrite-headers"}),
            absl::StrCat("~ handler comment-published POST ",
                         a.Url("/antispam"), " [", antispam,
                         "]: headers {X-Env, X-Team} (values rewritten)\n",
                         kept, "Applied: 0 created, 1 updated, 0 deleted.\n"));
  EXPECT_THAT(Ok({"handler", "get", antispam}),
              HasSubstr("Enabled:       no (disabled by an administrator)\n"));
  EXPECT_EQ(
      Ok({"apply", "-f", v2, "--prune"}),
      absl::StrCat(deletions, "Applied: 0 created, 0 updated, 2 deleted.\n"));
  EXPECT_EQ(Ok({"apply", "-f", v2, "--prune"}),
            "Project comments is up to date.\n");
  EXPECT_THAT(Ok({"sender", "list", "-p", "comments"}),
              Not(HasSubstr("batch")));
  Result gone = Run({"handler", "get", search_deleted});
  EXPECT_EQ(gone.code, 1);

  // Back to v1: the handler comes back, the sender too (with a new DSN).
  Result back = Run({"apply", "-f", v1, "-o", "json"});
  ASSERT_EQ(back.code, 0) << back;
  EXPECT_THAT(back.out, StartsWith("{\n  \"project\": \"comments\",\n  "
                                   "\"dry_run\": false,\n  \"changes\": [\n"));
  EXPECT_THAT(back.out, ContainsRegex("\"kind\": \"sender\",\n +\"name\": "
                                      "\"batch\",\n +\"details\": \\[\\],\n "
                                      "+\"dsn\": \"rio://batch:"));
  EXPECT_EQ(Ok({"apply", "-f", v1}), "Project comments is up to date.\n");
}

TEST_F(RioctlTest, MalformedFilesChangeNothing) {
  Ok({"project", "create", "example"});
  const std::string before = Fingerprint();
  auto expect_error = [&](const std::string& text, const std::string& message) {
    std::string file = WriteFile("bad.yml", text);
    for (const char* flag : {"--dry-run", "--prune"}) {
      Result r = Run({"apply", "-f", file, flag});
      EXPECT_EQ(r.code, 1) << text << "\n" << r;
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err, absl::StrCat("error: ", file, ":", message, "\n"));
    }
    EXPECT_EQ(Fingerprint(), before) << text;
  };
  expect_error(
      "project: example\n"
      "senders:\n"
      "  - slug: example\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n"
      "      - method: POST\n"
      "        url: http://127.0.0.1:5000\n"
      "        timeot: 5s\n",
      "9:9: actions[0].webhooks[0].timeot: unknown key (expected one of: "
      "method, url, headers, content_type, timeout, enabled, "
      "client_certificate_file, client_key_file)");
  expect_error(
      "project: example\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n"
      "      - url: http://127.0.0.1:5000\n"
      "        headers: {X-Team: a\n",
      "7:1: invalid YAML: end of map flow not found");
  expect_error(
      "project: example\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n"
      "      - url: http://127.0.0.1:5000\n"
      "      - url: nope\n",
      "6:14: actions[0].webhooks[1].url \"nope\" must start with http:// or "
      "https://");
  // A bad item after good ones: still nothing changed.
  expect_error(
      "project: example\n"
      "senders:\n"
      "  - slug: good\n"
      "  - slug: bad name\n",
      "4:11: senders[1].slug \"bad name\" may contain only letters, digits, "
      "'.', '_' and '-'");

  Result missing = Run({"apply", "-f", (dir_ / "nope.yml").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err, absl::StrCat("error: cannot read ",
                                      (dir_ / "nope.yml").string(), "\n"));
  Result no_file = Run({"apply"});
  EXPECT_EQ(no_file.code, 2);

  // Standard input works too.
  Result from_stdin = Run({"apply", "-f", "-", "--dry-run"}, {},
                          "project: example\nactions:\n  - slug: e\n"
                          "    webhooks:\n      - url: http://127.0.0.1/h\n");
  EXPECT_EQ(from_stdin.code, 0) << from_stdin;
  EXPECT_EQ(from_stdin.out,
            "+ handler e POST http://127.0.0.1/h\n"
            "Dry run: 1 to create, 0 to update, 0 to delete; nothing was "
            "changed.\n");
  Result unset = Run({"apply", "-f", "-", "--dry-run"}, {}, "");
  EXPECT_EQ(unset.code, 1);
}

// `{{ NAME }}` comes from --var NAME=VALUE or $RIO_VAR_NAME only: a shared
// project file cannot copy RIO_ADMIN_TOKEN (or any other variable of whoever
// applies it) into a handler that calls out.
TEST_F(RioctlTest, ApplyPlaceholdersComeFromVarFlagsAndRioVarOnly) {
  const std::string file =
      WriteFile("hooks.yml",
                "project: example\nactions:\n  - slug: e\n    webhooks:\n"
                "      - url: http://{{ HOOK_HOST }}/hook\n");
  const std::string before = Fingerprint();

  // A plain environment variable of the same name is not read.
  Result plain = Run({"apply", "-f", file}, {{"HOOK_HOST", "127.0.0.1:5000"}});
  EXPECT_EQ(plain.code, 1) << plain;
  EXPECT_EQ(plain.err,
            absl::StrCat("error: ", file,
                         ":5:14: actions[0].webhooks[0].url: placeholder {{ "
                         "HOOK_HOST }} has no value: give it with `--var "
                         "HOOK_HOST=VALUE` or the environment variable "
                         "RIO_VAR_HOOK_HOST (no other environment variable "
                         "is read)\n"));

  // RIO_VAR_HOOK_HOST is.
  Result from_env = Run({"apply", "-f", file, "--dry-run"},
                        {{"RIO_VAR_HOOK_HOST", "127.0.0.1:5000"}});
  EXPECT_EQ(from_env.code, 0) << from_env;
  EXPECT_EQ(from_env.out,
            "+ project example\n+ handler e POST http://127.0.0.1:5000/hook\n"
            "Dry run: 2 to create, 0 to update, 0 to delete; nothing was "
            "changed.\n");

  // --var is, and wins over the environment.
  Result from_flag =
      Run({"apply", "-f", file, "--var", "HOOK_HOST=127.0.0.1:5001", "--var",
           "UNUSED=x", "--dry-run"},
          {{"RIO_VAR_HOOK_HOST", "127.0.0.1:5000"}});
  EXPECT_EQ(from_flag.code, 0) << from_flag;
  EXPECT_THAT(from_flag.out,
              HasSubstr("+ handler e POST http://127.0.0.1:5001/hook\n"));
  EXPECT_EQ(Fingerprint(), before);

  // A file that asks for the admin token gets nothing and changes nothing,
  // wherever the placeholder is.
  for (const std::string& webhook :
       {std::string("      - url: http://127.0.0.1:5000/?t={{ "
                    "RIO_ADMIN_TOKEN }}\n"),
        std::string("      - url: http://127.0.0.1:5000/\n"
                    "        headers: {Authorization: 'Bearer "
                    "{{RIO_ADMIN_TOKEN}}'}\n")}) {
    const std::string exfiltrate = WriteFile(
        "exfiltrate.yml",
        "project: example\nactions:\n  - slug: e\n    webhooks:\n" + webhook);
    Result r = Run({"apply", "-f", exfiltrate});
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_THAT(r.err, HasSubstr("placeholder {{ RIO_ADMIN_TOKEN }} has no "
                                 "value: give it with `--var "
                                 "RIO_ADMIN_TOKEN=VALUE` or the environment "
                                 "variable RIO_VAR_RIO_ADMIN_TOKEN"));
    EXPECT_THAT(r.out + r.err, Not(HasSubstr(kToken)));
  }
  EXPECT_EQ(Fingerprint(), before);

  // A --var that is not NAME=VALUE is a usage error.
  Result bad = Run({"apply", "-f", file, "--var", "HOOK_HOST"});
  EXPECT_EQ(bad.code, 2) << bad;
  EXPECT_THAT(bad.err, HasSubstr("error: --var HOOK_HOST: expected "
                                 "NAME=VALUE (for {{ NAME }})"));

  // And for real: the handler gets the --var value.
  EXPECT_THAT(Ok({"apply", "-f", file, "--var", "HOOK_HOST=127.0.0.1:5002"}),
              HasSubstr("+ handler e POST http://127.0.0.1:5002/hook ["));
  EXPECT_THAT(Ok({"handler", "list", "-p", "example"}),
              HasSubstr("http://127.0.0.1:5002/hook"));
}

// --- triage -----------------------------------------------------------------

// A receiver whose answer the test switches: 500 "receiver down" until
// Fix().
class SwitchableReceiver {
 public:
  SwitchableReceiver()
      : receiver_([this](const testkit::ReceivedRequest&, int) {
          testkit::ReceiverReply reply;
          if (!fixed_.load()) {
            reply.status = 500;
            reply.body = "receiver down";
          }
          return reply;
        }) {}
  absl::Status Start() { return receiver_.Start(); }
  void Fix() { fixed_ = true; }
  void Break() { fixed_ = false; }
  std::string Url(absl::string_view path) const { return receiver_.Url(path); }
  size_t Count() const { return receiver_.Count(); }

 private:
  std::atomic<bool> fixed_{false};
  Receiver receiver_;
};

class RioctlTriageTest : public RioctlTest {
 public:
  // Applies a project "shop" with one handler for "order-paid" at `url`;
  // remembers the sender's DSN and the handler's id.
  void SetUpProject(const std::string& url) {
    std::string file =
        WriteFile("shop.yml", absl::StrCat("project: shop\n"
                                           "senders:\n"
                                           "  - slug: checkout\n"
                                           "actions:\n"
                                           "  - slug: order-paid\n"
                                           "    webhooks:\n"
                                           "      - url: ",
                                           url, "\n"));
    std::string out = Ok({"apply", "-f", file});
    dsn_ = Capture(out, "DSN: (\\S+)");
    handler_ = Capture(out, "\\[(\\S+)\\]\n");
    ASSERT_FALSE(dsn_.empty() || handler_.empty()) << out;
  }

  void Emit(const std::string& payload = R"({"order":1})") {
    Ok({"emit", "shop", "order-paid", payload, "--dsn", dsn_});
  }

  // How many deliveries `deliveries list ARGS -o json` lists.
  int CountListed(std::vector<std::string> args) {
    args.insert(args.begin(), {"deliveries", "list", "-p", "shop"});
    args.insert(args.end(), {"-o", "json", "--limit", "1000"});
    std::string json = Ok(args);
    int n = 0;
    for (size_t at = json.find("\n  {\n"); at != std::string::npos;
         at = json.find("\n  {\n", at + 1)) {
      ++n;
    }
    return n;
  }

  std::string dsn_;
  std::string handler_;
};

TEST_F(RioctlTriageTest, FailingThenRedeliverSucceeds) {
  SwitchableReceiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  const std::string url = receiver.Url("/paid");
  SetUpProject(url);
  Emit();
  // Two attempts (--retry_schedule 100ms), then FAILED.
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountListed({"--status", "failed"}) == 1;
      },
      std::chrono::seconds(20)));

  // The one failed delivery; its age may tick over between two listings.
  auto listing = [&url](const std::string& id_pattern) {
    return MatchesRegex(absl::StrCat(
        "ID +STATUS +EVENT +ATTEMPTS +LAST +NEXT +AGE +URL\n(", id_pattern,
        ") +failed +order-paid +2 +500 +- +[0-9]+s +", url, "\n"));
  };
  std::string listed = Ok({"deliveries", "list", "--failing", "--handler",
                           handler_, "--since", "1h"});
  EXPECT_THAT(listed, listing(kUuid));
  std::string id = Capture(listed, "\n(\\S+) ");
  // The same through the project and the event filter; none since later.
  EXPECT_THAT(Ok({"deliveries", "list", "-p", "shop", "--failing", "--event",
                  "order-paid"}),
              listing(id));
  EXPECT_EQ(Ok({"deliveries", "list", "-p", "shop", "--since",
                "2099-01-01T00:00:00Z"}),
            "No deliveries match.\n");

  std::string shown = Ok({"deliveries", "show", id});
  EXPECT_THAT(
      shown,
      MatchesRegex(absl::StrCat(
          "ID: +", id,
          "\n"
          "Message: +",
          kUuid,
          "\n"
          "Project: +shop\n"
          "Event: +order-paid\n"
          "Handler: +",
          handler_, " ", url,
          "\n"
          "Status: +failed\n"
          "Attempts: +2\n"
          "Last result: +500\n"
          "Created: +[-0-9T:]+Z \\([0-9]+s ago\\)\n"
          "Updated: +[-0-9T:]+Z \\([0-9]+s ago\\)\n"
          "\n"
          "# +STARTED +RESULT +DURATION +DNS +CONNECT +TLS +FIRST BYTE +MANUAL "
          "+ERROR\n"
          "1 +[-0-9T:]+Z +500 +[0-9.]+(us|ms|s) .* +no +[^\n]+\n"
          "2 +[-0-9T:]+Z +500 +[0-9.]+(us|ms|s) .* +no +[^\n]+\n"
          "\n"
          "Response to attempt 2: 500\n"
          "(  [^\n]+: [^\n]*\n)*"
          "\n"
          "receiver down\n")));
  EXPECT_THAT(Ok({"deliveries", "show", id, "--attempt", "1"}),
              HasSubstr("\nResponse to attempt 1: 500\n"));
  std::string json = Ok({"deliveries", "show", id, "-o", "json"});
  EXPECT_THAT(json, HasSubstr("\"status\": \"FAILED\""));
  EXPECT_THAT(json, HasSubstr("\"response_body\": \"receiver down\""));

  // The receiver is fixed; one call is re-triggered.
  receiver.Fix();
  EXPECT_EQ(Ok({"redeliver", id, "--wait"}),
            absl::StrCat("delivery ", id, ": attempt 3 -> 200, succeeded\n"));
  EXPECT_THAT(Ok({"deliveries", "show", id}),
              ContainsRegex("Status: +succeeded\n(.|\n)*\n3 +[-0-9T:]+Z +200 "
                            "+[^\n]+ +yes +-\n"));
  EXPECT_EQ(Ok({"deliveries", "list", "-p", "shop", "--failing"}),
            "No deliveries match.\n");
  EXPECT_EQ(CountListed({"--status", "succeeded"}), 1);

  // Without --wait, it answers at once.
  EXPECT_EQ(Ok({"redeliver", id}),
            absl::StrCat("delivery ", id, " re-queued\n"));
  ASSERT_TRUE(WaitFor([&] { return receiver.Count() == 4; }));

  // Once the fourth attempt is recorded.
  std::string stats;
  ASSERT_TRUE(WaitFor([&] {
    stats = Ok({"stats", "--handler", handler_});
    return absl::StrContains(stats, "(2 failed)") &&
           std::regex_search(stats, std::regex("Attempts: +4 "));
  })) << stats;
  EXPECT_THAT(stats, MatchesRegex(absl::StrCat(
                         "Handler: +", handler_,
                         "\n"
                         "Enabled: +yes\n"
                         "Window: +1h\n"
                         "Succeeded: +1\n"
                         "Failed: +0\n"
                         "Pending: +0\n"
                         "Cancelled: +0\n"
                         "Success ratio: +100\\.0%\n"
                         "Attempts: +4 \\(2 failed\\)\n"
                         "Latency: +p50 [0-9.]+m?s, p90 [0-9.]+m?s, p99 "
                         "[0-9.]+m?s\n"
                         "Consecutive failures: +0\n")));
  EXPECT_THAT(
      Ok({"stats", "--handler", handler_, "--window", "24h", "-o", "yaml"}),
      AllOf(HasSubstr("\nsucceeded: \"1\"\n"),
            HasSubstr("\nwindow: 86400s\n")));

  Result unknown = Run({"redeliver", "00000000-0000-0000-0000-000000000000"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, MatchesRegex("error: .* \\(NOT_FOUND\\)\n"));
  Result malformed = Run({"deliveries", "show", "nope"});
  EXPECT_EQ(malformed.code, 1);
  EXPECT_THAT(malformed.err, HasSubstr("(INVALID_ARGUMENT)\n"));
  Result no_project = Run({"deliveries", "list"});
  EXPECT_EQ(no_project.code, 2);
  Result bad_since = Run({"deliveries", "list", "-p", "shop", "--since", "x"});
  EXPECT_EQ(bad_since.code, 2);
  EXPECT_THAT(bad_since.err,
              StartsWith("error: --since \"x\" is neither a duration (30m, "
                         "2h, 7d) nor an RFC 3339 time "
                         "(2024-05-01T12:00:00Z)\n"));
}

TEST_F(RioctlTriageTest, RecoverWithDryRun) {
  SwitchableReceiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  SetUpProject(receiver.Url("/paid"));
  for (int i = 0; i < 3; ++i) Emit();
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountListed({"--status", "failed"}) == 3;
      },
      std::chrono::seconds(20)));

  EXPECT_EQ(
      Ok({"recover", "--handler", handler_, "--since", "2h", "--dry-run"}),
      "3 deliveries would be re-sent (dry run: nothing was re-queued)\n");
  EXPECT_EQ(CountListed({"--status", "failed"}), 3);
  EXPECT_EQ(receiver.Count(), 6u);

  receiver.Fix();
  std::string out = Ok({"recover", "--handler", handler_, "--since", "2h"});
  EXPECT_THAT(out, MatchesRegex(absl::StrCat(
                       "recovery (", kUuid,
                       ") started: 3 deliveries to re-send\n"
                       "recovery ",
                       kUuid,
                       " done: 3 of 3 re-queued \\(succeeded [0-3], failed "
                       "0, pending [0-3]\\)\n")));
  std::string recovery = Capture(out, "recovery (\\S+) started");
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountListed({"--status", "succeeded"}) == 3;
      },
      std::chrono::seconds(20)));
  EXPECT_THAT(
      Ok({"recovery", "get", recovery}),
      MatchesRegex(absl::StrCat("ID: +", recovery,
                                "\n"
                                "Project: +shop\n"
                                "Handler: +",
                                handler_,
                                "\n"
                                "Event: +\\(all\\)\n"
                                "Since: +[-0-9T:]+Z\n"
                                "Until: +[-0-9T:]+Z\n"
                                "State: +done\n"
                                "Matched: +3\n"
                                "Re-queued: +3\n"
                                "Outcome: +succeeded 3, failed 0, pending 0\n"
                                "Rate: +100/s\n"
                                "Created: +[^\n]+\n"
                                "Finished: +[^\n]+\n")));
  EXPECT_THAT(Ok({"recovery", "list", "-p", "shop"}),
              MatchesRegex(absl::StrCat(
                  "ID +STATE +HANDLER +EVENT +MATCHED +REQUEUED +SUCCEEDED "
                  "+FAILED +PENDING +AGE\n",
                  recovery, " +done +", handler_,
                  " +\\(all\\) +3 +3 +3 +0 +0 +[0-9]+s\n")));
  // On a terminal, a progress bar follows the job on stderr.
  receiver.Break();
  for (int i = 0; i < 2; ++i) Emit(R"({"order":2})");
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountListed({"--status", "failed"}) == 2;
      },
      std::chrono::seconds(20)));
  receiver.Fix();
  Child bar({"recover", "-p", "shop", "--event", "order-paid", "--since", "1h"},
            Env(), "", /*terminal=*/true);
  EXPECT_EQ(bar.Wait(), 0) << bar.Out();
  EXPECT_THAT(bar.Out(), MatchesRegex(absl::StrCat(
                             "recovery ", kUuid,
                             " started: 2 deliveries to re-send\r\n"
                             "(\r\\[[#.]{30}\\][^\r\n]*)*"
                             "\r\\[#{30}\\] 100%  2/2 re-queued \\(succeeded "
                             "[0-2], failed 0, pending [0-2]\\)\r\n"
                             "recovery ",
                             kUuid, " done: 2 of 2 re-queued[^\r]*\r\n")));
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountListed({"--status", "succeeded"}) == 5;
      },
      std::chrono::seconds(20)));

  // Nothing is left to recover.
  EXPECT_EQ(Ok({"recover", "-p", "shop", "--since", "2h", "--dry-run"}),
            "0 deliveries would be re-sent (dry run: nothing was re-queued)\n");
  Result no_since = Run({"recover", "--handler", handler_});
  EXPECT_EQ(no_since.code, 2);
  EXPECT_EQ(no_since.err,
            "error: --since is required (e.g. --since 2h)\n"
            "Run 'rioctl recover --help' for usage.\n");
}

TEST_F(RioctlTriageTest, TailStreamsAttempts) {
  Receiver receiver;
  ASSERT_TRUE(receiver.Start().ok());
  const std::string url = receiver.Url("/paid");
  SetUpProject(url);
  std::map<std::string, std::string> env = Env();
  Child plain({"tail", "-p", "shop"}, env, "");
  Child coloured({"tail", "--handler", handler_, "--color", "always"}, env, "");
  env["RIO_PROJECT"] = "shop";
  Child json({"tail", "-o", "json", "--event", "order-paid"}, env, "");
  // The streams start in the background: emit until each has seen one.
  auto seen = [&](const Child& child, const std::string& text) {
    return child.Out().find(text) != std::string::npos;
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        Emit();
        return WaitFor(
            [&] {
              return seen(plain, "\n") && seen(coloured, "\n") &&
                     seen(json, "\n");
            },
            std::chrono::milliseconds(500));
      },
      std::chrono::seconds(30)));
  std::string first_line = plain.Out().substr(0, plain.Out().find('\n') + 1);
  EXPECT_THAT(first_line,
              MatchesRegex(absl::StrCat(
                  "[0-9]{2}:[0-9]{2}:[0-9]{2}  200  succeeded  order-paid  "
                  "attempt 1  [0-9.]+(us|ms|s)  delivery ",
                  kUuid, "  ", url, "\n")));
  EXPECT_THAT(coloured.Out(), StartsWith("\033[2m"));
  EXPECT_THAT(coloured.Out(),
              HasSubstr("  \033[32m200\033[0m  \033[32msucceeded\033[0m  "));
  std::string json_line = json.Out().substr(0, json.Out().find('\n') + 1);
  EXPECT_THAT(json_line, StartsWith("{\"delivery\":{\"id\":\""));
  EXPECT_THAT(json_line, HasSubstr("\"status\":\"SUCCEEDED\""));
  EXPECT_THAT(json_line, HasSubstr("\"status_code\":200"));

  for (Child* child : {&plain, &coloured, &json}) {
    child->Signal(SIGINT);
    EXPECT_EQ(child->Wait(), 0) << child->Err();
  }
  EXPECT_EQ(plain.Err(),
            "Tailing deliveries of project shop (Ctrl-C to stop)\n");

  // On a terminal, colour comes by itself (and NO_COLOR turns it off).
  Child terminal({"tail", "-p", "shop"}, Env(), "", /*terminal=*/true);
  std::map<std::string, std::string> no_colour_env = Env();
  no_colour_env["NO_COLOR"] = "1";
  Child no_colour({"tail", "-p", "shop"}, no_colour_env, "", true);
  ASSERT_TRUE(WaitFor(
      [&] {
        Emit();
        return WaitFor(
            [&] {
              return seen(terminal, "attempt 1") &&
                     seen(no_colour, "attempt 1");
            },
            std::chrono::milliseconds(500));
      },
      std::chrono::seconds(30)));
  EXPECT_THAT(terminal.Out(),
              HasSubstr("  \033[32m200\033[0m  \033[32msucceeded\033[0m  "));
  EXPECT_THAT(no_colour.Out(), HasSubstr("  200  succeeded  order-paid  "));
  EXPECT_THAT(no_colour.Out(), Not(HasSubstr("\033[")));
  for (Child* child : {&terminal, &no_colour}) {
    child->Signal(SIGINT);
    EXPECT_EQ(child->Wait(), 0);
  }
}

}  // namespace
}  // namespace rio
