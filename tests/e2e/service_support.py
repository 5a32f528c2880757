"""`kindling serve` as a test sees it: the process, the connection file it writes, its health
endpoint, and a small reader of the Prometheus text format (prometheus_client's parser when the
virtualenv has it)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from jupyter_client import BlockingKernelClient

from e2e_support import SANITIZER_MARKERS, TIMEOUT, kindling_binary, tail


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, method: str = "GET", timeout: float = 5) -> tuple[int, str, dict[str, str]]:
    """One request straight to 127.0.0.1 (no proxy from the environment): status, body, headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def wait_for(predicate, timeout: float = TIMEOUT, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Serve:
    """A `kindling serve` process with a connection file and a health port of its own."""

    def __init__(
        self,
        workdir: Path,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        key: str | None = "serve-test-key",
        health: bool = True,
        connection_file: bool = True,
        wait: bool = True,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "serve-stderr.log"
        self.conn_path = workdir / "kernel.json"
        self.health_port = free_port() if health else 0
        argv = [
            str(kindling_binary()),
            "serve",
            "--ip",
            "127.0.0.1",
            "--history-file",
            str(workdir / "history.sqlite"),
            "--health-port",
            str(self.health_port),
            "--health-ip",
            "127.0.0.1",
        ]
        if connection_file:
            argv += ["--connection-file-out", str(self.conn_path)]
        self.key = key
        if key is not None:
            key_file = workdir / "key"
            # Secrets mounted from Kubernetes often end with a newline: it is not part of the key.
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
            argv += ["--key-file", str(key_file)]
        if not any(a == "--spark-remote" for a in args or []):
            argv += ["--spark-remote", "sc://127.0.0.1:9"]
        argv += args or []
        self.argv = argv
        full_env = dict(os.environ)
        full_env.pop("SPARK_REMOTE", None)
        full_env.pop("KINDLING_LOG_FORMAT", None)
        full_env.pop("KINDLING_LOG_LEVEL", None)
        full_env.update(env or {})
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log, env=full_env)
        self.clients: list[BlockingKernelClient] = []
        if wait and connection_file:
            try:
                wait_for(lambda: self.conn_path.exists() or self.proc.poll() is not None,
                         what="the connection file")
                if self.proc.poll() is not None:
                    raise AssertionError(f"kindling serve exited with {self.proc.returncode}:\n{self.stderr()}")
            except BaseException:
                self.kill()
                raise

    def stderr(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def connection_info(self) -> dict[str, Any]:
        return json.loads(self.conn_path.read_text())

    def client(self) -> BlockingKernelClient:
        kc = BlockingKernelClient()
        kc.load_connection_file(str(self.conn_path))
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        self.clients.append(kc)
        return kc

    def get(self, path: str) -> tuple[int, str]:
        status, body, _ = http_get(self.health_port, path)
        return status, body

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200, body
        return parse_metrics(body)

    def terminate(self, timeout: float = TIMEOUT) -> int:
        for kc in self.clients:
            kc.stop_channels()
        self.clients = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        for kc in self.clients:
            kc.stop_channels()
        self.clients = []
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._log.closed:
            self._log.close()

    def close(self) -> None:
        """Stops with SIGTERM and checks the exit: status 0, no sanitizer report."""
        if self.proc.poll() is not None and self._log.closed:
            return
        rc = self.terminate()
        text = self.log_path.read_text(errors="replace")
        found = [m for m in SANITIZER_MARKERS if m in text]
        assert not found, f"sanitizer report ({found}):\n{tail(text)}"
        assert rc == 0, f"kindling serve exited with {rc}:\n{tail(text)}"


# --- the Prometheus text format ------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples keyed by (name, sorted label pairs). Uses prometheus_client's parser when installed
    (it also checks HELP/TYPE consistency), else a small strict reader of sample lines."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    if text_string_to_metric_families is not None:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return samples
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, _, labels, value = m.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"sample without # TYPE: {line!r}"
        pairs = tuple(sorted((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                             for k, v in _LABEL.findall(labels or "")))
        samples[(name, pairs)] = float(value)
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
