#include "server/api/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/store/catalog.h"
#include "server/util/crypto.h"

namespace rio::api {
namespace {

// Strips a case-insensitive "<scheme> " prefix; false when absent.
bool ConsumeScheme(absl::string_view& value, absl::string_view scheme) {
  if (value.size() <= scheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, scheme.size()), scheme) ||
      value[scheme.size()] != ' ') {
    return false;
  }
  value.remove_prefix(scheme.size() + 1);
  value = absl::StripAsciiWhitespace(value);
  return true;
}

}  // namespace

std::string AuthorizationHeader(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

namespace {

std::string Describe(const Caller& caller) {
  if (caller.name == kBootstrapCallerName) return "the admin token";
  return absl::StrCat("access token \"", caller.name, "\" (scope ",
                      v1::AccessToken::Scope_Name(caller.scope), ")");
}

}  // namespace

absl::Status Caller::Permits(Access access, absl::string_view method,
                             absl::string_view project) const {
  switch (access) {
    case Access::kInstall:
      if (scope != v1::AccessToken::ADMIN) {
        return absl::PermissionDeniedError(
            absl::StrCat(Describe(*this), " may not call ", method,
                         ": it needs scope ADMIN"));
      }
      break;
    case Access::kWrite:
      if (scope == v1::AccessToken::READ_ONLY) {
        return absl::PermissionDeniedError(absl::StrCat(
            Describe(*this), " may not call ", method,
            ": it changes data and needs scope ADMIN or PROJECT_ADMIN"));
      }
      break;
    case Access::kRead:
      break;
  }
  if (limited_to_project() && !project.empty() && project != this->project) {
    return absl::PermissionDeniedError(absl::StrCat(
        Describe(*this), " is limited to project \"", this->project, "\"; ",
        method, " named project \"", project, "\""));
  }
  return absl::OkStatus();
}

absl::Status Caller::PermitsObject(absl::string_view method,
                                   absl::string_view kind, absl::string_view id,
                                   absl::string_view owner) const {
  if (!limited_to_project() || owner == project) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      Describe(*this), " is limited to project \"", project, "\"; ", method,
      " named ", kind, " ", id, ", which belongs to another project"));
}

AdminAuthenticator::AdminAuthenticator(absl::string_view admin_token,
                                       const store::Catalog* catalog)
    : token_hash_(util::Sha256(admin_token)), catalog_(catalog) {}

absl::StatusOr<Caller> AdminAuthenticator::Authenticate(
    absl::string_view authorization) const {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing admin token: send 'authorization: Bearer <admin token or "
        "access token>'");
  }
  absl::string_view token = authorization;
  if (!ConsumeScheme(token, "Bearer") || token.empty()) {
    return absl::UnauthenticatedError(
        "authorization must be 'Bearer <admin token or access token>'");
  }
  const std::string hash = util::Sha256(token);
  if (util::ConstantTimeEquals(hash, token_hash_)) {
    return Caller{kBootstrapCallerName, v1::AccessToken::ADMIN, ""};
  }
  if (absl::StartsWith(token, kAccessTokenPrefix)) {
    auto snapshot = catalog_ == nullptr ? nullptr : catalog_->snapshot();
    if (snapshot != nullptr) {
      auto it = snapshot->access_tokens_by_hash.find(hash);
      if (it != snapshot->access_tokens_by_hash.end()) {
        const store::CachedAccessToken& grant = it->second;
        if (absl::Now() >= grant.expire_time) {
          return absl::UnauthenticatedError(absl::StrCat(
              "access token \"", grant.name, "\" expired at ",
              absl::FormatTime(absl::RFC3339_sec, grant.expire_time,
                               absl::UTCTimeZone())));
        }
        return Caller{grant.name, grant.scope, grant.project};
      }
    }
    return absl::UnauthenticatedError(
        "invalid access token (revoked, or never issued here)");
  }
  return absl::UnauthenticatedError("invalid admin token");
}

absl::StatusOr<Caller> AdminAuthenticator::Authorize(
    const grpc::ServerContext& context, Access access, absl::string_view method,
    absl::string_view project) const {
  absl::StatusOr<Caller> caller = Authenticate(AuthorizationHeader(context));
  if (!caller.ok()) return caller;
  if (absl::Status s = caller->Permits(access, method, project); !s.ok()) {
    return s;
  }
  return caller;
}

absl::StatusOr<SenderCredentials> ParseBasicCredentials(
    absl::string_view authorization) {
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing sender credentials: send 'authorization: Basic "
        "base64(<sender>:<token>)'");
  }
  absl::string_view encoded = authorization;
  if (!ConsumeScheme(encoded, "Basic")) {
    return absl::UnauthenticatedError(
        "authorization must be 'Basic base64(<sender>:<token>)'");
  }
  std::optional<std::string> decoded = util::Base64Decode(encoded);
  if (!decoded) {
    return absl::UnauthenticatedError(
        "sender credentials are not valid base64");
  }
  size_t colon = decoded->find(':');
  if (colon == std::string::npos || colon == 0 ||
      colon + 1 == decoded->size()) {
    return absl::UnauthenticatedError(
        "sender credentials must be '<sender>:<token>'");
  }
  return SenderCredentials{decoded->substr(0, colon),
                           decoded->substr(colon + 1)};
}

std::string NewToken() { return util::Base64UrlEncode(util::RandomBytes(32)); }

std::string TokenHash(absl::string_view token) { return util::Sha256(token); }

}  // namespace rio::api

namespace rio::api {

absl::StatusOr<std::string> LoadAdminToken(absl::string_view flag_token,
                                           const std::string& token_file,
                                           AdminTokenSource* source) {
  auto too_short = [](absl::string_view where, size_t length) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " must be at least ", kMinAdminTokenLength,
                     " characters (it has ", length,
                     "); make one with: openssl rand -base64 32"));
  };
  if (!flag_token.empty()) {
    if (flag_token.size() < kMinAdminTokenLength) {
      return too_short("--admin_token", flag_token.size());
    }
    *source = AdminTokenSource::kFlag;
    return std::string(flag_token);
  }
  if (token_file.empty()) {
    return absl::InvalidArgumentError(
        "no admin token: give --admin_token or --admin_token_file");
  }
  struct stat info;
  if (stat(token_file.c_str(), &info) == 0) {
    if ((info.st_mode & 077) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--admin_token_file ", token_file,
          " may be read or written by others than its owner: chmod 600 it"));
    }
    std::ifstream in(token_file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("--admin_token_file ", token_file, ": cannot read it"));
    }
    const std::string token(absl::StripAsciiWhitespace(text.str()));
    if (token.size() < kMinAdminTokenLength) {
      return too_short(
          absl::StrCat("the token in --admin_token_file ", token_file),
          token.size());
    }
    *source = AdminTokenSource::kFile;
    return token;
  }
  if (errno != ENOENT) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin_token_file ", token_file, ": ", std::strerror(errno)));
  }
  const std::string token = NewToken();
  const int fd =
      open(token_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--admin_token_file ", token_file,
                     ": cannot create it: ", std::strerror(errno)));
  }
  const std::string line = token + "\n";
  const bool written =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!written) {
    unlink(token_file.c_str());
    return absl::InvalidArgumentError(
        absl::StrCat("--admin_token_file ", token_file, ": cannot write it"));
  }
  *source = AdminTokenSource::kGenerated;
  return token;
}

}  // namespace rio::api
