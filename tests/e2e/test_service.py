"""Service mode: `kindling serve` (connection file, key handling, JSON logs), its health and metrics
endpoint, the graceful SIGTERM, `kindling health`, and the JEP 66 registration handshake. No Spark:
the endpoint is sc://127.0.0.1:9, where nothing listens (tests/e2e/spark/test_service_ready.py
covers readiness against a real server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.session import Session

from e2e_support import TIMEOUT, execute, get_reply, kindling_binary, stream_text
from service_support import Serve, free_port, http_get, sample, wait_for


@pytest.fixture
def serve(tmp_path: Path):
    handles: list[Serve] = []

    def start(**kwargs) -> Serve:
        s = Serve(tmp_path / f"serve{len(handles)}", **kwargs)
        handles.append(s)
        return s

    yield start
    errors = []
    for s in handles:
        try:
            s.close()
        except AssertionError as exc:
            errors.append(str(exc))
        finally:
            s.kill()
    assert not errors, "\n".join(errors)


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kindling_binary()), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# --- the connection file and the key -------------------------------------------------------------


def test_serve_writes_a_private_connection_file_clients_can_use(serve):
    s = serve()
    info = s.connection_info()
    assert stat.S_IMODE(os.stat(s.conn_path).st_mode) == 0o600
    assert info["key"] == "serve-test-key", "the key file's trailing newline is not part of the key"
    assert info["signature_scheme"] == "hmac-sha256"
    assert info["transport"] == "tcp" and info["ip"] == "127.0.0.1"
    ports = [info[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")]
    assert all(p > 0 for p in ports) and len(set(ports)) == 5, info
    kc = s.client()
    reply, msgs = execute(kc, "%echo hi")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "hi\n"
    # Heartbeat on the port the file names.
    assert kc.is_alive()


def test_fixed_ports_are_used_and_logs_are_json(serve):
    ports = [free_port() for _ in range(5)]
    names = ("shell", "iopub", "stdin", "control", "hb")
    args = []
    for name, port in zip(names, ports):
        args += [f"--{name}-port", str(port)]
    s = serve(args=args)
    info = s.connection_info()
    assert [info[f"{n}_port"] for n in names] == ports
    kc = s.client()
    assert execute(kc, "%echo fixed")[0]["content"]["status"] == "ok"
    lines = [line for line in s.stderr().splitlines() if line.strip()]
    assert lines, "serve logs its start"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("serving" in json.dumps(r) for r in records), lines


def test_the_key_stays_out_of_argv_and_is_generated_when_absent(serve):
    s = serve(key=None, env={"KINDLING_KEY": "from-the-environment-1234"})
    assert s.connection_info()["key"] == "from-the-environment-1234"
    cmdline = Path(f"/proc/{s.proc.pid}/cmdline").read_bytes()
    assert b"from-the-environment-1234" not in cmdline
    assert b"serve-test-key" not in cmdline
    execute(s.client(), "%echo env-key")

    g = serve(key=None)
    key = g.connection_info()["key"]
    assert len(key) == 64 and int(key, 16) >= 0, "a random 256-bit key, in hex"
    assert key.encode() not in Path(f"/proc/{g.proc.pid}/cmdline").read_bytes()
    assert execute(g.client(), "%echo generated")[0]["content"]["status"] == "ok"


def test_bad_configurations_are_refused_with_a_reason(tmp_path: Path):
    r = run("serve", "--key", "secret")
    assert r.returncode == 2 and "--key-file" in r.stderr and "cmdline" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "KINDLING_KEY"}
    r = run("serve", "--health-port", "0", env=env)
    assert r.returncode == 2 and "no key" in r.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = run("serve", "--key-file", str(empty), "--health-port", "0")
    assert r.returncode == 2 and "empty" in r.stderr
    r = run("serve", "--key-file", str(empty), "--health-port", "0",
            env={**env, "KINDLING_KEY": "k"})
    assert r.returncode == 2 and "one place" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        key = tmp_path / "key"
        key.write_text("k")
        r = run("serve", "--key-file", str(key), "--health-ip", "127.0.0.1", "--health-port",
                str(taken.getsockname()[1]), "--spark-remote", "sc://127.0.0.1:9", "--no-history")
    assert r.returncode == 2 and "Address already in use" in r.stderr, r.stderr
    r = run("serve", "--help")
    assert r.returncode == 0 and "--grace-period" in r.stdout


# --- health, readiness, metrics ------------------------------------------------------------------


def test_health_and_readiness_with_an_unreachable_spark(serve):
    s = serve()
    assert s.get("/healthz") == (200, "ok\n")
    status, body = wait_for(lambda: (lambda r: r if "Spark Connect" in r[1] else None)(s.get("/readyz")),
                            what="a readiness verdict from the probe")
    assert status == 503
    assert body.startswith("not ready: ") and "127.0.0.1:9" in body, body
    assert s.get("/nope")[0] == 404
    # The container HEALTHCHECK: exit 0 on 200, 1 otherwise.
    ok = run("health", "--port", str(s.health_port))
    assert ok.returncode == 0 and ok.stdout.startswith("200"), ok
    not_ready = run("health", "--port", str(s.health_port), "--path", "/readyz")
    assert not_ready.returncode == 1 and not_ready.stdout.startswith("503"), not_ready
    nobody = run("health", "--port", str(free_port()), "--timeout", "2")
    assert nobody.returncode == 1 and nobody.stderr


def test_metrics_count_executions_and_connections(serve):
    s = serve()
    before = s.metrics()
    assert sample(before, "kindling_build_info", version=_version()) == 1
    kc = s.client()
    for i in range(2):
        assert execute(kc, f"%echo {i}")[0]["content"]["status"] == "ok"
    assert execute(kc, "%nosuchmagic")[0]["content"]["status"] == "error"
    after = wait_for(lambda: (lambda m: m if sample(m, "kindling_connections") >= 1 else None)(s.metrics()),
                     what="the connections gauge")
    assert sample(after, "kindling_executions_total", status="ok") == sample(before, "kindling_executions_total", status="ok") + 2
    assert sample(after, "kindling_executions_total", status="error") == sample(before, "kindling_executions_total", status="error") + 1
    assert sample(after, "kindling_execution_duration_seconds_count") == sample(before, "kindling_execution_duration_seconds_count") + 3
    assert sample(after, "kindling_execution_duration_seconds_bucket", le="+Inf") == sample(after, "kindling_execution_duration_seconds_count")
    assert sample(after, "kindling_coroutines") > 0
    assert sample(after, "kindling_process_resident_memory_bytes") > 1 << 20
    # The readiness probe's own AnalyzePlan calls fail against port 9 and are counted.
    assert any(name == "kindling_spark_rpcs_total" and dict(labels).get("method") == "AnalyzePlan"
               for name, labels in after), sorted(k for k in after if "rpcs" in k[0])
    _, _, headers = http_get(s.health_port, "/metrics")
    assert headers["content-type"].startswith("text/plain; version=0.0.4")


def _version() -> str:
    out = run("--version").stdout.split()
    return out[1]


# --- graceful shutdown ---------------------------------------------------------------------------


def test_sigterm_waits_for_a_cell_that_finishes_within_the_grace_period(serve):
    s = serve(args=["--grace-period", "20"])
    kc = s.client()
    msg_id = kc.execute("%sleep 2")
    time.sleep(0.5)
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    # Draining: no longer ready, still alive (the loop notices the signal a moment later).
    seen = []
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        seen.append(s.get("/readyz"))
        if seen[-1] == (503, "not ready: shutting down\n"):
            break
        time.sleep(0.05)
    assert seen[-1] == (503, "not ready: shutting down\n"), seen
    reply = get_reply(kc, msg_id, "shell", TIMEOUT)
    assert reply["content"]["status"] == "ok", "the cell finished on its own"
    assert s.proc.wait(timeout=TIMEOUT) == 0
    assert time.monotonic() - t0 < 10, "exit soon after the cell, not after the whole grace period"
    s.terminate()


def test_sigterm_interrupts_a_cell_still_running_after_the_grace_period(serve):
    grace = 2
    s = serve(args=["--grace-period", str(grace)])
    kc = s.client()
    msg_id = kc.execute("%sleep 30")
    time.sleep(0.5)
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    reply = get_reply(kc, msg_id, "shell", TIMEOUT)
    waited = time.monotonic() - t0
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert grace - 0.5 <= waited < grace + 5, f"reply after {waited:.1f} s"
    assert s.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < grace + 8
    log = s.stderr()
    assert "grace period over" in log, log
    s.terminate()


# --- JEP 66 --------------------------------------------------------------------------------------


class Registrar:
    """A launcher's registration socket, as JEP 66 describes it (and Posit's kernel supervisor
    implements it): a REP socket that receives a signed handshake_request carrying the kernel's
    five ports and answers handshake_reply."""

    def __init__(self, key: str = "reg-key-0123"):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.linger = 0
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.key = key
        self.session = Session(key=key.encode(), signature_scheme="hmac-sha256", username="launcher")

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1", "key": self.key,
                                    "signature_scheme": "hmac-sha256",
                                    "registration_port": self.port}))
        path.chmod(0o600)
        return path

    def receive(self, timeout: float = TIMEOUT) -> dict:
        assert self.sock.poll(int(timeout * 1000)), "no handshake_request arrived"
        _, msg = self.session.recv(self.sock, mode=0)  # verifies the signature
        return msg

    def reply(self, request: dict, status: str = "ok") -> None:
        self.session.send(self.sock, "handshake_reply", {"status": status}, parent=request)

    def client_for(self, request: dict) -> BlockingKernelClient:
        kc = BlockingKernelClient()
        kc.load_connection_info({"transport": "tcp", "ip": "127.0.0.1", "key": self.key,
                                 "signature_scheme": "hmac-sha256", **request["content"]})
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        return kc

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.mark.parametrize("mode", ["kernel", "serve"])
def test_registration_handshake(tmp_path: Path, mode: str):
    reg = Registrar()
    reg_file = reg.write(tmp_path / "registration.json")
    log = open(tmp_path / "stderr.log", "wb")
    if mode == "kernel":
        argv = [str(kindling_binary()), "kernel", "-f", str(reg_file)]
    else:
        argv = [str(kindling_binary()), "serve", "--registration-file", str(reg_file),
                "--health-port", "0"]
    argv += ["--no-history", "--spark-remote", "sc://127.0.0.1:9"]
    env = {k: v for k, v in os.environ.items() if k != "KINDLING_KEY"}
    proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
    kc = None
    try:
        request = reg.receive()
        assert request["header"]["msg_type"] == "handshake_request"
        ports = request["content"]
        assert sorted(ports) == ["control_port", "hb_port", "iopub_port", "shell_port", "stdin_port"]
        assert all(isinstance(p, int) and p > 0 for p in ports.values()), ports
        reg.reply(request)
        kc = reg.client_for(request)
        reply, msgs = execute(kc, "%echo registered")
        assert stream_text(msgs) == "registered\n"
        assert proc.poll() is None, "the kernel lives on after registering"
    finally:
        if kc:
            kc.stop_channels()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=TIMEOUT)
        log.close()
        reg.close()
    assert rc == 0, (tmp_path / "stderr.log").read_text()


def test_a_refused_registration_stops_the_kernel(tmp_path: Path):
    reg = Registrar()
    reg_file = reg.write(tmp_path / "registration.json")
    proc = subprocess.Popen([str(kindling_binary()), "kernel", "-f", str(reg_file), "--no-history",
                             "--spark-remote", "sc://127.0.0.1:9"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        reg.reply(reg.receive(), status="error")
        rc = proc.wait(timeout=TIMEOUT)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        reg.close()
    assert rc == 1
    assert "registration" in err and "error" in err, err


def test_a_restarted_service_is_a_new_kernel_session(serve):
    """A pod restart is a new kernel process: clients see a new kernel session id in the headers
    of its messages, as the protocol intends, so they know their state is gone."""
    sessions = []
    for _ in range(2):
        s = serve()
        kc = s.client()
        reply, _ = execute(kc, "%echo hi")
        assert reply["content"]["status"] == "ok"
        sessions.append(reply["header"]["session"])
        kc.stop_channels()
        s.kill()
    assert sessions[0] != sessions[1], sessions
