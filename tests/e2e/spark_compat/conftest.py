"""Fixtures of the Spark version-compatibility tests: for each version in KL_COMPAT_VERSIONS
(default "3.5,4.1"; 4.0 is what tests/e2e/spark runs against), ONE Spark Connect server of that
version, started by scripts/spark_server.sh from the virtualenv scripts/spark_versions.sh makes
(and made here if missing: the first run downloads pyspark, and for 3.5 the Connect jar), then
stopped before the next version's starts. The reference is pyspark's own client of the same version,
run by that virtualenv's Python (reference.py), so expected values come from the server under test.

The servers close every result stream after 2 s or 1 MiB (their defaults are 2 minutes and 1 GiB),
so every query that computes for a while or returns more than a little goes through ReattachExecute.

KL_COMPAT_REMOTE_35=sc://host:port (or _40, _41) uses a server you already run for that version
instead of starting one (it should have the same two settings for the reattach tests to mean
anything)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spark"))

from e2e_support import REPO  # noqa: E402
from spark_support import SparkKernel, SparkServer  # noqa: E402

VERSIONS_SCRIPT = REPO / "scripts" / "spark_versions.sh"
REFERENCE = Path(__file__).resolve().parent / "reference.py"
SERVER_CONF = [
    "spark.connect.execute.reattachable.senderMaxStreamDuration=2s",
    "spark.connect.execute.reattachable.senderMaxStreamSize=1m",
]
# Creating a virtualenv downloads pyspark (300-450 MB) and builds its wheel.
ENSURE_TIMEOUT = 1800


def versions() -> list[str]:
    text = os.environ.get("KL_COMPAT_VERSIONS", "3.5,4.1")
    return [v.strip() for v in text.split(",") if v.strip()]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spark: needs a Spark Connect server (tests/e2e/spark)")
    config.addinivalue_line(
        "markers", "spark_compat: runs against Spark Connect servers of several versions"
    )


class Reference:
    """pyspark's client of the version under test, in its own virtualenv's Python."""

    def __init__(self, venv: Path, url: str, log: Path):
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "python"), str(REFERENCE), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        ready = self._read()
        assert ready.get("ready"), ready

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference client exited (exit {self.proc.poll()}); see {self._log.name}")
        return json.loads(line)

    def call(self, **req: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if not answer["ok"]:
            raise RuntimeError(f"reference client failed on {req}:\n{answer['error']}")
        return answer

    def show(self, query: str, limit: int = 1000, truncate: int = 20) -> str:
        return self.call(op="show", query=query, limit=limit, truncate=truncate)["text"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class VersionedServer(SparkServer):
    """spark_support's server, started from another virtualenv with extra settings."""

    def __init__(self, state_dir: Path, venv: Path, master: str, conf: list[str]):
        super().__init__(state_dir, master=master)
        self.venv = venv
        self.conf = conf

    def _run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        if args and args[0] == "start":
            extra = ["--venv", str(self.venv)]
            for c in self.conf:
                extra += ["--conf", c]
            args = (*args, *extra)
        return super()._run(*args, timeout=timeout)


@dataclass
class Compat:
    """One Spark version under test: its server's URL, virtualenv and reference client."""

    version: str  # "3.5", "4.1"
    full_version: str  # what the server says, e.g. "3.5.7"
    url: str
    venv: Path
    ref: Reference
    server: VersionedServer | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kl-compat-")))

    @property
    def at_least_4(self) -> bool:
        return int(self.version.split(".")[0]) >= 4

    def kernel(self, name: str, user_id: str | None = None, extra_args: list[str] | None = None):
        remote = self.url if user_id is None else f"{self.url.rstrip('/')}/;user_id={user_id}"
        workdir = self.workdir / f"{name}-{uuid.uuid4().hex[:8]}"
        return SparkKernel(workdir, remote=remote, extra_args=extra_args)

    def server_log(self) -> str:
        if self.server is None:
            return ""
        try:
            return (self.server.state_dir / "logs" / "server.out").read_text(errors="replace")
        except OSError:
            return ""


def ensure_venv(version: str) -> Path:
    started = time.monotonic()
    done = subprocess.run(
        [str(VERSIONS_SCRIPT), "ensure", version], capture_output=True, text=True, timeout=ENSURE_TIMEOUT
    )
    if done.returncode != 0:
        pytest.fail(f"spark_versions.sh ensure {version} failed:\n{done.stderr}", pytrace=False)
    took = time.monotonic() - started
    if took > 30:
        print(f"\n[spark_compat] virtualenv for Spark {version} made in {took:.0f}s", file=sys.stderr)
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session", params=versions(), ids=lambda v: f"spark{v}")
def compat(request) -> Iterator[Compat]:
    version: str = request.param
    venv = ensure_venv(version)
    given = os.environ.get(f"KL_COMPAT_REMOTE_{version.replace('.', '')}")
    state = Path(tempfile.mkdtemp(prefix=f"kl-compat-{version}-"))
    server = None
    ref = None
    try:
        if given:
            url = given
        else:
            server = VersionedServer(state / "server", venv, "local[4]", SERVER_CONF)
            try:
                url = server.start()
            except Exception as exc:
                pytest.fail(f"could not start a Spark {version} server: {exc}", pytrace=False)
        ref = Reference(venv, url, state / "reference.log")
        full = ref.call(op="version")["version"]
        assert re.match(rf"{re.escape(version)}\.\d+$", full), f"Spark {version} wanted, the server is {full}"
        yield Compat(version, full, url, venv, ref, server, state / "kernels")
    finally:
        if ref is not None:
            ref.close()
        if server is not None:
            server.stop()
        if not os.environ.get("KL_E2E_KEEP"):
            shutil.rmtree(state, ignore_errors=True)
