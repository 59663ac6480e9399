// rioctl emit PROJECT EVENT [PAYLOAD]: one event with a sender's DSN,
// through the C++ SDK's rio::Client (the same DSN parsing, idempotency key
// and retries as any sender).
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "rio/client.h"
#include "server/util/status_macros.h"
#include "tools/rioctl/cli.h"

namespace rio::rioctl {
namespace {

using K = FlagDef::Kind;

absl::Status Emit(Context& ctx) {
  const std::string& project = ctx.arg(0);
  const std::string& event = ctx.arg(1);
  std::string payload = ctx.args().positional().size() > 2 ? ctx.arg(2) : "{}";
  if (payload == "-") {
    std::stringstream in;
    in << ctx.io().in->rdbuf();
    payload = in.str();
  }
  std::string dsn = ctx.FlagOrEnv("dsn", "RIO_DSN");
  if (dsn.empty()) {
    return UsageError(
        "a sender's DSN is needed: --dsn rio://SENDER:TOKEN@HOST:PORT/PROJECT "
        "or RIO_DSN (`rioctl sender create` prints one)");
  }
  absl::StatusOr<Dsn> parsed = ParseDsn(dsn);
  if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
  if (parsed->project != project) {
    return UsageError(absl::StrCat("the DSN is for project ", parsed->project,
                                   ", not ", project));
  }
  ClientOptions options;
  options.dsn = dsn;
  // The DSN's scheme says whether to use TLS; the TLS flags say how.
  const ConnectionOptions& connection = ctx.connection_options();
  absl::StatusOr<TlsPem> pem = ReadTlsFiles(connection);
  if (!pem.ok()) return pem.status();
  options.root_certificates = pem->root_certificates;
  options.client_certificate_chain = pem->certificate_chain;
  options.client_private_key = pem->private_key;
  options.tls_server_name = connection.tls_server_name;
  Client client(options);
  RIO_RETURN_IF_ERROR(client.status());
  rio::Event request(event, payload, ctx.args().Get("idempotency-key"));
  absl::StatusOr<EmitResult> result = client.Emit(request);
  // The server's refusal: exit 1 with its code, like admin calls.
  if (!result.ok()) return MarkServerError(result.status());
  ctx.PrintDocument(
      JsonObject()
          .Add("message_id", result->message_id)
          .Add("handlers", result->handlers)
          .Add("duplicate", result->duplicate)
          .Add("idempotency_key", result->idempotency_key)
          .str(),
      [&] {
        return absl::StrCat(
            "message ", result->message_id,
            result->duplicate ? " (duplicate)" : "", ": ", result->handlers,
            result->handlers == 1 ? " delivery" : " deliveries", "\n");
      });
  return absl::OkStatus();
}

}  // namespace

void AddEmitCommands(std::vector<CommandSpec>* commands) {
  commands->push_back(
      {"emit",
       "PROJECT EVENT [PAYLOAD]",
       "Emit an event with a sender's DSN, to try handlers out",
       "PAYLOAD is a JSON object (default {}; - reads standard input). The "
       "DSN comes from --dsn or RIO_DSN and must be a sender of PROJECT.\n\n"
       "Example:\n"
       "  rioctl emit comments comment-published '{\"ip\": \"127.0.0.1\", "
       "\"content\": \"I am a spammer\"}' --dsn \"$DSN\"",
       {{"dsn", 0, K::kValue, "DSN",
         "rio://SENDER:TOKEN@HOST:PORT/PROJECT (env RIO_DSN)"},
        {"idempotency-key", 0, K::kValue, "KEY",
         "emits with the same key create one message (default: random)"}},
       2,
       3,
       Emit});
}

}  // namespace rio::rioctl
