// rioctl: the command-line tool for Rio. main() only wires the process
// (streams, terminal detection, environment, clock, signals) to cli::Run.
#include <openssl/crypto.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "grpc/support/log.h"
#include "tools/rioctl/cli.h"

namespace {

std::atomic<bool> interrupted{false};

void OnSignal(int) { interrupted.store(true); }

// rioctl reports errors itself, one line each; gRPC's own log lines (e.g. a
// failed TLS handshake) would only repeat them. GRPC_VERBOSITY brings them
// back for debugging.
void DropGrpcLog(gpr_log_func_args*) {}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's threads outlive main(): OpenSSL's own atexit clean-up would free
  // state they may still use (and leak the error queue of any that exits
  // after it). The process's end frees everything anyway.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if (std::getenv("GRPC_VERBOSITY") == nullptr)
    gpr_set_log_function(DropGrpcLog);

  rio::rioctl::Io io;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.in = &std::cin;
  io.out_is_terminal = isatty(STDOUT_FILENO) == 1;
  io.err_is_terminal = isatty(STDERR_FILENO) == 1;
  io.in_is_terminal = isatty(STDIN_FILENO) == 1;
  io.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  io.now = [] { return absl::Now(); };
  io.interrupted = [] { return interrupted.load(); };
  const int code =
      rio::rioctl::Run(std::vector<std::string>(argv + 1, argv + argc), io);
  std::cout.flush();
  return code;
}
