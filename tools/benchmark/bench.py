#!/usr/bin/python3
"""Runs Rio's benchmark scenarios and saves every measurement as JSON.

tools/bench starts PostgreSQL and calls this with the build directory and the
cluster's port. Each run of each scenario gets a fresh database, a fresh
rio-server and a fresh rio-bench-receiver; the load comes from
rio-bench-load and the ceiling (no Rio in between) from rio-bench-ceiling.
Every number is printed as soon as it is measured; report.py turns the JSON
into docs/benchmarks.md and the plots.

Latency is the receiver's arrival time minus the load generator's send time,
both CLOCK_REALTIME on this machine, joined on webhook-id (= message id).
"""

import argparse
import base64
import contextlib
import ctypes
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
EVENT = "bench.event"

# Sizes of each profile. "full" is what docs/benchmarks.md publishes; "quick"
# is a ~2 minute smoke test of the whole harness; "smoke" takes under a
# minute. The *_limit_s values bound how long a run waits for deliveries
# after the load ends (a run cut short is reported as incomplete), which
# keeps a full run under ~25 minutes even when Rio is slow.
_loopback_flags = {}


def loopback_receivers(server_binary):
    """Flags letting rio-server call the receivers on 127.0.0.1 (the egress
    guard refuses loopback by default); none for builds without the guard."""
    if server_binary not in _loopback_flags:
        out = subprocess.run([server_binary, "--helpfull"], capture_output=True, text=True)
        _loopback_flags[server_binary] = (
            ["--egress_allow=127.0.0.0/8,::1/128"]
            if "--egress_allow" in out.stdout + out.stderr else [])
    return _loopback_flags[server_binary]


PROFILES = {
    "full": dict(
        runs=3, diagnostics=True,
        ceiling_seconds=5, ceiling_rate_seconds=10,
        drain_events={1: 100_000, 10: 10_000, 100: 1_000},
        drain_limit_s=45,
        ingest_seconds=10, ingest_unary_count=400_000, ingest_batch_count=2_000_000,
        latency_rates=[100, 1000, 5000], latency_seconds=20, warmup_s=1.0,
        latency_limit_s=20,
        isolation_rate=1000, isolation_seconds=20,
        backlog_rate=1000, backlog_before_s=5, backlog_down_s=30, backlog_after_s=5,
        backlog_schedule="1s,1s,2s,5s,10s,10s,10s", backlog_limit_s=60,
        kill_events=100_000, kill_limit_s=90,
    ),
    "quick": dict(
        runs=1, diagnostics=True,
        ceiling_seconds=2, ceiling_rate_seconds=2,
        drain_events={1: 10_000, 10: 1_000, 100: 100},
        drain_limit_s=20,
        ingest_seconds=3, ingest_unary_count=100_000, ingest_batch_count=500_000,
        latency_rates=[100, 1000, 5000], latency_seconds=3, warmup_s=0.5,
        latency_limit_s=8,
        isolation_rate=1000, isolation_seconds=3,
        backlog_rate=500, backlog_before_s=1, backlog_down_s=5, backlog_after_s=1,
        backlog_schedule="500ms,500ms,1s,1s,2s,2s,2s", backlog_limit_s=30,
        kill_events=20_000, kill_limit_s=60,
    ),
    "smoke": dict(
        runs=1, diagnostics=False,
        ceiling_seconds=0.5, ceiling_rate_seconds=0.5,
        drain_events={1: 500, 10: 50, 100: 5},
        drain_limit_s=15,
        ingest_seconds=0.5, ingest_unary_count=2_000, ingest_batch_count=5_000,
        latency_rates=[100, 1000], latency_seconds=0.5, warmup_s=0.1,
        latency_limit_s=5,
        isolation_rate=200, isolation_seconds=0.5,
        backlog_rate=200, backlog_before_s=0.3, backlog_down_s=1, backlog_after_s=0.3,
        backlog_schedule="200ms,200ms,500ms,500ms,1s", backlog_limit_s=15,
        kill_events=2_000, kill_limit_s=30,
    ),
}

# In the order they run. Result keys start with their scenario's name
# (drain_fo1, latency_1000, ceiling_rate_100, ...).
SCENARIOS = ["ceiling", "drain", "ingest", "latency", "isolation", "backlog",
             "kill"]
# Run only when named in --only (minutes each, and not part of the report).
ON_REQUEST = ["flood", "history", "retention"]
FLOOD_SECONDS = 60
# history: messages filled in, two deliveries each, over 30 days.
HISTORY_MESSAGES = int(os.environ.get("RIO_BENCH_HISTORY_MESSAGES", 5_000_000))
HISTORY_HANDLERS = 10
# retention: messages filled in over 24 hours (one delivery and one attempt
# each, more in later hours), then a steady unary load.
RETENTION_MESSAGES = int(os.environ.get("RIO_BENCH_RETENTION_MESSAGES", 2_400_000))
RETENTION_RATE = 2000
RETENTION_SECONDS = 60


_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when this script dies, so that no
    server or receiver outlives an interrupted benchmark."""
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log(msg):
    print(msg, flush=True)


def say(key, **numbers):
    """Prints one measurement line: the scenario key, then name=value pairs."""
    parts = []
    for k, v in numbers.items():
        if isinstance(v, float):
            v = f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
        parts.append(f"{k}={v}")
    log(f"  {key}: " + " ".join(parts))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def paced_unary(rate, seconds):
    """rio-bench-load's arguments for Emit at `rate` events/s for `seconds`."""
    return ["--mode=unary", "--concurrency=2000", f"--rate={rate}",
            f"--count={int(rate * seconds)}", f"--duration={seconds + 30}"]


def latency_summary(values_ms):
    v = sorted(values_ms)
    return dict(p50_ms=percentile(v, 50), p90_ms=percentile(v, 90),
                p99_ms=percentile(v, 99), max_ms=v[-1] if v else 0.0,
                samples=len(v))


def proc_cpu_seconds(pid, children=False):
    """utime+stime (and the reaped children's time when asked) of pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Postgres:
    """The cluster tools/bench started: fresh databases and CPU accounting."""

    def __init__(self, port, data_dir):
        self.port = port
        self.data_dir = data_dir

    def psql(self, sql, db="postgres"):
        out = subprocess.run(
            ["psql", "-X", "-q", "-tA", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", db, "-c", sql],
            check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def fresh_database(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name):
        try:
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except subprocess.CalledProcessError as e:
            log(f"  warning: could not drop {name}: {e.stderr.strip()}")

    def activity(self, db):
        """(transactions committed in `db`, WAL position in bytes)."""
        out = self.psql(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = "
            f"'{db}'), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        commits, wal = out.split("|")
        return int(commits or 0), int(wal)

    def cpu_seconds(self):
        """CPU time of the postmaster and all its backends (live and exited)."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                master = int(f.readline())
            total = proc_cpu_seconds(master, children=True)
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == master:
                        total += proc_cpu_seconds(int(entry))
                except (OSError, ValueError, IndexError):
                    pass
            return total
        except (OSError, ValueError):
            return 0.0


class Receiver:
    """A rio-bench-receiver process and its control port."""

    def __init__(self, bench, threads):
        self.proc = subprocess.Popen(
            [bench.bin("rio-bench-receiver"), f"--threads={threads}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=die_with_parent)
        line = self.proc.stdout.readline().split()
        if len(line) != 4 or line[0] != "listening":
            raise RuntimeError(f"rio-bench-receiver did not start: {line}")
        self.port = int(line[1])
        self.control_port = int(line[3])

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def command(self, line):
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=60) as s:
            s.sendall((line + "\n").encode())
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.decode().strip()

    def count(self):
        """Requests answered (those to --hang_prefix paths are not)."""
        return int(self.command("count"))

    def dump(self, path, keep=False):
        """Returns [(arrival_ns, webhook_id, path)] in arrival order; the
        file at `path` is removed unless `keep`."""
        n = int(self.command(f"dump {path}"))
        records = []
        with open(path) as f:
            for line in f:
                t, wid, p = line.split()
                records.append((int(t), wid, p))
        if not keep:
            os.unlink(path)
        if len(records) != n:
            raise RuntimeError(f"receiver dump has {len(records)} lines, said {n}")
        return records

    def down(self, seconds):
        """Stops listening for `seconds`; returns when it listens again (ns)."""
        reply = self.command(f"down {seconds}")
        return int(reply.split()[1])

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def secret_key_file(work):
    """A --secret_key_file in `work` (made once, mode 0600): one key for every
    rio-server of a run, so a restarted server opens what the first sealed."""
    path = os.path.join(work, "secret_key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"bench {base64.b64encode(os.urandom(32)).decode()}\n")
    return path


class Server:
    """A rio-server process on a fresh database; its log goes to a file."""

    def __init__(self, bench, database_url, log_path, extra_flags=()):
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        self.proc = subprocess.Popen(
            [bench.bin("rio-server"), f"--database_url={database_url}",
             "--listen=127.0.0.1:0", "--http_listen=", f"--admin_token={ADMIN_TOKEN}",
             f"--secret_key_file={secret_key_file(bench.work)}",
             "--shutdown_grace=2s", *loopback_receivers(bench.bin("rio-server")),
             *extra_flags,
             *os.environ.get("RIO_SERVER_FLAGS", "").split()],
            stdout=self.log_file, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.time() + 30
        self.address = None
        while time.time() < deadline and self.address is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rio-server exited at start-up:\n{self.tail()}")
            with open(log_path) as f:
                m = re.search(r"rio-server: ready grpc=(\S+)", f.read(1 << 20))
            if m:
                self.address = m.group(1)
            else:
                time.sleep(0.05)
        if self.address is None:
            self.stop()
            raise RuntimeError(f"rio-server did not get ready:\n{self.tail()}")

    def tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid)

    def peak_rss_mb(self):
        return proc_status_kb(self.proc.pid, "VmHWM") / 1024.0

    def label_threads(self):
        """Names each thread by the first rio:: function on its stack (e.g.
        Dispatcher::Loop), read once with gdb before the load starts, since
        rio-server's threads carry no names of their own. Without gdb the
        threads are told apart by creation order only."""
        self.labels = {}
        if shutil.which("gdb") is None:
            return
        try:
            out = subprocess.run(
                ["gdb", "-p", str(self.proc.pid), "-batch", "-nx",
                 "-ex", "thread apply all bt 60"],
                capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        tid, label, seen = None, None, {}
        for line in out.splitlines() + ["Thread end"]:
            if line.startswith("Thread "):
                if tid is not None:
                    n = seen.get(label, 0) + 1
                    seen[label] = n
                    self.labels[tid] = label if n == 1 else f"{label}#{n}"
                m = re.search(r"\(LWP (\d+)\) \"([^\"]*)\"", line)
                tid, label = (int(m.group(1)), m.group(2)) if m else (None, None)
                if tid == self.proc.pid:
                    label = "main"
                continue
            if tid is None or label is None:
                continue
            m = re.search(r" in rio::(?:\w+::)*?(\w+::\w+)\(", line)
            if m and not label.startswith("rio:"):
                label = "rio:" + m.group(1)
            elif "grpc" in line and not label.startswith(("rio:", "grpc:", "main")):
                label = "grpc:" + label
        self.labels = {t: l.replace("rio:", "") for t, l in self.labels.items()}

    def threads_cpu(self):
        """{thread label: cpu seconds}, to see which thread is busiest.
        Threads without a label are told apart by creation order
        (name(+tid-pid))."""
        out = {}
        base = f"/proc/{self.proc.pid}/task"
        try:
            tids = os.listdir(base)
        except OSError:
            return out
        labels = getattr(self, "labels", {})
        for tid in tids:
            try:
                with open(f"{base}/{tid}/comm") as f:
                    name = f.read().strip()
                label = labels.get(int(tid), f"{name}(+{int(tid) - self.proc.pid})")
                out[label] = proc_cpu_seconds(f"{self.proc.pid}/task/{tid}")
            except (OSError, ValueError):
                pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def settle(read_cpu, quiet_s=0.3, limit_s=5.0):
    """Waits until read_cpu() stops growing (work after the last arrival,
    such as outcome writes, counts too); returns the last reading."""
    last = read_cpu()
    quiet_since = time.time()
    deadline = time.time() + limit_s
    while time.time() < deadline:
        time.sleep(0.1)
        now = read_cpu()
        if now > last:
            last = now
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_s:
            break
    return last


class Bench:
    def __init__(self, args):
        self.args = args
        self.profile = dict(PROFILES[args.profile])
        if args.runs:
            self.profile["runs"] = args.runs
        self.pg = Postgres(args.pg_port, args.pg_data)
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)
        self.results = {"meta": {}, "runs": {}}
        self.db_counter = 0
        self.failures = []  # broken guarantees (not speed): fail the run
        self.started = time.time()

    def bin(self, name):
        if name == "rio-server":
            return os.path.join(self.args.build, "server", "rio-server")
        return os.path.join(self.args.build, "tools", "benchmark", name)

    def record(self, key, metrics):
        self.results["runs"].setdefault(key, []).append(metrics)
        self.save()

    def save(self):
        path = os.path.join(self.work, "results.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.results, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)

    # ---- the pieces of one Rio run ----

    def run_load(self, server, handler_urls, load_args, sends_path, timeout):
        cmd = [self.bin("rio-bench-load"), f"--target={server.address}",
               f"--admin_token={ADMIN_TOKEN}", f"--event={EVENT}",
               f"--sends={sends_path}", *load_args]
        if handler_urls:
            cmd.append("--handler_urls=" + ",".join(handler_urls))
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                preexec_fn=die_with_parent), timeout

    def finish_load(self, proc_timeout):
        proc, timeout = proc_timeout
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise RuntimeError("rio-bench-load did not finish in time")
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"rio-bench-load failed ({proc.returncode})")
        return json.loads(out.strip().splitlines()[-1])

    def read_sends(self, path):
        sends = {}
        with open(path) as f:
            for line in f:
                mid, sent, _ack = line.split()
                sends[mid] = int(sent)
        if not self.args.keep:
            os.unlink(path)
        return sends

    @staticmethod
    def first_arrivals(records, path_filter=None):
        """{(webhook_id, path): first arrival ns} and the duplicate count."""
        first, dups = {}, 0
        for t, wid, p in records:
            if path_filter and not path_filter(p):
                continue
            key = (wid, p)
            if key in first:
                dups += 1
            else:
                first[key] = t
        return first, dups

    def wait_for_arrivals(self, receiver, expected, limit_s, stall_s=20):
        """Polls until the receiver answered `expected` requests, or limit_s
        passed, or nothing arrived for stall_s. Returns (answered, stalled)."""
        deadline = time.time() + limit_s
        n = receiver.count()
        progress = time.time()
        while n < expected and time.time() < deadline:
            if time.time() - progress > stall_s:
                log(f"  nothing arrived for {stall_s} s; {n:,} of {expected:,}")
                return n, True
            time.sleep(0.05)
            m = receiver.count()
            if m > n:
                progress = time.time()
            n = m
        return n, False

    def wait_for_deliveries(self, receiver, expected, limit_s, key):
        """Waits until `expected` distinct deliveries reached the healthy
        handlers (retried duplicates do not count) or limit_s; returns the
        receiver's records."""
        deadline = time.time() + limit_s
        extra = 0
        while True:
            _n, stalled = self.wait_for_arrivals(receiver, expected + extra,
                                                 max(0.0, deadline - time.time()))
            records = receiver.dump(os.path.join(self.work, f"arrivals-{key}.txt"),
                                    keep=self.args.keep)
            answered = sum(1 for _t, _w, p in records if p.startswith("/h/"))
            unique = len({(w, p) for _t, w, p in records if p.startswith("/h/")})
            if unique >= expected or stalled or time.time() >= deadline:
                return records
            extra = answered - unique + 1

    @contextlib.contextmanager
    def fresh_run(self, key, server_flags=(), receiver=True):
        """A fresh database (and receiver) for one run, and a rio-server on
        it: yields (database name, server, receiver or None). On the way
        out it shows the server's log tail if the run failed, and stops and
        drops everything."""
        self.db_counter += 1
        db = f"bench_{self.db_counter}_{re.sub('[^a-z0-9]', '_', key.lower())}"
        url = self.pg.fresh_database(db)
        rcv = Receiver(self, self.args.receiver_threads) if receiver else None
        server = None
        try:
            server = Server(self, url, os.path.join(self.work, f"rio-server-{key}.log"),
                            server_flags)
            yield db, server, rcv
        except Exception:
            if server is not None:
                log(f"  rio-server log tail:\n{server.tail()}")
            raise
        finally:
            if server is not None:
                server.stop()
            if rcv is not None:
                rcv.stop()
            self.pg.drop_database(db)

    def rio_run(self, key, fanout, load_args, *, hang_handlers=0, server_flags=(),
                load_timeout=600, during_load=None, arrival_limit_s=60,
                before_load=None):
        """One run: fresh database, server and receiver; before_load(db) if
        given; emits; waits until the healthy handlers got every delivery (or
        arrival_limit_s); returns the raw pieces for the scenario to
        reduce."""
        with self.fresh_run(key, server_flags) as (db, server, receiver):
            if before_load:
                before_load(db)
            healthy = [receiver.url(f"/h/{i}") for i in range(fanout)]
            hanging = [receiver.url(f"/hang/{i}") for i in range(hang_handlers)]
            sends_path = os.path.join(self.work, f"sends-{key}.txt")
            # psql's backend is reaped (and its CPU booked to the postmaster)
            # while gdb labels the threads, before the CPU counters are read.
            commits0, wal0 = self.pg.activity(db)
            time.sleep(0.2)
            if self.profile["diagnostics"]:
                server.label_threads()
            cpu0, pg0 = server.cpu_seconds(), self.pg.cpu_seconds()
            recv0 = proc_cpu_seconds(receiver.proc.pid)
            threads0 = server.threads_cpu()
            t_start = time.time()
            load = self.run_load(server, healthy + hanging, load_args, sends_path,
                                 load_timeout)
            extra = during_load(receiver) if during_load else None
            load = self.finish_load(load)
            self.results["meta"]["grpc_version"] = load["grpc_version"]
            expected = load["ok_events"] * fanout
            records = self.wait_for_deliveries(receiver, expected, arrival_limit_s,
                                               key)
            cpu1 = settle(server.cpu_seconds)
            pg1 = self.pg.cpu_seconds()
            recv1 = proc_cpu_seconds(receiver.proc.pid)
            threads1 = server.threads_cpu()
            wall = (time.time() - t_start)
            rss = server.peak_rss_mb()
            # Backends publish their statistics when they exit (otherwise only
            # about once a second), so the commits are counted after a stop.
            server.stop()
            time.sleep(0.2)
            commits1, wal1 = self.pg.activity(db)
            sends = self.read_sends(sends_path)
            busiest = sorted(((threads1.get(k, 0) - threads0.get(k, 0), k)
                              for k in threads1), reverse=True)[:4]
            return dict(load=load, sends=sends, records=records, expected=expected,
                        server_cpu_s=cpu1 - cpu0, pg_cpu_s=pg1 - pg0, rss_mb=rss,
                        receiver_cpu_s=recv1 - recv0, load_cpu_s=load["cpu_s"],
                        threads={k: round(v, 2) for v, k in busiest}, wall_s=wall,
                        pg_commits=commits1 - commits0, wal_bytes=wal1 - wal0,
                        extra=extra)

    def check_budget(self):
        elapsed = time.time() - self.started
        log(f"  (elapsed {elapsed:.0f} s)")

    # ---- scenarios ----

    def scenario_ceiling(self, run):
        p = self.profile
        receiver = Receiver(self, self.args.receiver_threads)
        try:
            out = subprocess.run(
                [self.bin("rio-bench-ceiling"), f"--url={receiver.url('/ceiling')}",
                 f"--concurrency={self.args.ceiling_concurrency}",
                 f"--duration={p['ceiling_seconds']}", "--count=100000000"],
                check=True, capture_output=True, text=True, timeout=120)
            c = json.loads(out.stdout)
            self.results["meta"]["curl_version"] = c["curl_version"]
            m = dict(rps=c["rps"], requests=c["requests"], errors=c["errors"],
                     cpu_us_per_request=c["cpu_us_per_request"],
                     rss_mb=c["max_rss_kb"] / 1024.0, concurrency=c["concurrency"])
            say(f"ceiling run {run}", **m)
            self.record("ceiling", m)
            for rate in p["latency_rates"]:
                receiver.command("reset")
                sends = os.path.join(self.work, "ceiling-sends.txt")
                count = int(rate * p["ceiling_rate_seconds"])
                subprocess.run(
                    [self.bin("rio-bench-ceiling"), f"--url={receiver.url('/ceiling')}",
                     f"--concurrency={self.args.ceiling_concurrency}",
                     f"--rate={rate}", f"--count={count}",
                     f"--duration={p['ceiling_rate_seconds'] + 5}", f"--sends={sends}",
                     f"--id_prefix=c{rate}-"],
                    check=True, capture_output=True, text=True, timeout=120)
                self.wait_for_arrivals(receiver, count, 10)
                records = receiver.dump(os.path.join(self.work, "arrivals.txt"))
                sent = {}
                with open(sends) as f:
                    for line in f:
                        wid, ns = line.split()
                        sent[wid] = int(ns)
                os.unlink(sends)
                t0 = min(sent.values()) + p["warmup_s"] * 1e9
                lat = [(t - sent[wid]) / 1e6 for t, wid, _ in records
                       if wid in sent and sent[wid] >= t0]
                m = latency_summary(lat)
                say(f"ceiling latency at {rate}/s run {run}", **m)
                self.record(f"ceiling_rate_{rate}", m)
        finally:
            receiver.stop()
        self.commit_floor(run)

    def commit_floor(self, run):
        """The durable commit's own latency at each latency rate: pgbench
        inserting one message-sized row per transaction into the same
        PostgreSQL, one connection, paced like the load. Every emit waits for
        such a commit before it is acknowledged and dispatched, so this is a
        floor under emit -> arrival. Rates one connection cannot keep up with
        (commits one after the other; Rio groups them) are left out."""
        p = self.profile
        db = "bench_commit_floor"
        self.pg.fresh_database(db)
        try:
            self.pg.psql("CREATE TABLE m (id uuid PRIMARY KEY, payload text NOT NULL, "
                         "create_time timestamptz NOT NULL DEFAULT now())", db=db)
            script = os.path.join(self.work, "commit-floor.sql")
            with open(script, "w") as f:
                f.write("INSERT INTO m (id, payload) VALUES (gen_random_uuid(), "
                        "'{\"comment\": {\"id\": 1, \"body\": \"bench\"}}');\n")
            for rate in (r for r in p["latency_rates"] if r <= 1000):
                prefix = os.path.join(self.work, f"commit-floor-{rate}")
                for old in os.listdir(self.work):
                    if old.startswith(os.path.basename(prefix) + "."):
                        os.unlink(os.path.join(self.work, old))
                subprocess.run(
                    ["pgbench", "-h", "127.0.0.1", "-p", str(self.pg.port),
                     "-U", "postgres", "-n", "-f", script, "-c", "1",
                     "-R", str(rate),
                     "-T", str(max(1, round(p["ceiling_rate_seconds"]))),
                     "--log", f"--log-prefix={prefix}", db],
                    check=True, capture_output=True, text=True, timeout=120)
                lat = []
                for name in os.listdir(self.work):
                    if name.startswith(os.path.basename(prefix) + "."):
                        with open(os.path.join(self.work, name)) as f:
                            # client_id transaction_no time_us script_no ...
                            lat += [int(line.split()[2]) / 1000.0 for line in f]
                        os.unlink(os.path.join(self.work, name))
                m = latency_summary(lat)
                say(f"durable commit at {rate}/s run {run}", **m)
                self.record(f"commit_rate_{rate}", m)
        finally:
            self.pg.drop_database(db)

    def scenario_drain(self, run):
        p = self.profile
        for fanout, events in sorted(p["drain_events"].items()):
            key = f"drain_fo{fanout}"
            r = self.rio_run(
                key, fanout,
                ["--mode=batch", "--batch=100", "--concurrency=4",
                 f"--count={events}", "--duration=600"],
                arrival_limit_s=p["drain_limit_s"])
            first, dups = self.first_arrivals(r["records"])
            delivered = sum(1 for (wid, _p) in first if wid in r["sends"])
            start = r["load"]["first_send_ns"]
            end = max(first.values()) if first else start
            seconds = (end - start) / 1e9
            m = dict(deliveries_per_s=delivered / seconds if seconds > 0 else 0.0,
                     delivered=delivered, expected=r["expected"], duplicates=dups,
                     seconds=seconds, emit_events_per_s=r["load"]["events_per_s"],
                     server_cpu_s=r["server_cpu_s"],
                     cpu_us_per_delivery=r["server_cpu_s"] * 1e6 / max(1, delivered),
                     pg_cpu_us_per_delivery=r["pg_cpu_s"] * 1e6 / max(1, delivered),
                     receiver_cpu_us_per_delivery=r["receiver_cpu_s"] * 1e6 / max(1, delivered),
                     load_cpu_us_per_delivery=r["load_cpu_s"] * 1e6 / max(1, delivered),
                     rss_mb=r["rss_mb"], complete=delivered >= r["expected"],
                     pg_commits=r["pg_commits"],
                     wal_bytes_per_delivery=r["wal_bytes"] / max(1, delivered),
                     threads=r["threads"], wall_s=r["wall_s"])
            say(f"{key} ({events} events x {fanout}) run {run}", **m)
            self.record(key, m)

    def scenario_ingest(self, run):
        p = self.profile
        for key, args in (
                ("ingest_unary", ["--mode=unary", "--concurrency=64",
                                  f"--count={p['ingest_unary_count']}"]),
                ("ingest_batch", ["--mode=batch", "--batch=100", "--concurrency=8",
                                  f"--count={p['ingest_batch_count']}"])):
            r = self.rio_run(key, 0, args + [f"--duration={p['ingest_seconds']}"])
            load = r["load"]
            m = dict(events_per_s=load["events_per_s"], ok_events=load["ok_events"],
                     failed_events=load["failed_events"],
                     ack_p50_ms=load["ack_p50_ms"], ack_p99_ms=load["ack_p99_ms"],
                     cpu_us_per_event=r["server_cpu_s"] * 1e6 / max(1, load["ok_events"]),
                     pg_cpu_us_per_event=r["pg_cpu_s"] * 1e6 / max(1, load["ok_events"]),
                     load_cpu_us_per_event=load["cpu_s"] * 1e6 / max(1, load["ok_events"]),
                     rss_mb=r["rss_mb"], load_cpu_s=load["cpu_s"],
                     pg_commits=r["pg_commits"],
                     events_per_commit=load["ok_events"] / max(1, r["pg_commits"]),
                     wal_bytes_per_event=r["wal_bytes"] / max(1, load["ok_events"]),
                     threads=r["threads"], wall_s=r["wall_s"])
            say(f"{key} run {run}", **m)
            self.record(key, m)

    def latency_metrics(self, r, warmup_s, path_prefix="/h/"):
        first, dups = self.first_arrivals(
            r["records"], lambda p: p.startswith(path_prefix))
        sends = r["sends"]
        t0 = r["load"]["first_send_ns"] + warmup_s * 1e9
        lat = [(t - sends[wid]) / 1e6 for (wid, _p), t in first.items()
               if wid in sends and sends[wid] >= t0]
        m = latency_summary(lat)
        m.update(delivered=len(first), expected=r["expected"], duplicates=dups,
                 achieved_rate=r["load"]["events_per_s"],
                 load_max_lag_ms=r["load"]["max_lag_ms"], rss_mb=r["rss_mb"],
                 cpu_us_per_delivery=r["server_cpu_s"] * 1e6 / max(1, len(first)),
                 threads=r["threads"], wall_s=r["wall_s"])
        return m

    def scenario_latency(self, run):
        p = self.profile
        for rate in p["latency_rates"]:
            key = f"latency_{rate}"
            r = self.rio_run(
                key, 1,
                paced_unary(rate, p["latency_seconds"]),
                arrival_limit_s=p["latency_limit_s"])
            m = self.latency_metrics(r, p["warmup_s"])
            say(f"{key} (emit -> arrival, {rate} events/s) run {run}", **m)
            self.record(key, m)

    def scenario_isolation(self, run):
        p = self.profile
        rate = p["isolation_rate"]
        r = self.rio_run(
            "isolation", 1,
            ["--mode=unary", "--concurrency=2000", f"--rate={rate}",
             f"--count={int(rate * p['isolation_seconds'])}",
             f"--duration={p['isolation_seconds'] + 30}",
             "--handler_timeout_ms=15000"],
            hang_handlers=1, arrival_limit_s=p["latency_limit_s"])
        m = self.latency_metrics(r, p["warmup_s"])
        # The same rate with one handler, measured in this round's latency
        # scenario (when it ran).
        alone = self.results["runs"].get(f"latency_{rate}", [])
        if len(alone) >= run and alone[run - 1].get("p99_ms"):
            m["p99_alone_ms"] = alone[run - 1]["p99_ms"]
            m["p99_vs_alone"] = m["p99_ms"] / alone[run - 1]["p99_ms"]
        hung = sum(1 for _t, _w, path in r["records"] if path.startswith("/hang/"))
        m["hanging_requests"] = hung
        say(f"isolation (healthy handler beside a hanging one, {rate} events/s) "
            f"run {run}", **m)
        self.record("isolation", m)

    def scenario_backlog(self, run):
        p = self.profile
        rate, before, down, after = (p["backlog_rate"], p["backlog_before_s"],
                                     p["backlog_down_s"], p["backlog_after_s"])
        total = before + down + after

        def take_receiver_down(receiver):
            time.sleep(before)
            return receiver.down(down)

        r = self.rio_run(
            "backlog", 1,
            ["--mode=unary", "--concurrency=2000", f"--rate={rate}",
             f"--count={int(rate * total)}", f"--duration={total + 30}"],
            server_flags=[f"--retry_schedule={p['backlog_schedule']}"],
            during_load=take_receiver_down, arrival_limit_s=p["backlog_limit_s"])
        up_ns = r["extra"]
        first, dups = self.first_arrivals(r["records"])
        sends = r["sends"]
        before_up = [(wid, t) for (wid, _p), t in first.items()
                     if wid in sends and sends[wid] < up_ns]
        expected_before_up = sum(1 for s in sends.values() if s < up_ns)
        backlog = [t for _wid, t in before_up if t >= up_ns]
        done_ns = max((t for _wid, t in before_up), default=up_ns)
        m = dict(backlog_s=max(0.0, (done_ns - up_ns) / 1e9),
                 backlog_deliveries=len(backlog),
                 missing=expected_before_up - len(before_up),
                 delivered=len(first), expected=r["expected"], duplicates=dups,
                 rss_mb=r["rss_mb"], schedule=p["backlog_schedule"], down_s=down,
                 threads=r["threads"], wall_s=r["wall_s"])
        say(f"backlog (receiver down {down} s at {rate} events/s) run {run}", **m)
        self.record("backlog", m)

    def scenario_flood(self, run):
        """1 MiB payloads, as fast as the load generator can, for
        FLOOD_SECONDS into one handler that never answers; then the handler
        answers again. Every acknowledged event must arrive; what counts is
        rio-server's peak RSS with default flags, and that emits were either
        accepted or refused with RESOURCE_EXHAUSTED."""
        # Short retries, so the deliveries that timed out against the silent
        # handler come back soon after it answers.
        with self.fresh_run("flood", ["--retry_schedule=" + ",".join(["1s"] * 30)]) \
                as (db, server, receiver):
            sends_path = os.path.join(self.work, "sends-flood.txt")
            load = self.finish_load(self.run_load(
                server, [receiver.url("/hang/0")],
                ["--mode=unary", "--concurrency=64", "--payload_bytes=1048576",
                 "--count=1000000000", f"--duration={FLOOD_SECONDS}",
                 "--handler_timeout_ms=5000"],
                sends_path, FLOOD_SECONDS + 120))
            rss_flood = server.peak_rss_mb()
            answering = time.time()
            # The handler answers again (an operator pointing it elsewhere).
            self.pg.psql("UPDATE handlers SET url = replace(url, '/hang/0', '/h/0')",
                         db=db)
            records = self.wait_for_deliveries(receiver, load["ok_events"], 600,
                                               "flood")
            first, dups = self.first_arrivals(records, lambda p: p.startswith("/h/"))
            delivered = {w for (w, _p) in first}
            sends = self.read_sends(sends_path)
            lost = sum(1 for mid in sends if mid not in delivered)
            errors = dict(load["errors"])
            m = dict(seconds=FLOOD_SECONDS, sent=load["sent_events"],
                     accepted=load["ok_events"],
                     resource_exhausted=errors.pop("RESOURCE_EXHAUSTED", 0),
                     other_errors=errors, delivered=len(delivered), lost=lost,
                     duplicates=dups, rss_flood_mb=rss_flood,
                     peak_rss_mb=server.peak_rss_mb(),
                     drain_s=round(max((t for t in first.values()), default=0) / 1e9
                                   - answering, 1) if first else None)
            if lost:
                self.failures.append(f"flood: {lost} acknowledged events lost")
            say(f"flood (1 MiB payloads, silent handler, {FLOOD_SECONDS} s) run {run}",
                **{k: v for k, v in m.items() if not isinstance(v, dict)})
            if errors:
                log(f"  other emit errors: {errors}")
            self.record("flood", m)

    def scenario_history(self, run):
        """Fills a database with HISTORY_MESSAGES messages over 30 days (two
        deliveries each, to HISTORY_HANDLERS handlers; 97% succeeded, 2%
        failed, 0.5% pending, 0.5% cancelled; an attempt for each delivery
        that was tried) straight through SQL, counts it into the per-handler
        counters, and times what an operator asks of it: GetHandlerStats over
        1 h to 90 days, the dashboard's bucketed hour, and ListDeliveries with
        every filter. Medians of 5 calls after one warm-up, in ms."""
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                        "sdk", "python"))
        import grpc
        from google.protobuf import timestamp_pb2
        from rio_client._gen.rio.v1 import (delivery_pb2, delivery_pb2_grpc,
                                             handler_pb2, handler_pb2_grpc,
                                             project_pb2, project_pb2_grpc)
        with self.fresh_run("history", ["--retention=2160h"], receiver=False) \
                as (db, server, _):
            channel = grpc.insecure_channel(server.address)
            auth = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
            project_pb2_grpc.ProjectServiceStub(channel).CreateProject(
                project_pb2.CreateProjectRequest(slug="bench", name="Bench"),
                metadata=auth)
            handlers = []
            for i in range(HISTORY_HANDLERS):
                handlers.append(handler_pb2_grpc.HandlerServiceStub(channel).CreateHandler(
                    handler_pb2.CreateHandlerRequest(
                        project="bench", event="order-paid",
                        url=f"http://127.0.0.1:9/h/{i}"), metadata=auth).id)
            started = time.time()
            n = HISTORY_MESSAGES
            # The partitions of those 30 days (rio-server makes only those
            # from a day ago on).
            self.pg.psql("SELECT rio_create_partitions(now() - interval '31 days', "
                         "now(), '1 day')", db=db)
            # Version-7 ids of the row's time, as rio-server makes them (a
            # delivery's of its message's millisecond): rio_new_uuid.
            self.pg.psql(
                "INSERT INTO messages (id, project_id, event, payload, sender, create_time) "
                "SELECT rio_new_uuid(t), p.id, 'order-paid', "
                "'{\"order\":' || g || '}', 'bench', t FROM projects p, "
                f"generate_series(1, {n}) AS g, LATERAL (SELECT now() - "
                f"(g::float8 / {n}) * interval '30 days' AS t) AS x", db=db)
            handler_list = "ARRAY[" + ",".join(f"'{h}'::uuid" for h in handlers) + "]"
            self.pg.psql(
                "INSERT INTO deliveries (id, message_id, handler_id, status, attempts, "
                "next_attempt_time, last_status_code, create_time, update_time) "
                "SELECT rio_new_uuid(m.create_time), m.id, "
                f"({handler_list})[1 + (m.k * 2 + j) % {len(handlers)}], st, "
                "CASE st WHEN 'PENDING' THEN 0 WHEN 'CANCELLED' THEN 0 ELSE 1 END, "
                "CASE st WHEN 'PENDING' THEN now() + interval '30 days' ELSE m.create_time END, "
                "CASE st WHEN 'SUCCEEDED' THEN 200 WHEN 'FAILED' THEN 500 END, "
                "m.create_time, m.create_time FROM (SELECT id, create_time, "
                "row_number() OVER () AS k FROM messages) AS m, generate_series(0, 1) AS j, "
                "LATERAL (SELECT CASE WHEN (m.k * 7 + j) % 1000 < 970 THEN 'SUCCEEDED' "
                "WHEN (m.k * 7 + j) % 1000 < 990 THEN 'FAILED' WHEN (m.k * 7 + j) % 1000 "
                "< 995 THEN 'PENDING' ELSE 'CANCELLED' END AS st) AS s", db=db)
            self.pg.psql(
                "INSERT INTO attempts (delivery_id, number, start_time, duration_us, "
                "status_code, request_headers, error_class) SELECT id, 1, create_time, "
                "20000 + abs(hashtext(id::text)) % 80000, last_status_code, "
                "'content-type: application/json', CASE status WHEN 'FAILED' THEN "
                "'http_status' ELSE '' END FROM deliveries WHERE status IN "
                "('SUCCEEDED', 'FAILED')", db=db)
            self.pg.psql("SELECT rio_count_history()", db=db)
            self.pg.psql("VACUUM ANALYZE", db=db)
            fill_s = time.time() - started
            deliveries = int(self.pg.psql("SELECT count(*) FROM deliveries", db=db))
            log(f"  filled {n} messages, {deliveries} deliveries in {fill_s:.0f} s")

            stub = delivery_pb2_grpc.DeliveryServiceStub(channel)

            def median_ms(call, request):
                call(request, metadata=auth)  # warm-up
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    call(request, metadata=auth)
                    times.append((time.perf_counter() - t0) * 1000)
                return round(sorted(times)[2], 1)

            def stats(window_s, bucket_s=0):
                r = delivery_pb2.GetHandlerStatsRequest(handler_id=handlers[0])
                r.window.seconds = window_s
                if bucket_s:
                    r.bucket.seconds = bucket_s
                return r

            m = dict(messages=n, deliveries=deliveries, fill_s=round(fill_s),
                     rio_version=self.results["meta"].get("rio_version", ""))
            for name, window, bucket in [("1h", 3600, 0), ("6h", 21600, 0),
                                         ("24h", 86400, 0), ("30d", 30 * 86400, 0),
                                         ("90d", 90 * 86400, 0),
                                         ("1h_by_5m", 3600, 300),
                                         ("30d_by_1d", 30 * 86400, 86400)]:
                m[f"stats_{name}_ms"] = median_ms(stub.GetHandlerStats,
                                                  stats(window, bucket))
            S = delivery_pb2.ListDeliveriesRequest
            day = timestamp_pb2.Timestamp()
            day.FromSeconds(int(time.time()) - 15 * 86400)
            day_end = timestamp_pb2.Timestamp()
            day_end.FromSeconds(int(time.time()) - 14 * 86400)
            for status in ["ANY", "PENDING", "SUCCEEDED", "FAILED", "CANCELLED",
                           "FAILING"]:
                code = S.Status.Value(status)
                m[f"list_{status.lower()}_ms"] = median_ms(
                    stub.ListDeliveries, S(project="bench", status=code))
                m[f"list_{status.lower()}_handler_ms"] = median_ms(
                    stub.ListDeliveries,
                    S(project="bench", status=code, handler_id=handlers[0]))
            m["list_event_ms"] = median_ms(
                stub.ListDeliveries, S(project="bench", event="order-paid"))
            m["list_day_ms"] = median_ms(
                stub.ListDeliveries, S(project="bench", since=day, until=day_end))
            m["list_failed_day_ms"] = median_ms(
                stub.ListDeliveries, S(project="bench", status=S.Status.Value("FAILED"),
                                       since=day, until=day_end))
            first = stub.ListDeliveries(S(project="bench"), metadata=auth)
            m["list_page_2_ms"] = median_ms(
                stub.ListDeliveries, S(project="bench", page_token=first.next_page_token))
            m["list_messages_ms"] = median_ms(
                stub.ListMessages, delivery_pb2.ListMessagesRequest(project="bench"))
            slow = {k: v for k, v in m.items() if k.endswith("_ms") and v > 50}
            say(f"history ({deliveries} deliveries over 30 days) run {run}", **m)
            if slow:
                log(f"  over 50 ms: {slow}")
            self.record("history", m)
            channel.close()

    def scenario_retention(self, run):
        """24 hours of history in partitions of an hour, a retention of 12
        hours: the same steady unary load (2,000 events/s for a minute) runs
        once on a server that keeps everything and once on one whose
        retention drops the 12 oldest partitions while the load runs.
        Compares emit -> arrival latency, overall and for the events sent
        while the partitions were being dropped, and reports how long each
        drop took against the rows it held (later hours hold more)."""
        n = RETENTION_MESSAGES
        handler = "00000000-0000-4000-8000-00000000000a"
        sizes = {}

        def fill(db):
            started = time.time()
            # One transaction: retention sees the whole history at once,
            # after the load has started.
            self.pg.psql(
                "BEGIN; SELECT rio_create_partitions(now() - interval '25 hours', "
                "now(), '1 hour'); "
                "INSERT INTO messages (id, project_id, event, payload, sender, create_time) "
                "SELECT rio_new_uuid(t), 1, 'order-paid', "
                "'{\"order\":' || g || '}', 'bench', t FROM generate_series(1, "
                f"{n}) AS g, LATERAL (SELECT now() - interval '25 hours' + "
                f"sqrt(g::float8 / {n}) * interval '24 hours' AS t) AS x; "
                "INSERT INTO deliveries (id, message_id, handler_id, status, attempts, "
                "last_status_code, create_time, update_time) SELECT "
                f"rio_new_uuid(create_time), id, '{handler}', 'SUCCEEDED', 1, 200, "
                "create_time, create_time "
                "FROM messages; "
                "INSERT INTO attempts (delivery_id, number, start_time, duration_us, "
                "status_code, request_headers) SELECT id, 1, create_time, 30000, 200, "
                "'content-type: application/json' FROM deliveries WHERE handler_id = "
                f"'{handler}'; COMMIT", db=db)
            # As autovacuum would have long since, over 24 hours.
            self.pg.psql("ANALYZE", db=db)
            for line in self.pg.psql(
                    "SELECT p.suffix || ' ' || (SELECT count(*) FROM messages m WHERE "
                    "m.id >= rio_uuid_at(p.lower_time) AND m.id < "
                    "rio_uuid_at(p.upper_time)) FROM rio_history_partitions p WHERE "
                    "p.upper_time <= now() - interval '12 hours'", db=db).split("\n"):
                if line.strip():
                    suffix, count = line.split()
                    sizes[suffix] = int(count)
            log(f"  filled {n} messages over 24 hours in {time.time() - started:.0f} s")

        dropped = re.compile(r"retention dropped .* partition (\S+) .* in ([0-9.]+) ms")

        def watch_drops(key):
            def during_load(_receiver):
                path = os.path.join(self.work, f"rio-server-{key}.log")
                seen, times = set(), []
                deadline = time.time() + RETENTION_SECONDS
                while time.time() < deadline and len(seen) < len(sizes):
                    with open(path) as f:
                        for m in dropped.finditer(f.read()):
                            if m.group(1) not in seen:
                                seen.add(m.group(1))
                                times.append(time.time_ns())
                    time.sleep(0.05)
                return times
            return during_load

        for mode, retention in (("kept", "0"), ("dropping", "12h")):
            key = f"retention_{mode}"
            r = self.rio_run(
                key, 1,
                paced_unary(RETENTION_RATE, RETENTION_SECONDS),
                server_flags=[f"--retention={retention}", "--partition_interval=1h",
                              "--retention_interval=5s"],
                before_load=fill,
                during_load=watch_drops(key) if mode == "dropping" else None,
                arrival_limit_s=60)
            m = self.latency_metrics(r, self.profile["warmup_s"])
            if mode == "dropping":
                with open(os.path.join(self.work, f"rio-server-{key}.log")) as f:
                    drops = [(s_, float(ms)) for s_, ms in dropped.findall(f.read())]
                m["partitions_dropped"] = len(drops)
                m["drop_ms"] = [ms for _, ms in drops]
                m["drop_rows"] = [sizes.get(s_, 0) * 3 for s_, _ in drops]
                times = r["extra"] or []
                if times:
                    # The events sent from a second before the first drop was
                    # seen to a second after the last.
                    first, _ = self.first_arrivals(r["records"])
                    lo, hi = min(times) - 1e9, max(times) + 1e9
                    during = sorted((t - r["sends"][wid]) / 1e6
                                    for (wid, _p), t in first.items()
                                    if wid in r["sends"] and lo <= r["sends"][wid] <= hi)
                    m["during_drops"] = latency_summary(during)
            say(f"{key} ({RETENTION_RATE} events/s over 24 h of history) run {run}", **m)
            self.record(key, m)

    def scenario_kill(self, run):
        """The drain at full speed (fan-out 1), rio-server killed with SIGKILL
        once a third of the deliveries arrived, then started again on the
        same database: every acknowledged event must still arrive."""
        p = self.profile
        events = p["kill_events"]
        self.db_counter += 1
        db = f"bench_{self.db_counter}_kill"
        url = self.pg.fresh_database(db)
        receiver = Receiver(self, self.args.receiver_threads)
        # Leases of the killed instance lapse after 2 s instead of 30.
        flags = ["--lease_timeout=2s"]
        servers = []
        try:
            first = Server(self, url, os.path.join(self.work, "rio-server-kill-1.log"),
                           flags)
            servers.append(first)
            sends_path = os.path.join(self.work, "sends-kill.txt")
            load = self.run_load(first, [receiver.url("/h/0")],
                                 ["--mode=batch", "--batch=100", "--concurrency=4",
                                  f"--count={events}", "--duration=600"],
                                 sends_path, 600)
            while receiver.count() < events // 3 and load[0].poll() is None:
                time.sleep(0.005)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait()
            killed_at = receiver.count()
            killed_ns = time.time_ns()
            result = self.finish_load(load)
            acked = self.read_sends(sends_path)
            second = Server(self, url, os.path.join(self.work, "rio-server-kill-2.log"),
                            flags)
            servers.append(second)
            # Emits whose reply the kill lost were recorded and are delivered
            # too, so reaching len(acked) distinct arrivals does not mean every
            # acknowledged one arrived: wait for those still missing.
            deadline = time.time() + p["kill_limit_s"]
            expected = len(acked)
            while True:
                records = self.wait_for_deliveries(
                    receiver, expected, max(0.0, deadline - time.time()), "kill")
                seen = {wid for _t, wid, _p in records}
                missing = sum(1 for wid in acked if wid not in seen)
                if missing == 0 or time.time() >= deadline:
                    break
                expected = len(seen) + missing
            arrived = {}
            dups = 0
            for t, wid, _p in records:
                if wid in arrived:
                    dups += 1
                else:
                    arrived[wid] = t
            lost = sum(1 for wid in acked if wid not in arrived)
            last = max((arrived[w] for w in acked if w in arrived), default=killed_ns)
            m = dict(acknowledged=len(acked), lost=lost, duplicates=dups,
                     unacknowledged_delivered=sum(1 for w in arrived if w not in acked),
                     failed_events=result["failed_events"], delivered_before_kill=killed_at,
                     recovery_s=max(0.0, (last - killed_ns) / 1e9))
            say(f"kill (SIGKILL mid-drain, {events} events) run {run}", **m)
            self.record("kill", m)
            if lost:
                # Not a speed figure but a broken guarantee: the run fails.
                self.failures.append(f"kill run {run}: {lost} acknowledged events lost")
        finally:
            for server in servers:
                server.stop()
            receiver.stop()
            self.pg.drop_database(db)

    # ---- driver ----

    def collect_meta(self):
        meta = self.results["meta"]
        meta["profile"] = self.args.profile
        meta["runs"] = self.profile["runs"]
        meta["sizes"] = {k: v for k, v in self.profile.items()}
        meta["date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC")
        meta["cores"] = os.cpu_count()
        model = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        meta["cpu_model"] = model
        meta["kernel"] = platform.release()
        meta["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") *
                                   os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        meta["postgresql"] = self.pg.psql("SHOW server_version")
        meta["pg_settings"] = {
            s: self.pg.psql(f"SHOW {s}")
            for s in ("fsync", "synchronous_commit", "wal_sync_method",
                      "min_wal_size", "max_wal_size",
                      "shared_buffers", "full_page_writes")}
        meta["rio_version"] = self.args.rio_version
        meta["receiver_threads"] = self.args.receiver_threads
        meta["ceiling_concurrency"] = self.args.ceiling_concurrency
        for tool in ("rio-bench-ceiling", "rio-bench-load"):
            out = subprocess.run([self.bin(tool), "--versions"], check=True,
                                 capture_output=True, text=True)
            meta.update(json.loads(out.stdout))

    def carry_over(self, only):
        """With --only, keeps the other scenarios' runs from the previous
        results of the same profile, so that the report stays whole."""
        try:
            with open(self.args.previous) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            return
        if previous.get("meta", {}).get("profile") != self.args.profile:
            return
        kept = []
        for key, runs in previous.get("runs", {}).items():
            if key.split("_")[0] not in only:
                self.results["runs"][key] = runs
                kept.append(key)
        if kept:
            self.results["meta"]["carried_over"] = sorted(kept)
            self.results["meta"]["carried_over_from"] = previous["meta"].get("date")
            for k in ("curl_version", "grpc_version"):
                if k in previous["meta"]:
                    self.results["meta"].setdefault(k, previous["meta"][k])
            log(f"keeping earlier results of {', '.join(sorted(kept))}")

    def run(self):
        only = set(self.args.only.split(",")) if self.args.only else set(SCENARIOS)
        unknown = only - set(SCENARIOS) - set(ON_REQUEST)
        if unknown:
            sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        self.collect_meta()
        if self.args.only and self.args.previous:
            self.carry_over(only)
        log(f"machine: {self.results['meta']['cores']} cores, "
            f"{self.results['meta']['cpu_model']}; PostgreSQL "
            f"{self.results['meta']['postgresql']} "
            f"{self.results['meta']['pg_settings']}")
        for run in range(1, self.profile["runs"] + 1):
            for name in SCENARIOS + ON_REQUEST:
                if name not in only:
                    continue
                log(f"== {name} (run {run} of {self.profile['runs']})")
                getattr(self, f"scenario_{name}")(run)
                self.check_budget()
        self.results["meta"]["elapsed_s"] = round(time.time() - self.started, 1)
        self.save()
        for failure in self.failures:
            log(f"FAILED: {failure}")
        return os.path.join(self.work, "results.json")


def main():
    # SIGTERM unwinds like Ctrl-C, so every server and database is cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", required=True, help="Release build directory")
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--pg-data", required=True, help="the cluster's data directory")
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--runs", type=int, default=0, help="override the profile's runs")
    ap.add_argument("--only", default="", help="comma-separated: " + ",".join(SCENARIOS))
    ap.add_argument("--receiver-threads", type=int, default=1)
    ap.add_argument("--ceiling-concurrency", type=int, default=32,
                    help="transfers in flight (Rio's default --max_per_handler)")
    ap.add_argument("--rio-version", default="")
    ap.add_argument("--previous", default="",
                    help="results.json of an earlier run: with --only, the other "
                    "scenarios' results are carried over from it")
    ap.add_argument("--keep", action="store_true",
                    help="keep the arrival and send files of the last run of "
                    "each scenario in the scratch directory")
    args = ap.parse_args()
    bench = Bench(args)
    path = bench.run()
    log(f"results: {path}")
    if bench.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
