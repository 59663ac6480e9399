// The egress guard's parsers and checks (server/dispatch/egress_guard.h):
// handler URLs as callers send them, CIDRs as flags give them, and any 16
// bytes as an address curl is about to connect to.
//
// Invariants: CheckUrl answers OK or INVALID_ARGUMENT naming the field; a
// parsed
// network contains its own address and prints as text that parses back to
// the same network; CheckAddress never allows loopback, link-local or
// metadata addresses in any of their IPv6 forms.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/dispatch/egress_guard.h"
#include "server/util/validation.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using rio::dispatch::EgressGuard;
using rio::dispatch::IpAddress;
using rio::dispatch::IpNetwork;

const EgressGuard& Guard() {
  static const EgressGuard* guard = [] {
    EgressGuard::Options options;
    options.refuse_host_addresses = false;  // no syscalls per input
    return new EgressGuard(options);
  }();
  return *guard;
}

bool IsLoopbackOrMetadata(const IpAddress& ip) {
  static const char* const kNever[] = {"127.0.0.0/8", "169.254.0.0/16",
                                       "::1/128", "fe80::/10",
                                       "fd00:ec2::254/128"};
  for (const char* cidr : kNever) {
    if (rio::dispatch::ParseIpNetwork(cidr)->Contains(ip)) return true;
  }
  return false;
}

void CheckUrl(absl::string_view url) {
  if (!rio::util::ValidateWebhookUrl("url", url).ok()) return;
  const absl::Status status = Guard().CheckUrl("url", url);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(status.message(), "url \""));
  }
}

void CheckNetwork(absl::string_view text) {
  absl::StatusOr<IpNetwork> network = rio::dispatch::ParseIpNetwork(text);
  if (!network.ok()) {
    FUZZ_CHECK(network.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(network->prefix_length >= 0 && network->prefix_length <= 128);
  FUZZ_CHECK(network->Contains(network->address));
  absl::StatusOr<IpNetwork> again =
      rio::dispatch::ParseIpNetwork(network->text);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->address == network->address);
  FUZZ_CHECK(again->prefix_length == network->prefix_length);
}

void CheckAddress(const uint8_t* data, size_t size) {
  if (size < 16) return;
  IpAddress ip;
  std::memcpy(ip.data(), data, 16);
  const std::string refusal = Guard().CheckAddress(ip);
  if (IsLoopbackOrMetadata(ip)) FUZZ_CHECK(!refusal.empty());
  // The same address as IPv4-mapped and NAT64 forms of an IPv4 one.
  IpAddress mapped{};
  mapped[10] = mapped[11] = 0xff;
  std::memcpy(mapped.data() + 12, data, 4);
  IpAddress nat64{};
  nat64[1] = 0x64;
  nat64[2] = 0xff;
  nat64[3] = 0x9b;
  std::memcpy(nat64.data() + 12, data, 4);
  FUZZ_CHECK(Guard().CheckAddress(mapped).empty() ==
             Guard().CheckAddress(nat64).empty());
  if (IsLoopbackOrMetadata(mapped)) {
    FUZZ_CHECK(!Guard().CheckAddress(nat64).empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckUrl(text);
  CheckNetwork(text);
  CheckAddress(data, size);
  return 0;
}
