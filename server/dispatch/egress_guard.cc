#include "server/dispatch/egress_guard.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rio::dispatch {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};

bool IsMapped(const IpAddress& ip) {
  return std::memcmp(ip.data(), kMappedPrefix, 12) == 0;
}

IpAddress MappedV4(const uint8_t* v4) {
  IpAddress ip{};
  std::memcpy(ip.data(), kMappedPrefix, 12);
  std::memcpy(ip.data() + 12, v4, 4);
  return ip;
}

struct Rule {
  const char* cidr;
  const char* what;
  bool public_only;  // refused only under --egress=public
};

// Most specific first: the first rule that matches names the refusal.
constexpr Rule kRules[] = {
    // IPv4
    {"0.0.0.0/8", "\"this network\" (0.0.0.0/8)", false},
    {"127.0.0.0/8", "loopback (127.0.0.0/8)", false},
    {"169.254.169.254/32", "the cloud instance metadata service", false},
    {"169.254.0.0/16", "link-local (169.254.0.0/16)", false},
    {"100.100.100.200/32", "a cloud instance metadata service (Alibaba)",
     false},
    {"168.63.129.16/32", "a cloud host platform endpoint (Azure)", false},
    {"192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)", false},
    {"192.0.2.0/24", "documentation (192.0.2.0/24)", false},
    {"198.51.100.0/24", "documentation (198.51.100.0/24)", false},
    {"203.0.113.0/24", "documentation (203.0.113.0/24)", false},
    {"198.18.0.0/15", "benchmarking (198.18.0.0/15)", false},
    {"224.0.0.0/4", "multicast (224.0.0.0/4)", false},
    {"255.255.255.255/32", "broadcast (255.255.255.255)", false},
    {"240.0.0.0/4", "reserved (240.0.0.0/4)", false},
    {"10.0.0.0/8", "private (10.0.0.0/8, RFC 1918)", true},
    {"172.16.0.0/12", "private (172.16.0.0/12, RFC 1918)", true},
    {"192.168.0.0/16", "private (192.168.0.0/16, RFC 1918)", true},
    {"100.64.0.0/10", "shared address space (100.64.0.0/10, CGNAT)", true},
    // IPv6 (forms carrying IPv4 are checked as the IPv4 address)
    {"::/128", "the unspecified address (::)", false},
    {"::1/128", "loopback (::1)", false},
    {"::/96", "IPv4-compatible (::/96, deprecated)", false},
    {"100::/64", "discard-only (100::/64)", false},
    {"2001::/32", "Teredo (2001::/32)", false},
    {"2001:db8::/32", "documentation (2001:db8::/32)", false},
    {"fd00:ec2::254/128", "the cloud instance metadata service (AWS)", false},
    {"fe80::/10", "link-local (fe80::/10)", false},
    {"fec0::/10", "site-local (fec0::/10, deprecated)", false},
    {"ff00::/8", "multicast (ff00::/8)", false},
    {"fc00::/7", "unique local (fc00::/7)", true},
};

struct ParsedRule {
  IpNetwork network;
  const Rule* rule;
};

const std::vector<ParsedRule>& Rules() {
  static const auto* rules = [] {
    auto* parsed = new std::vector<ParsedRule>();
    for (const Rule& rule : kRules) {
      absl::StatusOr<IpNetwork> network = ParseIpNetwork(rule.cidr);
      if (!network.ok()) std::abort();  // the table above is wrong
      parsed->push_back({*std::move(network), &rule});
    }
    return parsed;
  }();
  return *rules;
}

// The IPv4 address (mapped) carried by an IPv6 form that embeds one, or
// the address itself.
IpAddress Effective(const IpAddress& ip) {
  static constexpr uint8_t kTranslated[12] = {0, 0, 0,    0,    0, 0,
                                              0, 0, 0xff, 0xff, 0, 0};
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0,
                                         0, 0,    0,    0,    0, 0};
  static constexpr uint8_t kNat64Local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
  if (std::memcmp(ip.data(), kTranslated, 12) == 0 ||
      std::memcmp(ip.data(), kNat64, 12) == 0 ||
      std::memcmp(ip.data(), kNat64Local, 6) == 0) {
    return MappedV4(ip.data() + 12);
  }
  if (ip[0] == 0x20 && ip[1] == 0x02) return MappedV4(ip.data() + 2);  // 6to4
  return ip;
}

std::string HostPrefix(const IpAddress& ip) {
  return absl::StrCat(IpAddressText(ip), IsMapped(ip) ? "/32" : "/128");
}

}  // namespace

bool IpAddressOf(const sockaddr* address, IpAddress* out) {
  if (address == nullptr) return false;
  if (address->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
    *out = MappedV4(reinterpret_cast<const uint8_t*>(&v4->sin_addr));
    return true;
  }
  if (address->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
    std::memcpy(out->data(), &v6->sin6_addr, 16);
    return true;
  }
  return false;
}

bool ParseIpAddress(absl::string_view text, IpAddress* out) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return false;
  const std::string copy(text);
  uint8_t v4[4];
  if (inet_pton(AF_INET, copy.c_str(), v4) == 1) {
    *out = MappedV4(v4);
    return true;
  }
  return inet_pton(AF_INET6, copy.c_str(), out->data()) == 1;
}

std::string IpAddressText(const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (IsMapped(address)) {
    inet_ntop(AF_INET, address.data() + 12, text, sizeof(text));
  } else {
    inet_ntop(AF_INET6, address.data(), text, sizeof(text));
  }
  return text;
}

bool IpNetwork::Contains(const IpAddress& ip) const {
  const int whole = prefix_length / 8;
  if (std::memcmp(ip.data(), address.data(), whole) != 0) return false;
  const int bits = prefix_length % 8;
  if (bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00 >> bits);
  return (ip[whole] & mask) == (address[whole] & mask);
}

absl::StatusOr<IpNetwork> ParseIpNetwork(absl::string_view text) {
  const absl::string_view written = text;
  text = absl::StripAsciiWhitespace(text);
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", absl::CHexEscape(written), "\" ", why));
  };
  IpNetwork network;
  const size_t slash = text.find('/');
  if (!ParseIpAddress(text.substr(0, slash), &network.address)) {
    return invalid(
        "is not an IPv4 or IPv6 network (like 10.0.0.0/8 or fd00::/8)");
  }
  const bool v4 = IsMapped(network.address);
  const int max_bits = v4 ? 32 : 128;
  int bits = max_bits;
  if (slash != absl::string_view::npos) {
    const absl::string_view length = text.substr(slash + 1);
    if (length.empty() || length.size() > 3 ||
        !std::all_of(length.begin(), length.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(length, &bits) || bits > max_bits) {
      return invalid(
          absl::StrCat("has a prefix length that is not 0 to ", max_bits));
    }
  }
  network.prefix_length = v4 ? 96 + bits : bits;
  IpNetwork masked = network;
  for (int bit = network.prefix_length; bit < 128; ++bit) {
    masked.address[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  }
  if (masked.address != network.address) {
    return invalid(absl::StrCat("has bits set past its prefix (the network is ",
                                IpAddressText(masked.address), "/", bits, ")"));
  }
  network.text = absl::StrCat(IpAddressText(network.address), "/", bits);
  return network;
}

absl::StatusOr<std::vector<IpNetwork>> ParseIpNetworks(absl::string_view flag,
                                                       absl::string_view text) {
  std::vector<IpNetwork> networks;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    if (absl::StripAsciiWhitespace(item).empty()) continue;
    absl::StatusOr<IpNetwork> network = ParseIpNetwork(item);
    if (!network.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": ", network.status().message()));
    }
    networks.push_back(*std::move(network));
  }
  return networks;
}

absl::StatusOr<EgressGuard::Policy> EgressGuard::ParsePolicy(
    absl::string_view text) {
  if (text == "private") return Policy::kPrivate;
  if (text == "public") return Policy::kPublic;
  return absl::InvalidArgumentError(absl::StrCat(
      "--egress must be private (refuse this host, link-local and metadata "
      "addresses) or public (also refuse private ranges), not \"",
      absl::CHexEscape(text), "\""));
}

absl::string_view EgressGuard::PolicyName(Policy policy) {
  return policy == Policy::kPublic ? "public" : "private";
}

EgressGuard::EgressGuard(Options options) : options_(std::move(options)) {}

std::string EgressGuard::PolicyRefusal(const IpAddress& ip) const {
  const bool public_policy = options_.policy == Policy::kPublic;
  for (const ParsedRule& rule : Rules()) {
    if (rule.rule->public_only && !public_policy) continue;
    if (rule.network.Contains(ip)) return rule.rule->what;
  }
  if (public_policy && !IsMapped(ip) && (ip[0] & 0xe0) != 0x20) {
    return "not global unicast (outside 2000::/3)";
  }
  return "";
}

bool EgressGuard::IsHostAddress(const IpAddress& ip) const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (now - host_addresses_time_ >= options_.host_addresses_refresh) {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
      host_addresses_.clear();
      for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
        IpAddress address;
        if (IpAddressOf(a->ifa_addr, &address)) {
          host_addresses_.push_back(address);
        }
      }
      freeifaddrs(list);
      host_addresses_time_ = now;
    }
    // When the interfaces cannot be read the last snapshot stays.
  }
  return std::find(host_addresses_.begin(), host_addresses_.end(), ip) !=
         host_addresses_.end();
}

std::string EgressGuard::CheckAddress(const IpAddress& address) const {
  const IpAddress effective = Effective(address);
  const std::string text =
      effective == address ? IpAddressText(address)
                           : absl::StrCat(IpAddressText(address), " (carrying ",
                                          IpAddressText(effective), ")");

  // The operator's lists first: the longest matching prefix decides.
  const IpNetwork* best = nullptr;
  bool best_denies = false;
  auto consider = [&](const std::vector<IpNetwork>& list, bool denies) {
    for (const IpNetwork& network : list) {
      if (!network.Contains(address) && !network.Contains(effective)) continue;
      if (best == nullptr || network.prefix_length > best->prefix_length ||
          (network.prefix_length == best->prefix_length && denies)) {
        best = &network;
        best_denies = denies;
      }
    }
  };
  consider(options_.allow, false);
  consider(options_.deny, true);
  if (best != nullptr) {
    if (!best_denies) return "";
    return absl::StrCat(text, " is in --egress_deny=", best->text);
  }

  const std::string allow_hint =
      absl::StrCat("; --egress_allow=", HostPrefix(effective), " allows it");
  // A form carrying IPv4 is judged by the address it carries alone.
  const std::string refusal = PolicyRefusal(effective);
  if (!refusal.empty()) {
    return absl::StrCat(text, " is ", refusal, ", refused under --egress=",
                        PolicyName(options_.policy), allow_hint);
  }
  if (options_.refuse_host_addresses &&
      (IsHostAddress(effective) || IsHostAddress(address))) {
    return absl::StrCat(text,
                        " is an address of this host, refused under "
                        "--egress_refuse_host_addresses",
                        allow_hint);
  }
  return "";
}

std::string EgressGuard::CheckAddress(const sockaddr* address) const {
  IpAddress ip;
  if (!IpAddressOf(address, &ip)) return "";  // not an IP socket
  return CheckAddress(ip);
}

absl::Status EgressGuard::CheckUrl(absl::string_view field,
                                   absl::string_view url) const {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> parsed(curl_url(),
                                                             curl_url_cleanup);
  if (parsed == nullptr) return absl::ResourceExhaustedError("out of memory");
  const std::string url_text(url);
  auto quoted = [&] { return absl::StrCat("\"", absl::CHexEscape(url), "\""); };
  if (curl_url_set(parsed.get(), CURLUPART_URL, url_text.c_str(), 0) !=
      CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", quoted(), " is not a URL"));
  }
  char* scheme = nullptr;
  char* host = nullptr;
  curl_url_get(parsed.get(), CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0);
  const std::string scheme_text = scheme == nullptr ? "" : scheme;
  std::string host_text = host == nullptr ? "" : host;
  curl_free(scheme);
  curl_free(host);

  if (options_.https_only && !absl::EqualsIgnoreCase(scheme_text, "https")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", quoted(),
                     " must be https://: this server calls only https:// URLs "
                     "(--https_only)"));
  }

  absl::string_view host_view = host_text;
  if (absl::ConsumePrefix(&host_view, "["))
    absl::ConsumeSuffix(&host_view, "]");
  host_view = host_view.substr(0, host_view.find('%'));  // a zone id
  IpAddress address;
  std::string refusal;
  if (ParseIpAddress(host_view, &address)) {
    refusal = CheckAddress(address);
  } else {
    // Names that are loopback by definition (RFC 6761); curl answers them
    // itself without asking DNS.
    std::string name = absl::AsciiStrToLower(host_view);
    if (absl::EndsWith(name, ".")) name.pop_back();
    if (name == "localhost" || absl::EndsWith(name, ".localhost")) {
      ParseIpAddress("127.0.0.1", &address);
      refusal = CheckAddress(address);
      if (!refusal.empty()) {
        refusal = absl::StrCat(name, " means 127.0.0.1, and ", refusal);
      }
    }
  }
  if (refusal.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " ", quoted(), ": ", refusal));
}

std::string EgressGuard::Describe() const {
  std::string text = absl::StrCat("--egress=", PolicyName(options_.policy));
  auto list = [&](const char* flag, const std::vector<IpNetwork>& networks) {
    if (networks.empty()) return;
    absl::StrAppend(&text, " --", flag, "=");
    for (size_t i = 0; i < networks.size(); ++i) {
      absl::StrAppend(&text, i == 0 ? "" : ",", networks[i].text);
    }
  };
  list("egress_allow", options_.allow);
  list("egress_deny", options_.deny);
  if (!options_.refuse_host_addresses) {
    absl::StrAppend(&text, " --egress_refuse_host_addresses=false");
  }
  if (options_.https_only) absl::StrAppend(&text, " --https_only");
  return text;
}

}  // namespace rio::dispatch
