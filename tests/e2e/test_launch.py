"""`kindling launch` against a stand-in for Jupyter Enterprise Gateway's response manager.

The stand-in follows EG's documented launcher protocol: it owns an RSA key pair and hands the
launcher the public key as EG does (the PEM body, armour and newlines stripped); it listens on a
response address, reads one connection to its end, base64-decodes the JSON payload
{"version", "key", "conn_info"}, decrypts the AES key with its private key (RSA PKCS#1 v1.5),
decrypts conn_info with it (AES-128-ECB) and strips the PKCS#7 padding. It then talks to the
launcher's communication port as EG does: one connection per request, one JSON object, closed
after sending ({"signum": n}, or {"shutdown": 1} with the write side shut first).

RSA and AES run in the `openssl` command-line tool, so the test needs no Python crypto package.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from e2e_support import (
    SANITIZER_MARKERS,
    TIMEOUT,
    UNREACHABLE_REMOTE,
    execute,
    get_reply,
    kindling_binary,
    stream_text,
    tail,
    wait_iopub,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")

CONN_FIELDS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def openssl(*args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    assert proc.returncode == 0, f"openssl {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


@dataclass
class Gateway:
    """EG's side of the protocol: key pair, response socket, decryption, comm-port requests."""

    workdir: Path
    private_key: Path
    public_key: str  # as EG passes it: base64 DER SubjectPublicKeyInfo on one line
    listener: socket.socket

    @classmethod
    def create(cls, workdir: Path) -> "Gateway":
        workdir.mkdir(parents=True, exist_ok=True)
        priv = workdir / "eg-private.pem"
        # EG's ResponseManager uses 1024-bit keys: they only ever wrap a 16-byte AES key.
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(priv))
        pem = openssl("pkey", "-in", str(priv), "-pubout").decode()
        body = (
            pem.replace("-----BEGIN PUBLIC KEY-----", "")
            .replace("-----END PUBLIC KEY-----", "")
            .replace("\n", "")
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        return cls(workdir, priv, body, sock)

    @property
    def response_address(self) -> str:
        host, port = self.listener.getsockname()
        return f"{host}:{port}"

    def receive(self, timeout: float = TIMEOUT) -> bytes:
        """The raw payload of the next launcher connection (everything up to its close)."""
        self.listener.settimeout(timeout)
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(timeout)
            chunks = []
            while True:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    def decrypt(self, data: bytes) -> dict[str, Any]:
        payload = json.loads(base64.b64decode(data).decode())
        assert payload.get("version") == 1, payload
        assert set(payload) == {"version", "key", "conn_info"}, payload
        enc_key = base64.b64decode(payload["key"])
        assert len(enc_key) == 128, "the AES key is wrapped by the 1024-bit RSA key"
        aes_key = openssl(
            "pkeyutl", "-decrypt", "-inkey", str(self.private_key), "-pkeyopt", "rsa_padding_mode:pkcs1",
            data=enc_key,
        )
        assert len(aes_key) == 16, "EG expects an AES-128 key"
        enc_info = base64.b64decode(payload["conn_info"])
        assert len(enc_info) % 16 == 0
        padded = openssl("enc", "-d", "-aes-128-ecb", "-nopad", "-K", aes_key.hex(), data=enc_info)
        # Cryptodome's unpad(..., 16): PKCS#7, 1 to 16 bytes all equal to their count.
        pad = padded[-1]
        assert 1 <= pad <= 16 and padded[-pad:] == bytes([pad]) * pad, "bad PKCS#7 padding"
        return json.loads(padded[:-pad].decode("utf-8"))

    def close(self) -> None:
        self.listener.close()


def send_request(port: int, request: dict[str, Any], shutdown_write: bool = False) -> None:
    """As EG's _send_listener_request: connect, send one JSON object, (shut the write side,) close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.send(json.dumps(request).encode("utf-8"))
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)


def port_range() -> tuple[int, int]:
    lower = random.randrange(20000, 50000)
    return lower, lower + 1000


class Launched:
    """A `kindling launch` process with its stderr in a file."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None):
        self.workdir = workdir
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "launch-stderr.log"
        self._log = open(self.log_path, "ab")
        full_env = dict(os.environ, TMPDIR=str(self.tmpdir), KINDLING_LOG_LEVEL="info")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [str(kindling_binary()), "launch", *args],
            stdout=self._log,
            stderr=self._log,
            env=full_env,
        )

    def stderr_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launcher still running after {timeout}s:\n{tail(self.stderr_text())}")

    def close(self) -> None:
        """Kills a launcher the test left running; one that ended by itself must have reported no
        sanitizer findings."""
        ended = self.proc.poll() is not None
        if not ended:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        self._log.close()
        if ended:
            text = self.log_path.read_text(errors="replace")
            found = [m for m in SANITIZER_MARKERS if m in text]
            assert not found, f"sanitizer report in launcher stderr ({found}):\n{tail(text)}"


@pytest.fixture
def gateway(tmp_path: Path):
    gw = Gateway.create(tmp_path / "eg")
    yield gw
    gw.close()


def launch_args(gw: Gateway, kernel_id: str, lower: int, upper: int) -> list[str]:
    """The argv EG's kernelspecs pass, plus the kernel's own options."""
    return [
        "--RemoteProcessProxy.kernel-id", kernel_id,
        "--RemoteProcessProxy.response-address", gw.response_address,
        "--RemoteProcessProxy.public-key", gw.public_key,
        "--RemoteProcessProxy.port-range", f"{lower}..{upper}",
        "--RemoteProcessProxy.spark-context-initialization-mode", "none",
        "--spark-remote", UNREACHABLE_REMOTE,
        "--no-history",
    ]


def connect_client(info: dict[str, Any]) -> BlockingKernelClient:
    kc = BlockingKernelClient()
    # EG replaces ip with the address of the host (pod) the kernel landed on.
    kc.load_connection_info({**{k: info[k] for k in (*CONN_FIELDS, "key", "transport", "signature_scheme")},
                             "ip": "127.0.0.1"})
    # wait_for_ready gives up when heartbeats stop; a slow (sanitizer) kernel may answer late.
    kc.hb_channel.time_to_dead = 5.0
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    return kc


def test_launch_sends_encrypted_connection_info_and_obeys_the_gateway(tmp_path: Path, gateway: Gateway):
    kernel_id = str(uuid.uuid4())
    lower, upper = port_range()
    launched = Launched(tmp_path, launch_args(gateway, kernel_id, lower, upper))
    kc = None
    try:
        info = gateway.decrypt(gateway.receive())

        # The payload: a connection file plus what EG's launchers add.
        assert info["kernel_id"] == kernel_id
        assert info["pid"] == launched.proc.pid
        assert info["pgid"] == os.getpgid(launched.proc.pid)
        ports = [info[f] for f in CONN_FIELDS] + [info["comm_port"]]
        assert all(lower <= p <= upper for p in ports), ports
        assert len(set(ports)) == 6, f"ports must differ: {ports}"
        assert info["transport"] == "tcp"
        assert info["ip"] == "0.0.0.0"
        assert info["signature_scheme"] == "hmac-sha256"
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", info["key"])
        assert "kernel_name" in info
        # The connection file is where the launcher said, with the same key, and private.
        files = list(launched.tmpdir.glob(f"kernel-{kernel_id}_*.json"))
        assert len(files) == 1, files
        assert json.loads(files[0].read_text())["key"] == info["key"]
        assert files[0].stat().st_mode & 0o077 == 0
        # The key never reaches the log.
        assert info["key"] not in launched.stderr_text()

        # A real client runs a cell with the decrypted info.
        kc = connect_client(info)
        reply, msgs = execute(kc, "%echo hi")
        assert reply["content"]["status"] == "ok"
        assert stream_text(msgs) == "hi\n"

        # EG's liveness poll is harmless.
        send_request(info["comm_port"], {"signum": 0})
        time.sleep(0.3)
        assert launched.proc.poll() is None

        # EG's interrupt of a kernel with interrupt_mode "signal": SIGINT through the comm port.
        msg_id = kc.execute("%sleep 30")
        wait_iopub(kc, lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "busy"
                   and m["parent_header"].get("msg_id") == msg_id)
        time.sleep(0.5)
        started = time.monotonic()
        send_request(info["comm_port"], {"signum": int(signal.SIGINT)})
        reply = get_reply(kc, msg_id, timeout=20)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 15
        reply, msgs = execute(kc, "%echo still here")
        assert stream_text(msgs) == "still here\n"

        # EG's listener shutdown: an orderly exit, and the connection file is removed.
        send_request(info["comm_port"], {"shutdown": 1}, shutdown_write=True)
        rc = launched.wait()
        assert rc == 0, tail(launched.stderr_text())
        assert not list(launched.tmpdir.glob("kernel-*.json"))
    finally:
        if kc is not None:
            kc.stop_channels()
        launched.close()


def test_launch_reads_the_environment_of_eg_kubernetes_pods(tmp_path: Path, gateway: Gateway):
    """EG's Kubernetes launcher passes KERNEL_ID, RESPONSE_ADDRESS, PUBLIC_KEY and PORT_RANGE as env."""
    kernel_id = str(uuid.uuid4())
    lower, upper = port_range()
    env = {
        "KERNEL_ID": kernel_id,
        "RESPONSE_ADDRESS": gateway.response_address,
        "PUBLIC_KEY": gateway.public_key,
        "PORT_RANGE": f"{lower}..{upper}",
    }
    launched = Launched(tmp_path, ["--spark-remote", UNREACHABLE_REMOTE, "--no-history"], env)
    try:
        info = gateway.decrypt(gateway.receive())
        assert info["kernel_id"] == kernel_id
        assert lower <= info["shell_port"] <= upper
        # EG's kill path when it has a comm port: SIGTERM first, which shuts the kernel down cleanly.
        send_request(info["comm_port"], {"signum": int(signal.SIGTERM)})
        assert launched.wait() == 0, tail(launched.stderr_text())
    finally:
        launched.close()


def test_launch_without_a_range_uses_any_free_ports(tmp_path: Path, gateway: Gateway):
    args = launch_args(gateway, "k-any", 0, 0)
    launched = Launched(tmp_path, args)
    try:
        info = gateway.decrypt(gateway.receive())
        assert all(info[f] > 0 for f in CONN_FIELDS) and info["comm_port"] > 0
        kc = connect_client(info)
        try:
            reply, _ = execute(kc, "%echo ok")
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
        send_request(info["comm_port"], {"shutdown": 1}, shutdown_write=True)
        assert launched.wait() == 0, tail(launched.stderr_text())
    finally:
        launched.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--RemoteProcessProxy.port-range", "40000..40010"], "at least 1000"),
        (["--RemoteProcessProxy.port-range", "forty..fifty"], "LOWER..UPPER"),
        (["--RemoteProcessProxy.public-key", "bm90IGEga2V5"], "public key"),
    ],
)
def test_launch_refuses_bad_arguments(tmp_path: Path, gateway: Gateway, extra: list[str], message: str):
    args = launch_args(gateway, "k-bad", 30000, 31000) + extra
    launched = Launched(tmp_path, args)
    try:
        rc = launched.wait()
        assert rc != 0
        assert message in launched.stderr_text()
        assert not list(launched.tmpdir.glob("kernel-*.json"))
    finally:
        launched.close()


def test_launch_requires_a_kernel_id(tmp_path: Path, gateway: Gateway):
    launched = Launched(tmp_path, ["--RemoteProcessProxy.response-address", gateway.response_address,
                                   "--RemoteProcessProxy.public-key", gateway.public_key])
    try:
        assert launched.wait() == 2
        assert "kernel-id" in launched.stderr_text()
    finally:
        launched.close()


def test_example_kernelspec_argv_as_eg_fills_it(tmp_path: Path, gateway: Gateway):
    """docker/kernelspec-eg-launch.json's argv, with EG's placeholders substituted, works as is."""
    spec = json.loads((Path(__file__).resolve().parents[2] / "docker" / "kernelspec-eg-launch.json").read_text())
    kernel_id = str(uuid.uuid4())
    lower, upper = port_range()
    fill = {
        "{kernel_id}": kernel_id,
        "{response_address}": gateway.response_address,
        "{public_key}": gateway.public_key,
        "{port_range}": f"{lower}..{upper}",
    }
    argv = [fill.get(a, a) for a in spec["argv"]]
    assert argv[1] == "launch" and not any("{" in a for a in argv)
    env = dict(spec["env"], SPARK_REMOTE=UNREACHABLE_REMOTE)
    launched = Launched(tmp_path, argv[2:], env)
    try:
        info = gateway.decrypt(gateway.receive())
        assert info["kernel_id"] == kernel_id
        kc = connect_client(info)
        try:
            reply, msgs = execute(kc, "%echo from the kernelspec")
            assert stream_text(msgs) == "from the kernelspec\n"
        finally:
            kc.stop_channels()
        send_request(info["comm_port"], {"shutdown": 1}, shutdown_write=True)
        assert launched.wait() == 0, tail(launched.stderr_text())
    finally:
        launched.close()
