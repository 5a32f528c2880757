#!/usr/bin/env python3
"""The kindling.sql comm as a remote procedure call, against pyspark's own loop (issue 5).

One run starts a local Spark Connect server (scripts/spark_server.sh, stopped again at the end and
if this script dies) and a Kindling kernel on it, then measures, REPEATS times with Kindling and
pyspark interleaved, N calls of one parameterised statement with a cached plan:

- Kindling, one call at a time: a jupyter_client Session sends each comm_msg {"request_id", "params"}
  and waits for its answer. The client listens on IOPub to its own connection's comm answers only
  (topic "session.<id>.comm_msg"), as a tenant-aware client may, so Python does not decode the
  busy/idle status messages that surround every call.
- Kindling, pipelined: the comm opened with "concurrency": C, W calls in flight.
- Kindling, batched: the comm opened with "concurrency": BC (--batch-concurrency) and BW calls in
  flight (--batch-window, default 1,000: a client sending a thousand parameter values at once), so
  the kernel finds many calls waiting and runs them as one Spark query (docs/comm.md,
  "Batching"); BN (--batch-calls) calls a figure.
- pyspark: spark.sql(query, args={...}).collect() in a loop, and the same from C threads.

Each figure is calls/s over the N calls and the p50/p99 of the per-call latency (send to answer);
the table shows the medians of the repeats. Two statements: a point lookup in a 1,000-row
temporary view (each call is a Spark job), and an expression of the parameter alone (Spark folds
it without a job). Both sides see the same view in their own session.

    .venv/bin/python bench/comm_rpc.py [--calls 500] [--repeats 5] [--kindling build/kindling]
        [--batch-calls 5000 --batch-window 1000 --batch-concurrency 2]
        [--modes kindling_batch,pyspark_threads] [--statements lookup] [--remote sc://...]

Writes bench/comm_results.md (the table) and bench/comm_results.json (every raw figure).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import machine_info, source_state  # noqa: E402
from spark_bench import KindlingKernel, SparkServer  # noqa: E402

try:
    import zmq
    from jupyter_client.session import Session
    from pyspark.sql import SparkSession
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.exit(f"bench/comm_rpc.py: {e}; use the project's .venv/bin/python")

REPO = Path(__file__).resolve().parent.parent
VIEW = ("CREATE OR REPLACE TEMP VIEW rpc_data AS SELECT id, id * 2 AS twice, "
        "concat('name-', id) AS name FROM range(1000)")
STATEMENTS = {
    "lookup": "SELECT id, twice, name FROM rpc_data WHERE id = :id",
    "expression": "SELECT :id * 2 AS twice, concat('name-', :id) AS name",
}
TARGET_CALLS_S = 2000.0
MODES = ("kindling_seq", "pyspark_seq", "kindling_pipe", "pyspark_threads", "kindling_batch")


def log(msg: str) -> None:
    print(f"[comm_rpc {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))]


def summary(latencies: list[float], wall: float) -> dict:
    return {"calls": len(latencies), "calls_s": len(latencies) / wall,
            "p50_ms": pct(latencies, 50) * 1e3, "p99_ms": pct(latencies, 99) * 1e3,
            "loadavg_1m": os.getloadavg()[0]}


_IOPUB: dict[int, "zmq.Socket"] = {}


def comm_answers(kernel: KindlingKernel, session: Session) -> "zmq.Socket":
    """One IOPub subscription per kernel, shared by every comm client: a subscriber that nobody
    reads would receive every comm answer of the connection and, once its queue is full, hold up
    the kernel's IOPub (which does not drop messages) for everyone."""
    sock = _IOPUB.get(id(kernel))
    if sock is None:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, f"session.{session.session}.comm_msg".encode())
        sock.connect(kernel.kc._make_url("iopub"))
        time.sleep(0.3)  # let the subscription reach the kernel before the first answer
        _IOPUB[id(kernel)] = sock
    return sock


class CommClient:
    """The client side of one kindling.sql comm on the kernel's connection (same Jupyter session
    as the kernel client that made the view, so the same Spark session)."""

    def __init__(self, kernel: KindlingKernel, sql: str | None, concurrency: int):
        kc = kernel.kc
        self.session = Session(key=kc.session.key, signature_scheme=kc.session.signature_scheme,
                               session=kc.session.session, username=kc.session.username)
        self.ctx = zmq.Context.instance()
        self.shell = self.ctx.socket(zmq.DEALER)
        self.shell.connect(kc._make_url("shell"))
        self.iopub = comm_answers(kernel, self.session)
        self.comm_id = uuid.uuid4().hex
        # No statement: the kindling.echo target, which answers every message with itself.
        self.echo = sql is None
        self.session.send(self.shell, "comm_open",
                          {"comm_id": self.comm_id,
                           "target_name": "kindling.echo" if self.echo else "kindling.sql",
                           "data": {} if self.echo else {"sql": sql, "concurrency": concurrency}})

    def send(self, rid: int, value: int) -> None:
        self.session.send(self.shell, "comm_msg", {"comm_id": self.comm_id,
                                                   "data": {"request_id": rid, "params": {"id": value}}})

    def recv(self) -> dict:
        while True:  # skip the iopub_welcome and any answer of another (earlier) comm
            _, msg = self.session.recv(self.iopub, mode=0)
            if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == self.comm_id:
                break
        data = msg["content"]["data"]
        if "error" in data:
            raise RuntimeError(f"comm call failed: {data['error']}")
        return data

    def run(self, n: int, window: int, first: int) -> dict:
        sent_at: dict[int, float] = {}
        lat: list[float] = []
        sent = 0
        t0 = time.perf_counter()
        while len(lat) < n:
            while sent < n and sent - len(lat) < window:
                rid = first + sent
                sent_at[rid] = time.perf_counter()
                self.send(rid, rid % 1000)
                sent += 1
            data = self.recv()
            rid = data["request_id"]
            lat.append(time.perf_counter() - sent_at.pop(rid))
            if self.echo:
                if data["params"] != {"id": rid % 1000}:
                    raise RuntimeError(f"wrong echo of {rid}: {data}")
            elif len(data["rows"]) != 1 or data["rows"][0][-1] != f"name-{rid % 1000}":
                raise RuntimeError(f"wrong answer to {rid}: {data['rows']}")
        return summary(lat, time.perf_counter() - t0)

    def close(self) -> None:
        self.session.send(self.shell, "comm_close", {"comm_id": self.comm_id, "data": {}})
        self.shell.close(linger=1000)


def pyspark_run(spark, sql: str, n: int, threads: int, first: int) -> dict:
    def one(i: int) -> float:
        t = time.perf_counter()
        rows = spark.sql(sql, args={"id": i % 1000}).collect()
        if len(rows) != 1:
            raise RuntimeError(f"pyspark: {len(rows)} rows for {i}")
        return time.perf_counter() - t

    t0 = time.perf_counter()
    if threads == 1:
        lat = [one(first + i) for i in range(n)]
    else:
        with ThreadPoolExecutor(threads) as ex:
            lat = list(ex.map(one, range(first, first + n)))
    return summary(lat, time.perf_counter() - t0)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of_others() -> float:
    """Seconds of CPU the whole machine spent, from /proc/stat (busy jiffies / HZ)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = list(map(int, parts))
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / 100.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500, help="calls per figure and repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=8, help="pipelined calls / pyspark threads")
    ap.add_argument("--window", type=int, default=16, help="calls in flight when pipelined")
    ap.add_argument("--batch-calls", type=int, default=5000, help="calls per batched figure")
    ap.add_argument("--batch-window", type=int, default=1000, help="calls in flight, batched mode")
    ap.add_argument("--batch-concurrency", type=int, default=2,
                    help="\"concurrency\" of the batched mode's comm")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    ap.add_argument("--statements", default="echo," + ",".join(STATEMENTS),
                    help="comma-separated subset of echo, " + ", ".join(STATEMENTS))
    ap.add_argument("--warmup", type=int, default=300, help="warm-up calls per statement and side")
    ap.add_argument("--kindling", default=str(REPO / "build" / "kindling"))
    ap.add_argument("--remote", help="use this sc:// server instead of starting one")
    ap.add_argument("--out", default=str(REPO / "bench" / "comm_results"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kl-comm-rpc-"))
    server = None
    kernel = None
    spark = None
    results: dict = {"args": vars(args), "raw": {}, "machine": machine_info(), "source": source_state()}
    try:
        url = args.remote
        if not url:
            log("starting a Spark Connect server")
            server = SparkServer(work / "spark")
            url = server.start()
        log(f"server {url}; starting the kernel")
        kernel = KindlingKernel(args.kindling, url, work)
        kernel.execute(VIEW)
        # The kernel client's own IOPub subscription (everything) is never read from here on: it
        # would collect every status and answer of the run and, once full, hold up the kernel's
        # IOPub, which does not drop messages. The comm clients share one subscription instead.
        kernel.kc.iopub_channel.close()
        spark = SparkSession.builder.remote(url).getOrCreate()
        spark.sql(VIEW)
        conc = args.concurrency
        wanted = set(args.modes.split(","))
        modes = [(m, f) for m, f in [
            ("kindling_seq", lambda c, s, f: c["seq"].run(args.calls, 1, f)),
            ("pyspark_seq", lambda c, s, f: pyspark_run(spark, s, args.calls, 1, f)),
            ("kindling_pipe", lambda c, s, f: c["pipe"].run(args.calls, args.window, f)),
            ("pyspark_threads", lambda c, s, f: pyspark_run(spark, s, args.calls, conc, f)),
            ("kindling_batch", lambda c, s, f: c["batch"].run(args.batch_calls, args.batch_window, f)),
        ] if m in wanted]
        kpid = kernel.proc.pid
        stmts = [("echo", None)] + list(STATEMENTS.items())
        for name, sql in [(n, q) for n, q in stmts if n in args.statements.split(",")]:
            clients = {"seq": CommClient(kernel, sql, 1), "pipe": CommClient(kernel, sql, conc),
                       "batch": CommClient(kernel, sql, args.batch_concurrency)}
            log(f"{name}: warming up ({args.warmup} calls a side)")
            if "kindling_seq" in wanted:
                clients["seq"].run(args.warmup, 1, 10**6)
            if "kindling_pipe" in wanted:
                clients["pipe"].run(args.warmup, args.window, 2 * 10**6)
            if "kindling_batch" in wanted:
                clients["batch"].run(args.warmup, args.batch_window, 3 * 10**6)
            if sql is not None and wanted & {"pyspark_seq", "pyspark_threads"}:
                pyspark_run(spark, sql, args.warmup, conc, 0)
            these = [(m, f) for m, f in modes if sql is not None or m.startswith("kindling")]
            raw = results["raw"].setdefault(name, {m: [] for m, _ in these})
            first = 10**7
            for rep in range(args.repeats):
                for mode, fn in these:
                    cpu0, k0, t0 = cpu_of_others(), process_cpu(kpid), time.perf_counter()
                    r = fn(clients, sql, first)
                    wall = time.perf_counter() - t0
                    r["machine_busy"] = (cpu_of_others() - cpu0) / wall
                    r["kernel_cpu_us"] = (process_cpu(kpid) - k0) / r["calls"] * 1e6
                    first += r["calls"]
                    raw[mode].append(r)
                    log(f"{name} #{rep + 1} {mode}: {r['calls_s']:,.0f} calls/s, "
                        f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
            for c in clients.values():
                c.close()
    finally:
        for sock in _IOPUB.values():
            sock.close(linger=0)
        _IOPUB.clear()
        if spark is not None:
            spark.stop()
        if kernel is not None:
            kernel.close()
        if server is not None:
            server.stop()

    med = {name: {mode: {k: statistics.median(r[k] for r in runs)
                         for k in ("calls_s", "p50_ms", "p99_ms", "machine_busy", "kernel_cpu_us",
                                   "loadavg_1m")}
                  for mode, runs in raw.items()}
           for name, raw in results["raw"].items()}
    results["medians"] = med
    Path(args.out + ".json").write_text(json.dumps(results, indent=1))
    md = render(results, args)
    Path(args.out + ".md").write_text(md)
    print(md)
    return 0


def render(res: dict, args: argparse.Namespace) -> str:
    m = res["medians"]
    lines = [f"Medians of {args.repeats} repeats of {args.calls} calls; pipelined: "
             f"\"concurrency\": {args.concurrency}, {args.window} calls in flight; pyspark threads: "
             f"{args.concurrency}; batched: {args.batch_calls} calls, \"concurrency\": "
             f"{args.batch_concurrency}, {args.batch_window} calls in flight. "
             f"{res['machine'].get('cpus', '?')} CPUs ({res['machine'].get('cpu')}); "
             f"Kindling `{args.kindling}` ({res['source']}).", "",
             "| statement | mode | Kindling calls/s | p50 / p99 (ms) | kernel CPU per call (µs) | "
             "pyspark calls/s | p50 / p99 (ms) | Kindling / pyspark |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in m:
        for mode, kind, peer in (("one at a time", "kindling_seq", "pyspark_seq"),
                                 ("pipelined / threads", "kindling_pipe", "pyspark_threads"),
                                 (f"batched, {args.batch_window} in flight / threads",
                                  "kindling_batch", "pyspark_threads")):
            k, p = m[name].get(kind), m[name].get(peer)
            if not k:
                continue
            peer_cols = (f"{p['calls_s']:,.0f} | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} | "
                         f"{k['calls_s'] / p['calls_s']:.2f}x" if p else "- | - | -")
            lines.append(f"| {name} | {mode} | {k['calls_s']:,.0f} | {k['p50_ms']:.2f} / "
                         f"{k['p99_ms']:.2f} | {k['kernel_cpu_us']:,.0f} | {peer_cols} |")
    through_spark = [(mode, v[mode]) for n, v in m.items() if n != "echo"
                     for mode in ("kindling_pipe", "kindling_batch") if mode in v]
    if through_spark:
        best = max(r["calls_s"] for _, r in through_spark)
        lines += ["", f"Target >= {TARGET_CALLS_S:,.0f} calls/s for a cached plan: "
                      f"{'met' if best >= TARGET_CALLS_S else 'NOT met'} (best {best:,.0f} calls/s "
                      f"through Spark)."]
        for mode, label in (("kindling_pipe", "pipelined"), ("kindling_batch", "batched")):
            cpus = [r["kernel_cpu_us"] for md, r in through_spark if md == mode]
            if cpus:
                cpu = statistics.median(cpus)
                lines.append(f"The kernel's own CPU per {label} Spark call is {cpu:,.0f} µs, i.e. "
                             f"room for about {1e6 / cpu:,.0f} calls/s per core on the kernel's side.")
        lines.append("The echo rows are the same client and kernel path without Spark.")
    runs = [r for v in res["raw"].values() for rs in v.values() for r in rs]
    busy = statistics.median(r["machine_busy"] for r in runs)
    load = statistics.median(r["loadavg_1m"] for r in runs)
    lines += [f"Machine busy (all processes, CPUs in use) during the runs: median {busy:.1f}; "
              f"1-minute load average: median {load:.1f}.",
              "", "Statements: " + "; ".join(f"{k}: `{v}`" for k, v in STATEMENTS.items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
