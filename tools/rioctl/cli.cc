#include "tools/rioctl/cli.h"

#include <algorithm>
#include <map>
#include <ostream>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

#ifndef RIO_VERSION
#define RIO_VERSION "0.0.0"
#endif

namespace rio::rioctl {
namespace {

constexpr char kUsagePayload[] = "type.googleapis.com/rio.rioctl.Usage";

struct Group {
  const char* name;
  const char* summary;
  std::vector<const char*> aliases;
  // Words accepted for one of the group's commands, after VerbAliases.
  std::map<std::string, std::string> verb_aliases = {};
};

// Command groups, in the order help lists them.
const std::vector<Group>& Groups() {
  static const auto* groups = new std::vector<Group>{
      {"project", "Create, show, rename and delete projects", {"projects"}},
      {"sender", "Credentials allowed to emit into a project", {"senders"}},
      {"handler", "Webhooks called for a project's events", {"handlers"}},
      {"deliveries",
       "Find deliveries and look at their attempts",
       {"delivery"}},
      {"recovery", "Bulk re-sends started by `rioctl recover`", {"recoveries"}},
      {"token",
       "Scoped access tokens for the admin services",
       {"tokens"},
       {{"delete", "revoke"}}},
  };
  return *groups;
}

// Words accepted for a command's last word.
const std::map<std::string, std::string>& VerbAliases() {
  static const auto* aliases = new std::map<std::string, std::string>{
      {"ls", "list"}, {"rm", "delete"}, {"describe", "show"}};
  return *aliases;
}

// `word`, the next word of a command's name after `words`, canonical.
std::string Canonical(const std::string& word,
                      const std::vector<std::string>& words) {
  if (words.empty()) {
    for (const Group& g : Groups()) {
      for (const char* alias : g.aliases) {
        if (word == alias) return g.name;
      }
    }
    return word;
  }
  auto it = VerbAliases().find(word);
  std::string verb = it == VerbAliases().end() ? word : it->second;
  for (const Group& g : Groups()) {
    if (words.size() != 1 || words[0] != g.name) continue;
    auto own = g.verb_aliases.find(verb);
    if (own != g.verb_aliases.end()) return own->second;
  }
  return verb;
}

std::string FlagHelp(const std::vector<FlagDef>& flags) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const FlagDef& f : flags) {
    std::string left =
        f.shorthand != 0
            ? absl::StrCat("-", std::string(1, f.shorthand), ", --", f.name)
            : absl::StrCat("    --", f.name);
    if (f.kind != FlagDef::Kind::kBool) {
      absl::StrAppend(&left, " ",
                      f.value_name.empty() ? "VALUE" : f.value_name);
    }
    width = std::max(width, left.size());
    rows.emplace_back(left, f.help);
  }
  std::string out;
  for (const auto& [left, help] : rows) {
    absl::StrAppend(&out, "  ", left, std::string(width - left.size() + 3, ' '),
                    help, "\n");
  }
  return out;
}

std::string CommandHelp(const CommandSpec& c) {
  std::string out = absl::StrCat(c.summary, "\n\nUsage:\n  rioctl ", c.path);
  if (!c.usage.empty()) absl::StrAppend(&out, " ", c.usage);
  if (!c.flags.empty()) absl::StrAppend(&out, " [flags]");
  absl::StrAppend(&out, "\n");
  if (!c.help.empty()) absl::StrAppend(&out, "\n", c.help, "\n");
  if (!c.flags.empty()) absl::StrAppend(&out, "\nFlags:\n", FlagHelp(c.flags));
  absl::StrAppend(&out, "\nGlobal flags:\n", FlagHelp(GlobalFlags()));
  return out;
}

std::string GroupHelp(const Group& group,
                      const std::vector<CommandSpec>& commands) {
  std::string out = absl::StrCat(group.summary, "\n\nUsage:\n  rioctl ",
                                 group.name, " COMMAND [flags]\n\nCommands:\n");
  size_t width = 0;
  for (const CommandSpec& c : commands) {
    if (absl::StartsWith(c.path, absl::StrCat(group.name, " "))) {
      width = std::max(width, c.path.size() - strlen(group.name) - 1);
    }
  }
  for (const CommandSpec& c : commands) {
    if (!absl::StartsWith(c.path, absl::StrCat(group.name, " "))) continue;
    std::string verb = c.path.substr(strlen(group.name) + 1);
    absl::StrAppend(&out, "  ", verb, std::string(width - verb.size() + 3, ' '),
                    c.summary, "\n");
  }
  absl::StrAppend(&out, "\nRun 'rioctl ", group.name,
                  " COMMAND --help' for a command's flags.\n");
  return out;
}

std::string RootHelp(const std::vector<CommandSpec>& commands) {
  std::string out =
      "rioctl administers Rio: projects, senders and handlers, declarative\n"
      "project files, test emits, and the triage of failing webhooks.\n\n"
      "Usage:\n  rioctl COMMAND [SUBCOMMAND] [ARGS] [flags]\n\nCommands:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const Group& g : Groups()) rows.emplace_back(g.name, g.summary);
  for (const CommandSpec& c : commands) {
    if (c.path.find(' ') == std::string::npos) {
      rows.emplace_back(c.path, c.summary);
    }
  }
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [name, summary] : rows) {
    absl::StrAppend(&out, "  ", name, std::string(width - name.size() + 3, ' '),
                    summary, "\n");
  }
  absl::StrAppend(
      &out, "\nConnection: --server (or RIO_SERVER, default ", kDefaultServer,
      ") and --token (or RIO_ADMIN_TOKEN).\n"
      "Exit codes: 0 done, 1 the server said no or could not be reached (or "
      "a file is invalid), 2 bad usage.\n\nGlobal flags:\n",
      FlagHelp(GlobalFlags()),
      "\nRun 'rioctl COMMAND --help' for more about a command.\n");
  return out;
}

const Group* FindGroup(const std::string& name) {
  for (const Group& g : Groups()) {
    if (name == g.name) return &g;
  }
  return nullptr;
}

std::string ErrorLine(const absl::Status& status) {
  std::string message(status.message());
  if (IsServerError(status)) {
    return absl::StrCat("error: ", message, " (",
                        absl::StatusCodeToString(status.code()), ")\n");
  }
  return absl::StrCat("error: ", message, "\n");
}

}  // namespace

absl::Status UsageError(const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

const std::vector<FlagDef>& GlobalFlags() {
  using K = FlagDef::Kind;
  static const auto* flags = new std::vector<FlagDef>{
      {"server", 's', K::kValue, "ADDRESS",
       absl::StrCat("Rio's gRPC address, host:port or rios://host:port for "
                    "TLS (env RIO_SERVER; default ",
                    kDefaultServer, ")")},
      {"token", 0, K::kValue, "TOKEN",
       "admin token or access token (env RIO_ADMIN_TOKEN)"},
      {"tls", 0, K::kBool, "", "connect with TLS (env RIO_TLS=1)"},
      {"tls-ca", 0, K::kValue, "FILE",
       "PEM root certificates to trust for TLS (env RIO_TLS_CA; default: "
       "the system's)"},
      {"ca-file", 0, K::kValue, "FILE",
       "the same as --tls-ca (env RIO_CA_FILE)"},
      {"tls-server-name", 0, K::kValue, "NAME",
       "name the server's certificate must carry, if not the host (env "
       "RIO_TLS_SERVER_NAME)"},
      {"tls-cert", 0, K::kValue, "FILE",
       "PEM client certificate, for servers that require one (mutual TLS; "
       "env RIO_TLS_CLIENT_CERT)"},
      {"tls-key", 0, K::kValue, "FILE",
       "PEM private key of --tls-cert (env RIO_TLS_CLIENT_KEY)"},
      {"request-timeout", 0, K::kValue, "DURATION",
       "deadline of each call to the server (default 10s)"},
      {"output", 'o', K::kValue, "FORMAT", "table (default), json or yaml"},
      {"color", 0, K::kValue, "WHEN",
       "auto (default: when printing to a terminal and NO_COLOR is unset), "
       "always or never"},
      {"help", 'h', K::kBool, "", "show help"},
  };
  return *flags;
}

Context::Context(const CommandSpec& command, Args args, Io& io)
    : command_(command), args_(std::move(args)), io_(io) {}

std::string Context::FlagOrEnv(const std::string& flag,
                               const std::string& env) const {
  if (args_.Has(flag)) return args_.Get(flag);
  std::optional<std::string> value = io_.getenv(env);
  return value.value_or("");
}

absl::Status Context::Init() {
  absl::StatusOr<Format> format = ParseFormat(args_.Get("output", "table"));
  if (!format.ok()) return UsageError(std::string(format.status().message()));
  format_ = *format;
  std::string colour = args_.Get("color", "auto");
  if (colour == "always") {
    colour_ = true;
  } else if (colour == "never") {
    colour_ = false;
  } else if (colour == "auto") {
    colour_ = io_.out_is_terminal && !io_.getenv("NO_COLOR").has_value();
  } else {
    return UsageError(absl::StrCat(
        "--color must be auto, always or never (got \"", colour, "\")"));
  }
  std::string server = FlagOrEnv("server", "RIO_SERVER");
  connection_options_.server = server.empty() ? kDefaultServer : server;
  connection_options_.token = FlagOrEnv("token", "RIO_ADMIN_TOKEN");
  std::string tls_env = io_.getenv("RIO_TLS").value_or("");
  connection_options_.tls = args_.Has("tls")
                                ? args_.Bool("tls")
                                : (tls_env == "1" || tls_env == "true");
  connection_options_.ca_file = FlagOrEnv("tls-ca", "RIO_TLS_CA");
  if (connection_options_.ca_file.empty()) {
    connection_options_.ca_file = FlagOrEnv("ca-file", "RIO_CA_FILE");
  }
  connection_options_.tls_server_name =
      FlagOrEnv("tls-server-name", "RIO_TLS_SERVER_NAME");
  connection_options_.cert_file = FlagOrEnv("tls-cert", "RIO_TLS_CLIENT_CERT");
  connection_options_.key_file = FlagOrEnv("tls-key", "RIO_TLS_CLIENT_KEY");
  if (connection_options_.cert_file.empty() !=
      connection_options_.key_file.empty()) {
    return UsageError(
        "--tls-cert and --tls-key (RIO_TLS_CLIENT_CERT, RIO_TLS_CLIENT_KEY) "
        "go together: a client certificate needs its private key");
  }
  if (args_.Has("request-timeout")) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(args_.Get("request-timeout"));
    if (!ms.ok() || *ms <= 0) {
      return UsageError(
          absl::StrCat("--request-timeout: ",
                       ms.ok() ? "must be positive" : ms.status().message()));
    }
    connection_options_.timeout = absl::Milliseconds(*ms);
  }
  absl::StatusOr<Target> target = ParseServer(connection_options_.server);
  if (!target.ok()) return UsageError(std::string(target.status().message()));
  return absl::OkStatus();
}

absl::StatusOr<Connection*> Context::Connect() {
  if (connection_ == nullptr) {
    absl::StatusOr<std::unique_ptr<Connection>> connection =
        Connection::Open(connection_options_);
    if (!connection.ok()) return connection.status();
    connection_ = *std::move(connection);
  }
  return connection_.get();
}

std::string Context::Project() const {
  return FlagOrEnv("project", "RIO_PROJECT");
}

absl::StatusOr<std::string> Context::RequireProject() const {
  std::string project = Project();
  if (project.empty()) {
    return UsageError("--project (-p) is required (or set RIO_PROJECT)");
  }
  return project;
}

void Context::Print(const google::protobuf::Message& message,
                    const std::function<std::string()>& table) {
  switch (format_) {
    case Format::kJson:
      out() << ToJson(message);
      break;
    case Format::kYaml:
      out() << ToYaml(message);
      break;
    case Format::kTable:
      out() << table();
      break;
  }
}

void Context::PrintDocument(const std::string& json,
                            const std::function<std::string()>& table) {
  switch (format_) {
    case Format::kJson:
      out() << PrettyJson(json);
      break;
    case Format::kYaml:
      out() << JsonToYaml(json);
      break;
    case Format::kTable:
      out() << table();
      break;
  }
}

void Context::PrintList(
    const std::vector<const google::protobuf::Message*>& messages,
    const std::function<std::string()>& table) {
  switch (format_) {
    case Format::kJson:
      out() << ToJsonArray(messages);
      break;
    case Format::kYaml:
      out() << ToYamlArray(messages);
      break;
    case Format::kTable:
      out() << table();
      break;
  }
}

std::vector<CommandSpec> AllCommands() {
  std::vector<CommandSpec> commands;
  AddAdminCommands(&commands);
  AddApplyCommands(&commands);
  AddEmitCommands(&commands);
  AddDeliveryCommands(&commands);
  AddAccessCommands(&commands);
  commands.push_back(CommandSpec{"version",
                                 "",
                                 "Print rioctl's version",
                                 "",
                                 {},
                                 0,
                                 0,
                                 [](Context& ctx) -> absl::Status {
                                   ctx.out()
                                       << "rioctl " << RIO_VERSION << "\n";
                                   return absl::OkStatus();
                                 }});
  return commands;
}

int Run(const std::vector<std::string>& argv, Io& io) {
  const std::vector<CommandSpec> commands = AllCommands();
  std::vector<std::string> words;  // The command's name, canonical.
  std::vector<std::string> rest;   // Everything else, for ParseArgs.
  bool help = false;
  bool naming = true;  // Still reading the command's name.
  bool flags_done = false;
  std::vector<std::string> tokens = argv;
  if (!tokens.empty() && tokens[0] == "help") {
    help = true;
    tokens.erase(tokens.begin());
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    if (!flags_done && token == "--") {
      flags_done = true;
      rest.push_back(token);
      naming = false;
      continue;
    }
    if (!flags_done && token.size() > 1 && token[0] == '-') {
      std::optional<std::string> inline_value;
      const FlagDef* global = MatchFlag(token, GlobalFlags(), &inline_value);
      if (global != nullptr && global->name == "help") {
        help = true;
        continue;
      }
      rest.push_back(token);
      if (global != nullptr && global->kind != FlagDef::Kind::kBool &&
          !inline_value.has_value() && i + 1 < tokens.size()) {
        rest.push_back(tokens[++i]);
      }
      continue;
    }
    if (naming) {
      std::string word = Canonical(token, words);
      std::string candidate =
          words.empty() ? word
                        : absl::StrCat(absl::StrJoin(words, " "), " ", word);
      bool prefix_of_some = false;
      for (const CommandSpec& c : commands) {
        if (c.path == candidate ||
            absl::StartsWith(c.path, absl::StrCat(candidate, " "))) {
          prefix_of_some = true;
        }
      }
      if (prefix_of_some) {
        words.push_back(word);
        continue;
      }
      naming = false;
    }
    rest.push_back(token);
  }

  const std::string path = absl::StrJoin(words, " ");
  const CommandSpec* command = nullptr;
  for (const CommandSpec& c : commands) {
    if (c.path == path) command = &c;
  }
  if (command == nullptr) {
    const Group* group = words.empty() ? nullptr : FindGroup(words[0]);
    std::string help_text =
        group != nullptr ? GroupHelp(*group, commands) : RootHelp(commands);
    if (help) {
      *io.out << help_text;
      return 0;
    }
    std::string unknown;
    for (const std::string& r : rest) {
      if (!r.empty() && r[0] != '-') {
        unknown = r;
        break;
      }
    }
    if (!unknown.empty()) {
      *io.err << "error: unknown command \"" << unknown << "\" for \"rioctl"
              << (path.empty() ? "" : " ") << path << "\"\n"
              << "Run 'rioctl" << (path.empty() ? "" : " ") << path
              << " --help' for usage.\n";
    } else {
      *io.err << help_text;
    }
    return 2;
  }
  if (help) {
    *io.out << CommandHelp(*command);
    return 0;
  }

  std::vector<FlagDef> flags = command->flags;
  for (const FlagDef& f : GlobalFlags()) flags.push_back(f);
  auto usage = [&](const std::string& message) {
    *io.err << "error: " << message << "\nRun 'rioctl " << command->path
            << " --help' for usage.\n";
    return 2;
  };
  absl::StatusOr<Args> args = ParseArgs(rest, flags);
  if (!args.ok()) return usage(std::string(args.status().message()));
  const int n = static_cast<int>(args->positional().size());
  if (n < command->min_args) {
    return usage(
        absl::StrCat("\"rioctl ", command->path, "\" needs ",
                     command->usage.empty() ? "arguments" : command->usage));
  }
  if (command->max_args >= 0 && n > command->max_args) {
    return usage(absl::StrCat("unexpected argument \"",
                              args->positional()[command->max_args],
                              "\" for \"rioctl ", command->path, "\""));
  }
  Context context(*command, *std::move(args), io);
  absl::Status status = context.Init();
  if (status.ok()) status = command->run(context);
  if (status.ok()) return 0;
  if (IsUsageError(status)) return usage(std::string(status.message()));
  io.out->flush();
  *io.err << ErrorLine(status);
  return 1;
}

}  // namespace rio::rioctl
