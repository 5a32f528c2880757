"""The client side of kindling.sql comms (docs/comm.md), shared by the comm tests: calls one at a
time or pipelined, answers collected by request_id."""

from __future__ import annotations

import time
import uuid
import weakref
from typing import Any

import msgpack
from jupyter_client.blocking.client import BlockingKernelClient

from e2e_support import read_iopub
from spark_support import SQL_TIMEOUT

# Every open Comm by comm id: an IOPub message read while waiting for one comm may answer
# another of the same client, and must not be lost to it.
_COMMS: weakref.WeakValueDictionary[str, Comm] = weakref.WeakValueDictionary()


class Comm:
    """One kindling.sql comm. `answers` holds the answers not yet taken, by request_id; `log` every
    request_id answered, in order of arrival, so a test can count replies."""

    def __init__(self, kc: BlockingKernelClient, data: dict[str, Any]):
        self.kc = kc
        self.id = uuid.uuid4().hex
        self.answers: dict[Any, dict[str, Any]] = {}
        self.log: list[Any] = []
        self.closed = False
        _COMMS[self.id] = self
        msg = kc.session.msg("comm_open", {"comm_id": self.id, "target_name": "kindling.sql", "data": data})
        kc.shell_channel.send(msg)

    def send(self, request_id: Any, params: Any = None, packed: bytes | None = None) -> None:
        """One call; its parameters as JSON, or packed as the message's msgpack buffer."""
        data: dict[str, Any] = {"request_id": request_id}
        if packed is None:
            data["params"] = params
        msg = self.kc.session.msg("comm_msg", {"comm_id": self.id, "data": data})
        self.kc.session.send(self.kc.shell_channel.socket, msg, buffers=[packed] if packed else [])

    def pump(self, timeout: float) -> None:
        """Reads one IOPub message (waiting up to timeout) and files it if it is a comm's."""
        msg = read_iopub(self.kc, timeout)
        if msg is None:
            return
        comm = _COMMS.get(msg["content"].get("comm_id", ""))
        if comm is None or comm.kc is not self.kc:
            return
        if msg["msg_type"] == "comm_close":
            comm.closed = True
        elif msg["msg_type"] == "comm_msg":
            data = msg["content"]["data"]
            rid = data.get("request_id")
            assert rid not in comm.answers, f"two answers to {rid!r}"
            comm.answers[rid] = {"data": data, "buffers": msg.get("buffers", [])}
            comm.log.append(rid)

    def wait(self, request_id: Any, timeout: float = SQL_TIMEOUT) -> dict[str, Any]:
        """The answer to request_id (taken out of `answers`)."""
        deadline = time.monotonic() + timeout
        while request_id not in self.answers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to request {request_id!r}")
            self.pump(0.5)
        return self.answers.pop(request_id)

    def call(self, params: Any, request_id: Any = None, packed: bytes | None = None) -> dict[str, Any]:
        """One call and its answer."""
        rid = request_id if request_id is not None else uuid.uuid4().hex
        self.send(rid, params, packed)
        return self.wait(rid)

    def many(self, params: list[Any], window: int, msgpack_params: bool = False) -> list[dict[str, Any]]:
        """Calls for every params, window of them in flight at once; answers in params' order."""
        out: list[dict[str, Any] | None] = [None] * len(params)
        sent = done = 0
        deadline = time.monotonic() + SQL_TIMEOUT * 4
        while done < len(params):
            while sent < len(params) and sent - done < window:
                p = params[sent]
                if msgpack_params:
                    self.send(sent, packed=msgpack.packb(p))
                else:
                    self.send(sent, p)
                sent += 1
            self.pump(0.5)
            for rid in [r for r in self.answers if isinstance(r, int) and out[r] is None]:
                out[rid] = self.answers.pop(rid)
                done += 1
            assert time.monotonic() < deadline, f"only {done} of {len(params)} answers"
        return out  # type: ignore[return-value]

    def pipeline(self, params: list[Any], packed: bool = False) -> list[dict[str, Any]]:
        """Sends every call at once (as a client with many values does), request ids 0, 1, ...,
        then collects the answers; returns them in params' order."""
        for i, p in enumerate(params):
            if packed:
                self.send(i, packed=msgpack.packb(p))
            else:
                self.send(i, p)
        deadline = time.monotonic() + SQL_TIMEOUT * 6
        while len([r for r in self.answers if isinstance(r, int)]) < len(params):
            assert time.monotonic() < deadline, f"only {len(self.answers)} of {len(params)} answers"
            self.pump(0.5)
        return [self.answers.pop(i) for i in range(len(params))]

    def drain(self, seconds: float) -> None:
        """Reads IOPub for that long: whatever else arrives is filed (and checked for duplicates)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump(0.2)


def rows_of(answer: dict[str, Any]) -> list[list[Any]]:
    """The rows of a JSON answer that must not be an error."""
    data = answer["data"]
    assert "error" not in data, data
    return data["rows"]


def error_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The error of an answer that must be one."""
    assert "error" in answer["data"], answer["data"]
    return answer["data"]["error"]


def doc_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The msgpack document of an answer that must not be an error, checked against its data."""
    data = answer["data"]
    assert "error" not in data, data
    assert data["format"] == "application/msgpack" and len(answer["buffers"]) == 1
    doc = msgpack.unpackb(bytes(answer["buffers"][0]), raw=False, timestamp=3)
    assert len(doc["rows"]) == data["row_count"] and doc["truncated"] is data["truncated"]
    return doc
