"""No remote configured: the kernel starts its own local Spark Connect server (pyspark from the
virtualenv named by VIRTUAL_ENV), the first SQL cell waits for it with one "Starting ..." line, and
once the kernel is gone no process of that server remains.

The server's private directory ($TMPDIR/kindling-local-XXXXXX, see src/spark/local.h) holds
server.pid (also its process-group id) and kernel.pid; TMPDIR points into the test's own
directory so that the directory of this kernel's server is the only one there."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from e2e_support import execute, stream_text
from spark_support import VENV, SparkKernel, group_alive, show_string, texts

pytestmark = pytest.mark.spark

STARTING = "Starting a local Spark Connect server"
# Cold start of a JVM and the server, next to the shared server, on two cores.
START_TIMEOUT = 240.0
# SIGTERM to the group, up to KL_SPARK_LOCAL_DEFAULT_GRACE_MS (10 s) before SIGKILL.
GONE_TIMEOUT = 30.0


def embedded_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("SPARK_REMOTE", "SPARK_HOME", "KL_SPARK_REMOTE"):
        env.pop(name, None)
    env["VIRTUAL_ENV"] = str(VENV)
    env["TMPDIR"] = str(tmp)
    return env


def processes_using(path: Path) -> list[str]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if str(path) in cmd or (p.info["cwd"] or "").startswith(str(path)):
                found.append(f"{p.info['pid']}: {cmd[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize("ending", ["shutdown_request", "SIGTERM"])
def test_embedded_local_server(tmp_path, spark, ending):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    kernel = SparkKernel(tmp_path / "kernel", remote=None, env=embedded_env(tmp))
    closed = False
    try:
        kc = kernel.kc
        reply, msgs = execute(kc, "SELECT 1 AS one", timeout=START_TIMEOUT)
        content = reply["content"]
        assert content["status"] == "ok", (
            f"{content.get('ename')}: {content.get('evalue')}\n{kernel.stderr_text()[-3000:]}"
        )
        lines = [line for line in stream_text(msgs).splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(STARTING), f"stdout of the first cell: {lines}"
        assert texts(msgs) == [show_string(spark, "SELECT 1 AS one")]

        # Only the first cell waits and says so.
        reply, msgs = execute(kc, "SELECT 2 AS two; SELECT 'x' AS s", timeout=START_TIMEOUT)
        assert reply["content"]["status"] == "ok"
        assert stream_text(msgs) == ""
        assert texts(msgs) == [show_string(spark, "SELECT 2 AS two"), show_string(spark, "SELECT 'x' AS s")]

        dirs = sorted(tmp.glob("kindling-local-*"))
        assert len(dirs) == 1, f"expected the server's private directory in {tmp}: {list(tmp.iterdir())}"
        home = dirs[0]
        assert (home / "kernel.pid").read_text().strip() == str(kernel.pid)
        server_pgid = int((home / "server.pid").read_text().strip())
        assert group_alive(server_pgid), "the server named in server.pid is not running"
        assert processes_using(home), "no process runs from the server's directory"

        proc = kernel.process
        if ending == "SIGTERM":
            os.kill(kernel.pid, signal.SIGTERM)
            assert proc.wait(timeout=START_TIMEOUT) == 0, "SIGTERM should shut the kernel down cleanly"
        kernel.close()  # shutdown_request (and a clean exit check) unless SIGTERM ended it already
        closed = True

        deadline = time.monotonic() + GONE_TIMEOUT
        while group_alive(server_pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(server_pgid), f"server process group {server_pgid} outlived the kernel"
        assert processes_using(home) == [], "processes of the local server remain"
        assert not home.exists(), f"{home} was left behind: {list(home.iterdir())}"
    finally:
        if not closed:
            kernel.close(check=False)
        # Never leave a server behind, whatever failed above.
        for d in tmp.glob("kindling-local-*"):
            try:
                os.killpg(int((d / "server.pid").read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def test_bad_spark_home_is_an_error_not_a_crash(tmp_path):
    env = embedded_env(tmp_path)
    env["SPARK_HOME"] = str(tmp_path / "no-spark-here")
    kernel = SparkKernel(tmp_path / "kernel", remote=None, env=env)
    try:
        reply, msgs = execute(kernel.kc, "SELECT 1 AS one", timeout=START_TIMEOUT)
        assert reply["content"]["status"] == "error"
        assert "no-spark-here" in reply["content"]["evalue"], reply["content"]["evalue"]
        reply, msgs = execute(kernel.kc, "%echo alive")
        assert stream_text(msgs) == "alive\n"
    finally:
        kernel.close()
