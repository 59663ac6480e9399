#include "tools/rioctl/project_file.h"

#include <map>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/rioctl/test_certificates.h"

namespace rio::rioctl {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

VariableLookup Vars(std::map<std::string, std::string> vars = {}) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// The error message of parsing `text` as "p.yml" ("" when it parses).
std::string ErrorOf(const std::string& text,
                    std::map<std::string, std::string> vars = {}) {
  absl::StatusOr<ProjectFile> file =
      ParseProjectFile("p.yml", text, Vars(std::move(vars)));
  if (file.ok()) return "";
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(file.status().message());
}

// The original Rio's examples/example.yml, byte for byte.
constexpr char kOriginalExample[] =
    "project: example\n"
    "\n"
    "senders:\n"
    "  - slug: example\n"
    "    token: example\n"
    "\n"
    "actions:\n"
    "  - slug: example\n"
    "    webhooks:\n"
    "      - method: POST\n"
    "        url: \"http://127.0.0.1:5000\"";

TEST(ProjectFile, ParsesTheOriginalExample) {
  absl::StatusOr<ProjectFile> file =
      ParseProjectFile("example.yml", kOriginalExample, Vars());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->project, "example");
  EXPECT_FALSE(file->name.has_value());
  ASSERT_EQ(file->senders.size(), 1u);
  EXPECT_EQ(file->senders[0].name, "example");
  EXPECT_EQ(file->senders[0].location.line, 4);
  ASSERT_EQ(file->actions.size(), 1u);
  EXPECT_EQ(file->actions[0].event, "example");
  ASSERT_EQ(file->actions[0].webhooks.size(), 1u);
  const WebhookSpec& hook = file->actions[0].webhooks[0];
  EXPECT_EQ(hook.method, v1::Handler::POST);
  EXPECT_EQ(hook.url, "http://127.0.0.1:5000");
  EXPECT_TRUE(hook.headers.empty());
  EXPECT_EQ(hook.content_type, v1::Handler::FORM);
  EXPECT_EQ(hook.timeout_ms, 15000);
  EXPECT_FALSE(hook.enabled.has_value());
  EXPECT_EQ(hook.location.line, 10);
  EXPECT_THAT(file->warnings,
              ElementsAre("example.yml:5:12: senders[0].token: ignored; Rio "
                          "generates sender tokens and shows the DSN once, "
                          "when apply creates the sender"));
}

TEST(ProjectFile, ParsesTheOriginalSyncExampleWithPlaceholders) {
  // The original's examples/syncproject.yml.
  const std::string text =
      "project: example\n"
      "\n"
      "senders:\n"
      "  - slug: srv1\n"
      "    token: '{{ SRV1_SENDER_TOKEN }}'\n"
      "\n"
      "actions:\n"
      "  - slug: post-published\n"
      "    webhooks:\n"
      "      - method: POST\n"
      "        url: http://{{ SRV2 }}/webhook\n"
      "      - method: POST\n"
      "        url: http://{{ SRV3 }}/webhook\n"
      "        headers:\n"
      "          Content-Type: application/json\n";
  absl::StatusOr<ProjectFile> file =
      ParseProjectFile("sync.yml", text,
                       Vars({{"SRV2", "10.0.0.2:5000"}, {"SRV3", "10.0.0.3"}}));
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->actions[0].webhooks.size(), 2u);
  EXPECT_EQ(file->actions[0].webhooks[0].url, "http://10.0.0.2:5000/webhook");
  EXPECT_EQ(file->actions[0].webhooks[0].content_type, v1::Handler::FORM);
  EXPECT_EQ(file->actions[0].webhooks[1].url, "http://10.0.0.3/webhook");
  // Content-Type chooses the body's type; Rio sets the header itself.
  EXPECT_EQ(file->actions[0].webhooks[1].content_type, v1::Handler::JSON);
  EXPECT_TRUE(file->actions[0].webhooks[1].headers.empty());
  // The token is ignored, so its variable need not be set.
  EXPECT_EQ(file->warnings.size(), 1u);
}

TEST(ProjectFile, ParsesTheExtensions) {
  absl::StatusOr<ProjectFile> file =
      ParseProjectFile("p.yml",
                       "project: comments\n"
                       "name: All comments\n"
                       "senders: []\n"
                       "actions:\n"
                       "  - slug: comment-published\n"
                       "    webhooks:\n"
                       "      - url: http://127.0.0.1:5000/antispam\n"
                       "        method: put\n"
                       "        headers: {X-Team: antispam, X-Env: prod}\n"
                       "        content_type: JSON\n"
                       "        timeout: 2.5s\n"
                       "        enabled: false\n"
                       "  - slug: comment-deleted\n",
                       Vars());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->name, "All comments");
  EXPECT_TRUE(file->senders.empty());
  ASSERT_EQ(file->actions.size(), 2u);
  const WebhookSpec& hook = file->actions[0].webhooks[0];
  EXPECT_EQ(hook.method, v1::Handler::PUT);
  EXPECT_THAT(hook.headers,
              ElementsAre(Pair("X-Env", "prod"), Pair("X-Team", "antispam")));
  EXPECT_EQ(hook.content_type, v1::Handler::JSON);
  EXPECT_EQ(hook.timeout_ms, 2500);
  EXPECT_EQ(hook.enabled, false);
  EXPECT_TRUE(file->actions[1].webhooks.empty());
  EXPECT_TRUE(file->warnings.empty());
}

TEST(ProjectFile, UnknownKeysNameFileLineAndKey) {
  EXPECT_EQ(ErrorOf("project: example\n"
                    "actions:\n"
                    "  - slug: example\n"
                    "    webhooks:\n"
                    "      - metod: POST\n"
                    "        url: http://127.0.0.1:5000\n"),
            "p.yml:5:9: actions[0].webhooks[0].metod: unknown key (expected "
            "one of: method, url, headers, content_type, timeout, enabled, "
            "client_certificate_file, client_key_file)");
  EXPECT_EQ(ErrorOf("project: example\nsender:\n  - slug: a\n"),
            "p.yml:2:1: sender: unknown key (expected one of: project, name, "
            "senders, actions)");
  EXPECT_EQ(ErrorOf("project: example\nsenders:\n  - slug: a\n    tokn: x\n"),
            "p.yml:4:5: senders[0].tokn: unknown key (expected one of: slug, "
            "token)");
}

TEST(ProjectFile, MalformedYamlNamesTheLine) {
  EXPECT_EQ(ErrorOf("project: example\n"
                    "actions:\n"
                    "  - slug: example\n"
                    "    webhooks: [\n"),
            "p.yml:5:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(ErrorOf("project: example\n"
                    "  senders: x\n"),
            "p.yml:2:10: invalid YAML: illegal map value");
  // yaml-cpp 0.7's LoadAll loops forever on this one.
  EXPECT_EQ(ErrorOf(",project: example\n"),
            "p.yml:1:1: invalid YAML: unexpected text");
}

TEST(ProjectFile, StructureErrors) {
  EXPECT_EQ(ErrorOf(""),
            "p.yml:1:1: the file is empty; it needs at least "
            "`project:`");
  EXPECT_EQ(ErrorOf("- a\n- b\n"),
            "p.yml:1:1: the file must be a mapping with `project:` (and "
            "`senders:`, `actions:`), not a list");
  EXPECT_EQ(ErrorOf("name: x\n"), "p.yml:1:1: project: is required");
  EXPECT_EQ(ErrorOf("project:\n"), "p.yml:1:1: project: a value is required");
  EXPECT_EQ(ErrorOf("project: [a]\n"),
            "p.yml:1:10: project: expected a single value, not a list");
  EXPECT_EQ(ErrorOf("project: a\nproject: b\n"),
            "p.yml:2:1: project: duplicate key (first at line 1)");
  EXPECT_EQ(ErrorOf("project: a\nsenders: x\n"),
            "p.yml:2:10: senders: expected a list, not a single value");
  EXPECT_EQ(ErrorOf("project: a\nsenders:\n  - a\n"),
            "p.yml:3:5: senders[0]: expected a mapping with `slug:`, not a "
            "single value");
  EXPECT_EQ(ErrorOf("project: a\n---\nproject: b\n"),
            "p.yml:3:1: one project per file (this is a second YAML "
            "document)");
}

TEST(ProjectFile, ValueErrors) {
  const std::string head =
      "project: example\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n";
  EXPECT_EQ(ErrorOf(head + "      - url: ftp://x\n"),
            "p.yml:5:14: actions[0].webhooks[0].url \"ftp://x\" must start "
            "with http:// or https://");
  EXPECT_EQ(ErrorOf(head + "      - method: DELETE\n        url: http://a\n"),
            "p.yml:5:17: actions[0].webhooks[0].method: must be POST, PUT or "
            "GET (got \"DELETE\")");
  EXPECT_EQ(ErrorOf(head + "      - url: http://a\n        timeout: 5\n"),
            "p.yml:6:18: actions[0].webhooks[0].timeout: \"5\" is not a "
            "duration (use e.g. 500ms, 30s, 5m, 2h, 7d or 1h30m)");
  EXPECT_EQ(ErrorOf(head + "      - url: http://a\n        timeout: 10m\n"),
            "p.yml:6:18: actions[0].webhooks[0].timeout: must be between 1ms "
            "and 5m (got 10m)");
  EXPECT_EQ(ErrorOf(head + "      - url: http://a\n        enabled: maybe\n"),
            "p.yml:6:18: actions[0].webhooks[0].enabled: must be true or "
            "false (got \"maybe\")");
  EXPECT_EQ(
      ErrorOf(head + "      - url: http://a\n        content_type: xml\n"),
      "p.yml:6:23: actions[0].webhooks[0].content_type: must be json "
      "(application/json) or form (application/x-www-form-urlencoded), "
      "not \"xml\"");
  EXPECT_EQ(
      ErrorOf(head + "      - url: http://a\n        headers: {Host: x}\n"),
      "p.yml:6:18: actions[0].webhooks[0].headers may not set \"Host\"; Rio "
      "sets it itself");
  EXPECT_EQ(ErrorOf(head + "      - url: http://a\n"
                           "      - url: http://a\n"
                           "        method: post\n"),
            "p.yml:6:9: actions[0].webhooks[1]: the same method and url are "
            "already listed at line 5");
  EXPECT_EQ(ErrorOf(head + "      - url: http://{{ HOST }}/hook\n"),
            "p.yml:5:14: actions[0].webhooks[0].url: placeholder {{ HOST }} "
            "has no value: give it with `--var HOST=VALUE` or the environment "
            "variable RIO_VAR_HOST (no other environment variable is read)");
  EXPECT_EQ(ErrorOf("project: bad slug\n"),
            "p.yml:1:10: project \"bad slug\" may contain only letters, "
            "digits, '.', '_' and '-'");
  EXPECT_EQ(ErrorOf("project: a\nsenders:\n  - slug: s\n  - slug: s\n"),
            "p.yml:4:11: senders[1].slug: sender \"s\" is already listed at "
            "line 3");
  EXPECT_EQ(ErrorOf("project: a\nactions:\n  - slug: e\n  - slug: e\n"),
            "p.yml:4:11: actions[1].slug: action \"e\" is already listed at "
            "line 3");
  EXPECT_EQ(ErrorOf(head + "      - url: http://a\n        method: GET\n"
                           "        content_type: json\n"),
            "p.yml:5:9: actions[0].webhooks[0]: content_type json needs "
            "method POST or PUT (GET sends the payload's fields in the query "
            "string)");
}

// A stand-in for the process environment of whoever runs `rioctl apply`.
VariableLookup FakeEnvironment() {
  return Vars({{"RIO_ADMIN_TOKEN", "admin-secret"},
               {"HOME", "/root"},
               {"HOST", "from-plain-env"},
               {"RIO_VAR_HOST", "10.0.0.2:5000"},
               {"RIO_VAR_TEAM", "antispam"},
               {"RIO_VAR_EMPTY", ""},
               {"RIO_VAR_RIO_ADMIN_TOKEN", "explicitly-shared"}});
}

TEST(PlaceholderVariables, ReadsOnlyVarFlagsAndRioVarVariables) {
  const VariableLookup lookup = PlaceholderVariables(
      {{"PORT", "5000"}, {"TEAM", "flag-wins"}}, FakeEnvironment());
  EXPECT_EQ(lookup("PORT"), "5000");
  EXPECT_EQ(lookup("TEAM"), "flag-wins");      // --var beats the environment
  EXPECT_EQ(lookup("HOST"), "10.0.0.2:5000");  // from RIO_VAR_HOST
  EXPECT_EQ(lookup("RIO_VAR_HOST"), "10.0.0.2:5000");  // spelled out
  EXPECT_EQ(lookup("EMPTY"), std::nullopt);            // empty is unset
  EXPECT_EQ(lookup("HOME"), std::nullopt);
  // Never the admin token itself; only a RIO_VAR_ copy made on purpose.
  EXPECT_EQ(lookup("RIO_ADMIN_TOKEN"), "explicitly-shared");
  EXPECT_EQ(PlaceholderVariables(
                {}, Vars({{"RIO_ADMIN_TOKEN", "x"}}))("RIO_ADMIN_TOKEN"),
            std::nullopt);
  // An explicit empty --var is a value.
  EXPECT_EQ(PlaceholderVariables({{"E", ""}}, Vars())("E"), "");
}

TEST(PlaceholderVariables, AFileCannotReadOtherEnvironmentVariables) {
  const std::string head = "project: p\nactions:\n  - slug: e\n    webhooks:\n";
  auto parse = [&](const std::string& webhook) {
    return ParseProjectFile(
        "p.yml", head + webhook,
        PlaceholderVariables({}, Vars({{"RIO_ADMIN_TOKEN", "admin-secret"},
                                       {"HOME", "/root"}})));
  };
  for (const char* name : {"RIO_ADMIN_TOKEN", "HOME"}) {
    for (const std::string& webhook :
         {absl::StrCat("      - url: http://h/?t={{ ", name, " }}\n"),
          absl::StrCat("      - url: http://h/\n        headers: {X-T: '{{",
                       name, "}}'}\n")}) {
      const absl::StatusOr<ProjectFile> file = parse(webhook);
      ASSERT_FALSE(file.ok()) << webhook;
      EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(
          std::string(file.status().message()),
          ::testing::HasSubstr(absl::StrCat("placeholder {{ ", name,
                                            " }} has no value: give it "
                                            "with `--var ",
                                            name,
                                            "=VALUE` or the environment "
                                            "variable RIO_VAR_",
                                            name)));
      EXPECT_THAT(std::string(file.status().message()),
                  ::testing::Not(::testing::HasSubstr("admin-secret")));
    }
  }
  // Given on purpose, it is used.
  const absl::StatusOr<ProjectFile> file = ParseProjectFile(
      "p.yml", head + "      - url: http://{{ HOST }}/hook\n",
      PlaceholderVariables({{"HOST", "10.0.0.3"}},
                           Vars({{"RIO_ADMIN_TOKEN", "admin-secret"}})));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->actions[0].webhooks[0].url, "http://10.0.0.3/hook");
}

TEST(ParseVarFlags, TakesNameEqualsValue) {
  absl::StatusOr<std::map<std::string, std::string>> vars = ParseVarFlags(
      {"HOST=10.0.0.2:5000", "EMPTY=", "EQ=a=b", "HOST=10.0.0.3", "x_1=y"});
  ASSERT_TRUE(vars.ok()) << vars.status();
  EXPECT_THAT(*vars, ElementsAre(Pair("EMPTY", ""), Pair("EQ", "a=b"),
                                 Pair("HOST", "10.0.0.3"), Pair("x_1", "y")));
  EXPECT_TRUE(ParseVarFlags({})->empty());
}

TEST(ParseVarFlags, RefusesWhatIsNotNameEqualsValue) {
  EXPECT_EQ(ParseVarFlags({"HOST"}).status().message(),
            "--var HOST: expected NAME=VALUE (for {{ NAME }})");
  EXPECT_EQ(ParseVarFlags({"=x"}).status().message(),
            "--var =...: NAME may contain only letters, digits and '_'");
  EXPECT_EQ(ParseVarFlags({"A-B=x"}).status().message(),
            "--var A-B=...: NAME may contain only letters, digits and '_'");
  EXPECT_EQ(ParseVarFlags({"A B=x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PlaceholderEnvironmentName, PrefixesRioVarOnce) {
  EXPECT_EQ(PlaceholderEnvironmentName("HOST"), "RIO_VAR_HOST");
  EXPECT_EQ(PlaceholderEnvironmentName("RIO_VAR_HOST"), "RIO_VAR_HOST");
  EXPECT_EQ(PlaceholderEnvironmentName("RIO_ADMIN_TOKEN"),
            "RIO_VAR_RIO_ADMIN_TOKEN");
}

}  // namespace
}  // namespace rio::rioctl

namespace rio::rioctl {
namespace {

constexpr char kCertificateFile[] =
    "project: example\n"
    "actions:\n"
    "  - slug: example\n"
    "    webhooks:\n"
    "      - url: https://127.0.0.1:5000\n"
    "        client_certificate_file: certs/{{ WHO }}.pem\n"
    "        client_key_file: /keys/{{ WHO }}.key\n";

TEST(ProjectFile, ClientCertificateFilesAreBothOrNeither) {
  absl::StatusOr<ProjectFile> file =
      ParseProjectFile("dir/p.yml", kCertificateFile, Vars({{"WHO", "a"}}));
  ASSERT_TRUE(file.ok()) << file.status();
  const WebhookSpec& hook = file->actions[0].webhooks[0];
  EXPECT_EQ(hook.client_certificate_file, "certs/a.pem");
  EXPECT_EQ(hook.client_key_file, "/keys/a.key");
  EXPECT_EQ(hook.client_certificate_location.line, 6);
  EXPECT_EQ(hook.client_key_location.line, 7);
  EXPECT_EQ(hook.client_certificate, "");

  const std::string head =
      "project: example\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n"
      "      - url: https://127.0.0.1:5000\n";
  EXPECT_EQ(ErrorOf(head + "        client_certificate_file: a.pem\n"),
            "p.yml:6:34: actions[0].webhooks[0].client_certificate_file: needs "
            "client_key_file (the certificate's PEM private key)");
  EXPECT_EQ(ErrorOf(head + "        client_key_file: a.key\n"),
            "p.yml:6:26: actions[0].webhooks[0].client_key_file: needs "
            "client_certificate_file (the certificate it belongs to)");
  EXPECT_EQ(ErrorOf(head + "        client_certificate_file:\n"
                           "        client_key_file: a.key\n"),
            "p.yml:6:9: actions[0].webhooks[0].client_certificate_file: a "
            "value is required");
  EXPECT_EQ(ErrorOf(head + "        client_certificate_file: \"\"\n"
                           "        client_key_file: a.key\n"),
            "p.yml:6:34: actions[0].webhooks[0].client_certificate_file: a "
            "path is required");
}

TEST(ResolveFilePath, RelativeToTheProjectFilesDirectory) {
  EXPECT_EQ(ResolveFilePath("dir/p.yml", "certs/a.pem"), "dir/certs/a.pem");
  EXPECT_EQ(ResolveFilePath("/etc/rio/p.yml", "../a.pem"), "/etc/rio/../a.pem");
  EXPECT_EQ(ResolveFilePath("dir/p.yml", "/abs/a.pem"), "/abs/a.pem");
  EXPECT_EQ(ResolveFilePath("p.yml", "a.pem"), "a.pem");
  EXPECT_EQ(ResolveFilePath("<stdin>", "certs/a.pem"), "certs/a.pem");
}

// Reads from `files`; NOT_FOUND naming the path otherwise.
FileReader Files(std::map<std::string, std::string> files) {
  return [files](const std::string& path) -> absl::StatusOr<std::string> {
    auto it = files.find(path);
    if (it == files.end()) {
      return absl::NotFoundError(
          absl::StrCat("cannot read ", path, ": No such file or directory"));
    }
    return it->second;
  };
}

TEST(ReadClientCertificates, ReadsResolvedPathsAndChecksThePair) {
  auto parsed = [](const std::string& who) {
    absl::StatusOr<ProjectFile> file =
        ParseProjectFile("dir/p.yml", kCertificateFile, Vars({{"WHO", who}}));
    EXPECT_TRUE(file.ok()) << file.status();
    return *file;
  };
  const auto files = Files({{"dir/certs/a.pem", testing::kCertA},
                            {"/keys/a.key", testing::kKeyA},
                            {"dir/certs/b.pem", testing::kCertB},
                            {"/keys/b.key", testing::kKeyA},
                            {"dir/certs/c.pem", "not a certificate"},
                            {"/keys/c.key", testing::kKeyA},
                            {"dir/certs/d.pem", testing::kCertA}});
  ProjectFile a = parsed("a");
  ASSERT_TRUE(ReadClientCertificates("dir/p.yml", files, &a).ok());
  EXPECT_EQ(a.actions[0].webhooks[0].client_certificate, testing::kCertA);
  EXPECT_EQ(a.actions[0].webhooks[0].client_key, testing::kKeyA);

  ProjectFile b = parsed("b");
  EXPECT_EQ(ReadClientCertificates("dir/p.yml", files, &b).message(),
            "dir/p.yml:7:26: actions[0].webhooks[0].client_key_file: does not "
            "belong to the client_certificate_file (CN=rioctl-other)");
  ProjectFile c = parsed("c");
  EXPECT_EQ(ReadClientCertificates("dir/p.yml", files, &c).message(),
            "dir/p.yml:6:34: actions[0].webhooks[0].client_certificate_file: "
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  ProjectFile d = parsed("d");
  EXPECT_EQ(ReadClientCertificates("dir/p.yml", files, &d).message(),
            "dir/p.yml:7:26: actions[0].webhooks[0].client_key_file: cannot "
            "read /keys/d.key: No such file or directory");
  ProjectFile e = parsed("e");
  absl::Status missing = ReadClientCertificates("dir/p.yml", files, &e);
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.message(),
            "dir/p.yml:6:34: actions[0].webhooks[0].client_certificate_file: "
            "cannot read dir/certs/e.pem: No such file or directory");
}

}  // namespace
}  // namespace rio::rioctl
