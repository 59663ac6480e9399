// How the secrets of a handler row are kept at rest: its signing secrets
// (current and previous), its header values and its client key, sealed with
// a SecretBox (util/secret_box.h) or, when the server runs without a key
// (--allow_plaintext_secrets), as given. handlers.secrets_sealed says which
// of the two a row holds; rows written before sealing existed are plaintext
// until SealStoredSecrets() seals them at start-up (a SQL migration cannot:
// it has no key).
//
// Each sealed value is bound to its handler (and a header value to its
// name), so a value copied into another row does not open.
//
// Every statement on the secret columns of handlers is here, so a new
// secret (a client key) is added in one place: RowSecrets.
//
// HandlerSecrets is immutable; thread-safe.
#ifndef RIO_SERVER_STORE_HANDLER_SECRETS_H_
#define RIO_SERVER_STORE_HANDLER_SECRETS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/pg.h"
#include "server/util/secret_box.h"

namespace rio::store {

// Stands for every header value in replies: header values are write-only.
// An UpdateHandler header with this value keeps the stored value of that
// header, so a form that shows a handler can be saved back unchanged.
inline constexpr absl::string_view kMaskedValue =
    "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2";

// The secrets of one handler row, in plaintext.
struct RowSecrets {
  std::string secret;
  std::string previous_secret;  // empty when none
  std::map<std::string, std::string> headers;
  std::string client_key;  // PEM; empty when none
};

// A row's secret columns as stored.
struct StoredSecrets {
  bool sealed = false;
  std::string secret;
  std::string previous_secret;
  std::string headers_json;  // a JSON object of strings
  std::string client_key;
};

class HandlerSecrets {
 public:
  // `box` null: values are stored in plaintext. `box` must outlive this.
  explicit HandlerSecrets(const util::SecretBox* box) : box_(box) {}

  bool sealing() const { return box_ != nullptr; }
  const util::SecretBox* box() const { return box_; }

  // The stored form of `secrets` for handler `id`.
  StoredSecrets Seal(absl::string_view id, const RowSecrets& secrets) const;
  // The plaintext of a stored row. FAILED_PRECONDITION when the row is
  // sealed and this server has no key; otherwise the SecretBox's errors
  // (NOT_FOUND for a key missing from the key file, DATA_LOSS for a value
  // that does not open), prefixed with the handler id.
  absl::StatusOr<RowSecrets> Open(absl::string_view id,
                                  const StoredSecrets& stored) const;

  // Header names of a stored headers object, each with kMaskedValue.
  static std::map<std::string, std::string> MaskedHeaders(
      absl::string_view headers_json);

 private:
  const util::SecretBox* box_;
};

// Reads handler `id`'s secrets, FOR UPDATE (in the caller's transaction).
// NOT_FOUND names the handler.
absl::StatusOr<RowSecrets> LoadRowSecrets(PgConnection& conn,
                                          const HandlerSecrets& secrets,
                                          const std::string& id);
// Writes `row` as handler `id`'s secrets, sealed as `secrets` says.
absl::Status StoreRowSecrets(PgConnection& conn, const HandlerSecrets& secrets,
                             const std::string& id, const RowSecrets& row);

struct SealReport {
  // Values (secrets and header values) per key id, as found.
  std::map<std::string, int64_t> values_by_key;
  int64_t plaintext_rows = 0;
  int64_t sealed_rows = 0;    // plaintext rows sealed now
  int64_t resealed_rows = 0;  // rows re-sealed under the sealing key
};

// Start-up pass over every handler, under an advisory lock so that
// instances starting together do it once:
// - FAILED_PRECONDITION, changing nothing, when values are sealed under a
//   key this server lacks: the message names each key id and how many
//   values use it.
// - With a key, seals every plaintext row; with `reencrypt`, also re-seals
//   every row holding a value under another key than the sealing one. Rows
//   are done `batch` at a time, one transaction each.
absl::StatusOr<SealReport> SealStoredSecrets(PgConnection& conn,
                                             const HandlerSecrets& secrets,
                                             bool reencrypt, int batch = 200);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_HANDLER_SECRETS_H_
