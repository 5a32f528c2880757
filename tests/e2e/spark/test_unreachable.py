"""A kernel whose Spark Connect server is not there, or goes away in the middle of a query: a
clear error naming the endpoint, quickly, a kernel that lives on, and a next cell that works as
soon as a server answers again on the same port.

These tests run a second server of their own (scripts/spark_server.sh --port), so that they can
kill it without disturbing the shared one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from e2e_support import execute, get_reply, parent_is, request, wait_iopub
from spark_support import (
    LONG_QUERY,
    SQL_TIMEOUT,
    SparkKernel,
    SparkServer,
    error_of,
    free_port,
    run_ok,
    show_string,
    texts,
    traceback_text,
)

pytestmark = pytest.mark.spark

# The issue: the error arrives within about 10 s.
UNREACHABLE_BUDGET = 10.0
# A killed server: the kernel sees the connection drop; allow for one reconnection attempt.
KILLED_BUDGET = 15.0


@pytest.fixture(scope="module")
def own_server(tmp_path_factory) -> Iterator[SparkServer]:
    """A server on a fixed port, not started yet; stopped at the end whatever happened."""
    server = SparkServer(tmp_path_factory.mktemp("own-server"), port=free_port())
    try:
        yield server
    finally:
        server.stop()


def endpoint(server: SparkServer) -> str:
    return f"sc://127.0.0.1:{server.port}"


def assert_names_endpoint(err: dict, server: SparkServer) -> None:
    where = f"{endpoint(server)}"
    assert where in err["evalue"] or where in traceback_text(err), (
        f"the error does not name {where}: {err['ename']}: {err['evalue']}"
    )


# How long the server stays away (cells failing every ~2 s) before it starts: just the two first
# cells, or long enough for gRPC's reconnection backoff to grow.
@pytest.mark.parametrize("outage", [0.0, 25.0], ids=["brief-outage", "long-outage"])
def test_no_server_then_server_appears(own_server, tmp_path, spark, outage):
    own_server.stop()
    kernel = SparkKernel(tmp_path / "kernel", remote=endpoint(own_server))
    try:
        kc = kernel.kc
        # Every attempt is as quick and as clear as the first, and how long the server was away
        # must not matter once it is back.
        outage_end = time.monotonic() + outage
        attempts = 0
        while attempts < 2 or time.monotonic() < outage_end:
            started = time.monotonic()
            reply, msgs = execute(kc, "SELECT 1 AS one", timeout=SQL_TIMEOUT)
            elapsed = time.monotonic() - started
            err = error_of(reply, msgs)
            assert elapsed < UNREACHABLE_BUDGET, f"the error took {elapsed:.1f}s"
            assert_names_endpoint(err, own_server)
            assert err["ename"] != "KeyboardInterrupt"
            attempts += 1
            time.sleep(2)
        assert kernel.km.is_alive()
        assert request(kc, "kernel_info_request", {})["content"]["status"] == "ok"
        reply, _ = execute(kc, "%echo magics still work")
        assert reply["content"]["status"] == "ok"

        own_server.start()
        assert texts(run_ok(kc, "SELECT 1 AS one")) == [show_string(spark, "SELECT 1 AS one")]
    finally:
        kernel.close()


def test_server_killed_mid_query_then_back(own_server, tmp_path, spark):
    if own_server.pid() is None:
        own_server.start()
    kernel = SparkKernel(tmp_path / "kernel", remote=endpoint(own_server))
    try:
        kc = kernel.kc
        run_ok(kc, "CREATE OR REPLACE TEMP VIEW before_crash AS SELECT 1 AS x")
        msg_id = kc.execute(LONG_QUERY)
        wait_iopub(kc, lambda m: m["msg_type"] == "execute_input" and parent_is(msg_id)(m))
        time.sleep(3)
        own_server.kill()
        killed = time.monotonic()
        reply = get_reply(kc, msg_id, timeout=SQL_TIMEOUT)
        elapsed = time.monotonic() - killed
        content = reply["content"]
        assert content["status"] == "error"
        assert content["ename"] != "KeyboardInterrupt"
        assert elapsed < KILLED_BUDGET, f"the error took {elapsed:.1f}s after the server died"
        assert content["evalue"].strip(), "the error says nothing"
        # While the server is down, cells fail quickly and name the endpoint.
        started = time.monotonic()
        err = error_of(*execute(kc, "SELECT 2 AS two", timeout=SQL_TIMEOUT))
        assert time.monotonic() - started < UNREACHABLE_BUDGET
        assert_names_endpoint(err, own_server)
        assert kernel.km.is_alive()

        own_server.start()
        # A new server process knows nothing of the old session: the kernel must carry on with a
        # new one (the old temporary view is gone with the old server).
        assert texts(run_ok(kc, "SELECT 3 AS three")) == [show_string(spark, "SELECT 3 AS three")]
        err = error_of(*execute(kc, "SELECT * FROM before_crash", timeout=SQL_TIMEOUT))
        assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    finally:
        kernel.close()
