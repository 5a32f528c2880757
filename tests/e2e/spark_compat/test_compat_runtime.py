"""The long-running side against Spark 3.5 and 4.1 servers: interrupting a long query, results that
outlive their stream (the test servers close a stream after 2 s or 1 MiB, so the kernel must
reattach), a query that computes silently for longer than several stream lifetimes (3.5 sends no
progress while it computes), and the session released at shutdown (3.5 has no ReleaseSession and
answers UNIMPLEMENTED: the kernel must still shut down cleanly and quickly)."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from e2e_support import get_reply, iopub_for, of_type, parent_is, request, wait_iopub
from spark_support import LONG_QUERY, SQL_TIMEOUT, check_bundle, outputs, run_ok, texts

pytestmark = [pytest.mark.spark, pytest.mark.spark_compat]

INTERRUPT_BUDGET = 2.0
# A query that sends nothing for 20 s (Thread.sleep on the server): ten lifetimes of the test
# servers' result streams, more than four of them back to back plus the kernel's retry waits.
SILENT_QUERY = "SELECT reflect('java.lang.Thread', 'sleep', CAST(20000 AS BIGINT)) AS slept"
STARTS = re.compile(r"ExecuteGrpcResponseSender: Starting for opId=([0-9a-f-]+)")


@pytest.fixture
def handle(compat) -> Iterator:
    h = compat.kernel("runtime")
    try:
        yield h
    finally:
        h.close()


def stream_starts(compat, since: int) -> Counter:
    """How many result streams each operation had on the server (after log offset since)."""
    return Counter(STARTS.findall(compat.server_log()[since:]))


def test_interrupt_stops_a_long_query(compat, handle):
    kc = handle.kc
    run_ok(kc, "CREATE OR REPLACE TEMP VIEW mine AS SELECT 'kept' AS what")
    msg_id = kc.execute(LONG_QUERY)
    wait_iopub(kc, lambda m: m["msg_type"] == "execute_input" and parent_is(msg_id)(m))
    # Past the first stream's lifetime: the interrupt reaches a reattached operation.
    time.sleep(3)
    with pytest.raises(TimeoutError):
        get_reply(kc, msg_id, timeout=0.2)
    started = time.monotonic()
    reply = request(kc, "interrupt_request", {}, channel="control")
    assert reply["content"]["status"] == "ok"
    content = get_reply(kc, msg_id, timeout=SQL_TIMEOUT)["content"]
    elapsed = time.monotonic() - started
    assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt", content
    assert elapsed < INTERRUPT_BUDGET, f"the interrupted cell ended {elapsed:.2f}s after the interrupt"
    assert [e["content"]["ename"] for e in of_type(iopub_for(kc, msg_id), "error")] == ["KeyboardInterrupt"]
    # The session survived, and the server is free again (the job was cancelled, not abandoned).
    assert texts(run_ok(kc, "SELECT * FROM mine")) == [compat.ref.show("SELECT 'kept' AS what")]
    query = "SELECT count(*) AS n FROM range(10)"
    assert texts(run_ok(kc, query, timeout=45)) == [compat.ref.show(query)]


def test_long_result_is_reattached_and_complete(compat, handle):
    kc = handle.kc
    rows = 30000
    # Small Arrow batches, so the 1 MiB stream limit falls between batches several times.
    run_ok(kc, "SET spark.sql.execution.arrow.maxRecordsPerBatch=2000")
    query = (
        f"SELECT id, concat('row-', id, '-', repeat('x', 40)) AS label, id * 0.5D AS half"
        f" FROM range({rows})"
    )
    since = len(compat.server_log())
    result = outputs(run_ok(kc, f"%%sql --limit {rows}\n{query}"))
    assert len(result) == 1
    assert result[0]["content"]["data"]["text/plain"] == compat.ref.show(query, limit=rows)
    check_bundle(result[0], ["id", "label", "half"], rows)
    if compat.server is not None:
        starts = stream_starts(compat, since)
        assert starts and max(starts.values()) >= 2, f"no operation was reattached: {starts}"


def test_silent_long_query_survives_stream_deadlines(compat, handle):
    kc = handle.kc
    since = len(compat.server_log())
    started = time.monotonic()
    msgs = run_ok(kc, SILENT_QUERY, timeout=600)
    took = time.monotonic() - started
    # The same value without the wait.
    assert texts(msgs) == [compat.ref.show(SILENT_QUERY.replace("20000", "0"))]
    if compat.server is not None:
        starts = stream_starts(compat, since)
        assert max(starts.values()) >= 2, f"the query ({took:.0f}s) never outlived a stream: {starts}"


def test_silent_command_is_reattached_not_resent(compat, handle):
    # A command runs eagerly inside its first ExecutePlan: this one sends nothing until it is done,
    # so its first stream ends empty and the kernel must reattach to the operation, not send it
    # again (which the server refuses with INVALID_HANDLE.OPERATION_ALREADY_EXISTS).
    kc = handle.kc
    table = f"kl_compat_{uuid.uuid4().hex[:10]}"
    sleepy = "SELECT reflect('java.lang.Thread', 'sleep', CAST(5000 AS BIGINT)) AS slept, 1 AS one"
    since = len(compat.server_log())
    try:
        assert outputs(run_ok(kc, f"CREATE TABLE {table} USING parquet AS {sleepy}")) == []
        query = f"SELECT one FROM {table}"
        assert texts(run_ok(kc, query)) == [compat.ref.show(query)]
    finally:
        run_ok(kc, f"DROP TABLE IF EXISTS {table}")
    if compat.server is not None:
        starts = stream_starts(compat, since)
        assert max(starts.values()) >= 2, f"the command never outlived a stream: {starts}"


def test_session_released_at_shutdown(compat):
    user = f"klcompat{uuid.uuid4().hex[:10]}"
    h = compat.kernel("release", user_id=user)
    try:
        run_ok(h.kc, "CREATE OR REPLACE TEMP VIEW t AS SELECT 1 AS x")
    except BaseException:
        h.close(check=False)
        raise
    started = time.monotonic()
    h.close()  # asserts a clean exit (status 0)
    took = time.monotonic() - started
    assert took < 10, f"shutdown took {took:.1f}s"
    log = h.log_path.read_text(errors="replace")
    assert "UNIMPLEMENTED" not in log and "ReleaseSession" not in log, log
    if compat.server is None:
        return
    closing = f"Closing session with userId: {user}"
    if compat.at_least_4:
        deadline = time.monotonic() + 15
        while closing not in compat.server_log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert closing in compat.server_log(), "the server never closed the kernel's session"
    else:
        # 3.5 keeps sessions until they expire: nothing to release, nothing closed.
        assert closing not in compat.server_log()
