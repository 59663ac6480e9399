#include "server/store/catalog.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/store/catalog_store.h"
#include "server/store/migrations.h"
#include "tests/testkit/testkit.h"

namespace rio::store {
namespace {

using testkit::PgCluster;
using testkit::WaitFor;

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = PgCluster::Shared().CreateDatabase("catalog");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto conn = PgConnection::Connect(url_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    writer_ = std::move(*conn);
    ASSERT_TRUE(ApplyMigrations(*writer_).ok());
  }

  std::string url_;
  std::unique_ptr<PgConnection> writer_;
  const util::SecretBox box_ = *util::SecretBox::Create(
      {{"k1", std::string(util::kSecretKeyBytes, 'k')}});
  const HandlerSecrets secrets_{&box_};
};

TEST_F(CatalogTest, ReloadLoadsProjectsSendersAndHandlers) {
  ASSERT_TRUE(CreateProject(*writer_, "comments", "Comments").ok());
  ASSERT_TRUE(CreateSender(*writer_, "comments", "app", "hash-bytes").ok());
  v1::Handler h;
  h.set_id("6f1c1f0e-8d6b-4b8e-9a57-0a6f4f7c1e01");
  h.set_project("comments");
  h.set_event("comment-published");
  h.set_url("http://127.0.0.1:9/hook");
  h.set_method(v1::Handler::POST);
  h.set_content_type(v1::Handler::JSON);
  (*h.mutable_headers())["X-Api-Key"] = "k";
  h.set_timeout_ms(1500);
  h.set_enabled(true);
  h.set_secret("whsec_abc");
  ASSERT_TRUE(CreateHandler(*writer_, secrets_, h).ok());

  Catalog catalog(url_, &box_);
  ASSERT_TRUE(catalog.Reload(*writer_).ok());
  auto snapshot = catalog.snapshot();
  const CachedProject* project = snapshot->FindProject("comments");
  ASSERT_NE(project, nullptr);
  EXPECT_EQ(project->name, "Comments");
  ASSERT_EQ(project->sender_token_hashes.count("app"), 1u);
  EXPECT_EQ(project->sender_token_hashes.at("app"), "hash-bytes");
  auto it = project->handlers_by_event.find("comment-published");
  ASSERT_NE(it, project->handlers_by_event.end());
  ASSERT_EQ(it->second.size(), 1u);
  const CachedHandler& cached = *it->second[0];
  EXPECT_EQ(cached.id, h.id());
  EXPECT_EQ(cached.url, "http://127.0.0.1:9/hook");
  EXPECT_EQ(cached.method, "POST");
  EXPECT_EQ(cached.content_type, "JSON");
  EXPECT_EQ(cached.timeout_ms, 1500);
  EXPECT_EQ(cached.secret, "whsec_abc");
  ASSERT_EQ(cached.headers.size(), 1u);
  EXPECT_EQ(cached.headers[0].first, "X-Api-Key");
  EXPECT_EQ(cached.headers[0].second, "k");
  EXPECT_EQ(snapshot->FindProject("other"), nullptr);
}

TEST_F(CatalogTest, ManyProjectsKeepTheirSendersAndHandlers) {
  constexpr int kProjects = 60;  // enough for the project map to grow
  for (int i = 0; i < kProjects; ++i) {
    std::string slug = "p" + std::to_string(i);
    ASSERT_TRUE(CreateProject(*writer_, slug, slug).ok());
    ASSERT_TRUE(CreateSender(*writer_, slug, "app", "hash" + slug).ok());
    v1::Handler h;
    h.set_id(absl::StrCat("00000000-0000-4000-8000-",
                          absl::Dec(i, absl::kZeroPad12)));
    h.set_project(slug);
    h.set_event("e");
    h.set_url("http://127.0.0.1:9/");
    h.set_timeout_ms(1000);
    h.set_enabled(true);
    h.set_secret("whsec_x");
    ASSERT_TRUE(CreateHandler(*writer_, secrets_, h).ok());
  }
  Catalog catalog(url_, &box_);
  ASSERT_TRUE(catalog.Reload(*writer_).ok());
  auto snapshot = catalog.snapshot();
  ASSERT_EQ(snapshot->projects.size(), static_cast<size_t>(kProjects));
  EXPECT_EQ(snapshot->senders_by_token_hash.size(),
            static_cast<size_t>(kProjects));
  EXPECT_EQ(snapshot->handlers_by_id.size(), static_cast<size_t>(kProjects));
  for (int i = 0; i < kProjects; ++i) {
    std::string slug = "p" + std::to_string(i);
    const CachedProject* p = snapshot->FindProject(slug);
    ASSERT_NE(p, nullptr) << slug;
    EXPECT_EQ(p->sender_token_hashes.at("app"), "hash" + slug);
    ASSERT_EQ(p->handlers_by_event.at("e").size(), 1u) << slug;
    EXPECT_EQ(p->handlers_by_event.at("e")[0]->project, slug);
    EXPECT_EQ(snapshot->senders_by_token_hash.at("hash" + slug).project, slug);
  }
}

TEST_F(CatalogTest, ChangesFromAnotherConnectionArriveThroughNotify) {
  Catalog catalog(url_, &box_);
  ASSERT_TRUE(catalog.StartListening(nullptr).ok());
  uint64_t before = catalog.snapshot()->generation;
  EXPECT_EQ(catalog.snapshot()->FindProject("late"), nullptr);

  // Written through a different connection, as another instance would.
  ASSERT_TRUE(CreateProject(*writer_, "late", "Late").ok());
  EXPECT_TRUE(WaitFor(
      [&] { return catalog.snapshot()->FindProject("late") != nullptr; }));
  EXPECT_GT(catalog.snapshot()->generation, before);

  ASSERT_TRUE(DeleteProject(*writer_, "late").ok());
  EXPECT_TRUE(WaitFor(
      [&] { return catalog.snapshot()->FindProject("late") == nullptr; }));
  catalog.Stop();
}

// Messages, deliveries and attempts carry no foreign keys (they would cost
// a row lock per inserted row); deleting a handler or a project removes the
// history that hung from it all the same, and nothing else.
TEST_F(CatalogTest, DeletingAHandlerOrAProjectDeletesItsHistoryOnly) {
  const char* kHandlers[] = {"6f1c1f0e-8d6b-4b8e-9a57-0a6f4f7c1e01",
                             "6f1c1f0e-8d6b-4b8e-9a57-0a6f4f7c1e02",
                             "6f1c1f0e-8d6b-4b8e-9a57-0a6f4f7c1e03"};
  const char* kProjects[] = {"alpha", "alpha", "beta"};
  ASSERT_TRUE(CreateProject(*writer_, "alpha", "Alpha").ok());
  ASSERT_TRUE(CreateProject(*writer_, "beta", "Beta").ok());
  for (int i = 0; i < 3; ++i) {
    v1::Handler h;
    h.set_id(kHandlers[i]);
    h.set_project(kProjects[i]);
    h.set_event("e");
    h.set_url("http://127.0.0.1:9/hook");
    h.set_method(v1::Handler::POST);
    h.set_content_type(v1::Handler::JSON);
    h.set_timeout_ms(1000);
    h.set_enabled(true);
    h.set_secret("whsec_abc");
    ASSERT_TRUE(CreateHandler(*writer_, secrets_, h).ok());
  }
  // Two messages per project, each delivered to every handler of its
  // project with two attempts per delivery.
  ASSERT_TRUE(writer_
                  ->ExecScript(R"sql(
    SELECT rio_create_partitions(now() - interval '1 hour',
                                 now() + interval '1 hour', '1 hour');
    INSERT INTO messages (id, project_id, event, payload, sender)
      SELECT rio_new_uuid(), p.id, 'e', '{}', 'app'
      FROM projects p, generate_series(1, 2);
    INSERT INTO deliveries (id, message_id, handler_id)
      SELECT rio_new_uuid(), m.id, h.id FROM messages m
      JOIN handlers h ON h.project_id = m.project_id;
    INSERT INTO attempts (delivery_id, number, start_time, duration_us)
      SELECT d.id, n, now(), 1 FROM deliveries d, generate_series(1, 2) n;
  )sql")
                  .ok());
  auto counts = [&]() -> std::string {
    auto r = writer_->Exec(
        "SELECT (SELECT count(*) FROM messages) || '/' || (SELECT count(*) "
        "FROM deliveries) || '/' || (SELECT count(*) FROM attempts)");
    if (!r.ok()) return r.status().ToString();
    return std::string(r->Get(0, 0));
  };
  ASSERT_EQ(counts(), "4/6/12");

  ASSERT_TRUE(DeleteHandler(*writer_, kHandlers[0]).ok());
  EXPECT_EQ(counts(), "4/4/8");
  auto left = writer_->Exec(
      "SELECT count(*) FROM deliveries WHERE handler_id = $1", {kHandlers[0]});
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->GetInt64(0, 0), 0);

  ASSERT_TRUE(DeleteProject(*writer_, "alpha").ok());
  EXPECT_EQ(counts(), "2/2/4");
  auto beta = writer_->Exec(
      "SELECT count(*) FROM deliveries d JOIN messages m ON m.id = "
      "d.message_id JOIN projects p ON p.id = m.project_id WHERE p.slug = "
      "'beta' AND d.handler_id = $1",
      {kHandlers[2]});
  ASSERT_TRUE(beta.ok()) << beta.status();
  EXPECT_EQ(beta->GetInt64(0, 0), 2);
}

}  // namespace
}  // namespace rio::store
