// rioctl's command tree and what runs a command: global flags, help, exit
// codes. Each command is a CommandSpec whose Run gets a Context (its flags
// and arguments, the connection, the output format and the process's
// streams) and returns a status:
//
//   OK                          exit 0
//   UsageError(...)             exit 2: "error: ..." and a --help hint
//   anything else               exit 1: "error: MESSAGE", with "(CODE)" when
//                               the server said no
//
// Thread-compatible: one Run per process (tests run the binary).
#ifndef RIO_TOOLS_RIOCTL_CLI_H_
#define RIO_TOOLS_RIOCTL_CLI_H_

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "tools/rioctl/args.h"
#include "tools/rioctl/connection.h"
#include "tools/rioctl/output.h"

namespace rio::rioctl {

// What a command may touch outside itself, so tests and main() can differ.
struct Io {
  std::ostream* out;
  std::ostream* err;
  std::istream* in;
  bool out_is_terminal = false;
  bool err_is_terminal = false;
  bool in_is_terminal = false;
  std::function<std::optional<std::string>(const std::string&)> getenv;
  std::function<absl::Time()> now;
  // Set by SIGINT/SIGTERM: long-running commands (tail, recover) stop.
  std::function<bool()> interrupted;
};

// A status that makes rioctl exit 2 with a usage hint.
absl::Status UsageError(const std::string& message);
bool IsUsageError(const absl::Status& status);

class Context;

struct CommandSpec {
  // Words that name it: "project create".
  std::string path;
  // Positional arguments for the usage line: "SLUG".
  std::string usage;
  std::string summary;
  // Longer help: what it does, examples.
  std::string help;
  std::vector<FlagDef> flags;
  int min_args = 0;
  int max_args = 0;  // -1: any number.
  std::function<absl::Status(Context&)> run;
};

class Context {
 public:
  Context(const CommandSpec& command, Args args, Io& io);

  const CommandSpec& command() const { return command_; }
  const Args& args() const { return args_; }
  const std::string& arg(size_t i) const { return args_.positional()[i]; }
  Io& io() { return io_; }
  std::ostream& out() { return *io_.out; }
  std::ostream& err() { return *io_.err; }
  Format format() const { return format_; }
  absl::Time now() const { return io_.now(); }
  bool colour() const { return colour_; }

  // Reads the global flags (--output, --timeout, --color, connection).
  absl::Status Init();
  // The connection to the server, opened on first use.
  absl::StatusOr<Connection*> Connect();
  // Where the server is and how to reach it (from the global flags).
  const ConnectionOptions& connection_options() const {
    return connection_options_;
  }

  // A flag's value, or the environment variable's, or "".
  std::string FlagOrEnv(const std::string& flag, const std::string& env) const;
  // --project / -p, or $RIO_PROJECT; "" when neither.
  std::string Project() const;
  // The project, or a usage error saying it is needed.
  absl::StatusOr<std::string> RequireProject() const;

  // Prints one message (json, yaml), or `table` for --output table.
  void Print(const google::protobuf::Message& message,
             const std::function<std::string()>& table);
  // Prints JSON text (json, yaml), or `table` for --output table.
  void PrintDocument(const std::string& json,
                     const std::function<std::string()>& table);
  void PrintList(const std::vector<const google::protobuf::Message*>& messages,
                 const std::function<std::string()>& table);

 private:
  const CommandSpec& command_;
  Args args_;
  Io& io_;
  Format format_ = Format::kTable;
  bool colour_ = false;
  ConnectionOptions connection_options_;
  std::unique_ptr<Connection> connection_;
};

// Global flags, accepted before or after the command's name.
const std::vector<FlagDef>& GlobalFlags();

// The command tree.
std::vector<CommandSpec> AllCommands();
void AddAdminCommands(std::vector<CommandSpec>* commands);
void AddApplyCommands(std::vector<CommandSpec>* commands);
void AddEmitCommands(std::vector<CommandSpec>* commands);
void AddDeliveryCommands(std::vector<CommandSpec>* commands);
void AddAccessCommands(std::vector<CommandSpec>* commands);

// Runs `argv` (without the program name) and returns the exit code.
int Run(const std::vector<std::string>& argv, Io& io);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_CLI_H_
