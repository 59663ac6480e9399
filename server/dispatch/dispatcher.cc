#include "server/dispatch/dispatcher.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/dispatch/request.h"
#include "server/util/utf8.h"

namespace rio::dispatch {
namespace {

// What is kept of a response. Once the body passes kMaxResponseBody the
// transfer stops: the status decides the attempt, and a receiver cannot make
// Rio read an endless body.
constexpr size_t kMaxResponseBody = 64 * 1024;
constexpr size_t kMaxResponseHeaders = 16 * 1024;
// Beyond these the response is refused (ErrorClass::kInvalidResponse).
constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;
constexpr int kMaxInterimResponses = 10;
// Room for a usual response's header block in one allocation.
constexpr size_t kResponseHeadersGuess = 256;
// Room for the headers Rio sets itself, handler headers come on top.
constexpr size_t kRequestHeadersGuess = 512;

[[noreturn]] void DieBecause(const char* what) {
  std::fprintf(stderr, "rio: fatal: %s (errno %d)\n", what, errno);
  std::abort();
}

// epoll_wait's timeout for waking at `until`: rounded up to whole
// milliseconds so that curl's timer has expired by then; -1 for never.
int WaitMillis(absl::Time now, absl::Time until) {
  if (until == absl::InfiniteFuture()) return -1;
  if (until <= now) return 0;
  const int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(until - now, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

// What curl_multi_socket_action is told about a ready socket: errors and
// hang-ups read as readable, as curl's own poll reports them, so that curl
// reads and reports the real cause.
int CurlEvents(uint32_t epoll_events) {
  int flags = 0;
  if (epoll_events & (EPOLLIN | EPOLLHUP | EPOLLERR)) flags |= CURL_CSELECT_IN;
  if (epoll_events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
  if (epoll_events & EPOLLERR) flags |= CURL_CSELECT_ERR;
  return flags;
}

}  // namespace

absl::Status CheckWebhookCallFlags(const Dispatcher::Options& options) {
  for (const std::string& entry : options.resolve) {
    // HOST:PORT:ADDRESS, the address bracketed or not when IPv6.
    const std::vector<absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits(':', 2));
    int port = 0;
    absl::string_view address = parts.size() == 3 ? parts[2] : "";
    if (absl::StartsWith(address, "[") && absl::EndsWith(address, "]")) {
      address = address.substr(1, address.size() - 2);
    }
    IpAddress ip;
    if (parts.size() != 3 || parts[0].empty() ||
        !absl::SimpleAtoi(parts[1], &port) || port < 1 || port > 65535 ||
        !ParseIpAddress(address, &ip)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--egress_resolve entry \"", absl::CHexEscape(entry),
                       "\" is not HOST:PORT:ADDRESS (like "
                       "hooks.internal:443:10.0.0.7)"));
    }
  }
  if (!options.proxy.empty() &&
      !absl::StartsWithIgnoreCase(options.proxy, "http://") &&
      !absl::StartsWithIgnoreCase(options.proxy, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--egress_proxy \"", absl::CHexEscape(options.proxy),
                     "\" is not an http:// or https:// URL"));
  }
  if (!options.ca_file.empty()) {
    FILE* file = std::fopen(options.ca_file.c_str(), "r");
    if (file == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ca_file ", options.ca_file, ": ", std::strerror(errno)));
    }
    int certificates = 0;
    while (X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr)) {
      X509_free(cert);
      ++certificates;
    }
    std::fclose(file);
    ERR_clear_error();  // the end of the file reads as an error
    if (certificates == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ca_file ", options.ca_file, " holds no PEM certificate"));
    }
  }
  return absl::OkStatus();
}

absl::string_view OriginOf(absl::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return url;
  size_t end = url.find_first_of("/?#", scheme_end + 3);
  return end == absl::string_view::npos ? url : url.substr(0, end);
}

// One HTTP call in flight, and the easy handle that makes it. A finished
// Transfer is kept (reset) for a later job: the handle, and the buffers that
// are not handed over with the outcome, keep their memory. Owns everything
// curl points into.
struct Dispatcher::Transfer {
  explicit Transfer(CURL* handle) : easy(handle) {}
  ~Transfer() { curl_easy_cleanup(easy); }

  CURL* const easy;
  bool in_flight = false;
  DeliveryJob job;
  std::string url;        // GET: the handler URL with the query
  std::string form_body;  // FORM bodies; JSON points at the payload
  const std::string* body = nullptr;
  // The request header lines, each NUL-terminated, and the list handed to
  // curl, whose nodes point into them. Built here rather than with
  // curl_slist_append, which allocates twice per line on every call; curl
  // only reads the list.
  std::string header_text;
  std::vector<size_t> header_starts;
  std::vector<curl_slist> header_list;
  std::string scratch;          // for building a header value
  std::string request_headers;  // as logged, handler header values hidden
  std::string response_headers;
  std::string response_body;
  char error[CURL_ERROR_SIZE] = {0};
  absl::Time start;
  // Header bytes and status lines read so far, over every header block.
  size_t header_bytes = 0;
  int status_lines = 0;
  // Why Rio stopped reading, when it did (the transfer then ends with
  // CURLE_WRITE_ERROR).
  enum class Stop { kNo, kBodyKept, kRefused };
  Stop stop = Stop::kNo;
  const char* refusal = "";
  // Why the destination was refused (egress guard or --https_only); the
  // transfer then fails without connecting.
  std::string refused_destination;
  const EgressGuard* egress = nullptr;

  void AddHeader(absl::string_view name, absl::string_view value,
                 bool secret = false) {
    header_starts.push_back(header_text.size());
    absl::StrAppend(&header_text, name, ": ", value);
    header_text.push_back('\0');
    absl::StrAppend(&request_headers, name, ": ", secret ? "[redacted]" : value,
                    "\r\n");
  }

  // A line for curl that is not logged ("Name:" removes a header curl would
  // add).
  void AddCurlOnlyLine(absl::string_view line) {
    header_starts.push_back(header_text.size());
    header_text.append(line.data(), line.size());
    header_text.push_back('\0');
  }

  // The list for CURLOPT_HTTPHEADER. REQUIRES: every line added (adding
  // another may move header_text).
  curl_slist* LinkHeaders() {
    header_list.resize(header_starts.size());
    for (size_t i = 0; i < header_list.size(); ++i) {
      header_list[i].data = header_text.data() + header_starts[i];
      header_list[i].next =
          i + 1 < header_list.size() ? &header_list[i + 1] : nullptr;
    }
    return header_list.empty() ? nullptr : header_list.data();
  }

  // Ready for the next job; releases the job's payload and handler.
  // REQUIRES: the handle is out of the multi and reset.
  void Clear() {
    in_flight = false;
    job = DeliveryJob();
    url = std::string();
    form_body = std::string();
    body = nullptr;
    header_text.clear();
    header_starts.clear();
    header_list.clear();
    request_headers.clear();
    response_headers.clear();
    response_body.clear();
    error[0] = '\0';
    header_bytes = 0;
    status_lines = 0;
    stop = Stop::kNo;
    refusal = "";
    refused_destination.clear();
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    size_t len = size * n;
    size_t room = kMaxResponseBody - t->response_body.size();
    if (room == 0) {
      // Enough is kept; the rest is not worth the wait.
      t->stop = Stop::kBodyKept;
      return 0;
    }
    t->response_body.append(data, std::min(len, room));
    return len;
  }

  // Returning anything but the length makes curl end the transfer.
  size_t Refuse(const char* why) {
    stop = Stop::kRefused;
    refusal = why;
    return 0;
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    size_t len = size * n;
    absl::string_view line(data, len);
    t->header_bytes += len;
    if (t->header_bytes > kMaxResponseHeaderBytes) {
      return t->Refuse("the response headers exceed 64 KiB");
    }
    // A new status line starts a new header block (e.g. after 1xx).
    if (absl::StartsWith(line, "HTTP/")) {
      if (++t->status_lines > kMaxInterimResponses) {
        return t->Refuse("more than 10 interim (1xx) responses");
      }
      t->response_headers.clear();
      t->response_headers.reserve(kResponseHeadersGuess);
    }
    if (t->response_headers.size() + len <= kMaxResponseHeaders) {
      t->response_headers.append(data, len);
    }
    return len;
  }
};

Dispatcher::Dispatcher(Options options, RetryPolicy policy, OutcomeSink* sink)
    : options_(std::move(options)), policy_(std::move(policy)), sink_(sink) {
  multi_ = curl_multi_init();
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (multi_ == nullptr || epoll_fd_ < 0 || wake_fd_ < 0) {
    DieBecause("cannot set up the dispatcher's curl multi handle and epoll");
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) {
    DieBecause("cannot watch the dispatcher's eventfd");
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Dispatcher::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Dispatcher::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  // No per-host limit: that would make curl queue transfers internally,
  // where their timeouts run. Concurrency is bounded per handler instead.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(options_.max_in_flight));
  for (const std::string& entry : options_.resolve) {
    resolve_ = curl_slist_append(resolve_, entry.c_str());
    if (resolve_ == nullptr) DieBecause("out of memory");
  }
  if (!options_.ca_file.empty()) {
    // The extra roots are CURLOPT_CAINFO; the system's stay trusted through
    // their hashed directory (CURLOPT_CAPATH), and curl keeps caching the
    // parsed store.
    const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
    ca_path_ = curl->capath != nullptr ? curl->capath : "/etc/ssl/certs";
  }
}

curl_socket_t Dispatcher::OnOpenSocket(void* transfer, curlsocktype purpose,
                                       curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(transfer);
  if (purpose == CURLSOCKTYPE_IPCXN && t->egress != nullptr) {
    std::string refusal = t->egress->CheckAddress(&address->addr);
    if (!refusal.empty()) {
      // Curl tries the name's other addresses, if any; the last refusal
      // is reported if none connects.
      t->refused_destination = std::move(refusal);
      return CURL_SOCKET_BAD;
    }
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

Dispatcher::~Dispatcher() {
  Stop(absl::ZeroDuration());
  // The loop has taken every handle out of the multi.
  idle_.clear();
  transfers_.clear();
  // Closes the pooled connections; their sockets leave the epoll set through
  // OnSocket, so epoll_fd_ stays open until after this.
  curl_multi_cleanup(multi_);
  curl_slist_free_all(resolve_);
  close(wake_fd_);
  close(epoll_fd_);
}

void Dispatcher::Start() { thread_ = std::thread(&Dispatcher::Loop, this); }

void Dispatcher::Wake() {
  const uint64_t one = 1;
  // Fails only if the counter would overflow, when the loop is woken anyway.
  if (write(wake_fd_, &one, sizeof(one)) < 0) return;
}

std::vector<DeliveryJob> Dispatcher::Submit(std::vector<DeliveryJob> jobs) {
  std::vector<DeliveryJob> refused;
  const int backlog = SinkBacklog();
  {
    absl::MutexLock lock(&mu_);
    for (DeliveryJob& job : jobs) {
      // Already here (claimed again after a long wait): not twice.
      if (!held_.insert(job.delivery_id).second) continue;
      const int64_t bytes = static_cast<int64_t>(job.payload->size());
      HandlerLoad& load = held_by_handler_[job.handler->id];
      // held_ counts this job already.
      if (!Fits(load, bytes, in_flight_ + waiting_count_, held_bytes_,
                held_.size() - 1, backlog)) {
        if (load.jobs == 0) held_by_handler_.erase(job.handler->id);
        held_.erase(job.delivery_id);
        refused.push_back(std::move(job));
        continue;
      }
      ++load.jobs;
      load.bytes += bytes;
      held_bytes_ += bytes;
      mean_payload_bytes_ =
          mean_payload_bytes_ == 0
              ? bytes
              : mean_payload_bytes_ + (bytes - mean_payload_bytes_) / 16;
      std::deque<DeliveryJob>& queue = waiting_[job.handler->id];
      if (queue.empty()) ready_handlers_.push_back(job.handler->id);
      queue.push_back(std::move(job));
      ++waiting_count_;
    }
  }
  Wake();
  return refused;
}

bool Dispatcher::Fits(const HandlerLoad& load, int64_t bytes, int64_t held,
                      int64_t held_bytes, size_t held_jobs, int backlog) const {
  // A job larger than a bound alone is taken when nothing else is held.
  return !stopping_ && held < options_.max_queued &&
         backlog < options_.max_outcome_backlog &&
         load.jobs < options_.max_queued_per_handler &&
         (load.bytes + bytes <= options_.max_queued_bytes_per_handler ||
          load.jobs == 0) &&
         (held_bytes + bytes <= options_.max_queued_bytes || held_jobs == 0);
}

std::vector<bool> Dispatcher::WouldTake(
    const std::vector<DeliveryJob>& jobs) const {
  std::vector<bool> taken(jobs.size(), false);
  const int backlog = SinkBacklog();
  absl::MutexLock lock(&mu_);
  // The loads as they would be after the jobs taken so far.
  absl::flat_hash_map<std::string, HandlerLoad> loads;
  int64_t held = in_flight_ + waiting_count_;
  int64_t held_bytes = held_bytes_;
  size_t held_jobs = held_.size();
  for (size_t i = 0; i < jobs.size(); ++i) {
    const DeliveryJob& job = jobs[i];
    const int64_t bytes = static_cast<int64_t>(job.payload->size());
    auto [load, inserted] = loads.try_emplace(job.handler->id);
    if (inserted) {
      auto now = held_by_handler_.find(job.handler->id);
      if (now != held_by_handler_.end()) load->second = now->second;
    }
    if (!Fits(load->second, bytes, held, held_bytes, held_jobs, backlog)) {
      continue;
    }
    taken[i] = true;
    ++load->second.jobs;
    load->second.bytes += bytes;
    ++held;
    held_bytes += bytes;
    ++held_jobs;
  }
  return taken;
}

std::vector<std::string> Dispatcher::FullHandlers() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> full;
  for (const auto& [id, load] : held_by_handler_) {
    if (load.jobs >= options_.max_queued_per_handler ||
        load.bytes >= options_.max_queued_bytes_per_handler) {
      full.push_back(id);
    }
  }
  return full;
}

int Dispatcher::SinkBacklog() const {
  return static_cast<int>(
      std::min<size_t>(sink_->Backlog(), static_cast<size_t>(INT_MAX / 2)));
}

bool Dispatcher::Holds(const std::string& delivery_id) const {
  absl::MutexLock lock(&mu_);
  return held_.contains(delivery_id);
}

int Dispatcher::Room() const {
  const int backlog = SinkBacklog();
  absl::MutexLock lock(&mu_);
  if (stopping_ || held_bytes_ >= options_.max_queued_bytes) return 0;
  const int held = in_flight_ + waiting_count_;
  // Claimed deliveries bring their payloads: claim no more than the bytes
  // left can take, judging by the payloads seen lately.
  const int64_t by_bytes = (options_.max_queued_bytes - held_bytes_) /
                           std::max<int64_t>(1, mean_payload_bytes_);
  return static_cast<int>(std::max<int64_t>(
      0, std::min<int64_t>({options_.max_in_flight - held,
                            options_.max_queued - held,
                            options_.max_outcome_backlog - backlog,
                            std::max<int64_t>(by_bytes, held == 0 ? 1 : 0)})));
}

std::vector<DeliveryJob> Dispatcher::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return {};
    stopping_ = true;
    stop_deadline_ = absl::Now() + grace;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, queue] : waiting_) {
    for (DeliveryJob& job : queue) unfinished_.push_back(std::move(job));
  }
  waiting_.clear();
  ready_handlers_.clear();
  waiting_count_ = 0;
  held_.clear();
  held_bytes_ = 0;
  held_by_handler_.clear();
  return std::move(unfinished_);
}

void Dispatcher::StartReadyJobs() {
  size_t skipped = 0;  // handlers at their cap since the last start
  while (in_flight_ < options_.max_in_flight && !ready_handlers_.empty() &&
         skipped < ready_handlers_.size()) {
    std::string id = std::move(ready_handlers_.front());
    ready_handlers_.pop_front();
    int& handler_in_flight = in_flight_by_handler_[id];
    auto it = waiting_.find(id);
    absl::string_view origin = OriginOf(it->second.front().handler->url);
    auto origin_it = in_flight_by_origin_.find(origin);
    if (handler_in_flight >= options_.max_per_handler ||
        (origin_it != in_flight_by_origin_.end() &&
         origin_it->second >= options_.max_per_host)) {
      ready_handlers_.push_back(std::move(id));
      ++skipped;
      continue;
    }
    if (origin_it == in_flight_by_origin_.end()) {
      origin_it = in_flight_by_origin_.emplace(std::string(origin), 0).first;
    }
    ++origin_it->second;
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

int Dispatcher::OnSocket(CURL* easy, curl_socket_t socket, int what, void* self,
                         void* socket_data) {
  (void)easy;
  auto* d = static_cast<Dispatcher*>(self);
  // socket_data is non-null once the socket is in the epoll set.
  if (what == CURL_POLL_REMOVE) {
    // Curl may report this after closing the socket, which already took it
    // out of the set: an error here means nothing.
    if (socket_data != nullptr) {
      epoll_ctl(d->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
    }
    return 0;
  }
  epoll_event ev{};
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
              ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  ev.data.fd = socket;
  int op = socket_data != nullptr ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int rc = epoll_ctl(d->epoll_fd_, op, socket, &ev);
  // A descriptor closed and reused since curl last told us of it.
  if (rc != 0 && op == EPOLL_CTL_MOD && errno == ENOENT) {
    rc = epoll_ctl(d->epoll_fd_, EPOLL_CTL_ADD, socket, &ev);
  } else if (rc != 0 && op == EPOLL_CTL_ADD && errno == EEXIST) {
    rc = epoll_ctl(d->epoll_fd_, EPOLL_CTL_MOD, socket, &ev);
  }
  if (rc != 0) {
    // Out of memory or of epoll watches: the transfer on this socket ends
    // at its timeout and is retried.
    std::fprintf(stderr, "rio-server: dispatcher cannot watch socket %d: %s\n",
                 static_cast<int>(socket), std::strerror(errno));
    return 0;
  }
  if (socket_data == nullptr) curl_multi_assign(d->multi_, socket, d);
  return 0;
}

int Dispatcher::OnTimer(CURLM* multi, long timeout_ms, void* self) {
  (void)multi;
  auto* d = static_cast<Dispatcher*>(self);
  ++d->timer_calls_;
  // -1: no timer; 0: act at once (the loop's wait does not sleep then).
  d->timer_due_ = timeout_ms < 0 ? absl::InfiniteFuture()
                                 : absl::Now() + absl::Milliseconds(timeout_ms);
  return 0;
}

void Dispatcher::ActOnTimer(absl::Time now) {
  if (timer_due_ > now) return;
  timer_due_ = absl::InfiniteFuture();
  const uint64_t calls = timer_calls_;
  int running = 0;
  curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  if (timer_calls_ == calls) {
    // Curl calls OnTimer only when its timer changes. This one fired early
    // (curl rounds the time left down to whole milliseconds), so it is
    // still set inside curl: ask for it again.
    long timeout_ms = -1;
    curl_multi_timeout(multi_, &timeout_ms);
    if (timeout_ms >= 0) {
      timer_due_ = absl::Now() + absl::Milliseconds(std::max(timeout_ms, 1L));
    }
  }
}

void Dispatcher::Loop() {
  pthread_setname_np(pthread_self(), "rio-dispatch");
  std::vector<DeliveryJob> aborted;
  std::vector<epoll_event> events(options_.max_in_flight + 1);
  for (;;) {
    absl::Time stop_deadline = absl::InfiniteFuture();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        if (in_flight_ == 0 || absl::Now() >= stop_deadline_) break;
        stop_deadline = stop_deadline_;
      } else {
        StartReadyJobs();
      }
    }
    for (DeliveryJob& job : to_start_) StartTransfer(std::move(job));
    to_start_.clear();
    // Adding a transfer sets curl's timer to 0, so after a start (and so
    // after completions that freed slots) this does not sleep.
    const int ready = epoll_wait(
        epoll_fd_, events.data(), static_cast<int>(events.size()),
        WaitMillis(absl::Now(), std::min(timer_due_, stop_deadline)));
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count;
        if (read(wake_fd_, &count, sizeof(count)) < 0) continue;  // EAGAIN
        continue;
      }
      // A socket that an earlier action in this round closed is unknown to
      // curl, which ignores it.
      int running = 0;
      curl_multi_socket_action(multi_, fd, CurlEvents(events[i].events),
                               &running);
    }
    ActOnTimer(absl::Now());
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) {
        FinishTransfer(msg->easy_handle, msg->data.result);
      }
    }
    if (!log_.empty()) {
      // One write per round rather than one per line.
      std::fwrite(log_.data(), 1, log_.size(), stderr);
      log_.clear();
    }
  }
  std::fwrite(log_.data(), 1, log_.size(), stderr);
  log_.clear();
  // Whatever is still in flight is abandoned; the caller releases it.
  for (const std::unique_ptr<Transfer>& t : transfers_) {
    if (!t->in_flight) continue;
    curl_multi_remove_handle(multi_, t->easy);
    curl_easy_reset(t->easy);
    aborted.push_back(std::move(t->job));
    t->Clear();
    idle_.push_back(t.get());
  }
  absl::MutexLock lock(&mu_);
  for (DeliveryJob& job : aborted) unfinished_.push_back(std::move(job));
  in_flight_ = 0;
  in_flight_by_handler_.clear();
  in_flight_by_origin_.clear();
}

void Dispatcher::StartTransfer(DeliveryJob job) {
  Transfer* t;
  if (idle_.empty()) {
    CURL* easy = curl_easy_init();
    if (easy == nullptr) DieBecause("curl_easy_init failed");
    transfers_.push_back(std::make_unique<Transfer>(easy));
    t = transfers_.back().get();
  } else {
    t = idle_.back();
    idle_.pop_back();
  }
  t->in_flight = true;
  CURL* const easy = t->easy;
  const store::CachedHandler& h = *job.handler;
  t->start = absl::Now();
  bool is_get = h.method == "GET";
  bool is_json = h.content_type == "JSON" && !is_get;
  static const std::string kEmpty;
  // The handler (and so h.url) lives as long as t->job.
  const char* url = h.url.c_str();
  // What the signature covers: the body, or a GET's query string exactly as
  // curl sends it (its body is empty), so that the payload is signed too.
  absl::string_view signed_content;
  if (is_get) {
    t->url = AppendQuery(h.url, FormEncode(*job.payload));
    url = t->url.c_str();
    t->body = &kEmpty;
    signed_content = QueryOf(t->url);
  } else if (is_json) {
    t->body = job.payload.get();
    signed_content = *t->body;
  } else {
    t->form_body = FormEncode(*job.payload);
    t->body = &t->form_body;
    signed_content = *t->body;
  }

  int64_t timestamp = absl::ToUnixSeconds(t->start);
  std::string signatures;
  auto sign = [&](const std::string& secret) {
    auto signature =
        SignStandardWebhook(secret, job.message_id, timestamp, signed_content);
    if (!signature.ok()) return;
    if (!signatures.empty()) signatures += ' ';
    signatures += *signature;
  };
  sign(h.secret);
  if (!h.previous_secret.empty() && h.previous_secret_expire_time > t->start) {
    sign(h.previous_secret);
  }

  size_t handler_header_bytes = 0;
  for (const auto& [name, value] : h.headers) {
    handler_header_bytes += name.size() + value.size() + 4;
  }
  // Moved into the outcome, so it cannot keep its memory: one allocation.
  t->request_headers.reserve(kRequestHeadersGuess + handler_header_bytes);
  if (!is_get) {
    t->AddHeader("Content-Type", is_json ? "application/json"
                                         : "application/x-www-form-urlencoded");
  }
  t->AddHeader("webhook-id", job.message_id);
  const absl::AlphaNum timestamp_text(timestamp);
  t->AddHeader("webhook-timestamp", timestamp_text.Piece());
  t->AddHeader("webhook-signature", signatures);
  t->scratch.clear();
  absl::StrAppend(&t->scratch, "uuid=", job.message_id,
                  ",project=", job.project, ",action=", job.event);
  t->AddHeader("X-Rio-Event", t->scratch);
  t->AddHeader("X-Rio-Delivery", job.delivery_id);
  const absl::AlphaNum attempt_text(job.attempt);
  t->AddHeader("X-Rio-Attempt", attempt_text.Piece());
  for (const auto& [name, value] : h.headers) {
    t->AddHeader(name, value, /*secret=*/true);
  }
  t->AddCurlOnlyLine("Expect:");

  if (options_.proxy.empty()) {
    // Webhooks go straight to their receivers; this also spares curl a
    // look at the proxy environment variables on every call.
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    t->egress = options_.egress;
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                     &Dispatcher::OnOpenSocket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, t);
  } else {
    // Every call is a CONNECT tunnel, so the proxy sees the destination
    // (and decides) also for http:// URLs.
    curl_easy_setopt(easy, CURLOPT_PROXY, options_.proxy.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
  }
  if (resolve_ != nullptr) curl_easy_setopt(easy, CURLOPT_RESOLVE, resolve_);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(easy, CURLOPT_CAPATH, ca_path_.c_str());
  }
  if (!h.client_certificate.empty()) {
    // Mutual TLS: libcurl copies the blobs into the connection it opens; the
    // handler (held by the job until the transfer ends) keeps them until
    // then. Connections are reused only by calls with the same certificate.
    curl_blob certificate{const_cast<char*>(h.client_certificate.data()),
                          h.client_certificate.size(), CURL_BLOB_NOCOPY};
    curl_blob key{const_cast<char*>(h.client_key.data()), h.client_key.size(),
                  CURL_BLOB_NOCOPY};
    curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &certificate);
    curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key);
  }
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
  if (options_.egress != nullptr && options_.egress->https_only() &&
      !absl::StartsWithIgnoreCase(h.url, "https://")) {
    // Saved before --https_only was given: curl refuses the scheme.
    t->refused_destination =
        "the URL is http://; this server calls only https:// URLs "
        "(--https_only)";
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https");
  } else {
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  }
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(h.timeout_ms));
  curl_easy_setopt(
      easy, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(easy, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->LinkHeaders());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
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
  // Userinfo and the query may hold credentials: never in the log.
  absl::StrAppend(&log_, "REQUEST ", job.message_id, " ", job.delivery_id, " ",
                  h.method, " ");
  AppendRedactedUrl(h.url, &log_);
  absl::StrAppend(&log_, " attempt=", job.attempt, "\n");
  t->job = std::move(job);
  if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
    // Only on a broken invariant or out of memory; still an outcome.
    FinishTransfer(easy, CURLE_FAILED_INIT);
  }
}

void Dispatcher::FinishTransfer(CURL* easy, CURLcode code) {
  Transfer* t = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
  curl_multi_remove_handle(multi_, easy);
  absl::Time now = absl::Now();

  AttemptOutcome o;
  o.delivery_id = t->job.delivery_id;
  o.message_id = std::move(t->job.message_id);
  o.handler_id = t->job.handler->id;
  o.attempt = t->job.attempt;
  o.manual = t->job.manual;
  o.start_time = t->start;
  o.duration_us = absl::ToInt64Microseconds(now - t->start);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  AttemptResult result;
  if (code != CURLE_OK && !t->refused_destination.empty()) {
    result.destination_refused = std::move(t->refused_destination);
  } else if (code == CURLE_WRITE_ERROR &&
             t->stop == Transfer::Stop::kBodyKept) {
    // Rio stopped reading a long body: the status line says how it went.
    code = CURLE_OK;
  } else if (code == CURLE_WRITE_ERROR && t->stop == Transfer::Stop::kRefused) {
    result.invalid_response = t->refusal;
  } else if (code == CURLE_UNSUPPORTED_PROTOCOL) {
    // The URL's scheme was checked when the handler was saved, so after a
    // connection this means the reply was not HTTP/1.x (curl reads it as
    // HTTP/0.9, which it refuses).
    curl_off_t connected = 0;
    curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connected);
    if (connected > 0) result.invalid_response = "the reply is not HTTP";
  }
  curl_off_t dns = 0, connect = 0, tls = 0, first_byte = 0, total = 0;
  curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &dns);
  curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &tls);
  curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
  o.dns_us = dns;
  o.connect_us = connect;
  o.tls_us = tls;
  o.first_byte_us = first_byte;
  o.total_us = total;
  o.status_code = code == CURLE_OK ? static_cast<int>(status) : 0;
  o.request_headers = std::move(t->request_headers);
  o.response_headers = std::move(t->response_headers);
  o.response_body = std::move(t->response_body);
  if (!result.destination_refused.empty()) {
    o.error_message = result.destination_refused;
  } else if (!result.invalid_response.empty()) {
    o.error_message = result.invalid_response;
  } else if (code != CURLE_OK) {
    o.error_message = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
  }
  // Receivers' bytes may be anything; what is recorded is valid text.
  util::MakeStorableText(&o.response_headers);
  util::MakeStorableText(&o.error_message);

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
    const int64_t bytes = static_cast<int64_t>(t->job.payload->size());
    held_bytes_ -= bytes;
    auto load = held_by_handler_.find(t->job.handler->id);
    if (load != held_by_handler_.end()) {
      load->second.bytes -= bytes;
      if (--load->second.jobs == 0) held_by_handler_.erase(load);
    }
    auto it = in_flight_by_handler_.find(t->job.handler->id);
    if (it != in_flight_by_handler_.end() && --it->second == 0) {
      in_flight_by_handler_.erase(it);
    }
    auto origin_it = in_flight_by_origin_.find(OriginOf(t->job.handler->url));
    if (origin_it != in_flight_by_origin_.end() && --origin_it->second == 0) {
      in_flight_by_origin_.erase(origin_it);
    }
  }
  // Kept for the next transfer: re-creating handles is a malloc storm.
  curl_easy_reset(easy);
  t->Clear();
  idle_.push_back(t);
}

}  // namespace rio::dispatch
