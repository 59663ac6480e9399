// Small helpers shared by the tools/bench programs: clocks, this process's
// resource use, and a pacing schedule for fixed-rate load. Header-only.
#ifndef RIO_TOOLS_BENCHMARK_COMMON_H_
#define RIO_TOOLS_BENCHMARK_COMMON_H_

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"

namespace rio::bench {

// Wall-clock time in ns: comparable across processes, so a send time taken
// by the load generator and an arrival time taken by the receiver subtract.
inline int64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

inline int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// CPU seconds (user + system) this process used so far.
inline double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

// Peak resident set size of this process, in KiB.
inline long SelfMaxRssKb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// The p-th percentile (0-100) of `values` (sorted in place), in the same unit;
// 0 when empty. Nearest-rank.
inline double Percentile(std::vector<double>* values, double p) {
  if (values->empty()) return 0;
  std::sort(values->begin(), values->end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * values->size()));
  rank = std::clamp<size_t>(rank, 1, values->size());
  return (*values)[rank - 1];
}

// Paces sends at `rate` per second (0: unpaced) from `start_ns`
// (CLOCK_MONOTONIC): Due() says how many sends should have started by now.
class Pacer {
 public:
  Pacer(double rate, int64_t start_ns) : rate_(rate), start_ns_(start_ns) {}

  bool paced() const { return rate_ > 0; }

  // Sends due by `now_ns` since the start (unbounded when unpaced).
  int64_t Due(int64_t now_ns) const {
    if (rate_ <= 0) return INT64_MAX;
    return static_cast<int64_t>((now_ns - start_ns_) * 1e-9 * rate_) + 1;
  }

  // When send number `n` (0-based) is due, CLOCK_MONOTONIC ns.
  int64_t DueTime(int64_t n) const {
    if (rate_ <= 0) return start_ns_;
    return start_ns_ + static_cast<int64_t>(n * 1e9 / rate_);
  }

 private:
  double rate_;
  int64_t start_ns_;
};

// JSON string literal for `s` (ASCII tool output only needs quotes and
// backslashes escaped).
inline std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace rio::bench

#endif  // RIO_TOOLS_BENCHMARK_COMMON_H_
