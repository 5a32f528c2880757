"""The Comm API without Spark: comms belong to the connection that opened them (another client can
neither message nor close them), comm_info filtered by target, the kindling.sql target's answers to
malformed opens and messages (an error comm_msg naming the problem, never a silent close), and the
comms of a culled connection being closed."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from e2e_support import KernelHandle, read_iopub, request, send, wait_iopub


def comm_open(kc: BlockingKernelClient, target: str, data: dict[str, Any] | None = None) -> str:
    comm_id = uuid.uuid4().hex
    send(kc, "comm_open", {"comm_id": comm_id, "target_name": target, "data": data or {}})
    return comm_id


def comm_msg(kc: BlockingKernelClient, comm_id: str, data: Any, buffers: list[bytes] | None = None) -> str:
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kc.session.send(kc.shell_channel.socket, msg, buffers=buffers or [])
    return msg["header"]["msg_id"]


def comm_reply(kc: BlockingKernelClient, comm_id: str, timeout: float = 10) -> dict[str, Any]:
    """The next comm_msg or comm_close the kernel sends on comm_id (each read only once)."""
    seen = kc.__dict__.setdefault("_comm_seen", set())

    def match(m: dict[str, Any]) -> bool:
        return (m["msg_type"] in ("comm_msg", "comm_close")
                and m["content"].get("comm_id") == comm_id
                and m["header"]["msg_id"] not in seen)

    msg = wait_iopub(kc, match, timeout)
    seen.add(msg["header"]["msg_id"])
    return msg


def nothing_on(kc: BlockingKernelClient, comm_id: str, seconds: float) -> bool:
    """True when no comm_msg for comm_id arrives within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = read_iopub(kc, 0.2)
        if m and m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id:
            return False
    return True


def comms(kc: BlockingKernelClient, target: str | None = None) -> dict[str, Any]:
    content = {"target_name": target} if target else {}
    reply = request(kc, "comm_info_request", content)["content"]
    assert reply["status"] == "ok"
    return reply["comms"]


# --- ownership -----------------------------------------------------------------------------------


def test_another_connection_cannot_use_or_close_a_comm(kernel):
    owner = kernel.kc
    other = kernel.new_client()
    comm_id = comm_open(owner, "kindling.echo")
    comm_msg(owner, comm_id, {"n": 1})
    assert comm_reply(owner, comm_id)["content"]["data"] == {"n": 1}

    comm_msg(other, comm_id, {"n": 2})
    send(other, "comm_close", {"comm_id": comm_id, "data": {}})
    assert nothing_on(owner, comm_id, 1.0), "another connection's comm_msg reached the comm"
    log = kernel.stderr_text()
    assert f"comm_msg for comm {comm_id} refused" in log
    assert f"comm_close for comm {comm_id} refused" in log
    # Still open, and still working for its owner.
    assert comm_id in comms(owner)
    comm_msg(owner, comm_id, {"n": 3})
    assert comm_reply(owner, comm_id)["content"]["data"] == {"n": 3}


def test_comm_info_filters_by_target(kc):
    echo = comm_open(kc, "kindling.echo")
    sql = comm_open(kc, "kindling.sql", {"sql": "SELECT :x"})
    by_echo = comms(kc, "kindling.echo")
    by_sql = comms(kc, "kindling.sql")
    assert echo in by_echo and sql not in by_echo
    assert sql in by_sql and echo not in by_sql
    assert by_sql[sql] == {"target_name": "kindling.sql"}
    assert set(comms(kc)) >= {echo, sql}
    assert comms(kc, "no.such.target") == {}


def test_comms_of_a_culled_connection_are_closed(tmp_path):
    kernel = KernelHandle(tmp_path / "k", extra_args=["--cull-idle", "1", "--log-level", "info"])
    try:
        comm_id = comm_open(kernel.kc, "kindling.echo")
        assert comm_id in comms(kernel.kc)
        # The opener goes quiet and is culled, which must close its comm.
        deadline = time.monotonic() + 10
        while f"closing comm {comm_id}" not in kernel.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert f"closing comm {comm_id} (kindling.echo): its connection ended" in kernel.stderr_text()
        # Back again, the client is a new connection: the comm is gone.
        assert comm_id not in comms(kernel.kc)
    finally:
        kernel.close()


# --- kindling.sql: refusals that need no Spark ----------------------------------------------------


def error_of(msg: dict[str, Any]) -> dict[str, Any]:
    assert msg["msg_type"] == "comm_msg", msg
    err = msg["content"]["data"].get("error")
    assert err is not None, msg["content"]["data"]
    return err


@pytest.mark.parametrize("data, needle", [
    ({}, "\"sql\""),
    ({"sql": 42}, "\"sql\""),
    ({"sql": "  -- nothing\n"}, "empty"),
    ({"sql": "SELECT 1; SELECT 2"}, "several statements"),
    ({"sql": "SELECT :a, ?"}, "mixes"),
    ({"sql": "SELECT 1", "format": "xml"}, "\"format\""),
    ({"sql": "SELECT 1", "limit": -1}, "\"limit\""),
    ({"sql": "SELECT 1", "concurrency": 0}, "\"concurrency\""),
])
def test_sql_open_refused_with_a_reason(kc, data, needle):
    comm_id = comm_open(kc, "kindling.sql", data)
    err = error_of(comm_reply(kc, comm_id))
    assert err["ename"] == "InvalidRequest"
    assert needle in err["evalue"]
    assert comm_reply(kc, comm_id)["msg_type"] == "comm_close"
    assert comm_id not in comms(kc)


def test_sql_malformed_messages_answered_with_errors(kc):
    comm_id = comm_open(kc, "kindling.sql", {"sql": "SELECT :id AS id, :name AS name"})
    cases = [
        ({"request_id": 1, "params": {"id": 1}}, "UNBOUND_SQL_PARAMETER", ":name"),
        ({"request_id": 2, "params": [1, "x"]}, "InvalidRequest", "named markers"),
        ({"request_id": 3, "params": {"id": [1], "name": "x"}}, "InvalidRequest", "parameter :id"),
        ({"request_id": 4, "params": "id=1"}, "InvalidRequest", "must be an object"),
        ("not an object", "InvalidRequest", "must be an object"),
    ]
    for data, ename, needle in cases:
        comm_msg(kc, comm_id, data)
        reply = comm_reply(kc, comm_id)
        err = error_of(reply)
        assert err["ename"] == ename, (data, err)
        assert needle in err["evalue"], (data, err)
        expected_id = data["request_id"] if isinstance(data, dict) else None
        assert reply["content"]["data"]["request_id"] == expected_id
    # Bad msgpack in the buffer.
    comm_msg(kc, comm_id, {"request_id": "mp"}, buffers=[b"\xc1"])
    reply = comm_reply(kc, comm_id)
    assert error_of(reply)["ename"] == "InvalidRequest"
    assert "msgpack" in error_of(reply)["evalue"]
    assert reply["content"]["data"]["request_id"] == "mp"
    # The comm is still open after all that.
    assert comm_id in comms(kc, "kindling.sql")
