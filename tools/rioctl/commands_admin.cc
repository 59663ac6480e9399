// rioctl project|sender|handler: the ProjectService and HandlerService, one
// command per call.
#include <iostream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "server/util/status_macros.h"
#include "tools/rioctl/certificate.h"
#include "tools/rioctl/cli.h"
#include "tools/rioctl/plan.h"
#include "tools/rioctl/views.h"

namespace rio::rioctl {
namespace {

using K = FlagDef::Kind;

const FlagDef kProjectFlag{"project", 'p', K::kValue, "SLUG",
                           "the project (env RIO_PROJECT)"};

template <typename T>
std::vector<const google::protobuf::Message*> Pointers(
    const std::vector<T>& items) {
  std::vector<const google::protobuf::Message*> out;
  for (const T& item : items) out.push_back(&item);
  return out;
}

// --- projects ---------------------------------------------------------------

absl::Status ProjectCreate(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::CreateProjectRequest req;
  req.set_slug(ctx.arg(0));
  req.set_name(ctx.args().Get("name"));
  v1::Project project;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().CreateProject(c, req, &project);
  }));
  ctx.Print(project, [&] {
    return absl::StrCat("project ", project.slug(), " created\n");
  });
  return absl::OkStatus();
}

absl::Status ProjectGet(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::GetProjectRequest req;
  req.set_slug(ctx.arg(0));
  v1::Project project;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().GetProject(c, req, &project);
  }));
  ctx.Print(project, [&] { return ProjectFields(project, ctx.now()); });
  return absl::OkStatus();
}

absl::Status ProjectList(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  std::vector<v1::Project> projects;
  v1::ListProjectsRequest req;
  req.set_page_size(1000);
  do {
    v1::ListProjectsResponse resp;
    RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
      return rio->projects().ListProjects(c, req, &resp);
    }));
    for (auto& p : *resp.mutable_projects()) projects.push_back(std::move(p));
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  ctx.PrintList(Pointers(projects), [&]() -> std::string {
    if (projects.empty()) return "No projects.\n";
    return ProjectsTable(projects, ctx.now());
  });
  return absl::OkStatus();
}

absl::Status ProjectUpdate(Context& ctx) {
  if (!ctx.args().Has("name")) {
    return UsageError("nothing to change: give --name");
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::UpdateProjectRequest req;
  req.set_slug(ctx.arg(0));
  req.set_name(ctx.args().Get("name"));
  v1::Project project;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().UpdateProject(c, req, &project);
  }));
  ctx.Print(project, [&] {
    return absl::StrCat("project ", project.slug(), " updated\n");
  });
  return absl::OkStatus();
}

absl::Status ProjectDelete(Context& ctx) {
  const std::string& slug = ctx.arg(0);
  if (!ctx.args().Bool("yes")) {
    if (!ctx.io().in_is_terminal) {
      return UsageError(absl::StrCat(
          "deleting project ", slug,
          " deletes its senders, handlers and history; pass --yes to "
          "confirm"));
    }
    ctx.err() << "Deleting project " << slug
              << " deletes its senders, handlers and history.\n"
              << "Type the project's slug to confirm: " << std::flush;
    std::string answer;
    std::getline(*ctx.io().in, answer);
    if (absl::StripAsciiWhitespace(answer) != slug) {
      return absl::CancelledError("not confirmed; nothing was deleted");
    }
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::DeleteProjectRequest req;
  req.set_slug(slug);
  google::protobuf::Empty empty;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().DeleteProject(c, req, &empty);
  }));
  ctx.PrintDocument(
      JsonObject()
          .Add("kind", "project")
          .Add("slug", slug)
          .Add("deleted", true)
          .str(),
      [&] { return absl::StrCat("project ", slug, " deleted\n"); });
  return absl::OkStatus();
}

// --- senders ----------------------------------------------------------------

absl::Status SenderCreate(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(std::string project, ctx.RequireProject());
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::CreateSenderRequest req;
  req.set_project(project);
  req.set_name(ctx.arg(0));
  v1::CreateSenderResponse resp;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().CreateSender(c, req, &resp);
  }));
  ctx.Print(resp, [&] {
    return absl::StrCat(
        "sender ", resp.sender().name(), " created in project ", project,
        "\nDSN (shown only now; Rio keeps only a hash of its token):\n",
        resp.dsn(), "\n");
  });
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Sender>> ListSenders(
    Connection* rio, const std::string& project) {
  v1::ListSendersRequest req;
  req.set_project(project);
  v1::ListSendersResponse resp;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().ListSenders(c, req, &resp);
  }));
  return std::vector<v1::Sender>(resp.senders().begin(), resp.senders().end());
}

absl::Status SenderList(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(std::string project, ctx.RequireProject());
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(std::vector<v1::Sender> senders,
                       ListSenders(rio, project));
  ctx.PrintList(Pointers(senders), [&]() -> std::string {
    if (senders.empty())
      return absl::StrCat("No senders in project ", project, ".\n");
    return SendersTable(senders, ctx.now());
  });
  return absl::OkStatus();
}

absl::Status SenderDelete(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(std::string project, ctx.RequireProject());
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::DeleteSenderRequest req;
  req.set_project(project);
  req.set_name(ctx.arg(0));
  google::protobuf::Empty empty;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->projects().DeleteSender(c, req, &empty);
  }));
  ctx.PrintDocument(JsonObject()
                        .Add("kind", "sender")
                        .Add("project", project)
                        .Add("name", req.name())
                        .Add("deleted", true)
                        .str(),
                    [&] {
                      return absl::StrCat("sender ", req.name(),
                                          " deleted from project ", project,
                                          "\n");
                    });
  return absl::OkStatus();
}

// --- handlers ---------------------------------------------------------------

absl::StatusOr<v1::Handler::Method> ParseMethod(const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (upper == "POST") return v1::Handler::POST;
  if (upper == "PUT") return v1::Handler::PUT;
  if (upper == "GET") return v1::Handler::GET;
  return UsageError(
      absl::StrCat("--method must be POST, PUT or GET (got \"", text, "\")"));
}

absl::StatusOr<v1::Handler::ContentType> ParseContentType(
    const std::string& text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "form" || lower == "application/x-www-form-urlencoded") {
    return v1::Handler::FORM;
  }
  if (lower == "json" || lower == "application/json") return v1::Handler::JSON;
  return UsageError(
      absl::StrCat("--content-type must be form or json (got \"", text, "\")"));
}

absl::StatusOr<int> ParseTimeout(const std::string& text) {
  absl::StatusOr<int64_t> ms = ParseDurationMs(text);
  if (!ms.ok()) {
    return UsageError(absl::StrCat("--timeout: ", ms.status().message()));
  }
  if (*ms < 1 || *ms > 300000) {
    return UsageError(
        absl::StrCat("--timeout must be between 1ms and 5m (got ", text, ")"));
  }
  return static_cast<int>(*ms);
}

// "Name: value" or "Name=value".
absl::Status ParseHeaders(
    const std::vector<std::string>& given,
    google::protobuf::Map<std::string, std::string>* out) {
  for (const std::string& header : given) {
    size_t at = header.find_first_of(":=");
    if (at == std::string::npos || at == 0) {
      return UsageError(absl::StrCat("--header \"", header,
                                     "\" must be \"Name: value\" or "
                                     "\"Name=value\""));
    }
    std::string name(absl::StripAsciiWhitespace(header.substr(0, at)));
    std::string value(absl::StripAsciiWhitespace(header.substr(at + 1)));
    (*out)[name] = value;
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Handler> GetHandler(Connection* rio, const std::string& id) {
  v1::GetHandlerRequest req;
  req.set_id(id);
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().GetHandler(c, req, &handler);
  }));
  return handler;
}

// The server never returns a client key (it shows "•••" while one is set);
// should one ever come back, rioctl still prints only the mask.
v1::Handler Masked(v1::Handler handler) {
  if (!handler.client_key().empty()) handler.set_client_key(kMaskedValue);
  return handler;
}

absl::Status HandlerCreate(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(std::string project, ctx.RequireProject());
  const Args& args = ctx.args();
  if (!args.Has("event") || !args.Has("url")) {
    return UsageError("--event and --url are required");
  }
  v1::CreateHandlerRequest req;
  req.set_project(project);
  req.set_event(args.Get("event"));
  req.set_url(args.Get("url"));
  if (args.Has("method")) {
    RIO_ASSIGN_OR_RETURN(v1::Handler::Method method,
                         ParseMethod(args.Get("method")));
    req.set_method(method);
  }
  if (args.Has("content-type")) {
    RIO_ASSIGN_OR_RETURN(v1::Handler::ContentType type,
                         ParseContentType(args.Get("content-type")));
    req.set_content_type(type);
  }
  if (args.Has("timeout")) {
    RIO_ASSIGN_OR_RETURN(int ms, ParseTimeout(args.Get("timeout")));
    req.set_timeout_ms(ms);
  }
  RIO_RETURN_IF_ERROR(
      ParseHeaders(args.GetAll("header"), req.mutable_headers()));
  if (args.Bool("disabled")) req.set_enabled(false);
  if (args.Has("client-cert") != args.Has("client-key")) {
    return UsageError(args.Has("client-cert")
                          ? "--client-cert needs --client-key (its PEM "
                            "private key)"
                          : "--client-key needs --client-cert (the "
                            "certificate it belongs to)");
  }
  if (args.Has("client-cert")) {
    RIO_ASSIGN_OR_RETURN(*req.mutable_client_certificate(),
                         ReadPemFile("--client-cert", args.Get("client-cert")));
    RIO_ASSIGN_OR_RETURN(*req.mutable_client_key(),
                         ReadPemFile("--client-key", args.Get("client-key")));
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().CreateHandler(c, req, &handler);
  }));
  handler = Masked(std::move(handler));
  ctx.Print(handler, [&] {
    return absl::StrCat("handler ", handler.id(), " created\n",
                        HandlerFields(handler, ctx.now()));
  });
  return absl::OkStatus();
}

absl::Status HandlerGet(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  RIO_ASSIGN_OR_RETURN(v1::Handler handler, GetHandler(rio, ctx.arg(0)));
  handler = Masked(std::move(handler));
  ctx.Print(handler, [&] { return HandlerFields(handler, ctx.now()); });
  return absl::OkStatus();
}

absl::Status HandlerList(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(std::string project, ctx.RequireProject());
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::ListHandlersRequest req;
  req.set_project(project);
  req.set_event(ctx.args().Get("event"));
  v1::ListHandlersResponse resp;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().ListHandlers(c, req, &resp);
  }));
  std::vector<v1::Handler> handlers;
  for (const v1::Handler& h : resp.handlers()) handlers.push_back(Masked(h));
  ctx.PrintList(Pointers(handlers), [&]() -> std::string {
    if (handlers.empty()) {
      return absl::StrCat("No handlers in project ", project, ".\n");
    }
    return HandlersTable(handlers, ctx.now());
  });
  return absl::OkStatus();
}

absl::Status RunUpdate(Context& ctx, const v1::UpdateHandlerRequest& req,
                       const std::string& verb) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().UpdateHandler(c, req, &handler);
  }));
  handler = Masked(std::move(handler));
  ctx.Print(handler, [&] {
    return absl::StrCat("handler ", handler.id(), " ", verb, "\n");
  });
  return absl::OkStatus();
}

absl::Status HandlerUpdate(Context& ctx) {
  const Args& args = ctx.args();
  v1::UpdateHandlerRequest req;
  req.set_id(ctx.arg(0));
  bool any = false;
  if (args.Has("event")) {
    req.set_event(args.Get("event"));
    any = true;
  }
  if (args.Has("url")) {
    req.set_url(args.Get("url"));
    any = true;
  }
  if (args.Has("method")) {
    RIO_ASSIGN_OR_RETURN(v1::Handler::Method method,
                         ParseMethod(args.Get("method")));
    req.set_method(method);
    any = true;
  }
  if (args.Has("content-type")) {
    RIO_ASSIGN_OR_RETURN(v1::Handler::ContentType type,
                         ParseContentType(args.Get("content-type")));
    req.set_content_type(type);
    any = true;
  }
  if (args.Has("timeout")) {
    RIO_ASSIGN_OR_RETURN(int ms, ParseTimeout(args.Get("timeout")));
    req.set_timeout_ms(ms);
    any = true;
  }
  if (args.Has("header")) {
    if (args.Bool("clear-headers")) {
      return UsageError("--header and --clear-headers exclude each other");
    }
    RIO_RETURN_IF_ERROR(
        ParseHeaders(args.GetAll("header"), req.mutable_headers()));
    any = true;
  }
  if (args.Bool("clear-headers")) {
    req.set_clear_headers(true);
    any = true;
  }
  if (args.Bool("no-client-cert")) {
    if (args.Has("client-cert") || args.Has("client-key")) {
      return UsageError(
          "--no-client-cert excludes --client-cert and --client-key");
    }
    // Both empty removes the certificate and its key.
    req.set_client_certificate("");
    req.set_client_key("");
    any = true;
  } else if (args.Has("client-key") && !args.Has("client-cert")) {
    return UsageError(
        "--client-key needs --client-cert (the certificate it belongs to)");
  } else if (args.Has("client-cert")) {
    RIO_ASSIGN_OR_RETURN(*req.mutable_client_certificate(),
                         ReadPemFile("--client-cert", args.Get("client-cert")));
    if (args.Has("client-key")) {
      RIO_ASSIGN_OR_RETURN(*req.mutable_client_key(),
                           ReadPemFile("--client-key", args.Get("client-key")));
    } else {
      // The masked value keeps the stored key; the server checks that it
      // belongs to the new certificate.
      req.set_client_key(kMaskedValue);
    }
    any = true;
  }
  if (!any) {
    return UsageError(
        "nothing to change: give --event, --url, --method, --content-type, "
        "--timeout, --header, --clear-headers, --client-cert or "
        "--no-client-cert");
  }
  return RunUpdate(ctx, req, "updated");
}

absl::Status HandlerEnable(Context& ctx, bool enabled) {
  v1::UpdateHandlerRequest req;
  req.set_id(ctx.arg(0));
  req.set_enabled(enabled);
  return RunUpdate(ctx, req, enabled ? "enabled" : "disabled");
}

absl::Status HandlerDelete(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::DeleteHandlerRequest req;
  req.set_id(ctx.arg(0));
  google::protobuf::Empty empty;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().DeleteHandler(c, req, &empty);
  }));
  ctx.PrintDocument(
      JsonObject()
          .Add("kind", "handler")
          .Add("id", req.id())
          .Add("deleted", true)
          .str(),
      [&] { return absl::StrCat("handler ", req.id(), " deleted\n"); });
  return absl::OkStatus();
}

absl::Status HandlerRotateSecret(Context& ctx) {
  v1::RotateHandlerSecretRequest req;
  req.set_id(ctx.arg(0));
  if (ctx.args().Has("previous-valid-for")) {
    RIO_ASSIGN_OR_RETURN(int64_t ms, [&]() -> absl::StatusOr<int64_t> {
      absl::StatusOr<int64_t> parsed =
          ParseDurationMs(ctx.args().Get("previous-valid-for"));
      if (!parsed.ok()) {
        return UsageError(
            absl::StrCat("--previous-valid-for: ", parsed.status().message()));
      }
      return parsed;
    }());
    req.set_previous_secret_ttl_seconds(ms / 1000);
  }
  req.set_expire_previous(ctx.args().Bool("expire-previous"));
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->handlers().RotateHandlerSecret(c, req, &handler);
  }));
  ctx.Print(handler, [&] {
    std::string out = absl::StrCat("handler ", handler.id(),
                                   " has a new signing secret (shown only "
                                   "now):\n",
                                   handler.secret(), "\n");
    if (!req.expire_previous()) {
      absl::StrAppend(&out, "The previous secret keeps signing until ",
                      Rfc3339(handler.previous_secret_expire_time()), ".\n");
    }
    return out;
  });
  return absl::OkStatus();
}

std::vector<FlagDef> HandlerSettingFlags(bool create) {
  std::vector<FlagDef> flags = {
      {"event", 0, K::kValue, "EVENT", "the event it handles"},
      {"url", 0, K::kValue, "URL", "where Rio sends it (http or https)"},
      {"method", 0, K::kValue, "METHOD",
       create ? "POST (default), PUT or GET" : "POST, PUT or GET"},
      {"content-type", 0, K::kValue, "TYPE",
       create ? "form (default: payload fields as form fields) or json "
                "(the payload as emitted)"
              : "form or json"},
      {"timeout", 0, K::kValue, "DURATION",
       create ? "how long one call may take (default 15s, at most 5m)"
              : "how long one call may take (at most 5m)"},
      {"header", 'H', K::kRepeat, "'NAME: VALUE'",
       create ? "an extra request header (repeatable)"
              : "an extra request header (repeatable; replaces them all)"},
  };
  if (create) {
    flags.insert(flags.begin(), kProjectFlag);
    flags.push_back({"client-cert", 0, K::kValue, "FILE",
                     "PEM client certificate (chain, leaf first) presented "
                     "to receivers that require mutual TLS; needs "
                     "--client-key"});
    flags.push_back({"client-key", 0, K::kValue, "FILE",
                     "the client certificate's unencrypted PEM private key "
                     "(write-only: never shown)"});
    flags.push_back({"disabled", 0, K::kBool, "", "create it disabled"});
  } else {
    flags.push_back(
        {"clear-headers", 0, K::kBool, "", "remove every extra header"});
    flags.push_back({"client-cert", 0, K::kValue, "FILE",
                     "replace the handler's PEM client certificate (for "
                     "receivers that require mutual TLS); without "
                     "--client-key the stored key is kept (it must belong "
                     "to the new certificate)"});
    flags.push_back({"client-key", 0, K::kValue, "FILE",
                     "the new certificate's unencrypted PEM private key "
                     "(needs --client-cert)"});
    flags.push_back({"no-client-cert", 0, K::kBool, "",
                     "remove the client certificate and its key"});
  }
  return flags;
}

}  // namespace

void AddAdminCommands(std::vector<CommandSpec>* commands) {
  commands->push_back(
      {"project create",
       "SLUG",
       "Create a project",
       "The slug (letters, digits, '.', '_', '-') never changes; the name is "
       "free text and defaults to the slug.\n\nExample:\n"
       "  rioctl project create comments --name \"Comments\"",
       {{"name", 0, K::kValue, "NAME", "display name (default: the slug)"}},
       1,
       1,
       ProjectCreate});
  commands->push_back({"project get",
                       "SLUG",
                       "Show a project",
                       "Example:\n  rioctl project get comments",
                       {},
                       1,
                       1,
                       ProjectGet});
  commands->push_back({"project list",
                       "",
                       "List projects",
                       "Example:\n  rioctl project list -o json",
                       {},
                       0,
                       0,
                       ProjectList});
  commands->push_back(
      {"project update",
       "SLUG",
       "Rename a project",
       "Example:\n  rioctl project update comments --name \"All comments\"",
       {{"name", 0, K::kValue, "NAME", "new display name"}},
       1,
       1,
       ProjectUpdate});
  commands->push_back(
      {"project delete",
       "SLUG",
       "Delete a project with its senders, handlers and history",
       "Asks for the slug when run in a terminal; scripts pass --yes.\n\n"
       "Example:\n  rioctl project delete comments --yes",
       {{"yes", 'y', K::kBool, "", "do not ask for confirmation"}},
       1,
       1,
       ProjectDelete});

  commands->push_back(
      {"sender create",
       "NAME",
       "Create a sender and print its DSN once",
       "The DSN (rio://NAME:TOKEN@HOST:PORT/PROJECT) is what an SDK client "
       "or `rioctl emit` needs. Rio keeps only a hash of the token: store "
       "the DSN now.\n\nExample:\n"
       "  rioctl sender create comments-app -p comments\n"
       "  export RIO_DSN=$(rioctl sender create comments-app -p comments -o "
       "json | jq -r .dsn)",
       {kProjectFlag},
       1,
       1,
       SenderCreate});
  commands->push_back({"sender list",
                       "",
                       "List a project's senders",
                       "Example:\n  rioctl sender list -p comments",
                       {kProjectFlag},
                       0,
                       0,
                       SenderList});
  commands->push_back(
      {"sender delete",
       "NAME",
       "Delete a sender (its DSN stops working)",
       "Example:\n  rioctl sender delete comments-app -p comments",
       {kProjectFlag},
       1,
       1,
       SenderDelete});

  commands->push_back(
      {"handler create", "", "Register a webhook for an event",
       "Prints the handler with its signing secret (shown only now).\n\n"
       "For receivers that require mutual TLS, --client-cert and "
       "--client-key give the client certificate (PEM) and its private key; "
       "the key is write-only and shows as \"•••\".\n\n"
       "Examples:\n"
       "  rioctl handler create -p comments --event comment-published \\\n"
       "      --url http://127.0.0.1:5000/webhook/comment/antispam \\\n"
       "      -H 'X-Team: antispam' --timeout 5s\n"
       "  rioctl handler create -p comments --event comment-published \\\n"
       "      --url https://receiver.example/hook \\\n"
       "      --client-cert client.pem --client-key client.key",
       HandlerSettingFlags(true), 0, 0, HandlerCreate});
  commands->push_back({"handler get",
                       "ID",
                       "Show a handler",
                       "Example:\n  rioctl handler get 0b7f…",
                       {},
                       1,
                       1,
                       HandlerGet});
  commands->push_back(
      {"handler list",
       "",
       "List a project's handlers",
       "Example:\n  rioctl handler list -p comments --event comment-published",
       {kProjectFlag,
        {"event", 0, K::kValue, "EVENT", "only this event's handlers"}},
       0,
       0,
       HandlerList});
  commands->push_back(
      {"handler update", "ID", "Change a handler's settings",
       "Only the settings given change. --client-cert with --client-key "
       "replaces the client certificate and its key; --client-cert alone "
       "keeps the stored key (for a renewed certificate of the same key); "
       "--no-client-cert removes both.\n\nExamples:\n"
       "  rioctl handler update 0b7f… --url http://127.0.0.1:5001/hook "
       "--content-type json\n"
       "  rioctl handler update 0b7f… --client-cert renewed.pem",
       HandlerSettingFlags(false), 1, 1, HandlerUpdate});
  commands->push_back({"handler enable",
                       "ID",
                       "Enable a handler (clears why it was disabled)",
                       "Example:\n  rioctl handler enable 0b7f…",
                       {},
                       1,
                       1,
                       [](Context& ctx) { return HandlerEnable(ctx, true); }});
  commands->push_back({"handler disable",
                       "ID",
                       "Disable a handler (its new deliveries are cancelled)",
                       "Example:\n  rioctl handler disable 0b7f…",
                       {},
                       1,
                       1,
                       [](Context& ctx) { return HandlerEnable(ctx, false); }});
  commands->push_back({"handler delete",
                       "ID",
                       "Delete a handler",
                       "Example:\n  rioctl handler delete 0b7f…",
                       {},
                       1,
                       1,
                       HandlerDelete});
  commands->push_back(
      {"handler rotate-secret",
       "ID",
       "Issue a new signing secret",
       "The previous secret keeps signing for a day (--previous-valid-for), "
       "so receivers can switch over.\n\nExample:\n"
       "  rioctl handler rotate-secret 0b7f… --previous-valid-for 1h",
       {{"previous-valid-for", 0, K::kValue, "DURATION",
         "how long the previous secret keeps signing (default 24h, at most "
         "30d)"},
        {"expire-previous", 0, K::kBool, "",
         "stop signing with the previous secret at once"}},
       1,
       1,
       HandlerRotateSecret});
}

}  // namespace rio::rioctl
