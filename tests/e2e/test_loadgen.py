"""kl_loadgen, the benchmark's load generator: both transports against the real kernel, the choice
of transport, and its own ZMTP client (bench/zmtp.c) against scripted peers that split frames,
send long frames, PING, lie about their socket type or announce a frame too large to buffer.

The generator is $KL_LOADGEN, or kl_loadgen beside the kernel binary; the tests skip when neither
exists (a build with -DKL_BENCH=OFF).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from e2e_support import TIMEOUT, UNREACHABLE_REMOTE, kindling_binary

TRANSPORTS = ("zmtp", "libzmq")
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def loadgen_binary() -> Path:
    value = os.environ.get("KL_LOADGEN")
    return Path(value) if value else kindling_binary().parent / "kl_loadgen"


@pytest.fixture(scope="module")
def loadgen() -> Path:
    path = loadgen_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"kl_loadgen not found at {path}: build with -DKL_BENCH=ON or set KL_LOADGEN")
    return path


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def connection_info(key: str = "loadgen-test-key", **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "transport": "tcp",
        "ip": "127.0.0.1",
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "kindling",
    }
    info.update(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
    info.update(extra)
    return info


def write_info(path: Path, info: dict[str, Any]) -> Path:
    path.write_text(json.dumps(info))
    return path


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the kernel exited at start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


class Kernel:
    """A kindling kernel on a connection file of our own (fixed ports), stopped with SIGTERM."""

    def __init__(self, workdir: Path, info: dict[str, Any]):
        self.info = info
        self.path = write_info(workdir / "kernel.json", info)
        self.log = open(workdir / "kernel.log", "wb")
        self.proc = subprocess.Popen(
            [str(kindling_binary()), "kernel", "-f", str(self.path), "--no-history",
             "--spark-remote", UNREACHABLE_REMOTE],
            stdout=self.log,
            stderr=self.log,
        )
        wait_listening(info["shell_port"], self.proc)

    def close(self) -> None:
        self.proc.terminate()
        rc = self.proc.wait(timeout=TIMEOUT)
        self.log.close()
        assert rc == 0, f"kernel exited with {rc}"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, connection_info())
    try:
        yield k
    finally:
        k.close()


def run_loadgen(loadgen: Path, conn: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(loadgen), "-f", str(conn), *args], capture_output=True, text=True,
                          timeout=timeout)


def run_json(loadgen: Path, conn: Path, *args: str) -> dict[str, Any]:
    out = run_loadgen(loadgen, conn, "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- against the real kernel ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("iopub", ["shared", "own"])
def test_execute(loadgen, kernel, transport, iopub):
    r = run_json(loadgen, kernel.path, "--transport", transport, "-m", "execute", "-c", "20",
                 "-d", "1", "-w", "0.2", "--iopub", iopub)
    assert r["transport"] == transport and r["iopub_mode"] == iopub
    assert r["round_trips"] > 0
    assert r["errors"] == 0 and r["unexpected"] == 0
    # busy, execute_input, stream and idle per cell; the window's replies are a subset of the run's
    assert r["iopub_messages"] >= 4 * r["round_trips"]
    assert r["per_client_round_trips"]["min"] > 0, "a client was never answered in the window"
    # Every measured request waited for its idle status (each client's IOPub was live by then).
    assert 0 <= r["idle_after_reply"] <= r["round_trips"]
    assert r["iopub_lag_ms"]["p99"] >= r["iopub_lag_ms"]["p50"] >= 0


def test_own_iopub_gets_only_its_sessions_traffic(loadgen, kernel):
    # 20 clients on 20 SUBs each subscribed to "session.<its id>.": each message reaches one of
    # them, so the total is what one SUB subscribed to everything would see, not 20 times it.
    r = run_json(loadgen, kernel.path, "-m", "execute", "-c", "20", "-d", "1", "-w", "0.2",
                 "--iopub", "own")
    assert r["iopub_messages"] < 4 * r["all_replies"] + 4 * 20 + 20 * 2, r


def test_no_iopub_completes_at_the_reply(loadgen, kernel):
    r = run_json(loadgen, kernel.path, "-m", "execute", "-c", "5", "-d", "0.5", "-w", "0",
                 "--no-iopub")
    assert r["iopub_mode"] == "none" and r["iopub_messages"] == 0
    assert r["round_trips"] > 0 and "iopub_lag_ms" not in r


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kernel_info(loadgen, kernel, transport):
    r = run_json(loadgen, kernel.path, "--transport", transport, "-m", "kernel_info", "-c", "20",
                 "-d", "1", "-w", "0.2")
    assert r["transport"] == transport
    assert r["round_trips"] > 0
    assert r["errors"] == 0 and r["unexpected"] == 0
    assert r["iopub_messages"] >= 2 * r["round_trips"]  # busy and idle


def test_text_output_names_the_transport(loadgen, kernel):
    out = run_loadgen(loadgen, kernel.path, "-c", "2", "-d", "0.3", "-w", "0")
    assert out.returncode == 0, out.stderr
    assert "transport=zmtp" in out.stdout  # the default for a tcp connection file without curve keys


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_key_times_out(loadgen, tmp_path, kernel, transport):
    # The kernel drops badly signed requests without a word: the generator must give up, not hang.
    wrong = write_info(tmp_path / "wrong-key.json", dict(kernel.info, key="not-the-kernel-key"))
    t0 = time.monotonic()
    out = run_loadgen(loadgen, wrong, "--transport", transport, "-c", "3", "-d", "1",
                      "--stall-timeout", "1.5", timeout=30)
    assert out.returncode != 0
    assert "no reply for 1.5 s" in out.stderr
    assert time.monotonic() - t0 < 15


# --- choosing the transport ----------------------------------------------------------------------


def test_zmtp_refuses_curve_keys(loadgen, tmp_path):
    # Any 40-character keys will do: the generator must refuse before it connects anywhere.
    conn = write_info(tmp_path / "curve.json",
                      connection_info(curve_publickey="P" * 40, curve_secretkey="S" * 40))
    out = run_loadgen(loadgen, conn, "--transport", "zmtp", "-d", "0.1")
    assert out.returncode != 0
    assert "--transport libzmq" in out.stderr
    assert "CurveZMQ" in out.stderr


def test_zmtp_refuses_ipc(loadgen, tmp_path):
    conn = write_info(tmp_path / "ipc.json",
                      dict(connection_info(), transport="ipc", ip=str(tmp_path / "kernel")))
    out = run_loadgen(loadgen, conn, "--transport", "zmtp", "-d", "0.1")
    assert out.returncode != 0
    assert "--transport libzmq" in out.stderr


def test_unknown_iopub_mode_is_a_usage_error(loadgen, tmp_path):
    out = run_loadgen(loadgen, write_info(tmp_path / "c.json", connection_info()), "--iopub", "all")
    assert out.returncode == 2
    assert "shared, own or none" in out.stderr


def test_unknown_transport_is_a_usage_error(loadgen, tmp_path):
    out = run_loadgen(loadgen, write_info(tmp_path / "c.json", connection_info()), "--transport", "tls")
    assert out.returncode == 2
    assert "zmtp or libzmq" in out.stderr


def test_curve_connection_file_uses_libzmq(loadgen, tmp_path):
    zmq = pytest.importorskip("zmq")
    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    public, secret = zmq.curve_keypair()
    k = Kernel(tmp_path, connection_info(curve_publickey=public.decode(), curve_secretkey=secret.decode()))
    try:
        r = run_json(loadgen, k.path, "-m", "kernel_info", "-c", "2", "-d", "0.5", "-w", "0")
        assert r["transport"] == "libzmq"
        assert r["round_trips"] > 0 and r["errors"] == 0 and r["unexpected"] == 0
    finally:
        k.close()


def test_nothing_listening_fails_at_once(loadgen, tmp_path):
    conn = write_info(tmp_path / "dead.json", connection_info())
    t0 = time.monotonic()
    out = run_loadgen(loadgen, conn, "--transport", "zmtp", "-d", "0.5")
    assert out.returncode != 0
    assert "cannot connect" in out.stderr and "Connection refused" in out.stderr
    assert time.monotonic() - t0 < 5


# --- the ZMTP client against a scripted peer -----------------------------------------------------

MORE, LONG, COMMAND = 0x01, 0x02, 0x04


def frame(body: bytes, flags: int = 0) -> bytes:
    if len(body) > 255:
        return bytes([flags | LONG]) + len(body).to_bytes(8, "big") + body
    return bytes([flags, len(body)]) + body


def command(name: bytes, data: bytes) -> bytes:
    return frame(bytes([len(name)]) + name + data, COMMAND)


def ready(socket_type: bytes) -> bytes:
    prop = bytes([11]) + b"Socket-Type" + len(socket_type).to_bytes(4, "big") + socket_type
    return command(b"READY", prop)


def parse_metadata(data: bytes) -> dict[str, bytes]:
    props, i = {}, 0
    while i < len(data):
        n = data[i]
        name = data[i + 1:i + 1 + n].decode()
        vlen = int.from_bytes(data[i + 1 + n:i + 5 + n], "big")
        props[name] = data[i + 5 + n:i + 5 + n + vlen]
        i += 5 + n + vlen
    return props


class ScriptedPeer:
    """One ZMTP 3.0 server connection on a raw TCP socket, in a thread: the greeting, READY with
    the given Socket-Type, then each request goes to `answer`, which writes whatever it likes."""

    def __init__(self, socket_type: bytes, answer):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.socket_type = socket_type
        self.answer = answer
        self.client_ready: dict[str, bytes] = {}
        self.commands: list[tuple[bytes, bytes]] = []
        self.requests = 0
        self.error: BaseException | None = None
        self.ready = threading.Event()  # the handshake is over: the peer may write messages
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def read_frame(self) -> tuple[int, bytes]:
        flags = self._recv_exact(1)[0]
        size = int.from_bytes(self._recv_exact(8), "big") if flags & LONG else self._recv_exact(1)[0]
        return flags, self._recv_exact(size)

    def read_message(self) -> list[bytes]:
        """The next message's frames; commands met on the way are recorded."""
        parts = []
        while True:
            flags, body = self.read_frame()
            if flags & COMMAND:
                self.commands.append((body[1:1 + body[0]], body[1 + body[0]:]))
                continue
            parts.append(body)
            if not flags & MORE:
                return parts

    def _run(self) -> None:
        try:
            self.conn, _ = self.listener.accept()
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            greeting = b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0")
            self.conn.sendall(greeting + b"\x01" + b"\0" * 31)
            theirs = self._recv_exact(64)
            assert theirs[0] == 0xFF and theirs[9] == 0x7F and theirs[10] == 3, theirs[:12]
            assert theirs[12:32] == b"NULL".ljust(20, b"\0") and theirs[32] == 0
            flags, body = self.read_frame()
            assert flags & COMMAND and body[1:6] == b"READY", body
            self.client_ready = parse_metadata(body[6:])
            self.conn.sendall(ready(self.socket_type))
            self.ready.set()
            while True:
                msg = self.read_message()
                self.requests += 1
                self.answer(self, msg)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        except BaseException as e:  # reported by the test
            self.error = e

    def close(self) -> None:
        self.listener.close()
        if hasattr(self, "conn"):
            self.conn.close()
        self.thread.join(timeout=TIMEOUT)


KEY = b"scripted-peer-key"


def signed(header: dict[str, Any], parent: dict[str, Any], content: dict[str, Any]) -> list[bytes]:
    """The delimiter, signature and four JSON frames of a message signed with KEY."""
    parts = [json.dumps(header).encode(), json.dumps(parent).encode(), b"{}",
             json.dumps(content).encode()]
    mac = hmac.new(KEY, digestmod=hashlib.sha256)
    for p in parts:
        mac.update(p)
    return [b"<IDS|MSG>", mac.hexdigest().encode(), *parts]


def signed_reply(request: list[bytes], padding: int = 0) -> list[bytes]:
    """A kernel_info_reply to request ([<IDS|MSG>, sig, header, parent, metadata, content])."""
    assert request[0] == b"<IDS|MSG>", request[:1]
    header = json.loads(request[2])
    reply_header = {"msg_id": str(uuid.uuid4()), "msg_type": "kernel_info_reply", "session": "peer",
                    "username": "peer", "date": "2026-01-01T00:00:00Z", "version": "5.3"}
    content = {"status": "ok", "protocol_version": "5.3", "padding": "x" * padding}
    return signed(reply_header, header, content)


def encode(parts: list[bytes]) -> bytes:
    return b"".join(frame(p, MORE if i + 1 < len(parts) else 0) for i, p in enumerate(parts))


def peer_conn(tmp_path: Path, peer: ScriptedPeer) -> Path:
    return write_info(tmp_path / "peer.json", connection_info(key=KEY.decode(), shell_port=peer.port))


def run_against_peer(loadgen: Path, tmp_path: Path, peer: ScriptedPeer, *args: str,
                     run=run_loadgen):
    """Runs the generator (zmtp, one shell connection, no IOPub) against peer, then closes it."""
    try:
        return run(loadgen, peer_conn(tmp_path, peer), "--transport", "zmtp", "--no-iopub", *args)
    finally:
        peer.close()


def test_zmtp_handles_split_and_long_frames_and_answers_ping(loadgen, tmp_path):
    def answer(peer: ScriptedPeer, request: list[bytes]) -> None:
        wire = encode(signed_reply(request, padding=600))  # a long (8-byte size) content frame
        if peer.requests == 1:
            peer.conn.sendall(command(b"PING", b"\x00\x0a" + b"ctx-42"))
            # Cut inside a flags byte's size, inside a long size, inside bodies: each piece is read
            # on its own, so the client must keep partial frames across reads.
            cuts = sorted({1, 5, 13, len(wire) // 2, len(wire) - 300, len(wire) - 3})
            start = 0
            for cut in cuts + [len(wire)]:
                peer.conn.sendall(wire[start:cut])
                start = cut
                time.sleep(0.02)
        else:
            peer.conn.sendall(wire)

    peer = ScriptedPeer(b"ROUTER", answer)
    r = run_against_peer(loadgen, tmp_path, peer, "-c", "1", "-d", "0.5", "-w", "0", run=run_json)
    assert peer.error is None, repr(peer.error)
    assert r["round_trips"] > 0 and r["errors"] == 0 and r["unexpected"] == 0
    assert peer.client_ready["Socket-Type"] == b"DEALER"
    assert peer.client_ready["Identity"].startswith(b"kl_loadgen-0-")
    assert (b"PONG", b"ctx-42") in peer.commands


def test_zmtp_rejects_a_peer_of_the_wrong_type(loadgen, tmp_path):
    out = run_against_peer(loadgen, tmp_path, ScriptedPeer(b"PUB", lambda peer, request: None),
                           "-d", "0.5")
    assert out.returncode != 0
    assert "the peer is a PUB socket; a DEALER needs ROUTER" in out.stderr


def test_zmtp_refuses_an_oversized_frame(loadgen, tmp_path):
    def answer(peer: ScriptedPeer, request: list[bytes]) -> None:
        peer.conn.sendall(bytes([LONG]) + (1 << 40).to_bytes(8, "big") + b"x" * 100)

    out = run_against_peer(loadgen, tmp_path, ScriptedPeer(b"ROUTER", answer), "-d", "0.5")
    assert out.returncode != 0
    assert "frame of 1099511627776 bytes (limit 67108864)" in out.stderr


def test_zmtp_reports_a_peer_that_hangs_up(loadgen, tmp_path):
    def answer(peer: ScriptedPeer, request: list[bytes]) -> None:
        peer.conn.close()
        raise EOFError

    out = run_against_peer(loadgen, tmp_path, ScriptedPeer(b"ROUTER", answer), "-d", "0.5")
    assert out.returncode != 0
    assert "the peer closed the connection" in out.stderr


def test_a_missing_idle_status_is_reported_not_waited_for_forever(loadgen, tmp_path):
    # A kernel that answers on shell and publishes busy but never idle: once IOPub has shown it is
    # live, a request is not complete without its idle status, and the generator must say which
    # part is missing instead of waiting (or counting the reply alone as the round trip).
    def publish_busy(iopub: ScriptedPeer, request: list[bytes]) -> None:
        assert iopub.ready.wait(TIMEOUT)
        parent = json.loads(request[2])
        header = {"msg_id": str(uuid.uuid4()), "msg_type": "status", "session": "peer",
                  "username": "peer", "date": "2026-01-01T00:00:00Z", "version": "5.3"}
        topic = f"session.{parent['session']}.status".encode()
        iopub.conn.sendall(encode([topic, *signed(header, parent, {"execution_state": "busy"})]))

    iopub = ScriptedPeer(b"XPUB", lambda peer, subscription: None)

    def answer(shell: ScriptedPeer, request: list[bytes]) -> None:
        publish_busy(iopub, request)
        time.sleep(0.2)  # the busy is read before the reply, so the next request awaits its idle
        shell.conn.sendall(encode(signed_reply(request)))

    shell = ScriptedPeer(b"ROUTER", answer)
    conn = write_info(tmp_path / "peers.json",
                      connection_info(key=KEY.decode(), shell_port=shell.port, iopub_port=iopub.port))
    t0 = time.monotonic()
    try:
        out = run_loadgen(loadgen, conn, "--transport", "zmtp", "-c", "1", "-d", "5", "-w", "0",
                          "--stall-timeout", "1.5", timeout=30)
    finally:
        shell.close()
        iopub.close()
    assert shell.error is None and iopub.error is None, (shell.error, iopub.error)
    assert out.returncode != 0
    assert "client 0's request has waited" in out.stderr
    assert "(reply arrived, idle status missing)" in out.stderr
    assert shell.requests >= 2  # the first request completed at its reply: IOPub was not live yet
    assert time.monotonic() - t0 < 15
