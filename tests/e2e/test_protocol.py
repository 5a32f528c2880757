"""Protocol behaviour that jupyter_kernel_test does not cover: comms, stdin, interrupts, shutdown and
restart, several clients at once, aborts, load on IOPub, hostile input, and message ordering."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from itertools import zip_longest
from datetime import datetime, timezone

import pytest
import zmq
from jupyter_client.session import DELIM, Session

from e2e_support import (
    TIMEOUT,
    KernelHandle,
    execute,
    get_reply,
    iopub_for,
    iopub_log,
    is_idle_of,
    of_type,
    parent_is,
    plain_result,
    request,
    send,
    stream_text,
    wait_iopub,
    wait_msg,
)

# --- comms ---------------------------------------------------------------------------------------


def test_comm_open_unknown_target_is_closed(kc):
    comm_id = uuid.uuid4().hex
    send(kc, "comm_open", {"comm_id": comm_id, "target_name": "no.such.target", "data": {}})
    close = wait_iopub(kc, lambda m: m["msg_type"] == "comm_close")
    assert close["content"]["comm_id"] == comm_id


def test_comm_echo_round_trip_and_close(kc):
    comm_id = uuid.uuid4().hex
    send(kc, "comm_open", {"comm_id": comm_id, "target_name": "kindling.echo", "data": {}})
    payload = {"text": "ping", "n": 42, "nested": {"list": [1, 2, 3]}}
    send(kc, "comm_msg", {"comm_id": comm_id, "data": payload})
    echo = wait_iopub(kc, lambda m: m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id)
    assert echo["content"]["data"] == payload

    listed = request(kc, "comm_info_request", {})["content"]
    assert listed["status"] == "ok"
    assert listed["comms"].get(comm_id) == {"target_name": "kindling.echo"}

    send(kc, "comm_close", {"comm_id": comm_id, "data": {}})
    # A request on the same connection is answered after the close was handled.
    listed = request(kc, "comm_info_request", {})["content"]
    assert comm_id not in listed["comms"]


def test_comm_info_filters_by_target(kc):
    comm_id = uuid.uuid4().hex
    send(kc, "comm_open", {"comm_id": comm_id, "target_name": "kindling.echo", "data": {}})
    mine = request(kc, "comm_info_request", {"target_name": "kindling.echo"})["content"]
    other = request(kc, "comm_info_request", {"target_name": "some.other.target"})["content"]
    assert mine["status"] == "ok" and other["status"] == "ok"
    assert comm_id in mine["comms"]
    assert all(v["target_name"] == "kindling.echo" for v in mine["comms"].values())
    assert other["comms"] == {}


# --- stdin ---------------------------------------------------------------------------------------


def test_input_round_trip(kc):
    msg_id = kc.execute("%input What is your name?", allow_stdin=True)
    req = wait_msg(kc, "stdin", lambda m: m["msg_type"] == "input_request")
    assert req["parent_header"]["msg_id"] == msg_id
    assert "What is your name?" in req["content"]["prompt"]
    assert not req["content"]["password"]
    kc.input("Ada")
    reply = get_reply(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    assert stream_text(iopub_for(kc, msg_id)) == "you said: Ada\n"


def test_input_reply_naming_its_request(kc):
    """JupyterLab sets the input_reply's parent to the input_request; jupyter_client's input() does
    not (see test_input_round_trip). Both must reach the waiting cell."""
    msg_id = kc.execute("%input Colour?", allow_stdin=True)
    req = wait_msg(kc, "stdin", lambda m: m["msg_type"] == "input_request")
    kc.stdin_channel.send(kc.session.msg("input_reply", {"value": "blue"}, parent=req))
    assert get_reply(kc, msg_id)["content"]["status"] == "ok"
    assert stream_text(iopub_for(kc, msg_id)) == "you said: blue\n"


def test_input_password(kc):
    msg_id = kc.execute("%input --password Secret:", allow_stdin=True)
    req = wait_msg(kc, "stdin", lambda m: m["msg_type"] == "input_request")
    assert req["parent_header"]["msg_id"] == msg_id
    assert req["content"]["password"]
    assert "Secret:" in req["content"]["prompt"]
    kc.input("hunter2")
    reply = get_reply(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    out = stream_text(iopub_for(kc, msg_id))
    assert out == "(7 characters)\n"
    assert "hunter2" not in out


def test_input_without_stdin_is_an_error(kc):
    reply, msgs = execute(kc, "%input Name?", allow_stdin=False)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "StdinNotImplementedError"
    assert [m["content"]["ename"] for m in of_type(msgs, "error")] == ["StdinNotImplementedError"]


# --- interrupt -----------------------------------------------------------------------------------


def _start_long_sleep(kc) -> str:
    msg_id = kc.execute("%sleep 30")
    wait_iopub(kc, lambda m: m["msg_type"] == "execute_input" and parent_is(msg_id)(m))
    time.sleep(0.5)  # let the cell reach its wait
    return msg_id


def _assert_interrupted(kc, msg_id: str, started: float) -> None:
    reply = get_reply(kc, msg_id, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert elapsed < 20, f"interrupt took {elapsed:.1f}s of a 30s sleep"
    errors = of_type(iopub_for(kc, msg_id), "error")
    assert [e["content"]["ename"] for e in errors] == ["KeyboardInterrupt"]
    # The connection still works.
    reply, msgs = execute(kc, "%echo still here")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "still here\n"


def test_interrupt_by_message(kc):
    msg_id = _start_long_sleep(kc)
    started = time.monotonic()
    reply = request(kc, "interrupt_request", {}, channel="control")
    assert reply["msg_type"] == "interrupt_reply"
    assert reply["content"]["status"] == "ok"
    _assert_interrupted(kc, msg_id, started)


def test_interrupt_by_sigint(kernel):
    kc = kernel.kc
    msg_id = _start_long_sleep(kc)
    started = time.monotonic()
    os.kill(kernel.pid, signal.SIGINT)
    _assert_interrupted(kc, msg_id, started)
    assert kernel.km.is_alive()
    info = request(kc, "kernel_info_request", {})
    assert info["content"]["implementation"] == "kindling"


def test_interrupt_message_stops_only_its_own_connection(kernel):
    """A client's interrupt_request ends that client's cell; another client's cell runs on."""
    a, b = kernel.new_client(), kernel.new_client()
    ida, idb = _start_long_sleep(a), _start_long_sleep(b)
    started = time.monotonic()
    assert request(a, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    _assert_interrupted(a, ida, started)
    with pytest.raises(TimeoutError):
        get_reply(b, idb, timeout=1.5)
    started = time.monotonic()
    assert request(b, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    _assert_interrupted(b, idb, started)


def test_interrupt_from_a_session_without_cells_reaches_every_connection(kernel):
    """A notebook server interrupts with a session of its own: then every running cell stops,
    as with a signal."""
    a, b = kernel.new_client(), kernel.new_client()
    ida, idb = _start_long_sleep(a), _start_long_sleep(b)
    outsider = kernel.new_client()
    started = time.monotonic()
    reply = request(outsider, "interrupt_request", {}, channel="control")
    assert reply["content"]["status"] == "ok"
    for kc, msg_id in ((a, ida), (b, idb)):
        _assert_interrupted(kc, msg_id, started)


def test_sigint_reaches_every_connection(kernel):
    a, b = kernel.new_client(), kernel.new_client()
    ida, idb = _start_long_sleep(a), _start_long_sleep(b)
    started = time.monotonic()
    os.kill(kernel.pid, signal.SIGINT)
    for kc, msg_id in ((a, ida), (b, idb)):
        _assert_interrupted(kc, msg_id, started)


# --- shutdown and restart ------------------------------------------------------------------------


def test_shutdown_request(kernel):
    kc, proc = kernel.kc, kernel.process
    msg_id = kc.shutdown()
    reply = get_reply(kc, msg_id, channel="control")
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["restart"] is False
    assert proc.wait(timeout=TIMEOUT) == 0


def test_shutdown_reply_echoes_restart(kernel):
    kc, proc = kernel.kc, kernel.process
    reply = request(kc, "shutdown_request", {"restart": True}, channel="control")
    assert reply["content"] == {"status": "ok", "restart": True}
    assert proc.wait(timeout=TIMEOUT) == 0


def test_restart_keeps_history(kernel):
    kc, km = kernel.kc, kernel.km
    tag = uuid.uuid4().hex[:12]
    reply, _ = execute(kc, f"%echo before restart {tag}")
    assert reply["content"]["status"] == "ok"
    old_proc = kernel.process

    km.restart_kernel(now=False)
    assert old_proc.wait(timeout=TIMEOUT) == 0, "the old kernel did not exit cleanly"
    assert kernel.process.pid != old_proc.pid
    kc.wait_for_ready(timeout=TIMEOUT)

    reply, msgs = execute(kc, "%echo after restart")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "after restart\n"
    hist = request(
        kc,
        "history_request",
        {"hist_access_type": "search", "pattern": f"*{tag}*", "raw": True, "output": False, "unique": True},
    )["content"]
    assert hist["status"] == "ok"
    assert [h[2] for h in hist["history"]] == [f"%echo before restart {tag}"]


# --- several clients -----------------------------------------------------------------------------


def test_clients_have_their_own_execution_count(kernel):
    a, b = kernel.new_client(), kernel.new_client()
    counts_a = [execute(a, "%echo a")[0]["content"]["execution_count"] for _ in range(3)]
    counts_b = [execute(b, "%echo b")[0]["content"]["execution_count"] for _ in range(2)]
    counts_a.append(execute(a, "%echo a")[0]["content"]["execution_count"])
    assert counts_a == [1, 2, 3, 4]
    assert counts_b == [1, 2]


def test_display_options_are_per_client(kernel):
    a, b = kernel.new_client(), kernel.new_client()
    reply, msgs = execute(a, "%truncation off")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "Truncation is now off\n"
    assert plain_result(execute(a, "%truncation")[1]) == "Truncation: off"
    assert plain_result(execute(b, "%truncation")[1]) == "Truncation: on"


def test_clients_run_concurrently(kernel):
    a, b = kernel.new_client(), kernel.new_client()
    id_a = a.execute("%sleep 5")
    wait_iopub(a, lambda m: m["msg_type"] == "execute_input" and parent_is(id_a)(m))
    reply_b, msgs_b = execute(b, "%echo from b")
    assert reply_b["content"]["status"] == "ok"
    assert stream_text(msgs_b) == "from b\n"
    # B is done while A still sleeps: A's reply has not arrived yet.
    assert not a.shell_channel.msg_ready(), "A's reply arrived before B's: B waited for A"
    reply_a = get_reply(a, id_a)
    assert reply_a["content"]["status"] == "ok"
    assert reply_b["header"]["date"] < reply_a["header"]["date"]


def test_one_client_blocks_only_itself(kernel):
    """Requests of one connection run in order: a second cell of A waits for A's first cell."""
    a = kernel.new_client()
    id1 = a.execute("%sleep 2")
    id2 = a.execute("%echo second")
    r1, r2 = get_reply(a, id1), get_reply(a, id2)
    assert r1["content"]["status"] == r2["content"]["status"] == "ok"
    assert r1["header"]["date"] <= r2["header"]["date"]
    assert r2["content"]["execution_count"] == r1["content"]["execution_count"] + 1


# --- stop_on_error -------------------------------------------------------------------------------


def test_error_aborts_queued_cells(kc):
    # The first cell keeps the connection busy so that the rest is queued when the error happens.
    ids = [kc.execute(code) for code in ("%sleep 1", "%nosuch", "%echo queued one", "%echo queued two")]
    replies = [get_reply(kc, i) for i in ids]
    assert [r["content"]["status"] for r in replies] == ["ok", "error", "aborted", "aborted"]
    assert replies[1]["content"]["ename"] == "UnknownMagic"
    iopub_for(kc, ids[1])
    # Aborted cells have no side effects: nothing was printed for them.
    reply, msgs = execute(kc, "%echo runs again")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "runs again\n"
    aborted = {ids[2], ids[3]}
    leaked = [m for m in of_type(iopub_log(kc), "stream") if m["parent_header"].get("msg_id") in aborted]
    assert leaked == []


def test_cell_sent_after_the_error_reply_runs(kc):
    """Only requests that arrived before the error was reported are aborted. A client that sends
    its next cell as soon as it reads the error reply races the kernel; repeat to catch it."""
    for round_ in range(20):
        reply = get_reply(kc, kc.execute("%nosuch"))
        assert reply["content"]["status"] == "error"
        reply, msgs = execute(kc, f"%echo round {round_}")
        assert reply["content"]["status"] == "ok", f"round {round_}: a cell sent after the error was aborted"
        assert stream_text(msgs) == f"round {round_}\n"


def test_no_abort_without_stop_on_error(kc):
    id1 = kc.execute("%sleep 1")
    id2 = kc.execute("%nosuch", stop_on_error=False)
    id3 = kc.execute("%echo still runs")
    replies = [get_reply(kc, i) for i in (id1, id2, id3)]
    assert [r["content"]["status"] for r in replies] == ["ok", "error", "ok"]
    assert stream_text(iopub_for(kc, id3)) == "still runs\n"


# --- load ----------------------------------------------------------------------------------------


def _summary(msg: dict, index: dict[str, int]) -> tuple[int, str, str | None]:
    """(cell number, msg_type, state or text) of an IOPub message; execute_input by type only."""
    content = msg["content"]
    detail = None
    if msg["msg_type"] != "execute_input":
        detail = content.get("execution_state") or content.get("text")
    return index[msg["parent_header"]["msg_id"]], msg["msg_type"], detail


def test_thousand_executes_nothing_lost(kernel):
    # The client queues without limit, so that only the kernel could drop or stall messages.
    ctx = zmq.Context()
    ctx.setsockopt(zmq.RCVHWM, 0)
    ctx.setsockopt(zmq.SNDHWM, 0)
    kc = kernel.new_client(context=ctx)
    try:
        n = 1000
        ids = [kc.execute(f"%echo {i}") for i in range(n)]
        replies = [get_reply(kc, i, timeout=TIMEOUT * 5) for i in ids]
        assert all(r["content"]["status"] == "ok" for r in replies)
        counts = [r["content"]["execution_count"] for r in replies]
        assert counts == list(range(counts[0], counts[0] + n))

        wait_iopub(kc, is_idle_of(ids[-1]), timeout=TIMEOUT * 5)
        index = {msg_id: i for i, msg_id in enumerate(ids)}
        got = [_summary(m, index) for m in iopub_log(kc) if m["parent_header"].get("msg_id") in index]
        expected = []
        for i in range(n):
            expected += [(i, "status", "busy"), (i, "execute_input", None), (i, "stream", f"{i}\n"),
                         (i, "status", "idle")]
        if got != expected:
            first = next(k for k, (g, e) in enumerate(zip_longest(got, expected)) if g != e)
            pytest.fail(f"{len(got)} IOPub messages, expected {len(expected)}; first difference at {first}: "
                        f"got {got[first:first + 4]}, expected {expected[first:first + 4]}")
    finally:
        kernel.drop_client(kc)
        ctx.destroy(linger=0)


# --- hostile input -------------------------------------------------------------------------------


def _sign(session: Session, frames: list[bytes]) -> list[bytes]:
    return [DELIM, session.sign(frames), *frames]


def _header(sess: Session, **drop_or_set) -> dict:
    header = {
        "msg_id": uuid.uuid4().hex,
        "session": sess.session,
        "username": "attacker",
        "date": datetime.now(timezone.utc).isoformat(),
        "msg_type": "kernel_info_request",
        "version": "5.3",
    }
    for key, value in drop_or_set.items():
        if value is None:
            header.pop(key)
        else:
            header[key] = value
    return header


def _junk(session: Session) -> list[list[bytes]]:
    good = session.serialize(session.msg("kernel_info_request", {}))
    bad_sig = list(good)
    bad_sig[1] = b"0" * len(good[1])
    j = lambda obj: json.dumps(obj).encode()  # noqa: E731
    return [
        bad_sig,
        [DELIM, b"", *good[2:]],  # no signature at all
        [b"garbage"],
        [b"\x00\xff" * 64, b"\xfe"],
        [DELIM],
        [DELIM, good[1]],  # too few frames
        good[:4],  # header and parent but no metadata or content
        _sign(session, [b"{not json", b"{}", b"{}", b"{}"]),
        _sign(session, [j(_header(session)), b"{}", b"{}", b"\xff\xfe not utf-8"]),
        _sign(session, [j(_header(session, msg_type=None)), b"{}", b"{}", b"{}"]),
        _sign(session, [j(_header(session, msg_id=None, session=None)), b"{}", b"{}", b"{}"]),
        _sign(session, [j(_header(session, msg_type=17)), b"{}", b"{}", b"{}"]),
        _sign(session, [b"[1, 2, 3]", b"null", b"{}", b"{}"]),
        _sign(session, [j(_header(session, msg_type="no_such_request")), b"{}", b"{}", b"{}"]),
        _sign(session, [j(_header(session, msg_type="execute_request")), b"{}", b"{}", j({"code": 5})]),
        _sign(session, [j(_header(session, msg_type="execute_request")), b"{}", b"{}", b"[]"]),
        # Nesting deep enough to overflow a recursive parser's stack: refused before parsing.
        _sign(session, [j(_header(session)), b"{}", b"{}", b'{"a":' * 2000 + b"1" + b"}" * 2000]),
        _sign(session, [j(_header(session)), b"{}", b"[" * 100000 + b"]" * 100000, b"{}"]),
    ]


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_hostile_frames_are_dropped(kernel, channel):
    km = kernel.km
    session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme)
    port = km.shell_port if channel == "shell" else km.control_port
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://{km.ip}:{port}")
    try:
        for frames in _junk(session):
            sock.send_multipart(frames)
        good = session.send(sock, "kernel_info_request", {})
        deadline = time.monotonic() + TIMEOUT
        reply = None
        while reply is None and time.monotonic() < deadline:
            if not sock.poll(1000):
                continue
            raw = sock.recv_multipart()
            _, parts = session.feed_identities(raw)
            msg = session.deserialize(parts)  # the kernel's own messages must verify
            if msg["parent_header"].get("msg_id") == good["header"]["msg_id"]:
                reply = msg
        assert reply is not None, "no kernel_info_reply after hostile frames"
        assert reply["msg_type"] == "kernel_info_reply"
        assert reply["content"]["implementation"] == "kindling"
        assert km.is_alive()
        # The regular client is unaffected.
        r, msgs = execute(kernel.kc, "%echo unharmed")
        assert r["content"]["status"] == "ok" and stream_text(msgs) == "unharmed\n"
    finally:
        sock.close()
        ctx.term()


# --- ordering ------------------------------------------------------------------------------------


def test_execute_message_order(kc):
    msg_id = kc.execute("%echo ordered\n%truncation")
    reply = get_reply(kc, msg_id)
    msgs = iopub_for(kc, msg_id)
    types = [m["msg_type"] for m in msgs]
    assert types[0] == "status" and msgs[0]["content"]["execution_state"] == "busy"
    assert types[1] == "execute_input"
    assert types[-1] == "status" and msgs[-1]["content"]["execution_state"] == "idle"
    assert types.count("status") == 2
    assert "stream" in types and "execute_result" in types
    assert types.index("stream") < types.index("execute_result")
    assert reply["content"]["status"] == "ok"
    count = reply["content"]["execution_count"]
    assert msgs[1]["content"]["execution_count"] == count
    assert of_type(msgs, "execute_result")[0]["content"]["execution_count"] == count
    # The reply is sent before the idle status.
    assert reply["header"]["date"] <= msgs[-1]["header"]["date"]
    # Every IOPub message of the cell names the request as its parent.
    assert all(m["parent_header"]["msg_id"] == msg_id for m in msgs)
