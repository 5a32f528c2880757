"""ReleaseExecute in the background: a SQL cell's reply does not wait for the release of its
operations, yet each reattachable operation the server keeps is released exactly once, failures of
the release never reach the user, and a shutdown right after a cell neither loses nor hangs on a
release still in flight.

The kernel talks to the real server through a recording gRPC proxy (SparkProxy) that can hold
every ReleaseExecute until the test lets it through. Whether the server still keeps an operation is
asked of the server itself, with a ReattachExecute of our own: a kept operation replays its
responses, a released one is INVALID_HANDLE.OPERATION_NOT_FOUND."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

from e2e_support import execute, get_reply, of_type, parent_is, send, stream_text, wait_iopub
from spark_support import LONG_QUERY, SQL_TIMEOUT, SparkKernel, run_ok, texts

pytestmark = pytest.mark.spark

SERVICE = "/spark.connect.SparkConnectService/"
STREAMING = {"ExecutePlan", "ReattachExecute"}
# How long the proxy holds a ReleaseExecute at most: far past the kernel's own 2 s deadline for
# it, so a kernel that waited for the release would see it fail before the cell could end.
HOLD_LIMIT = 60.0
# A shutdown must not hang on a held release: the kernel gives each release 2 s.
SHUTDOWN_LIMIT = 30.0
OPERATION_GONE = "INVALID_HANDLE.OPERATION_NOT_FOUND"


def _parse(name: str, data: bytes) -> Any:
    cls = {
        "ExecutePlan": base_pb2.ExecutePlanRequest,
        "ReattachExecute": base_pb2.ReattachExecuteRequest,
        "ReleaseExecute": base_pb2.ReleaseExecuteRequest,
        "Interrupt": base_pb2.InterruptRequest,
    }.get(name)
    return cls.FromString(data) if cls else None


class Call:
    """One RPC the proxy forwarded: its method, operation id, and how it ended."""

    def __init__(self, seq: int, name: str, request: Any):
        self.seq = seq
        self.name = name
        self.request = request
        self.op = getattr(request, "operation_id", "") if request is not None else ""
        self.end_seq: int | None = None
        self.code: grpc.StatusCode | None = None
        self.context: grpc.ServicerContext | None = None
        self.held = False  # a ReleaseExecute waiting at the gate

    def __repr__(self) -> str:
        return f"{self.name}({self.op[:8]}) #{self.seq}-{self.end_seq} {self.code}"


class SparkProxy:
    """A gRPC server that forwards every Spark Connect call to upstream as raw bytes and records
    it. While `gate` is clear, ReleaseExecute calls wait in the proxy (not yet forwarded);
    `release_error` makes them fail with that status instead of reaching the server."""

    def __init__(self, upstream: str):
        self.upstream = grpc.insecure_channel(upstream)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.calls: list[Call] = []
        self.seq = 0
        self.gate = threading.Event()
        self.gate.set()
        self.release_error: grpc.StatusCode | None = None
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), handlers=[_Handler(self)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.gate.set()
        self.server.stop(grace=None)
        self.upstream.close()

    def _begin(self, name: str, data: bytes, context: grpc.ServicerContext) -> Call:
        with self.lock:
            self.seq += 1
            call = Call(self.seq, name, _parse(name, data))
            call.context = context
            self.calls.append(call)
            self.changed.notify_all()
            return call

    def _end(self, call: Call, code: grpc.StatusCode) -> None:
        with self.lock:
            self.seq += 1
            call.end_seq = self.seq
            call.code = code
            call.held = False
            self.changed.notify_all()

    @staticmethod
    def _metadata(context: grpc.ServicerContext) -> list[tuple[str, Any]]:
        return [
            (k, v)
            for k, v in context.invocation_metadata()
            if not k.startswith((":", "grpc-")) and k not in ("user-agent", "te", "content-type")
        ]

    @staticmethod
    def _fail(context: grpc.ServicerContext, e: grpc.RpcError) -> None:
        # Spark's error classes travel in grpc-status-details-bin: pass the trailer on unchanged.
        md = [(k, v) for k, v in (e.trailing_metadata() or ()) if k == "grpc-status-details-bin"]
        context.set_trailing_metadata(md)
        context.abort(e.code(), e.details() or "")

    def unary(self, method: str, data: bytes, context: grpc.ServicerContext) -> bytes:
        name = method.rsplit("/", 1)[-1]
        call = self._begin(name, data, context)
        code = grpc.StatusCode.OK
        try:
            if name == "ReleaseExecute":
                with self.lock:
                    call.held = not self.gate.is_set()
                    self.changed.notify_all()
                deadline = time.monotonic() + HOLD_LIMIT
                while not self.gate.wait(0.05):
                    if not context.is_active() or time.monotonic() > deadline:
                        code = grpc.StatusCode.CANCELLED
                        context.abort(code, "held by the test proxy")
                if self.release_error is not None:
                    code = self.release_error
                    context.abort(code, "ReleaseExecute refused by the test proxy")
            try:
                return self.upstream.unary_unary(method)(data, metadata=self._metadata(context))
            except grpc.RpcError as e:
                code = e.code()
                self._fail(context, e)
                raise AssertionError("unreachable")
        finally:
            self._end(call, code)

    def stream(self, method: str, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        name = method.rsplit("/", 1)[-1]
        call = self._begin(name, data, context)
        code = grpc.StatusCode.OK
        it = self.upstream.unary_stream(method)(data, metadata=self._metadata(context))
        context.add_callback(it.cancel)
        try:
            yield from it
        except grpc.RpcError as e:
            code = e.code()
            self._fail(context, e)
        finally:
            self._end(call, code)

    def wait_for(self, pred, timeout: float = SQL_TIMEOUT, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}: {self.calls}")
                self.changed.wait(min(left, 0.5))

    def since(self, seq: int) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.seq > seq]

    def last_seq(self) -> int:
        with self.lock:
            return self.seq


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: SparkProxy):
        self.proxy = proxy

    def service(self, details):
        method = details.method
        if not method.startswith(SERVICE):
            return None
        name = method[len(SERVICE) :]
        if name in STREAMING:
            return grpc.unary_stream_rpc_method_handler(
                lambda data, ctx: self.proxy.stream(method, data, ctx)
            )
        return grpc.unary_unary_rpc_method_handler(lambda data, ctx: self.proxy.unary(method, data, ctx))


def server_keeps(upstream: str, execute_request: Any) -> str | None:
    """None when the server still keeps the operation of execute_request (a reattach replays it),
    else the error a reattach gets."""
    req = base_pb2.ReattachExecuteRequest(
        session_id=execute_request.session_id,
        user_context=execute_request.user_context,
        operation_id=execute_request.operation_id,
        client_type="kindling-e2e-probe",
    )
    with grpc.insecure_channel(upstream) as ch:
        stub = base_pb2_grpc.SparkConnectServiceStub(ch)
        try:
            for _ in stub.ReattachExecute(req, timeout=SQL_TIMEOUT):
                pass
        except grpc.RpcError as e:
            return e.details() or str(e.code())
    return None


@pytest.fixture
def upstream(spark_url: str) -> str:
    m = re.match(r"sc://([^/]+)", spark_url)
    assert m, spark_url
    return m.group(1)


@pytest.fixture
def proxy(upstream: str) -> Iterator[SparkProxy]:
    p = SparkProxy(upstream)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def pkernel(tmp_path: Path, proxy: SparkProxy) -> Iterator[SparkKernel]:
    handle = SparkKernel(tmp_path / "kernel", remote=proxy.url, extra_args=["--log-level", "debug"])
    try:
        yield handle
    finally:
        handle.close()  # a clean exit (status 0), releases in flight or not


def by_name(calls: list[Call], name: str) -> list[Call]:
    return [c for c in calls if c.name == name]


def warm(kernel: SparkKernel, proxy: SparkProxy) -> int:
    """Runs a first cell (the session exists, the first-query costs are paid) and waits for its
    releases; the proxy's sequence number after it."""
    assert texts(run_ok(kernel.kc, "SELECT 1 AS one"))
    proxy.wait_for(
        lambda: len(by_name(proxy.calls, "ReleaseExecute")) == 2
        and all(c.end_seq for c in proxy.calls),
        what="the first cell's calls",
    )
    return proxy.last_seq()


def test_select1_reply_does_not_wait_for_release(pkernel, proxy, upstream):
    mark = warm(pkernel, proxy)
    proxy.gate.clear()
    reply, msgs = execute(pkernel.kc, "SELECT 1 AS one", timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert texts(msgs) == ["+---+\n|one|\n+---+\n|  1|\n+---+\n"]
    # The cell has ended (reply and idle) while both its releases wait at the gate and the kernel
    # still wants their answers: it neither waited for them nor gave up on them (a kernel that
    # waited would have hit its deadline on the first one before the cell could end).
    proxy.wait_for(lambda: len(by_name(proxy.since(mark), "ReleaseExecute")) == 2, what="releases")
    with proxy.lock:
        calls = [c for c in proxy.calls if c.seq > mark]
        held = by_name(calls, "ReleaseExecute")
        assert all(c.held and c.end_seq is None and c.context.is_active() for c in held), calls
    plans = by_name(calls, "ExecutePlan")
    assert len(plans) == 2 and all(c.code == grpc.StatusCode.OK for c in plans), calls
    command, query = plans
    assert command.request.plan.WhichOneof("op_type") == "command"
    assert query.request.plan.root.WhichOneof("rel_type") == "limit"
    assert all(p.request.request_options[0].reattach_options.reattachable for p in plans)
    for p in plans:
        assert server_keeps(upstream, p.request) is None, "kept until the release passes"

    proxy.gate.set()
    proxy.wait_for(
        lambda: all(c.end_seq for c in by_name(proxy.since(mark), "ReleaseExecute")),
        what="releases answered",
    )
    calls = proxy.since(mark)
    releases = by_name(calls, "ReleaseExecute")
    # Exactly once per operation, release_all, each after its own stream ended; nothing else.
    assert sorted(r.op for r in releases) == sorted(p.op for p in plans), calls
    assert all(r.request.WhichOneof("release") == "release_all" for r in releases)
    assert all(r.code == grpc.StatusCode.OK for r in releases), releases
    for p in plans:
        (r,) = [r for r in releases if r.op == p.op]
        assert r.seq > p.end_seq, calls
    assert sorted(c.name for c in calls) == ["ExecutePlan"] * 2 + ["ReleaseExecute"] * 2, calls
    for p in plans:
        assert OPERATION_GONE in (server_keeps(upstream, p.request) or ""), "released on the server"
    # The debug log tells the same story: one release sent and one answered per operation.
    log = pkernel.stderr_text()
    for p in plans:
        assert log.count(f"operation {p.op}: ReleaseExecute queued") == 1, log[-3000:]
    deadline = time.monotonic() + SQL_TIMEOUT
    while any(f"operation {p.op}: ReleaseExecute done" not in log for p in plans):
        assert time.monotonic() < deadline, log[-3000:]
        time.sleep(0.05)
        log = pkernel.stderr_text()


def test_failed_statement_is_released_once(pkernel, proxy, upstream):
    mark = warm(pkernel, proxy)
    reply, msgs = execute(pkernel.kc, "SELECT * FROM kl_no_such_table_for_release", timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    proxy.wait_for(lambda: by_name(proxy.since(mark), "ReleaseExecute"), what="the release")
    proxy.wait_for(
        lambda: all(c.end_seq for c in proxy.since(mark)), what="every call answered"
    )
    calls = proxy.since(mark)
    (plan,) = by_name(calls, "ExecutePlan")
    (rel,) = by_name(calls, "ReleaseExecute")
    assert rel.op == plan.op and rel.seq > plan.end_seq, calls
    # Released: the server no longer answers a reattach with the statement's own error.
    assert OPERATION_GONE in (server_keeps(upstream, plan.request) or ""), calls


def test_release_failure_is_not_shown(pkernel, proxy):
    mark = warm(pkernel, proxy)
    proxy.release_error = grpc.StatusCode.UNAVAILABLE
    reply, msgs = execute(pkernel.kc, "SELECT 2 AS two", timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    proxy.wait_for(
        lambda: [c.code for c in by_name(proxy.since(mark), "ReleaseExecute")]
        == [grpc.StatusCode.UNAVAILABLE] * 2,
        what="two failed releases",
    )
    # The next cell is not troubled either, and nothing about the releases reached the user.
    reply2, msgs2 = execute(pkernel.kc, "SELECT 3 AS three", timeout=SQL_TIMEOUT)
    assert reply2["content"]["status"] == "ok", reply2["content"]
    for m in (msgs, msgs2):
        assert not of_type(m, "error")
        assert stream_text(m, "stderr") == "" and stream_text(m, "stdout") == ""
    deadline = time.monotonic() + SQL_TIMEOUT
    while stderr_count(pkernel, "ReleaseExecute failed with UNAVAILABLE") < 2:
        assert time.monotonic() < deadline, pkernel.stderr_text()[-3000:]
        time.sleep(0.05)


def stderr_count(kernel: SparkKernel, text: str) -> int:
    return kernel.stderr_text().count(text)


def test_interrupted_operation_is_released_once(pkernel, proxy):
    mark = warm(pkernel, proxy)
    kc = pkernel.kc
    msg_id = kc.execute(LONG_QUERY)
    wait_iopub(kc, lambda m: m["msg_type"] == "execute_input" and parent_is(msg_id)(m))
    proxy.wait_for(
        lambda: len(by_name(proxy.since(mark), "ExecutePlan")) == 2, what="the query's ExecutePlan"
    )
    time.sleep(1)  # its tasks start
    send(kc, "interrupt_request", {}, channel="control")
    reply = get_reply(kc, msg_id, timeout=SQL_TIMEOUT)
    assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
    proxy.wait_for(
        lambda: len(by_name(proxy.since(mark), "ReleaseExecute")) == 2
        and all(c.end_seq for c in proxy.since(mark)),
        what="both releases",
    )
    calls = proxy.since(mark)
    command, query = by_name(calls, "ExecutePlan")
    (interrupt,) = by_name(calls, "Interrupt")
    assert interrupt.op == query.op
    releases = by_name(calls, "ReleaseExecute")
    assert sorted(r.op for r in releases) == sorted([command.op, query.op]), calls
    (qrel,) = [r for r in releases if r.op == query.op]
    assert qrel.seq > interrupt.seq, calls


@pytest.mark.parametrize("held", [False, True], ids=["answered", "held"])
def test_shutdown_right_after_cell(tmp_path, proxy, held):
    kernel = SparkKernel(tmp_path / "kernel", remote=proxy.url, extra_args=["--log-level", "debug"])
    try:
        mark = warm(kernel, proxy)
        if held:
            proxy.gate.clear()
        run_ok(kernel.kc, "SELECT 1 AS one")
    except BaseException:
        kernel.close(check=False)
        raise
    started = time.monotonic()
    kernel.close()  # asserts exit status 0
    took = time.monotonic() - started
    assert took < SHUTDOWN_LIMIT, f"shutdown took {took:.1f}s"
    calls = proxy.since(mark)
    plans = by_name(calls, "ExecutePlan")
    releases = by_name(calls, "ReleaseExecute")
    # Not lost: each operation's release reached the server side before the session went.
    assert sorted(r.op for r in releases) == sorted(p.op for p in plans) and len(plans) == 2, calls
    sessions = by_name(calls, "ReleaseSession")
    assert sessions and all(r.seq < sessions[0].seq for r in releases), calls
    # The shutdown waited for each release's answer before releasing the session, or for its
    # deadline (2 s) when the proxy held it: those failed in the log, not on the screen. (The
    # proxy notices a held call's end only when it next polls, so its order proves nothing then.)
    log = kernel.log_path.read_text(errors="replace")
    failed = log.count("ReleaseExecute failed with DEADLINE_EXCEEDED")
    assert failed == (2 if held else 0), log[-3000:]
    if not held:
        assert all(r.end_seq and r.end_seq < sessions[0].seq for r in releases), calls
