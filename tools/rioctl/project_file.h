// The declarative project file that `rioctl apply -f` syncs, in the original
// Rio's shape, extended with a handler's content type, timeout and enabled
// flag:
//
//   project: example            # the project's slug (required)
//   name: Example project       # its display name (optional)
//   senders:
//     - slug: example           # a sender allowed to emit into the project
//   actions:
//     - slug: comment-published # an event
//       webhooks:               # its handlers
//         - method: POST        # POST (default), PUT or GET
//           url: http://127.0.0.1:5000/webhook
//           headers: {X-Team: antispam}
//           content_type: json  # form (default) or json
//           timeout: 5s         # per attempt (default 15s)
//           enabled: true       # unset: left as the server has it
//           client_certificate_file: certs/client.pem  # mutual TLS (both
//           client_key_file: certs/client.key          # or neither)
//
// String values may use the original's `{{ NAME }}` placeholders, filled
// from `rioctl apply --var NAME=VALUE` or the environment variable
// RIO_VAR_NAME (PlaceholderVariables), never from any other variable. A
// sender's `token:` is accepted for compatibility but ignored with a
// warning: Rio generates sender tokens itself and shows them once, when the
// sender is created.
//
// `client_certificate_file` and `client_key_file` name PEM files: the
// client certificate (chain) a handler presents to receivers that require
// mutual TLS, and its private key. Nothing else in the file names a file;
// a relative path is taken relative to the project file's directory (the
// current directory when the file is read from standard input), so a
// project keeps working wherever it is applied from. ParseProjectFile only
// records the paths; ReadClientCertificates reads them.
//
// Pure functions and plain values (ReadClientCertificates reads files
// through the reader it is given); thread-compatible.
#ifndef RIO_TOOLS_RIOCTL_PROJECT_FILE_H_
#define RIO_TOOLS_RIOCTL_PROJECT_FILE_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rio/v1/handler.pb.h"

namespace rio::rioctl {

// Where something is in the file: 1-based, as editors show it.
struct FileLocation {
  int line = 0;
  int column = 0;
};

struct SenderSpec {
  std::string name;
  FileLocation location;
};

struct WebhookSpec {
  v1::Handler::Method method = v1::Handler::POST;
  std::string url;
  std::map<std::string, std::string> headers;
  v1::Handler::ContentType content_type = v1::Handler::FORM;
  int timeout_ms = 15000;
  std::optional<bool> enabled;  // Unset: not managed by the file.
  // The paths as written (placeholders filled), both or neither; empty:
  // the handler has no client certificate.
  std::string client_certificate_file;
  std::string client_key_file;
  FileLocation client_certificate_location;
  FileLocation client_key_location;
  // The PEM texts, filled by ReadClientCertificates.
  std::string client_certificate;
  std::string client_key;
  FileLocation location;
};

struct ActionSpec {
  std::string event;
  std::vector<WebhookSpec> webhooks;
  FileLocation location;
};

struct ProjectFile {
  std::string project;              // Slug.
  std::optional<std::string> name;  // Unset: not managed by the file.
  std::vector<SenderSpec> senders;
  std::vector<ActionSpec> actions;
  // "FILE:LINE:COL: key: text" lines for things accepted but ignored.
  std::vector<std::string> warnings;
};

// Looks up `{{ NAME }}` placeholders; nullopt when NAME is not set.
using VariableLookup =
    std::function<std::optional<std::string>(const std::string& name)>;

// The environment variable that may fill `{{ NAME }}`: RIO_VAR_NAME, or NAME
// itself when it already starts with "RIO_VAR_".
std::string PlaceholderEnvironmentName(absl::string_view name);

// Where `{{ NAME }}` gets its value: `given[NAME]` (rioctl's `--var
// NAME=VALUE`), else the environment variable PlaceholderEnvironmentName(
// NAME) read through `environment` (unset and empty are both missing), else
// nothing. No other environment variable is ever read, so a project file
// written by someone else cannot copy RIO_ADMIN_TOKEN (or any other secret
// of whoever applies it) into a handler's URL or headers.
VariableLookup PlaceholderVariables(std::map<std::string, std::string> given,
                                    VariableLookup environment);

// The values of repeated `--var NAME=VALUE` flags; a later NAME wins. NAME
// is what may stand between `{{ }}`: letters, digits and '_'; VALUE may be
// empty. INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<std::map<std::string, std::string>> ParseVarFlags(
    const std::vector<std::string>& flags);

// Parses and validates a project file. `path` is only used in messages.
// Any problem — malformed YAML, an unknown or duplicate key, a value of the
// wrong type, an invalid slug, URL, method, content type, header or
// timeout, a duplicate sender, action or webhook, a placeholder that
// `variables` has no value for (the message says how to give one) — is
// INVALID_ARGUMENT with the message
// "PATH:LINE:COL: KEY: what is wrong", KEY being the key's path such as
// `actions[0].webhooks[1].method`.
absl::StatusOr<ProjectFile> ParseProjectFile(absl::string_view path,
                                             absl::string_view text,
                                             const VariableLookup& variables);

// Reads a file's contents; an error status whose message names the file.
using FileReader =
    std::function<absl::StatusOr<std::string>(const std::string& path)>;

// Where a path written in the project file at `path` ("<stdin>" or "-" for
// standard input) points: `file_path` itself when absolute, else relative
// to the project file's directory ("dir/p.yml" and "certs/a.pem" give
// "dir/certs/a.pem"; standard input and "p.yml" leave it as it is, relative
// to the current directory).
std::string ResolveFilePath(absl::string_view path,
                            absl::string_view file_path);

// Fills every webhook's client_certificate and client_key from its
// client_certificate_file and client_key_file (ResolveFilePath) through
// `read`, and checks them as the server will (at least one PEM certificate,
// an unencrypted key that belongs to the first). INVALID_ARGUMENT with the
// message "PATH:LINE:COL: KEY: what is wrong" otherwise, KEY being e.g.
// `actions[0].webhooks[1].client_key_file`.
absl::Status ReadClientCertificates(absl::string_view path,
                                    const FileReader& read, ProjectFile* file);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_PROJECT_FILE_H_
