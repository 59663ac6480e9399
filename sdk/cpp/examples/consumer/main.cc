// Links the installed SDK and exercises each part without a server: DSN
// parsing, webhook signing and verification, and a real gRPC call to a port
// where nothing listens (UNAVAILABLE, not retried).
#include <iostream>

#include "rio/client.h"
#include "rio/webhook.h"

int main() {
  const absl::StatusOr<rio::Dsn> dsn =
      rio::ParseDsn("http://sender:token@rio.intra.example.org/1/project");
  if (!dsn.ok() || dsn->project != "project" || dsn->port != 50051) {
    std::cerr << "rio_consumer: ParseDsn: " << dsn.status() << "\n";
    return 1;
  }

  const char kSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const char kBody[] = R"({"test": 2432232314})";
  const absl::StatusOr<std::string> signature = rio::webhook::Sign(
      kSecret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, kBody);
  const std::map<std::string, std::string> headers = {
      {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
      {"webhook-timestamp", "1614265330"},
      {"webhook-signature", signature.ok() ? *signature : ""}};
  const absl::Status verified = rio::webhook::Verify(
      kSecret, headers, kBody, absl::FromUnixSeconds(1614265330));
  if (!verified.ok()) {
    std::cerr << "rio_consumer: Verify: " << verified << "\n";
    return 1;
  }

  rio::ClientOptions options;
  options.dsn = "rio://sender:token@127.0.0.1:1/project";
  options.retry = rio::RetryPolicy::NoRetry();
  options.deadline = absl::Seconds(5);
  const rio::Client client(options);
  const absl::StatusOr<rio::EmitResult> result =
      client.Emit("comment-published", R"({"ip":"127.0.0.1"})");
  if (result.status().code() != absl::StatusCode::kUnavailable) {
    std::cerr << "rio_consumer: Emit to a closed port: " << result.status()
              << "\n";
    return 1;
  }
  std::cout << "rio_consumer: ok\n";
  return 0;
}
