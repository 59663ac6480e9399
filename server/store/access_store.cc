#include "server/store/access_store.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

using google::protobuf::util::TimeUtil;

constexpr const char* kTokenColumns =
    "t.name, t.scope, coalesce(p.slug, ''), "
    "(extract(epoch FROM t.create_time) * 1000000)::bigint, "
    "(extract(epoch FROM t.expire_time) * 1000000)::bigint";

v1::AccessToken RowToAccessToken(const PgResult& r, int row) {
  v1::AccessToken token;
  token.set_name(std::string(r.Get(row, 0)));
  v1::AccessToken::Scope scope = v1::AccessToken::SCOPE_UNSPECIFIED;
  v1::AccessToken::Scope_Parse(std::string(r.Get(row, 1)), &scope);
  token.set_scope(scope);
  token.set_project(std::string(r.Get(row, 2)));
  *token.mutable_create_time() =
      TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, 3));
  if (!r.IsNull(row, 4)) {
    *token.mutable_expire_time() =
        TimeUtil::MicrosecondsToTimestamp(r.GetInt64(row, 4));
  }
  return token;
}

}  // namespace

absl::StatusOr<v1::AccessToken> CreateAccessToken(
    PgConnection& conn, const v1::AccessToken& token,
    const std::string& token_hash) {
  const std::string expire =
      token.has_expire_time()
          ? std::to_string(
                TimeUtil::TimestampToMicroseconds(token.expire_time()))
          : "";
  v1::AccessToken created;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    std::string project_id;
    if (!token.project().empty()) {
      RIO_ASSIGN_OR_RETURN(PgResult p,
                           conn.Exec("SELECT id FROM projects WHERE slug = $1",
                                     {token.project()}));
      if (p.rows() == 0) {
        return absl::NotFoundError(
            absl::StrCat("project \"", token.project(), "\" not found"));
      }
      project_id = std::string(p.Get(0, 0));
    }
    auto r = conn.Exec(
        absl::StrCat("WITH t AS (INSERT INTO access_tokens "
                     "(name, scope, project_id, token_hash, expire_time) "
                     "VALUES ($1, $2, nullif($3, '')::bigint, "
                     "decode($4, 'hex'), "
                     "to_timestamp(nullif($5, '')::bigint / 1000000.0)) "
                     "RETURNING *) SELECT ",
                     kTokenColumns,
                     " FROM t LEFT JOIN projects p ON p.id = t.project_id"),
        {token.name(), v1::AccessToken::Scope_Name(token.scope()), project_id,
         absl::BytesToHexString(token_hash), expire});
    if (absl::IsAlreadyExists(r.status())) {
      return absl::AlreadyExistsError(
          absl::StrCat("access token \"", token.name(), "\" already exists"));
    }
    RIO_RETURN_IF_ERROR(r.status());
    created = RowToAccessToken(*r, 0);
    return absl::OkStatus();
  }));
  return created;
}

absl::StatusOr<std::vector<v1::AccessToken>> ListAccessTokens(
    PgConnection& conn) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(absl::StrCat("SELECT ", kTokenColumns,
                             " FROM access_tokens t LEFT JOIN projects p "
                             "ON p.id = t.project_id ORDER BY t.name")));
  std::vector<v1::AccessToken> tokens;
  tokens.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) tokens.push_back(RowToAccessToken(r, i));
  return tokens;
}

absl::Status RevokeAccessToken(PgConnection& conn, const std::string& name) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("DELETE FROM access_tokens WHERE name = $1", {name}));
  if (r.affected() == 0) {
    return absl::NotFoundError(
        absl::StrCat("access token \"", name, "\" not found"));
  }
  return absl::OkStatus();
}

const char* ObjectKindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kHandler:
      return "handler";
    case ObjectKind::kDelivery:
      return "delivery";
    case ObjectKind::kMessage:
      return "message";
    case ObjectKind::kRecovery:
      return "recovery";
  }
  return "object";
}

absl::StatusOr<std::string> OwningProject(PgConnection& conn, ObjectKind kind,
                                          const std::string& id) {
  const char* query = nullptr;
  switch (kind) {
    case ObjectKind::kHandler:
      query =
          "SELECT p.slug FROM handlers o JOIN projects p "
          "ON p.id = o.project_id WHERE o.id = $1::uuid";
      break;
    case ObjectKind::kDelivery:
      query =
          "SELECT p.slug FROM deliveries o JOIN handlers h "
          "ON h.id = o.handler_id JOIN projects p ON p.id = h.project_id "
          "WHERE o.id = $1::uuid";
      break;
    case ObjectKind::kMessage:
      query =
          "SELECT p.slug FROM messages o JOIN projects p "
          "ON p.id = o.project_id WHERE o.id = $1::uuid";
      break;
    case ObjectKind::kRecovery:
      query =
          "SELECT p.slug FROM recoveries o JOIN projects p "
          "ON p.id = o.project_id WHERE o.id = $1::uuid";
      break;
  }
  RIO_ASSIGN_OR_RETURN(PgResult r, conn.Exec(query, {id}));
  if (r.rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat(ObjectKindName(kind), " ", id, " not found"));
  }
  return std::string(r.Get(0, 0));
}

}  // namespace rio::store
