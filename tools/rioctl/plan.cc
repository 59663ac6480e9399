#include "tools/rioctl/plan.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/rioctl/args.h"
#include "tools/rioctl/certificate.h"

namespace rio::rioctl {
namespace {

v1::Handler::Method Normalized(v1::Handler::Method method) {
  return method == v1::Handler::METHOD_UNSPECIFIED ? v1::Handler::POST : method;
}

v1::Handler::ContentType Normalized(v1::Handler::ContentType type) {
  return type == v1::Handler::CONTENT_TYPE_UNSPECIFIED ? v1::Handler::FORM
                                                       : type;
}

Change NewChange(Change::Action action, Change::Kind kind, std::string name,
                 std::string id = "") {
  Change change;
  change.action = action;
  change.kind = kind;
  change.name = std::move(name);
  change.id = std::move(id);
  return change;
}

std::string HandlerName(const std::string& event, v1::Handler::Method method,
                        const std::string& url) {
  return absl::StrCat(event, " ", MethodName(method), " ", url);
}

// Header names only: values are write-only on the server (it shows each
// as a mask), and those in the file are often credentials.
std::string HeaderNames(const std::map<std::string, std::string>& headers) {
  std::vector<std::string> names;
  for (const auto& [name, value] : headers) names.push_back(name);
  return absl::StrCat("{", absl::StrJoin(names, ", "), "}");
}

bool SameNames(const std::map<std::string, std::string>& a,
               const std::map<std::string, std::string>& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first) return false;
  }
  return true;
}

// The update that makes `current` match `desired`; no details when none.
Change UpdateFor(const std::string& event, const WebhookSpec& desired,
                 const v1::Handler& current, bool rewrite_header_values,
                 bool rewrite_client_keys) {
  Change change =
      NewChange(Change::Action::kUpdate, Change::Kind::kHandler,
                HandlerName(event, desired.method, desired.url), current.id());
  v1::UpdateHandlerRequest& req = change.update_handler;
  req.set_id(current.id());
  if (Normalized(current.method()) != desired.method) {
    req.set_method(desired.method);
    change.details.push_back(absl::StrCat("method ",
                                          MethodName(current.method()), " -> ",
                                          MethodName(desired.method)));
  }
  if (Normalized(current.content_type()) != desired.content_type) {
    req.set_content_type(desired.content_type);
    change.details.push_back(
        absl::StrCat("content_type ", ContentTypeName(current.content_type()),
                     " -> ", ContentTypeName(desired.content_type)));
  }
  if (current.timeout_ms() != desired.timeout_ms) {
    req.set_timeout_ms(desired.timeout_ms);
    change.details.push_back(
        absl::StrCat("timeout ", FormatDurationMs(current.timeout_ms()), " -> ",
                     FormatDurationMs(desired.timeout_ms)));
  }
  // The server cannot show header values, so only names are compared; with
  // rewrite_header_values, headers are sent again whenever the file has some.
  std::map<std::string, std::string> headers(current.headers().begin(),
                                             current.headers().end());
  const bool names_differ = !SameNames(headers, desired.headers);
  if (names_differ || (rewrite_header_values && !desired.headers.empty())) {
    if (desired.headers.empty()) {
      req.set_clear_headers(true);
    } else {
      req.mutable_headers()->insert(desired.headers.begin(),
                                    desired.headers.end());
    }
    change.details.push_back(
        names_differ ? absl::StrCat("headers ", HeaderNames(headers), " -> ",
                                    HeaderNames(desired.headers))
                     : absl::StrCat("headers ", HeaderNames(desired.headers),
                                    " (values rewritten)"));
  }
  // The certificate is compared as text; its key is write-only, so it is
  // sent with a changed certificate, or with rewrite_client_keys.
  if (current.client_certificate() != desired.client_certificate) {
    req.set_client_certificate(desired.client_certificate);
    req.set_client_key(desired.client_key);
    const std::string from =
        ClientCertificateName(current.client_certificate());
    const std::string to = ClientCertificateName(desired.client_certificate);
    change.details.push_back(
        from == to ? absl::StrCat("client_certificate ", to, " (replaced)")
                   : absl::StrCat("client_certificate ", from, " -> ", to));
  } else if (rewrite_client_keys && !desired.client_key.empty()) {
    req.set_client_certificate(desired.client_certificate);
    req.set_client_key(desired.client_key);
    change.details.push_back(absl::StrCat(
        "client_certificate ",
        ClientCertificateName(desired.client_certificate), " (key rewritten)"));
  }
  if (desired.enabled.has_value() && current.enabled() != *desired.enabled) {
    req.set_enabled(*desired.enabled);
    change.details.push_back(*desired.enabled ? "enable" : "disable");
  }
  return change;
}

}  // namespace

int Plan::Count(Change::Action action) const {
  int n = 0;
  for (const Change& change : changes) n += change.action == action;
  return n;
}

Plan ComputePlan(const ProjectFile& file, const ServerState& server, bool prune,
                 bool rewrite_header_values, bool rewrite_client_keys) {
  Plan plan;
  if (!server.project.has_value()) {
    Change change = NewChange(Change::Action::kCreate, Change::Kind::kProject,
                              file.project);
    change.create_project.set_slug(file.project);
    if (file.name.has_value()) change.create_project.set_name(*file.name);
    plan.changes.push_back(std::move(change));
  } else if (file.name.has_value() && server.project->name() != *file.name) {
    Change change = NewChange(Change::Action::kUpdate, Change::Kind::kProject,
                              file.project);
    change.update_project.set_slug(file.project);
    change.update_project.set_name(*file.name);
    change.details.push_back(absl::StrCat("name \"", server.project->name(),
                                          "\" -> \"", *file.name, "\""));
    plan.changes.push_back(std::move(change));
  }

  // Senders.
  std::set<std::string> wanted_senders;
  for (const SenderSpec& sender : file.senders) {
    wanted_senders.insert(sender.name);
    bool exists = false;
    for (const v1::Sender& s : server.senders)
      exists = exists || s.name() == sender.name;
    if (exists) continue;
    Change change =
        NewChange(Change::Action::kCreate, Change::Kind::kSender, sender.name);
    change.create_sender.set_project(file.project);
    change.create_sender.set_name(sender.name);
    plan.changes.push_back(std::move(change));
  }

  // Handlers: exact matches first, then a changed method on the same URL.
  std::vector<const v1::Handler*> unmatched;
  for (const v1::Handler& h : server.handlers) unmatched.push_back(&h);
  struct Wanted {
    const std::string* event;
    const WebhookSpec* spec;
    const v1::Handler* match = nullptr;
  };
  std::vector<Wanted> wanted;
  for (const ActionSpec& action : file.actions) {
    for (const WebhookSpec& hook : action.webhooks) {
      wanted.push_back({&action.event, &hook});
    }
  }
  auto take = [&](Wanted& w, bool same_method) {
    for (auto it = unmatched.begin(); it != unmatched.end(); ++it) {
      const v1::Handler& h = **it;
      if (h.event() == *w.event && h.url() == w.spec->url &&
          (!same_method || Normalized(h.method()) == w.spec->method)) {
        w.match = &h;
        unmatched.erase(it);
        return;
      }
    }
  };
  for (Wanted& w : wanted) take(w, true);
  for (Wanted& w : wanted) {
    if (w.match == nullptr) take(w, false);
  }
  for (const Wanted& w : wanted) {
    if (w.match != nullptr) {
      Change update = UpdateFor(*w.event, *w.spec, *w.match,
                                rewrite_header_values, rewrite_client_keys);
      if (!update.details.empty()) plan.changes.push_back(std::move(update));
      continue;
    }
    Change change =
        NewChange(Change::Action::kCreate, Change::Kind::kHandler,
                  HandlerName(*w.event, w.spec->method, w.spec->url));
    v1::CreateHandlerRequest& req = change.create_handler;
    req.set_project(file.project);
    req.set_event(*w.event);
    req.set_url(w.spec->url);
    req.set_method(w.spec->method);
    req.set_content_type(w.spec->content_type);
    req.mutable_headers()->insert(w.spec->headers.begin(),
                                  w.spec->headers.end());
    req.set_timeout_ms(w.spec->timeout_ms);
    if (w.spec->enabled.has_value()) req.set_enabled(*w.spec->enabled);
    req.set_client_certificate(w.spec->client_certificate);
    req.set_client_key(w.spec->client_key);
    plan.changes.push_back(std::move(change));
  }

  // What the file no longer has.
  std::vector<Change>& leftovers = prune ? plan.changes : plan.kept;
  for (const v1::Handler* h : unmatched) {
    Change change = NewChange(
        Change::Action::kDelete, Change::Kind::kHandler,
        HandlerName(h->event(), Normalized(h->method()), h->url()), h->id());
    change.delete_handler.set_id(h->id());
    leftovers.push_back(std::move(change));
  }
  for (const v1::Sender& s : server.senders) {
    if (wanted_senders.count(s.name()) > 0) continue;
    Change change =
        NewChange(Change::Action::kDelete, Change::Kind::kSender, s.name());
    change.delete_sender.set_project(file.project);
    change.delete_sender.set_name(s.name());
    leftovers.push_back(std::move(change));
  }
  return plan;
}

const char* ActionName(Change::Action action) {
  switch (action) {
    case Change::Action::kCreate:
      return "create";
    case Change::Action::kUpdate:
      return "update";
    case Change::Action::kDelete:
      return "delete";
  }
  return "?";
}

const char* KindName(Change::Kind kind) {
  switch (kind) {
    case Change::Kind::kProject:
      return "project";
    case Change::Kind::kSender:
      return "sender";
    case Change::Kind::kHandler:
      return "handler";
  }
  return "?";
}

std::string Describe(const Change& change) {
  const char* sign = change.action == Change::Action::kCreate   ? "+"
                     : change.action == Change::Action::kUpdate ? "~"
                                                                : "-";
  std::string out =
      absl::StrCat(sign, " ", KindName(change.kind), " ", change.name);
  if (!change.id.empty()) absl::StrAppend(&out, " [", change.id, "]");
  if (!change.details.empty()) {
    absl::StrAppend(&out, ": ", absl::StrJoin(change.details, ", "));
  }
  return out;
}

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
  return type == v1::Handler::JSON ? "json" : "form";
}

}  // namespace rio::rioctl
