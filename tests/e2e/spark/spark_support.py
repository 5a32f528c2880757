"""Machinery of the Spark end-to-end tests: Spark Connect servers run by scripts/spark_server.sh,
kindling kernels pointed at one (or at none, for the embedded local server), the pyspark Spark
Connect client whose results are the reference, and readers of what a SQL cell publishes.

Expected tables are never written by hand: they come from the same server, through pyspark's own
Spark Connect client (DataFrame._show_string asks the server for Dataset.showString)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

import e2e_support
from e2e_support import KERNEL_NAME, REPO, TIMEOUT, KernelHandle, kindling_binary, of_type

SERVER_SCRIPT = REPO / "scripts" / "spark_server.sh"
VENV = REPO / ".venv"
# The kernel's default number of rows shown (KL_SQL_DEFAULT_DISPLAY_LIMIT).
DISPLAY_LIMIT = 1000
# Spark's show() default: cells longer than this are cut to 17 characters and "...".
TRUNCATE = 20
# Cell timeout for Spark work: a cold JVM compiles its first queries slowly, more so next to an
# AddressSanitizer kernel on two cores.
SQL_TIMEOUT = max(TIMEOUT, 120.0)
LONG_QUERY = "SELECT sum(hash(id)) FROM range(100000000000)"
RESULT_MIME = "application/vnd.dataresource+json"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Spark Connect servers ---------------------------------------------------------------------


class SparkServer:
    """One server of scripts/spark_server.sh with a state directory of its own. The harness's
    watchdog (--owner-pid) stops it if this test process dies without calling stop()."""

    def __init__(self, state_dir: Path, port: int | None = None, master: str | None = None):
        self.state_dir = state_dir
        self.port = port
        self.master = master
        self.url: str | None = None

    def _run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SERVER_SCRIPT), *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> str:
        args = ["start", "--owner-pid", str(os.getpid())]
        if self.port is not None:
            args += ["--port", str(self.port)]
        if self.master is not None:
            args += ["--master", self.master]
        done = self._run(*args)
        url = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if done.returncode != 0 or not url.startswith("sc://"):
            raise RuntimeError(
                f"spark_server.sh start failed (exit {done.returncode}):\n{done.stderr}\n{done.stdout}"
            )
        self.url = url
        self.port = int(url.split(":")[2].split("/")[0])
        return url

    def stop(self) -> None:
        self._run("stop", timeout=60)

    def pid(self) -> int | None:
        try:
            return int((self.state_dir / "server.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL to the whole server process group: a crash, not a clean stop."""
        pid = self.pid()
        assert pid is not None, "no server.pid: the server is not running"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_alive(pid), f"server process group {pid} survived SIGKILL"
        self.stop()  # forgets the pid and URL files

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.state_dir / "logs" / "server.out").read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return e2e_support.tail(text, lines)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts for killpg; it is gone for our purposes once nothing else runs.
    return any(_pgid_of(p) == pgid and not _is_zombie(p) for p in _pids())


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# --- kernels -----------------------------------------------------------------------------------


class SparkKernel(KernelHandle):
    """A kindling kernel whose kernelspec passes --spark-remote URL (or nothing, for the embedded
    local server) and extra_args, started with env as its whole environment."""

    def __init__(
        self,
        workdir: Path,
        remote: str | None,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "kernel-stderr.log"
        self._log = open(self.log_path, "ab")
        kernels = workdir / "kernels"
        spec_dir = e2e_support.write_kernelspec(kernels, workdir / "history.sqlite")
        spec_file = spec_dir / "kernel.json"
        spec = json.loads(spec_file.read_text())
        argv = spec["argv"]
        assert Path(argv[0]) == kindling_binary()
        # The shared spec points at an unreachable endpoint; this kernel gets its own, or none.
        while "--spark-remote" in argv:
            i = argv.index("--spark-remote")
            del argv[i : i + 2]
        if remote is not None:
            argv += ["--spark-remote", remote]
        argv += extra_args or []
        spec_file.write_text(json.dumps(spec, indent=1))
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
        self.km.shutdown_wait_time = SQL_TIMEOUT
        if env is None:
            env = dict(os.environ)
            # --spark-remote wins anyway; dropping it keeps a developer's setting out of the test.
            env.pop("SPARK_REMOTE", None)
        self.km.start_kernel(stdout=self._log, stderr=self._log, env=env)
        self.kc = self.km.client()
        self._clients = [self.kc]
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=TIMEOUT)
        except RuntimeError:
            self.close(check=False)
            raise


# --- reading a SQL cell's outputs --------------------------------------------------------------


def is_progress(m: dict[str, Any]) -> bool:
    """A live progress display (a display_data with a display_id, updated in place)."""
    return m["msg_type"] == "display_data" and bool(m["content"].get("transient", {}).get("display_id"))


def outputs(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The display_data and execute_result messages of a cell, in order, without progress
    displays."""
    return [m for m in msgs if m["msg_type"] in ("display_data", "execute_result") and not is_progress(m)]


def texts(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["data"]["text/plain"] for m in outputs(msgs)]


def error_of(reply: dict[str, Any], msgs: list[dict[str, Any]]) -> dict[str, Any]:
    """The single IOPub error of a failed cell, checked against its execute_reply."""
    assert reply["content"]["status"] == "error", f"cell did not fail: {reply['content']}"
    errors = of_type(msgs, "error")
    assert len(errors) == 1, f"expected one error message, got {[m['msg_type'] for m in msgs]}"
    err = errors[0]["content"]
    assert reply["content"]["ename"] == err["ename"]
    assert reply["content"]["evalue"] == err["evalue"]
    assert isinstance(err["traceback"], list) and all(isinstance(t, str) for t in err["traceback"])
    return err


def traceback_text(err: dict[str, Any]) -> str:
    return ANSI.sub("", "\n".join(err["traceback"]))


def assert_fragment_marked(err: dict[str, Any], statement: str, start: int, stop: int) -> None:
    """The traceback shows statement (one line) with exactly characters start..stop (inclusive,
    Spark's query-context indexes) underlined by '^' on the next line."""
    lines = traceback_text(err).split("\n")
    for i, line in enumerate(lines[:-1]):
        col = line.find(statement)
        if col < 0:
            continue
        carets = [j for j, ch in enumerate(lines[i + 1]) if ch == "^"]
        if carets:
            assert (carets[0], carets[-1]) == (col + start, col + stop), (
                f"'^' under columns {carets[0] - col}..{carets[-1] - col} of the statement, "
                f"expected {start}..{stop}:\n{line}\n{lines[i + 1]}"
            )
            assert len(carets) == stop - start + 1, f"gaps in the marker:\n{line}\n{lines[i + 1]}"
            return
    raise AssertionError(f"no line with {statement!r} followed by a '^' marker in:\n" + "\n".join(lines))


def check_bundle(msg: dict[str, Any], columns: list[str], rows: int) -> None:
    """The three representations of one result: text/plain, an HTML table, and a data-resource
    table with the result's column names and one record per row shown."""
    data = msg["content"]["data"]
    assert isinstance(data.get("text/plain"), str)
    html = data.get("text/html")
    assert isinstance(html, str) and "<table" in html and "</table>" in html, f"text/html: {html!r}"
    res = data.get(RESULT_MIME)
    assert isinstance(res, dict), f"no {RESULT_MIME} in {sorted(data)}"
    fields = res["schema"]["fields"]
    assert [f["name"] for f in fields] == columns
    assert all(isinstance(f.get("type"), str) and f["type"] for f in fields), fields
    assert isinstance(res["data"], list) and len(res["data"]) == rows, (
        f"{len(res['data'])} records in {RESULT_MIME}, expected {rows}"
    )


def run_ok(kc, code: str, timeout: float = SQL_TIMEOUT) -> list[dict[str, Any]]:
    """Runs a cell that must succeed; its IOPub messages. The failure message says how long the
    cell took and what it reported."""
    started = time.monotonic()
    reply, msgs = e2e_support.execute(kc, code, timeout=timeout)
    content = reply["content"]
    assert content["status"] == "ok", (
        f"after {time.monotonic() - started:.1f}s: {content.get('ename')}: {content.get('evalue')}"
    )
    return msgs


def show_string(spark: Any, query: str, limit: int = DISPLAY_LIMIT, truncate: int = TRUNCATE) -> str:
    """What the server prints for query: Dataset.showString(limit, truncate, vertical=false),
    through pyspark's Spark Connect client."""
    return spark.sql(query)._show_string(limit, truncate, False)
