// WaitFor, PgCluster and ServerProcess. ReflectionClient is in
// reflection_client.cc.
//
// Children are started with fork + exec, never through a shell, so that
// arguments need no quoting. The test process runs gRPC threads, so between
// fork and exec a child makes only async-signal-safe calls: everything it
// needs (argv, envp, paths) is built before fork.
#include "tests/testkit/testkit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/util/status_macros.h"

extern char** environ;

namespace rio::testkit {
namespace {

// gRPC's threads outlive main(): OpenSSL's own atexit clean-up would free
// state they may still use, and the error queue (904 bytes) of a thread that
// exits after it is reported as a leak. This runs before any OpenSSL use.
[[maybe_unused]] const bool kOpenSslWithoutAtExit =
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr) == 1;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollInterval(5);

std::string ErrnoMessage(absl::string_view what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

// Exit code as a shell reports it: WEXITSTATUS, or 128 + signal.
int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A NULL-terminated char* array for execv/execve; owns the strings.
class CStringArray {
 public:
  explicit CStringArray(std::vector<std::string> strings)
      : strings_(std::move(strings)) {
    for (std::string& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  char* const* get() const { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

// Child side only (async-signal-safe): keep the parent's sockets and pipes
// out of the child, so that e.g. a postmaster does not hold them open forever.
void CloseFdsAbove2() {
  if (close_range(3, ~0U, 0) == 0) return;
  for (int fd = 3; fd < 4096; ++fd) close(fd);
}

// Child side only (async-signal-safe).
[[noreturn]] void ExitChildAfterExecFailure(const char* path) {
  static constexpr char kPrefix[] = "testkit: cannot execute ";
  ssize_t ignored = write(2, kPrefix, sizeof(kPrefix) - 1);
  ignored = write(2, path, strlen(path));
  ignored = write(2, "\n", 1);
  (void)ignored;
  _exit(127);
}

absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix) {
  const char* tmpdir = getenv("TMPDIR");
  std::string path =
      absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp", "/",
                   prefix, "XXXXXX");
  if (mkdtemp(path.data()) == nullptr) {
    return absl::InternalError(ErrnoMessage(absl::StrCat("mkdtemp ", path)));
  }
  return path;
}

std::string ReadFileFrom(const std::string& path, std::streamoff offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

std::streamoff FileSize(const std::string& path) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  return error ? 0 : static_cast<std::streamoff>(size);
}

struct CommandResult {
  int exit_code = -1;  // As DecodeWaitStatus.
  std::string out;
  std::string err;
};

// Runs `argv` (argv[0] an absolute path) in `cwd` (unless empty) with stdin
// from /dev/null and returns what it printed. Kills it after `timeout` and
// returns DEADLINE_EXCEEDED.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& cwd,
                                         milliseconds timeout) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(ErrnoMessage("pipe2"));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return absl::InternalError(ErrnoMessage("pipe2"));
  }
  const CStringArray args(argv);
  const char* const child_cwd = cwd.empty() ? nullptr : cwd.c_str();

  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    CloseFdsAbove2();
    if (child_cwd != nullptr && chdir(child_cwd) != 0) {
      ExitChildAfterExecFailure(child_cwd);
    }
    execv(args.get()[0], args.get());
    ExitChildAfterExecFailure(args.get()[0]);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return absl::InternalError(ErrnoMessage("fork"));
  }

  CommandResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* const sinks[2] = {&result.out, &result.err};
  int open_pipes = 2;
  bool timed_out = false;
  const Clock::time_point deadline = Clock::now() + timeout;
  while (open_pipes > 0) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0) {
      if (errno == EINTR) continue;
      timed_out = true;  // Cannot read any more; do not wait forever.
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", timeout.count(),
                     " ms; it printed:\n", result.out, result.err));
  }
  result.exit_code = DecodeWaitStatus(status);
  return result;
}

// PostgreSQL binaries: $RIO_PG_BINDIR, else the newest
// /usr/lib/postgresql/<major>/bin. Empty when there is none.
std::string PgBinDir() {
  const char* from_env = getenv("RIO_PG_BINDIR");
  if (from_env != nullptr && *from_env != '\0') return from_env;
  std::string newest;
  int newest_major = -1;
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    int major = 0;
    const std::string bin = entry.path().string() + "/bin";
    if (absl::SimpleAtoi(entry.path().filename().string(), &major) &&
        major > newest_major && access((bin + "/initdb").c_str(), X_OK) == 0) {
      newest_major = major;
      newest = bin;
    }
  }
  return newest;
}

// initdb refuses to run as root, and the server must not run as root either.
absl::StatusOr<std::vector<std::string>> AsPostgresUser(
    std::vector<std::string> argv) {
  if (geteuid() != 0) return argv;
  for (const char* runuser :
       {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (access(runuser, X_OK) == 0) {
      argv.insert(argv.begin(), {runuser, "-u", "postgres", "--"});
      return argv;
    }
  }
  return absl::FailedPreconditionError(
      "running as root, but runuser is missing: cannot run PostgreSQL as the "
      "postgres user");
}

absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(ErrnoMessage("socket"));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string message = ErrnoMessage("bind 127.0.0.1:0");
    close(fd);
    return absl::InternalError(message);
  }
  close(fd);
  return ntohs(address.sin_port);
}

// pg_ctl start on `port`. Sets `*port_taken` when the failure was another
// process holding the port.
absl::Status StartPostmaster(const std::string& bindir, const std::string& dir,
                             int port, bool* port_taken) {
  *port_taken = false;
  const std::string log_path = dir + "/postgres.log";
  const std::streamoff log_start = FileSize(log_path);
  // pg_ctl hands -o to a shell, hence the quotes around the socket directory.
  const std::string server_options = absl::StrFormat(
      "-p %d -k '%s' -c listen_addresses=127.0.0.1 -c fsync=off "
      "-c synchronous_commit=off -c full_page_writes=off "
      "-c max_connections=200",
      port, dir);
  RIO_ASSIGN_OR_RETURN(
      std::vector<std::string> argv,
      AsPostgresUser({bindir + "/pg_ctl", "-w", "-t", "60", "-D", dir + "/data",
                      "-l", log_path, "-o", server_options, "start"}));
  RIO_ASSIGN_OR_RETURN(CommandResult result,
                       RunCommand(argv, dir, std::chrono::seconds(90)));
  if (result.exit_code == 0) return absl::OkStatus();
  const std::string log = ReadFileFrom(log_path, log_start);
  *port_taken = absl::StrContains(log, "Address already in use");
  return absl::UnavailableError(
      absl::StrCat("pg_ctl start failed (exit ", result.exit_code, "):\n",
                   result.out, result.err, "PostgreSQL log:\n", log));
}

}  // namespace

bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(kPollInterval, deadline - now));
  }
}

// ---------------------------------------------------------------------------
// PgCluster

PgCluster::PgCluster() : owner_pid_(getpid()) {}

PgCluster::~PgCluster() {
  if (getpid() != owner_pid_) return;
  if (running_) {
    const absl::Status status = Stop();
    if (!status.ok()) {
      std::fprintf(stderr, "testkit: stopping PostgreSQL in %s: %s\n",
                   dir_.c_str(), std::string(status.message()).c_str());
    }
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

absl::Status PgCluster::Start() {
  if (running_) return absl::OkStatus();
  const std::string bindir = PgBinDir();
  if (bindir.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL under /usr/lib/postgresql/<major>/bin; set "
        "RIO_PG_BINDIR");
  }
  if (dir_.empty()) {
    RIO_ASSIGN_OR_RETURN(std::string dir, MakeTempDir("rio-pg-"));
    dir_ = std::move(dir);
    if (geteuid() == 0) {
      const passwd* postgres = getpwnam("postgres");
      if (postgres == nullptr) {
        return absl::FailedPreconditionError(
            "running as root, but there is no postgres user to run "
            "PostgreSQL as");
      }
      if (chown(dir_.c_str(), postgres->pw_uid, postgres->pw_gid) != 0) {
        return absl::InternalError(ErrnoMessage("chown " + dir_));
      }
    }
  }

  const std::string data_dir = dir_ + "/data";
  if (access((data_dir + "/PG_VERSION").c_str(), F_OK) != 0) {
    RIO_ASSIGN_OR_RETURN(
        std::vector<std::string> argv,
        AsPostgresUser({bindir + "/initdb", "-D", data_dir, "-A", "trust", "-U",
                        "postgres", "--no-sync", "-E", "UTF8", "--locale=C"}));
    RIO_ASSIGN_OR_RETURN(CommandResult result,
                         RunCommand(argv, dir_, std::chrono::seconds(120)));
    if (result.exit_code != 0) {
      return absl::InternalError(absl::StrCat("initdb failed (exit ",
                                              result.exit_code, "):\n",
                                              result.out, result.err));
    }
  }

  // A port the kernel just handed out can be taken before the postmaster
  // binds it. Only the first start may move to another one: after a restart,
  // clients still hold URLs with the old port.
  const bool may_pick_port = port_ == 0;
  absl::Status status;
  for (int attempt = 0; attempt < (may_pick_port ? 5 : 1); ++attempt) {
    if (may_pick_port) {
      RIO_ASSIGN_OR_RETURN(port_, PickFreePort());
    }
    bool port_taken = false;
    status = StartPostmaster(bindir, dir_, port_, &port_taken);
    if (status.ok()) {
      running_ = true;
      return status;
    }
    if (!port_taken) break;
  }
  if (may_pick_port) port_ = 0;
  return status;
}

absl::Status PgCluster::Stop() {
  if (!running_) return absl::OkStatus();
  RIO_ASSIGN_OR_RETURN(
      std::vector<std::string> argv,
      AsPostgresUser({PgBinDir() + "/pg_ctl", "-D", dir_ + "/data", "-m",
                      "fast", "-w", "-t", "60", "stop"}));
  RIO_ASSIGN_OR_RETURN(CommandResult result,
                       RunCommand(argv, dir_, std::chrono::seconds(90)));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl stop failed (exit ",
                                            result.exit_code, "):\n",
                                            result.out, result.err));
  }
  running_ = false;
  return absl::OkStatus();
}

bool PgCluster::running() const { return running_; }

int PgCluster::port() const { return port_; }

absl::StatusOr<std::string> PgCluster::CreateDatabase(
    const std::string& prefix) {
  if (!running_) {
    return absl::FailedPreconditionError(
        "the PostgreSQL cluster is not running");
  }
  // The name goes into a URL unescaped and must stay a valid identifier.
  for (char c : prefix) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') {
      return absl::InvalidArgumentError(absl::StrCat(
          "database prefix \"", prefix, "\" may hold only [a-z0-9_]"));
    }
  }
  // Unique across the processes sharing an attached cluster (whose old
  // databases may carry a recycled pid): pid, start time, counter.
  static std::atomic<int> counter{0};
  static const int64_t started = absl::ToUnixSeconds(absl::Now()) % 100000;
  const std::string name =
      absl::StrCat(prefix, "_", getpid(), "_", started, "_", ++counter);
  if (name.size() > 63) {
    return absl::InvalidArgumentError(
        absl::StrCat("database prefix \"", prefix, "\" is too long"));
  }
  RIO_RETURN_IF_ERROR(
      Query(Url("postgres"), absl::StrCat("CREATE DATABASE \"", name, "\""))
          .status());
  return Url(name);
}

std::string PgCluster::Url(const std::string& database) const {
  return absl::StrFormat("postgresql://postgres@127.0.0.1:%d/%s", port_,
                         database);
}

absl::StatusOr<std::string> PgCluster::Query(const std::string& url,
                                             const std::string& sql) {
  const std::string bindir = PgBinDir();
  if (bindir.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL binaries; set "
        "RIO_PG_BINDIR");
  }
  RIO_ASSIGN_OR_RETURN(
      CommandResult result,
      RunCommand({bindir + "/psql", "-X", "-A", "-t", "-q", "-v",
                  "ON_ERROR_STOP=1", "-d", url, "-c", sql},
                 /*cwd=*/"", std::chrono::seconds(60)));
  // psql exits with 2 when it cannot reach the server, with 1 when the
  // statement failed.
  switch (result.exit_code) {
    case 0:
      return std::string(absl::StripAsciiWhitespace(result.out));
    case 2:
      return absl::UnavailableError(absl::StripAsciiWhitespace(result.err));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("psql exit ", result.exit_code, ": ",
                       absl::StripAsciiWhitespace(result.err)));
  }
}

absl::StatusOr<std::string> PgCluster::Dump(const std::string& url) {
  const std::string bindir = PgBinDir();
  if (bindir.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL binaries; set RIO_PG_BINDIR");
  }
  RIO_ASSIGN_OR_RETURN(std::vector<std::string> argv,
                       AsPostgresUser({bindir + "/pg_dump", "--no-owner",
                                       "--format=plain", "-d", url}));
  RIO_ASSIGN_OR_RETURN(CommandResult result,
                       RunCommand(argv, "/", std::chrono::seconds(120)));
  if (result.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("pg_dump exit ", result.exit_code, ": ", result.err));
  }
  return result.out;
}

PgCluster& PgCluster::Shared() {
  // A static object, so that its destructor stops the cluster and removes its
  // directory when the test binary exits.
  static PgCluster cluster;
  static const bool started = [] {
    // tools/test starts one cluster for every test process; use it rather
    // than paying for an initdb per process.
    if (const char* port = getenv("RIO_TEST_PG_PORT"); port && *port) {
      cluster.port_ = std::atoi(port);
      cluster.running_ = true;
      cluster.owner_pid_ = -1;  // not ours to stop or remove
      return true;
    }
    const absl::Status status = cluster.Start();
    if (!status.ok()) {
      std::fprintf(stderr, "testkit: cannot start the shared PostgreSQL: %s\n",
                   std::string(status.message()).c_str());
    }
    return status.ok();
  }();
  (void)started;
  return cluster;
}

// ---------------------------------------------------------------------------
// ServerProcess

namespace {

constexpr char kReadyPrefix[] = "rio-server: ready ";
// What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer print
// when a sanitized rio-server (tools/test's build-asan/) finds a bug. The
// report goes to the server's log; its exit code may never be seen, since
// most tests kill the server.
constexpr absl::string_view kSanitizerReportMarkers[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"};

// Complete lines only: the server may be half-way through writing one.
std::vector<absl::string_view> CompleteLines(absl::string_view text) {
  const size_t end = text.rfind('\n');
  if (end == absl::string_view::npos) return {};
  return absl::StrSplit(text.substr(0, end), '\n');
}

// Parses "rio-server: ready grpc=HOST:PORT http=HOST:PORT".
bool ParseReadyLine(absl::string_view line, std::string* grpc_address,
                    std::string* http_address) {
  if (!absl::ConsumePrefix(&line, kReadyPrefix)) return false;
  for (absl::string_view field :
       absl::StrSplit(line, ' ', absl::SkipWhitespace())) {
    if (absl::ConsumePrefix(&field, "grpc=")) {
      *grpc_address = std::string(field);
    } else if (absl::ConsumePrefix(&field, "http=")) {
      *http_address = std::string(field);
    }
  }
  return !grpc_address->empty() && !http_address->empty();
}

std::vector<std::string> ChildEnvironment(
    const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const absl::string_view text(*entry);
    const size_t equals = text.find('=');
    if (equals == absl::string_view::npos) continue;
    merged[std::string(text.substr(0, equals))] =
        std::string(text.substr(equals + 1));
  }
  for (const auto& [name, value] : extra) merged[name] = value;
  std::vector<std::string> result;
  result.reserve(merged.size());
  for (const auto& [name, value] : merged) {
    result.push_back(absl::StrCat(name, "=", value));
  }
  return result;
}

}  // namespace

absl::StatusOr<ProgramResult> RunProgram(const std::vector<std::string>& argv,
                                         milliseconds timeout) {
  RIO_ASSIGN_OR_RETURN(CommandResult result, RunCommand(argv, "", timeout));
  return ProgramResult{result.exit_code, std::move(result.out),
                       std::move(result.err)};
}

std::string NewSecretKey() {
  std::string key(32, '\0');
  std::ifstream random("/dev/urandom", std::ios::binary);
  random.read(key.data(), static_cast<std::streamsize>(key.size()));
  return absl::Base64Escape(key);
}

absl::Status WriteSecretKeyFile(const std::string& path,
                                const std::string& text) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(ErrnoMessage("open " + path));
  const bool written =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool chmodded = fchmod(fd, 0600) == 0;
  close(fd);
  if (!written || !chmodded) {
    return absl::InternalError(ErrnoMessage("write " + path));
  }
  return absl::OkStatus();
}

namespace {

// One key file for every server this test process starts, so that servers
// started one after the other on one database open each other's values.
// Removed when the process exits.
class ProcessKeyFile {
 public:
  ~ProcessKeyFile() {
    if (!dir_.empty() && owner_pid_ == getpid()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }
  absl::StatusOr<std::string> Path() {
    if (!path_.empty()) return path_;
    RIO_ASSIGN_OR_RETURN(dir_, MakeTempDir("rio-key-"));
    owner_pid_ = getpid();
    const std::string path = dir_ + "/secret_key";
    RIO_RETURN_IF_ERROR(
        WriteSecretKeyFile(path, absl::StrCat("test ", NewSecretKey(), "\n")));
    path_ = path;
    return path_;
  }

 private:
  std::string dir_;
  std::string path_;
  pid_t owner_pid_ = 0;
};

absl::StatusOr<std::string> ProcessSecretKeyFile() {
  static ProcessKeyFile file;
  return file.Path();
}

}  // namespace

std::string ServerProcess::BinaryPath() {
  const char* from_env = getenv("RIO_SERVER_BINARY");
  if (from_env != nullptr && *from_env != '\0') return from_env;
#ifdef RIO_SERVER_BINARY_PATH
  return RIO_SERVER_BINARY_PATH;
#else
  return "";
#endif
}

ServerProcess::ServerProcess(Options options)
    : options_(std::move(options)), admin_token_(options_.admin_token) {}

ServerProcess::~ServerProcess() {
  Kill();
  std::string log = Log();
  for (absl::string_view marker : kSanitizerReportMarkers) {
    if (absl::StrContains(log, marker)) {
      ADD_FAILURE() << "rio-server's log has a sanitizer report (\"" << marker
                    << "\")";
      break;
    }
  }
  if (::testing::Test::HasFailure() && !log_path_.empty()) {
    if (!log.empty() && log.back() != '\n') log.push_back('\n');
    std::fprintf(stderr,
                 "---- rio-server log (%s) ----\n%s---- end of rio-server log "
                 "----\n",
                 log_path_.c_str(), log.c_str());
  }
  if (!log_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(log_dir_, ignored);
  }
}

absl::Status ServerProcess::Start() {
  if (pid_ > 0) {
    return absl::FailedPreconditionError("rio-server is already running");
  }
  const std::string binary = BinaryPath();
  if (binary.empty()) {
    return absl::FailedPreconditionError(
        "no rio-server binary: set RIO_SERVER_BINARY");
  }
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(ErrnoMessage("rio-server binary " + binary));
  }
  if (log_dir_.empty()) {
    RIO_ASSIGN_OR_RETURN(std::string dir, MakeTempDir("rio-server-"));
    log_dir_ = std::move(dir);
    log_path_ = log_dir_ + "/server.log";
  }

  if (options_.secret_key_file.has_value()) {
    secret_key_file_ = *options_.secret_key_file;
  } else {
    RIO_ASSIGN_OR_RETURN(secret_key_file_, ProcessSecretKeyFile());
  }

  std::vector<std::string> argv = {
      binary,        "--database_url", options_.database_url, "--listen",
      "127.0.0.1:0", "--http_listen",  "127.0.0.1:0"};
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string&>{"--tls_cert",
                                                   options_.tls_cert_file},
        {"--tls_key", options_.tls_key_file},
        {"--tls_client_ca", options_.tls_client_ca_file}}) {
    if (path.empty()) continue;
    argv.push_back(flag);
    argv.push_back(path);
  }
  if (!secret_key_file_.empty()) {
    argv.push_back("--secret_key_file");
    argv.push_back(secret_key_file_);
  }
  if (!options_.admin_token.empty()) {
    argv.push_back("--admin_token");
    argv.push_back(options_.admin_token);
  } else {
    argv.push_back("--admin_token_file=" + admin_token_file());
  }
  if (options_.allow_loopback_receivers) {
    argv.push_back(kAllowLoopbackReceivers);
  }
  argv.insert(argv.end(), options_.extra_args.begin(),
              options_.extra_args.end());
  const CStringArray args(std::move(argv));
  const CStringArray envp(ChildEnvironment(options_.env));

  // Appends, so that a restarted server keeps the earlier run's log; this
  // run's ready line is searched for after `log_start`.
  const std::streamoff log_start = FileSize(log_path_);
  const int log_fd =
      open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(ErrnoMessage("open " + log_path_));

  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    CloseFdsAbove2();
    execve(args.get()[0], args.get(), envp.get());
    ExitChildAfterExecFailure(args.get()[0]);
  }
  close(log_fd);
  if (pid < 0) return absl::InternalError(ErrnoMessage("fork"));
  pid_ = pid;
  exit_code_ = -1;
  grpc_address_.clear();
  http_address_.clear();

  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(30);
  while (true) {
    const std::string log = ReadFileFrom(log_path_, log_start);
    std::string grpc_address;
    std::string http_address;
    bool ready = false;
    for (absl::string_view line : CompleteLines(log)) {
      if (ParseReadyLine(line, &grpc_address, &http_address)) {
        ready = true;
        break;
      }
    }
    if (ready) {
      grpc_address_ = std::move(grpc_address);
      http_address_ = std::move(http_address);
      if (!options_.admin_token.empty()) return absl::OkStatus();
      // The token the server generated (or found) in its token file.
      admin_token_ = std::string(
          absl::StripAsciiWhitespace(ReadFileFrom(admin_token_file(), 0)));
      if (admin_token_.empty()) {
        return absl::InternalError(
            absl::StrCat("rio-server became ready without an admin token in ",
                         admin_token_file(), "; log:\n", Log()));
      }
      return absl::OkStatus();
    }

    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = DecodeWaitStatus(status);
      pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat("rio-server exited with code ", exit_code_,
                       " before it was ready; log:\n", Log()));
    }
    if (Clock::now() >= deadline) {
      Kill();
      return absl::DeadlineExceededError(
          "rio-server was not ready within 30 s; log:\n" + Log());
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, SIGTERM);
  const int code = WaitExit(std::chrono::seconds(30));
  if (code != -1) return code;
  std::fprintf(stderr,
               "testkit: rio-server did not exit within 30 s of SIGTERM; "
               "killing it\n");
  Kill();
  return exit_code_;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_code_ = DecodeWaitStatus(status);
  pid_ = -1;
}

int ServerProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;
  int status = 0;
  const bool exited =
      WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!exited) return -1;
  exit_code_ = DecodeWaitStatus(status);
  pid_ = -1;
  return exit_code_;
}

std::string ServerProcess::Log() const {
  return log_path_.empty() ? "" : ReadFileFrom(log_path_, 0);
}

std::shared_ptr<grpc::Channel> ServerProcess::Channel() const {
  if (options_.channel_credentials == nullptr) {
    return grpc::CreateChannel(grpc_address_,
                               grpc::InsecureChannelCredentials());
  }
  grpc::ChannelArguments args;
  if (!options_.channel_server_name.empty()) {
    args.SetSslTargetNameOverride(options_.channel_server_name);
  }
  return grpc::CreateCustomChannel(grpc_address_, options_.channel_credentials,
                                   args);
}

absl::StatusOr<std::unique_ptr<TestCertificates>> TestCertificates::Make() {
  RIO_ASSIGN_OR_RETURN(std::string dir, MakeTempDir("rio-certs-"));
  std::unique_ptr<TestCertificates> certificates(
      new TestCertificates(std::move(dir)));
  RIO_ASSIGN_OR_RETURN(
      const CommandResult made,
      RunCommand({"/bin/sh", RIO_TESTKIT_DIR "/make_test_certs.sh",
                  certificates->dir_},
                 "", std::chrono::seconds(60)));
  if (made.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("make_test_certs.sh failed with exit code ",
                     made.exit_code, ":\n", made.out, made.err));
  }
  return certificates;
}

TestCertificates::~TestCertificates() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TestCertificates::Path(const std::string& name) const {
  return absl::StrCat(dir_, "/", name);
}

absl::Status TestCertificates::Install(const std::string& name) const {
  for (const char* extension : {".pem", ".key"}) {
    std::error_code error;
    std::filesystem::copy_file(
        Path(name + extension), Path(std::string("active") + extension),
        std::filesystem::copy_options::overwrite_existing, error);
    if (error) {
      return absl::InternalError(absl::StrCat(
          "cannot install ", name, extension, ": ", error.message()));
    }
  }
  return absl::OkStatus();
}

std::string TestCertificates::Read(const std::string& name) const {
  std::ifstream in(Path(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << Path(name);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

}  // namespace rio::testkit
