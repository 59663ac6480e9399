// rioctl token|whoami: the AccessService, one command per call.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/empty.pb.h"
#include "server/util/status_macros.h"
#include "tools/rioctl/cli.h"
#include "tools/rioctl/views.h"

namespace rio::rioctl {
namespace {

using K = FlagDef::Kind;

absl::Status TokenCreate(Context& ctx) {
  const Args& args = ctx.args();
  if (!args.Has("scope")) {
    return UsageError("--scope is required: admin, project-admin or read-only");
  }
  absl::StatusOr<v1::AccessToken::Scope> scope = ParseScope(args.Get("scope"));
  if (!scope.ok()) return UsageError(std::string(scope.status().message()));
  v1::CreateAccessTokenRequest req;
  req.set_name(ctx.arg(0));
  req.set_scope(*scope);
  // An admin token covers every project: RIO_PROJECT, set for other
  // commands, does not apply to it, and --project is refused.
  if (*scope == v1::AccessToken::ADMIN) {
    if (!args.Get("project").empty()) {
      return UsageError(
          "--project is not allowed with scope admin (it covers every "
          "project; use project-admin for one project)");
    }
  } else {
    req.set_project(ctx.Project());
    if (*scope == v1::AccessToken::PROJECT_ADMIN && req.project().empty()) {
      return UsageError(
          "--project (-p) is required for scope project-admin (or set "
          "RIO_PROJECT)");
    }
  }
  if (args.Has("expires")) {
    absl::StatusOr<absl::Time> expire =
        ParseExpiry(args.Get("expires"), ctx.now());
    if (!expire.ok()) {
      return UsageError(absl::StrCat("--expires ", expire.status().message()));
    }
    *req.mutable_expire_time() = ToProto(*expire);
  }
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::CreateAccessTokenResponse resp;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->access().CreateAccessToken(c, req, &resp);
  }));
  ctx.Print(resp, [&] {
    return absl::StrCat(
        "access token ", resp.access_token().name(), " created\n",
        AccessTokenFields(resp.access_token(), ctx.now()),
        "Token (shown only now; Rio keeps only a hash of it):\n", resp.token(),
        "\n");
  });
  return absl::OkStatus();
}

absl::Status TokenList(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::ListAccessTokensResponse resp;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->access().ListAccessTokens(c, v1::ListAccessTokensRequest(),
                                          &resp);
  }));
  std::vector<v1::AccessToken> tokens(resp.access_tokens().begin(),
                                      resp.access_tokens().end());
  std::vector<const google::protobuf::Message*> pointers;
  for (const auto& t : tokens) pointers.push_back(&t);
  ctx.PrintList(pointers, [&]() -> std::string {
    if (tokens.empty()) return "No access tokens.\n";
    return AccessTokensTable(tokens, ctx.now());
  });
  return absl::OkStatus();
}

absl::Status TokenRevoke(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::RevokeAccessTokenRequest req;
  req.set_name(ctx.arg(0));
  google::protobuf::Empty empty;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->access().RevokeAccessToken(c, req, &empty);
  }));
  ctx.PrintDocument(
      JsonObject()
          .Add("kind", "access_token")
          .Add("name", req.name())
          .Add("revoked", true)
          .str(),
      [&] { return absl::StrCat("access token ", req.name(), " revoked\n"); });
  return absl::OkStatus();
}

absl::Status WhoAmI(Context& ctx) {
  RIO_ASSIGN_OR_RETURN(Connection * rio, ctx.Connect());
  v1::AccessToken caller;
  RIO_RETURN_IF_ERROR(rio->Call([&](grpc::ClientContext* c) {
    return rio->access().GetCaller(c, v1::GetCallerRequest(), &caller);
  }));
  ctx.Print(caller, [&] { return CallerFields(caller); });
  return absl::OkStatus();
}

}  // namespace

void AddAccessCommands(std::vector<CommandSpec>* commands) {
  commands->push_back(
      {"token create",
       "NAME",
       "Create an access token and print it once",
       "Scopes: admin (everything, including projects and access tokens), "
       "project-admin (one project's senders, handlers, deliveries and "
       "recoveries; needs --project), read-only (Get, List, Tail and Stats "
       "calls, of one project with --project). Present the token like the "
       "admin token: --token or RIO_ADMIN_TOKEN. Rio keeps only a hash of "
       "it: store it now.\n\nExamples:\n"
       "  rioctl token create ci-reader --scope read-only --expires 30d\n"
       "  rioctl token create shop-ops --scope project-admin -p shop\n"
       "  export RIO_ADMIN_TOKEN=$(rioctl token create deploy --scope admin "
       "-o json | jq -r .token)",
       {{"scope", 0, K::kValue, "SCOPE", "admin, project-admin or read-only"},
        {"project", 'p', K::kValue, "SLUG",
         "the one project it may touch (env RIO_PROJECT; not for scope "
         "admin)"},
        {"expires", 0, K::kValue, "WHEN",
         "when it stops working: a duration from now (12h, 30d) or an RFC "
         "3339 time (default: never)"}},
       1,
       1,
       TokenCreate});
  commands->push_back({"token list",
                       "",
                       "List access tokens",
                       "Expired tokens are listed (and refused) until "
                       "revoked.\n\nExample:\n  rioctl token list",
                       {},
                       0,
                       0,
                       TokenList});
  commands->push_back({"token revoke",
                       "NAME",
                       "Revoke an access token (it stops working at once)",
                       "Example:\n  rioctl token revoke ci-reader",
                       {},
                       1,
                       1,
                       TokenRevoke});
  commands->push_back(
      {"whoami",
       "",
       "Show the token's name, scope and project",
       "\"bootstrap\" is the server's --admin_token.\n\nExample:\n"
       "  rioctl whoami --token \"$CI_TOKEN\"",
       {},
       0,
       0,
       WhoAmI});
}

}  // namespace rio::rioctl
