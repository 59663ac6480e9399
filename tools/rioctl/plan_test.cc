#include "tools/rioctl/plan.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/rioctl/certificate.h"
#include "tools/rioctl/test_certificates.h"

namespace rio::rioctl {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ProjectFile Parse(const std::string& text) {
  absl::StatusOr<ProjectFile> file = ParseProjectFile(
      "p.yml", text, [](const std::string&) { return std::nullopt; });
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? *file : ProjectFile{};
}

std::vector<std::string> Lines(const std::vector<Change>& changes) {
  std::vector<std::string> out;
  for (const Change& c : changes) out.push_back(Describe(c));
  return out;
}

v1::Handler Handler(const std::string& id, const std::string& event,
                    const std::string& url,
                    v1::Handler::Method method = v1::Handler::POST) {
  v1::Handler h;
  h.set_id(id);
  h.set_project("example");
  h.set_event(event);
  h.set_url(url);
  h.set_method(method);
  h.set_content_type(v1::Handler::FORM);
  h.set_timeout_ms(15000);
  h.set_enabled(true);
  return h;
}

v1::Sender Sender(const std::string& name) {
  v1::Sender s;
  s.set_project("example");
  s.set_name(name);
  return s;
}

ServerState Existing(std::vector<v1::Sender> senders,
                     std::vector<v1::Handler> handlers) {
  ServerState state;
  state.project.emplace();
  state.project->set_slug("example");
  state.project->set_name("example");
  state.senders = std::move(senders);
  state.handlers = std::move(handlers);
  return state;
}

constexpr char kExample[] =
    "project: example\n"
    "senders:\n"
    "  - slug: example\n"
    "actions:\n"
    "  - slug: example\n"
    "    webhooks:\n"
    "      - method: POST\n"
    "        url: \"http://127.0.0.1:5000\"\n";

TEST(Plan, CreatesEverythingForANewProject) {
  Plan plan = ComputePlan(Parse(kExample), ServerState{}, false);
  EXPECT_THAT(Lines(plan.changes),
              ElementsAre("+ project example", "+ sender example",
                          "+ handler example POST http://127.0.0.1:5000"));
  EXPECT_EQ(plan.changes[0].create_project.slug(), "example");
  EXPECT_EQ(plan.changes[0].create_project.name(), "");
  EXPECT_EQ(plan.changes[1].create_sender.project(), "example");
  EXPECT_EQ(plan.changes[1].create_sender.name(), "example");
  const v1::CreateHandlerRequest& req = plan.changes[2].create_handler;
  EXPECT_EQ(req.project(), "example");
  EXPECT_EQ(req.event(), "example");
  EXPECT_EQ(req.url(), "http://127.0.0.1:5000");
  EXPECT_EQ(req.method(), v1::Handler::POST);
  EXPECT_EQ(req.content_type(), v1::Handler::FORM);
  EXPECT_EQ(req.timeout_ms(), 15000);
  EXPECT_FALSE(req.has_enabled());
  EXPECT_EQ(plan.Count(Change::Action::kCreate), 3);
  EXPECT_THAT(plan.kept, IsEmpty());
}

TEST(Plan, NothingWhenTheServerMatches) {
  Plan plan =
      ComputePlan(Parse(kExample),
                  Existing({Sender("example")},
                           {Handler("h1", "example", "http://127.0.0.1:5000")}),
                  true);
  EXPECT_THAT(plan.changes, IsEmpty());
  EXPECT_THAT(plan.kept, IsEmpty());
}

TEST(Plan, UpdatesWhatDiffers) {
  v1::Handler current = Handler("h1", "example", "http://127.0.0.1:5000");
  (*current.mutable_headers())["X-Old"] = "1";
  current.set_enabled(false);
  Plan plan = ComputePlan(Parse("project: example\n"
                                "name: Example\n"
                                "actions:\n"
                                "  - slug: example\n"
                                "    webhooks:\n"
                                "      - url: http://127.0.0.1:5000\n"
                                "        method: PUT\n"
                                "        content_type: json\n"
                                "        timeout: 5s\n"
                                "        headers: {X-New: '2'}\n"
                                "        enabled: true\n"),
                          Existing({}, {current}), false);
  EXPECT_THAT(
      Lines(plan.changes),
      ElementsAre("~ project example: name \"example\" -> \"Example\"",
                  "~ handler example PUT http://127.0.0.1:5000 [h1]: method "
                  "POST -> PUT, content_type form -> json, timeout 15s -> 5s, "
                  "headers {X-Old} -> {X-New}, enable"));
  const v1::UpdateHandlerRequest& req = plan.changes[1].update_handler;
  EXPECT_EQ(req.id(), "h1");
  EXPECT_EQ(req.method(), v1::Handler::PUT);
  EXPECT_EQ(req.content_type(), v1::Handler::JSON);
  EXPECT_EQ(req.timeout_ms(), 5000);
  EXPECT_EQ(req.headers().at("X-New"), "2");
  EXPECT_FALSE(req.clear_headers());
  EXPECT_TRUE(req.enabled());
  EXPECT_FALSE(req.has_url());
  EXPECT_FALSE(req.has_event());
}

// The server masks header values, so a plan compares names only and never
// prints a value.
TEST(Plan, ComparesHeaderNamesOnlyAndRewritesValuesWhenAsked) {
  v1::Handler current = Handler("h1", "example", "http://127.0.0.1:5000");
  (*current.mutable_headers())["Authorization"] =
      "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2";
  const ProjectFile file = Parse(
      "project: example\n"
      "senders: [{slug: example}]\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n"
      "      - url: http://127.0.0.1:5000\n"
      "        headers: {Authorization: Bearer s3cret}\n");
  const ServerState state = Existing({Sender("example")}, {current});
  EXPECT_THAT(ComputePlan(file, state, false).changes, IsEmpty());

  Plan plan = ComputePlan(file, state, false, /*rewrite_header_values=*/true);
  EXPECT_THAT(Lines(plan.changes),
              ElementsAre("~ handler example POST http://127.0.0.1:5000 [h1]: "
                          "headers {Authorization} (values rewritten)"));
  EXPECT_EQ(plan.changes[0].update_handler.headers().at("Authorization"),
            "Bearer s3cret");

  // A handler without headers in the file is left alone by the rewrite.
  v1::Handler bare = Handler("h1", "example", "http://127.0.0.1:5000");
  EXPECT_THAT(ComputePlan(Parse(kExample),
                          Existing({Sender("example")}, {bare}), false, true)
                  .changes,
              IsEmpty());
}

TEST(Plan, ClearsHeadersTheFileNoLongerHas) {
  v1::Handler current = Handler("h1", "example", "http://127.0.0.1:5000");
  (*current.mutable_headers())["X-Old"] = "1";
  Plan plan = ComputePlan(Parse(kExample),
                          Existing({Sender("example")}, {current}), false);
  ASSERT_EQ(plan.changes.size(), 1u);
  const v1::UpdateHandlerRequest& req = plan.changes[0].update_handler;
  EXPECT_TRUE(req.clear_headers());
  EXPECT_TRUE(req.headers().empty());
}

TEST(Plan, LeavesEnabledAloneWhenTheFileDoesNotSayIt) {
  v1::Handler current = Handler("h1", "example", "http://127.0.0.1:5000");
  current.set_enabled(false);
  current.set_disabled_reason("the receiver answered 410 Gone");
  Plan plan = ComputePlan(Parse(kExample),
                          Existing({Sender("example")}, {current}), false);
  EXPECT_THAT(plan.changes, IsEmpty());
}

TEST(Plan, KeepsOrPrunesWhatTheFileLacks) {
  ServerState state = Existing(
      {Sender("example"), Sender("old")},
      {Handler("h1", "example", "http://127.0.0.1:5000"),
       Handler("h2", "example", "http://127.0.0.1:5001"),
       Handler("h3", "gone", "http://127.0.0.1:5002", v1::Handler::PUT)});
  Plan kept = ComputePlan(Parse(kExample), state, false);
  EXPECT_THAT(kept.changes, IsEmpty());
  EXPECT_THAT(Lines(kept.kept),
              ElementsAre("- handler example POST http://127.0.0.1:5001 [h2]",
                          "- handler gone PUT http://127.0.0.1:5002 [h3]",
                          "- sender old"));

  Plan pruned = ComputePlan(Parse(kExample), state, true);
  EXPECT_THAT(Lines(pruned.changes),
              ElementsAre("- handler example POST http://127.0.0.1:5001 [h2]",
                          "- handler gone PUT http://127.0.0.1:5002 [h3]",
                          "- sender old"));
  EXPECT_EQ(pruned.changes[0].delete_handler.id(), "h2");
  EXPECT_EQ(pruned.changes[2].delete_sender.project(), "example");
  EXPECT_EQ(pruned.changes[2].delete_sender.name(), "old");
  EXPECT_THAT(pruned.kept, IsEmpty());
  EXPECT_EQ(pruned.Count(Change::Action::kDelete), 3);
}

TEST(Plan, MatchesExactMethodFirst) {
  // Two handlers on one URL; the file keeps only the PUT one.
  ServerState state = Existing(
      {}, {Handler("post", "example", "http://a/hook", v1::Handler::POST),
           Handler("put", "example", "http://a/hook", v1::Handler::PUT)});
  Plan plan =
      ComputePlan(Parse("project: example\n"
                        "actions:\n"
                        "  - slug: example\n"
                        "    webhooks:\n"
                        "      - {method: PUT, url: 'http://a/hook'}\n"),
                  state, true);
  EXPECT_THAT(Lines(plan.changes),
              ElementsAre("- handler example POST http://a/hook [post]"));
}

TEST(Plan, SameUrlOnAnotherEventIsAnotherHandler) {
  ServerState state =
      Existing({}, {Handler("h1", "other", "http://127.0.0.1:5000")});
  Plan plan = ComputePlan(Parse(kExample), state, false);
  EXPECT_THAT(Lines(plan.changes),
              ElementsAre("+ sender example",
                          "+ handler example POST http://127.0.0.1:5000"));
  EXPECT_THAT(Lines(plan.kept),
              ElementsAre("- handler other POST http://127.0.0.1:5000 [h1]"));
}

}  // namespace
}  // namespace rio::rioctl

namespace rio::rioctl {
namespace {

constexpr char kWithCertificate[] =
    "project: example\n"
    "actions:\n"
    "  - slug: example\n"
    "    webhooks:\n"
    "      - url: \"https://127.0.0.1:5000\"\n"
    "        client_certificate_file: a.pem\n"
    "        client_key_file: a.key\n";

// The file with its PEM files read (as ReadClientCertificates would).
ProjectFile WithPems(const std::string& cert, const std::string& key) {
  ProjectFile file = Parse(kWithCertificate);
  file.actions[0].webhooks[0].client_certificate = cert;
  file.actions[0].webhooks[0].client_key = key;
  return file;
}

v1::Handler WithCertificate(const std::string& cert) {
  v1::Handler h = Handler("h1", "example", "https://127.0.0.1:5000");
  h.set_client_certificate(cert);
  if (!cert.empty()) h.set_client_key(kMaskedValue);
  return h;
}

TEST(Plan, CreatesWithTheClientCertificateAndKey) {
  Plan plan = ComputePlan(WithPems(testing::kCertA, testing::kKeyA),
                          Existing({}, {}), false);
  ASSERT_THAT(Lines(plan.changes),
              ElementsAre("+ handler example POST https://127.0.0.1:5000"));
  EXPECT_EQ(plan.changes[0].create_handler.client_certificate(),
            testing::kCertA);
  EXPECT_EQ(plan.changes[0].create_handler.client_key(), testing::kKeyA);
}

TEST(Plan, ComparesTheCertificateAndSendsTheKeyOnlyWithAChange) {
  // Same certificate: nothing to do (the key cannot be compared).
  ProjectFile file = WithPems(testing::kCertA, testing::kKeyA);
  EXPECT_THAT(
      ComputePlan(file, Existing({}, {WithCertificate(testing::kCertA)}), false)
          .changes,
      IsEmpty());

  // None yet, or another one: both are sent.
  Plan added = ComputePlan(file, Existing({}, {WithCertificate("")}), false);
  ASSERT_THAT(Lines(added.changes),
              ElementsAre("~ handler example POST https://127.0.0.1:5000 "
                          "[h1]: client_certificate none -> "
                          "CN=rioctl-unit-test,O=Rio"));
  const v1::UpdateHandlerRequest& req = added.changes[0].update_handler;
  EXPECT_EQ(req.client_certificate(), testing::kCertA);
  EXPECT_EQ(req.client_key(), testing::kKeyA);
  EXPECT_FALSE(req.has_timeout_ms());

  Plan replaced = ComputePlan(
      file, Existing({}, {WithCertificate(testing::kCertB)}), false);
  EXPECT_THAT(Lines(replaced.changes),
              ElementsAre("~ handler example POST https://127.0.0.1:5000 "
                          "[h1]: client_certificate CN=rioctl-other -> "
                          "CN=rioctl-unit-test,O=Rio"));
  EXPECT_EQ(replaced.changes[0].update_handler.client_key(), testing::kKeyA);

  // The same subject in another certificate (a renewal).
  std::string renewed = std::string(testing::kCertA) + "\n";
  Plan renewal =
      ComputePlan(file, Existing({}, {WithCertificate(renewed)}), false);
  EXPECT_THAT(Lines(renewal.changes),
              ElementsAre("~ handler example POST https://127.0.0.1:5000 "
                          "[h1]: client_certificate CN=rioctl-unit-test,O=Rio "
                          "(replaced)"));

  // A new key under the same certificate only when asked.
  Plan rewritten =
      ComputePlan(file, Existing({}, {WithCertificate(testing::kCertA)}), false,
                  false, /*rewrite_client_keys=*/true);
  ASSERT_THAT(Lines(rewritten.changes),
              ElementsAre("~ handler example POST https://127.0.0.1:5000 "
                          "[h1]: client_certificate CN=rioctl-unit-test,O=Rio "
                          "(key rewritten)"));
  EXPECT_EQ(rewritten.changes[0].update_handler.client_certificate(),
            testing::kCertA);
  EXPECT_EQ(rewritten.changes[0].update_handler.client_key(), testing::kKeyA);
  // Header rewriting does not send keys.
  EXPECT_THAT(
      ComputePlan(file, Existing({}, {WithCertificate(testing::kCertA)}), false,
                  /*rewrite_header_values=*/true)
          .changes,
      IsEmpty());
}

TEST(Plan, RemovesTheCertificateTheFileNoLongerHas) {
  ProjectFile file = Parse(
      "project: example\n"
      "actions:\n"
      "  - slug: example\n"
      "    webhooks:\n"
      "      - url: \"https://127.0.0.1:5000\"\n");
  Plan plan =
      ComputePlan(file, Existing({}, {WithCertificate(testing::kCertB)}), false,
                  false, true);
  ASSERT_THAT(Lines(plan.changes),
              ElementsAre("~ handler example POST https://127.0.0.1:5000 "
                          "[h1]: client_certificate CN=rioctl-other -> none"));
  const v1::UpdateHandlerRequest& req = plan.changes[0].update_handler;
  EXPECT_TRUE(req.has_client_certificate());
  EXPECT_TRUE(req.has_client_key());
  EXPECT_EQ(req.client_certificate(), "");
  EXPECT_EQ(req.client_key(), "");
}

}  // namespace
}  // namespace rio::rioctl
