#!/usr/bin/python3
"""Rio's chaos run: delivery guarantees under failures, checked end to end.

tools/chaos builds the Release tree, starts a private durable PostgreSQL and
calls this with the build directory and the cluster. One rio-server on a
fresh database; one project, one sender; two events:

  chaos.event    emitted at --rate; handlers: the two healthy ones
  chaos.hostile  emitted at --hostile-rate; handlers: the two healthy ones
                 and six hostile ones (below)

The healthy handlers are rio-bench-receiver (/h/0 and /h/1), which records
every arrival with its webhook-id. The hostile handlers are raw-socket HTTP
servers in this process, one port each: one never answers, one answers 500,
one resets the connection mid-response, one sends a 10 MB body, one answers
200 with a header that is not UTF-8 (X-Name: caf\\xe9), one trickles its
response one byte a second. Every handler has a 2 s timeout and rio-server
runs with --retry_schedule=1s,2s,5s, so hostile deliveries end within the
run. (The hostile handlers get their own, slower event because a handler
that hangs for its whole timeout gets at most --max_per_handler calls per
timeout: at the main rate their deliveries could never finish.)

While the load runs, PostgreSQL is restarted (pg_ctl restart -m fast) and
rio-server is killed with SIGKILL and started again with the same flags.
Emits that fail are retried with the same idempotency key until they are
acknowledged; every code seen is counted. Then the run waits until every
delivery has settled, reads the receiver's arrivals and checks PostgreSQL
directly, prints the table and writes it as Markdown. The exit status is 1
when an acknowledged event was lost or a delivery is in a wrong state.
"""

import argparse
import asyncio
import collections
import datetime
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))

import bench  # noqa: E402  (the benchmark's process and database helpers)
from bench import ADMIN_TOKEN, Postgres, Receiver, Server, log  # noqa: E402

import grpc  # noqa: E402
from rio_client import NO_RETRY, RioError  # noqa: E402
from rio_client.aio import AsyncClient  # noqa: E402
from rio_client.v1 import (handler_pb2, handler_pb2_grpc, project_pb2,  # noqa: E402
                           project_pb2_grpc)

MAIN_EVENT = "chaos.event"
HOSTILE_EVENT = "chaos.hostile"
HANDLER_TIMEOUT_MS = 2000
RETRY_SCHEDULE = "1s,2s,5s"
MAX_ATTEMPTS = 1 + len(RETRY_SCHEDULE.split(","))
BIG_BODY = 10 * 1024 * 1024

PROFILES = {
    # PostgreSQL restarts and the kill, as fractions of the load's duration.
    "full": dict(duration=180, rate=200, hostile_rate=2,
                 actions=[(0.25, "pg"), (0.5, "kill"), (0.75, "pg")],
                 lease_timeout="", settle_limit=300),
    "smoke": dict(duration=10, rate=100, hostile_rate=2,
                  actions=[(0.25, "pg"), (0.65, "kill")],
                  lease_timeout="5s", settle_limit=90),
}

# Emit codes that say nothing was recorded or the reply was lost: retried
# with the same idempotency key. Any other code ends the event unacknowledged.
RETRIED = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "ABORTED",
           "RESOURCE_EXHAUSTED", "CANCELLED"}
GIVE_UP_S = 90


# ---- hostile receivers ----

def read_request(conn, buf):
    """Reads one HTTP/1.1 request (Content-Length body) from conn; returns
    (headers bytes, rest of buf) or (None, b"") at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    length = 0
    expect = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip() or 0)
        elif name == b"expect" and value.strip().lower() == b"100-continue":
            expect = True
    if expect and len(buf) < length:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    while len(buf) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    return head, buf[length:]


def respond_hang(conn):
    # Reads until the caller gives up and closes.
    while conn.recv(65536):
        pass
    return False


def respond_500(conn):
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: 14\r\n\r\nreceiver error")
    return True


def respond_reset(conn):
    # Headers and part of the promised body, then a TCP reset.
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: 1000\r\n\r\npartial")
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


_BIG = None


def respond_big(conn):
    global _BIG
    if _BIG is None:
        _BIG = b"x" * BIG_BODY
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: %d\r\n\r\n" % BIG_BODY)
    conn.sendall(_BIG)
    return True


def respond_bad_header(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 b"X-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok")
    return True


def respond_trickle(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok":
        conn.sendall(bytes([b]))
        time.sleep(1)
    return True


# name -> (what it does, how it answers, the final status its deliveries
# should reach)
HOSTILE = collections.OrderedDict([
    ("hang", ("never answers", respond_hang, "FAILED")),
    ("status500", ("answers 500 always", respond_500, "FAILED")),
    ("reset", ("resets the connection mid-response", respond_reset, "FAILED")),
    ("bigbody", ("answers 200 with a 10 MB body", respond_big, "SUCCEEDED")),
    ("badheader", ("answers 200 with `X-Name: caf\\xe9` (not UTF-8)",
                   respond_bad_header, "SUCCEEDED")),
    ("trickle", ("trickles its response, one byte a second", respond_trickle,
                 "FAILED")),
])


class HostileReceiver:
    """One raw-socket HTTP server on 127.0.0.1 with one behaviour; a thread
    per connection (Rio caps the connections to one handler)."""

    def __init__(self, name):
        self.name = name
        self.behaviour = HOSTILE[name][1]
        self.requests = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.port}/{self.name}"

    def accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        try:
            while True:
                head, buf = read_request(conn, buf)
                if head is None:
                    return
                with self.lock:
                    self.requests += 1
                if not self.behaviour(conn):
                    return
        except OSError:
            pass
        finally:
            conn.close()


# ---- the load ----

class Load:
    """Paced emits of both events through the Python SDK's asyncio client, in
    a thread of its own; failed emits are retried with the same idempotency
    key until acknowledged (or GIVE_UP_S)."""

    def __init__(self, dsn, rate, hostile_rate, duration):
        self.dsn = dsn
        self.rates = {MAIN_EVENT: rate, HOSTILE_EVENT: hostile_rate}
        self.duration = duration
        self.run_id = uuid.uuid4().hex[:8]
        self.acked = {}           # message id -> event
        self.sent = collections.Counter()
        self.errors = collections.Counter()     # gRPC code -> failed calls
        self.error_times = []     # (seconds since start, code)
        self.first_error = {}     # code -> message
        self.given_up = collections.Counter()   # final code -> events
        self.duplicates = 0       # acks that said duplicate (a retry after a commit)
        self.retried_events = 0
        self.max_ack_s = 0.0
        self.max_lag_s = 0.0
        self.done = threading.Event()
        self.start_time = None
        self.thread = threading.Thread(target=self._thread, daemon=True)

    def start(self):
        self.start_time = time.time()
        self.thread.start()

    def _thread(self):
        try:
            asyncio.run(self._main())
        finally:
            self.done.set()

    async def _main(self):
        options = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]
        async with AsyncClient(self.dsn, retry=NO_RETRY, timeout=5.0,
                               channel_options=options) as client:
            tasks = set()
            pacers = [self._pace(client, ev, r, tasks) for ev, r in self.rates.items()
                      if r > 0]
            await asyncio.gather(*pacers)
            while tasks:
                await asyncio.gather(*list(tasks))

    async def _pace(self, client, event, rate, tasks):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        count = int(rate * self.duration)
        while n < count:
            due = t0 + n / rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                self.max_lag_s = max(self.max_lag_s, now - due)
            task = asyncio.ensure_future(self._emit(client, event, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1

    async def _emit(self, client, event, n):
        key = f"chaos-{self.run_id}-{event}-{n}"
        payload = json.dumps({"n": n, "event": event, "content": "chaos"})
        first = time.time()
        backoff = 0.1
        tries = 0
        self.sent[event] += 1
        while True:
            tries += 1
            try:
                r = await client.emit(event, payload, idempotency_key=key)
            except RioError as e:
                code = e.code.name if e.code is not None else "CLIENT"
                self.errors[code] += 1
                self.error_times.append((time.time() - self.start_time, code))
                self.first_error.setdefault(code, str(e)[:300])
                if code not in RETRIED or time.time() - first > GIVE_UP_S:
                    self.given_up[code] += 1
                    return
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                continue
            self.acked[r.message_id] = event
            self.duplicates += bool(r.duplicate)
            self.retried_events += tries > 1
            self.max_ack_s = max(self.max_ack_s, time.time() - first)
            return


# ---- rio-server process and memory ----

class RssSampler:
    """Samples the current rio-server's VmRSS every 0.25 s."""

    def __init__(self):
        self.pid = None
        self.peak_kb = 0
        self.peak_at = 0.0
        self.samples = 0
        self.stop = threading.Event()
        self.t0 = time.time()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stop.wait(0.25):
            pid = self.pid
            if pid is None:
                continue
            try:
                kb = bench.proc_status_kb(pid, "VmRSS")
            except OSError:
                continue
            self.samples += 1
            if kb > self.peak_kb:
                self.peak_kb, self.peak_at = kb, time.time() - self.t0


def server_supports(binary, flag):
    out = subprocess.run([binary, "--helpfull"], capture_output=True, text=True)
    return f"--{flag}" in out.stdout + out.stderr


# ---- the run ----

class Chaos:
    def __init__(self, args):
        self.args = args
        self.p = dict(PROFILES[args.profile])
        for k in ("duration", "rate", "hostile_rate"):
            if getattr(args, k) is not None:
                self.p[k] = getattr(args, k)
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)
        self.pg = Postgres(args.pg_port, os.path.join(args.pg_dir, "data"))
        self.db = "chaos"
        self.timeline = []   # (seconds since load start, what, seconds it took)
        self.servers = []
        self.hwm_kb = []     # VmHWM of each rio-server process
        self.t0 = None

    def bin(self, name):
        if name == "rio-server":
            return os.path.join(self.args.build, "server", "rio-server")
        return os.path.join(self.args.build, "tools", "benchmark", name)

    def sql(self, query):
        return self.pg.psql(query, db=self.db)

    def sql_rows(self, query):
        out = self.sql(query)
        return [line.split("|") for line in out.splitlines() if line]

    def note(self, what, took=0.0, since=None):
        """Adds to the timeline; `since` (a time.time()) is when it began."""
        at = (since or time.time()) - self.t0 if self.t0 else 0.0
        self.timeline.append((round(at, 1), what, round(took, 2)))
        log(f"  [{at:6.1f} s] {what}" + (f" ({took:.2f} s)" if took else ""))

    # -- actions --

    def restart_postgres(self):
        t = time.time()
        subprocess.run(
            ["runuser", "-u", "postgres", "--",
             os.path.join(self.args.pg_bindir, "pg_ctl"), "-D", self.pg.data_dir,
             "-l", os.path.join(self.args.pg_dir, "postgres.log"),
             "-m", "fast", "-w", "-t", "60", "restart"],
            check=True, capture_output=True, text=True)
        self.note("PostgreSQL restarted (pg_ctl restart -m fast)", time.time() - t, t)

    def start_server(self, n):
        server = Server(self, self.url, os.path.join(self.work, f"rio-server-{n}.log"),
                        self.server_flags)
        self.servers.append(server)
        self.sampler.pid = server.proc.pid
        return server

    def kill_server(self):
        server = self.servers[-1]
        self.hwm_kb.append(bench.proc_status_kb(server.proc.pid, "VmHWM"))
        t = time.time()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        server.log_file.close()
        self.sampler.pid = None
        self.kill_ns = time.time_ns()
        self.note("rio-server killed (SIGKILL)", since=t)
        self.start_server(len(self.servers) + 1)
        self.note("rio-server started again and ready", time.time() - t, t)

    # -- setup --

    def setup(self):
        addr = self.servers[0].address
        channel = grpc.insecure_channel(addr)
        md = [("authorization", f"Bearer {ADMIN_TOKEN}")]
        projects = project_pb2_grpc.ProjectServiceStub(channel)
        handlers = handler_pb2_grpc.HandlerServiceStub(channel)
        projects.CreateProject(project_pb2.CreateProjectRequest(slug="chaos"),
                               metadata=md, timeout=30)
        sender = projects.CreateSender(
            project_pb2.CreateSenderRequest(project="chaos", name="chaos-load"),
            metadata=md, timeout=30)
        self.handlers = []   # (id, name, healthy, expected status, url, events)
        specs = []
        for i in range(2):
            specs.append((f"healthy{i}", True, "SUCCEEDED", self.receiver.url(f"/h/{i}"),
                          [MAIN_EVENT, HOSTILE_EVENT]))
        for name, hostile in self.hostile.items():
            specs.append((name, False, HOSTILE[name][2], hostile.url(), [HOSTILE_EVENT]))
        for name, healthy, expect, url, events in specs:
            for event in events:
                h = handlers.CreateHandler(handler_pb2.CreateHandlerRequest(
                    project="chaos", event=event, url=url,
                    content_type=handler_pb2.Handler.JSON,
                    timeout_ms=HANDLER_TIMEOUT_MS), metadata=md, timeout=30)
                self.handlers.append((h.id, name, healthy, expect, url, event))
        channel.close()
        values = ",".join(f"('{hid}'::uuid, '{name}', {str(healthy).lower()}, '{expect}')"
                          for hid, name, healthy, expect, _u, _e in self.handlers)
        self.sql("CREATE TABLE chaos_handlers (id uuid PRIMARY KEY, name text, "
                 f"healthy boolean, expect text); INSERT INTO chaos_handlers VALUES {values}")
        return sender.dsn

    # -- settling --

    def settle(self, load_end):
        """Polls until no delivery of a healthy handler is pending and no
        hostile one is pending and due; then keeps going (for at most the
        time a hostile delivery needs to run out of attempts) until nothing
        is pending at all, or until every delivery is older than it could
        be and still legitimately pending. Returns (settled, seconds waited,
        deliveries still pending)."""
        t = time.time()
        deadline = t + self.p["settle_limit"]
        # Past this, a delivery emitted before the load ended has had all
        # the time it needs: any still pending is stuck (see checks()).
        hostile_deadline = load_end + self.lifetime_s + 2
        last_print = 0
        while True:
            try:
                healthy, hostile_due, pending = (int(x) for x in self.sql_rows(
                    "SELECT count(*) FILTER (WHERE h.healthy), "
                    "count(*) FILTER (WHERE NOT h.healthy AND d.next_attempt_time <= now()), "
                    "count(*) FROM deliveries d JOIN chaos_handlers h ON h.id = d.handler_id "
                    "WHERE d.status = 'PENDING'")[0])
            except subprocess.CalledProcessError as e:
                log(f"  (settle query failed: {e.stderr.strip()})")
                healthy = hostile_due = pending = -1
            now = time.time()
            settled = healthy == 0 and hostile_due == 0
            if settled and (pending == 0 or now >= hostile_deadline):
                return True, now - t, pending
            if now >= deadline:
                log(f"  not settled after {self.p['settle_limit']} s: {healthy} healthy "
                    f"deliveries pending, {hostile_due} hostile ones due")
                return False, now - t, pending
            if now - last_print >= 10:
                log(f"  waiting: pending {pending} (healthy {healthy}, hostile due "
                    f"{hostile_due})")
                last_print = now
            time.sleep(0.5)

    # -- checks --

    def load_acked(self):
        data = "".join(f"{mid}\t{ev}\n" for mid, ev in self.load.acked.items())
        self.sql("CREATE TABLE chaos_acked (id uuid PRIMARY KEY, event text)")
        subprocess.run(
            ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U",
             "postgres", "-d", self.db, "-c", "COPY chaos_acked FROM STDIN"],
            input=data, check=True, capture_output=True, text=True)

    def checks(self):
        """[(what, SQL condition in words, count)]: each must be 0."""
        lease = self.lease_timeout_s
        c = []

        def check(what, query):
            n = int(self.sql(query) or 0)
            c.append((what, n))
            return n

        check("delivery of a healthy handler not SUCCEEDED",
              "SELECT count(*) FROM deliveries d JOIN chaos_handlers h ON h.id = "
              "d.handler_id WHERE h.healthy AND d.status <> 'SUCCEEDED'")
        check("delivery whose `attempts` differs from its attempt rows (count, or "
              "numbers other than 1..attempts)",
              "SELECT count(*) FROM deliveries d LEFT JOIN (SELECT delivery_id, "
              "count(*) n, max(number) mx, min(number) mn FROM attempts GROUP BY "
              "delivery_id) a ON a.delivery_id = d.id WHERE d.attempts <> "
              "coalesce(a.n, 0) OR (a.n > 0 AND (a.mx <> d.attempts OR a.mn <> 1))")
        check(f"PENDING delivery leased to an instance gone past the lease timeout "
              f"({lease:g} s) and due for over 10 s",
              "SELECT count(*) FROM deliveries d WHERE d.status = 'PENDING' AND "
              "d.lease_owner IS NOT NULL AND d.next_attempt_time < now() - interval "
              "'10 s' AND NOT EXISTS (SELECT 1 FROM rio_instances i WHERE i.id = "
              f"d.lease_owner AND i.heartbeat_time > now() - make_interval(secs => {lease}))")
        check("PENDING delivery overdue by more than 30 s (nobody is sending it)",
              "SELECT count(*) FROM deliveries WHERE status = 'PENDING' AND "
              "next_attempt_time < now() - interval '30 s'")
        check(f"PENDING delivery created over {self.lifetime_s:.0f} s ago (a delivery "
              "needs at most its retry delays, +20 % jitter, its attempts' timeouts, a "
              "lease timeout after the kill and 20 s of slack: it is stuck)",
              "SELECT count(*) FROM deliveries WHERE status = 'PENDING' AND create_time "
              f"< now() - make_interval(secs => {self.lifetime_s:.1f})")
        check(f"delivery with more attempts than the schedule allows ({MAX_ATTEMPTS})",
              f"SELECT count(*) FROM deliveries WHERE attempts > {MAX_ATTEMPTS}")
        check(f"FAILED delivery that did not use all {MAX_ATTEMPTS} attempts",
              f"SELECT count(*) FROM deliveries WHERE status = 'FAILED' AND attempts "
              f"<> {MAX_ATTEMPTS}")
        check("SUCCEEDED delivery whose last attempt was not a 2xx answer",
              "SELECT count(*) FROM deliveries d JOIN attempts a ON a.delivery_id = "
              "d.id AND a.number = d.attempts WHERE d.status = 'SUCCEEDED' AND NOT "
              "(a.status_code BETWEEN 200 AND 299 AND a.error_class = '')")
        check("hostile delivery that ended in another status than its handler's "
              "answers call for (FAILED for hang, 500, reset, trickle; SUCCEEDED for "
              "the 10 MB body and the non-UTF-8 header)",
              "SELECT count(*) FROM deliveries d JOIN chaos_handlers h ON h.id = "
              "d.handler_id WHERE NOT h.healthy AND d.status IN ('SUCCEEDED', "
              "'FAILED', 'CANCELLED') AND d.status <> h.expect")
        check("acknowledged event without exactly one delivery per handler of its "
              "event",
              "SELECT count(*) FROM chaos_acked k WHERE (SELECT count(*) FROM "
              "deliveries d WHERE d.message_id = k.id) <> CASE k.event WHEN "
              f"'{MAIN_EVENT}' THEN 2 ELSE {2 + len(self.hostile)} END")
        return c

    def recording_lag(self):
        """How long after a call to a healthy handler began its outcome was
        written (deliveries.update_time - the last attempt's start_time), by
        percentile, over the whole run and in 10 s steps."""
        q = ("SELECT {} FROM deliveries d JOIN chaos_handlers h ON h.id = d.handler_id "
             "JOIN attempts a ON a.delivery_id = d.id AND a.number = d.attempts "
             "WHERE h.healthy AND d.status = 'SUCCEEDED' {}")
        lag = "extract(epoch from d.update_time - a.start_time)"
        p50, p99, mx = self.sql_rows(q.format(
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {lag}), "
            f"percentile_cont(0.99) WITHIN GROUP (ORDER BY {lag}), max({lag})", ""))[0]
        t0 = self.t0
        steps = self.sql_rows(q.format(
            f"floor((extract(epoch from a.start_time) - {t0}) / 10) * 10 AS s, count(*), "
            f"max({lag})", "GROUP BY 1 ORDER BY 1"))
        return dict(p50_s=round(float(p50), 3), p99_s=round(float(p99), 3),
                    max_s=round(float(mx), 3),
                    steps=[(int(float(s)), int(n), round(float(m), 2)) for s, n, m in steps])

    def hostile_table(self):
        """{name: {"status": {...}, "attempts": {error_class: n}}}"""
        out = collections.OrderedDict((n, {"status": {}, "attempts": {}})
                                      for n in self.hostile)
        for name, status, n in self.sql_rows(
                "SELECT h.name, d.status, count(*) FROM deliveries d JOIN "
                "chaos_handlers h ON h.id = d.handler_id WHERE NOT h.healthy "
                "GROUP BY 1, 2"):
            out[name]["status"][status] = int(n)
        for name, klass, n in self.sql_rows(
                "SELECT h.name, CASE WHEN a.error_class = '' THEN 'ok ' || "
                "a.status_code ELSE a.error_class END, count(*) FROM attempts a JOIN "
                "deliveries d ON d.id = a.delivery_id JOIN chaos_handlers h ON h.id = "
                "d.handler_id WHERE NOT h.healthy GROUP BY 1, 2"):
            out[name]["attempts"][klass] = int(n)
        for name in out:
            out[name]["requests"] = self.hostile[name].requests
        return out

    def error_messages(self):
        """Distinct error-looking lines of the rio-server logs, with counts
        (ids and numbers masked)."""
        counts = collections.Counter()
        example = {}
        for server in self.servers:
            try:
                with open(server.log_path, errors="replace") as f:
                    for line in f:
                        if not re.search(r"cannot|dropped|error|fail|invalid|lost|unavailable|fatal|restored",
                                         line, re.I):
                            continue
                        if re.search(r"^(EMIT|REQUEST|RESPONSE) ", line):
                            continue
                        shape = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", line.strip())
                        shape = re.sub(r"\d+", "N", shape)[:200]
                        counts[shape] += 1
                        example.setdefault(shape, line.strip()[:300])
            except OSError:
                pass
        return [(n, example[s]) for s, n in counts.most_common(12)]

    # -- driver --

    def run(self):
        p = self.p
        url = self.pg.fresh_database(self.db)
        self.url = url
        self.sampler = RssSampler()
        self.receiver = Receiver(self, 1)
        self.hostile = collections.OrderedDict((n, HostileReceiver(n)) for n in HOSTILE
                                               if n in self.args.hostile.split(","))
        grpc_port = free_port()
        self.instance_id = None
        flags = [f"--listen=127.0.0.1:{grpc_port}", f"--retry_schedule={RETRY_SCHEDULE}"]
        if server_supports(self.bin("rio-server"), "egress_allow"):
            # The receivers run on this machine's loopback.
            flags.append("--egress_allow=127.0.0.0/8,::1/128")
        if server_supports(self.bin("rio-server"), "instance_id"):
            self.instance_id = str(uuid.uuid4())
            flags.append(f"--instance_id={self.instance_id}")
        lease = self.args.lease_timeout or p["lease_timeout"]
        if lease:
            flags.append(f"--lease_timeout={lease}")
        self.lease_timeout_s = parse_seconds(lease) if lease else 30.0
        self.lifetime_s = (1.2 * sum(parse_seconds(d) for d in RETRY_SCHEDULE.split(",")) +
                           MAX_ATTEMPTS * HANDLER_TIMEOUT_MS / 1000 +
                           self.lease_timeout_s + 20)
        self.server_flags = flags
        log(f"rio-server flags: {' '.join(flags)}"
            + ("" if self.instance_id else
               " (no --instance_id in this build: after the kill, the new process "
               f"takes the old leases over once they lapse, {self.lease_timeout_s:g} s)"))
        result = {}
        try:
            self.start_server(1)
            dsn = self.setup()
            self.load = Load(dsn, p["rate"], p["hostile_rate"], p["duration"])
            log(f"load: {MAIN_EVENT} at {p['rate']:g}/s and {HOSTILE_EVENT} at "
                f"{p['hostile_rate']:g}/s for {p['duration']:g} s")
            self.t0 = time.time()
            self.sampler.t0 = self.t0
            self.load.start()
            for frac, action in p["actions"]:
                at = self.t0 + frac * p["duration"]
                while time.time() < at and not self.load.done.is_set():
                    time.sleep(min(0.2, max(0.0, at - time.time())))
                {"pg": self.restart_postgres, "kill": self.kill_server}[action]()
            self.load.done.wait()
            load_end = time.time()
            self.note(f"load finished: {len(self.load.acked):,} events acknowledged")
            settled, waited, left = self.settle(load_end)
            self.note(("gave up waiting" if not settled else
                       "no delivery pending" if left == 0 else
                       f"settled: none pending for a healthy handler, none due; {left:,} "
                       "hostile deliveries still PENDING"), waited, load_end)
            server = self.servers[-1]
            alive = server.proc.poll() is None
            if alive:
                self.hwm_kb.append(bench.proc_status_kb(server.proc.pid, "VmHWM"))
            self.sampler.stop.set()
            records = self.receiver.dump(os.path.join(self.work, "arrivals.txt"),
                                         keep=self.args.keep)
            self.load_acked()
            checks = self.checks()
            hostile = self.hostile_table()
            lag = self.recording_lag()
            result = self.reduce(records, checks, hostile, settled, waited, alive)
            result["pending_at_end"] = left
            result["recording_lag"] = lag
        finally:
            for server in self.servers:
                server.stop()
            self.receiver.stop()
        result["server_log"] = self.error_messages()
        return result

    def reduce(self, records, checks, hostile, settled, waited, alive):
        acked = self.load.acked
        healthy_paths = {"/h/0", "/h/1"}
        seen = collections.Counter()
        first_at = {}
        for t, wid, path in records:
            if path in healthy_paths:
                seen[(wid, path)] += 1
                first_at.setdefault((wid, path), t)
        # Repeats of calls first made before the kill (by the killed process).
        kill_ns = getattr(self, "kill_ns", 0)
        extra_of_killed = sum(n - 1 for key, n in seen.items() if first_at[key] < kill_ns)
        delivered = sum(1 for (wid, _p) in seen if wid in acked)
        lost = sum(1 for wid in acked for path in healthy_paths if (wid, path) not in seen)
        extra = sum(n - 1 for n in seen.values())
        unacked_arrived = len({wid for (wid, _p) in seen if wid not in acked})
        by_event = collections.Counter(acked.values())
        sent_events = sum(self.load.sent.values())
        wrong = sum(n for _w, n in checks)
        peak_rss = self.sampler.peak_kb
        return dict(
            date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            rio_version=self.args.rio_version, profile=self.args.profile,
            duration_s=self.p["duration"], rate=self.p["rate"],
            hostile_rate=self.p["hostile_rate"], server_flags=self.server_flags,
            instance_id_flag=self.instance_id is not None,
            lease_timeout_s=self.lease_timeout_s,
            cores=os.cpu_count(), postgresql=self.pg.psql("SHOW server_version"),
            pg_settings={s: self.pg.psql(f"SHOW {s}")
                         for s in ("fsync", "synchronous_commit", "full_page_writes")},
            sent_events=sent_events, acknowledged=len(acked),
            acknowledged_by_event=dict(by_event),
            expected_deliveries=2 * len(acked), delivered=delivered, lost=lost,
            sent_more_than_once=extra, unacknowledged_arrived=unacked_arrived,
            repeated_after_kill=extra_of_killed,
            wrong_state=wrong, checks=checks, hostile=hostile,
            emit_errors=dict(self.load.errors), emit_first_error=self.load.first_error,
            emit_given_up=dict(self.load.given_up),
            emit_retried_events=self.load.retried_events,
            emit_duplicate_acks=self.load.duplicates,
            emit_max_ack_s=round(self.load.max_ack_s, 2),
            load_max_lag_s=round(self.load.max_lag_s, 2),
            errors_by_second=error_windows(self.load.error_times),
            peak_rss_mb=round(peak_rss / 1024, 1),
            peak_rss_at_s=round(self.sampler.peak_at, 1),
            rss_samples=self.sampler.samples,
            vmhwm_mb=[round(k / 1024, 1) for k in self.hwm_kb],
            settled=settled, settle_wait_s=round(waited, 1),
            server_alive_at_end=alive, timeline=self.timeline)


def error_windows(times):
    """Groups error times into windows (a gap over 3 s starts a new one):
    [(from s, to s, {code: n})]."""
    out = []
    for at, code in sorted(times):
        if out and at - out[-1][1] <= 3:
            out[-1][1] = at
            out[-1][2][code] = out[-1][2].get(code, 0) + 1
        else:
            out.append([at, at, {code: 1}])
    return [(round(a, 1), round(b, 1), c) for a, b, c in out]


def parse_seconds(text):
    m = re.fullmatch(r"([\d.]+)(ms|s|m|h)?", text)
    if not m:
        raise SystemExit(f"cannot read the duration {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600,
                                None: 1}[m.group(2)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the report ----

def fmt_counts(d):
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) \
        or "none"


def summary_table(r):
    ok = lambda n: "**0**" if n == 0 else f"**{n:,}** ✗"  # noqa: E731
    rows = [
        ("acknowledged events",
         f"{r['acknowledged']:,} ({fmt_counts(r['acknowledged_by_event'])}) of "
         f"{r['sent_events']:,} emitted"),
        ("delivered (acknowledged webhook-ids at the 2 healthy handlers)",
         f"{r['delivered']:,} of {r['expected_deliveries']:,}"),
        ("lost (acknowledged, missing at a healthy handler)", ok(r["lost"])),
        ("sent more than once (extra arrivals at the healthy handlers)",
         f"{r['sent_more_than_once']:,} ({r['repeated_after_kill']:,} of them calls first "
         "made by the killed process)"),
        ("deliveries not in a correct state", ok(r["wrong_state"])),
        ("outcome recorded after the call began (healthy handlers)",
         f"p50 {r['recording_lag']['p50_s']} s, p99 {r['recording_lag']['p99_s']} s, "
         f"max {r['recording_lag']['max_s']} s"),
        ("emit errors seen by the load (each retried with the same key)",
         fmt_counts(r["emit_errors"])),
        ("emits never acknowledged", fmt_counts(r["emit_given_up"])),
        ("rio-server peak RSS", f"{r['peak_rss_mb']} MB sampled (VmRSS every 0.25 s); "
         f"VmHWM {' / '.join(f'{m} MB' for m in r['vmhwm_mb'])} "
         "(per process: before the kill / at the end)"),
    ]
    lines = ["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def text_table(r):
    rows = [
        ("acknowledged events", f"{r['acknowledged']:,}"),
        ("delivered", f"{r['delivered']:,} of {r['expected_deliveries']:,}"),
        ("lost", f"{r['lost']:,}"),
        ("sent more than once", f"{r['sent_more_than_once']:,}"),
        ("wrong state", f"{r['wrong_state']:,}"),
        ("recording lag", "p50 {p50_s} s, p99 {p99_s} s, max {max_s} s".format(
            **r["recording_lag"])),
        ("emit errors", fmt_counts(r["emit_errors"])),
        ("never acknowledged", fmt_counts(r["emit_given_up"])),
        ("peak RSS", f"{r['peak_rss_mb']} MB (VmHWM {r['vmhwm_mb']} MB)"),
    ]
    lines = [f"  {a:<22} {b}" for a, b in rows]
    for name, h in r["hostile"].items():
        lines.append(f"  {name:<22} deliveries {fmt_counts(h['status'])}; attempts "
                     f"{fmt_counts(h['attempts'])}; requests received {h['requests']:,}")
    for what, n in r["checks"]:
        lines.append(f"  check {n:>6,}  {what}")
    return "\n".join(lines)


def observations(r):
    """What the numbers say, in sentences, for the report."""
    out = []
    if r["lost"]:
        out.append(f"{r['lost']:,} acknowledged deliveries never reached a healthy handler.")
    for what, n in r["checks"]:
        if n:
            out.append(f"{n:,} × {what}.")
    if not r["settled"]:
        out.append(f"The deliveries did not settle within {r['settle_wait_s']} s of the end "
                   "of the load.")
    if not r["server_alive_at_end"]:
        out.append("rio-server was no longer running at the end of the run.")
    for name, h in r["hostile"].items():
        rows = sum(h["attempts"].values())
        if h["requests"] > rows + 2 * MAX_ATTEMPTS:
            out.append(f"`{name}` received {h['requests']:,} requests for {rows:,} recorded "
                       f"attempts: {h['requests'] - rows:,} calls left no attempt row (calls of "
                       "the killed process whose outcome it had not written yet, made again "
                       "after the kill, or outcomes that were never written).")
        if h["status"].get("PENDING"):
            out.append(f"`{name}`: {h['status']['PENDING']:,} deliveries still PENDING at the "
                       "end.")
    if r["emit_given_up"]:
        out.append(f"Emits never acknowledged (after {GIVE_UP_S} s of retries or a final "
                   f"code): {fmt_counts(r['emit_given_up'])}.")
    if not out:
        out.append("Nothing wrong: every acknowledged event reached both healthy handlers, "
                   "and every delivery record is consistent.")
    return out


def markdown(r, command):
    verdict_bad = r["lost"] > 0 or r["wrong_state"] > 0
    out = []
    w = out.append
    w("# Reliability: the chaos run\n")
    w("`tools/chaos` checks Rio's delivery guarantees while things go wrong around it. It builds "
      "the Release tree, starts a private PostgreSQL with durable settings (fsync and "
      "synchronous_commit on) and one `rio-server`, and emits a steady load through the Python "
      "SDK while it restarts PostgreSQL (`pg_ctl restart -m fast`) and kills `rio-server` with "
      "SIGKILL and starts it again with the same flags. The load retries every failed emit with "
      "the same idempotency key until it is acknowledged, as a sender should. Every event goes "
      "to two healthy handlers (`rio-bench-receiver`, which records each arrival with its "
      "`webhook-id`); a second, slower event also goes to hostile handlers, small "
      "raw-socket servers in the tool. Once every delivery has settled, the tool compares the "
      "acknowledged message ids with the arrivals and checks the delivery records in PostgreSQL "
      "directly. It fails (exit status 1) when an acknowledged event is lost or a delivery is in "
      "a wrong state.\n")
    w("```sh\ntools/chaos                  # the run below (3 min of load, ~5 min in all)\n"
      "tools/chaos --smoke          # short load, one PostgreSQL restart, one kill (~40 s; longer "
      "while deliveries are stuck)\n"
      "tools/chaos --duration 600 --rate 500 --hostile-rate 3\n```\n")
    w(f"This run: `{command}` on {r['date']}, Rio {r['rio_version']}, {r['cores']} cores "
      f"(shared with other work), PostgreSQL {r['postgresql']} "
      f"(fsync {r['pg_settings']['fsync']}, synchronous_commit "
      f"{r['pg_settings']['synchronous_commit']}).\n")
    if verdict_bad:
        w(f"**This run fails: {r['lost']:,} acknowledged deliveries lost and "
          f"{r['wrong_state']:,} deliveries in a wrong state on this build.** See "
          "[what the run showed](#what-the-run-showed).\n")
    else:
        w("Nothing acknowledged was lost and every delivery is in a correct state.\n")
    w("## Result\n")
    w(summary_table(r) + "\n")
    if not r["settled"]:
        w(f"The deliveries had **not settled** {r['settle_wait_s']} s after the load ended "
          "(the limit); the checks below were made then.\n")
    elif r["pending_at_end"]:
        w(f"{r['settle_wait_s']} s after the load ended no delivery of a healthy handler was "
          f"pending and none was due, but {r['pending_at_end']:,} hostile deliveries were still "
          "PENDING, past the time they could need.\n")
    else:
        w(f"No delivery was pending any more {r['settle_wait_s']} s after the load ended.\n")
    w("## The run\n")
    w(f"- Load: `{MAIN_EVENT}` at {r['rate']:g} events/s and `{HOSTILE_EVENT}` at "
      f"{r['hostile_rate']:g} events/s for {r['duration_s']:g} s, unary `Emit` calls through "
      "`rio_client.aio.AsyncClient` with the SDK's own retries off: the tool retries a failed "
      f"emit itself (same idempotency key, 0.1 s backoff doubling to 1 s, for up to {GIVE_UP_S} s) "
      "so that it can count each error.")
    w(f"- Handlers: `{MAIN_EVENT}` → the 2 healthy handlers; `{HOSTILE_EVENT}` → the same 2 "
      f"healthy handlers and the {len(r['hostile'])} hostile ones. Every handler: JSON, timeout "
      f"{HANDLER_TIMEOUT_MS // 1000} s. The hostile handlers have an event of their own "
      "because Rio gives one handler at most `--max_per_handler` (32) calls at once: one that "
      "hangs for its whole 2 s timeout gets 16 attempts a second, so at the main rate its "
      "deliveries would pile up for hours.")
    w(f"- rio-server flags: `{' '.join(r['server_flags'])}` (and the benchmark's "
      "`--http_listen= --shutdown_grace=2s`); "
      + ("the same `--instance_id` before and after the kill, so the new process takes its "
         "leases back at once." if r["instance_id_flag"] else
         f"this build has no `--instance_id` flag, so after the kill the new process takes the "
         f"killed one's leases over only once they lapse ({r['lease_timeout_s']:g} s)."))
    w(f"- Emits: {r['emit_retried_events']:,} events needed more than one try; acknowledgements "
      f"that were duplicates (a retry of an emit that had been recorded, answered with the first "
      f"message id): {r['emit_duplicate_acks']:,}; the slowest acknowledgement "
      f"took {r['emit_max_ack_s']} s from the first try; the load fell at most "
      f"{r['load_max_lag_s']} s behind its pace.")
    w(f"- Arrivals at the healthy handlers of message ids the load never saw acknowledged: "
      f"{r['unacknowledged_arrived']:,} (emits recorded whose reply was lost and that were "
      "then answered as duplicates do not count here; these would be emits that were "
      "recorded but never acknowledged).\n")
    w("Timeline (seconds from the start of the load):\n")
    w("| at | what | took |\n|---:|---|---:|")
    for at, what, took in r["timeline"]:
        w(f"| {at} | {what} | {took if took else ''} |")
    w("")
    if r["errors_by_second"]:
        w("Emit errors by when they happened:\n")
        w("| from (s) | to (s) | codes |\n|---:|---:|---|")
        for a, b, c in r["errors_by_second"]:
            w(f"| {a} | {b} | {fmt_counts(c)} |")
        w("")
        w("First message of each code: " + "; ".join(
            f"{k}: `{v}`" for k, v in r["emit_first_error"].items()) + "\n")
    w("How long after a call to a healthy handler began its outcome was written to PostgreSQL "
      "(`deliveries.update_time` − the attempt's `start_time`), by the 10 s of the run in which "
      "the call began: a call whose outcome is not written yet is sent again after a kill.\n")
    steps = r["recording_lag"]["steps"]
    w("| calls begun at (s) | " + " | ".join(str(s) for s, _n, _m in steps) + " |")
    w("|---|" + "---:|" * len(steps))
    w("| max lag (s) | " + " | ".join(str(m) for _s, _n, m in steps) + " |")
    w("")
    w("## Hostile handlers\n")
    w("Deliveries by final status, and attempts (rows of `attempts`) by `error_class` (`ok N` = "
      "no error, HTTP status N); requests = what the handler received.\n")
    w("| handler | behaviour | should end | deliveries | attempts | requests |")
    w("|---|---|---|---|---|---:|")
    for name, h in r["hostile"].items():
        w(f"| `{name}` | {HOSTILE[name][0]} | {HOSTILE[name][2]} | {fmt_counts(h['status'])} | "
          f"{fmt_counts(h['attempts'])} | {h['requests']:,} |")
    w("")
    w("## Checks on the delivery records\n")
    w("Queried with psql once the deliveries settled, with `rio-server` still running; each "
      "count must be 0.\n")
    w("| check | count |\n|---|---:|")
    for what, n in r["checks"]:
        w(f"| {what} | {n:,} |")
    w("")
    w("## What the run showed\n")
    for line in observations(r):
        w(f"- {line}")
    w("")
    if r["server_log"]:
        w("rio-server's log lines about errors (most frequent first, with their count):\n")
        w("```")
        for n, line in r["server_log"]:
            line = line if len(line) <= 150 else line[:149] + "…"
            w(f"{n:>7}  {line}")
        w("```\n")
    return "\n".join(wrap(out))


def wrap(blocks, width=115):
    """Folds long paragraphs and list items (not tables, headings or code)."""
    out, code = [], False
    for block in blocks:
        if block.startswith("```"):
            if "\n" not in block.strip("\n"):  # opens or closes a block
                code = not code
            out.append(block)
        elif code or block.startswith(("|", "#")) or len(block) <= width:
            out.append(block)
        else:
            tail = "\n" if block.endswith("\n") else ""
            indent = "  " if block.startswith("- ") else ""
            out.append(textwrap.fill(block.strip("\n"), width, subsequent_indent=indent,
                                     break_long_words=False, break_on_hyphens=False)
                       + tail)
    return out


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", help="Release build directory")
    ap.add_argument("--pg-port", type=int)
    ap.add_argument("--pg-dir", help="the cluster's directory (data/ inside)")
    ap.add_argument("--pg-bindir", help="where pg_ctl is")
    ap.add_argument("--work", help="scratch directory")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--duration", type=float, help="seconds of load")
    ap.add_argument("--rate", type=float, help=f"{MAIN_EVENT} events per second")
    ap.add_argument("--hostile-rate", type=float,
                    help=f"{HOSTILE_EVENT} events per second")
    ap.add_argument("--lease-timeout", default="",
                    help="rio-server --lease_timeout (default: the server's own in a "
                    "full run, 5s in a smoke run)")
    ap.add_argument("--hostile", default=",".join(HOSTILE),
                    help="the hostile handlers to register, of: " + ",".join(HOSTILE))
    ap.add_argument("--out", default="", help="write the report here (Markdown)")
    ap.add_argument("--command", default="tools/chaos", help="the command, for the report")
    ap.add_argument("--rio-version", default="")
    ap.add_argument("--keep", action="store_true", help="keep the arrivals file")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only write the report (--out) of an earlier run's results.json")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            r = json.load(f)
    else:
        missing = [a for a in ("build", "pg_port", "pg_dir", "pg_bindir", "work")
                   if not getattr(args, a)]
        if missing:
            ap.error("missing --" + ", --".join(m.replace("_", "-") for m in missing))
        chaos = Chaos(args)
        r = chaos.run()
        with open(os.path.join(args.work, "results.json"), "w") as f:
            json.dump(r, f, indent=1)
    if "acknowledged" not in r:
        log("the run did not finish")
        sys.exit(1)
    log("")
    log(text_table(r))
    if args.out:
        text = markdown(r, args.command)
        with open(args.out, "w") as f:
            f.write(text)
        log(f"report: {args.out}")
    if r["lost"] > 0 or r["wrong_state"] > 0:
        log(f"FAILED: {r['lost']:,} acknowledged deliveries lost, "
            f"{r['wrong_state']:,} deliveries in a wrong state")
        sys.exit(1)


if __name__ == "__main__":
    main()
