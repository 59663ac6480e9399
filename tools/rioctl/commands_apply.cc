// rioctl apply -f FILE: makes one project — its senders, events and
// handlers — match a project file (see project_file.h and plan.h).
//
// The file is read and validated completely before anything is sent, so a
// bad file changes nothing. Then the server's state is read, the plan
// computed and, unless --dry-run, carried out change by change in plan
// order, each printed as it is made; the first refusal stops the run.
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/empty.pb.h"
#include "server/util/status_macros.h"
#include "tools/rioctl/certificate.h"
#include "tools/rioctl/cli.h"
#include "tools/rioctl/plan.h"
#include "tools/rioctl/project_file.h"

namespace rio::rioctl {
namespace {

using K = FlagDef::Kind;

// What carrying out one change revealed (shown once).
struct Outcome {
  std::string dsn;
  std::string secret;
};

absl::StatusOr<std::string> ReadInput(Context& ctx, const std::string& path) {
  if (path == "-") {
    std::stringstream text;
    text << ctx.io().in->rdbuf();
    return text.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<ServerState> ReadServerState(Connection* rio,
                                            const std::string& project) {
  ServerState state;
  v1::GetProjectRequest get;
  get.set_slug(project);
  v1::Project current;
  absl::Status found = rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().GetProject(c, get, &current);
  });
  if (absl::IsNotFound(found)) return state;
  RIO_RETURN_IF_ERROR(found);
  state.project = current;

  v1::ListSendersRequest senders_req;
  senders_req.set_project(project);
  v1::ListSendersResponse senders;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().ListSenders(c, senders_req, &senders);
  }));
  state.senders.assign(senders.senders().begin(), senders.senders().end());

  v1::ListHandlersRequest handlers_req;
  handlers_req.set_project(project);
  v1::ListHandlersResponse handlers;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().ListHandlers(c, handlers_req, &handlers);
  }));
  state.handlers.assign(handlers.handlers().begin(), handlers.handlers().end());
  return state;
}

absl::Status Execute(Connection* rio, Change* change, Outcome* outcome) {
  google::protobuf::Empty empty;
  using A = Change::Action;
  using Kd = Change::Kind;
  switch (change->kind) {
    case Kd::kProject: {
      v1::Project project;
      if (change->action == A::kCreate) {
        return rio->Call([&](grpc::ClientContext* c) {
          return rio->projects().CreateProject(c, change->create_project,
                                               &project);
        });
      }
      return rio->Call([&](grpc::ClientContext* c) {
        return rio->projects().UpdateProject(c, change->update_project,
                                             &project);
      });
    }
    case Kd::kSender: {
      if (change->action == A::kCreate) {
        v1::CreateSenderResponse resp;
        RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
          return rio->projects().CreateSender(c, change->create_sender, &resp);
        }));
        outcome->dsn = resp.dsn();
        return absl::OkStatus();
      }
      return rio->Call([&](grpc::ClientContext* c) {
        return rio->projects().DeleteSender(c, change->delete_sender, &empty);
      });
    }
    case Kd::kHandler: {
      v1::Handler handler;
      if (change->action == A::kCreate) {
        RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
          return rio->handlers().CreateHandler(c, change->create_handler,
                                               &handler);
        }));
        change->id = handler.id();
        outcome->secret = handler.secret();
        return absl::OkStatus();
      }
      if (change->action == A::kUpdate) {
        return rio->Call([&](grpc::ClientContext* c) {
          return rio->handlers().UpdateHandler(c, change->update_handler,
                                               &handler);
        });
      }
      return rio->Call([&](grpc::ClientContext* c) {
        return rio->handlers().DeleteHandler(c, change->delete_handler, &empty);
      });
    }
  }
  return absl::InternalError("unknown change");
}

std::string ChangeJson(const Change& change, const Outcome& outcome) {
  JsonObject json;
  json.Add("action", ActionName(change.action))
      .Add("kind", KindName(change.kind))
      .Add("name", change.name);
  if (!change.id.empty()) json.Add("id", change.id);
  json.AddRaw("details", JsonStringArray(change.details));
  if (!outcome.dsn.empty()) json.Add("dsn", outcome.dsn);
  if (!outcome.secret.empty()) json.Add("secret", outcome.secret);
  return json.str();
}

std::string Counts(const Plan& plan, bool done) {
  int c = plan.Count(Change::Action::kCreate),
      u = plan.Count(Change::Action::kUpdate),
      d = plan.Count(Change::Action::kDelete);
  return done ? absl::StrCat(c, " created, ", u, " updated, ", d, " deleted")
              : absl::StrCat(c, " to create, ", u, " to update, ", d,
                             " to delete");
}

absl::Status Apply(Context& ctx) {
  if (!ctx.args().Has("filename")) {
    return UsageError("-f FILE is required (- reads standard input)");
  }
  const std::string path = ctx.args().Get("filename");
  absl::StatusOr<std::map<std::string, std::string>> vars =
      ParseVarFlags(ctx.args().GetAll("var"));
  if (!vars.ok()) return UsageError(std::string(vars.status().message()));
  RIO_ASSIGN_OR_RETURN(std::string text, ReadInput(ctx, path));
  // Placeholders see --var and RIO_VAR_* only: never RIO_ADMIN_TOKEN.
  const std::string shown_path = path == "-" ? "<stdin>" : path;
  RIO_ASSIGN_OR_RETURN(
      ProjectFile file,
      ParseProjectFile(
          shown_path, text,
          PlaceholderVariables(*std::move(vars), [&](const std::string& name) {
            return ctx.io().getenv(name);
          })));
  // Relative to the project file's directory (see project_file.h).
  RIO_RETURN_IF_ERROR(ReadClientCertificates(
      shown_path,
      [](const std::string& pem_path) { return ReadPemFile("", pem_path); },
      &file));
  for (const std::string& warning : file.warnings) {
    ctx.err() << "warning: " << warning << "\n";
  }
  const bool dry_run = ctx.args().Bool("dry-run");
  const bool prune = ctx.args().Bool("prune");
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(ServerState state, ReadServerState(rio, file.project));
  Plan plan =
      ComputePlan(file, state, prune, ctx.args().Bool("rewrite-headers"),
                  ctx.args().Bool("rewrite-client-keys"));
  const bool text_output = ctx.format() == Format::kTable;
  std::ostream& out = ctx.out();

  std::vector<std::string> change_json;
  absl::Status failure;
  size_t done = 0;
  for (Change& change : plan.changes) {
    Outcome outcome;
    if (!dry_run) {
      failure = Execute(rio, &change, &outcome);
      if (!failure.ok()) break;
      ++done;
    }
    change_json.push_back(ChangeJson(change, outcome));
    if (!text_output) continue;
    out << Describe(change) << "\n";
    if (!outcome.dsn.empty()) {
      out << "    DSN: " << outcome.dsn << "  (shown only now)\n";
    }
    if (!outcome.secret.empty()) {
      out << "    secret: " << outcome.secret << "  (shown only now)\n";
    }
  }
  if (!failure.ok()) {
    if (text_output) {
      out << "Stopped after " << done << " of " << plan.changes.size()
          << " changes.\n";
    }
    return failure;
  }

  std::vector<std::string> kept_json;
  for (const Change& kept : plan.kept)
    kept_json.push_back(ChangeJson(kept, {}));
  if (!text_output) {
    ctx.PrintDocument(JsonObject()
                          .Add("project", file.project)
                          .Add("dry_run", dry_run)
                          .AddRaw("changes", JsonArray(change_json))
                          .AddRaw("kept", JsonArray(kept_json))
                          .str(),
                      nullptr);
    return absl::OkStatus();
  }
  if (!plan.kept.empty()) {
    out << "Not in the file, kept (--prune deletes them):\n";
    for (const Change& kept : plan.kept) {
      out << "  " << KindName(kept.kind) << " " << kept.name;
      if (!kept.id.empty()) out << " [" << kept.id << "]";
      out << "\n";
    }
  }
  if (plan.changes.empty()) {
    out << "Project " << file.project << " is up to date.\n";
  } else if (dry_run) {
    out << "Dry run: " << Counts(plan, false) << "; nothing was changed.\n";
  } else {
    out << "Applied: " << Counts(plan, true) << ".\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddApplyCommands(std::vector<CommandSpec>* commands) {
  commands->push_back(
      {"apply",
       "-f FILE",
       "Make a project match a project file (YAML)",
       "Creates the project if needed, then its senders and handlers, and "
       "updates handlers whose settings differ. Idempotent: a second apply "
       "changes nothing. New senders' DSNs and new handlers' secrets are "
       "printed once. Objects the file no longer has are kept unless "
       "--prune.\n\n"
       "The file, in the original Rio's shape:\n\n"
       "  project: example\n"
       "  senders:\n"
       "    - slug: example\n"
       "  actions:\n"
       "    - slug: example\n"
       "      webhooks:\n"
       "        - method: POST\n"
       "          url: \"http://127.0.0.1:5000\"\n"
       "          headers: {X-Team: antispam}   # optional\n"
       "          content_type: json            # form (default) or json\n"
       "          timeout: 5s                   # default 15s\n"
       "          enabled: true                 # unset: left as it is\n"
       "          client_certificate_file: client.pem  # mutual TLS: both\n"
       "          client_key_file: client.key          # or neither\n\n"
       "`{{ NAME }}` in a value is replaced by the value of --var "
       "NAME=VALUE, else of the environment variable RIO_VAR_NAME; no other "
       "environment variable is read, so a file cannot copy your "
       "RIO_ADMIN_TOKEN anywhere. A sender's `token:` is ignored (with a "
       "warning): Rio makes tokens itself.\n\n"
       "Header values are write-only: the server shows only their names, "
       "so apply compares names. To send changed values under unchanged "
       "names, add --rewrite-headers (every matched handler with headers "
       "gets them again).\n\n"
       "client_certificate_file and client_key_file name PEM files, relative "
       "to the project file's directory: the client certificate a handler "
       "presents to receivers that require mutual TLS, and its private key. "
       "apply compares the certificate with the server's and sends the key "
       "with a changed certificate; the key itself is write-only, so to send "
       "a new key under an unchanged certificate add --rewrite-client-keys. "
       "A handler without the two fields has its certificate removed.\n\n"
       "Examples:\n"
       "  rioctl apply -f project.yml --dry-run\n"
       "  rioctl apply -f project.yml --var HOST=10.0.0.2:5000\n"
       "  RIO_VAR_HOST=10.0.0.2:5000 rioctl apply -f project.yml\n"
       "  rioctl apply -f project.yml --prune",
       {{"filename", 'f', K::kValue, "FILE",
         "the project file (- for standard input)"},
        {"var", 0, K::kRepeat, "NAME=VALUE",
         "the value of {{ NAME }} in the file (repeatable)"},
        {"dry-run", 0, K::kBool, "", "print the plan; change nothing"},
        {"prune", 0, K::kBool, "",
         "delete senders and handlers that the file does not have"},
        {"rewrite-headers", 0, K::kBool, "",
         "send the file's header values to every matched handler that has "
         "headers (values cannot be compared)"},
        {"rewrite-client-keys", 0, K::kBool, "",
         "send the file's client certificate and key again to every matched "
         "handler the file gives one (keys cannot be compared)"}},
       0,
       0,
       Apply});
}

}  // namespace rio::rioctl
