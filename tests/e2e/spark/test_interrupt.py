"""Interrupting a long Spark query, by interrupt_request on the control channel (the requesting
connection's cell) and by SIGINT (every connection's): the cell ends with KeyboardInterrupt within
2 s, the kernel lives on, the Spark job is really gone from the server, and the Spark sessions
(temporary views) of every connection survive."""

from __future__ import annotations

import os
import signal
import time

import pytest

from e2e_support import get_reply, iopub_for, of_type, parent_is, request, wait_iopub
from spark_support import LONG_QUERY, SQL_TIMEOUT, run_ok, show_string, texts

pytestmark = pytest.mark.spark

# The issue asks for the error within 1-2 s of the interrupt.
INTERRUPT_BUDGET = 2.0
# The server has two cores and the long query keeps both busy: a query that needs a task can only
# finish once the interrupted job was cancelled on the server, not merely abandoned by the kernel.
AFTER_QUERY = "SELECT count(*) AS n FROM range(10)"
AFTER_TIMEOUT = 45.0


def start_long_query(kc) -> str:
    msg_id = kc.execute(LONG_QUERY)
    wait_iopub(kc, lambda m: m["msg_type"] == "execute_input" and parent_is(msg_id)(m))
    # Long enough for the plan to reach the server and its tasks to start.
    time.sleep(3)
    with pytest.raises(TimeoutError):
        get_reply(kc, msg_id, timeout=0.2)
    return msg_id


def assert_interrupted(kc, msg_id: str, started: float) -> None:
    reply = get_reply(kc, msg_id, timeout=SQL_TIMEOUT)
    elapsed = time.monotonic() - started
    content = reply["content"]
    assert content["status"] == "error", content
    assert content["ename"] == "KeyboardInterrupt", f"{content['ename']}: {content.get('evalue')}"
    assert elapsed < INTERRUPT_BUDGET, f"the interrupted cell ended {elapsed:.2f}s after the interrupt"
    errors = of_type(iopub_for(kc, msg_id), "error")
    assert [e["content"]["ename"] for e in errors] == ["KeyboardInterrupt"]


def prepare(kernel, spark):
    """Two connections, each with a temporary view of its own."""
    a, b = kernel.kc, kernel.new_client()
    run_ok(a, "CREATE OR REPLACE TEMP VIEW mine AS SELECT 'a' AS who")
    run_ok(b, "CREATE OR REPLACE TEMP VIEW mine AS SELECT 'b' AS who")
    return a, b


def assert_all_still_work(kernel, spark, a, b) -> None:
    assert kernel.km.is_alive()
    assert request(a, "kernel_info_request", {})["content"]["implementation"] == "kindling"
    assert texts(run_ok(a, AFTER_QUERY, timeout=AFTER_TIMEOUT)) == [show_string(spark, AFTER_QUERY)]
    assert texts(run_ok(a, "SELECT * FROM mine")) == [show_string(spark, "SELECT 'a' AS who")]
    assert texts(run_ok(b, "SELECT * FROM mine")) == [show_string(spark, "SELECT 'b' AS who")]


def test_interrupt_request_stops_long_query(spark_kernel, spark):
    a, b = prepare(spark_kernel, spark)
    msg_id = start_long_query(a)
    started = time.monotonic()
    reply = request(a, "interrupt_request", {}, channel="control")
    assert reply["msg_type"] == "interrupt_reply"
    assert reply["content"]["status"] == "ok"
    assert_interrupted(a, msg_id, started)
    assert_all_still_work(spark_kernel, spark, a, b)


def test_sigint_stops_long_query(spark_kernel, spark):
    a, b = prepare(spark_kernel, spark)
    msg_id = start_long_query(a)
    started = time.monotonic()
    os.kill(spark_kernel.pid, signal.SIGINT)
    assert_interrupted(a, msg_id, started)
    assert_all_still_work(spark_kernel, spark, a, b)


def test_interrupt_request_stops_only_its_connection_sigint_stops_all(spark_kernel, spark):
    a, b = prepare(spark_kernel, spark)
    ida, idb = start_long_query(a), start_long_query(b)
    started = time.monotonic()
    assert request(b, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    assert_interrupted(b, idb, started)
    # a's query is not b's to stop.
    with pytest.raises(TimeoutError):
        get_reply(a, ida, timeout=2)
    started = time.monotonic()
    os.kill(spark_kernel.pid, signal.SIGINT)
    assert_interrupted(a, ida, started)
    assert_all_still_work(spark_kernel, spark, a, b)


def test_interrupt_of_a_finished_cell_is_harmless(spark_kernel, spark):
    a, b = prepare(spark_kernel, spark)
    assert request(a, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    assert_all_still_work(spark_kernel, spark, a, b)
