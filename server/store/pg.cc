#include "server/store/pg.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

std::atomic<uint64_t> connect_errors{0};
std::atomic<uint64_t> unavailable_errors{0};
std::atomic<uint64_t> already_exists_errors{0};
std::atomic<uint64_t> aborted_errors{0};
std::atomic<uint64_t> internal_errors{0};

void Count(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

// First line of a libpq message, without the trailing newline.
std::string FirstLine(const char* message) {
  if (message == nullptr) return "";
  absl::string_view text(message);
  text = text.substr(0, text.find('\n'));
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace

int PgResult::affected() const {
  if (!result_) return 0;
  int64_t n = 0;
  if (!absl::SimpleAtoi(PQcmdTuples(result_.get()), &n)) return 0;
  return static_cast<int>(n);
}

absl::string_view PgResult::Get(int row, int col) const {
  return absl::string_view(PQgetvalue(result_.get(), row, col),
                           PQgetlength(result_.get(), row, col));
}

int64_t PgResult::GetInt64(int row, int col) const {
  int64_t value = 0;
  if (!absl::SimpleAtoi(Get(row, col), &value)) return 0;
  return value;
}

PgArray& PgArray::Add(absl::string_view value) {
  Separate();
  text_.reserve(text_.size() + value.size() + 2);
  text_ += '"';
  // The runs between characters that need a backslash are copied whole.
  size_t run = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '"' || value[i] == '\\') {
      text_.append(value.data() + run, i - run);
      text_ += '\\';
      run = i;
    }
  }
  text_.append(value.data() + run, value.size() - run);
  text_ += '"';
  return *this;
}

PgArray& PgArray::AddNull() {
  Separate();
  text_ += "NULL";
  return *this;
}

PgArray& PgArray::Add(int64_t value) {
  Separate();
  absl::StrAppend(&text_, value);
  return *this;
}

std::string RedactDatabaseUrl(absl::string_view url) {
  std::string out(url);
  // URI form: scheme://user:password@host
  size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    size_t at = out.find('@', scheme + 3);
    size_t slash = out.find('/', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      size_t colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  // Keyword form and URI query parameters: password=...
  size_t pos = 0;
  while ((pos = out.find("password=", pos)) != std::string::npos) {
    size_t start = pos + 9;
    size_t end = out.find_first_of(" &", start);
    if (end == std::string::npos) end = out.size();
    out.replace(start, end - start, "***");
    pos = start + 3;
  }
  return out;
}

PGconn* PgConnection::Open(const std::string& url) {
  // Defaults first: values in `url` (expanded from dbname) override them.
  const char* keys[] = {"connect_timeout", "application_name", "dbname",
                        nullptr};
  const char* values[] = {"5", "rio-server", url.c_str(), nullptr};
  return PQconnectdbParams(keys, values, /*expand_dbname=*/1);
}

PgConnection::PgConnection(std::string url, PGconn* conn)
    : url_(std::move(url)),
      conn_(conn, &PQfinish),
      last_connect_attempt_(absl::Now()) {}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(
    const std::string& url) {
  PGconn* conn = Open(url);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError(
        "out of memory connecting to PostgreSQL");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    Count(connect_errors);
    std::string reason = FirstLine(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL at ", RedactDatabaseUrl(url),
                     ": ", reason));
  }
  return std::unique_ptr<PgConnection>(new PgConnection(url, conn));
}

absl::Status PgConnection::Reconnect(absl::Duration min_interval) {
  absl::Time now = absl::Now();
  if (now - last_connect_attempt_ < min_interval) {
    return absl::UnavailableError("database unavailable");
  }
  last_connect_attempt_ = now;
  conn_.reset(Open(url_));
  prepared_.clear();  // they died with the old session
  sent_ = nullptr;
  if (conn_ == nullptr || PQstatus(conn_.get()) != CONNECTION_OK) {
    Count(connect_errors);
    return absl::UnavailableError("database unavailable");
  }
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PgConnection::Exec(
    absl::string_view sql, const std::vector<PgParam>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const PgParam& p : params) values.push_back(p ? p->c_str() : nullptr);
  std::string query(sql);
  PgResult result(PQexecParams(conn_.get(), query.c_str(),
                               static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0));
  ExecStatusType status =
      result.get() ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  return StatusFromPg(conn_.get(), result.get(), query);
}

absl::StatusOr<PgResult> PgConnection::ExecPrepared(
    absl::string_view sql, const std::vector<PgParam>& params) {
  RIO_RETURN_IF_ERROR(SendPrepared(sql, params));
  return TakeResult();
}

absl::Status PgConnection::SendPrepared(absl::string_view sql,
                                        const std::vector<PgParam>& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    if (prepared_.empty()) {
      // Planned once, not per run: left to choose, PostgreSQL keeps making
      // custom plans for statements over array parameters (it cannot cost
      // the generic plan's unnest), and planning the emit statement took
      // longer than running it. Only statements prepared here are affected.
      PgResult set(
          PQexec(conn_.get(), "SET plan_cache_mode = force_generic_plan"));
      if (!set.get() || PQresultStatus(set.get()) != PGRES_COMMAND_OK) {
        return StatusFromPg(conn_.get(), set.get(), "SET plan_cache_mode");
      }
    }
    std::string name = absl::StrCat("rio_", prepared_.size() + 1);
    std::string query(sql);
    PgResult prepared(PQprepare(conn_.get(), name.c_str(), query.c_str(),
                                static_cast<int>(params.size()), nullptr));
    ExecStatusType status =
        prepared.get() ? PQresultStatus(prepared.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK) {
      return StatusFromPg(conn_.get(), prepared.get(), query);
    }
    it = prepared_.emplace(std::move(query), std::move(name)).first;
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const PgParam& p : params) values.push_back(p ? p->c_str() : nullptr);
  // A connection in blocking mode (the default) has sent everything when
  // this returns.
  if (!PQsendQueryPrepared(conn_.get(), it->second.c_str(),
                           static_cast<int>(values.size()), values.data(),
                           nullptr, nullptr, 0)) {
    return StatusFromPg(conn_.get(), nullptr, it->first);
  }
  sent_ = &it->first;
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PgConnection::TakeResult() {
  const std::string* sent = sent_;
  sent_ = nullptr;
  PgResult result(PQgetResult(conn_.get()));
  // One statement gives one result; the null that ends the sequence frees
  // the connection for the next one.
  while (PGresult* extra = PQgetResult(conn_.get())) PQclear(extra);
  ExecStatusType status =
      result.get() ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  return StatusFromPg(conn_.get(), result.get(),
                      sent != nullptr ? absl::string_view(*sent) : "");
}

absl::Status PgConnection::ExecScript(absl::string_view sql) {
  std::string script(sql);
  PgResult result(PQexec(conn_.get(), script.c_str()));
  ExecStatusType status =
      result.get() ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return absl::OkStatus();
  }
  return StatusFromPg(conn_.get(), result.get(), script);
}

absl::Status PgConnection::InTransaction(
    const std::function<absl::Status()>& body) {
  if (in_transaction_) return body();  // joins the enclosing transaction
  bool was_ok = ok();
  auto begin = Exec("BEGIN");
  if (!begin.ok() && was_ok && !ok()) {
    // Nothing ran yet, so a connection that died while idle (a database
    // restart) can be replaced and the transaction started afresh.
    if (Reconnect(absl::ZeroDuration()).ok()) begin = Exec("BEGIN");
  }
  if (!begin.ok()) return begin.status();
  in_transaction_ = true;
  absl::Status status = body();
  in_transaction_ = false;
  if (status.ok()) {
    auto commit = Exec("COMMIT");
    if (!commit.ok()) return commit.status();
    return absl::OkStatus();
  }
  if (ok()) (void)Exec("ROLLBACK");
  return status;
}

std::string SqlState(const PGresult* result) {
  if (result == nullptr) return "";
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  return state ? state : "";
}

absl::Status StatusFromPg(PGconn* conn, const PGresult* result,
                          absl::string_view what) {
  std::string state = SqlState(result);
  std::string detail = result ? FirstLine(PQresultErrorMessage(result)) : "";
  if (detail.empty()) detail = FirstLine(PQerrorMessage(conn));
  bool broken = PQstatus(conn) != CONNECTION_OK;
  // Class 08 (connection), 57P0x (shutdown, crash), 53 (resources).
  if (broken || absl::StartsWith(state, "08") ||
      absl::StartsWith(state, "57P") || absl::StartsWith(state, "53")) {
    Count(unavailable_errors);
    std::fprintf(stderr, "rio-server: database unavailable: %s\n",
                 detail.c_str());
    return absl::UnavailableError("database unavailable");
  }
  if (state == "23505") {
    Count(already_exists_errors);
    return absl::AlreadyExistsError(detail);
  }
  if (state == "40001" || state == "40P01") {
    Count(aborted_errors);
    return absl::AbortedError("transaction conflict; retry");
  }
  if (state == "55P03") {  // lock_not_available: lock_timeout, NOWAIT
    Count(aborted_errors);
    return absl::DeadlineExceededError("a lock was not granted in time");
  }
  if (state == "57014") {  // query_canceled: statement_timeout
    Count(aborted_errors);
    return absl::DeadlineExceededError("the statement ran out of time");
  }
  Count(internal_errors);
  std::fprintf(stderr, "rio-server: database error %s: %s (in: %.200s)\n",
               state.c_str(), detail.c_str(), std::string(what).c_str());
  return absl::InternalError(
      absl::StrCat("database error (SQLSTATE ", state, ")"));
}

PgErrorCounts PgErrorsSoFar() {
  PgErrorCounts counts;
  counts.connect = connect_errors.load(std::memory_order_relaxed);
  counts.unavailable = unavailable_errors.load(std::memory_order_relaxed);
  counts.already_exists = already_exists_errors.load(std::memory_order_relaxed);
  counts.aborted = aborted_errors.load(std::memory_order_relaxed);
  counts.internal = internal_errors.load(std::memory_order_relaxed);
  return counts;
}

}  // namespace rio::store
