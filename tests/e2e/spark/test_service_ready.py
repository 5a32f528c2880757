"""Service mode against a real Spark Connect server: /readyz turns 200 once the endpoint answers
AnalyzePlan, SQL cells run, and the Spark RPC metrics count what happened; with the embedded local
server, /readyz says so while it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_support import execute
from service_support import Serve, sample, wait_for
from spark_support import SQL_TIMEOUT


@pytest.fixture
def serve_spark(tmp_path: Path, spark_url: str):
    s = Serve(tmp_path / "serve", args=["--spark-remote", spark_url])
    try:
        yield s
    finally:
        try:
            s.close()
        finally:
            s.kill()


def test_ready_once_spark_answers_and_rpcs_are_counted(serve_spark: Serve, spark_url: str):
    s = serve_spark
    status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(s.get("/readyz")),
                            timeout=SQL_TIMEOUT, what="/readyz to turn 200")
    assert body == "ready\n"
    kc = s.client()
    reply, _ = execute(kc, "SELECT 1 AS one", timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    m = s.metrics()
    assert sample(m, "kindling_spark_rpcs_total", method="AnalyzePlan", code="OK") >= 1
    assert sample(m, "kindling_spark_rpcs_total", method="ExecutePlan", code="OK") >= 1
    assert sample(m, "kindling_spark_bytes_received_total") > 0
    assert sample(m, "kindling_executions_total", status="ok") >= 1
    assert "ready: Spark Connect at" in s.stderr()


def test_not_ready_while_the_embedded_server_starts(tmp_path: Path):
    # The embedded server comes from this virtualenv's pyspark.
    venv = Path(__file__).resolve().parents[3] / ".venv"
    s = Serve(tmp_path / "serve", args=["--spark-remote", "local[1]"],
              env={"VIRTUAL_ENV": str(venv)})
    try:
        status, body = s.get("/readyz")
        assert status == 503
        assert "embedded local Spark Connect server" in body or body == "not ready: starting\n", body
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(s.get("/readyz")),
                                timeout=240, interval=0.5, what="the embedded server to be ready")
        assert body == "ready\n"
        s.close()
    finally:
        s.kill()
