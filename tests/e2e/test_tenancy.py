"""Many clients on one kernel, without Spark: subshells (JEP 91), per-connection IOPub topics, the
connection limit, culling of idle connections, and CurveZMQ (JEP 145)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from jupyter_client.blocking.client import BlockingKernelClient

from e2e_support import (
    TIMEOUT,
    KernelHandle,
    execute,
    get_reply,
    iopub_for,
    kindling_binary,
    request,
    send,
    stream_text,
)


def control(kc: BlockingKernelClient, msg_type: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
    return request(kc, msg_type, content or {}, channel="control")["content"]


def execute_in(kc: BlockingKernelClient, code: str, subshell_id: str | None) -> str:
    """Sends an execute_request routed to a subshell (None: the main shell); returns its msg_id."""
    msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False,
                                             "stop_on_error": True})
    if subshell_id is not None:
        msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


# --- subshells -----------------------------------------------------------------------------------


def test_kernel_info_advertises_subshells(kc):
    content = request(kc, "kernel_info_request", {})["content"]
    assert "kernel subshells" in content["supported_features"]


def test_subshell_create_list_delete(kc):
    assert control(kc, "list_subshell_request") == {"status": "ok", "subshell_id": []}
    a = control(kc, "create_subshell_request")
    b = control(kc, "create_subshell_request")
    assert a["status"] == b["status"] == "ok"
    assert a["subshell_id"] != b["subshell_id"]
    listed = control(kc, "list_subshell_request")["subshell_id"]
    assert sorted(listed) == sorted([a["subshell_id"], b["subshell_id"]])
    assert control(kc, "delete_subshell_request", {"subshell_id": a["subshell_id"]})["status"] == "ok"
    assert control(kc, "list_subshell_request")["subshell_id"] == [b["subshell_id"]]
    gone = control(kc, "delete_subshell_request", {"subshell_id": a["subshell_id"]})
    assert gone["status"] == "error" and gone["ename"] == "SubshellNotFound"


def test_subshell_runs_while_the_main_shell_is_busy(kc):
    sub = control(kc, "create_subshell_request")["subshell_id"]
    slow = execute_in(kc, "%sleep 5\n%echo main done", None)
    time.sleep(0.3)
    t0 = time.monotonic()
    quick = execute_in(kc, "%echo from the subshell", sub)
    reply = get_reply(kc, quick)
    quick_time = time.monotonic() - t0
    assert reply["content"]["status"] == "ok"
    # The main shell's cell is still running: its reply has not arrived yet.
    slow_reply = get_reply(kc, slow, timeout=TIMEOUT)
    assert slow_reply["content"]["status"] == "ok"
    msgs = iopub_for(kc, quick)
    assert stream_text(msgs) == "from the subshell\n"
    assert quick_time < 4, "the subshell waited for the main shell's %sleep"


def test_subshells_keep_their_own_execution_count(kc):
    sub = control(kc, "create_subshell_request")["subshell_id"]
    for _ in range(3):
        execute(kc, "%echo main")
    reply = get_reply(kc, execute_in(kc, "%echo sub", sub))
    assert reply["content"]["execution_count"] == 1
    main = execute(kc, "%echo main")[0]
    assert main["content"]["execution_count"] == 4


def test_unknown_subshell_is_an_error(kc):
    reply = get_reply(kc, execute_in(kc, "%echo lost", "no-such-subshell"))
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "SubshellNotFound"


def test_another_connection_cannot_use_or_delete_a_subshell(kernel):
    a = kernel.kc
    b = kernel.new_client()
    sub = control(a, "create_subshell_request")["subshell_id"]
    assert control(b, "list_subshell_request")["subshell_id"] == []
    refused = control(b, "delete_subshell_request", {"subshell_id": sub})
    assert refused["ename"] == "SubshellNotFound"
    reply = get_reply(b, execute_in(b, "%echo intruder", sub))
    assert reply["content"]["ename"] == "SubshellNotFound"
    assert control(a, "list_subshell_request")["subshell_id"] == [sub]


def test_interrupt_reaches_the_subshells_of_the_connection(kc):
    sub = control(kc, "create_subshell_request")["subshell_id"]
    running = execute_in(kc, "%sleep 30", sub)
    time.sleep(0.5)
    assert control(kc, "interrupt_request")["status"] == "ok"
    reply = get_reply(kc, running, timeout=10)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"


# --- IOPub topics --------------------------------------------------------------------------------


def test_iopub_topic_names_the_connection(kernel):
    """A raw SUB socket subscribed to one connection's prefix sees that connection's messages only."""
    a = kernel.kc
    b = kernel.new_client()
    info = kernel.km.get_connection_info()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, f"session.{a.session.session}.".encode())
    sub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
    try:
        # The welcome tells us the subscription is in place.
        assert sub.poll(int(TIMEOUT * 1000)), "no iopub_welcome"
        frames = sub.recv_multipart()
        assert frames[0] == f"session.{a.session.session}.".encode()
        execute(b, "%echo not yours")
        execute(a, "%echo yours")
        topics = []
        while sub.poll(500):
            topics.append(sub.recv_multipart()[0].decode())
        assert topics, "no traffic for the subscribed connection"
        assert all(t.startswith(f"session.{a.session.session}.") for t in topics), topics
        assert f"session.{a.session.session}.stream" in topics
    finally:
        sub.close(linger=0)


def test_a_new_iopub_connection_is_announced_before_its_subscription(tmp_path):
    """ZeroMQ applies a subscription the moment it sees it, which can be inside a publish; the
    kernel hears of each IOPub connection first (its ZAP handler) and, until the subscription has
    been read, looks for it before each publish, so the welcome goes out first."""
    kernel = KernelHandle(tmp_path / "k", extra_args=["--log-level", "debug"])
    try:
        info = kernel.km.get_connection_info()
        ctx = zmq.Context.instance()
        for _ in range(5):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
            try:
                assert sub.poll(int(TIMEOUT * 1000)), "no iopub_welcome"
                frames = sub.recv_multipart()
                i = frames.index(b"<IDS|MSG>")
                assert json.loads(frames[i + 2])["msg_type"] == "iopub_welcome"
            finally:
                sub.close(linger=0)
        log = kernel.stderr_text().splitlines()
    finally:
        kernel.close()
    announced = subscribed = 0
    for line in log:
        if "publishes look for its subscription first" in line:
            announced += 1
        elif "new subscriber to" in line:
            subscribed += 1
            assert subscribed <= announced, "a subscription was read before its connection was announced"
    assert subscribed >= 6, log  # the first client and the five above
    assert announced == subscribed


# --- limits and culling --------------------------------------------------------------------------


def test_connections_beyond_the_limit_are_refused(tmp_path):
    kernel = KernelHandle(tmp_path / "k", extra_args=["--max-connections", "2"])
    try:
        second = kernel.new_client()
        assert execute(second, "%echo two")[0]["content"]["status"] == "ok"
        session = kernel.km.session.clone()
        session.session = "third-connection"
        third = kernel.km.client(session=session)
        third.start_channels()
        try:
            msg_id = third.kernel_info()
            reply = get_reply(third, msg_id)
            assert reply["content"]["status"] == "error"
            assert reply["content"]["ename"] == "TooManyConnections"
            assert "--max-connections" in reply["content"]["evalue"]
        finally:
            third.stop_channels()
        # Those already connected keep working.
        assert execute(kernel.kc, "%echo one")[0]["content"]["status"] == "ok"
    finally:
        kernel.close()


def test_idle_connections_are_culled(tmp_path):
    kernel = KernelHandle(tmp_path / "k", extra_args=["--cull-idle", "1", "--log-level", "info"])
    try:
        kc = kernel.kc
        assert execute(kc, "%echo a")[0]["content"]["execution_count"] == 1
        assert execute(kc, "%echo b")[0]["content"]["execution_count"] == 2
        time.sleep(2.5)
        # A culled connection that comes back is a new connection: its count starts again.
        assert execute(kc, "%echo c")[0]["content"]["execution_count"] == 1
        assert "idle for" in kernel.stderr_text()
    finally:
        kernel.close()


def test_a_running_cell_is_not_culled(tmp_path):
    kernel = KernelHandle(tmp_path / "k", extra_args=["--cull-idle", "1"])
    try:
        kc = kernel.kc
        execute(kc, "%echo a")
        reply, msgs = execute(kc, "%sleep 3\n%echo still here")
        assert reply["content"]["status"] == "ok"
        assert stream_text(msgs) == "still here\n"
        assert execute(kc, "%echo b")[0]["content"]["execution_count"] == 3
    finally:
        kernel.close()


# --- CurveZMQ ------------------------------------------------------------------------------------


def curve_kernel(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any], Path]:
    public, secret = zmq.curve_keypair()
    info = {
        "transport": "tcp",
        "ip": "127.0.0.1",
        "shell_port": 0,
        "iopub_port": 0,
        "stdin_port": 0,
        "control_port": 0,
        "hb_port": 0,
        "key": "curve-test-key",
        "signature_scheme": "hmac-sha256",
        "kernel_name": "kindling",
        "curve_publickey": public.decode(),
        "curve_secretkey": secret.decode(),
    }
    # Fixed free ports: the client needs them before the kernel reports anything.
    socks = []
    for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        s = zmq.Context.instance().socket(zmq.PUB)
        info[name] = s.bind_to_random_port("tcp://127.0.0.1")
        socks.append(s)
    for s in socks:
        s.close(linger=0)
    path = tmp_path / "curve-kernel.json"
    path.write_text(json.dumps(info))
    log = open(tmp_path / "curve-kernel.log", "wb")
    proc = subprocess.Popen(
        [str(kindling_binary()), "kernel", "-f", str(path), "--no-history", "--spark-remote",
         "sc://127.0.0.1:9"],
        stdout=log,
        stderr=log,
    )
    return proc, info, path


def client_for(info: dict[str, Any]) -> BlockingKernelClient:
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    return kc


def test_curve_encrypted_connection(tmp_path):
    proc, info, _ = curve_kernel(tmp_path)
    try:
        kc = client_for(info)
        try:
            kc.wait_for_ready(timeout=TIMEOUT)
            reply, msgs = execute(kc, "%echo over curve")
            assert reply["content"]["status"] == "ok"
            assert stream_text(msgs) == "over curve\n"
        finally:
            kc.stop_channels()

        # A client holding the wrong server key never completes the handshake.
        wrong_public, wrong_secret = zmq.curve_keypair()
        bad = dict(info, curve_publickey=wrong_public.decode(), curve_secretkey=wrong_secret.decode())
        kc = client_for(bad)
        try:
            msg_id = send(kc, "kernel_info_request", {})
            with pytest.raises(TimeoutError):
                get_reply(kc, msg_id, timeout=3)
        finally:
            kc.stop_channels()

        # Nor does a client speaking plain ZeroMQ.
        plain = {k: v for k, v in info.items() if not k.startswith("curve_")}
        kc = client_for(plain)
        try:
            msg_id = send(kc, "kernel_info_request", {})
            with pytest.raises(TimeoutError):
                get_reply(kc, msg_id, timeout=3)
        finally:
            kc.stop_channels()
    finally:
        proc.terminate()
        assert proc.wait(timeout=TIMEOUT) == 0


def test_bad_curve_key_is_a_clear_start_error(tmp_path):
    proc, info, path = curve_kernel(tmp_path)
    proc.terminate()
    proc.wait(timeout=TIMEOUT)
    info["curve_secretkey"] = "short"
    path.write_text(json.dumps(info))
    out = subprocess.run([str(kindling_binary()), "kernel", "-f", str(path), "--no-history"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 2
    assert "curve_secretkey" in out.stderr
