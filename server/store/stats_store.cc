#include "server/store/stats_store.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

// As rio_latency_bounds_us() in migration 8; stats_store_test compares them.
constexpr std::array<int64_t, 58> kLatencyBoundsUs = {
    100,      150,      200,      250,      300,      400,      500,
    600,      800,      1000,     1250,     1500,     2000,     2500,
    3000,     4000,     5000,     6000,     8000,     10000,    12500,
    15000,    20000,    25000,    30000,    40000,    50000,    60000,
    80000,    100000,   125000,   150000,   200000,   250000,   300000,
    400000,   500000,   600000,   800000,   1000000,  1250000,  1500000,
    2000000,  2500000,  3000000,  4000000,  5000000,  6000000,  8000000,
    10000000, 12500000, 15000000, 20000000, 25000000, 30000000, 40000000,
    50000000, 60000000};

constexpr int kMinute = 60;
constexpr int kHour = 3600;

int64_t SpanStart(absl::Time t, int span) {
  const int64_t s = absl::ToUnixSeconds(t);
  return (s >= 0 ? s : s - span + 1) / span * span;
}

// "{1,2,3}" as numbers; an empty or malformed literal gives none.
std::vector<int64_t> ParseCounts(absl::string_view literal) {
  std::vector<int64_t> counts;
  if (!absl::ConsumePrefix(&literal, "{") ||
      !absl::ConsumeSuffix(&literal, "}") || literal.empty()) {
    return counts;
  }
  for (absl::string_view part : absl::StrSplit(literal, ',')) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(part, &n)) return {};
    counts.push_back(n);
  }
  return counts;
}

}  // namespace

absl::Span<const int64_t> LatencyBoundsUs() { return kLatencyBoundsUs; }

int LatencyBucket(int64_t duration_us) {
  return static_cast<int>(std::upper_bound(kLatencyBoundsUs.begin(),
                                           kLatencyBoundsUs.end(),
                                           duration_us) -
                          kLatencyBoundsUs.begin());
}

double LatencyPercentileMs(absl::Span<const int64_t> histogram, double q) {
  // Counts past the last bucket (a histogram longer than the bounds) go in
  // the last one.
  const size_t buckets =
      std::min(histogram.size(), kLatencyBoundsUs.size() + 1);
  int64_t total = 0;
  for (int64_t n : histogram) total += std::max<int64_t>(n, 0);
  if (total == 0) return 0;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  double below = 0;
  for (size_t k = 0; k < buckets; ++k) {
    const int64_t n = std::max<int64_t>(histogram[k], 0);
    if (n == 0) continue;
    const double lower =
        k == 0 ? 0.0 : static_cast<double>(kLatencyBoundsUs[k - 1]);
    if (k == kLatencyBoundsUs.size()) return lower / 1000.0;  // unbounded
    if (below + static_cast<double>(n) >= rank) {
      const double upper = static_cast<double>(kLatencyBoundsUs[k]);
      const double within =
          std::max(rank - below, 0.0) / static_cast<double>(n);
      return (lower + within * (upper - lower)) / 1000.0;
    }
    below += static_cast<double>(n);
  }
  return static_cast<double>(kLatencyBoundsUs.back()) / 1000.0;
}

absl::Duration StatsSpan(absl::Duration window) {
  return window <= absl::Hours(6) ? absl::Seconds(kMinute)
                                  : absl::Seconds(kHour);
}

std::string CountDeliveriesSql(absl::string_view rows, bool left_pending) {
  const absl::string_view minus = left_pending ? " - count(*)" : "";
  return absl::StrCat(
      "(SELECT rio_add_delivery_counts(pg_backend_pid(), array_agg(h), "
      "array_agg(t), "
      "array_agg(p), array_agg(s), array_agg(f), array_agg(c)) FROM (SELECT "
      "handler_id AS h, create_time AS t, count(*) FILTER (WHERE status = "
      "'PENDING')",
      minus,
      " AS p, count(*) FILTER (WHERE status = 'SUCCEEDED') AS s, count(*) "
      "FILTER (WHERE status = 'FAILED') AS f, count(*) FILTER (WHERE status "
      "= 'CANCELLED') AS c FROM ",
      rows, " GROUP BY 1, 2) AS g HAVING count(*) > 0)");
}

void AttemptTally::Add(absl::string_view handler_id, absl::Time start,
                       int64_t duration_us, bool responded, bool failed) {
  for (int span : {kMinute, kHour}) {
    Counts& c = rows_[{std::string(handler_id), span, SpanStart(start, span)}];
    if (c.latency.empty()) c.latency.assign(kLatencyBoundsUs.size() + 1, 0);
    ++c.attempts;
    if (failed) ++c.failed;
    if (responded) ++c.latency[LatencyBucket(duration_us)];
  }
}

absl::Status AttemptTally::Write(PgConnection& conn) const {
  if (rows_.empty()) return absl::OkStatus();
  PgArray handlers, spans, starts, attempts, failed, latency;
  for (const auto& [key, c] : rows_) {
    handlers.Add(std::get<0>(key));
    spans.Add(int64_t{std::get<1>(key)});
    starts.Add(std::get<2>(key));
    attempts.Add(c.attempts);
    failed.Add(c.failed);
    latency.Add(absl::StrCat("{", absl::StrJoin(c.latency, ","), "}"));
  }
  return conn
      .ExecPrepared(
          "INSERT INTO attempt_counts AS c (handler_id, span, start_time, "
          "shard, attempts, failed, latency) "
          "SELECT u.h, u.sp, to_timestamp(u.st), pg_backend_pid(), u.n, "
          "u.f, u.l::bigint[] FROM unnest($1::uuid[], $2::int[], "
          "$3::bigint[], $4::bigint[], $5::bigint[], $6::text[]) AS u(h, sp, "
          "st, n, f, l) "
          "WHERE EXISTS (SELECT 1 FROM handlers WHERE id = u.h) "
          "ORDER BY u.h, u.sp, u.st "
          "ON CONFLICT (handler_id, span, start_time, shard) DO UPDATE SET "
          "attempts = c.attempts + excluded.attempts, failed = c.failed + "
          "excluded.failed, latency = rio_add_counts(c.latency, "
          "excluded.latency)",
          {std::move(handlers).Finish(), std::move(spans).Finish(),
           std::move(starts).Finish(), std::move(attempts).Finish(),
           std::move(failed).Finish(), std::move(latency).Finish()})
      .status();
}

absl::StatusOr<HandlerStatsRows> ReadHandlerStats(PgConnection& conn,
                                                  const std::string& handler_id,
                                                  absl::Duration window,
                                                  absl::Duration bucket) {
  const int64_t span = absl::ToInt64Seconds(StatsSpan(window));
  const int64_t align =
      bucket > absl::ZeroDuration() ? absl::ToInt64Seconds(bucket) : span;
  const std::string window_us = absl::StrCat(
      absl::ToInt64Microseconds(absl::Ceil(window, absl::Microseconds(1))));
  // $1 handler, $2 span, $3 window in microseconds, $4 alignment in seconds.
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(
          "WITH w AS (SELECT rio_span_start(now() - $3::bigint * interval '1 "
          "microsecond', $4::int) AS since), "
          "dc AS (SELECT coalesce(sum(pending), 0) AS p, "
          "coalesce(sum(succeeded), 0) AS s, coalesce(sum(failed), 0) AS f, "
          "coalesce(sum(cancelled), 0) AS c FROM delivery_counts, w WHERE "
          "handler_id = $1::uuid AND span = $2::int AND start_time >= "
          "w.since), "
          "ac AS (SELECT coalesce(sum(attempts), 0) AS n, "
          "coalesce(sum(failed), 0) AS f FROM attempt_counts, w WHERE "
          "handler_id = $1::uuid AND span = $2::int AND start_time >= "
          "w.since), "
          "lat AS (SELECT u.i, sum(u.x) AS x FROM attempt_counts a "
          "CROSS JOIN w CROSS JOIN unnest(a.latency) WITH ORDINALITY AS "
          "u(x, i) WHERE a.handler_id = $1::uuid AND a.span = $2::int AND "
          "a.start_time >= w.since GROUP BY u.i) "
          "SELECT h.enabled, h.disabled_reason, "
          "coalesce(hh.consecutive_failures, 0), dc.p, dc.s, dc.f, dc.c, "
          "ac.n, ac.f, (SELECT coalesce(array_agg(x ORDER BY i), '{}') FROM "
          "lat)::text, (extract(epoch FROM w.since) * 1e6)::bigint, "
          "(extract(epoch FROM now()) * 1e6)::bigint "
          "FROM handlers h LEFT JOIN handler_health hh ON hh.handler_id = "
          "h.id CROSS JOIN dc CROSS JOIN ac CROSS JOIN w WHERE h.id = $1::uuid",
          {handler_id, absl::StrCat(span), window_us, absl::StrCat(align)}));
  if (r.rows() == 0) {
    return absl::NotFoundError(
        absl::StrCat("handler \"", handler_id, "\" not found"));
  }
  HandlerStatsRows stats;
  stats.enabled = r.GetBool(0, 0);
  stats.disabled_reason = std::string(r.Get(0, 1));
  stats.consecutive_failures = r.GetInt64(0, 2);
  stats.total.pending = r.GetInt64(0, 3);
  stats.total.succeeded = r.GetInt64(0, 4);
  stats.total.failed = r.GetInt64(0, 5);
  stats.total.cancelled = r.GetInt64(0, 6);
  stats.total.attempts = r.GetInt64(0, 7);
  stats.total.failed_attempts = r.GetInt64(0, 8);
  stats.latency = ParseCounts(r.Get(0, 9));
  stats.since = absl::FromUnixMicros(r.GetInt64(0, 10));
  const absl::Time now = absl::FromUnixMicros(r.GetInt64(0, 11));
  if (bucket <= absl::ZeroDuration()) return stats;

  for (absl::Time t = stats.since; t <= now; t += bucket) {
    stats.buckets.push_back({t, StatsCounts{}});
  }
  RIO_ASSIGN_OR_RETURN(
      PgResult b,
      conn.Exec(
          "SELECT 'd', extract(epoch FROM rio_span_start(start_time, "
          "$4::int))::bigint AS b, sum(pending), sum(succeeded), sum(failed), "
          "sum(cancelled) FROM delivery_counts WHERE handler_id = $1::uuid "
          "AND span = $2::int AND start_time >= to_timestamp($3::bigint / "
          "1e6) GROUP BY b "
          "UNION ALL "
          "SELECT 'a', extract(epoch FROM rio_span_start(start_time, "
          "$4::int))::bigint AS b, sum(attempts), sum(failed), 0, 0 FROM "
          "attempt_counts WHERE handler_id = $1::uuid AND span = $2::int AND "
          "start_time >= to_timestamp($3::bigint / 1e6) GROUP BY b",
          {handler_id, absl::StrCat(span),
           absl::StrCat(absl::ToUnixMicros(stats.since)),
           absl::StrCat(align)}));
  for (int i = 0; i < b.rows(); ++i) {
    const int64_t index =
        (b.GetInt64(i, 1) - absl::ToUnixSeconds(stats.since)) / align;
    if (index < 0 || index >= static_cast<int64_t>(stats.buckets.size())) {
      continue;  // counted after `now` was read
    }
    StatsCounts& c = stats.buckets[index].second;
    if (b.Get(i, 0) == "d") {
      c.pending = b.GetInt64(i, 2);
      c.succeeded = b.GetInt64(i, 3);
      c.failed = b.GetInt64(i, 4);
      c.cancelled = b.GetInt64(i, 5);
    } else {
      c.attempts = b.GetInt64(i, 2);
      c.failed_attempts = b.GetInt64(i, 3);
    }
  }
  return stats;
}

absl::StatusOr<int64_t> PruneStats(PgConnection& conn) {
  int64_t deleted = 0;
  for (const char* table : {"delivery_counts", "attempt_counts"}) {
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec(absl::StrCat(
            "DELETE FROM ", table,
            " WHERE (span = 60 AND start_time < now() - interval '7 hours') "
            "OR (span = 3600 AND start_time < now() - interval '90 days 1 "
            "hour')")));
    deleted += r.affected();
  }
  return deleted;
}

}  // namespace rio::store
