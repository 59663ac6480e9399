#include "tools/rioctl/project_file.h"

#include <filesystem>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/util/tls_files.h"
#include "server/util/validation.h"
#include "tools/rioctl/args.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace rio::rioctl {
namespace {

// The environment variables placeholders may read start with this.
constexpr absl::string_view kVariablePrefix = "RIO_VAR_";

// What may stand between `{{` and `}}`: letters, digits and '_'.
bool IsPlaceholderName(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

// Raised inside the parser and turned into a status at its edge, so that
// every check is one line.
struct FileError {
  FileLocation location;
  std::string message;
};

FileLocation LocationOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {1, 1};
  return {mark.line + 1, mark.column + 1};
}

[[noreturn]] void Fail(const YAML::Node& node, const std::string& key,
                       const std::string& message) {
  throw FileError{LocationOf(node), absl::StrCat(key, ": ", message)};
}

[[noreturn]] void FailStatus(const YAML::Node& node,
                             const absl::Status& status) {
  throw FileError{LocationOf(node), std::string(status.message())};
}

const char* KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a single value";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// Where the documents of a YAML stream start, and where their root nodes
// are, up to the second document. yaml-cpp 0.7's LoadAll cannot be used to
// count them: on a stream its parser stops consuming (one starting with ',',
// jbeder/yaml-cpp#1040) it adds empty documents forever, growing until the
// process dies. Here that shows as a document starting where the previous
// one did.
class DocumentMarks : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;
    YAML::Mark root = YAML::Mark::null_mark();
  };

  // Throws YAML::Exception on malformed YAML, as YAML::LoadAll does.
  static std::vector<Document> Of(absl::string_view text) {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentMarks marks;
    while (marks.documents_.size() < 2 && parser.HandleNextDocument(marks)) {
    }
    return std::move(marks.documents_);
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    documents_.push_back({mark});
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&,
                       YAML::anchor_t, YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}

 private:
  // The first node of a document is its root.
  void Node(const YAML::Mark& mark) {
    if (!documents_.empty() && documents_.back().root.is_null()) {
      documents_.back().root = mark;
    }
  }

  std::vector<Document> documents_;
};

FileLocation LocationOf(const YAML::Mark& mark) {
  if (mark.is_null()) return {1, 1};
  return {mark.line + 1, mark.column + 1};
}

class Parser {
 public:
  Parser(std::string path, const VariableLookup& variables)
      : path_(std::move(path)), variables_(variables) {}

  ProjectFile Parse(const YAML::Node& root) {
    ProjectFile file;
    if (!root.IsMap()) {
      throw FileError{LocationOf(root),
                      absl::StrCat("the file must be a mapping with `project:`"
                                   " (and `senders:`, `actions:`), not ",
                                   KindOf(root))};
    }
    auto fields = Fields(root, "", {"project", "name", "senders", "actions"});
    auto project = fields.find("project");
    if (project == fields.end()) {
      throw FileError{LocationOf(root), "project: is required"};
    }
    file.project = Scalar(project->second, "project", /*substitute=*/true);
    Check(project->second, util::ValidateName("project", file.project));
    if (auto it = fields.find("name"); it != fields.end()) {
      file.name = Scalar(it->second, "name", /*substitute=*/true);
      Check(it->second, util::ValidateDisplayName("name", *file.name));
    }
    if (auto it = fields.find("senders"); it != fields.end()) {
      ParseSenders(it->second, &file);
    }
    if (auto it = fields.find("actions"); it != fields.end()) {
      ParseActions(it->second, &file);
    }
    file.warnings = std::move(warnings_);
    return file;
  }

 private:
  // The members of mapping `node`, each key checked against `allowed` and
  // for duplicates; keys in file order.
  std::map<std::string, YAML::Node> Fields(
      const YAML::Node& node, const std::string& prefix,
      const std::vector<std::string>& allowed) {
    std::map<std::string, YAML::Node> out;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) {
        Fail(key, prefix.empty() ? "(key)" : prefix, "keys must be names");
      }
      const std::string name = key.Scalar();
      const std::string full = prefix.empty() ? name : prefix + "." + name;
      bool known = false;
      for (const std::string& a : allowed) known = known || a == name;
      if (!known) {
        Fail(key, full,
             absl::StrCat("unknown key (expected one of: ",
                          absl::StrJoin(allowed, ", "), ")"));
      }
      if (out.count(name) > 0) {
        Fail(key, full,
             absl::StrCat("duplicate key (first at line ",
                          LocationOf(out[name]).line, ")"));
      }
      // A null value keeps the key's position for messages.
      out[name] = it->second.IsNull() ? key : it->second;
      null_keys_[full] = it->second.IsNull();
    }
    return out;
  }

  bool WasNull(const std::string& key) const {
    auto it = null_keys_.find(key);
    return it != null_keys_.end() && it->second;
  }

  std::string Scalar(const YAML::Node& node, const std::string& key,
                     bool substitute) {
    if (WasNull(key)) Fail(node, key, "a value is required");
    if (!node.IsScalar()) {
      Fail(node, key,
           absl::StrCat("expected a single value, not ", KindOf(node)));
    }
    return substitute ? Substitute(node, key, node.Scalar()) : node.Scalar();
  }

  // Fills `{{ NAME }}` placeholders from `variables_`.
  std::string Substitute(const YAML::Node& node, const std::string& key,
                         const std::string& text) {
    std::string out;
    size_t pos = 0;
    while (true) {
      size_t open = text.find("{{", pos);
      if (open == std::string::npos) break;
      size_t close = text.find("}}", open + 2);
      if (close == std::string::npos) break;
      std::string name(absl::StripAsciiWhitespace(
          absl::string_view(text).substr(open + 2, close - open - 2)));
      if (!IsPlaceholderName(name)) {
        out += text.substr(pos, close + 2 - pos);
        pos = close + 2;
        continue;
      }
      std::optional<std::string> value = variables_(name);
      if (!value.has_value()) {
        Fail(node, key,
             absl::StrCat("placeholder {{ ", name,
                          " }} has no value: give it with `--var ", name,
                          "=VALUE` or the environment variable ",
                          PlaceholderEnvironmentName(name),
                          " (no other environment variable is read)"));
      }
      out += text.substr(pos, open - pos) + *value;
      pos = close + 2;
    }
    return out + text.substr(pos);
  }

  void Check(const YAML::Node& node, const absl::Status& status) {
    if (!status.ok()) FailStatus(node, status);
  }

  // `key:` with nothing, or a list.
  bool ListOrNothing(const YAML::Node& node, const std::string& key) {
    if (WasNull(key)) return false;
    if (!node.IsSequence()) {
      Fail(node, key, absl::StrCat("expected a list, not ", KindOf(node)));
    }
    return true;
  }

  void ParseSenders(const YAML::Node& list, ProjectFile* file) {
    if (!ListOrNothing(list, "senders")) return;
    std::map<std::string, int> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string prefix = absl::StrCat("senders[", i, "]");
      if (!item.IsMap()) {
        Fail(item, prefix,
             absl::StrCat("expected a mapping with `slug:`, not ",
                          KindOf(item)));
      }
      auto fields = Fields(item, prefix, {"slug", "token"});
      auto slug = fields.find("slug");
      if (slug == fields.end()) Fail(item, prefix + ".slug", "is required");
      SenderSpec sender;
      sender.name = Scalar(slug->second, prefix + ".slug", true);
      sender.location = LocationOf(slug->second);
      Check(slug->second, util::ValidateName(prefix + ".slug", sender.name));
      if (auto [it, inserted] = seen.emplace(sender.name, sender.location.line);
          !inserted) {
        Fail(slug->second, prefix + ".slug",
             absl::StrCat("sender \"", sender.name,
                          "\" is already listed at line ", it->second));
      }
      if (auto token = fields.find("token"); token != fields.end()) {
        FileLocation at = LocationOf(token->second);
        warnings_.push_back(absl::StrCat(
            path_, ":", at.line, ":", at.column, ": ", prefix,
            ".token: ignored; Rio generates sender tokens and shows the DSN "
            "once, when apply creates the sender"));
      }
      file->senders.push_back(std::move(sender));
    }
  }

  void ParseActions(const YAML::Node& list, ProjectFile* file) {
    if (!ListOrNothing(list, "actions")) return;
    std::map<std::string, int> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string prefix = absl::StrCat("actions[", i, "]");
      if (!item.IsMap()) {
        Fail(item, prefix,
             absl::StrCat("expected a mapping with `slug:` and `webhooks:`, "
                          "not ",
                          KindOf(item)));
      }
      auto fields = Fields(item, prefix, {"slug", "webhooks"});
      auto slug = fields.find("slug");
      if (slug == fields.end()) Fail(item, prefix + ".slug", "is required");
      ActionSpec action;
      action.event = Scalar(slug->second, prefix + ".slug", true);
      action.location = LocationOf(slug->second);
      Check(slug->second, util::ValidateName(prefix + ".slug", action.event));
      if (auto [it, inserted] =
              seen.emplace(action.event, action.location.line);
          !inserted) {
        Fail(slug->second, prefix + ".slug",
             absl::StrCat("action \"", action.event,
                          "\" is already listed at line ", it->second));
      }
      if (auto hooks = fields.find("webhooks"); hooks != fields.end()) {
        ParseWebhooks(hooks->second, prefix + ".webhooks", &action);
      }
      file->actions.push_back(std::move(action));
    }
  }

  void ParseWebhooks(const YAML::Node& list, const std::string& key,
                     ActionSpec* action) {
    if (!ListOrNothing(list, key)) return;
    std::map<std::pair<int, std::string>, int> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string prefix = absl::StrCat(key, "[", i, "]");
      if (!item.IsMap()) {
        Fail(
            item, prefix,
            absl::StrCat("expected a mapping with `url:`, not ", KindOf(item)));
      }
      auto fields =
          Fields(item, prefix,
                 {"method", "url", "headers", "content_type", "timeout",
                  "enabled", "client_certificate_file", "client_key_file"});
      WebhookSpec hook;
      hook.location = LocationOf(item);
      auto url = fields.find("url");
      if (url == fields.end()) Fail(item, prefix + ".url", "is required");
      hook.url = Scalar(url->second, prefix + ".url", true);
      Check(url->second, util::ValidateWebhookUrl(prefix + ".url", hook.url));

      if (auto it = fields.find("method"); it != fields.end()) {
        std::string method =
            absl::AsciiStrToUpper(Scalar(it->second, prefix + ".method", true));
        if (method == "POST") {
          hook.method = v1::Handler::POST;
        } else if (method == "PUT") {
          hook.method = v1::Handler::PUT;
        } else if (method == "GET") {
          hook.method = v1::Handler::GET;
        } else {
          Fail(it->second, prefix + ".method",
               absl::StrCat("must be POST, PUT or GET (got \"",
                            it->second.Scalar(), "\")"));
        }
      }

      std::optional<v1::Handler::ContentType> from_header;
      YAML::Node header_node;
      if (auto it = fields.find("headers"); it != fields.end()) {
        const std::string hkey = prefix + ".headers";
        if (!WasNull(hkey)) {
          if (!it->second.IsMap()) {
            Fail(it->second, hkey,
                 absl::StrCat("expected a mapping of header names to values, "
                              "not ",
                              KindOf(it->second)));
          }
          for (auto h = it->second.begin(); h != it->second.end(); ++h) {
            if (!h->first.IsScalar())
              Fail(h->first, hkey, "names must be text");
            const std::string name = h->first.Scalar();
            const std::string vkey = hkey + "." + name;
            if (!h->second.IsScalar()) {
              Fail(h->second.IsNull() ? h->first : h->second, vkey,
                   "expected a single value");
            }
            std::string value = Substitute(h->second, vkey, h->second.Scalar());
            // The original Rio chose the body's type with a Content-Type
            // header; Rio sets that header itself from content_type.
            if (absl::AsciiStrToLower(name) == "content-type") {
              from_header = ContentTypeOf(h->second, vkey, value);
              header_node = h->second;
              continue;
            }
            for (const auto& [existing, unused] : hook.headers) {
              if (absl::AsciiStrToLower(existing) ==
                  absl::AsciiStrToLower(name)) {
                Fail(h->first, vkey, "duplicate header");
              }
            }
            hook.headers[name] = value;
          }
          Check(it->second, util::ValidateHeaders(hkey, hook.headers));
        }
      }
      if (auto it = fields.find("content_type"); it != fields.end()) {
        const std::string ckey = prefix + ".content_type";
        hook.content_type =
            ContentTypeOf(it->second, ckey, Scalar(it->second, ckey, true));
        if (from_header.has_value() && *from_header != hook.content_type) {
          Fail(header_node, prefix + ".headers.Content-Type",
               "contradicts content_type");
        }
      } else if (from_header.has_value()) {
        hook.content_type = *from_header;
      }
      if (hook.method == v1::Handler::GET &&
          hook.content_type == v1::Handler::JSON) {
        Fail(item, prefix,
             "content_type json needs method POST or PUT (GET sends the "
             "payload's fields in the query string)");
      }

      if (auto it = fields.find("timeout"); it != fields.end()) {
        const std::string tkey = prefix + ".timeout";
        std::string text = Scalar(it->second, tkey, true);
        absl::StatusOr<int64_t> ms = ParseDurationMs(text);
        if (!ms.ok())
          Fail(it->second, tkey, std::string(ms.status().message()));
        if (*ms < 1 || *ms > util::kMaxTimeoutMs) {
          Fail(it->second, tkey,
               absl::StrCat("must be between 1ms and ",
                            FormatDurationMs(util::kMaxTimeoutMs), " (got ",
                            text, ")"));
        }
        hook.timeout_ms = static_cast<int>(*ms);
      }

      if (auto it = fields.find("enabled"); it != fields.end()) {
        const std::string ekey = prefix + ".enabled";
        std::string text =
            absl::AsciiStrToLower(Scalar(it->second, ekey, false));
        if (text == "true" || text == "yes") {
          hook.enabled = true;
        } else if (text == "false" || text == "no") {
          hook.enabled = false;
        } else {
          Fail(it->second, ekey,
               absl::StrCat("must be true or false (got \"",
                            it->second.Scalar(), "\")"));
        }
      }

      auto cert = fields.find("client_certificate_file");
      auto key = fields.find("client_key_file");
      if (cert != fields.end() && key == fields.end()) {
        Fail(cert->second, prefix + ".client_certificate_file",
             "needs client_key_file (the certificate's PEM private key)");
      }
      if (key != fields.end() && cert == fields.end()) {
        Fail(key->second, prefix + ".client_key_file",
             "needs client_certificate_file (the certificate it belongs to)");
      }
      if (cert != fields.end()) {
        const std::string ckey = prefix + ".client_certificate_file";
        const std::string kkey = prefix + ".client_key_file";
        hook.client_certificate_file = Scalar(cert->second, ckey, true);
        hook.client_certificate_location = LocationOf(cert->second);
        hook.client_key_file = Scalar(key->second, kkey, true);
        hook.client_key_location = LocationOf(key->second);
        if (hook.client_certificate_file.empty()) {
          Fail(cert->second, ckey, "a path is required");
        }
        if (hook.client_key_file.empty()) {
          Fail(key->second, kkey, "a path is required");
        }
      }

      auto identity = std::make_pair(static_cast<int>(hook.method), hook.url);
      if (auto [it, inserted] = seen.emplace(identity, hook.location.line);
          !inserted) {
        Fail(item, prefix,
             absl::StrCat("the same method and url are already listed at "
                          "line ",
                          it->second));
      }
      action->webhooks.push_back(std::move(hook));
    }
  }

  v1::Handler::ContentType ContentTypeOf(const YAML::Node& node,
                                         const std::string& key,
                                         const std::string& value) {
    std::string lower(absl::AsciiStrToLower(absl::StripAsciiWhitespace(value)));
    if (size_t semi = lower.find(';'); semi != std::string::npos) {
      lower = std::string(
          absl::StripTrailingAsciiWhitespace(lower.substr(0, semi)));
    }
    if (lower == "json" || lower == "application/json")
      return v1::Handler::JSON;
    if (lower == "form" || lower == "application/x-www-form-urlencoded") {
      return v1::Handler::FORM;
    }
    Fail(node, key,
         absl::StrCat("must be json (application/json) or form "
                      "(application/x-www-form-urlencoded), not \"",
                      value, "\""));
  }

  const std::string path_;
  const VariableLookup& variables_;
  std::map<std::string, bool> null_keys_;
  std::vector<std::string> warnings_;
};

}  // namespace

std::string PlaceholderEnvironmentName(absl::string_view name) {
  return absl::StartsWith(name, kVariablePrefix)
             ? std::string(name)
             : absl::StrCat(kVariablePrefix, name);
}

VariableLookup PlaceholderVariables(std::map<std::string, std::string> given,
                                    VariableLookup environment) {
  return [given = std::move(given), environment = std::move(environment)](
             const std::string& name) -> std::optional<std::string> {
    if (auto it = given.find(name); it != given.end()) return it->second;
    std::optional<std::string> value =
        environment(PlaceholderEnvironmentName(name));
    if (!value.has_value() || value->empty()) return std::nullopt;
    return value;
  };
}

absl::StatusOr<std::map<std::string, std::string>> ParseVarFlags(
    const std::vector<std::string>& flags) {
  std::map<std::string, std::string> vars;
  for (const std::string& flag : flags) {
    const size_t equals = flag.find('=');
    if (equals == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--var ", flag, ": expected NAME=VALUE (for {{ NAME }})"));
    }
    const std::string name = flag.substr(0, equals);
    if (!IsPlaceholderName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--var ", name,
                       "=...: NAME may contain only letters, digits and '_'"));
    }
    vars[name] = flag.substr(equals + 1);
  }
  return vars;
}

std::string ResolveFilePath(absl::string_view path,
                            absl::string_view file_path) {
  const std::filesystem::path given{std::string(file_path)};
  if (given.is_absolute() || path == "-" || path == "<stdin>") {
    return given.string();
  }
  const std::filesystem::path dir =
      std::filesystem::path(std::string(path)).parent_path();
  if (dir.empty()) return given.string();
  return (dir / given).string();
}

absl::Status ReadClientCertificates(absl::string_view path,
                                    const FileReader& read, ProjectFile* file) {
  auto error = [&](FileLocation at, const std::string& key,
                   absl::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":", at.line, ":", at.column, ": ", key, ": ", message));
  };
  for (size_t i = 0; i < file->actions.size(); ++i) {
    std::vector<WebhookSpec>& hooks = file->actions[i].webhooks;
    for (size_t j = 0; j < hooks.size(); ++j) {
      WebhookSpec& hook = hooks[j];
      if (hook.client_certificate_file.empty()) continue;
      const std::string prefix =
          absl::StrCat("actions[", i, "].webhooks[", j, "].");
      absl::StatusOr<std::string> cert =
          read(ResolveFilePath(path, hook.client_certificate_file));
      if (!cert.ok()) {
        return error(hook.client_certificate_location,
                     prefix + "client_certificate_file",
                     cert.status().message());
      }
      absl::StatusOr<std::string> key =
          read(ResolveFilePath(path, hook.client_key_file));
      if (!key.ok()) {
        return error(hook.client_key_location, prefix + "client_key_file",
                     key.status().message());
      }
      // The server's own check, so that a bad pair changes nothing. Its
      // message starts with the field at fault.
      absl::Status checked =
          util::CheckCertifiedKey(*cert, *key, "client_certificate_file",
                                  "client_key_file")
              .status();
      if (!checked.ok()) {
        const FileLocation at =
            absl::StartsWith(checked.message(), "client_key_file")
                ? hook.client_key_location
                : hook.client_certificate_location;
        return absl::InvalidArgumentError(absl::StrCat(path, ":", at.line, ":",
                                                       at.column, ": ", prefix,
                                                       checked.message()));
      }
      hook.client_certificate = *std::move(cert);
      hook.client_key = *std::move(key);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ProjectFile> ParseProjectFile(absl::string_view path,
                                             absl::string_view text,
                                             const VariableLookup& variables) {
  auto error = [&](FileLocation at, const std::string& message) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", at.line, ":", at.column, ": ", message));
  };
  std::vector<DocumentMarks::Document> documents;
  YAML::Node root;
  try {
    documents = DocumentMarks::Of(text);
    if (documents.size() > 1 &&
        documents[1].start.pos == documents[0].start.pos) {
      return error(LocationOf(documents[1].start),
                   "invalid YAML: unexpected text");
    }
    if (documents.empty()) {
      return error({1, 1}, "the file is empty; it needs at least `project:`");
    }
    if (documents.size() > 1) {
      return error(LocationOf(documents[1].root),
                   "one project per file (this is a second YAML document)");
    }
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return error(LocationOf(e.mark), absl::StrCat("invalid YAML: ", e.msg));
  }
  try {
    return Parser(std::string(path), variables).Parse(root);
  } catch (const FileError& e) {
    return error(e.location, e.message);
  } catch (const YAML::Exception& e) {
    FileLocation at{1, 1};
    if (!e.mark.is_null()) at = {e.mark.line + 1, e.mark.column + 1};
    return error(at, e.msg);
  }
}

}  // namespace rio::rioctl
