"""Many clients on one kernel against a real Spark Connect server: every connection its own Spark
session, connections running at once, a busy connection never slowing another's requests,
subshells sharing their connection's session, and --shared-session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from e2e_support import TIMEOUT, get_reply, iopub_log, request, send, wait_iopub
from e2e_support import execute as e2e_execute
from spark_support import SQL_TIMEOUT, SparkKernel, run_ok, texts

pytestmark = pytest.mark.spark

# A query that waits rather than computes, so eight at once need task slots but not cores.
SLOW_QUERY = "SELECT reflect('java.lang.Thread', 'sleep', 2000L) AS slept"


def result_text(kc, msg_id: str) -> str:
    wait_iopub(kc, lambda m: m["msg_type"] == "status"
               and m["content"].get("execution_state") == "idle"
               and m["parent_header"].get("msg_id") == msg_id, SQL_TIMEOUT)
    msgs = [m for m in iopub_log(kc) if m["parent_header"].get("msg_id") == msg_id]
    return "\n".join(texts(msgs))


def test_fifty_connections_each_see_their_own_temp_view(spark_kernel: SparkKernel):
    clients = [spark_kernel.kc] + [spark_kernel.new_client() for _ in range(49)]
    sent = []
    for i, kc in enumerate(clients):
        sent.append(kc.execute(f"CREATE OR REPLACE TEMP VIEW mine AS SELECT {i} AS owner, 'conn{i}' AS tag"))
    for kc, msg_id in zip(clients, sent):
        assert get_reply(kc, msg_id, timeout=SQL_TIMEOUT)["content"]["status"] == "ok"
    reads = [kc.execute("SELECT owner, tag FROM mine") for kc in clients]
    for i, (kc, msg_id) in enumerate(zip(clients, reads)):
        reply = get_reply(kc, msg_id, timeout=SQL_TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]
        text = result_text(kc, msg_id)
        assert f"conn{i}" in text, text
        others = [f"conn{j} " for j in range(50) if j != i]
        assert not any(o in text + " " for o in others), text


def test_eight_connections_run_their_queries_at_once(spark_kernel: SparkKernel):
    kc = spark_kernel.kc
    run_ok(kc, SLOW_QUERY)  # warm the session up, so both runs below start alike

    # The same eight queries from one connection run one after another...
    t0 = time.monotonic()
    ids = [kc.execute(SLOW_QUERY) for _ in range(8)]
    for msg_id in ids:
        assert get_reply(kc, msg_id, timeout=SQL_TIMEOUT)["content"]["status"] == "ok"
    serial = time.monotonic() - t0

    # ...while from eight connections they overlap.
    clients = [spark_kernel.new_client() for _ in range(8)]
    for c in clients:
        run_ok(c, "SELECT 1")  # each connection's own session, opened before timing
    t0 = time.monotonic()
    ids = [c.execute(SLOW_QUERY) for c in clients]
    for c, msg_id in zip(clients, ids):
        assert get_reply(c, msg_id, timeout=SQL_TIMEOUT)["content"]["status"] == "ok"
    parallel = time.monotonic() - t0
    assert parallel < serial / 2, f"8 connections took {parallel:.1f}s, one connection {serial:.1f}s"


def test_a_long_query_does_not_delay_another_connections_requests(spark_kernel: SparkKernel):
    busy = spark_kernel.kc
    other = spark_kernel.new_client()
    run_ok(busy, "SELECT 1")
    long_id = busy.execute("SELECT reflect('java.lang.Thread', 'sleep', 8000L) AS slept")
    time.sleep(0.5)
    t0 = time.monotonic()
    for i in range(100):
        reply = request(other, "complete_request", {"code": "%ls", "cursor_pos": 3})
        assert reply["content"]["status"] == "ok"
        assert "%lsmagic" in reply["content"]["matches"]
    completes = time.monotonic() - t0
    info = request(other, "kernel_info_request", {})
    assert info["content"]["status"] == "ok"
    # All 100 answered while the long query still ran.
    long_reply = get_reply(busy, long_id, timeout=SQL_TIMEOUT)
    long_time = time.monotonic() - t0 + 0.5
    assert long_reply["content"]["status"] == "ok"
    assert completes < long_time / 2, f"100 completes took {completes:.1f}s beside an {long_time:.1f}s query"


def test_subshell_shares_the_connection_spark_session(spark_kernel: SparkKernel):
    kc = spark_kernel.kc
    run_ok(kc, "CREATE OR REPLACE TEMP VIEW parent_view AS SELECT 'from the parent' AS said")
    sub = request(kc, "create_subshell_request", {}, channel="control")["content"]["subshell_id"]
    msg = kc.session.msg("execute_request", {"code": "SELECT said FROM parent_view", "silent": False,
                                             "store_history": True, "user_expressions": {},
                                             "allow_stdin": False, "stop_on_error": True})
    msg["header"]["subshell_id"] = sub
    kc.shell_channel.send(msg)
    reply = get_reply(kc, msg["header"]["msg_id"], timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert "from the parent" in result_text(kc, msg["header"]["msg_id"])


def test_subshell_query_runs_beside_the_main_shell(spark_kernel: SparkKernel):
    kc = spark_kernel.kc
    run_ok(kc, "SELECT 1")
    sub = request(kc, "create_subshell_request", {}, channel="control")["content"]["subshell_id"]
    long_id = kc.execute("SELECT reflect('java.lang.Thread', 'sleep', 6000L) AS slept")
    time.sleep(0.5)
    msg = kc.session.msg("execute_request", {"code": "SELECT 41 + 1 AS answer", "silent": False,
                                             "store_history": True, "user_expressions": {},
                                             "allow_stdin": False, "stop_on_error": True})
    msg["header"]["subshell_id"] = sub
    t0 = time.monotonic()
    kc.shell_channel.send(msg)
    quick = get_reply(kc, msg["header"]["msg_id"], timeout=SQL_TIMEOUT)
    quick_time = time.monotonic() - t0
    assert quick["content"]["status"] == "ok"
    assert get_reply(kc, long_id, timeout=SQL_TIMEOUT)["content"]["status"] == "ok"
    assert quick_time < 5, f"the subshell's query waited {quick_time:.1f}s for the main shell"


def test_shared_session_shares_temp_views(tmp_path: Path, spark_url: str):
    kernel = SparkKernel(tmp_path / "shared", remote=spark_url, extra_args=["--shared-session"])
    try:
        a = kernel.kc
        b = kernel.new_client()
        run_ok(a, "CREATE OR REPLACE TEMP VIEW team_view AS SELECT 'shared by the team' AS note")
        msgs = run_ok(b, "SELECT note FROM team_view")
        assert "shared by the team" in "\n".join(texts(msgs))
    finally:
        kernel.close()


def test_separate_sessions_by_default(spark_kernel: SparkKernel):
    a = spark_kernel.kc
    b = spark_kernel.new_client()
    run_ok(a, "CREATE OR REPLACE TEMP VIEW private_view AS SELECT 1 AS x")
    msg_id = send(b, "execute_request", {"code": "SELECT x FROM private_view", "silent": False,
                                         "store_history": True, "user_expressions": {},
                                         "allow_stdin": False, "stop_on_error": True})
    reply = get_reply(b, msg_id, timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "TABLE_OR_VIEW_NOT_FOUND"


def test_statements_beyond_max_spark_ops_wait_shown_as_queued(tmp_path: Path, spark_url: str):
    kernel = SparkKernel(tmp_path / "limited", remote=spark_url, extra_args=["--max-spark-ops", "1"])
    try:
        a = kernel.kc
        b = kernel.new_client()
        run_ok(a, "SELECT 1")
        run_ok(b, "SELECT 1")
        slow = a.execute("SELECT reflect('java.lang.Thread', 'sleep', 3000L) AS slept")
        time.sleep(0.7)
        reply, msgs = e2e_execute(b, "SELECT 'after the queue' AS said")
        assert reply["content"]["status"] == "ok", reply["content"]
        queued = [m for m in msgs if m["msg_type"] == "display_data"
                  and "Queued" in m["content"]["data"].get("text/plain", "")]
        assert queued, [m["msg_type"] for m in msgs]
        display_id = queued[0]["content"]["transient"]["display_id"]
        updates = [m for m in msgs if m["msg_type"] == "update_display_data"
                   and m["content"]["transient"]["display_id"] == display_id]
        assert updates and updates[-1]["content"]["data"]["text/plain"].startswith("Started after")
        assert "after the queue" in "\n".join(texts(msgs))
        assert get_reply(a, slow, timeout=SQL_TIMEOUT)["content"]["status"] == "ok"
    finally:
        kernel.close()


def test_a_result_beyond_max_result_bytes_is_cut_with_a_notice(tmp_path: Path, spark_url: str):
    kernel = SparkKernel(tmp_path / "small", remote=spark_url,
                         extra_args=["--max-result-bytes", "65536"])
    try:
        reply, msgs = e2e_execute(kernel.kc, "SELECT id, repeat('x', 2000) AS wide FROM range(5000)")
        assert reply["content"]["status"] == "ok", reply["content"]
        notice = "".join(m["content"]["text"] for m in msgs
                         if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
        assert "--max-result-bytes" in notice
        assert texts(msgs), "the rows that arrived are still shown"
        # The connection goes on working.
        assert "42" in "\n".join(texts(run_ok(kernel.kc, "SELECT 42 AS answer")))
    finally:
        kernel.close()
