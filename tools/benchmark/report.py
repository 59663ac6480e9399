#!/usr/bin/python3
"""Turns the results.json of bench.py into docs/benchmarks.md and its plots.

Usage: report.py RESULTS_JSON OUT_DIR
Writes OUT_DIR/benchmarks.md, OUT_DIR/bench-throughput.png,
OUT_DIR/bench-latency.png and OUT_DIR/bench-growth.png.
"""

import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def values(results, key, metric):
    return [r[metric] for r in results["runs"].get(key, []) if metric in r]


def median(vs):
    return statistics.median(vs) if vs else None


def fmt(v, unit):
    if v is None:
        return "–"
    if unit in ("/s", "req/s", "deliveries/s", "events/s"):
        return f"{v:,.0f}"
    if unit == "ms":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"
    if unit == "×":
        return f"{v:.2f}"
    if unit == "bytes":
        return f"{v:,.0f}"
    if unit in ("events", "requests"):
        return f"{v:,.0f}" if v >= 100 or float(v).is_integer() else f"{v:,.1f}"
    if unit in ("µs", "MB", "s"):
        return f"{v:.1f}" if v < 100 else f"{v:,.0f}"
    return f"{v:g}"


class Row:
    """One figure of the table."""

    def __init__(self, scenario, label, key, metric, unit, ceiling=None,
                 target=None):
        self.scenario, self.label, self.key, self.metric = scenario, label, key, metric
        self.unit = unit
        # ceiling: (key, metric) of the same figure without Rio, or a callable
        # results -> value.
        self.ceiling = ceiling
        # target: (text, check(value, results) -> bool)
        self.target = target


def ceiling_value(results, ceiling):
    if ceiling is None:
        return None
    if callable(ceiling):
        return ceiling(results)
    return median(values(results, *ceiling))


def rows_for(results):
    meta = results["meta"]
    rates = meta["sizes"]["latency_rates"]
    ceil_rps = ("ceiling", "rps")
    ceiling_conc = meta.get("ceiling_concurrency", 32)

    def at_least(n):
        return (f"≥ {n:,}", lambda v, r: v >= n)

    def at_most(n, unit):
        return (f"≤ {n:g} {unit}", lambda v, r: v <= n)

    def drain1_target():
        def check(v, r):
            c = median(values(r, "ceiling", "rps"))
            return v >= 20000 and (c is None or v >= 0.25 * c)
        return ("≥ 20,000 and ≥ 0.25× ceiling", check)

    rows = [
        Row("Ceiling", f"libcurl multi → receiver, {ceiling_conc} keep-alive "
            "connections, no Rio", "ceiling", "rps", "req/s", ceil_rps),
        Row("Drain", "fan-out 1: deliveries/s, first emit → last arrival",
            "drain_fo1", "deliveries_per_s", "deliveries/s", ceil_rps,
            drain1_target()),
        Row("Drain", "fan-out 10: deliveries/s", "drain_fo10", "deliveries_per_s",
            "deliveries/s", ceil_rps, at_least(30000)),
        Row("Drain", "fan-out 100: deliveries/s", "drain_fo100", "deliveries_per_s",
            "deliveries/s", ceil_rps),
        Row("Ingest", "Emit, 64 concurrent unary calls, no handlers: durable acks/s",
            "ingest_unary", "events_per_s", "events/s", ceil_rps, at_least(20000)),
        Row("Ingest", "EmitBatch of 100, 8 calls outstanding: durable events/s",
            "ingest_batch", "events_per_s", "events/s", ceil_rps, at_least(80000)),
    ]
    for rate in rates:
        for p, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"),
                         ("max_ms", "max")):
            target = None
            if rate == 1000 and p == "p50_ms":
                target = at_most(2, "ms")
            if rate == 1000 and p == "p99_ms":
                target = at_most(10, "ms")
            rows.append(Row("Latency", f"{rate:,} events/s, emit → arrival: {label}",
                            f"latency_{rate}", p, "ms",
                            (f"ceiling_rate_{rate}", p), target))

    for rate in rates:
        for p, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            rows.append(Row("Latency floor", f"{rate:,}/s: one durable INSERT + COMMIT "
                            f"round trip (pgbench, same PostgreSQL): {label}",
                            f"commit_rate_{rate}", p, "ms"))

    iso_rate = meta["sizes"]["isolation_rate"]
    iso_ceiling = f"ceiling_rate_{iso_rate}"
    rows += [
        Row("Isolation", f"{iso_rate:,} events/s, healthy handler beside one that "
            "never answers: p50", "isolation", "p50_ms", "ms", (iso_ceiling, "p50_ms")),
        Row("Isolation", "healthy handler: p99", "isolation", "p99_ms", "ms",
            (iso_ceiling, "p99_ms")),
        Row("Isolation", "healthy handler: max", "isolation", "max_ms", "ms",
            (iso_ceiling, "max_ms")),
        Row("Isolation", f"healthy handler's p99 ÷ its p99 alone (latency run at "
            f"{iso_rate:,}/s, same round)", "isolation", "p99_vs_alone", "×",
            None, ("≤ 2×", lambda v, r: v <= 2)),
    ]

    def backlog_ceiling(r):
        c = median(values(r, "ceiling", "rps"))
        n = median(values(r, "backlog", "backlog_deliveries"))
        return n / c if c and n is not None else None

    rows += [
        Row("Backlog", f"receiver down {meta['sizes']['backlog_down_s']} s under "
            f"{meta['sizes']['backlog_rate']:,} events/s: deliveries held back",
            "backlog", "backlog_deliveries", "deliveries"),
        Row("Backlog", "time from the receiver's return until all of them arrived",
            "backlog", "backlog_s", "s", backlog_ceiling),
    ]
    rows += [
        Row("Durability", "SIGKILL of rio-server a third into a fan-out-1 drain, "
            "restarted on the same database: acknowledged events", "kill",
            "acknowledged", "events"),
        Row("Durability", "acknowledged events that never arrived", "kill", "lost",
            "events", None, ("0", lambda v, r: v == 0)),
        Row("Durability", "sent twice (in flight or unrecorded at the kill)", "kill",
            "duplicates", "requests"),
        Row("Durability", "time from the kill until the last acknowledged event "
            "arrived (restart, 2 s lease)", "kill", "recovery_s", "s"),
    ]
    ceil_cpu = ("ceiling", "cpu_us_per_request")

    def flat_target():
        def check(v, r):
            base = median(values(r, "drain_fo1", "cpu_us_per_delivery"))
            return base is not None and 0.75 * base <= v <= 1.25 * base
        return ("within ±25 % of fan-out 1", check)

    for fo in (1, 10, 100):
        rows.append(Row("Growth", f"fan-out {fo}: rio-server CPU per delivery",
                        f"drain_fo{fo}", "cpu_us_per_delivery", "µs", ceil_cpu,
                        flat_target() if fo != 1 else None))
    for fo in (1, 10, 100):
        rows.append(Row("Growth", f"fan-out {fo}: PostgreSQL CPU per delivery",
                        f"drain_fo{fo}", "pg_cpu_us_per_delivery", "µs"))
    for fo in (1, 10, 100):
        rows.append(Row("Growth", f"fan-out {fo}: WAL bytes per delivery",
                        f"drain_fo{fo}", "wal_bytes_per_delivery", "bytes"))
    for key, label in (("ingest_unary", "Emit"), ("ingest_batch", "EmitBatch")):
        rows += [
            Row("Ingest detail", f"{label}: ack latency p50 (send → durable ack)",
                key, "ack_p50_ms", "ms"),
            Row("Ingest detail", f"{label}: ack latency p99", key, "ack_p99_ms", "ms"),
            Row("Ingest detail", f"{label}: events per PostgreSQL commit (group size)",
                key, "events_per_commit", "events"),
            Row("Ingest detail", f"{label}: rio-server CPU per event", key,
                "cpu_us_per_event", "µs"),
            Row("Ingest detail", f"{label}: PostgreSQL CPU per event", key,
                "pg_cpu_us_per_event", "µs"),
            Row("Ingest detail", f"{label}: WAL bytes per event", key,
                "wal_bytes_per_event", "bytes"),
        ]
    rss_keys = [("drain_fo1", "drain, fan-out 1"), ("drain_fo10", "drain, fan-out 10"),
                ("drain_fo100", "drain, fan-out 100"), ("ingest_unary", "ingest, unary"),
                ("ingest_batch", "ingest, batch")]
    rss_keys += [(f"latency_{r}", f"latency, {r:,}/s") for r in rates]
    rss_keys += [("isolation", "isolation"), ("backlog", "backlog")]
    for key, label in rss_keys:
        rows.append(Row("Peak RSS", f"rio-server VmHWM: {label}", key, "rss_mb", "MB",
                        ("ceiling", "rss_mb"), at_most(150, "MB")))
    return [r for r in rows if values(results, r.key, r.metric)]


def table(results):
    lines = ["| Scenario | Figure | Median | Min–max | Ceiling | Rio ÷ ceiling | "
             "Target | Met |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    incomplete = set()
    for row in rows_for(results):
        vs = values(results, row.key, row.metric)
        m = median(vs)
        c = ceiling_value(results, row.ceiling)
        ratio = "–"
        if c and m is not None:
            q = m / c
            ratio = f"{q:.2f}×" if q < 10 else f"{q:,.0f}×"
        if row.key == "ceiling":
            ratio = "1.00×"
            c = m
        met = ""
        target = ""
        if row.target:
            target = row.target[0]
            met = "yes" if row.target[1](m, results) else "**no**"
        unit = "" if row.unit in ("deliveries", "events") else f" {row.unit}"
        unit = " B" if row.unit == "bytes" else unit
        unit = "×" if row.unit == "×" else unit
        runs = results["runs"].get(row.key, [])
        if any(r.get("delivered", 0) < r.get("expected", 0) for r in runs):
            unit += " †"
            incomplete.add(row.key)
        lines.append(
            f"| {row.scenario} | {row.label} | {fmt(m, row.unit)}{unit} | "
            f"{fmt(min(vs), row.unit)}–{fmt(max(vs), row.unit)} | "
            f"{fmt(c, row.unit)} | {ratio} | {target} | {met} |")
    if incomplete:
        lines += ["", "† Not every delivery had arrived when the run's time limit "
                  f"ended it ({', '.join(sorted(incomplete))}): the figure counts "
                  "what did arrive; see the anomalies below."]
    return "\n".join(lines)


def plot_throughput(results, path):
    bars = [("ceiling\n(no Rio)", "ceiling", "rps"),
            ("drain\nfan-out 1", "drain_fo1", "deliveries_per_s"),
            ("drain\nfan-out 10", "drain_fo10", "deliveries_per_s"),
            ("drain\nfan-out 100", "drain_fo100", "deliveries_per_s"),
            ("ingest\nunary", "ingest_unary", "events_per_s"),
            ("ingest\nbatch 100", "ingest_batch", "events_per_s")]
    targets = {"drain_fo1": 20000, "drain_fo10": 30000, "ingest_unary": 20000,
               "ingest_batch": 80000}
    bars = [b for b in bars if values(results, b[1], b[2])]
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = range(len(bars))
    meds, lo, hi = [], [], []
    for _label, key, metric in bars:
        vs = values(results, key, metric)
        m = median(vs)
        meds.append(m)
        lo.append(m - min(vs))
        hi.append(max(vs) - m)
    colors = ["#888888" if b[1] == "ceiling" else "#2f6db5" for b in bars]
    ax.bar(xs, meds, yerr=[lo, hi], capsize=4, color=colors)
    for x, (_label, key, _metric), m in zip(xs, bars, meds):
        ax.annotate(f"{m:,.0f}", (x, m), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
        if key in targets:
            ax.plot([x - 0.4, x + 0.4], [targets[key]] * 2, color="#c0392b",
                    linestyle="--", linewidth=1.5)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([b[0] for b in bars])
    ax.set_ylabel("per second (deliveries, events or requests)")
    ax.set_title("Throughput: median of runs, bars = min–max, dashed red = target")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_latency(results, path):
    rates = [r for r in results["meta"]["sizes"]["latency_rates"]
             if values(results, f"latency_{r}", "p50_ms")]
    if not rates:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.5))
    styles = [("p50_ms", "p50", "#2f6db5"), ("p90_ms", "p90", "#27ae60"),
              ("p99_ms", "p99", "#e67e22"), ("max_ms", "max", "#c0392b")]
    for metric, label, color in styles:
        rio = [median(values(results, f"latency_{r}", metric)) for r in rates]
        ax.plot(rates, rio, marker="o", color=color, label=f"Rio {label}")
        ceil = [median(values(results, f"ceiling_rate_{r}", metric)) for r in rates]
        if all(c is not None for c in ceil):
            ax.plot(rates, ceil, marker=".", color=color, linestyle=":",
                    label=f"no Rio {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(rates)
    ax.set_xticklabels([f"{r:,}" for r in rates])
    ax.set_xlabel("events per second (fan-out 1)")
    ax.set_ylabel("emit → arrival at the receiver (ms)")
    ax.set_title("Latency percentiles vs rate (median of runs)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_growth(results, path):
    fos = [fo for fo in (1, 10, 100)
           if values(results, f"drain_fo{fo}", "cpu_us_per_delivery")]
    if not fos:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    rio = [median(values(results, f"drain_fo{fo}", "cpu_us_per_delivery")) for fo in fos]
    pg = [median(values(results, f"drain_fo{fo}", "pg_cpu_us_per_delivery")) for fo in fos]
    ax1.plot(fos, rio, marker="o", label="rio-server")
    ax1.plot(fos, pg, marker="s", label="PostgreSQL")
    c = median(values(results, "ceiling", "cpu_us_per_request"))
    if c:
        ax1.axhline(c, color="#888888", linestyle=":", label="libcurl client, no Rio")
    ax1.set_xscale("log")
    ax1.set_xticks(fos)
    ax1.set_xticklabels([str(f) for f in fos])
    ax1.set_xlabel("fan-out (handlers per event)")
    ax1.set_ylabel("CPU µs per delivery")
    ax1.set_ylim(bottom=0)
    ax1.set_title("CPU per delivery vs fan-out")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    keys = [k for k in results["runs"] if not k.startswith("ceiling")
            and values(results, k, "rss_mb")]
    rss = [median(values(results, k, "rss_mb")) for k in keys]
    ax2.barh(range(len(keys)), rss, color="#2f6db5")
    ax2.axvline(150, color="#c0392b", linestyle="--", label="target 150 MB")
    ax2.set_yticks(range(len(keys)))
    ax2.set_yticklabels(keys, fontsize=8)
    ax2.set_xlabel("rio-server peak RSS (MB)")
    ax2.set_title("Peak RSS per scenario")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def notes(results):
    """Completeness problems and the busiest server threads, per scenario."""
    out = []
    for key, runs in sorted(results["runs"].items()):
        for i, r in enumerate(runs, 1):
            problems = []
            if "expected" in r and "delivered" in r and r["delivered"] < r["expected"]:
                problems.append(f"{r['expected'] - r['delivered']:,} of "
                                f"{r['expected']:,} deliveries missing at the end")
            # A kill is expected to resend what was in flight and to fail
            # the emits made while rio-server was down (never acknowledged).
            expected_losses = key == "kill"
            if r.get("duplicates") and not expected_losses:
                problems.append(f"{r['duplicates']:,} duplicate requests")
            if r.get("missing"):
                problems.append(f"{r['missing']:,} held-back deliveries never arrived")
            if r.get("failed_events") and not expected_losses:
                problems.append(f"{r['failed_events']:,} emits failed")
            if r.get("load_max_lag_ms", 0) > 50:
                problems.append(f"load generator fell {r['load_max_lag_ms']:.0f} ms "
                                "behind its schedule")
            if problems:
                out.append(f"- {key} run {i}: " + "; ".join(problems))
    threads = []
    for key, runs in sorted(results["runs"].items()):
        if runs and runs[-1].get("threads"):
            t = ", ".join(f"{name} {cpu:.2f} s" for name, cpu in
                          sorted(runs[-1]["threads"].items(), key=lambda x: -x[1]))
            threads.append(f"| {key} | {runs[-1].get('wall_s', 0):.1f} s | {t} |")
    return out, threads


def budget(results):
    """Rows of the CPU budget: what every process spent per delivery (or per
    event), and the rate that budget allows when the machine's cores do
    nothing else."""
    cores = results["meta"]["cores"]
    rows = []
    for key, label, per, target in (
            ("drain_fo1", "Drain, fan-out 1", "delivery", 20000),
            ("drain_fo10", "Drain, fan-out 10", "delivery", 30000),
            ("ingest_unary", "Ingest, unary Emit", "event", 20000),
            ("ingest_batch", "Ingest, EmitBatch of 100", "event", 80000)):
        suffix = "per_delivery" if per == "delivery" else "per_event"
        parts = [median(values(results, key, f"cpu_us_{suffix}")),
                 median(values(results, key, f"pg_cpu_us_{suffix}")),
                 median(values(results, key, f"receiver_cpu_us_{suffix}"))
                 if per == "delivery" else 0.0,
                 median(values(results, key, f"load_cpu_us_{suffix}"))]
        if any(v is None for v in parts):
            continue
        total = sum(parts)
        measured = median(values(results, key, "deliveries_per_s" if per ==
                                 "delivery" else "events_per_s"))
        allowed = cores * 1e6 / total if total > 0 else 0.0
        rows.append(f"| {label} | " + " | ".join(fmt(v, "µs") for v in parts) +
                    f" | {fmt(total, 'µs')} | {allowed:,.0f}/s | "
                    f"{measured:,.0f}/s | {target:,}/s |")
    if not rows:
        return []
    return [
        "## The CPU budget", "",
        f"CPU time per {'delivery (drain) or event (ingest)'} of every process on the "
        f"machine, medians of the runs above, and the most that budget allows on "
        f"{cores} cores if they did nothing else (cores × 1 s ÷ total). A target "
        "above that bound cannot be met by tuning the order of work; only by "
        "spending less CPU per delivery somewhere in the column.", "",
        "| Scenario | rio-server µs | PostgreSQL µs | receiver µs | load generator µs "
        "| total µs | bound | measured | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows, ""]


def history(results):
    """The history scenario (tools/bench --only history), when it ran: what an
    operator's reads cost on a database of millions of deliveries."""
    runs = results["runs"].get("history")
    if not runs:
        return []
    m = runs[-1]
    names = [
        ("stats_1h_ms", "GetHandlerStats, 1 h"),
        ("stats_6h_ms", "GetHandlerStats, 6 h"),
        ("stats_24h_ms", "GetHandlerStats, 24 h"),
        ("stats_30d_ms", "GetHandlerStats, 30 days"),
        ("stats_90d_ms", "GetHandlerStats, 90 days"),
        ("stats_1h_by_5m_ms", "GetHandlerStats, 1 h in 5-minute buckets (the dashboard's chart)"),
        ("stats_30d_by_1d_ms", "GetHandlerStats, 30 days in 1-day buckets"),
    ]
    for status in ("any", "pending", "succeeded", "failed", "cancelled", "failing"):
        names.append((f"list_{status}_ms", f"ListDeliveries, status {status.upper()}"))
        names.append((f"list_{status}_handler_ms",
                      f"ListDeliveries, status {status.upper()}, one handler"))
    names += [
        ("list_event_ms", "ListDeliveries, one event"),
        ("list_day_ms", "ListDeliveries, one day 15 days ago"),
        ("list_failed_day_ms", "ListDeliveries, FAILED in that day"),
        ("list_page_2_ms", "ListDeliveries, second page"),
        ("list_messages_ms", "ListMessages"),
    ]
    out = ["## Reads over a large history", "",
           f"`tools/bench --only history` (Rio {m.get('rio_version', '?')}): "
           f"{m['messages']:,} messages and "
           f"{m['deliveries']:,} deliveries over 30 days to "
           "10 handlers (97% succeeded, 2% failed, 0.5% pending, 0.5% cancelled), "
           f"filled in through SQL in {m['fill_s']} s and counted into the "
           "per-handler counters; then each call's median of 5 after a warm-up, "
           "through gRPC. Target: at most 50 ms each.", "",
           "| call | ms |", "|---|---:|"]
    for key, label in names:
        if key in m:
            out.append(f"| {label} | {m[key]:.1f} |")
    return out + [""]


def retention(results):
    """The retention scenario (tools/bench --only retention), when it ran: the
    hot path's latency while retention drops partitions, and what each drop
    cost against its size."""
    runs = results["runs"]
    if not runs.get("retention_kept") or not runs.get("retention_dropping"):
        return []
    kept, dropping = runs["retention_kept"][-1], runs["retention_dropping"][-1]
    out = ["## Retention over a large history", "",
           "`tools/bench --only retention`: 24 hours of history (messages with one "
           "delivery and one attempt each, filled in through SQL, more in later "
           "hours) in partitions of an hour; then the same unary load, 2,000 "
           "events/s for a minute, once on a server that keeps everything and once "
           "with `--retention=12h`, whose retention drops the partitions older than 12 "
           "hours while the load runs. Latency is emit → arrival at the receiver.", "",
           "| run | p50 ms | p99 ms | max ms | delivered |", "|---|---:|---:|---:|---:|"]
    dropped = dropping.get("partitions_dropped", 0)
    for label, m in (("keeps everything", kept), (f"drops {dropped} partitions", dropping)):
        out.append(f"| {label} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | "
                   f"{m['max_ms']:.1f} | {m['delivered']:,} |")
    during = dropping.get("during_drops")
    if during:
        out.append(f"| events sent while dropping (±1 s) | {during['p50_ms']:.1f} | "
                   f"{during['p99_ms']:.1f} | {during['max_ms']:.1f} | "
                   f"{during.get('samples', 0):,} (sent) |")
    out += ["", "A drop detaches each table concurrently and then drops it: it takes no "
            "lock that emits, deliveries or reads wait for, and most of its time is "
            "waiting for the transactions that were using the partition to end.", "",
            "| partition's rows (messages + deliveries + attempts) | drop ms, waiting "
            "included |", "|---:|---:|"]
    for rows, ms in sorted(zip(dropping.get("drop_rows", []), dropping.get("drop_ms", []))):
        out.append(f"| {rows:,} | {ms:.1f} |")
    return out + [""]


def markdown(results, pngs):
    meta = results["meta"]
    quick = meta["profile"] != "full"
    s = meta["sizes"]
    curl_parts = meta.get("curl_version", "libcurl ?").split()
    curl = curl_parts[0] + (f" ({curl_parts[1]})" if len(curl_parts) > 1 else "")
    out = ["# Rio benchmarks", ""]
    out.append("Generated by `tools/bench` "
               f"({'--' + meta['profile'] if quick else 'full run'}) on "
               f"{meta['date']}; do not edit by hand.")
    out.append("")
    if quick:
        out += ["> **This is a smoke run** (`--quick`/`--smoke`: one run, small "
                "counts, short durations). Its numbers are noisy and not "
                "comparable with a full run; run `tools/bench` on a quiet machine "
                "to publish.", ""]
    out += [
        "## Machine and versions", "",
        f"- {meta['cores']} cores, {meta['cpu_model']}, {meta.get('memory_gib', '?')} "
        f"GiB, Linux {meta['kernel']}; Rio, PostgreSQL, the receiver and the load "
        "generator all share it.",
        f"- Rio {meta.get('rio_version', '?')} (Release build), PostgreSQL "
        f"{meta['postgresql']}, {curl}, "
        f"gRPC {meta.get('grpc_version', '?')}.",
        "- PostgreSQL settings: " + ", ".join(f"{k}={v}" for k, v in
                                                  meta["pg_settings"].items()) +
        " (durable: every acknowledged emit is fsynced).",
        f"- {meta['runs']} run(s) per figure; the table gives the median and the "
        f"range. The whole benchmark took {meta.get('elapsed_s', 0) / 60:.1f} min.",
        "",
    ]
    if meta.get("carried_over"):
        out += [f"> Run with `--only`: the results of "
                f"{', '.join(meta['carried_over'])} are carried over from the run of "
                f"{meta.get('carried_over_from')}.", ""]
    out += [
        "## Results", "",
        table(results), "",
        "**Ceiling** is the same machine with no Rio in between: `rio-bench-ceiling` "
        "(libcurl multi) posts the same body with headers of the same shape to the "
        "same receiver. For throughput it runs flat out; for latency it sends at "
        "the same fixed rates and is measured the same way (send → arrival); for "
        "CPU and RSS it is the client process's own; for the backlog it is the "
        "time the ceiling would need to deliver the same number of requests. "
        "**Rio ÷ ceiling** above 1 means slower (latency, CPU, memory) and below 1 "
        "means less throughput.", "",
    ]
    for name, title in (("bench-throughput.png", "Throughput"),
                        ("bench-latency.png", "Latency"),
                        ("bench-growth.png", "Growth")):
        if name in pngs:
            out += [f"![{title}]({name})", ""]
    out += budget(results)
    profiles = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "profiles.md")
    if os.path.exists(profiles):
        with open(profiles) as f:
            out += [f.read().rstrip(), ""]
    out += history(results)
    out += retention(results)
    problems, threads = notes(results)
    drain = {int(k): v for k, v in s["drain_events"].items()}
    out += ["## How it is measured", "",
            "`tools/bench` installs what is missing, builds the Release tree, starts "
            "a private PostgreSQL cluster with durable settings and runs every "
            "scenario with a fresh database, a fresh `rio-server` (default flags "
            "unless said) and a fresh `rio-bench-receiver` (an epoll HTTP/1.1 "
            "server that answers 200 at once and records the arrival time and "
            "`webhook-id` of every request). `rio-bench-load` is an async gRPC "
            "client (one completion queue, many calls outstanding) that creates a "
            "project, a sender and JSON handlers, then emits; every event carries "
            "an idempotency key, as the SDKs send. Latency is the receiver's "
            "arrival time minus the load generator's send time (CLOCK_REALTIME, "
            "same machine), joined on `webhook-id`; the first "
            f"{s['warmup_s']} s of each fixed-rate run is warm-up and not counted.",
            "",
            f"- **Drain**: {drain[1]:,} events with fan-out 1, {drain[10]:,} with "
            f"fan-out 10 and {drain[100]:,} with fan-out 100, emitted as fast as "
            "possible with EmitBatch of 100 (4 calls outstanding); deliveries/s = "
            "distinct deliveries ÷ (last arrival − first emit).",
            f"- **Ingest**: no handlers; {s['ingest_seconds']} s of Emit with 64 "
            "calls outstanding, then of EmitBatch (100 events, 8 outstanding); "
            "acknowledged events ÷ (last ack − first send).",
            f"- **Latency**: Emit at a fixed rate for {s['latency_seconds']} s, one "
            "handler.",
            f"- **Isolation**: {s['isolation_rate']:,} events/s for "
            f"{s['isolation_seconds']} s to two handlers of the event; one of them "
            "never answers (15 s timeout). \"Alone\" is the latency run at the same "
            "rate.",
            f"- **Backlog**: {s['backlog_rate']:,} events/s; after "
            f"{s['backlog_before_s']} s the receiver closes every connection and "
            f"stops listening for {s['backlog_down_s']} s; rio-server runs with "
            f"`--retry_schedule={s['backlog_schedule']}`. The figure is the time from "
            "its return until every delivery of a message emitted before then has "
            "arrived: it is bounded below by the retry schedule (the next retry "
            "after the return), not by Rio's throughput.",
            f"- **Durability**: the fan-out-1 drain ({s['kill_events']:,} events, EmitBatch of "
            "100, 4 outstanding); once a third of the deliveries arrived, rio-server "
            "gets SIGKILL, then a new one starts on the same database (both with "
            "`--lease_timeout=2s`). Every event the load generator saw acknowledged "
            "must reach the receiver; duplicates are the at-least-once cost of the "
            "calls in flight or not yet recorded at the kill.",
            "- **Growth**: the drain runs; CPU = utime + stime of rio-server "
            "(/proc/PID/stat) from the first emit until it is idle after the last "
            "arrival, ÷ deliveries; PostgreSQL's is that of the postmaster and all "
            "its backends. Peak RSS = VmHWM of rio-server at the end of each run.",
            ""]
    if problems:
        out += ["## Anomalies seen in this run", ""] + problems + [""]
    if threads:
        out += ["## Where rio-server's CPU went (last run of each scenario)", "",
                "CPU seconds of the four busiest threads during the run (from the "
                "first emit until rio-server was idle after the last arrival), named "
                "by the first rio:: function on their stack: a thread whose CPU time "
                "nears the wall time is the bottleneck.", "",
                "| scenario | wall time | busiest threads (CPU time) |",
                "|---|---:|---|"] + threads + [""]
    out += ["## Reproduce", "",
            "```sh",
            "tools/bench            # full run, ~25 min: writes docs/benchmarks.md and docs/bench-*.png",
            "tools/bench --quick    # ~2 min smoke run of every scenario (noisy numbers)",
            "tools/bench --only drain,latency --runs 1   # a subset",
            "```", ""]
    return "\n".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    pngs = []
    if plot_throughput(results, os.path.join(out_dir, "bench-throughput.png")):
        pngs.append("bench-throughput.png")
    if plot_latency(results, os.path.join(out_dir, "bench-latency.png")):
        pngs.append("bench-latency.png")
    if plot_growth(results, os.path.join(out_dir, "bench-growth.png")):
        pngs.append("bench-growth.png")
    path = os.path.join(out_dir, "benchmarks.md")
    with open(path, "w") as f:
        f.write(markdown(results, pngs))
    print(f"wrote {path} and {', '.join(pngs)}")


if __name__ == "__main__":
    main()
