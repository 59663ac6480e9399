// The egress guard: which addresses a webhook call may connect to.
//
// Anyone who may create a handler chooses where Rio connects, and reads the
// reply in the attempt log, so the destination is checked like any other
// outside input. Rio exists to call services inside its operator's network,
// so the default policy (`private`) allows the private ranges and refuses
// only what a handler author must never reach: this host (loopback, and by
// default the addresses of this host's own interfaces), link-local addresses
// (where clouds serve instance metadata and credentials), the other known
// metadata addresses, and ranges that are not unicast destinations at all.
// The `public` policy also refuses the private ranges, for installations
// whose handler authors are not trusted with the internal network.
// CIDRs given to --egress_allow / --egress_deny win over the policy (the
// longest matching prefix decides; a tie goes to deny).
//
// IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96,
// IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48,
// 6to4 2002::/16) count as the IPv4 address they carry.
//
// The dispatcher asks CheckAddress for every socket curl opens, after name
// resolution and right before connect, so a name cannot resolve to one
// address when checked and another when called (DNS rebinding).
//
// Thread-safety: immutable after construction except for the snapshot of
// this host's addresses, which is guarded; every method may be called from
// any thread.
#ifndef RIO_SERVER_DISPATCH_EGRESS_GUARD_H_
#define RIO_SERVER_DISPATCH_EGRESS_GUARD_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rio::dispatch {

// An IPv6 address; IPv4 addresses are held in their IPv4-mapped form
// (::ffff:a.b.c.d), so one comparison serves both families.
using IpAddress = std::array<uint8_t, 16>;

// The address of a socket address (AF_INET or AF_INET6); false for others.
bool IpAddressOf(const sockaddr* address, IpAddress* out);
// Parses a literal IPv4 or IPv6 address (no brackets, no zone).
bool ParseIpAddress(absl::string_view text, IpAddress* out);
// "127.0.0.1" for IPv4-mapped addresses, RFC 5952 text for the others.
std::string IpAddressText(const IpAddress& address);

// A network: the first `prefix_length` bits of `address` (of 128; an IPv4
// /n is 96 + n).
struct IpNetwork {
  IpAddress address{};
  int prefix_length = 0;
  std::string text;  // as written in CIDR form ("10.0.0.0/8")

  bool Contains(const IpAddress& ip) const;
};

// "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128).
// INVALID_ARGUMENT naming the text when it is none of these, or when bits
// are set past the prefix ("10.1.0.0/8").
absl::StatusOr<IpNetwork> ParseIpNetwork(absl::string_view text);
// A comma-separated list of networks, for the flag named `flag`; empty text
// is an empty list.
absl::StatusOr<std::vector<IpNetwork>> ParseIpNetworks(absl::string_view flag,
                                                       absl::string_view text);

class EgressGuard {
 public:
  enum class Policy { kPrivate, kPublic };

  struct Options {
    Policy policy = Policy::kPrivate;
    std::vector<IpNetwork> allow;
    std::vector<IpNetwork> deny;
    // Refuse the addresses of this host's own network interfaces (read
    // again at most every `host_addresses_refresh`).
    bool refuse_host_addresses = true;
    absl::Duration host_addresses_refresh = absl::Seconds(30);
    // Refuse http:// handler URLs.
    bool https_only = false;
  };

  // "private" or "public"; INVALID_ARGUMENT otherwise.
  static absl::StatusOr<Policy> ParsePolicy(absl::string_view text);
  static absl::string_view PolicyName(Policy policy);

  explicit EgressGuard(Options options);
  EgressGuard(const EgressGuard&) = delete;
  EgressGuard& operator=(const EgressGuard&) = delete;

  // Why a connection to `address` is refused, naming the address, the rule
  // and the flag that would allow it; "" when it is allowed.
  std::string CheckAddress(const IpAddress& address) const;
  std::string CheckAddress(const sockaddr* address) const;

  // For a handler URL being saved (already a valid http(s) URL): OK, or
  // INVALID_ARGUMENT when the scheme is http:// under https_only, or when
  // the host is a literal address, or localhost, that CheckAddress refuses.
  // Names that resolve to refused addresses are caught when called.
  absl::Status CheckUrl(absl::string_view field, absl::string_view url) const;

  bool https_only() const { return options_.https_only; }
  // The policy and lists in one line, for the start-up log.
  std::string Describe() const;

 private:
  // Why the policy's rules refuse `address` (IPv4 given mapped), or "".
  std::string PolicyRefusal(const IpAddress& address) const;
  bool IsHostAddress(const IpAddress& address) const;

  const Options options_;
  mutable absl::Mutex mu_;
  mutable std::vector<IpAddress> host_addresses_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time host_addresses_time_ ABSL_GUARDED_BY(mu_) =
      absl::InfinitePast();
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_EGRESS_GUARD_H_
