"""Load benchmark of the live event server: many SSE viewers over loopback.

Starts a server process (``bench/_sse_server.py``: an `EventServer` fed by stdin commands)
and ``--procs`` client processes (``bench/_sse_clients.py``: raw HTTP/1.1 streams on gevent
sockets), both driven through ``bench/_sse_procs.py``, then runs these phases and prints a
table:

1. connect ``--clients`` streams; server RSS before/after gives RSS per idle client;
2. publish ``--rate`` events/s for ``--duration`` s: publish-to-receive latency, lost, errors;
3. ``--slow K``: K streams stop reading; the others' latency, and when the K are dropped;
4. ``--resume-trials M``: M random forced disconnects resumed by ``Last-Event-ID`` during a
   publish; every stream must end with exactly the published sequence;
5. ``--churn R``: R connects and R disconnects a second for ``--churn-duration`` s; server
   RSS, greenlets and fds against the idle baseline;
6. ``--health``: the server process runs the real pipeline on a generated session video
   (``--health-video``, default: the cached 10-minute 1080p session of bench/speed.py)
   while every stream stays open; ``/health`` is probed on a new connection every 20 ms.

Everything runs on 127.0.0.1, load generator and server on the same machine. Example:
``python bench/sse_load.py --clients 5000 --rate 20 --duration 20 --procs 2``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from _common import DEFAULT_WORK, ensure_session
from _sse_procs import HERE, REPLY_TIMEOUT_S, Child, ServerDied, cpu_of


class Bench:
    """One server process, P client processes, and the figures of each phase."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        py = sys.executable
        max_conn = args.clients + args.churn * 3 + 100
        self.server = Child(
            [
                py,
                str(HERE / "_sse_server.py"),
                "0",
                str(max_conn),
                str(args.heartbeat),
                str(args.client_timeout),
                *(["--broker", args.broker, "--workers", str(args.workers)] if args.broker else []),
            ]
        )
        ready = self.server.readline(60).split()
        if ready[0] != "READY":
            raise SystemExit(f"server did not start: {' '.join(ready)}")
        self.port = int(ready[1])
        self.server_pids = [int(pid) for pid in ready[2].split(",")]
        self.clients = [Child([py, str(HERE / "_sse_clients.py")]) for _ in range(args.procs)]
        self.published = 0
        self.rows: list[tuple[str, str, str]] = []

    # -- measurements -------------------------------------------------------------------------

    def server_stats(self) -> dict:
        return self.server.ask("stats", 120)

    def metrics(self) -> dict:
        url = f"http://127.0.0.1:{self.port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                text = response.read().decode()
        except OSError as exc:
            code = self.server.proc.poll()
            if code is not None:
                raise ServerDied(f"the server process exited with code {code}") from None
            raise ServerDied(f"/metrics failed: {exc}") from None
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.split()
                values[name] = float(value)
        return values

    def row(self, name: str, value: str, target: str = "") -> None:
        self.rows.append((name, value, target))
        print(f"  {name:<44} {value:<30} {target}", flush=True)

    def split(self, total: int) -> list[int]:
        share, extra = divmod(total, len(self.clients))
        return [share + (i < extra) for i in range(len(self.clients))]

    def ask_all(self, orders: list[dict], timeout: float = REPLY_TIMEOUT_S) -> list[dict]:
        for child, order in zip(self.clients, orders, strict=True):
            child.send(json.dumps(order))
        return [json.loads(child.readline(timeout)) for child in self.clients]

    # -- phases -------------------------------------------------------------------------------

    def connect(self) -> None:
        args = self.args
        time.sleep(1.0)
        before = self.server_stats()
        self.baseline_empty = before
        orders = [
            {"cmd": "connect", "port": self.port, "n": n, "frozen": k, "concurrency": 100}
            for n, k in zip(self.split(args.clients), self.split(args.slow), strict=True)
        ]
        t0 = time.perf_counter()
        replies = self.ask_all(orders)
        wall = time.perf_counter() - t0
        times = sorted(t for r in replies for t in r["connect_ms"])
        connected = len(times)
        time.sleep(2.0)
        after = self.server_stats()
        self.baseline = after
        per_client = (after["rss_kb"] - before["rss_kb"]) / max(connected, 1)
        target_ok = "ok" if connected == args.clients else "FAIL"
        self.row("clients connected", f"{connected} / {args.clients}", target_ok)
        errors: Counter = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        self.row("connect errors", json.dumps(dict(errors)) if errors else "0")
        self.row("connect wall time (all)", f"{wall:.2f} s ({connected / wall:.0f}/s)")
        self.row("connect time p50 / p99 / max", f"{pct(times, 50):.1f} / {pct(times, 99):.1f} / "
                 f"{times[-1] if times else 0:.1f} ms")  # fmt: skip
        mark = "ok" if per_client <= 20 else "FAIL"
        self.row(
            "server RSS idle: before -> after",
            f"{before['rss_kb'] / 1024:.1f} -> {after['rss_kb'] / 1024:.1f} MiB",
        )
        self.row("server RSS per idle client", f"{per_client:.1f} KiB", f"<= 20 KB: {mark}")
        greenlets = after["greenlets"]
        greenlets = "n/a (in workers)" if greenlets is None else greenlets
        self.row("server fds / greenlets (idle)", f"{after['fds']} / {greenlets}")

    def publish(self, phase: str, duration: float) -> dict:
        args = self.args
        count = max(1, int(args.rate * duration))
        reply = self.server.ask(f"publish {phase} {count} {args.rate} {args.pad}", duration + 60)
        first, last = self.published + 1, self.published + reply["sent"]
        self.published = last
        if reply["sent"] != count:
            self.row(f"[{phase}] events not accepted by emit()", str(count - reply["sent"]), "FAIL")
        return {"first": first, "last": last, "elapsed": reply["elapsed_s"]}

    def collect(self, phase: str, ids: dict) -> dict:
        time.sleep(self.args.drain)
        orders = [{"cmd": "report", "phase": phase, **{k: ids[k] for k in ("first", "last")}}]
        replies = self.ask_all(orders * len(self.clients))
        histogram: Counter = Counter()
        handled: Counter = Counter()
        for reply in replies:
            histogram.update({int(k): v for k, v in reply["histogram"].items()})
            handled.update({int(k): v for k, v in reply["handled"].items()})
        errors: Counter = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {
            "p50": hist_pct(histogram, 50),
            "p99": hist_pct(histogram, 99),
            "handled_p50": hist_pct(handled, 50),
            "handled_p99": hist_pct(handled, 99),
            "max": max(r["max_ms"] for r in replies),
            "received": sum(histogram.values()),
            "lost": sum(r["lost"] for r in replies),
            "dups": sum(r["dups"] for r in replies),
            "bad": sum(r["bad_streams"] for r in replies),
            "checked": sum(r["checked"] for r in replies),
            "errors": dict(errors),
            "resumes": sum(r["resumes"] for r in replies),
            "live": sum(r["live"] for r in replies),
            "events": ids["last"] - ids["first"] + 1,
        }

    def report_phase(self, phase: str, result: dict, latency_target: str = "") -> None:
        self.row(
            f"[{phase}] latency (arrival) p50/p99/max",
            f"{result['p50']} / {result['p99']} / {result['max']:.0f} ms",
            latency_target,
        )
        self.row(
            f"[{phase}] handled by client p50 / p99",
            f"{result['handled_p50']} / {result['handled_p99']} ms",
            "(includes the load generator's own lag)",
        )
        lost_mark = "ok" if result["lost"] == 0 and result["dups"] == 0 else "FAIL"
        self.row(
            f"[{phase}] events x streams, lost, dups",
            f"{result['events']} x {result['checked']}, {result['lost']}, {result['dups']}",
            f"0 lost: {lost_mark}",
        )
        errors = result["errors"]
        self.row(f"[{phase}] client errors (cumulative)", json.dumps(errors) if errors else "0")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user + system) used so far by the server and by all client processes."""
        server = sum(cpu_of(pid) for pid in self.server_pids)
        return server, sum(cpu_of(child.proc.pid) for child in self.clients)

    def hold(self) -> None:
        """Stay idle past a few heartbeats: every stream must still be open, with no error."""
        time.sleep(self.args.hold)
        result = self.collect("none", {"first": 1, "last": 0})
        errors = result["errors"]
        mark = "ok" if not errors and result["live"] == self.args.clients else "FAIL"
        self.row(
            f"[hold {self.args.hold:.0f} s idle] streams open, errors",
            f"{result['live']}, {json.dumps(errors) if errors else 0}",
            f"all open, 0 errors: {mark}",
        )

    def steady(self) -> dict:
        cpu0, t0 = self.cpu_seconds(), time.monotonic()
        ids = self.publish("steady", self.args.duration)
        cpu1, wall = self.cpu_seconds(), time.monotonic() - t0
        self.row(
            "[steady] CPU busy: server / clients",
            f"{(cpu1[0] - cpu0[0]) / wall:.0%} / {(cpu1[1] - cpu0[1]) / wall:.0%} of one core",
        )
        result = self.collect("steady", ids)
        target = ""
        if self.args.clients >= 10_000:
            target = "p99 <= 1000 ms: " + ("ok" if result["p99"] <= 1000 else "FAIL")
        elif self.args.clients >= 5_000:
            target = "p99 <= 250 ms: " + ("ok" if result["p99"] <= 250 else "FAIL")
        self.report_phase("steady", result, target)
        return result

    def frozen(self, baseline: dict) -> None:
        args = self.args
        dropped_before = self.metrics().get("diveanalyzer_sse_clients_dropped_total", 0)
        self.ask_all([{"cmd": "freeze"}] * len(self.clients))
        frozen_at = time.monotonic()
        duration = max(args.duration, args.slow_watch)
        self.server.send(f"publish frozen {int(args.rate * duration)} {args.rate} {args.pad}")
        dropped_after = None
        deadline = frozen_at + duration + 5
        while time.monotonic() < deadline:
            time.sleep(1.0)
            dropped = self.metrics().get("diveanalyzer_sse_clients_dropped_total", 0)
            if dropped - dropped_before >= args.slow and dropped_after is None:
                dropped_after = time.monotonic() - frozen_at
                break
        reply = json.loads(self.server.readline(duration + 60))
        first, last = self.published + 1, self.published + reply["sent"]
        self.published = last
        result = self.collect("frozen", {"first": first, "last": last})
        dropped = self.metrics().get("diveanalyzer_sse_clients_dropped_total", 0) - dropped_before
        change = (result["p99"] - baseline["p99"]) / max(baseline["p99"], 1) * 100
        steady_mark = "ok" if change < 10 else "FAIL"
        self.report_phase("frozen", result, f"p99 moves {change:+.0f} % (< 10 %): {steady_mark}")
        when = f"all {args.slow} within {dropped_after:.1f} s" if dropped_after else "not all"
        mark = "ok" if dropped_after is not None and dropped_after <= 20 else "FAIL"
        self.row("[frozen] streams dropped by the server", f"{dropped:.0f}; {when}",
                 f"within 20 s: {mark}")  # fmt: skip

    def resume(self) -> None:
        args = self.args
        duration = args.duration
        orders = [
            {"cmd": "kick", "trials": m, "over_s": duration} for m in self.split(args.resume_trials)
        ]
        for child, order in zip(self.clients, orders, strict=True):
            child.send(json.dumps(order))
        ids = self.publish("resume", duration)
        for child in self.clients:
            json.loads(child.readline(duration + 120))
        result = self.collect("resume", ids)
        self.report_phase("resume", result, "(includes replayed events)")
        mark = "ok" if result["bad"] == 0 and result["lost"] == 0 else "FAIL"
        self.row("[resume] forced reconnects resumed", str(result["resumes"]))
        self.row("[resume] streams with inexact sequence", str(result["bad"]), f"0: {mark}")

    def churn(self) -> None:
        args = self.args
        base = self.server_stats()
        orders = [
            {"cmd": "churn", "port": self.port, "rate": r, "duration": args.churn_duration}
            for r in self.split(args.churn)
        ]
        replies = self.ask_all(orders, args.churn_duration + 120)
        opened = sum(r["opened"] for r in replies)
        time.sleep(max(5.0, args.drain))
        after = self.server_stats()
        closed = sum(r["closed"] for r in replies)
        spell = f"{opened} / {closed} in {args.churn_duration:.0f} s"
        self.row("[churn] streams opened / closed", spell)
        for key, unit in (("rss_kb", "KiB"), ("greenlets", ""), ("fds", "")):
            if after[key] is None:
                continue  # not countable from here (worker processes)
            change = (after[key] - base[key]) / max(base[key], 1) * 100
            mark = "ok" if abs(change) <= 10 else "FAIL"
            spell = f"{base[key]} -> {after[key]} {unit} ({change:+.1f} %)"
            self.row(f"[churn] server {key}: before -> after", spell, f"10 %: {mark}")

    def health(self) -> None:
        """``/health`` latency while the server's own process runs the pipeline."""
        video = self.args.health_video or ensure_health_video()
        out = tempfile.mkdtemp(prefix="sse-bench-process-")
        try:
            self.server.ask(f"process {video} {out}")
            t0 = time.monotonic()
            times, failures = probe_health_until_done(self.port, self.server)
            wall = time.monotonic() - t0
            result = json.loads(self.server.readline(3600))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        self.row("[health] processed while streaming", f"{wall:.1f} s, {result}")
        spell = f"{pct(times, 50):.1f} / {pct(times, 99):.1f} / {max(times, default=0):.1f} ms"
        mark = "ok" if times and pct(times, 99) <= 50 and not failures else "FAIL"
        self.row(f"[health] {len(times)} probes p50 / p99 / max", spell, f"p99 <= 50 ms: {mark}")
        if failures:
            self.row("[health] failed probes", str(failures), "FAIL")

    def run(self) -> None:
        args = self.args
        print(
            f"SSE load: {args.clients} clients in {args.procs} client process(es), "
            f"{args.rate:g} events/s, {args.pad} B padding, server pid {self.server_pids} "
            f"port {self.port}\nNOTE: the load generator runs on the same {os.cpu_count()}-core "
            "machine as the server (127.0.0.1), so client CPU competes with the server.",
            flush=True,
        )
        self.row("load average at start (1 min)", f"{os.getloadavg()[0]:.2f}")
        self.connect()
        if args.hold > 0:
            self.hold()
        if args.duration > 0:
            baseline = self.steady()
            if args.slow:
                self.frozen(baseline)
        if args.resume_trials:
            self.resume()
        if args.churn:
            self.churn()
        if args.health:
            self.health()
        self.row("load average at end (1 min)", f"{os.getloadavg()[0]:.2f}", "(other work skews)")

    def close(self) -> None:
        for child in self.clients:
            with contextlib.suppress(OSError):
                child.send(json.dumps({"cmd": "close"}))
        for child in self.clients:
            child.end()
        with contextlib.suppress(OSError):
            self.server.send("quit")
        self.server.end()


def ensure_health_video() -> Path:
    """The session bench/speed.py uses (rendered once into its cache)."""
    settings = argparse.Namespace(
        work=DEFAULT_WORK, duration=600.0, size="1920x1080", fps=30.0, seed=7
    )
    return ensure_session(settings)


def probe_health_until_done(port: int, server: Child) -> tuple[list[float], int]:
    """GET /health on a fresh connection every 20 ms until the server says processing ended."""
    server.send("wait")
    times, failures = [], 0
    while not server.has_replied():
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            if b" 200 " not in reply.split(b"\r\n", 1)[0]:
                failures += 1
        except OSError:
            failures += 1
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return times, failures


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``, in any order."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def hist_pct(histogram: Counter, q: float) -> int:
    """The q-th percentile of a 1 ms histogram (upper edge of the bucket, in ms)."""
    total = sum(histogram.values())
    if total == 0:
        return 0
    rank, seen = total * q / 100, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket + 1
    return max(histogram) + 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="concurrent SSE streams")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    parser.add_argument("--pad", type=int, default=200, help="payload padding bytes")
    parser.add_argument("--slow", type=int, default=0, help="K streams that stop reading")
    parser.add_argument("--slow-watch", type=float, default=30.0, help="seconds to watch them")
    parser.add_argument("--resume-trials", type=int, default=0, help="M forced reconnects")
    parser.add_argument("--churn", type=int, default=0, help="connects+disconnects per second")
    parser.add_argument("--churn-duration", type=float, default=60.0, help="seconds of churn")
    parser.add_argument("--hold", type=float, default=0.0, help="idle seconds after connecting")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="server heartbeat (s)")
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=15.0,
        help="server write deadline (EventServer default)",
    )
    parser.add_argument(
        "--health", action="store_true", help="probe /health while the server runs the pipeline"
    )
    parser.add_argument("--health-video", type=Path, help="video for --health (default: cached)")
    parser.add_argument("--broker", metavar="URL", help="serve with --broker URL (Redis)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N (with --broker)")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait after publishing")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.procs < 1 or args.rate <= 0 or args.slow >= args.clients:
        parser.error("need clients >= 1, procs >= 1, rate > 0 and slow < clients")
    if args.broker and (args.slow or args.churn or args.health):
        parser.error("with --broker: connect, --hold, steady and --resume-trials phases only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.run()
    except (ServerDied, TimeoutError, EOFError) as exc:
        print(f"ABORTED: {exc}", flush=True)
        return 1
    finally:
        bench.close()
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
