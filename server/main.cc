// rio-server: parses flags, wires the parts together, waits for SIGINT or
// SIGTERM (reloading its TLS certificate on SIGHUP meanwhile), and shuts
// down in order.
#include <malloc.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/api/admin.h"
#include "server/api/auth.h"
#include "server/api/cq_server.h"
#include "server/api/emit_service.h"
#include "server/api/tail.h"
#include "server/api/tls_credentials.h"
#include "server/dispatch/dispatcher.h"
#include "server/dispatch/egress_guard.h"
#include "server/dispatch/metrics_sink.h"
#include "server/dispatch/outcome_writer.h"
#include "server/dispatch/retry_policy.h"
#include "server/dispatch/scheduler.h"
#include "server/http/dashboard.h"
#include "server/http/http_server.h"
#include "server/http/json_api.h"
#include "server/ingest/ingest_writer.h"
#include "server/store/catalog.h"
#include "server/store/database.h"
#include "server/store/handler_secrets.h"
#include "server/store/migrations.h"
#include "server/store/pg.h"
#include "server/store/queue_sampler.h"
#include "server/store/retention.h"
#include "server/util/crypto.h"
#include "server/util/metrics.h"
#include "server/util/secret_box.h"
#include "server/util/status_macros.h"
#include "server/util/tls_files.h"
#include "server/util/validation.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address (host:port; port 0 picks a free one)");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:8080",
          "HTTP address for the dashboard (/), its JSON API (/api/v1/), "
          "/healthz, /readyz and /metrics (empty: no HTTP server)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain (leaf first): with --tls_key, the gRPC "
          "listener speaks TLS only and the HTTP listener HTTPS only; "
          "reloaded on SIGHUP");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert (unencrypted); reloaded on SIGHUP");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificates: gRPC clients must present a certificate "
          "signed by one of them (mutual TLS); needs --tls_cert");
ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL connection URL, e.g. postgresql://rio@127.0.0.1/rio");
ABSL_FLAG(std::string, admin_token, "",
          "Token for admin calls, at least 32 characters; when empty, the "
          "token in --admin_token_file is used, or one is generated into it");
ABSL_FLAG(std::string, admin_token_file, "rio-admin-token",
          "File holding the admin token when --admin_token is not given: "
          "read when it exists (it must be readable by its owner only), else "
          "created with a new token (mode 0600; the token is never "
          "printed)");
ABSL_FLAG(std::string, public_address, "",
          "host:port that senders use to reach this server, written into "
          "sender DSNs (default: the gRPC address)");
ABSL_FLAG(int, db_pool_size, 4, "PostgreSQL connections for admin calls");
ABSL_FLAG(int, grpc_threads, 2,
          "Completion-queue polling threads (one queue each)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "How long in-flight calls and deliveries may take to finish on "
          "SIGTERM");
ABSL_FLAG(std::string, retry_schedule, "5s,5m,30m,2h,5h,10h,10h",
          "Delays before each retry of a failed delivery (the first attempt "
          "is immediate); each gets +-20% jitter");
ABSL_FLAG(int, max_in_flight, 256, "Most webhook calls in flight at once");
ABSL_FLAG(int, max_per_handler, 32,
          "Most webhook calls in flight to one handler at once");
ABSL_FLAG(int, max_per_host, 64,
          "Most webhook calls in flight to one scheme://host:port at once "
          "(handlers on one receiver share its keep-alive connections)");
ABSL_FLAG(int, max_queued_deliveries, 8192,
          "Most deliveries held in memory for sending (waiting or in "
          "flight); the rest wait in PostgreSQL until there is room");
ABSL_FLAG(int, max_queued_per_handler, 2048,
          "Most deliveries of one handler held in memory for sending, so a "
          "slow or dead receiver cannot fill the dispatcher");
ABSL_FLAG(int, max_outcome_backlog, 1024,
          "Most attempt outcomes held in memory until written to PostgreSQL "
          "(each keeps up to 64 KiB of the response); while this many wait, "
          "no more deliveries are taken for sending");
ABSL_FLAG(int64_t, max_queued_bytes, int64_t{64} << 20,
          "Most payload bytes held by deliveries in memory for sending");
ABSL_FLAG(int64_t, max_queued_bytes_per_handler, int64_t{16} << 20,
          "Most payload bytes held in memory for sending to one handler");
ABSL_FLAG(int64_t, max_ingest_queue_events, 20000,
          "Most events received and not yet committed; beyond it emits get "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_ingest_queue_bytes, int64_t{64} << 20,
          "Most payload bytes received and not yet committed; beyond it "
          "emits get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, grpc_memory_bytes, int64_t{128} << 20,
          "Memory gRPC may use for calls and connections (its resource "
          "quota); beyond it new calls wait or are refused");
ABSL_FLAG(int, grpc_max_streams, 100,
          "Most concurrent calls on one gRPC (HTTP/2) connection");
ABSL_FLAG(int, http_max_connections, 1024,
          "Most open connections to the HTTP listener");
ABSL_FLAG(int, http_max_connections_per_client, 64,
          "Most open connections to the HTTP listener from one client "
          "address; more are closed at once");
ABSL_FLAG(int, max_tail_streams, 32,
          "Most TailDeliveries streams open at once");
ABSL_FLAG(int64_t, tail_buffer_bytes, int64_t{4} << 20,
          "Most bytes of attempts waiting for one slow TailDeliveries "
          "client; beyond it the stream ends with RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, instance_id, "",
          "A UUID naming this instance in delivery leases (default: a new "
          "one per start). Keep one per instance (tools/run keeps one in its "
          "state directory) so that a restart after a crash takes its own "
          "leases back at once; two live processes may not share one");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5),
          "TCP/TLS connect timeout of a webhook call");
ABSL_FLAG(std::string, egress, "private",
          "Which addresses webhook calls may connect to: private refuses "
          "this host (loopback), link-local and cloud metadata addresses, "
          "multicast, broadcast and reserved ranges; public also refuses "
          "the private ranges (RFC 1918, CGNAT, fc00::/7)");
ABSL_FLAG(std::string, egress_allow, "",
          "CIDRs webhook calls may connect to whatever --egress says "
          "(comma-separated, e.g. 127.0.0.1/32,10.1.0.0/16)");
ABSL_FLAG(std::string, egress_deny, "",
          "CIDRs webhook calls may never connect to (comma-separated); the "
          "longest prefix among --egress_allow and --egress_deny wins, a "
          "tie goes to deny");
ABSL_FLAG(bool, egress_refuse_host_addresses, true,
          "Also refuse the addresses of this host's own network interfaces");
ABSL_FLAG(std::string, egress_proxy, "",
          "An HTTP proxy (http://host:port) that every webhook call tunnels "
          "through with CONNECT; the proxy then decides which destinations "
          "are reachable");
ABSL_FLAG(std::vector<std::string>, egress_resolve, {},
          "HOST:PORT:ADDRESS entries (comma-separated) pinning names for "
          "webhook calls, like curl --resolve; the egress policy applies to "
          "the pinned addresses");
ABSL_FLAG(bool, https_only, false,
          "Refuse http:// handler URLs (only https:// receivers)");
ABSL_FLAG(std::string, ca_file, "",
          "A PEM file of root certificates trusted for https:// receivers "
          "besides the system's");
ABSL_FLAG(int64_t, max_payload_bytes, 1 << 20,
          "Largest accepted event payload, in bytes");
ABSL_FLAG(absl::Duration, idempotency_window, absl::Hours(24 * 7),
          "How long an idempotency key maps to its first message");
ABSL_FLAG(int, ingest_writers, 1,
          "Threads (each with a PostgreSQL connection) committing emits");
ABSL_FLAG(int, disable_after_failures, 50,
          "Disable a handler after this many consecutive failed attempts "
          "(no success in between) spanning at least --disable_after; 0 "
          "never disables (a 410 Gone still does)");
ABSL_FLAG(absl::Duration, disable_after, absl::Hours(24),
          "See --disable_after_failures");
ABSL_FLAG(absl::Duration, lease_timeout, absl::Seconds(30),
          "Deliveries leased by an instance whose heartbeat is older than "
          "this are taken over by other instances");
ABSL_FLAG(absl::Duration, retention, absl::Hours(24 * 30),
          "Messages older than this are deleted with their deliveries and "
          "attempts, a --partition_interval at a time (a partition holding "
          "a pending delivery is kept until it has none), and so are "
          "recoveries finished before then; 0 keeps everything");
ABSL_FLAG(absl::Duration, partition_interval, absl::Hours(24),
          "Messages, deliveries and attempts are stored in partitions of "
          "this much time each, created ahead of the clock and dropped "
          "whole by retention; from 1m to 7 days, at most --retention");
ABSL_FLAG(absl::Duration, retention_interval, absl::Minutes(5),
          "How often retention runs (the first run comes at most 10s after "
          "start)");
ABSL_FLAG(absl::Duration, queue_sample_interval, absl::Seconds(5),
          "How often the delivery queue is sampled from PostgreSQL for "
          "/metrics");
ABSL_FLAG(std::string, secret_key_file, "",
          "File of keys sealing handler signing secrets and header values "
          "at rest (AES-256-GCM): one \"KEY_ID BASE64_32_BYTES\" a line, "
          "the first sealing new values; mode 0600. Required unless "
          "--allow_plaintext_secrets");
ABSL_FLAG(bool, allow_plaintext_secrets, false,
          "Start without --secret_key_file and store handler signing secrets "
          "and header values unencrypted (development only)");
ABSL_FLAG(bool, reencrypt_secrets, false,
          "At start-up, re-seal every stored handler secret that is not "
          "sealed under the first key of --secret_key_file, so that the "
          "other keys can be retired");

namespace {

// Every flag can also be set by RIO_<FLAG NAME IN CAPITALS>; a flag on the
// command line wins.
constexpr const char* kEnvFlags[] = {"listen",
                                     "http_listen",
                                     "tls_cert",
                                     "tls_key",
                                     "tls_client_ca",
                                     "database_url",
                                     "admin_token",
                                     "admin_token_file",
                                     "public_address",
                                     "db_pool_size",
                                     "grpc_threads",
                                     "shutdown_grace",
                                     "retry_schedule",
                                     "max_in_flight",
                                     "max_per_handler",
                                     "max_per_host",
                                     "connect_timeout",
                                     "egress",
                                     "egress_allow",
                                     "egress_deny",
                                     "egress_refuse_host_addresses",
                                     "egress_proxy",
                                     "egress_resolve",
                                     "https_only",
                                     "ca_file",
                                     "max_payload_bytes",
                                     "idempotency_window",
                                     "ingest_writers",
                                     "disable_after_failures",
                                     "disable_after",
                                     "lease_timeout",
                                     "retention",
                                     "partition_interval",
                                     "retention_interval",
                                     "queue_sample_interval",
                                     "max_queued_deliveries",
                                     "max_queued_per_handler",
                                     "max_outcome_backlog",
                                     "max_queued_bytes",
                                     "max_queued_bytes_per_handler",
                                     "max_ingest_queue_events",
                                     "max_ingest_queue_bytes",
                                     "grpc_memory_bytes",
                                     "grpc_max_streams",
                                     "http_max_connections",
                                     "http_max_connections_per_client",
                                     "max_tail_streams",
                                     "tail_buffer_bytes",
                                     "instance_id",
                                     "secret_key_file",
                                     "allow_plaintext_secrets",
                                     "reencrypt_secrets"};

void ApplyEnvironment() {
  for (const char* name : kEnvFlags) {
    std::string var = absl::StrCat("RIO_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "rio-server: %s: %s\n", var.c_str(), error.c_str());
      std::exit(2);
    }
  }
}

[[noreturn]] void Fail(int code, const std::string& message) {
  std::fprintf(stderr, "rio-server: %s\n", message.c_str());
  std::exit(code);
}

absl::StatusOr<std::unique_ptr<rio::dispatch::EgressGuard>>
EgressGuardFromFlags() {
  rio::dispatch::EgressGuard::Options options;
  RIO_ASSIGN_OR_RETURN(options.policy, rio::dispatch::EgressGuard::ParsePolicy(
                                           absl::GetFlag(FLAGS_egress)));
  RIO_ASSIGN_OR_RETURN(options.allow,
                       rio::dispatch::ParseIpNetworks(
                           "egress_allow", absl::GetFlag(FLAGS_egress_allow)));
  RIO_ASSIGN_OR_RETURN(options.deny,
                       rio::dispatch::ParseIpNetworks(
                           "egress_deny", absl::GetFlag(FLAGS_egress_deny)));
  options.refuse_host_addresses =
      absl::GetFlag(FLAGS_egress_refuse_host_addresses);
  options.https_only = absl::GetFlag(FLAGS_https_only);
  return std::make_unique<rio::dispatch::EgressGuard>(std::move(options));
}

// The address to put in DSNs: the bound one, with a wildcard host replaced
// by this machine's name.
std::string AdvertisedAddress(const std::string& bound) {
  std::string configured = absl::GetFlag(FLAGS_public_address);
  if (!configured.empty()) return configured;
  size_t colon = bound.rfind(':');
  std::string host = bound.substr(0, colon);
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty()) {
    char name[256] = {0};
    if (gethostname(name, sizeof(name) - 1) == 0) host = name;
  }
  return absl::StrCat(host, bound.substr(colon));
}

// The TLS files named by the flags, read and checked; null when TLS is off.
// Exits with a message naming the flag and file when they are unusable.
std::shared_ptr<rio::util::TlsFiles> OpenTlsFiles() {
  rio::util::TlsFilePaths paths;
  paths.cert_file = absl::GetFlag(FLAGS_tls_cert);
  paths.key_file = absl::GetFlag(FLAGS_tls_key);
  paths.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  if (auto valid = rio::util::CheckTlsFilePaths(paths); !valid.ok()) {
    Fail(2, std::string(valid.message()));
  }
  if (!rio::util::TlsRequested(paths)) return nullptr;
  auto files = rio::util::TlsFiles::Open(std::move(paths));
  if (!files.ok()) Fail(1, std::string(files.status().message()));
  return std::shared_ptr<rio::util::TlsFiles>(*std::move(files));
}

std::string DescribeCertificate(const rio::util::TlsMaterial& material) {
  return absl::StrCat(material.subject, ", serial ", material.serial,
                      ", valid until ",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", material.not_after,
                                       absl::UTCTimeZone()));
}

// SIGHUP: reads the TLS files again. New handshakes use them; connections
// already open keep theirs. Invalid files leave the old ones in use.
void ReloadTls(rio::util::TlsFiles& files) {
  if (auto reloaded = files.Reload(); !reloaded.ok()) {
    std::fprintf(stderr,
                 "rio-server: SIGHUP: TLS files not reloaded, the previous "
                 "certificate stays in use: %s\n",
                 std::string(reloaded.message()).c_str());
    return;
  }
  std::fprintf(stderr, "rio-server: SIGHUP: TLS certificate reloaded (%s)\n",
               DescribeCertificate(*files.Current()).c_str());
}

// The keys of --secret_key_file; nullopt when running without one, which
// needs --allow_plaintext_secrets.
std::optional<rio::util::SecretBox> LoadSecretKeys() {
  const std::string path = absl::GetFlag(FLAGS_secret_key_file);
  if (path.empty()) {
    if (absl::GetFlag(FLAGS_reencrypt_secrets)) {
      Fail(2, "--reencrypt_secrets needs --secret_key_file");
    }
    if (!absl::GetFlag(FLAGS_allow_plaintext_secrets)) {
      Fail(2,
           "--secret_key_file (or RIO_SECRET_KEY_FILE) is required: it holds "
           "the key that encrypts handler signing secrets and header values "
           "in PostgreSQL. Make one with\n  (umask 077; echo \"k1 $(openssl "
           "rand -base64 32)\" > rio-secrets.key)\nor pass "
           "--allow_plaintext_secrets to store them unencrypted");
    }
    std::fprintf(stderr,
                 "rio-server: WARNING: --allow_plaintext_secrets: handler "
                 "signing secrets and header values are stored UNENCRYPTED in "
                 "PostgreSQL; anyone who reads the database or a backup "
                 "can forge webhooks. Use --secret_key_file in production\n");
    return std::nullopt;
  }
  auto keys = rio::util::ReadSecretKeyFile(path);
  if (!keys.ok())
    Fail(2, absl::StrCat("--secret_key_file: ", keys.status().message()));
  auto box = rio::util::SecretBox::Create(*std::move(keys));
  if (!box.ok())
    Fail(2, absl::StrCat("--secret_key_file: ", box.status().message()));
  return *std::move(box);
}

// Seals the handler rows still in plaintext (and, with
// --reencrypt_secrets, re-seals those under older keys); refuses to start
// when stored values need a key that is missing.
void SealStoredSecrets(rio::store::PgConnection& conn,
                       const rio::util::SecretBox* box) {
  const rio::store::HandlerSecrets secrets(box);
  auto report = rio::store::SealStoredSecrets(
      conn, secrets, absl::GetFlag(FLAGS_reencrypt_secrets));
  if (!report.ok()) {
    Fail(1, absl::StrCat("cannot start: ", report.status().message()));
  }
  if (box == nullptr) return;
  // The survey came before re-sealing: with --reencrypt_secrets, nothing is
  // left under older keys.
  std::vector<std::string> older;
  for (const auto& [key_id, n] : report->values_by_key) {
    if (key_id != box->sealing_key_id()) {
      older.push_back(absl::StrCat(n, " under key \"", key_id, "\""));
    }
  }
  std::string note;
  if (!older.empty() && !absl::GetFlag(FLAGS_reencrypt_secrets)) {
    note = absl::StrCat(
        "; values still sealed under older keys (--reencrypt_secrets "
        "re-seals them): ",
        absl::StrJoin(older, ", "));
  }
  std::fprintf(stderr,
               "rio-server: secrets at rest: sealing with key \"%s\"; %lld "
               "plaintext handlers sealed, %lld re-sealed%s\n",
               box->sealing_key_id().c_str(),
               static_cast<long long>(report->sealed_rows),
               static_cast<long long>(report->resealed_rows), note.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's threads outlive main(): OpenSSL's own atexit clean-up would free
  // state they may still use (and leak the error queue of any that exits
  // after it). The process's end frees everything anyway.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  absl::SetProgramUsageMessage(
      "Rio: emits named events into projects and calls every webhook "
      "registered for them.\nUsage: rio-server --database_url=URL [flags]");
  // Lock-order checking costs a graph update per lock in this build of
  // Abseil; the hot paths take locks per delivery.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  ApplyEnvironment();
  absl::ParseCommandLine(argc, argv);
  // Payloads of up to a MiB come and go at the emit rate. Served by mmap,
  // each is given back to the kernel when freed; left to glibc's default,
  // which raises this threshold after the first such free, they are carved
  // from arenas whose fragments stay resident.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  // Signals are taken by sigwait in main; every thread started from here on
  // inherits the mask.
  // A shell may start us with SIGINT ignored (background jobs); undo that.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // With TLS, SIGHUP reloads the certificate (see ReloadTls); without, it
  // keeps its default and ends the process.
  const std::shared_ptr<rio::util::TlsFiles> tls_files = OpenTlsFiles();
  if (tls_files != nullptr) {
    signal(SIGHUP, SIG_DFL);
    sigaddset(&signals, SIGHUP);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::string database_url = absl::GetFlag(FLAGS_database_url);
  if (database_url.empty()) {
    Fail(2,
         "--database_url (or RIO_DATABASE_URL) is required; tools/run "
         "starts a private PostgreSQL when you have none");
  }
  const absl::Duration retention = absl::GetFlag(FLAGS_retention);
  if (retention < absl::ZeroDuration()) {
    Fail(2, "--retention must not be negative (0 keeps everything)");
  }
  if (absl::GetFlag(FLAGS_retention_interval) <= absl::ZeroDuration()) {
    Fail(2, "--retention_interval must be positive");
  }
  const absl::Duration partition_interval =
      absl::GetFlag(FLAGS_partition_interval);
  if (partition_interval < absl::Minutes(1) ||
      partition_interval > absl::Hours(24 * 7)) {
    Fail(2, "--partition_interval must be from 1m to 7 days (168h)");
  }
  if (retention > absl::ZeroDuration() && partition_interval > retention) {
    Fail(2,
         "--partition_interval must not be longer than --retention (history "
         "is dropped a partition at a time)");
  }
  if (absl::GetFlag(FLAGS_queue_sample_interval) < absl::Milliseconds(100)) {
    Fail(2, "--queue_sample_interval must be at least 100ms");
  }

  // Everything /metrics shows. Parts register their own metrics as they are
  // built; these describe the process.
  rio::util::MetricsRegistry metrics;
  metrics
      .AddGaugeFamily("rio_build_info",
                      "Always 1; the labels say which build runs.", {"version"})
      ->Get({RIO_VERSION})
      ->Set(1);
  metrics
      .AddGauge("rio_process_start_time_seconds",
                "Unix time when the process started.")
      ->Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  rio::util::CounterFamily* database_errors = metrics.AddCounterFamily(
      "rio_database_errors_total",
      "Failed PostgreSQL operations: connection attempts (connect) and "
      "statements, by what they mean: unavailable (connection lost, "
      "server shutting down or out of resources), already_exists (unique "
      "violation), aborted (serialization failure, deadlock), internal "
      "(anything else).",
      {"kind"});
  database_errors->AddCallback({"connect"}, [] {
    return static_cast<double>(rio::store::PgErrorsSoFar().connect);
  });
  database_errors->AddCallback({"unavailable"}, [] {
    return static_cast<double>(rio::store::PgErrorsSoFar().unavailable);
  });
  database_errors->AddCallback({"already_exists"}, [] {
    return static_cast<double>(rio::store::PgErrorsSoFar().already_exists);
  });
  database_errors->AddCallback({"aborted"}, [] {
    return static_cast<double>(rio::store::PgErrorsSoFar().aborted);
  });
  database_errors->AddCallback({"internal"}, [] {
    return static_cast<double>(rio::store::PgErrorsSoFar().internal);
  });

  const std::optional<rio::util::SecretBox> secret_box = LoadSecretKeys();
  const rio::util::SecretBox* box = secret_box ? &*secret_box : nullptr;

  rio::api::AdminTokenSource token_source;
  auto admin_token = rio::api::LoadAdminToken(
      absl::GetFlag(FLAGS_admin_token), absl::GetFlag(FLAGS_admin_token_file),
      &token_source);
  if (!admin_token.ok()) Fail(2, std::string(admin_token.status().message()));
  if (token_source != rio::api::AdminTokenSource::kFlag) {
    std::fprintf(stderr, "rio-server: admin token %s %s\n",
                 token_source == rio::api::AdminTokenSource::kGenerated
                     ? "generated into"
                     : "read from",
                 absl::GetFlag(FLAGS_admin_token_file).c_str());
  }

  // Start-up: one connection for migrations and the first catalog load.
  auto setup = rio::store::PgConnection::Connect(database_url);
  if (!setup.ok()) Fail(1, std::string(setup.status().message()));
  auto migrated = rio::store::ApplyMigrations(**setup);
  if (!migrated.ok()) {
    Fail(1, absl::StrCat("schema migration failed: ",
                         migrated.status().message()));
  }
  SealStoredSecrets(**setup, box);
  rio::store::Catalog catalog(database_url, box);
  rio::api::AdminAuthenticator admin_auth(*admin_token, &catalog);
  if (auto s = catalog.Reload(**setup); !s.ok()) {
    Fail(1, absl::StrCat("cannot load the catalog: ", s.message()));
  }
  setup->reset();

  auto database = rio::store::Database::Open(database_url,
                                             absl::GetFlag(FLAGS_db_pool_size));
  if (!database.ok()) Fail(1, std::string(database.status().message()));

  // The delivery pipeline: ingest -> dispatcher -> outcomes, with the
  // scheduler feeding retries and orphaned deliveries to the dispatcher.
  auto schedule =
      rio::dispatch::ParseRetrySchedule(absl::GetFlag(FLAGS_retry_schedule));
  if (!schedule.ok()) Fail(2, std::string(schedule.status().message()));
  std::string instance_id = absl::GetFlag(FLAGS_instance_id);
  if (instance_id.empty()) {
    instance_id = rio::util::RandomUuid();
  } else if (auto valid = rio::util::ValidateUuid("--instance_id", instance_id,
                                                  "a UUID");
             !valid.ok()) {
    Fail(2, std::string(valid.message()));
  }
  instance_id = absl::AsciiStrToLower(instance_id);
  const absl::Duration lease_timeout = absl::GetFlag(FLAGS_lease_timeout);
  if (lease_timeout < absl::Milliseconds(300)) {
    Fail(2, "--lease_timeout must be at least 300ms");
  }
  rio::dispatch::Scheduler* scheduler_ptr = nullptr;
  rio::dispatch::HealthPolicy health;
  health.failures = std::max(0, absl::GetFlag(FLAGS_disable_after_failures));
  health.span = absl::GetFlag(FLAGS_disable_after);
  rio::api::TailHub::Options tail_options;
  tail_options.max_streams = std::max(0, absl::GetFlag(FLAGS_max_tail_streams));
  tail_options.max_stream_bytes = static_cast<size_t>(
      std::max<int64_t>(1, absl::GetFlag(FLAGS_tail_buffer_bytes)));
  rio::api::TailHub tail(&catalog, tail_options);
  rio::dispatch::OutcomeWriter outcomes(
      database_url,
      [&scheduler_ptr](absl::Time due) {
        if (scheduler_ptr != nullptr) scheduler_ptr->Poke(due);
      },
      health,
      [&tail](const std::vector<rio::dispatch::AttemptOutcome>& batch) {
        tail.Publish(batch);
      });
  rio::dispatch::Dispatcher::Options dispatch_options;
  dispatch_options.max_in_flight =
      std::max(1, absl::GetFlag(FLAGS_max_in_flight));
  dispatch_options.max_per_handler =
      std::max(1, absl::GetFlag(FLAGS_max_per_handler));
  dispatch_options.max_per_host =
      std::max(1, absl::GetFlag(FLAGS_max_per_host));
  dispatch_options.max_queued =
      std::max(1, absl::GetFlag(FLAGS_max_queued_deliveries));
  dispatch_options.max_queued_per_handler =
      std::max(1, absl::GetFlag(FLAGS_max_queued_per_handler));
  dispatch_options.max_outcome_backlog =
      std::max(1, absl::GetFlag(FLAGS_max_outcome_backlog));
  dispatch_options.max_queued_bytes =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_max_queued_bytes));
  dispatch_options.max_queued_bytes_per_handler =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_max_queued_bytes_per_handler));
  dispatch_options.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  auto egress = EgressGuardFromFlags();
  if (!egress.ok()) Fail(2, std::string(egress.status().message()));
  dispatch_options.egress = egress->get();
  dispatch_options.proxy = absl::GetFlag(FLAGS_egress_proxy);
  dispatch_options.resolve = absl::GetFlag(FLAGS_egress_resolve);
  dispatch_options.ca_file = absl::GetFlag(FLAGS_ca_file);
  if (auto s = rio::dispatch::CheckWebhookCallFlags(dispatch_options);
      !s.ok()) {
    Fail(2, std::string(s.message()));
  }
  std::string egress_line = (*egress)->Describe();
  if (!dispatch_options.proxy.empty()) {
    absl::StrAppend(&egress_line,
                    " through --egress_proxy=", dispatch_options.proxy);
  }
  std::fprintf(stderr, "rio-server: webhook calls: %s\n", egress_line.c_str());
  dispatch_options.user_agent = "rio/" RIO_VERSION;
  // Outcomes are counted on their way to the writer.
  rio::dispatch::MetricsSink counted_outcomes(metrics, &outcomes);
  rio::dispatch::Dispatcher dispatcher(dispatch_options,
                                       rio::dispatch::RetryPolicy(*schedule),
                                       &counted_outcomes);
  rio::dispatch::Scheduler::Options scheduler_options;
  scheduler_options.instance_id = instance_id;
  scheduler_options.lease_timeout = lease_timeout;
  rio::dispatch::Scheduler scheduler(scheduler_options, database_url, &catalog,
                                     &dispatcher, &counted_outcomes);
  scheduler_ptr = &scheduler;
  rio::ingest::IngestWriter::Options ingest_options;
  ingest_options.instance_id = instance_id;
  ingest_options.lease_timeout = lease_timeout;
  ingest_options.idempotency_window = absl::GetFlag(FLAGS_idempotency_window);
  ingest_options.writers = std::max(1, absl::GetFlag(FLAGS_ingest_writers));
  ingest_options.metrics = &metrics;
  ingest_options.max_queued_events =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_max_ingest_queue_events));
  ingest_options.max_queued_bytes =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_max_ingest_queue_bytes));
  // What the dispatcher has no room for waits in PostgreSQL, due and
  // unleased, for a scheduler to claim; what it refuses after all (others
  // took the room meanwhile) is handed back there.
  ingest_options.room =
      [&dispatcher](const std::vector<rio::dispatch::DeliveryJob>& jobs) {
        return dispatcher.WouldTake(jobs);
      };
  ingest_options.queued = [&scheduler] { scheduler.Poke(absl::Now()); };
  rio::ingest::IngestWriter ingest(
      ingest_options, database_url,
      [&dispatcher, &scheduler](std::vector<rio::dispatch::DeliveryJob> jobs) {
        scheduler.Requeue(dispatcher.Submit(std::move(jobs)));
      });
  metrics.AddGaugeCallback("rio_dispatch_in_flight",
                           "Webhook calls in flight in this instance.",
                           [&dispatcher] { return dispatcher.InFlight(); });
  metrics.AddGaugeCallback(
      "rio_handlers_disabled",
      "Handlers that are disabled (by an operator, or after answering 410 "
      "Gone).",
      [&catalog] {
        auto snapshot = catalog.snapshot();
        int disabled = 0;
        for (const auto& [id, handler] : snapshot->handlers_by_id) {
          if (!handler->enabled) ++disabled;
        }
        return static_cast<double>(disabled);
      });
  rio::store::QueueSampler queue_sampler(
      database_url, absl::GetFlag(FLAGS_queue_sample_interval), metrics);
  rio::store::Retention::Options retention_options;
  retention_options.retention = retention;
  retention_options.interval = absl::GetFlag(FLAGS_retention_interval);
  retention_options.partition_width = partition_interval;
  retention_options.idempotency_window =
      absl::GetFlag(FLAGS_idempotency_window);
  // Started whatever the retention: it also creates partitions ahead.
  rio::store::Retention retention_worker(retention_options, database_url,
                                         metrics);
  {
    // No message can be written before the partitions for now exist.
    auto conn = rio::store::PgConnection::Connect(database_url);
    if (!conn.ok()) Fail(1, std::string(conn.status().message()));
    if (auto made = retention_worker.CreatePartitionsAhead(**conn);
        !made.ok()) {
      Fail(1,
           absl::StrCat("cannot create partitions: ", made.status().message()));
    }
  }
  if (retention > absl::ZeroDuration() &&
      retention < absl::GetFlag(FLAGS_idempotency_window)) {
    std::fprintf(stderr,
                 "rio-server: --retention is shorter than "
                 "--idempotency_window: idempotency keys of deleted messages "
                 "no longer return them\n");
  }

  outcomes.Start();
  dispatcher.Start();
  if (auto s = scheduler.Start(); !s.ok()) Fail(1, std::string(s.message()));
  if (auto s = ingest.Start(); !s.ok()) Fail(1, std::string(s.message()));
  queue_sampler.Start();
  retention_worker.Start();

  const int64_t max_payload = absl::GetFlag(FLAGS_max_payload_bytes);
  if (max_payload < 2) Fail(2, "--max_payload_bytes must be at least 2");
  rio::api::CqServer::Options options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.threads = absl::GetFlag(FLAGS_grpc_threads);
  options.memory_quota_bytes = absl::GetFlag(FLAGS_grpc_memory_bytes);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_grpc_max_streams);
  if (tls_files != nullptr) {
    options.credentials = rio::api::ReloadingTlsServerCredentials(tls_files);
  }
  // Oversized payloads must reach the emit service, which names the limit.
  options.max_receive_message_bytes = static_cast<int>(std::min<int64_t>(
      INT32_MAX / 2, std::max<int64_t>(16 << 20, 2 * max_payload + (1 << 20))));
  rio::api::CqServer server(options);

  rio::api::PublicAddress public_address;
  rio::api::AdminDeps deps{database->get(), &catalog, &admin_auth,
                           &public_address, egress->get()};
  public_address.Set(AdvertisedAddress(options.listen));
  public_address.SetTls(tls_files != nullptr);
  auto projects = rio::api::RegisterProjectService(server, deps);
  auto handlers = rio::api::RegisterHandlerService(server, deps);
  auto access = rio::api::RegisterAccessService(server, deps);
  auto deliveries = rio::api::RegisterDeliveryService(server, deps);
  rio::api::AddRecoveryMethods(
      server, deliveries.get(),
      rio::api::RecoveryDeps{deps, &scheduler, lease_timeout});
  rio::api::AddTailMethod(server, deliveries.get(), deps, &tail);
  auto emit = rio::api::RegisterEmitService(
      server, rio::api::EmitDeps{&catalog, &ingest,
                                 static_cast<size_t>(max_payload), &metrics});
  auto bound = server.Start();
  if (!bound.ok()) Fail(1, std::string(bound.status().message()));
  public_address.Set(AdvertisedAddress(*bound));

  std::atomic<bool> database_up{true};
  metrics.AddGaugeCallback(
      "rio_database_up",
      "1 while this instance reaches PostgreSQL (what /readyz and gRPC "
      "health report), else 0.",
      [&database_up] { return database_up.load() ? 1.0 : 0.0; });
  if (auto s = catalog.StartListening([&](bool up) {
        database_up = up;
        server.SetServing(up);
      });
      !s.ok()) {
    Fail(1, absl::StrCat("cannot listen for catalog changes: ", s.message()));
  }

  // The dashboard's API calls the services through the in-process channel.
  rio::http::JsonApi::Options json_api_options;
  // An emit's payload_json is escaped once more inside the request's JSON.
  json_api_options.max_body_bytes =
      static_cast<size_t>(std::max<int64_t>(1 << 20, 2 * max_payload + 65536));
  rio::http::JsonApi json_api(server.InProcessChannel(), &admin_auth,
                              json_api_options);
  rio::http::HttpServer::Options http_options;
  http_options.max_connections = static_cast<size_t>(
      std::max(1, absl::GetFlag(FLAGS_http_max_connections)));
  http_options.max_connections_per_client = static_cast<size_t>(
      std::max(1, absl::GetFlag(FLAGS_http_max_connections_per_client)));
  http_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  http_options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  rio::http::HttpServer http(http_options);
  std::string http_bound = "-";
  if (std::string address = absl::GetFlag(FLAGS_http_listen);
      !address.empty()) {
    http.Route("/healthz", [](const rio::http::Request&) {
      return rio::http::Response{200, "text/plain; charset=utf-8", {}, "ok\n"};
    });
    http.Route("/readyz", [&database_up](const rio::http::Request&) {
      if (database_up.load()) {
        return rio::http::Response{
            200, "text/plain; charset=utf-8", {}, "ready\n"};
      }
      return rio::http::Response{
          503, "text/plain; charset=utf-8", {}, "database unavailable\n"};
    });
    http.Route("/metrics", [&metrics](const rio::http::Request&) {
      return rio::http::Response{200,
                                 std::string(rio::util::kMetricsContentType),
                                 {},
                                 metrics.Render()};
    });
    rio::http::AddDashboardRoutes(http, &json_api);
    auto started = http.Start(address);
    if (!started.ok()) Fail(1, std::string(started.status().message()));
    http_bound = *started;
  }

  if (tls_files != nullptr) {
    std::fprintf(stderr, "rio-server: gRPC over TLS%s with %s\n",
                 tls_files->paths().client_ca_file.empty()
                     ? ""
                     : " (client certificates required)",
                 DescribeCertificate(*tls_files->Current()).c_str());
  }
  std::fprintf(stderr, "rio-server: ready grpc=%s http=%s\n", bound->c_str(),
               http_bound.c_str());
  if (http_bound != "-") {
    std::fprintf(stderr, "rio-server: dashboard %s://%s/\n",
                 http.tls() ? "https" : "http", http_bound.c_str());
  }

  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) break;
    ReloadTls(*tls_files);
    if (http.tls()) {
      // The HTTP listener reads the same files for its new connections.
      const absl::Status reloaded = http.ReloadCertificate();
      std::fprintf(stderr, "rio-server: SIGHUP: %s\n",
                   reloaded.ok() ? "TLS certificate reloaded for new HTTP "
                                   "connections"
                                 : std::string(reloaded.message()).c_str());
    }
  }
  std::fprintf(stderr, "rio-server: %s received, shutting down\n",
               signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  // Stop taking calls (emits in flight are committed and answered), then
  // let deliveries in flight finish, record their outcomes, and hand back
  // the leases of whatever is left so other instances take it at once.
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  const absl::Time start = absl::Now();
  http.Stop();
  tail.Close();  // open tails would hold up the server's shutdown
  retention_worker.Stop();
  queue_sampler.Stop();
  server.Shutdown(grace / 4, [&] {
    ingest.Stop();
    (*database)->Stop();
  });
  scheduler.Stop();
  std::vector<rio::dispatch::DeliveryJob> unfinished = dispatcher.Stop(
      std::max(absl::ZeroDuration(), start + grace * 3 / 4 - absl::Now()));
  outcomes.Stop(
      std::max(absl::ZeroDuration(), start + grace * 9 / 10 - absl::Now()));
  if (auto s = scheduler.ReleaseAll(); !s.ok()) {
    std::fprintf(stderr,
                 "rio-server: could not release %zu deliveries (%s); other "
                 "instances take them after --lease_timeout\n",
                 unfinished.size(), std::string(s.message()).c_str());
  }
  catalog.Stop();
  std::fprintf(stderr, "rio-server: stopped\n");
  return 0;
}
