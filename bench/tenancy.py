"""Many connections on one kernel: N = 1, 10, 100, 1000 concurrent connections (kl_loadgen clients,
each its own socket and session), each doing magic-only executes, then each doing `SELECT 1` cells
against a Spark Connect server. For each N: round trips per second, p50/p99 latency and the
kernel's RSS. The magic-only load also runs against ipykernel (`pass`), the peer measured in the
same run. Those runs are closed loops (each client sends again as soon as it has its reply): they
measure capacity. The latency at a given load is measured apart, in open loops: --offered-clients
connections sending on a schedule at each total rate in --offered. Medians over --repeats runs.

With --floor, the closed loops also run against kl_rt_floor (bench/floor/rt_floor.c), which
answers executes with the messages Kindling sends for a magic but does nothing else: no tenants, no
JSON trees, one thread on libzmq. What it reaches with the same load generator on the same cores
is the most any libzmq kernel could show here, the yardstick for Kindling's figures.

The RSS an idle connection costs is measured apart, on a fresh kernel: --idle-clients connections
(each its own DEALER identity and Jupyter session) send a kernel_info_request and one execute
request, then stay connected and idle while the kernel's RSS is read; the growth divided by their
number is the cost of one. (The load runs' RSS growth divided by N is not that figure: by the time
it is read the load generator has disconnected, and it includes the allocator's high-water mark of
the load itself, which grows with the throughput rather than with the connections.)

    bench/tenancy.sh                           # builds, starts a local Spark server, runs this
    bench/tenancy.py --kindling B/kindling --loadgen B/kl_loadgen --spark-remote sc://...

Writes bench/tenancy_results.md and bench/tenancy_results.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import zmq
from jupyter_client import KernelManager
from jupyter_client.session import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402 - the protocol benchmark's helpers

HERE = Path(__file__).resolve().parent


def start(argv: list[str], key: str, root: Path) -> KernelManager:
    kernel = common.Kernel(key, key, argv, "")
    ksm = common.write_kernelspecs([kernel], root / key)
    km = KernelManager(kernel_name=key, kernel_spec_manager=ksm)
    km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    kc.stop_channels()
    return km


def loadgen(args: argparse.Namespace, cf: str, clients: int, code: str, duration: float,
            iopub: str, rate_per_client: float = 0) -> dict:
    """One kl_loadgen run. iopub: "own" (each client its own IOPub SUB on its session's topics,
    which Kindling and kl_rt_floor publish) or "shared" (one SUB subscribed to everything, for a
    kernel without per-session topics); either way a request is complete at its reply and its
    idle status."""
    cmd = [args.loadgen, "--connection-file", cf, "--mode", "execute", "--clients", str(clients),
           "--duration", str(duration), "--warmup", str(args.warmup), "--code", code, "--json",
           "--stall-timeout", "60", "--iopub", iopub]
    if rate_per_client:
        cmd += ["--rate", f"{rate_per_client:g}"]
    if args.transport:
        cmd += ["--transport", args.transport]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)


class FloorServer:
    """kl_rt_floor on a connection file of its own, shaped like the KernelManager that series()
    reads (a connection_file, and the pid of the process under load)."""

    def __init__(self, binary: str, root: Path) -> None:
        self.connection_file = str(root / "floor.json")
        key = "floor-key"
        socks = [socket.socket() for _ in range(5)]
        for sk in socks:
            sk.bind(("127.0.0.1", 0))
        ports = [sk.getsockname()[1] for sk in socks]
        for sk in socks:
            sk.close()
        Path(self.connection_file).write_text(json.dumps({
            "transport": "tcp", "ip": "127.0.0.1", "key": key,
            "signature_scheme": "hmac-sha256", "shell_port": ports[0], "iopub_port": ports[1],
            "stdin_port": ports[2], "control_port": ports[3], "hb_port": ports[4]}))
        self.proc = subprocess.Popen([binary, self.connection_file], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{binary} exited at once ({self.proc.returncode})")
        self.provisioner = types.SimpleNamespace(process=self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def series(args: argparse.Namespace, km: KernelManager, code: str, ns: list[int],
           iopub: str) -> dict:
    """One kernel, N growing: every run's clients are new connections. The RSS growth over a run
    divided by its N is reported as the load's footprint, not as the cost of an idle connection
    (see held_idle)."""
    pid = km.provisioner.process.pid
    out = {}
    for n in ns:
        before = common.rss_mib(pid)
        r = loadgen(args, km.connection_file, n, code, args.duration, iopub)
        time.sleep(0.5)
        after = common.rss_mib(pid)
        r["rss_before_mib"], r["rss_after_mib"] = before, after
        r["rss_growth_per_connection_kib"] = max(0.0, after - before) * 1024 / n
        if r.get("latency_samples") == 0:
            # No request sent inside the window was answered inside it (SELECT 1 at 1,000
            # clients: each waits longer than the window): there is no latency to report.
            r["latency_ms"] = {k: None for k in r["latency_ms"]}
        common.log(f"    N={n}: {r['rate_per_s']:.0f} rt/s, p50 {r['latency_ms']['p50']} ms, "
                   f"p99 {r['latency_ms']['p99']} ms, RSS {after:.1f} MiB "
                   f"(+{r['rss_growth_per_connection_kib']:.1f} KiB per client of the run), "
                   f"errors {r['errors']}")
        out[str(n)] = r
    return out


def offered_series(args: argparse.Namespace, km: KernelManager, code: str, n: int,
                   offered: list[float], iopub: str) -> dict:
    """Open loop: n connections, each sending on a fixed schedule so that all of them together
    offer the given executes per second; the latency at that load, rather than at saturation."""
    out = {}
    for total in offered:
        r = loadgen(args, km.connection_file, n, code, args.duration, iopub, total / n)
        fair = r.get("per_client_round_trips", {})
        common.log(f"    N={n}, {total:,.0f} rt/s offered: {r['rate_per_s']:.0f} rt/s, "
                   f"p50 {r['latency_ms']['p50']:.2f} ms, p99 {r['latency_ms']['p99']:.2f} ms, "
                   f"max {r['latency_ms']['max']:.2f} ms, per-client round trips "
                   f"{fair.get('min')}-{fair.get('max')}, errors {r['errors']}")
        out[f"{total:g}"] = r
    return out


def open_connections(km: KernelManager, ctx: zmq.Context, sub: zmq.Socket, n: int, code: str,
                     timeout: float = 120) -> list[zmq.Socket]:
    """n new connections, each sending kernel_info_request and one execute_request; returns their
    sockets, still connected, once every reply has arrived."""
    info = km.get_connection_info()
    key = info["key"] if isinstance(info["key"], bytes) else info["key"].encode()
    url = f"{info['transport']}://{info['ip']}:{info['shell_port']}"
    socks, pending = [], {}
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    for _ in range(n):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(url)  # pyzmq gives every DEALER its own identity
        session = Session(key=key, signature_scheme=info["signature_scheme"])
        session.send(s, "kernel_info_request", {})
        session.send(s, "execute_request", {"code": code, "silent": False, "store_history": True,
                                            "user_expressions": {}, "allow_stdin": False,
                                            "stop_on_error": True})
        socks.append(s)
        pending[s] = 2
        poller.register(s, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for s, _ in poller.poll(500):
            while True:
                try:
                    s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if s is not sub:
                    pending[s] -= 1
            if s is not sub and pending.get(s) == 0:
                del pending[s]
                poller.unregister(s)
    if pending:
        raise RuntimeError(f"{len(pending)} of {n} connections got no reply in {timeout:.0f} s")
    return socks


def drain_for(sub: zmq.Socket, seconds: float) -> None:
    """Keeps reading IOPub while the kernel settles: an unread XPUB backlog is memory too."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if sub.poll(50):
            while True:
                try:
                    sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break


def held_idle(args: argparse.Namespace, km: KernelManager, code: str, n: int) -> dict:
    """The RSS one idle connection costs: n connections that each sent kernel_info and one execute
    stay connected and idle while the kernel's RSS is read. A few held connections first take the
    one-time costs (first tenant, allocator arenas, IOPub subscriber) out of the figure."""
    pid = km.provisioner.process.pid
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, max(4096, 2 * n + 64))
    info = km.get_connection_info()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"{info['transport']}://{info['ip']}:{info['iopub_port']}")
    socks: list[zmq.Socket] = []
    try:
        socks += open_connections(km, ctx, sub, args.idle_warmup, code)
        drain_for(sub, 1.0)
        before = common.rss_mib(pid)
        socks += open_connections(km, ctx, sub, n, code)
        drain_for(sub, 1.0)
        after = common.rss_mib(pid)
    finally:
        for s in socks:
            s.close()
        sub.close()
        ctx.term()
    r = {"n": n, "rss_before_mib": before, "rss_after_mib": after,
         "rss_per_idle_connection_kib": max(0.0, after - before) * 1024 / n}
    common.log(f"    {n} idle connections held: RSS {before:.1f} -> {after:.1f} MiB, "
               f"{r['rss_per_idle_connection_kib']:.1f} KiB per idle connection")
    return r


def measure(args: argparse.Namespace, root: Path) -> dict:
    ns = [int(x) for x in args.clients.split(",")]
    spark_ns = [int(x) for x in args.spark_clients.split(",")]
    offered = [float(x) for x in args.offered.split(",")] if args.offered else []
    raw: dict = {"kindling_magic": [], "ipykernel_magic": [], "kindling_select": [],
                 "floor_magic": [],
                 "kindling_offered": [],
                 "kindling_idle": [], "ipykernel_idle": [], "kindling_select_idle": []}
    idle_n = args.idle_clients
    base = [str(Path(args.kindling).resolve()), "kernel", "-f", "{connection_file}",
            "--no-history"]
    for rep in range(args.repeats):
        common.log(f"repeat {rep + 1}/{args.repeats}")
        common.log("  Kindling, %echo hi")
        km = start(base + ["--spark-remote", "sc://127.0.0.1:9"], "kindling", root)
        try:
            raw["kindling_magic"].append(series(args, km, "%echo hi", ns, args.iopub))
        finally:
            km.shutdown_kernel(now=True)
        if args.floor:
            common.log("  kl_rt_floor, %echo hi")
            fs = FloorServer(args.floor, root)
            try:
                raw["floor_magic"].append(series(args, fs, "%echo hi", ns, args.iopub))
            finally:
                fs.stop()
        if offered:
            # A kernel of its own: every run's clients are new connections, and the closed-loop
            # series has already made over a thousand of them.
            common.log(f"  Kindling, %echo hi, open loop at N={args.offered_clients}")
            km = start(base + ["--spark-remote", "sc://127.0.0.1:9"], "kindling", root)
            try:
                raw["kindling_offered"].append(
                    offered_series(args, km, "%echo hi", args.offered_clients, offered, args.iopub))
            finally:
                km.shutdown_kernel(now=True)
        if idle_n:
            common.log("  Kindling, idle connections")
            km = start(base + ["--spark-remote", "sc://127.0.0.1:9"], "kindling", root)
            try:
                raw["kindling_idle"].append(held_idle(args, km, "%echo hi", idle_n))
            finally:
                km.shutdown_kernel(now=True)
        if not args.no_ipykernel:
            common.log("  ipykernel, pass")
            km = start([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                        "--HistoryManager.enabled=False"], "ipykernel", root)
            try:
                # ipykernel's topics do not name the client: one SUB for all of them.
                raw["ipykernel_magic"].append(series(args, km, "pass", ns, "shared"))
            finally:
                km.shutdown_kernel(now=True)
            if idle_n:
                common.log("  ipykernel, idle connections")
                km = start([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                            "--HistoryManager.enabled=False"], "ipykernel", root)
                try:
                    raw["ipykernel_idle"].append(held_idle(args, km, "pass", idle_n))
                finally:
                    km.shutdown_kernel(now=True)
        if args.spark_remote:
            common.log("  Kindling, SELECT 1")
            km = start(base + ["--spark-remote", args.spark_remote], "kindling-spark", root)
            try:
                raw["kindling_select"].append(
                    series(args, km, "SELECT 1", spark_ns, args.iopub))
            finally:
                km.shutdown_kernel(now=True)
            if idle_n:
                common.log("  Kindling, idle connections after SELECT 1")
                km = start(base + ["--spark-remote", args.spark_remote], "kindling-spark", root)
                try:
                    raw["kindling_select_idle"].append(held_idle(args, km, "SELECT 1", idle_n))
                finally:
                    km.shutdown_kernel(now=True)
    return raw


def med(runs: list[dict], n: str, path: list[str]) -> float | None:
    vals = []
    for r in runs:
        v = r.get(n)
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if v is not None:
            vals.append(float(v))
    return statistics.median(vals) if vals else None


def transport_of(raw: dict) -> str:
    seen = {r.get("transport") for runs in raw.values() if isinstance(runs, list) for rep in runs
            if isinstance(rep, dict) for r in rep.values() if isinstance(r, dict)}
    seen.discard(None)
    return ", ".join(sorted(seen)) or "libzmq"


def iopub_text(mode: str) -> str:
    return ("each Kindling (and kl_rt_floor) client its own SUB on its session's topics; "
            "ipykernel's clients one SUB subscribed to everything" if mode == "own" else
            "one SUB subscribed to everything for all clients")


def render(raw: dict, args: argparse.Namespace) -> str:
    def f(x: float | None, d: int) -> str:
        return "—" if x is None else f"{x:,.{d}f}"

    lines = ["# Many connections on one kernel", "",
             f"Command: `{args.command}`; medians of {args.repeats} runs, {args.duration} s "
             f"measured per figure; load generator transport: {transport_of(raw)}; IOPub: "
             f"{iopub_text(args.iopub)}.", "",
             "| load | N | Kindling rt/s | ipykernel rt/s | ratio | Kindling p50 / p99 ms | "
             "ipykernel p50 / p99 ms | Kindling RSS MiB | RSS growth KiB per client |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in args.clients.split(","):
        k = raw["kindling_magic"]
        i = raw["ipykernel_magic"]
        kr, ir = med(k, n, ["rate_per_s"]), med(i, n, ["rate_per_s"])
        ratio = f"{kr / ir:.1f}×" if kr and ir else "—"
        lines.append(
            f"| magic-only execute | {n} | {f(kr, 0)} | {f(ir, 0)} | {ratio} | "
            f"{f(med(k, n, ['latency_ms', 'p50']), 2)} / {f(med(k, n, ['latency_ms', 'p99']), 2)} | "
            f"{f(med(i, n, ['latency_ms', 'p50']), 2)} / {f(med(i, n, ['latency_ms', 'p99']), 2)} | "
            f"{f(med(k, n, ['rss_after_mib']), 1)} | "
            f"{f(med(k, n, ['rss_growth_per_connection_kib']), 1)} |")
    for n in args.clients.split(","):
        fl = raw.get("floor_magic")
        if not fl:
            break
        k = raw["kindling_magic"]
        fr, kr = med(fl, n, ["rate_per_s"]), med(k, n, ["rate_per_s"])
        lines.append(
            f"| magic-only, kl_rt_floor | {n} | {f(fr, 0)} | — | Kindling {kr / fr:.2f}× of it | "
            f"{f(med(fl, n, ['latency_ms', 'p50']), 2)} / {f(med(fl, n, ['latency_ms', 'p99']), 2)} | "
            "— | — | — |" if fr and kr else f"| magic-only, kl_rt_floor | {n} | — | — | — | — | — | — | — |")
    for n in args.spark_clients.split(","):
        s = raw["kindling_select"]
        if not s:
            break
        lines.append(
            f"| `SELECT 1` | {n} | {f(med(s, n, ['rate_per_s']), 0)} | — | — | "
            f"{f(med(s, n, ['latency_ms', 'p50']), 2)} / {f(med(s, n, ['latency_ms', 'p99']), 2)} | — | "
            f"{f(med(s, n, ['rss_after_mib']), 1)} | "
            f"{f(med(s, n, ['rss_growth_per_connection_kib']), 1)} |")
    lines += ["", "A request is complete when its reply and its idle status on IOPub have both "
              "arrived, as a Jupyter client waits for both. Every client sends its next request "
              "as soon as the previous one is complete (a closed loop), so these runs saturate "
              "the kernel and the load generator, which share the machine's cores: the latency "
              "is N divided by the throughput (Little's law) plus the unevenness of service. The "
              "clock starts once every client has completed a request, and only requests sent "
              "inside the measured window are timed.", "",
              "RSS growth KiB per client: the kernel's RSS growth over a run divided by that "
              "run's N clients, read after the load generator has disconnected; it includes the "
              "allocator's high-water mark of the load, so it is not the cost of a connection.", ""]
    if raw.get("kindling_offered"):
        o = raw["kindling_offered"]
        lines += ["## Latency at a given load (open loop)", "",
                  f"{args.offered_clients} connections, each sending `%echo hi` on a fixed "
                  "schedule (`kl_loadgen --rate`), still one request at a time, so that together "
                  "they offer the rate below. A request is timed from its slot in the schedule, "
                  "so one sent late because the previous reply was late counts its wait.", "",
                  "| N | offered rt/s | answered rt/s | p50 ms | p90 ms | p99 ms | max ms | "
                  "round trips per client, min / max |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for total in args.offered.split(","):
            key = f"{float(total):g}"
            lines.append(
                f"| {args.offered_clients} | {float(total):,.0f} | {f(med(o, key, ['rate_per_s']), 0)} | "
                f"{f(med(o, key, ['latency_ms', 'p50']), 2)} | {f(med(o, key, ['latency_ms', 'p90']), 2)} | "
                f"{f(med(o, key, ['latency_ms', 'p99']), 2)} | {f(med(o, key, ['latency_ms', 'max']), 2)} | "
                f"{f(med(o, key, ['per_client_round_trips', 'min']), 0)} / "
                f"{f(med(o, key, ['per_client_round_trips', 'max']), 0)} |")
        lines.append("")
    idle_rows = [("Kindling", "kernel_info + `%echo hi`", raw["kindling_idle"]),
                 ("ipykernel", "kernel_info + `pass`", raw["ipykernel_idle"]),
                 ("Kindling", "kernel_info + `SELECT 1`", raw["kindling_select_idle"])]
    if any(runs for _, _, runs in idle_rows):
        lines += ["## Idle connections", "",
                  f"{args.idle_clients} connections (each its own DEALER identity and session) "
                  "send the requests below, then stay connected and idle while the kernel's RSS "
                  f"is read; {args.idle_warmup} held connections before them take the one-time "
                  "costs out.", "",
                  "| kernel | requests before idle | RSS before / after MiB | "
                  "KiB per idle connection |", "|---|---|---:|---:|"]
        for name, what, runs in idle_rows:
            if not runs:
                continue

            def m(key: str) -> float:
                return statistics.median(r[key] for r in runs)

            lines.append(f"| {name} | {what} | {m('rss_before_mib'):.1f} / "
                         f"{m('rss_after_mib'):.1f} | {m('rss_per_idle_connection_kib'):.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kindling", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--spark-remote", help="sc:// URL for the SELECT 1 runs (none: skipped)")
    ap.add_argument("--clients", default="1,10,100,1000")
    ap.add_argument("--spark-clients", default="1,10,100,1000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--idle-clients", type=int, default=1000,
                    help="connections held idle for the per-connection RSS (0: skipped)")
    ap.add_argument("--idle-warmup", type=int, default=20,
                    help="connections held before the measured ones")
    ap.add_argument("--offered", default="5000,10000,15000",
                    help="open-loop runs: total executes per second offered by --offered-clients "
                         "connections together (empty: skipped)")
    ap.add_argument("--offered-clients", type=int, default=1000)
    ap.add_argument("--no-ipykernel", action="store_true")
    ap.add_argument("--floor", help="kl_rt_floor binary: closed loops against it too (the floor "
                    "of a libzmq kernel on this machine)")
    ap.add_argument("--transport", choices=["zmtp", "libzmq"],
                    help="kl_loadgen's client transport (default: its own choice)")
    ap.add_argument("--iopub", choices=["own", "shared"], default="own",
                    help="how Kindling's and the floor's clients read IOPub: own (default), a SUB "
                         "per client on its session's topics, as a real client has its own IOPub "
                         "connection; shared, one SUB for all subscribed to everything")
    ap.add_argument("--command", default="bench/tenancy.sh")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kl-tenancy-") as tmp:
        raw = measure(args, Path(tmp))
    (HERE / "tenancy_results.json").write_text(json.dumps(
        {"machine": common.machine_info(), "source": common.source_state(), "args": vars(args),
         "raw": raw}, indent=1))
    md = render(raw, args)
    (HERE / "tenancy_results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
