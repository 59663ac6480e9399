#include "server/dispatch/dispatcher.h"

#include <cstdio>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/dispatch/request.h"

namespace rio::dispatch {
namespace {

constexpr size_t kMaxResponseBody = 64 * 1024;
constexpr size_t kMaxResponseHeaders = 16 * 1024;

}  // namespace

// One HTTP call in flight. Owns everything curl points into.
struct Dispatcher::Transfer {
  DeliveryJob job;
  std::string url;
  std::string form_body;  // FORM bodies; JSON points at the payload
  const std::string* body = nullptr;
  curl_slist* headers = nullptr;
  std::string request_headers;  // as logged, handler header values hidden
  std::string response_headers;
  std::string response_body;
  char error[CURL_ERROR_SIZE] = {0};
  absl::Time start;

  ~Transfer() { curl_slist_free_all(headers); }

  void AddHeader(absl::string_view name, absl::string_view value,
                 bool secret = false) {
    std::string line = absl::StrCat(name, ": ", value);
    headers = curl_slist_append(headers, line.c_str());
    absl::StrAppend(&request_headers, name, ": ", secret ? "[redacted]" : value,
                    "\r\n");
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    size_t len = size * n;
    size_t room = kMaxResponseBody - t->response_body.size();
    t->response_body.append(data, std::min(len, room));
    return len;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    size_t len = size * n;
    absl::string_view line(data, len);
    // A new status line starts a new header block (e.g. after 1xx).
    if (absl::StartsWith(line, "HTTP/")) t->response_headers.clear();
    if (t->response_headers.size() + len <= kMaxResponseHeaders) {
      t->response_headers.append(data, len);
    }
    return len;
  }
};

Dispatcher::Dispatcher(Options options, RetryPolicy policy, OutcomeSink* sink)
    : options_(std::move(options)), policy_(std::move(policy)), sink_(sink) {
  multi_ = curl_multi_init();
  // No per-host limit: that would make curl queue transfers internally,
  // where their timeouts run. Concurrency is bounded per handler instead.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(options_.max_in_flight));
}

Dispatcher::~Dispatcher() {
  Stop(absl::ZeroDuration());
  for (CURL* easy : idle_) curl_easy_cleanup(easy);
  curl_multi_cleanup(multi_);
}

void Dispatcher::Start() { thread_ = std::thread(&Dispatcher::Loop, this); }

void Dispatcher::Submit(std::vector<DeliveryJob> jobs) {
  {
    absl::MutexLock lock(&mu_);
    for (DeliveryJob& job : jobs) {
      // Already here (claimed again after a long wait): not twice.
      if (!held_.insert(job.delivery_id).second) continue;
      std::deque<DeliveryJob>& queue = waiting_[job.handler->id];
      if (queue.empty()) ready_handlers_.push_back(job.handler->id);
      queue.push_back(std::move(job));
      ++waiting_count_;
    }
  }
  curl_multi_wakeup(multi_);
}

bool Dispatcher::Holds(const std::string& delivery_id) const {
  absl::MutexLock lock(&mu_);
  return held_.contains(delivery_id);
}

int Dispatcher::Room() const {
  absl::MutexLock lock(&mu_);
  if (stopping_) return 0;
  return std::max(0, options_.max_in_flight - in_flight_ - waiting_count_);
}

std::vector<DeliveryJob> Dispatcher::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return {};
    stopping_ = true;
    stop_deadline_ = absl::Now() + grace;
  }
  curl_multi_wakeup(multi_);
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, queue] : waiting_) {
    for (DeliveryJob& job : queue) unfinished_.push_back(std::move(job));
  }
  waiting_.clear();
  ready_handlers_.clear();
  waiting_count_ = 0;
  held_.clear();
  return std::move(unfinished_);
}

void Dispatcher::StartReadyJobs() {
  size_t skipped = 0;  // handlers at their cap since the last start
  while (in_flight_ < options_.max_in_flight && !ready_handlers_.empty() &&
         skipped < ready_handlers_.size()) {
    std::string id = std::move(ready_handlers_.front());
    ready_handlers_.pop_front();
    int& handler_in_flight = in_flight_by_handler_[id];
    if (handler_in_flight >= options_.max_per_handler) {
      ready_handlers_.push_back(std::move(id));
      ++skipped;
      continue;
    }
    auto it = waiting_.find(id);
    to_start_.push_back(std::move(it->second.front()));
    it->second.pop_front();
    --waiting_count_;
    ++in_flight_;
    ++handler_in_flight;
    if (it->second.empty()) {
      waiting_.erase(it);
    } else {
      ready_handlers_.push_back(std::move(id));
    }
    skipped = 0;
  }
}

void Dispatcher::Loop() {
  pthread_setname_np(pthread_self(), "rio-dispatch");
  std::vector<DeliveryJob> aborted;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        if (in_flight_ == 0 || absl::Now() >= stop_deadline_) break;
      } else {
        StartReadyJobs();
      }
    }
    for (DeliveryJob& job : to_start_) StartTransfer(std::move(job));
    to_start_.clear();
    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    bool finished = false;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) {
        FinishTransfer(msg->easy_handle, msg->data.result);
        finished = true;
      }
    }
    if (!log_.empty()) {
      // One write per round rather than one per line.
      std::fwrite(log_.data(), 1, log_.size(), stderr);
      log_.clear();
    }
    // Freed slots are refilled at once: polling first would sleep while
    // jobs wait.
    if (!finished) {
      curl_multi_poll(multi_, nullptr, 0, /*timeout_ms=*/1000, nullptr);
    }
  }
  std::fwrite(log_.data(), 1, log_.size(), stderr);
  log_.clear();
  // Whatever is still in flight is abandoned; the caller releases it.
  for (auto& [easy, transfer] : transfers_) {
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    aborted.push_back(std::move(transfer->job));
  }
  transfers_.clear();
  absl::MutexLock lock(&mu_);
  for (DeliveryJob& job : aborted) unfinished_.push_back(std::move(job));
  in_flight_ = 0;
  in_flight_by_handler_.clear();
}

void Dispatcher::StartTransfer(DeliveryJob job) {
  auto t = std::make_unique<Transfer>();
  const store::CachedHandler& h = *job.handler;
  t->start = absl::Now();
  t->url = h.url;
  bool is_get = h.method == "GET";
  bool is_json = h.content_type == "JSON" && !is_get;
  static const std::string kEmpty;
  if (is_get) {
    t->url = AppendQuery(h.url, FormEncode(*job.payload));
    t->body = &kEmpty;
  } else if (is_json) {
    t->body = job.payload.get();
  } else {
    t->form_body = FormEncode(*job.payload);
    t->body = &t->form_body;
  }

  int64_t timestamp = absl::ToUnixSeconds(t->start);
  std::string signatures;
  auto sign = [&](const std::string& secret) {
    auto signature =
        SignStandardWebhook(secret, job.message_id, timestamp, *t->body);
    if (!signature.ok()) return;
    if (!signatures.empty()) signatures += ' ';
    signatures += *signature;
  };
  sign(h.secret);
  if (!h.previous_secret.empty() && h.previous_secret_expire_time > t->start) {
    sign(h.previous_secret);
  }

  if (!is_get) {
    t->AddHeader("Content-Type", is_json ? "application/json"
                                         : "application/x-www-form-urlencoded");
  }
  t->AddHeader("webhook-id", job.message_id);
  t->AddHeader("webhook-timestamp", absl::StrCat(timestamp));
  t->AddHeader("webhook-signature", signatures);
  t->AddHeader("X-Rio-Event", absl::StrCat("uuid=", job.message_id, ",project=",
                                           job.project, ",action=", job.event));
  t->AddHeader("X-Rio-Delivery", job.delivery_id);
  t->AddHeader("X-Rio-Attempt", absl::StrCat(job.attempt));
  for (const auto& [name, value] : h.headers) {
    t->AddHeader(name, value, /*secret=*/true);
  }
  t->headers = curl_slist_append(t->headers, "Expect:");

  CURL* easy;
  if (idle_.empty()) {
    easy = curl_easy_init();
  } else {
    easy = idle_.back();
    idle_.pop_back();
  }
  // Webhooks go straight to their receivers; this also spares curl a
  // look at the proxy environment variables on every call.
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_URL, t->url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(h.timeout_ms));
  curl_easy_setopt(
      easy, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  if (is_get) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->body->data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t->body->size()));
    if (h.method == "PUT") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
  }
  absl::StrAppend(&log_, "REQUEST ", job.message_id, " ", job.delivery_id, " ",
                  h.method, " ", h.url, " attempt=", job.attempt, "\n");
  t->job = std::move(job);
  curl_multi_add_handle(multi_, easy);
  transfers_[easy] = std::move(t);
}

void Dispatcher::FinishTransfer(CURL* easy, CURLcode code) {
  auto node = transfers_.extract(easy);
  std::unique_ptr<Transfer> t = std::move(node.mapped());
  curl_multi_remove_handle(multi_, easy);
  absl::Time now = absl::Now();

  AttemptOutcome o;
  o.delivery_id = t->job.delivery_id;
  o.message_id = t->job.message_id;
  o.handler_id = t->job.handler->id;
  o.attempt = t->job.attempt;
  o.manual = t->job.manual;
  o.start_time = t->start;
  o.duration_us = absl::ToInt64Microseconds(now - t->start);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t dns = 0, connect = 0, tls = 0, first_byte = 0, total = 0;
  curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &dns);
  curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &tls);
  curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
  // Kept for the next transfer: re-creating handles is a malloc storm.
  curl_easy_reset(easy);
  idle_.push_back(easy);
  o.dns_us = dns;
  o.connect_us = connect;
  o.tls_us = tls;
  o.first_byte_us = first_byte;
  o.total_us = total;
  o.status_code = code == CURLE_OK ? static_cast<int>(status) : 0;
  o.request_headers = std::move(t->request_headers);
  o.response_headers = std::move(t->response_headers);
  o.response_body = std::move(t->response_body);
  if (code != CURLE_OK) {
    o.error_message = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
  }

  AttemptResult result;
  result.curl_code = code;
  result.http_status = o.status_code;
  for (absl::string_view line :
       absl::StrSplit(o.response_headers, "\r\n", absl::SkipEmpty())) {
    if (line.size() > 12 &&
        absl::EqualsIgnoreCase(line.substr(0, 12), "retry-after:")) {
      result.retry_after =
          ParseRetryAfter(absl::StripAsciiWhitespace(line.substr(12)), now);
    }
  }
  static thread_local std::mt19937_64 random(std::random_device{}());
  double rand01 = std::uniform_real_distribution<double>(0.0, 1.0)(random);
  o.decision = policy_.Decide(result, o.attempt, now, rand01);

  std::string what = code == CURLE_OK
                         ? absl::StrCat(o.status_code)
                         : std::string(ErrorClassName(o.decision.error_class));
  absl::StrAppend(&log_, "RESPONSE ", o.message_id, " ", o.delivery_id, " ",
                  what, " ", o.duration_us / 1000, "ms\n");
  // Recorded before it stops being held, so the scheduler never finds it
  // neither here nor in the sink.
  sink_->Record(std::move(o));
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    held_.erase(t->job.delivery_id);
    auto it = in_flight_by_handler_.find(t->job.handler->id);
    if (it != in_flight_by_handler_.end() && --it->second == 0) {
      in_flight_by_handler_.erase(it);
    }
  }
}

}  // namespace rio::dispatch
