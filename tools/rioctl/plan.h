// What `rioctl apply` must change on the server to make a project match its
// project file: a pure function from (file, server state) to an ordered list
// of changes, each carrying the request that makes it.
//
// Matching: senders by name; handlers by (event, method, URL), then, among
// what is left, by (event, URL) so that a changed method is an update. A
// matched handler is updated when its content type, timeout, header names
// or client certificate differ, or its enabled flag when the file sets one.
// Header values are write-only on the server (replies mask them), so they
// cannot be compared: a changed value under the same name is sent only with
// `rewrite_header_values`, which sends the headers of every matched handler
// that has some. Plans name headers, never their values.
//
// A handler's client certificate is managed like its headers: the file's
// certificate text is compared with the server's (a file without one
// removes the server's). The key is write-only too: it is sent whenever the
// certificate changes, and with `rewrite_client_keys` for every matched
// handler whose file gives one (to replace a key under an unchanged
// certificate). Plans name certificates by subject, never keys.
//
// Objects on the server that the file does not have are deleted only with
// `prune`; otherwise they are listed as kept.
//
// Order: the project, then senders and handlers to create or update in file
// order, then deletions.
//
// Pure functions and plain values; thread-compatible.
#ifndef RIO_TOOLS_RIOCTL_PLAN_H_
#define RIO_TOOLS_RIOCTL_PLAN_H_

#include <optional>
#include <string>
#include <vector>

#include "rio/v1/handler.pb.h"
#include "rio/v1/project.pb.h"
#include "tools/rioctl/project_file.h"

namespace rio::rioctl {

// The project as the server has it now.
struct ServerState {
  std::optional<v1::Project> project;  // Unset: it does not exist.
  std::vector<v1::Sender> senders;
  std::vector<v1::Handler> handlers;
};

struct Change {
  enum class Action { kCreate, kUpdate, kDelete };
  enum class Kind { kProject, kSender, kHandler };

  Action action;
  Kind kind;
  // What the change is about, for people: "example",
  // "example POST http://127.0.0.1:5000".
  std::string name;
  // The handler's id, for handlers that exist.
  std::string id;
  // For updates, what changes: "timeout 15s -> 5s",
  // "client_certificate none -> CN=rio-test-client".
  std::vector<std::string> details;

  // The request that makes the change (the one that fits action and kind).
  v1::CreateProjectRequest create_project;
  v1::UpdateProjectRequest update_project;
  v1::CreateSenderRequest create_sender;
  v1::DeleteSenderRequest delete_sender;
  v1::CreateHandlerRequest create_handler;
  v1::UpdateHandlerRequest update_handler;
  v1::DeleteHandlerRequest delete_handler;
};

struct Plan {
  std::vector<Change> changes;
  // Objects on the server that the file lacks, kept because prune is off
  // (as Change values with action kDelete, never to be executed).
  std::vector<Change> kept;

  int Count(Change::Action action) const;
};

Plan ComputePlan(const ProjectFile& file, const ServerState& server, bool prune,
                 bool rewrite_header_values = false,
                 bool rewrite_client_keys = false);

// "+ handler example POST http://…", "~ handler … [ID]: timeout 15s -> 5s".
std::string Describe(const Change& change);
// "create", "update", "delete"; "project", "sender", "handler".
const char* ActionName(Change::Action action);
const char* KindName(Change::Kind kind);
// "POST", "PUT", "GET".
std::string MethodName(v1::Handler::Method method);
// "form", "json".
std::string ContentTypeName(v1::Handler::ContentType type);

}  // namespace rio::rioctl

#endif  // RIO_TOOLS_RIOCTL_PLAN_H_
