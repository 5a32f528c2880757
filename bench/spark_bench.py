#!/usr/bin/env python3
"""Kindling's Spark path against the official pyspark Spark Connect client (issue 3).

One run starts its own local Spark Connect server (scripts/spark_server.sh; --remote uses a
running one instead), measures, and stops it again, also when a measurement fails. Every figure
is measured REPEATS times, Kindling and its peer alternating, and reported as the median:

1. `SELECT 1` round trip: a Kindling cell (jupyter_client execute -> execute_reply) and
   `kl_loadgen --mode execute --code 'SELECT 1'` (the same without Python on the client side),
   against pyspark `spark.sql("SELECT 1").collect()` on the same server.
2. A 1,000,000-row x 5-column query through Kindling with its default display limit (1000 rows),
   against pyspark `spark.sql(q).limit(1000).toArrow()`.
3. Arrow IPC decoding of a ~100 MB stream of fixed-width columns: Kindling's kl_arrow_decode
   (bench/arrow_decode/arrow_decode.c, compiled here with the system compiler) against pyarrow.

    .venv/bin/python bench/spark_bench.py [--repeats 7] [--kindling build/kindling]

Writes bench/spark_results.md (the table) and bench/spark_results.json (every raw figure).

Figures that do not depend on the machine's load come with the `SELECT 1` round trip: the
kernel's CPU time per cell (all its threads, /proc/<pid>/task/*/schedstat) and the Spark Connect
RPCs per `SELECT 1`, Kindling's and pyspark's, counted by a forwarding gRPC proxy in a separate
phase (the proxy's own latency never enters a timing). For a before/after comparison on a busy
machine, --baseline measures a second Kindling binary in the same run, call by call interleaved
with the first, and --only select1 skips the rest:

    .venv/bin/python bench/spark_bench.py --only select1 --remote sc://127.0.0.1:15002 \
        --kindling build/kindling --baseline /tmp/old/kindling --out-md /tmp/select1.md
"""

from __future__ import annotations

import argparse
import collections
import ctypes.util
import glob
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The same source and machine description as the protocol benchmark's.
from run import machine_info, source_state  # noqa: E402

try:
    import grpc
    import numpy as np
    import pyarrow as pa
    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.proto import base_pb2
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.exit(f"bench/spark_bench.py: {e}; use the project's .venv/bin/python")

REPO = Path(__file__).resolve().parent.parent

SELECT1 = "SELECT 1"
BIG_QUERY = ("SELECT id, id*2 AS a, CAST(id AS STRING) AS s, id*1.5D AS d, id%7=0 AS b "
             "FROM range({rows})")
DISPLAY_LIMIT = 1000  # Kindling's default --display-limit; the peer uses the same limit

OVERHEAD_TARGET_MS = 1.0
DECODE_TARGET_MB_S = 1000.0


def log(msg: str) -> None:
    print(f"[spark_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------------------------
# Server and kernel


class SparkServer:
    """scripts/spark_server.sh with a private state dir; --owner-pid stops it if we are killed."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.script = REPO / "scripts" / "spark_server.sh"
        self.url = ""

    def start(self) -> str:
        p = subprocess.run([str(self.script), "start", "--state-dir", str(self.state_dir),
                            "--owner-pid", str(os.getpid())],
                           capture_output=True, text=True, timeout=400)
        if p.returncode != 0:
            raise RuntimeError(f"spark_server.sh start failed: {p.stderr.strip()}")
        self.url = p.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop", "--state-dir", str(self.state_dir)],
                       capture_output=True, text=True, timeout=60)


class KindlingKernel:
    """One Kindling kernel process bound to a fresh connection file, with a blocking client."""

    def __init__(self, binary: str, url: str, workdir: Path):
        self.binary = binary
        self.cf = str(workdir / f"kernel-{uuid.uuid4()}.json")
        write_connection_file(self.cf, ip="127.0.0.1", key=uuid.uuid4().hex.encode())
        self.stderr = open(workdir / "kernel.stderr", "ab")
        self.proc = subprocess.Popen([binary, "kernel", "-f", self.cf, "--spark-remote", url,
                                      "--no-history"], stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr)
        self.kc = BlockingKernelClient(connection_file=self.cf)
        self.kc.load_connection_file()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
        except BaseException:
            self.close()
            raise

    def execute(self, code: str, timeout: float = 300) -> tuple[float, float, int]:
        """Runs one cell; returns (seconds to execute_reply, seconds to idle, output bytes).

        IOPub is drained to the cell's `idle` before returning, so the next cell starts clean."""
        kc = self.kc
        t0 = time.perf_counter()
        msg_id = kc.execute(code, store_history=False)
        while True:
            reply = kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        t_reply = time.perf_counter() - t0
        out_bytes = 0
        while True:
            msg = kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("execute_result", "display_data"):
                out_bytes += sum(len(v) if isinstance(v, str) else len(json.dumps(v))
                                 for v in msg["content"].get("data", {}).values())
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        t_idle = time.perf_counter() - t0
        content = reply["content"]
        if content.get("status") != "ok":
            raise RuntimeError(f"Kindling cell {code[:40]!r} failed: "
                               f"{content.get('ename')}: {content.get('evalue')}")
        return t_reply, t_idle, out_bytes

    def cpu_ns(self) -> int:
        """CPU time of every thread of the kernel so far (ns; threads alive now)."""
        total = 0
        for task in glob.glob(f"/proc/{self.proc.pid}/task/*/schedstat"):
            try:
                with open(task, encoding="ascii") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that ended meanwhile
        return total

    def close(self) -> None:
        try:
            self.kc.shutdown()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a kernel that does not shut down is killed below
            pass
        finally:
            self.kc.stop_channels()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()


class CountingProxy:
    """A gRPC server that forwards every Spark Connect call to upstream (host:port) as raw bytes
    and records it in start order: method, and for ReleaseExecute which release it asks for."""

    SERVICE = "/spark.connect.SparkConnectService/"
    STREAMING = {"ExecutePlan", "ReattachExecute"}

    def __init__(self, upstream: str):
        self.channel = grpc.insecure_channel(upstream)
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.active = 0
        self.last_change = time.monotonic()
        proxy = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                method = details.method
                if not method.startswith(CountingProxy.SERVICE):
                    return None
                if method[len(CountingProxy.SERVICE):] in CountingProxy.STREAMING:
                    return grpc.unary_stream_rpc_method_handler(
                        lambda data, ctx: proxy._stream(method, data, ctx))
                return grpc.unary_unary_rpc_method_handler(
                    lambda data, ctx: proxy._unary(method, data, ctx))

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  handlers=[Handler()])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"sc://127.0.0.1:{self.port}"

    def _begin(self, method: str, data: bytes) -> None:
        name = method.rsplit("/", 1)[-1]
        if name == "ReleaseExecute":
            kind = base_pb2.ReleaseExecuteRequest.FromString(data).WhichOneof("release")
            name += f"[{kind}]"
        with self.lock:
            self.calls.append(name)
            self.active += 1
            self.last_change = time.monotonic()

    def _end(self) -> None:
        with self.lock:
            self.active -= 1
            self.last_change = time.monotonic()

    @staticmethod
    def _md(ctx) -> list:
        return [(k, v) for k, v in ctx.invocation_metadata()
                if not k.startswith((":", "grpc-")) and k not in ("user-agent", "te")]

    @staticmethod
    def _fail(ctx, e: grpc.RpcError) -> None:
        ctx.set_trailing_metadata([(k, v) for k, v in (e.trailing_metadata() or ())
                                   if k == "grpc-status-details-bin"])
        ctx.abort(e.code(), e.details() or "")

    def _unary(self, method: str, data: bytes, ctx) -> bytes:
        self._begin(method, data)
        try:
            return self.channel.unary_unary(method)(data, metadata=self._md(ctx))
        except grpc.RpcError as e:
            self._fail(ctx, e)
            raise
        finally:
            self._end()

    def _stream(self, method: str, data: bytes, ctx):
        self._begin(method, data)
        try:
            it = self.channel.unary_stream(method)(data, metadata=self._md(ctx))
            ctx.add_callback(it.cancel)
            yield from it
        except grpc.RpcError as e:
            self._fail(ctx, e)
        finally:
            self._end()

    def mark(self) -> int:
        with self.lock:
            return len(self.calls)

    def settle(self, quiet: float = 0.5, timeout: float = 30.0) -> None:
        """Waits until no call is in flight and none started for `quiet` seconds (the releases
        both clients send in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.active == 0 and time.monotonic() - self.last_change >= quiet:
                    return
            time.sleep(0.05)
        raise RuntimeError("Spark Connect calls still in flight after the count")

    def since(self, mark: int) -> list[str]:
        with self.lock:
            return list(self.calls[mark:])

    def close(self) -> None:
        self.server.stop(grace=None)
        self.channel.close()


def count_rpcs(run_one, proxy: CountingProxy, n: int) -> dict:
    """Spark Connect calls of n runs of run_one (after 3 unmeasured ones): per run by method, and
    the calls of the last run in the order they started."""
    for _ in range(3):
        run_one()
    proxy.settle()
    m0 = proxy.mark()
    for _ in range(n - 1):
        run_one()
    proxy.settle()
    m1 = proxy.mark()
    run_one()
    proxy.settle()
    calls = proxy.since(m0)
    per = collections.Counter(calls)
    return {"per_call": {k: v / n for k, v in sorted(per.items())},
            "total_per_call": len(calls) / n, "sequence": proxy.since(m1)}


def hostport(url: str) -> str:
    """host:port of an sc:// URL."""
    rest = url[len("sc://"):] if url.startswith("sc://") else url
    return rest.split("/", 1)[0].split(";", 1)[0]


# --------------------------------------------------------------------------------------------
# Measurements


def timed(fn, n: int) -> list[float]:
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t0)
    return xs


def run_loadgen(loadgen: str, cf: str, code: str, duration: float, warmup: float) -> dict:
    cmd = [loadgen, "--connection-file", cf, "--mode", "execute", "--code", code, "--clients",
           "1", "--duration", str(duration), "--warmup", str(warmup), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)


def make_arrow_stream(path: Path, target_mb: float, batch_rows: int) -> dict:
    """Writes an IPC stream of 5 fixed-width columns (int64/double, no nulls) of about target_mb
    MB (10^6 bytes); returns the checksums a correct decoder must reproduce."""
    row_bytes = 5 * 8
    rows = max(batch_rows, int(target_mb * 1e6 / row_bytes) // batch_rows * batch_rows)
    rng = np.random.default_rng(3)
    schema = pa.schema([("i0", pa.int64()), ("d0", pa.float64()), ("i1", pa.int64()),
                        ("d1", pa.float64()), ("i2", pa.int64())])
    int_sum = 0
    float_sum = 0.0
    with pa.ipc.new_stream(str(path), schema) as w:
        for start in range(0, rows, batch_rows):
            ids = np.arange(start, start + batch_rows, dtype=np.int64)
            cols = [ids, rng.random(batch_rows), ids * 3 - 7, rng.standard_normal(batch_rows),
                    rng.integers(-2**62, 2**62, batch_rows, dtype=np.int64)]
            for c in cols:
                if c.dtype == np.int64:
                    int_sum += int(c.view(np.uint64).sum(dtype=np.uint64))
                else:
                    float_sum += float(c.sum())
            w.write_batch(pa.record_batch(cols, schema=schema))
    return {"rows": rows, "batch_rows": batch_rows, "bytes": path.stat().st_size,
            "int_sum_u64": int_sum % 2**64, "float_sum": float_sum}


def compile_decoder(workdir: Path, cc: str) -> tuple[Path, str]:
    exe = workdir / "arrow_decode"
    # arrow.c binds LZ4 and Zstandard at first use (runtime/dynlib.c), by the SONAMEs the build
    # passes in; the benchmark's streams are uncompressed, so they are only named here.
    sonames = [f'-DKL_LZ4_SONAME="{ctypes.util.find_library("lz4") or "liblz4.so.1"}"',
               f'-DKL_ZSTD_SONAME="{ctypes.util.find_library("zstd") or "libzstd.so.1"}"']
    sources = ["bench/arrow_decode/arrow_decode.c", "src/spark/arrow.c", "src/runtime/dynlib.c",
               "src/runtime/log.c"]
    cmd = [cc, "-std=c17", "-D_GNU_SOURCE", "-O2", *sonames, "-I", str(REPO / "src"),
           *[str(REPO / f) for f in sources], "-ldl", "-lpthread", "-o", str(exe)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()}")
    return exe, " ".join(cmd[:6] + ["-I src", *sources, "-ldl -lpthread"])


def pyarrow_decode(data: bytes, inner: int) -> tuple[list[float], list[float], tuple]:
    buf = pa.py_buffer(data)  # zero-copy over the same bytes, as kl_arrow_decode borrows them

    def decode():
        return pa.ipc.open_stream(buf).read_all()

    def decode_read():
        t = decode()
        ints = 0
        floats = 0.0
        for col in t.columns:
            for chunk in col.chunks:
                v = chunk.to_numpy(zero_copy_only=True)
                if v.dtype == np.int64:
                    ints += int(v.view(np.uint64).sum(dtype=np.uint64))
                else:
                    floats += float(v.sum())
        return ints % 2**64, floats

    decode()  # warm-up, as the C side does
    sums = decode_read()
    return timed(decode, inner), timed(decode_read, inner), sums


# --------------------------------------------------------------------------------------------
# Report


def fmt(x: float, digits: int) -> str:
    return f"{x:,.{digits}f}"


def rpc_text(calls: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in calls["per_call"].items())


def render_select1(res: dict, args: argparse.Namespace) -> list[str]:
    """The SELECT 1 figures alone (--only select1), with the load-independent ones."""
    s1 = res["medians"]["select1"]
    over = s1["kindling_ms"] - s1["pyspark_ms"]
    lines = [
        f"Medians of {args.repeats} repeats x {args.select_calls} calls; "
        f"{res['machine']['cpus']} CPUs ({res['machine']['cpu']}), load average at start "
        f"{res['machine']['loadavg_at_start'][0]:.2f}, Spark {res['spark_version']} at "
        f"{res['spark_url']}, pyspark {res['versions']['pyspark']}, Kindling `{res['kindling']}`"
        + (f", baseline `{res['baseline']}`" if res.get("baseline") else "") + ".",
        "",
        "| metric | Kindling | peer | difference |",
        "|---|---:|---:|---:|",
        f"| `SELECT 1` cell vs pyspark `collect()` (ms) | {fmt(s1['kindling_ms'], 2)} | "
        f"{fmt(s1['pyspark_ms'], 2)} | {over:+.2f} ms |",
    ]
    if "loadgen_p50_ms" in s1:
        lines.append(f"| `SELECT 1`, C `kl_loadgen` p50 vs pyspark (ms) | "
                     f"{fmt(s1['loadgen_p50_ms'], 2)} | {fmt(s1['pyspark_ms'], 2)} | "
                     f"{s1['loadgen_p50_ms'] - s1['pyspark_ms']:+.2f} ms |")
    if res.get("baseline"):
        lines.append(f"| `SELECT 1` cell, Kindling vs baseline (ms; difference: median of "
                     f"the calls' paired differences) | {fmt(s1['kindling_ms'], 2)}"
                     f" | {fmt(s1['baseline_ms'], 2)} | {s1['paired_diff_ms']:+.2f} ms |")
        lines.append(f"| kernel CPU per `SELECT 1` cell, Kindling vs baseline (ms) | "
                     f"{s1['kindling_cpu_ms']:.3f} | {s1['baseline_cpu_ms']:.3f} | "
                     f"{s1['kindling_cpu_ms'] - s1['baseline_cpu_ms']:+.3f} ms |")
    else:
        lines.append(f"| kernel CPU per `SELECT 1` cell (ms) | {s1['kindling_cpu_ms']:.3f} | | |")
    rpcs = res.get("rpcs")
    if rpcs:
        lines += ["", "Spark Connect calls per `SELECT 1` (counting proxy, "
                  f"{args.count_calls} calls each), and those of the last call in start order:", ""]
        for name in ("kindling", "baseline", "pyspark"):
            if name in rpcs:
                r = rpcs[name]
                lines.append(f"- {name}: {r['total_per_call']:.3g} ({rpc_text(r)}); "
                             f"{' -> '.join(r['sequence'])}")
    lines += ["", "CPU is the kernel process's (every thread, /proc/<pid>/task/*/schedstat) over "
              "each repeat, including what it does after a cell's reply, per call."]
    return lines


def render_markdown(res: dict, args: argparse.Namespace) -> str:
    m = res["medians"]
    if args.only == "select1":
        return "\n".join(render_select1(res, args)) + "\n"
    s1 = m["select1"]
    big = m["big"]
    dec = m["arrow"]
    over = s1["kindling_ms"] - s1["pyspark_ms"]
    over_c = s1["loadgen_p50_ms"] - s1["pyspark_ms"]
    rows = [
        ("`SELECT 1` round trip, jupyter_client cell vs pyspark `collect()` (ms)",
         fmt(s1["kindling_ms"], 2), fmt(s1["pyspark_ms"], 2), f"{over:+.2f} ms"),
        ("`SELECT 1` round trip, C `kl_loadgen` p50 vs pyspark `collect()` (ms)",
         fmt(s1["loadgen_p50_ms"], 2), fmt(s1["pyspark_ms"], 2), f"{over_c:+.2f} ms"),
        ("Kindling kernel CPU per `SELECT 1` cell, all threads (ms)",
         f"{s1['kindling_cpu_ms']:.3f}", "", ""),
        (f"{args.rows:,} x 5 query, first {DISPLAY_LIMIT} rows shown: Kindling cell to "
         f"execute_reply vs pyspark `.limit({DISPLAY_LIMIT}).toArrow()` (ms)",
         fmt(big["kindling_ms"], 1), fmt(big["pyspark_ms"], 1),
         f"{big['kindling_ms'] - big['pyspark_ms']:+.1f} ms "
         f"({big['kindling_ms'] / big['pyspark_ms']:.2f}x)"),
        ("Arrow IPC decode, fixed-width columns (MB/s): kl_arrow_decode vs pyarrow "
         "`open_stream().read_all()`", fmt(dec["kindling_decode_mb_s"], 0),
         fmt(dec["pyarrow_decode_mb_s"], 0),
         f"{dec['kindling_decode_mb_s'] / dec['pyarrow_decode_mb_s']:.2f}x"),
        ("Arrow IPC decode + read every value (MB/s): accessors vs `to_numpy().sum()`",
         fmt(dec["kindling_decode_read_mb_s"], 0), fmt(dec["pyarrow_decode_read_mb_s"], 0),
         f"{dec['kindling_decode_read_mb_s'] / dec['pyarrow_decode_read_mb_s']:.2f}x"),
    ]
    lines = [
        f"Medians of {args.repeats} repeats; {res['machine']['cpus']} CPUs "
        f"({res['machine']['cpu']}), Spark {res['spark_version']} ("
        + (f"at {res['spark_url']}" if args.remote else "local[2], scripts/spark_server.sh")
        + f"), pyspark {res['versions']['pyspark']}, pyarrow "
        f"{res['versions']['pyarrow']}, Kindling `{res['kindling']}` ({res['source']}). "
        f"MB = 10^6 bytes.",
        "",
        "| metric | Kindling | peer | difference / ratio |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    met_o = "met" if over <= OVERHEAD_TARGET_MS else "NOT met"
    met_c = "met" if over_c <= OVERHEAD_TARGET_MS else "NOT met"
    met_d = "met" if dec["kindling_decode_mb_s"] >= DECODE_TARGET_MB_S else "NOT met"
    met_r = "met" if dec["kindling_decode_read_mb_s"] >= DECODE_TARGET_MB_S else "NOT met"
    lines += [
        "",
        "Targets:",
        "",
        f"- Overhead <= {OVERHEAD_TARGET_MS:g} ms over the direct call: {met_o} with a Python "
        f"client ({over:+.2f} ms), {met_c} with the C client ({over_c:+.2f} ms).",
        f"- >= 1 GB/s Arrow decode of fixed-width columns: {met_d} for decoding "
        f"({fmt(dec['kindling_decode_mb_s'], 0)} MB/s), {met_r} for decoding and reading every "
        f"value ({fmt(dec['kindling_decode_read_mb_s'], 0)} MB/s).",
        "",
        f"Stream for row 4-5: {res['arrow_stream']['bytes'] / 1e6:.1f} MB, "
        f"{res['arrow_stream']['rows']:,} rows in batches of "
        f"{res['arrow_stream']['batch_rows']:,}, columns int64, double, int64, double, int64, "
        f"no nulls. Row 3's Kindling output per cell: "
        f"{big['kindling_output_bytes'] / 1e3:.0f} kB of display data; Kindling to `idle` "
        f"{fmt(big['kindling_idle_ms'], 1)} ms; pyspark fetching all {args.rows:,} rows "
        f"(`toArrow()` without limit, context only) {fmt(big['pyspark_full_ms'], 1)} ms.",
        "",
        "Decode-only is zero-copy on both sides (column buffers stay views into the input), so "
        "its cost grows with the number of batches and columns, not with bytes: "
        f"{dec['kindling_decode_ms']:.3f} ms (Kindling) vs {dec['pyarrow_decode_ms']:.3f} ms "
        "(pyarrow) per stream. Decode + read is the figure that touches every byte; Kindling "
        "reads through its per-value accessors (`kl_arrow_get_int`/`_float` after "
        "`kl_arrow_is_null`, as src/render/ does), pyarrow through vectorised numpy sums.",
        "",
        "Row 1's Kindling figure includes jupyter_client's own Python cost (building, signing, "
        "sending, receiving and parsing the messages); row 2 replaces that client with the C load "
        "generator, leaving ZeroMQ and the kernel. The pyspark figure includes pyspark's own "
        "Python work too, so each difference compares Kindling plus a Jupyter client with pyspark "
        "used as a library, not Kindling with a bare gRPC call. Both run the query as pyspark's "
        "`spark.sql()` does: ExecutePlan of a SqlCommand, then ExecutePlan of the relation it "
        "returns.",
    ]
    rpcs = res.get("rpcs")
    if rpcs:
        lines += ["", "Spark Connect calls per `SELECT 1`, counted by a forwarding proxy in a "
                  "separate phase: "
                  + "; ".join(f"{name} {r['total_per_call']:.3g} ({rpc_text(r)})"
                              for name, r in rpcs.items()) + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def select1_repeat(kernels: dict, spark, args: argparse.Namespace) -> dict:
    """One repeat of the `SELECT 1` figure: each Kindling kernel and pyspark in turn, call by call,
    so a change in the machine's load hits all of them alike."""
    reply = {name: [] for name in kernels}
    idle = {name: [] for name in kernels}
    py = []
    cpu0 = {name: kernel.cpu_ns() for name, kernel in kernels.items()}
    order = list(kernels.items())
    for _ in range(args.select_calls):
        order.reverse()  # neither kernel always runs right after pyspark
        for name, kernel in order:
            t_reply, t_idle, _ = kernel.execute(SELECT1)
            reply[name].append(t_reply)
            idle[name].append(t_idle)
        py += timed(lambda: spark.sql(SELECT1).collect(), 1)
    # CPU over the whole repeat, not only from request to idle: work a kernel leaves for after
    # the reply (a release in the background) counts too. The pause lets that work finish.
    time.sleep(0.2)
    cpu = {name: kernel.cpu_ns() - cpu0[name] for name, kernel in kernels.items()}
    rep = {"pyspark_ms": median(py) * 1e3, "pyspark_all_ms": [x * 1e3 for x in py]}
    if "baseline" in kernels:
        # Each call's two cells ran back to back: their difference sees the same load.
        rep["paired_diff_ms"] = median([a - b for a, b in zip(reply["kindling"],
                                                              reply["baseline"])]) * 1e3
    for name in kernels:
        rep[f"{name}_ms"] = median(reply[name]) * 1e3
        rep[f"{name}_idle_ms"] = median(idle[name]) * 1e3
        # Includes what the kernel does while others run (heartbeats): microseconds.
        rep[f"{name}_cpu_ms"] = cpu[name] / args.select_calls / 1e6
        rep[f"{name}_all_ms"] = [x * 1e3 for x in reply[name]]
    return rep


def measure_rpcs(args: argparse.Namespace, url: str, workdir: Path, raw: dict) -> None:
    """Spark Connect calls per `SELECT 1`, through a counting proxy: each Kindling binary, and
    pyspark with a session of its own."""
    proxy = CountingProxy(hostport(url))
    try:
        binaries = {"kindling": args.kindling}
        if args.baseline:
            binaries["baseline"] = args.baseline
        rpcs = {}
        for name, binary in binaries.items():
            log(f"counting the Spark Connect calls of {name} ({binary})")
            kernel = KindlingKernel(binary, proxy.url, workdir)
            try:
                rpcs[name] = count_rpcs(lambda: kernel.execute(SELECT1), proxy, args.count_calls)
            finally:
                kernel.close()
        log("counting the Spark Connect calls of pyspark")
        session = SparkSession.builder.remote(proxy.url).create()
        try:
            rpcs["pyspark"] = count_rpcs(lambda: session.sql(SELECT1).collect(), proxy,
                                         args.count_calls)
        finally:
            session.stop()
        raw["rpcs"] = rpcs
    finally:
        proxy.close()


def measure(args: argparse.Namespace, workdir: Path, raw: dict) -> None:
    full = args.only == "all"
    if full:
        exe, cc_cmd = compile_decoder(workdir, args.cc)
        raw["arrow_compile"] = cc_cmd
        stream = workdir / "fixed_width.arrows"
        log(f"writing a ~{args.arrow_mb:g} MB Arrow stream")
        raw["arrow_stream"] = make_arrow_stream(stream, args.arrow_mb, args.batch_rows)
        data = stream.read_bytes()

    server = None if args.remote else SparkServer(workdir / "spark")
    kernels: dict = {}
    spark = None
    try:
        if server is not None:
            log("starting the Spark Connect server")
            url = server.start()
        else:
            url = args.remote
        raw["spark_url"] = url
        spark = SparkSession.builder.remote(url).getOrCreate()
        raw["spark_version"] = spark.version
        log(f"starting Kindling against {url}")
        kernels["kindling"] = KindlingKernel(args.kindling, url, workdir)
        if args.baseline:
            kernels["baseline"] = KindlingKernel(args.baseline, url, workdir)
        kernel = kernels["kindling"]
        big_q = BIG_QUERY.format(rows=args.rows)

        # Warm-up: the first queries of a session pay for class loading and codegen.
        for _ in range(args.warmup):
            for k in kernels.values():
                k.execute(SELECT1)
            spark.sql(SELECT1).collect()
        for _ in range(10 if full else 0):
            kernel.execute(big_q)
            spark.sql(big_q).limit(DISPLAY_LIMIT).toArrow()
        got = spark.sql(SELECT1).collect()
        assert got[0][0] == 1, got

        for r in range(args.repeats):
            log(f"repeat {r + 1}/{args.repeats}")
            rep: dict = {}
            # 1. SELECT 1, the clients interleaved call by call.
            rep["select1"] = select1_repeat(kernels, spark, args)
            if args.loadgen_duration > 0:
                lg = run_loadgen(args.loadgen, kernel.cf, SELECT1, args.loadgen_duration, 1.0)
                rep["select1"]["loadgen_p50_ms"] = lg["latency_ms"]["p50"]
                rep["select1"]["loadgen"] = lg
            raw["repeats"].append(rep)
            s = rep["select1"]
            base = (f", baseline {s['baseline_ms']:.2f} ms ({s['baseline_cpu_ms']:.3f} ms CPU)"
                    if args.baseline else "")
            log(f"  SELECT 1: kindling {s['kindling_ms']:.2f} ms ({s['kindling_cpu_ms']:.3f} ms "
                f"CPU){base}, pyspark {s['pyspark_ms']:.2f} ms"
                + (f", loadgen p50 {s['loadgen_p50_ms']:.2f} ms" if "loadgen_p50_ms" in s else ""))
            if not full:
                continue
            # 2. The big query with the display limit.
            kb, ki, kout, pb = [], [], [], []
            for _ in range(args.big_calls):
                t_reply, t_idle, nbytes = kernel.execute(big_q)
                kb.append(t_reply)
                ki.append(t_idle)
                kout.append(nbytes)
                pb += timed(lambda: spark.sql(big_q).limit(DISPLAY_LIMIT).toArrow(), 1)
            full_t = timed(lambda: spark.sql(big_q).toArrow(), 1)
            rep["big"] = {"kindling_ms": median(kb) * 1e3, "kindling_idle_ms": median(ki) * 1e3,
                          "kindling_output_bytes": median(kout), "pyspark_ms": median(pb) * 1e3,
                          "pyspark_full_ms": full_t[0] * 1e3}
            # 3. Arrow decoding, C and pyarrow on the same bytes.
            p = subprocess.run([str(exe), str(stream), str(args.arrow_inner)],
                               capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"arrow_decode failed: {p.stderr.strip()}")
            c = json.loads(p.stdout)
            want = raw["arrow_stream"]
            float_tol = 1e-6 * max(1.0, abs(want["float_sum"]))  # summation order differs
            if c["int_sum_u64"] != want["int_sum_u64"] or \
                    abs(c["float_sum"] - want["float_sum"]) > float_tol:
                raise RuntimeError(f"kl_arrow_decode read other values than were written: {c}")
            pd, pdr, psums = pyarrow_decode(data, args.arrow_inner)
            if psums[0] != want["int_sum_u64"]:
                raise RuntimeError("pyarrow read other values than were written")
            mb = len(data) / 1e6
            rep["arrow"] = {
                "kindling_decode_mb_s": mb / median(c["decode_s"]),
                "kindling_decode_read_mb_s": mb / median(c["decode_read_s"]),
                "pyarrow_decode_mb_s": mb / median(pd),
                "pyarrow_decode_read_mb_s": mb / median(pdr),
                "kindling_decode_s": c["decode_s"], "kindling_decode_read_s": c["decode_read_s"],
                "pyarrow_decode_s": pd, "pyarrow_decode_read_s": pdr,
                "kindling_decode_ms": median(c["decode_s"]) * 1e3,
                "pyarrow_decode_ms": median(pd) * 1e3,
            }
            log(f"  big: kindling {rep['big']['kindling_ms']:.1f} ms, pyspark "
                f"{rep['big']['pyspark_ms']:.1f} ms; decode "
                f"{rep['arrow']['kindling_decode_mb_s']:.0f} / "
                f"{rep['arrow']['pyarrow_decode_mb_s']:.0f} MB/s, read "
                f"{rep['arrow']['kindling_decode_read_mb_s']:.0f} / "
                f"{rep['arrow']['pyarrow_decode_read_mb_s']:.0f} MB/s")
        for k in list(kernels.values()):
            k.close()
        kernels.clear()
        if args.count_calls > 0:
            measure_rpcs(args, url, workdir, raw)
    except BaseException:
        for f in (workdir / "kernel.stderr", workdir / "spark" / "logs" / "server.out"):
            if f.exists():
                tail = f.read_text(errors="replace").splitlines()[-15:]
                log(f"last lines of {f.name}:\n" + "\n".join(tail))
        raise
    finally:
        for k in kernels.values():
            k.close()
        if spark is not None:
            try:
                spark.stop()
            except Exception:  # noqa: BLE001 - the server is stopped next anyway
                pass
        if server is not None:
            log("stopping the Spark Connect server")
            server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kindling", default=str(REPO / "build" / "kindling"))
    ap.add_argument("--loadgen", default=str(REPO / "build" / "kl_loadgen"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=150,
                    help="SELECT 1 calls per client first (Spark keeps getting faster for ~100)")
    ap.add_argument("--select-calls", type=int, default=30, help="SELECT 1 calls per repeat")
    ap.add_argument("--loadgen-duration", type=float, default=3.0, help="seconds per repeat")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the big query")
    ap.add_argument("--big-calls", type=int, default=3, help="big-query calls per repeat")
    ap.add_argument("--arrow-mb", type=float, default=100.0, help="size of the Arrow stream")
    ap.add_argument("--batch-rows", type=int, default=10_000)
    ap.add_argument("--arrow-inner", type=int, default=3, help="decodes per repeat")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--remote", default=None, metavar="URL",
                    help="an already running Spark Connect server (sc://host:port) instead of "
                         "starting one")
    ap.add_argument("--only", choices=("all", "select1"), default="all",
                    help="select1: only the SELECT 1 figures (round trip, CPU, RPCs)")
    ap.add_argument("--baseline", default=None, metavar="KINDLING",
                    help="a second kindling binary measured alongside, for before/after")
    ap.add_argument("--count-calls", type=int, default=20,
                    help="SELECT 1 calls per client in the RPC count (0: no count)")
    ap.add_argument("--out-md", default=None,
                    help="default bench/spark_results.md (with --only all; else none)")
    ap.add_argument("--out-json", default=None,
                    help="default bench/spark_results.json (with --only all; else none)")
    args = ap.parse_args()
    if args.only == "all":
        args.out_md = args.out_md or str(REPO / "bench" / "spark_results.md")
        args.out_json = args.out_json or str(REPO / "bench" / "spark_results.json")
    exes = [args.kindling] + ([args.baseline] if args.baseline else [])
    if args.loadgen_duration > 0:
        exes.append(args.loadgen)
    for exe in exes:
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench/spark_bench.py: {exe} is not an executable; build it first")

    # SIGTERM/SIGHUP unwind through the finally blocks, so the server and kernel are stopped.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    raw: dict = {"command": " ".join([Path(sys.executable).name] + sys.argv),
                 "kindling": os.path.relpath(args.kindling, REPO), "source": source_state(),
                 "baseline": args.baseline,
                 "machine": machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "versions": {"pyspark": __import__("pyspark").__version__,
                              "pyarrow": pa.__version__, "python": platform.python_version()},
                 "options": vars(args), "repeats": []}
    with tempfile.TemporaryDirectory(prefix="kl-spark-bench-") as tmp:
        measure(args, Path(tmp), raw)

    reps = raw["repeats"]
    raw["medians"] = {
        group: {k: median([r[group][k] for r in reps]) for k, v in reps[0][group].items()
                if isinstance(v, (int, float))}
        for group in ("select1", "big", "arrow") if group in reps[0]
    }
    raw["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    md = render_markdown(raw, args)
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    if args.out_md:
        Path(args.out_md).write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
