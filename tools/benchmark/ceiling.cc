// rio-bench-ceiling: what this machine can do with no Rio in between. A
// libcurl-multi client posting the same body (with webhook headers of the
// same shape) to the same receiver over N concurrent keep-alive
// connections, either as fast as it can or at a fixed rate.
//
// Prints one JSON object on stdout: requests, errors, seconds, rps, cpu_s
// (this process), max_rss_kb, curl_version. With --sends, writes
// "<webhook-id> <send_ns>" per request so that the harness can compute
// send-to-arrival latency exactly as for Rio.
#include <curl/curl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/benchmark/common.h"

ABSL_FLAG(std::string, url, "", "Receiver URL, e.g. http://127.0.0.1:PORT/c");
ABSL_FLAG(int, concurrency, 32, "Transfers in flight at once");
ABSL_FLAG(int64_t, count, 100000, "Requests to send (at most)");
ABSL_FLAG(double, duration, 60, "Stop sending after this many seconds");
ABSL_FLAG(double, rate, 0, "Requests per second (0: as fast as possible)");
ABSL_FLAG(std::string, body,
          R"({"ip":"127.0.0.1","content":"I am a spammer","n":12345})",
          "Request body (JSON)");
ABSL_FLAG(std::string, sends, "", "Write '<webhook-id> <send_ns>' lines here");
ABSL_FLAG(std::string, id_prefix, "ceiling-", "Prefix of the webhook-ids");
ABSL_FLAG(bool, versions, false, "Print {\"curl_version\": ...} and exit");

namespace rio::bench {
namespace {

struct Slot {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  bool busy = false;
};

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Posts to a receiver with libcurl multi, no Rio in between.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_versions)) {
    std::printf("{\"curl_version\": %s}\n", JsonString(curl_version()).c_str());
    return 0;
  }
  const std::string url = absl::GetFlag(FLAGS_url);
  if (url.empty()) {
    std::fprintf(stderr, "rio-bench-ceiling: --url is required\n");
    return 2;
  }
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  const int64_t count = absl::GetFlag(FLAGS_count);
  const double duration = absl::GetFlag(FLAGS_duration);
  const std::string body = absl::GetFlag(FLAGS_body);
  const std::string prefix = absl::GetFlag(FLAGS_id_prefix);
  const bool record = !absl::GetFlag(FLAGS_sends).empty();

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(concurrency));
  std::vector<Slot> slots(concurrency);
  for (Slot& s : slots) {
    s.easy = curl_easy_init();
    curl_easy_setopt(s.easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(s.easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s.easy, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(s.easy, CURLOPT_USERAGENT, "rio-bench-ceiling");
    curl_easy_setopt(s.easy, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(s.easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, &Discard);
    curl_easy_setopt(s.easy, CURLOPT_PRIVATE, &s);
  }

  std::vector<std::pair<int64_t, int64_t>> sends;  // (sequence, send ns)
  if (record)
    sends.reserve(static_cast<size_t>(std::min<int64_t>(count, 1 << 24)));
  const double cpu_start = SelfCpuSeconds();
  const int64_t start = MonotonicNs();
  const int64_t stop_sending = start + static_cast<int64_t>(duration * 1e9);
  Pacer pacer(absl::GetFlag(FLAGS_rate), start);
  int64_t started = 0, done = 0, errors = 0, in_flight = 0;
  int64_t last_done = start;
  std::vector<Slot*> idle;
  for (Slot& s : slots) idle.push_back(&s);

  for (;;) {
    int64_t now = MonotonicNs();
    if (now < stop_sending) {
      int64_t due = std::min(count, pacer.Due(now));
      while (started < due && !idle.empty()) {
        Slot* s = idle.back();
        idle.pop_back();
        curl_slist_free_all(s->headers);
        s->headers = nullptr;
        std::string id = absl::StrCat(prefix, started);
        int64_t sent_ns = RealtimeNs();
        // The headers Rio sends, in shape and size.
        s->headers =
            curl_slist_append(s->headers, "Content-Type: application/json");
        s->headers = curl_slist_append(
            s->headers, absl::StrCat("webhook-id: ", id).c_str());
        s->headers = curl_slist_append(
            s->headers,
            absl::StrCat("webhook-timestamp: ", sent_ns / 1000000000).c_str());
        s->headers = curl_slist_append(
            s->headers,
            "webhook-signature: "
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        s->headers = curl_slist_append(
            s->headers, absl::StrCat("X-Rio-Event: uuid=", id,
                                     ",project=bench,action=bench.event")
                            .c_str());
        s->headers = curl_slist_append(
            s->headers, "X-Rio-Delivery: 00000000-0000-0000-0000-000000000000");
        s->headers = curl_slist_append(s->headers, "X-Rio-Attempt: 1");
        s->headers = curl_slist_append(s->headers, "Expect:");
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
        if (record) sends.emplace_back(started, sent_ns);
        curl_multi_add_handle(multi, s->easy);
        s->busy = true;
        ++started;
        ++in_flight;
      }
    }
    bool sending = now < stop_sending && started < count;
    if (!sending && in_flight == 0) break;
    // A transfer stuck past its timeout is reaped by curl; this is a
    // backstop against a wedged loop.
    if (!sending && now - last_done > 30 * int64_t{1000000000}) break;
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Slot* s = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
      long status = 0;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      if (msg->data.result != CURLE_OK || status != 200) ++errors;
      curl_multi_remove_handle(multi, msg->easy_handle);
      s->busy = false;
      idle.push_back(s);
      ++done;
      --in_flight;
      last_done = MonotonicNs();
    }
    int timeout_ms = 100;
    if (pacer.paced() && sending) {
      int64_t next = pacer.DueTime(started);
      int64_t wait = next - MonotonicNs();
      timeout_ms =
          wait <= 0
              ? 0
              : static_cast<int>(std::min<int64_t>(wait / 1000000 + 1, 100));
      if (idle.empty()) timeout_ms = 100;
    } else if (sending && !idle.empty()) {
      timeout_ms = 0;
    }
    if (timeout_ms > 0 || in_flight > 0) {
      curl_multi_poll(multi, nullptr, 0, timeout_ms, nullptr);
    }
  }
  const double seconds = (last_done - start) / 1e9;
  const double cpu = SelfCpuSeconds() - cpu_start;

  if (record) {
    FILE* f = std::fopen(absl::GetFlag(FLAGS_sends).c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "rio-bench-ceiling: cannot write the sends file\n");
      return 1;
    }
    for (const auto& [seq, ns] : sends) {
      std::fprintf(f, "%s%lld %lld\n", prefix.c_str(),
                   static_cast<long long>(seq), static_cast<long long>(ns));
    }
    std::fclose(f);
  }
  for (Slot& s : slots) {
    if (s.busy) curl_multi_remove_handle(multi, s.easy);
    curl_easy_cleanup(s.easy);
    curl_slist_free_all(s.headers);
  }
  curl_multi_cleanup(multi);

  std::printf(
      "{\"requests\": %lld, \"errors\": %lld, \"seconds\": %.6f, \"rps\": "
      "%.1f, "
      "\"cpu_s\": %.3f, \"cpu_us_per_request\": %.3f, \"max_rss_kb\": %ld, "
      "\"concurrency\": %d, \"curl_version\": %s}\n",
      static_cast<long long>(done), static_cast<long long>(errors), seconds,
      seconds > 0 ? done / seconds : 0.0, cpu,
      done > 0 ? cpu * 1e6 / done : 0.0, SelfMaxRssKb(), concurrency,
      JsonString(curl_version()).c_str());
  curl_global_cleanup();
  return errors > 0 && errors == done ? 1 : 0;
}

}  // namespace
}  // namespace rio::bench

int main(int argc, char** argv) { return rio::bench::Main(argc, argv); }
