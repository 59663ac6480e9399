#include "server/store/handler_secrets.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

// Rio's advisory locks: "rio" in ASCII for migrations, this one above it.
constexpr const char* kSealLockKey = "7498096";

std::string SecretContext(absl::string_view id) {
  return absl::StrCat("handler ", id, " signing secret");
}

std::string ClientKeyContext(absl::string_view id) {
  return absl::StrCat("handler ", id, " client key");
}

std::string HeaderContext(absl::string_view id, absl::string_view name) {
  return absl::StrCat("handler ", id, " header ", name);
}

std::string ToJson(const std::map<std::string, std::string>& headers) {
  google::protobuf::Struct object;
  for (const auto& [name, value] : headers) {
    (*object.mutable_fields())[name].set_string_value(value);
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(object, &json);
  return json;
}

// The stored object's members; values as stored (sealed or not). Rows are
// written by Rio only, so a malformed object reads as no headers.
std::map<std::string, std::string> FromJson(absl::string_view json) {
  std::map<std::string, std::string> headers;
  google::protobuf::Struct object;
  if (google::protobuf::util::JsonStringToMessage(std::string(json), &object)
          .ok()) {
    for (const auto& [name, value] : object.fields()) {
      headers[name] = value.string_value();
    }
  }
  return headers;
}

absl::Status InHandler(absl::string_view id, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("handler ", id, ": ", status.message()));
}

// Adds the key ids of a sealed row's values to `counts`.
void CountKeys(const StoredSecrets& row,
               std::map<std::string, int64_t>& counts) {
  auto count = [&counts](absl::string_view value) {
    absl::StatusOr<std::string> id = util::SealedKeyId(value);
    ++counts[id.ok() ? *id : std::string("(malformed)")];
  };
  count(row.secret);
  if (!row.previous_secret.empty()) count(row.previous_secret);
  for (const auto& [name, value] : FromJson(row.headers_json)) count(value);
  if (!row.client_key.empty()) count(row.client_key);
}

absl::Status MissingKeys(const HandlerSecrets& secrets,
                         const std::map<std::string, int64_t>& counts) {
  std::vector<std::string> missing;
  for (const auto& [key_id, n] : counts) {
    if (secrets.box() != nullptr && secrets.box()->HasKey(key_id)) continue;
    missing.push_back(absl::StrCat(n, n == 1 ? " value is" : " values are",
                                   " sealed under key \"", key_id, "\""));
  }
  if (missing.empty()) return absl::OkStatus();
  std::string have =
      secrets.box() == nullptr
          ? std::string("no --secret_key_file was given")
          : absl::StrCat("--secret_key_file has only ",
                         absl::StrJoin(secrets.box()->key_ids(), ", "));
  return absl::FailedPreconditionError(absl::StrCat(
      "stored handler secrets need keys this server lacks: ",
      absl::StrJoin(missing, "; "), " (", have,
      "). Add each missing key to the key file (after the first line), start "
      "once with --reencrypt_secrets to re-seal its values under the first "
      "key, and only then remove it"));
}

}  // namespace

StoredSecrets HandlerSecrets::Seal(absl::string_view id,
                                   const RowSecrets& secrets) const {
  StoredSecrets stored;
  stored.sealed = sealing();
  auto seal = [&](absl::string_view value, const std::string& context) {
    return box_ == nullptr ? std::string(value) : box_->Seal(value, context);
  };
  stored.secret = seal(secrets.secret, SecretContext(id));
  if (!secrets.previous_secret.empty()) {
    stored.previous_secret = seal(secrets.previous_secret, SecretContext(id));
  }
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : secrets.headers) {
    headers[name] = seal(value, HeaderContext(id, name));
  }
  stored.headers_json = ToJson(headers);
  if (!secrets.client_key.empty()) {
    stored.client_key = seal(secrets.client_key, ClientKeyContext(id));
  }
  return stored;
}

absl::StatusOr<RowSecrets> HandlerSecrets::Open(
    absl::string_view id, const StoredSecrets& stored) const {
  RowSecrets row;
  if (!stored.sealed) {
    row.secret = stored.secret;
    row.previous_secret = stored.previous_secret;
    row.headers = FromJson(stored.headers_json);
    row.client_key = stored.client_key;
    return row;
  }
  if (box_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "handler ", id,
        ": its secrets are sealed, and this server has no --secret_key_file"));
  }
  auto open = [&](absl::string_view value,
                  const std::string& context) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> opened = box_->Open(value, context);
    if (!opened.ok()) return InHandler(id, opened.status());
    return opened;
  };
  RIO_ASSIGN_OR_RETURN(row.secret, open(stored.secret, SecretContext(id)));
  if (!stored.previous_secret.empty()) {
    RIO_ASSIGN_OR_RETURN(row.previous_secret,
                         open(stored.previous_secret, SecretContext(id)));
  }
  for (const auto& [name, value] : FromJson(stored.headers_json)) {
    RIO_ASSIGN_OR_RETURN(row.headers[name],
                         open(value, HeaderContext(id, name)));
  }
  if (!stored.client_key.empty()) {
    RIO_ASSIGN_OR_RETURN(row.client_key,
                         open(stored.client_key, ClientKeyContext(id)));
  }
  return row;
}

std::map<std::string, std::string> HandlerSecrets::MaskedHeaders(
    absl::string_view headers_json) {
  std::map<std::string, std::string> headers = FromJson(headers_json);
  for (auto& [name, value] : headers) value = std::string(kMaskedValue);
  return headers;
}

absl::StatusOr<RowSecrets> LoadRowSecrets(PgConnection& conn,
                                          const HandlerSecrets& secrets,
                                          const std::string& id) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT secrets_sealed, secret, coalesce(previous_secret, ''), "
                "headers::text, client_key FROM handlers WHERE id = $1 "
                "FOR UPDATE",
                {id}));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("handler \"", id, "\" not found"));
  }
  StoredSecrets stored;
  stored.sealed = r.GetBool(0, 0);
  stored.secret = std::string(r.Get(0, 1));
  stored.previous_secret = std::string(r.Get(0, 2));
  stored.headers_json = std::string(r.Get(0, 3));
  stored.client_key = std::string(r.Get(0, 4));
  return secrets.Open(id, stored);
}

absl::Status StoreRowSecrets(PgConnection& conn, const HandlerSecrets& secrets,
                             const std::string& id, const RowSecrets& row) {
  StoredSecrets stored = secrets.Seal(id, row);
  return conn
      .Exec(
          "UPDATE handlers SET secrets_sealed = $2, secret = $3, "
          "previous_secret = nullif($4, ''), headers = $5::jsonb, "
          "client_key = $6 WHERE id = $1",
          {id, stored.sealed ? "true" : "false", stored.secret,
           stored.previous_secret, stored.headers_json, stored.client_key})
      .status();
}

absl::StatusOr<SealReport> SealStoredSecrets(PgConnection& conn,
                                             const HandlerSecrets& secrets,
                                             bool reencrypt, int batch) {
  RIO_RETURN_IF_ERROR(
      conn.Exec(absl::StrCat("SELECT pg_advisory_lock(", kSealLockKey, ")"))
          .status());
  absl::Cleanup unlock = [&conn] {
    if (conn.ok()) {
      (void)conn.Exec(
          absl::StrCat("SELECT pg_advisory_unlock(", kSealLockKey, ")"));
    }
  };

  // Survey: which keys the stored values need, and which rows need work.
  SealReport report;
  std::vector<std::string> todo;
  RIO_ASSIGN_OR_RETURN(
      PgResult rows,
      conn.Exec("SELECT id, secrets_sealed, secret, "
                "coalesce(previous_secret, ''), headers::text, client_key "
                "FROM handlers ORDER BY id"));
  for (int i = 0; i < rows.rows(); ++i) {
    StoredSecrets stored;
    stored.sealed = rows.GetBool(i, 1);
    std::string id(rows.Get(i, 0));
    if (!stored.sealed) {
      ++report.plaintext_rows;
      if (secrets.sealing()) todo.push_back(std::move(id));
      continue;
    }
    stored.secret = std::string(rows.Get(i, 2));
    stored.previous_secret = std::string(rows.Get(i, 3));
    stored.headers_json = std::string(rows.Get(i, 4));
    stored.client_key = std::string(rows.Get(i, 5));
    std::map<std::string, int64_t> keys;
    CountKeys(stored, keys);
    for (const auto& [key_id, n] : keys) report.values_by_key[key_id] += n;
    const bool other_key =
        secrets.sealing() &&
        (keys.size() > 1 ||
         (keys.size() == 1 &&
          keys.begin()->first != secrets.box()->sealing_key_id()));
    if (reencrypt && other_key) todo.push_back(std::move(id));
  }
  RIO_RETURN_IF_ERROR(MissingKeys(secrets, report.values_by_key));

  for (size_t start = 0; start < todo.size();
       start += static_cast<size_t>(batch)) {
    const size_t end = std::min(todo.size(), start + batch);
    int64_t sealed = 0;
    int64_t resealed = 0;
    RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
      sealed = resealed = 0;
      for (size_t i = start; i < end; ++i) {
        RIO_ASSIGN_OR_RETURN(PgResult flag,
                             conn.Exec("SELECT secrets_sealed FROM handlers "
                                       "WHERE id = $1 FOR UPDATE",
                                       {todo[i]}));
        if (flag.rows() == 0) continue;  // deleted meanwhile
        const bool was_sealed = flag.GetBool(0, 0);
        RIO_ASSIGN_OR_RETURN(RowSecrets row,
                             LoadRowSecrets(conn, secrets, todo[i]));
        RIO_RETURN_IF_ERROR(StoreRowSecrets(conn, secrets, todo[i], row));
        ++(was_sealed ? resealed : sealed);
      }
      return absl::OkStatus();
    }));
    report.sealed_rows += sealed;
    report.resealed_rows += resealed;
  }
  return report;
}

}  // namespace rio::store
