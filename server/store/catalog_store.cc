#include "server/store/catalog_store.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "server/store/handler_secrets.h"
#include "server/util/status_macros.h"
#include "server/util/tls_files.h"

namespace rio::store {
namespace {

#define RIO_MICROS(column) "(extract(epoch FROM " column ") * 1000000)::bigint"

constexpr const char* kProjectColumns =
    "slug, name, " RIO_MICROS("create_time") ", " RIO_MICROS("update_time");

constexpr const char* kHandlerColumns =
    "h.id, p.slug, h.event, h.url, h.method, h.content_type, h.headers::text, "
    "h.timeout_ms, h.enabled, h.disabled_reason, " RIO_MICROS(
        "h.create_time") ", " RIO_MICROS("h.update_time") ", " RIO_MICROS("h.previous_secret_expire_time") ", h.client_certificate, h.client_key <> ''";

constexpr const char* kHandlerFrom =
    " FROM handlers h JOIN projects p ON p.id = h.project_id ";

google::protobuf::Timestamp ToTimestamp(int64_t micros) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(micros);
}

v1::Project RowToProject(const PgResult& r, int row) {
  v1::Project p;
  p.set_slug(std::string(r.Get(row, 0)));
  p.set_name(std::string(r.Get(row, 1)));
  *p.mutable_create_time() = ToTimestamp(r.GetInt64(row, 2));
  *p.mutable_update_time() = ToTimestamp(r.GetInt64(row, 3));
  return p;
}

v1::Handler::Method ParseMethod(absl::string_view name) {
  if (name == "PUT") return v1::Handler::PUT;
  if (name == "GET") return v1::Handler::GET;
  return v1::Handler::POST;
}

v1::Handler::ContentType ParseContentType(absl::string_view name) {
  return name == "JSON" ? v1::Handler::JSON : v1::Handler::FORM;
}

// Header values are write-only: replies carry their names, each with
// kMaskedValue. The signing secret is never read back; the calls that make
// one put it in their reply themselves.
v1::Handler RowToHandler(const PgResult& r, int row) {
  v1::Handler h;
  h.set_id(std::string(r.Get(row, 0)));
  h.set_project(std::string(r.Get(row, 1)));
  h.set_event(std::string(r.Get(row, 2)));
  h.set_url(std::string(r.Get(row, 3)));
  h.set_method(ParseMethod(r.Get(row, 4)));
  h.set_content_type(ParseContentType(r.Get(row, 5)));
  for (auto& [name, value] : HandlerSecrets::MaskedHeaders(r.Get(row, 6))) {
    (*h.mutable_headers())[name] = std::move(value);
  }
  h.set_timeout_ms(static_cast<int32_t>(r.GetInt64(row, 7)));
  h.set_enabled(r.GetBool(row, 8));
  h.set_disabled_reason(std::string(r.Get(row, 9)));
  *h.mutable_create_time() = ToTimestamp(r.GetInt64(row, 10));
  *h.mutable_update_time() = ToTimestamp(r.GetInt64(row, 11));
  if (!r.IsNull(row, 12)) {
    *h.mutable_previous_secret_expire_time() = ToTimestamp(r.GetInt64(row, 12));
  }
  h.set_client_certificate(std::string(r.Get(row, 13)));
  if (r.GetBool(row, 14)) h.set_client_key(std::string(kMaskedValue));
  return h;
}

// The row of handler `id` as replies show it.
absl::StatusOr<v1::Handler> ReadHandler(PgConnection& conn,
                                        const std::string& id) {
  RIO_ASSIGN_OR_RETURN(PgResult r,
                       conn.Exec(absl::StrCat("SELECT ", kHandlerColumns,
                                              kHandlerFrom, "WHERE h.id = $1"),
                                 {id}));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("handler \"", id, "\" not found"));
  }
  return RowToHandler(r, 0);
}

absl::Status ProjectNotFound(const std::string& slug) {
  return absl::NotFoundError(absl::StrCat("project \"", slug, "\" not found"));
}

absl::Status HandlerNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("handler \"", id, "\" not found"));
}

// Whether `slug` names a project (used to tell which object is missing).
absl::StatusOr<bool> ProjectExists(PgConnection& conn,
                                   const std::string& slug) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec("SELECT 1 FROM projects WHERE slug = $1", {slug}));
  return r.rows() > 0;
}

}  // namespace

std::string MethodName(v1::Handler::Method method) {
  switch (method) {
    case v1::Handler::PUT:
      return "PUT";
    case v1::Handler::GET:
      return "GET";
    default:
      return "POST";
  }
}

std::string ContentTypeName(v1::Handler::ContentType type) {
  return type == v1::Handler::JSON ? "JSON" : "FORM";
}

absl::StatusOr<v1::Project> CreateProject(PgConnection& conn,
                                          const std::string& slug,
                                          const std::string& name) {
  v1::Project project;
  absl::Status status = conn.InTransaction([&]() -> absl::Status {
    auto r = conn.Exec(absl::StrCat("INSERT INTO projects (slug, name) "
                                    "VALUES ($1, $2) RETURNING ",
                                    kProjectColumns),
                       {slug, name});
    if (absl::IsAlreadyExists(r.status())) {
      return absl::AlreadyExistsError(
          absl::StrCat("project \"", slug, "\" already exists"));
    }
    RIO_RETURN_IF_ERROR(r.status());
    project = RowToProject(*r, 0);
    return absl::OkStatus();
  });
  RIO_RETURN_IF_ERROR(status);
  return project;
}

absl::StatusOr<v1::Project> GetProject(PgConnection& conn,
                                       const std::string& slug) {
  v1::Project project;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r, conn.Exec(absl::StrCat("SELECT ", kProjectColumns,
                                           " FROM projects WHERE slug = $1"),
                              {slug}));
    if (r.rows() == 0) return ProjectNotFound(slug);
    project = RowToProject(r, 0);
    return absl::OkStatus();
  }));
  return project;
}

absl::StatusOr<v1::ListProjectsResponse> ListProjects(PgConnection& conn,
                                                      const std::string& after,
                                                      int limit) {
  v1::ListProjectsResponse response;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec(absl::StrCat("SELECT ", kProjectColumns,
                               " FROM projects WHERE slug > $1 "
                               "ORDER BY slug COLLATE \"C\" LIMIT $2"),
                  {after, std::to_string(limit + 1)}));
    int n = std::min(r.rows(), limit);
    for (int i = 0; i < n; ++i) *response.add_projects() = RowToProject(r, i);
    if (r.rows() > limit && n > 0) {
      response.set_next_page_token(response.projects(n - 1).slug());
    }
    return absl::OkStatus();
  }));
  return response;
}

absl::StatusOr<v1::Project> UpdateProject(PgConnection& conn,
                                          const std::string& slug,
                                          const std::string& name) {
  v1::Project project;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec(absl::StrCat("UPDATE projects SET name = $2, "
                               "update_time = now() WHERE slug = $1 RETURNING ",
                               kProjectColumns),
                  {slug, name}));
    if (r.rows() == 0) return ProjectNotFound(slug);
    project = RowToProject(r, 0);
    return absl::OkStatus();
  }));
  return project;
}

absl::Status DeleteProject(PgConnection& conn, const std::string& slug) {
  return conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r, conn.Exec("DELETE FROM projects WHERE slug = $1", {slug}));
    if (r.affected() == 0) return ProjectNotFound(slug);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Sender> CreateSender(PgConnection& conn,
                                        const std::string& project,
                                        const std::string& name,
                                        const std::string& token_hash) {
  v1::Sender sender;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    auto r = conn.Exec(
        "INSERT INTO senders (project_id, name, token_hash) "
        "SELECT id, $2, decode($3, 'hex') FROM projects WHERE slug = $1 "
        "RETURNING " RIO_MICROS("create_time"),
        {project, name, absl::BytesToHexString(token_hash)});
    if (absl::IsAlreadyExists(r.status())) {
      return absl::AlreadyExistsError(absl::StrCat(
          "sender \"", name, "\" already exists in project \"", project, "\""));
    }
    RIO_RETURN_IF_ERROR(r.status());
    if (r->rows() == 0) return ProjectNotFound(project);
    sender.set_project(project);
    sender.set_name(name);
    *sender.mutable_create_time() = ToTimestamp(r->GetInt64(0, 0));
    return absl::OkStatus();
  }));
  return sender;
}

absl::StatusOr<std::vector<v1::Sender>> ListSenders(
    PgConnection& conn, const std::string& project) {
  std::vector<v1::Sender> senders;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec("SELECT s.name, " RIO_MICROS(
                      "s.create_time") " FROM projects p LEFT JOIN senders s "
                                       "ON s.project_id = p.id"
                                       " WHERE p.slug = $1 ORDER BY s.name "
                                       "COLLATE \"C\"",
                  {project}));
    if (r.rows() == 0) return ProjectNotFound(project);
    for (int i = 0; i < r.rows(); ++i) {
      if (r.IsNull(i, 0)) continue;  // the project has no sender
      v1::Sender& s = senders.emplace_back();
      s.set_project(project);
      s.set_name(std::string(r.Get(i, 0)));
      *s.mutable_create_time() = ToTimestamp(r.GetInt64(i, 1));
    }
    return absl::OkStatus();
  }));
  return senders;
}

absl::Status DeleteSender(PgConnection& conn, const std::string& project,
                          const std::string& name) {
  return conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec("DELETE FROM senders s USING projects p "
                  "WHERE s.project_id = p.id AND p.slug = $1 AND s.name = $2",
                  {project, name}));
    if (r.affected() > 0) return absl::OkStatus();
    RIO_ASSIGN_OR_RETURN(bool exists, ProjectExists(conn, project));
    if (!exists) return ProjectNotFound(project);
    return absl::NotFoundError(absl::StrCat(
        "sender \"", name, "\" not found in project \"", project, "\""));
  });
}

absl::StatusOr<v1::Handler> CreateHandler(PgConnection& conn,
                                          const HandlerSecrets& secrets,
                                          const v1::Handler& handler) {
  RowSecrets row;
  row.secret = handler.secret();
  row.headers.insert(handler.headers().begin(), handler.headers().end());
  row.client_key = handler.client_key();
  const StoredSecrets stored = secrets.Seal(handler.id(), row);
  v1::Handler created;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult inserted,
        conn.Exec(
            "INSERT INTO handlers (id, project_id, event, url, method, "
            "content_type, headers, timeout_ms, enabled, "
            "disabled_reason, secret, secrets_sealed, client_certificate, "
            "client_key) "
            "SELECT $1, id, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, "
            "$12, $13, $14 FROM projects WHERE slug = $2",
            {handler.id(), handler.project(), handler.event(), handler.url(),
             MethodName(handler.method()),
             ContentTypeName(handler.content_type()), stored.headers_json,
             std::to_string(handler.timeout_ms()),
             handler.enabled() ? "true" : "false", handler.disabled_reason(),
             stored.secret, stored.sealed ? "true" : "false",
             handler.client_certificate(), stored.client_key}));
    if (inserted.affected() == 0) return ProjectNotFound(handler.project());
    RIO_ASSIGN_OR_RETURN(created, ReadHandler(conn, handler.id()));
    return absl::OkStatus();
  }));
  created.set_secret(handler.secret());
  return created;
}

absl::StatusOr<v1::Handler> GetHandler(PgConnection& conn,
                                       const std::string& id) {
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(handler, ReadHandler(conn, id));
    return absl::OkStatus();
  }));
  return handler;
}

absl::StatusOr<std::vector<v1::Handler>> ListHandlers(
    PgConnection& conn, const std::string& project, const std::string& event) {
  std::vector<v1::Handler> handlers;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(bool exists, ProjectExists(conn, project));
    if (!exists) return ProjectNotFound(project);
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec(absl::StrCat(
                      "SELECT ", kHandlerColumns, kHandlerFrom,
                      "WHERE p.slug = $1 AND ($2 = '' OR h.event = $2)"
                      " ORDER BY h.event COLLATE \"C\", h.create_time, h.id"),
                  {project, event}));
    for (int i = 0; i < r.rows(); ++i) {
      handlers.push_back(RowToHandler(r, i));
    }
    return absl::OkStatus();
  }));
  return handlers;
}

namespace {

// The secret side of an UpdateHandler (in the caller's transaction): new
// header values and a new client key, where a masked value stands for the
// one stored.
absl::Status UpdateRowSecrets(PgConnection& conn, const HandlerSecrets& secrets,
                              const v1::UpdateHandlerRequest& update,
                              bool headers_change) {
  RIO_ASSIGN_OR_RETURN(RowSecrets row,
                       LoadRowSecrets(conn, secrets, update.id()));
  if (update.has_client_certificate()) {
    if (update.client_certificate().empty()) {
      row.client_key.clear();  // removes both
    } else if (update.client_key() != kMaskedValue) {
      row.client_key = update.client_key();  // checked with the request
    } else if (row.client_key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "client_key has the masked value ", kMaskedValue,
          ", which keeps the stored key, but the handler has none"));
    } else {
      // The kept key must belong to the new certificate.
      RIO_RETURN_IF_ERROR(
          util::CheckCertifiedKey(update.client_certificate(), row.client_key,
                                  "client_certificate", "client_key")
              .status());
    }
  }
  if (headers_change) {
    std::map<std::string, std::string> headers;
    for (const auto& [name, value] : update.headers()) {
      if (value != kMaskedValue) {
        headers[name] = value;
        continue;
      }
      auto stored = row.headers.find(name);
      if (stored == row.headers.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "headers: \"", name, "\" has the masked value ", kMaskedValue,
            ", which keeps a stored value, but the handler has no header "
            "of that name (header names are case-sensitive here)"));
      }
      headers[name] = stored->second;
    }
    row.headers = std::move(headers);
  }
  return StoreRowSecrets(conn, secrets, update.id(), row);
}

}  // namespace

absl::StatusOr<v1::Handler> UpdateHandler(
    PgConnection& conn, const HandlerSecrets& secrets,
    const v1::UpdateHandlerRequest& update) {
  std::vector<std::string> sets = {"update_time = now()"};
  std::vector<PgParam> params = {update.id()};
  auto bind = [&](const std::string& column, std::string value,
                  const char* cast = "") {
    params.push_back(std::move(value));
    sets.push_back(absl::StrCat(column, " = $", params.size(), cast));
  };
  if (update.has_event()) bind("event", update.event());
  if (update.has_url()) bind("url", update.url());
  if (update.has_method()) bind("method", MethodName(update.method()));
  if (update.has_content_type()) {
    bind("content_type", ContentTypeName(update.content_type()));
  }
  if (update.has_timeout_ms()) {
    bind("timeout_ms", std::to_string(update.timeout_ms()));
  }
  if (update.has_enabled()) {
    bind("enabled", update.enabled() ? "true" : "false");
    bind("disabled_reason",
         update.enabled() ? "" : "disabled by an administrator");
  }
  const bool headers_change =
      !update.headers().empty() || update.clear_headers();
  // Set together (checked by the caller).
  const bool client_change = update.has_client_certificate();
  if (client_change) bind("client_certificate", update.client_certificate());
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    if (headers_change || client_change) {
      RIO_RETURN_IF_ERROR(
          UpdateRowSecrets(conn, secrets, update, headers_change));
    }
    RIO_ASSIGN_OR_RETURN(
        PgResult updated,
        conn.Exec(absl::StrCat("UPDATE handlers SET ",
                               absl::StrJoin(sets, ", "), " WHERE id = $1"),
                  params));
    if (updated.affected() == 0) return HandlerNotFound(update.id());
    if (update.has_enabled() && update.enabled()) {
      // A fresh start for the health policy: failures before re-enabling
      // do not count towards disabling it again.
      RIO_RETURN_IF_ERROR(
          conn.Exec("UPDATE handler_health SET consecutive_failures = 0, "
                    "failing_since = NULL WHERE handler_id = $1",
                    {update.id()})
              .status());
    }
    RIO_ASSIGN_OR_RETURN(handler, ReadHandler(conn, update.id()));
    return absl::OkStatus();
  }));
  return handler;
}

absl::Status DeleteHandler(PgConnection& conn, const std::string& id) {
  return conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(PgResult r,
                         conn.Exec("DELETE FROM handlers WHERE id = $1", {id}));
    if (r.affected() == 0) return HandlerNotFound(id);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Handler> RotateHandlerSecret(PgConnection& conn,
                                                const HandlerSecrets& secrets,
                                                const std::string& id,
                                                const std::string& new_secret,
                                                absl::Duration previous_ttl) {
  v1::Handler handler;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    const bool keep = previous_ttl > absl::ZeroDuration();
    RIO_ASSIGN_OR_RETURN(RowSecrets row, LoadRowSecrets(conn, secrets, id));
    row.previous_secret = keep ? row.secret : "";
    row.secret = new_secret;
    RIO_RETURN_IF_ERROR(StoreRowSecrets(conn, secrets, id, row));
    RIO_RETURN_IF_ERROR(
        conn.Exec("UPDATE handlers SET "
                  "previous_secret_expire_time = CASE WHEN $2 THEN "
                  "now() + make_interval(secs => $3::double precision) END, "
                  "update_time = now() WHERE id = $1",
                  {id, keep ? "true" : "false",
                   std::to_string(absl::ToInt64Seconds(previous_ttl))})
            .status());
    RIO_ASSIGN_OR_RETURN(handler, ReadHandler(conn, id));
    return absl::OkStatus();
  }));
  handler.set_secret(new_secret);
  return handler;
}

}  // namespace rio::store
