// How rioctl shows Rio's objects in table mode: one row per object for
// lists, "Key: value" fields for one object. Pure functions of the message
// and the current time; thread-compatible.
#ifndef RIO_TOOLS_RIOCTL_VIEWS_H_
#define RIO_TOOLS_RIOCTL_VIEWS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rio/v1/access.pb.h"
#include "rio/v1/delivery.pb.h"
#include "rio/v1/handler.pb.h"
#include "rio/v1/project.pb.h"
#include "tools/rioctl/output.h"

namespace rio::rioctl {

std::string ProjectsTable(const std::vector<v1::Project>& projects,
                          absl::Time now);
std::string ProjectFields(const v1::Project& project, absl::Time now);
std::string SendersTable(const std::vector<v1::Sender>& senders,
                         absl::Time now);
std::string HandlersTable(const std::vector<v1::Handler>& handlers,
                          absl::Time now);
// The client certificate shows as its subject and expiry, the client key
// only as "•••" or "none".
std::string HandlerFields(const v1::Handler& handler, absl::Time now);

// "200", "500", "timeout", "-" (no attempt yet).
std::string LastResult(const v1::Delivery& delivery);
std::string DeliveriesTable(const std::vector<v1::Delivery>& deliveries,
                            absl::Time now, const Colours& colours);
// Fields, the attempts as a table, and one attempt's response in full
// (`attempt_number`, or the last when 0).
std::string DeliveryDetails(const v1::Delivery& delivery, absl::Time now,
                            int attempt_number);
std::string RecoveryFields(const v1::Recovery& recovery, absl::Time now);
std::string RecoveriesTable(const std::vector<v1::Recovery>& recoveries,
                            absl::Time now);
std::string StatsFields(const v1::HandlerStats& stats);
// One line per streamed attempt.
std::string TailLine(const v1::TailDeliveriesResponse& event,
                     const Colours& colours);
// "[#####.....]  50%  5/10 re-queued (succeeded 3, failed 0, pending 2)".
std::string ProgressBar(const v1::Recovery& recovery, int width);

// Access tokens. A scope as rioctl writes it: "admin", "project-admin",
// "read-only".
std::string ScopeName(v1::AccessToken::Scope scope);
// The inverse, also accepting the proto's names ("READ_ONLY"); a usage
// message naming --scope otherwise.
absl::StatusOr<v1::AccessToken::Scope> ParseScope(absl::string_view text);
// "in 30d", "never", "expired 5m ago": when a token expires, relative to now.
std::string Expiry(const google::protobuf::Timestamp& expire_time,
                   absl::Time now);
// NAME, SCOPE, PROJECT ("(all)" when not limited to one), CREATED, EXPIRES.
std::string AccessTokensTable(const std::vector<v1::AccessToken>& tokens,
                              absl::Time now);
// Name, Scope, Project and Expires of a token just created.
std::string AccessTokenFields(const v1::AccessToken& token, absl::Time now);
// Name, Scope and Project of the caller (GetCaller's answer).
std::string CallerFields(const v1::AccessToken& caller);

// "succeeded", "pending", …
std::string StatusName(v1::Delivery::Status status);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_VIEWS_H_
