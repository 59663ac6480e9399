#include "server/dispatch/egress_guard.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rio::dispatch {
namespace {

using ::testing::HasSubstr;

IpAddress Ip(const std::string& text) {
  IpAddress ip{};
  EXPECT_TRUE(ParseIpAddress(text, &ip)) << text;
  return ip;
}

EgressGuard::Options Policy(EgressGuard::Policy policy) {
  EgressGuard::Options options;
  options.policy = policy;
  options.refuse_host_addresses = false;
  return options;
}

TEST(IpNetworkTest, ParsesBothFamiliesAndBareAddresses) {
  auto v4 = ParseIpNetwork("10.0.0.0/8");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->prefix_length, 104);
  EXPECT_EQ(v4->text, "10.0.0.0/8");
  EXPECT_TRUE(v4->Contains(Ip("10.255.1.2")));
  EXPECT_FALSE(v4->Contains(Ip("11.0.0.1")));
  EXPECT_TRUE(v4->Contains(Ip("::ffff:10.1.2.3")));

  auto v6 = ParseIpNetwork(" fd00::/8 ");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->text, "fd00::/8");
  EXPECT_TRUE(v6->Contains(Ip("fd12::1")));
  EXPECT_FALSE(v6->Contains(Ip("fc00::1")));

  auto host = ParseIpNetwork("192.168.1.7");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->text, "192.168.1.7/32");
  auto zero = ParseIpNetwork("0.0.0.0/0");
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->Contains(Ip("8.8.8.8")));
  EXPECT_FALSE(zero->Contains(Ip("2001:4860::1")));
}

TEST(IpNetworkTest, RefusesWhatIsNotANetwork) {
  EXPECT_EQ(ParseIpNetwork("10.0.0.0/33").status().message(),
            "\"10.0.0.0/33\" has a prefix length that is not 0 to 32");
  EXPECT_EQ(ParseIpNetwork("10.1.0.0/8").status().message(),
            "\"10.1.0.0/8\" has bits set past its prefix (the network is "
            "10.0.0.0/8)");
  EXPECT_EQ(ParseIpNetwork("example.com/8").status().message(),
            "\"example.com/8\" is not an IPv4 or IPv6 network (like "
            "10.0.0.0/8 or fd00::/8)");
  EXPECT_FALSE(ParseIpNetwork("10.0.0.0/").ok());
  EXPECT_FALSE(ParseIpNetwork("10.0.0.0/-1").ok());
  EXPECT_FALSE(ParseIpNetwork("::/129").ok());
  EXPECT_FALSE(ParseIpNetwork("").ok());
  auto list = ParseIpNetworks("egress_allow", "127.0.0.1/32,, ::1");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 2u);
  EXPECT_EQ(
      ParseIpNetworks("egress_deny", "10.0.0.0/8,nope").status().message(),
      "--egress_deny: \"nope\" is not an IPv4 or IPv6 network (like "
      "10.0.0.0/8 or fd00::/8)");
}

// Every range the default policy refuses, with the rule it names.
TEST(EgressGuardTest, PrivatePolicyRefusesHostLinkLocalMetadataAndReserved) {
  const EgressGuard guard(Policy(EgressGuard::Policy::kPrivate));
  const std::pair<const char*, const char*> refused[] = {
      {"0.1.2.3", "\"this network\" (0.0.0.0/8)"},
      {"127.0.0.1", "loopback (127.0.0.0/8)"},
      {"127.255.0.9", "loopback (127.0.0.0/8)"},
      {"169.254.169.254", "the cloud instance metadata service"},
      {"169.254.1.1", "link-local (169.254.0.0/16)"},
      {"100.100.100.200", "a cloud instance metadata service (Alibaba)"},
      {"168.63.129.16", "a cloud host platform endpoint (Azure)"},
      {"192.0.0.8", "IETF protocol assignments (192.0.0.0/24)"},
      {"192.0.2.10", "documentation (192.0.2.0/24)"},
      {"198.51.100.1", "documentation (198.51.100.0/24)"},
      {"203.0.113.77", "documentation (203.0.113.0/24)"},
      {"198.19.0.1", "benchmarking (198.18.0.0/15)"},
      {"224.0.0.251", "multicast (224.0.0.0/4)"},
      {"239.1.2.3", "multicast (224.0.0.0/4)"},
      {"255.255.255.255", "broadcast (255.255.255.255)"},
      {"240.0.0.1", "reserved (240.0.0.0/4)"},
      {"::", "the unspecified address (::)"},
      {"::1", "loopback (::1)"},
      {"::7f00:1", "IPv4-compatible (::/96, deprecated)"},
      {"100::1", "discard-only (100::/64)"},
      {"2001::1", "Teredo (2001::/32)"},
      {"2001:db8::1", "documentation (2001:db8::/32)"},
      {"fd00:ec2::254", "the cloud instance metadata service (AWS)"},
      {"fe80::1", "link-local (fe80::/10)"},
      {"febf::1", "link-local (fe80::/10)"},
      {"fec0::1", "site-local (fec0::/10, deprecated)"},
      {"ff02::1", "multicast (ff00::/8)"},
  };
  for (const auto& [address, rule] : refused) {
    const std::string refusal = guard.CheckAddress(Ip(address));
    EXPECT_THAT(refusal, HasSubstr(std::string(" is ") + rule +
                                   ", refused under --egress=private"))
        << address;
  }
  EXPECT_EQ(guard.CheckAddress(Ip("127.0.0.1")),
            "127.0.0.1 is loopback (127.0.0.0/8), refused under "
            "--egress=private; --egress_allow=127.0.0.1/32 allows it");
  EXPECT_EQ(guard.CheckAddress(Ip("fe80::1")),
            "fe80::1 is link-local (fe80::/10), refused under "
            "--egress=private; --egress_allow=fe80::1/128 allows it");

  // Private ranges and public addresses are allowed.
  for (const char* address :
       {"10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1",
        "fd00::2", "fc00::1", "8.8.8.8", "2606:4700::1111", "172.32.0.1",
        "169.253.255.255"}) {
    EXPECT_EQ(guard.CheckAddress(Ip(address)), "") << address;
  }
}

TEST(EgressGuardTest, PublicPolicyAlsoRefusesPrivateRanges) {
  const EgressGuard guard(Policy(EgressGuard::Policy::kPublic));
  const std::pair<const char*, const char*> refused[] = {
      {"10.1.2.3", "private (10.0.0.0/8, RFC 1918)"},
      {"172.20.0.1", "private (172.16.0.0/12, RFC 1918)"},
      {"192.168.0.10", "private (192.168.0.0/16, RFC 1918)"},
      {"100.64.0.1", "shared address space (100.64.0.0/10, CGNAT)"},
      {"100.127.255.254", "shared address space (100.64.0.0/10, CGNAT)"},
      {"fd00::2", "unique local (fc00::/7)"},
      {"fc00::1", "unique local (fc00::/7)"},
      {"127.0.0.1", "loopback (127.0.0.0/8)"},
      {"169.254.169.254", "the cloud instance metadata service"},
      {"4000::1", "not global unicast (outside 2000::/3)"},
  };
  for (const auto& [address, rule] : refused) {
    EXPECT_THAT(guard.CheckAddress(Ip(address)),
                HasSubstr(std::string(" is ") + rule +
                          ", refused under --egress=public"))
        << address;
  }
  for (const char* address : {"8.8.8.8", "2606:4700::1111", "100.128.0.1"}) {
    EXPECT_EQ(guard.CheckAddress(Ip(address)), "") << address;
  }
}

TEST(EgressGuardTest, FormsCarryingIpv4CountAsTheAddressTheyCarry) {
  const EgressGuard guard(Policy(EgressGuard::Policy::kPrivate));
  EXPECT_EQ(guard.CheckAddress(Ip("::ffff:127.0.0.1")),
            "127.0.0.1 is loopback (127.0.0.0/8), refused under "
            "--egress=private; --egress_allow=127.0.0.1/32 allows it");
  EXPECT_EQ(guard.CheckAddress(Ip("::ffff:0:127.0.0.1")),
            "::ffff:0:7f00:1 (carrying 127.0.0.1) is loopback (127.0.0.0/8), "
            "refused under --egress=private; --egress_allow=127.0.0.1/32 "
            "allows it");
  EXPECT_THAT(guard.CheckAddress(Ip("64:ff9b::169.254.169.254")),
              HasSubstr("(carrying 169.254.169.254) is the cloud instance "
                        "metadata service"));
  EXPECT_THAT(guard.CheckAddress(Ip("64:ff9b:1::a9fe:a9fe")),
              HasSubstr("(carrying 169.254.169.254)"));
  EXPECT_THAT(guard.CheckAddress(Ip("2002:7f00:1::1")),
              HasSubstr("(carrying 127.0.0.1) is loopback"));
  // Carrying an allowed address, the form is allowed.
  EXPECT_EQ(guard.CheckAddress(Ip("::ffff:10.0.0.1")), "");
  EXPECT_EQ(guard.CheckAddress(Ip("64:ff9b::8.8.8.8")), "");

  const EgressGuard strict(Policy(EgressGuard::Policy::kPublic));
  EXPECT_THAT(strict.CheckAddress(Ip("::ffff:192.168.1.1")),
              HasSubstr("192.168.1.1 is private (192.168.0.0/16, RFC 1918)"));
  EXPECT_EQ(strict.CheckAddress(Ip("64:ff9b::8.8.8.8")), "");
}

TEST(EgressGuardTest, ListsWinOverThePolicyLongestPrefixFirst) {
  EgressGuard::Options options = Policy(EgressGuard::Policy::kPrivate);
  options.allow = *ParseIpNetworks("egress_allow", "127.0.0.1/32,10.9.0.0/16");
  options.deny = *ParseIpNetworks("egress_deny", "10.0.0.0/8,10.9.9.9");
  const EgressGuard guard(options);
  EXPECT_EQ(guard.CheckAddress(Ip("127.0.0.1")), "");
  EXPECT_EQ(guard.CheckAddress(Ip("::ffff:127.0.0.1")), "");
  EXPECT_THAT(guard.CheckAddress(Ip("127.0.0.2")), HasSubstr("loopback"));
  EXPECT_EQ(guard.CheckAddress(Ip("10.1.1.1")),
            "10.1.1.1 is in --egress_deny=10.0.0.0/8");
  EXPECT_EQ(guard.CheckAddress(Ip("10.9.1.1")), "");
  EXPECT_EQ(guard.CheckAddress(Ip("10.9.9.9")),
            "10.9.9.9 is in --egress_deny=10.9.9.9/32");

  // A tie goes to deny.
  EgressGuard::Options tie = Policy(EgressGuard::Policy::kPrivate);
  tie.allow = *ParseIpNetworks("egress_allow", "192.168.0.0/16");
  tie.deny = *ParseIpNetworks("egress_deny", "192.168.0.0/16");
  EXPECT_EQ(EgressGuard(tie).CheckAddress(Ip("192.168.3.4")),
            "192.168.3.4 is in --egress_deny=192.168.0.0/16");
}

TEST(EgressGuardTest, RefusesThisHostsOwnAddresses) {
  ifaddrs* list = nullptr;
  ASSERT_EQ(getifaddrs(&list), 0);
  std::vector<IpAddress> own;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    IpAddress ip;
    if (IpAddressOf(a->ifa_addr, &ip)) own.push_back(ip);
  }
  freeifaddrs(list);
  ASSERT_FALSE(own.empty());

  EgressGuard::Options options;  // refuse_host_addresses by default
  const EgressGuard guard(options);
  for (const IpAddress& ip : own) {
    EXPECT_NE(guard.CheckAddress(ip), "") << IpAddressText(ip);
  }
  // An own address outside every policy range is refused as this host's.
  for (const IpAddress& ip : own) {
    EgressGuard::Options open = Policy(EgressGuard::Policy::kPrivate);
    if (!EgressGuard(open).CheckAddress(ip).empty()) continue;
    EXPECT_EQ(guard.CheckAddress(ip),
              IpAddressText(ip) +
                  " is an address of this host, refused under "
                  "--egress_refuse_host_addresses; --egress_allow=" +
                  IpAddressText(ip) +
                  (ip[10] == 0xff && ip[0] == 0 ? "/32" : "/128") +
                  " allows it");
  }
}

TEST(EgressGuardTest, CheckAddressReadsSocketAddresses) {
  const EgressGuard guard(Policy(EgressGuard::Policy::kPrivate));
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "169.254.169.254", &v4.sin_addr);
  EXPECT_THAT(guard.CheckAddress(reinterpret_cast<sockaddr*>(&v4)),
              HasSubstr("169.254.169.254 is the cloud instance metadata"));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
  EXPECT_THAT(guard.CheckAddress(reinterpret_cast<sockaddr*>(&v6)),
              HasSubstr("127.0.0.1 is loopback"));
  inet_pton(AF_INET6, "fd00::2", &v6.sin6_addr);
  EXPECT_EQ(guard.CheckAddress(reinterpret_cast<sockaddr*>(&v6)), "");
}

TEST(EgressGuardTest, CheckUrlRefusesLiteralAddressesAndLocalhost) {
  const EgressGuard guard(Policy(EgressGuard::Policy::kPrivate));
  EXPECT_EQ(guard.CheckUrl("url", "http://127.0.0.1:8080/hook").message(),
            "url \"http://127.0.0.1:8080/hook\": 127.0.0.1 is loopback "
            "(127.0.0.0/8), refused under --egress=private; "
            "--egress_allow=127.0.0.1/32 allows it");
  EXPECT_EQ(guard.CheckUrl("url", "http://[::1]/").message(),
            "url \"http://[::1]/\": ::1 is loopback (::1), refused under "
            "--egress=private; --egress_allow=::1/128 allows it");
  EXPECT_THAT(
      guard.CheckUrl("url", "http://[::ffff:169.254.169.254]/latest").message(),
      HasSubstr("169.254.169.254 is the cloud instance metadata"));
  EXPECT_THAT(guard.CheckUrl("url", "http://[fe80::1%25eth0]:8080/").message(),
              HasSubstr("fe80::1 is link-local"));
  EXPECT_EQ(guard.CheckUrl("url", "http://LocalHost.:9000/x").message(),
            "url \"http://LocalHost.:9000/x\": localhost means 127.0.0.1, "
            "and 127.0.0.1 is loopback (127.0.0.0/8), refused under "
            "--egress=private; --egress_allow=127.0.0.1/32 allows it");
  EXPECT_THAT(guard.CheckUrl("url", "http://api.localhost/").message(),
              HasSubstr("api.localhost means 127.0.0.1"));
  // Numeric IPv4 forms curl would call are normalised first.
  EXPECT_THAT(guard.CheckUrl("url", "http://2130706433/").message(),
              HasSubstr("127.0.0.1 is loopback"));
  EXPECT_THAT(guard.CheckUrl("url", "http://0x7f.1/").message(),
              HasSubstr("127.0.0.1 is loopback"));

  EXPECT_TRUE(guard.CheckUrl("url", "http://10.0.0.5:8080/hook").ok());
  EXPECT_TRUE(guard.CheckUrl("url", "https://hooks.example.com/x").ok());
  EXPECT_TRUE(guard.CheckUrl("url", "http://localhost.example.com/").ok());

  EgressGuard::Options options = Policy(EgressGuard::Policy::kPublic);
  options.https_only = true;
  const EgressGuard strict(options);
  EXPECT_EQ(strict.CheckUrl("url", "http://hooks.example.com/x").message(),
            "url \"http://hooks.example.com/x\" must be https://: this server "
            "calls only https:// URLs (--https_only)");
  EXPECT_THAT(strict.CheckUrl("url", "https://10.0.0.5/").message(),
              HasSubstr("10.0.0.5 is private (10.0.0.0/8, RFC 1918), refused "
                        "under --egress=public"));
  EXPECT_TRUE(strict.CheckUrl("url", "https://hooks.example.com/x").ok());
}

TEST(EgressGuardTest, ParsesPolicy) {
  EXPECT_EQ(*EgressGuard::ParsePolicy("private"),
            EgressGuard::Policy::kPrivate);
  EXPECT_EQ(*EgressGuard::ParsePolicy("public"), EgressGuard::Policy::kPublic);
  EXPECT_EQ(EgressGuard::ParsePolicy("none").status().message(),
            "--egress must be private (refuse this host, link-local and "
            "metadata addresses) or public (also refuse private ranges), not "
            "\"none\"");
}

}  // namespace
}  // namespace rio::dispatch
