"""Magic plugins running SQL on the connection's Spark session: the example plugin's %rowcount
(loaded at start and at run time) against the real server, compared with what pyspark's own client
shows for the same query, and a plugin asking for CSV output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import e2e_support
from e2e_support import REPO, of_type, stream_text
from spark_support import SQL_TIMEOUT, SparkKernel, error_of, run_ok, show_string


def result(msgs) -> str:
    """text/plain of the cell's one execute_result (progress displays may come before it)."""
    results = of_type(msgs, "execute_result")
    assert len(results) == 1, [m["msg_type"] for m in msgs]
    return results[0]["content"]["data"]["text/plain"]

FIXTURE_SOURCE = REPO / "tests" / "data" / "plugins" / "fixture_plugin.c"


def example_plugin() -> Path:
    path = e2e_support.kindling_binary().parent / "examples" / "kindling_example_magic.so"
    if not path.is_file():
        pytest.fail(f"the example plugin is not built: {path}", pytrace=False)
    return path


@pytest.fixture
def plugin_kernel(tmp_path: Path, spark_url: str):
    handle = SparkKernel(tmp_path / "kernel", remote=spark_url, extra_args=["--magic-plugin", str(example_plugin())])
    try:
        yield handle
    finally:
        handle.close()


def test_rowcount_matches_pyspark(plugin_kernel, spark):
    kc = plugin_kernel.kc
    run_ok(kc, "CREATE OR REPLACE TEMPORARY VIEW kl_plugin_rows AS SELECT id FROM range(7)")
    msgs = run_ok(kc, "%rowcount kl_plugin_rows")
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW kl_plugin_rows AS SELECT id FROM range(7)")
    assert result(msgs) == show_string(spark, "SELECT count(*) AS row_count FROM kl_plugin_rows")
    assert result(msgs).splitlines()[3] == "|        7|"


def test_rowcount_uses_this_connections_session(plugin_kernel):
    """A temporary view of one connection is not visible to another's %rowcount."""
    a = plugin_kernel.kc
    b = plugin_kernel.new_client()
    run_ok(a, "CREATE OR REPLACE TEMPORARY VIEW kl_plugin_mine AS SELECT 1 AS x")
    assert "|        1|" in result(run_ok(a, "%rowcount kl_plugin_mine"))
    reply, msgs = e2e_support.execute(b, "%rowcount kl_plugin_mine", timeout=SQL_TIMEOUT)
    assert error_of(reply, msgs)["ename"] == "TABLE_OR_VIEW_NOT_FOUND"


def test_rowcount_quotes_its_argument(plugin_kernel):
    """The table name is quoted as an identifier: text that looks like SQL stays a name."""
    kc = plugin_kernel.kc
    run_ok(kc, "CREATE OR REPLACE TEMPORARY VIEW kl_plugin_safe AS SELECT 1 AS x")
    reply, msgs = e2e_support.execute(kc, "%rowcount kl_plugin_safe;DROP_VIEW", timeout=SQL_TIMEOUT)
    err = error_of(reply, msgs)
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    assert "kl_plugin_safe;DROP_VIEW" in err["evalue"]
    reply, msgs = e2e_support.execute(kc, "%rowcount a`b", timeout=SQL_TIMEOUT)
    assert error_of(reply, msgs)["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    # Still there.
    assert "|        1|" in result(run_ok(kc, "%rowcount kl_plugin_safe"))


def test_rowcount_after_load_magic(tmp_path: Path, spark_url: str):
    handle = SparkKernel(tmp_path / "kernel", remote=spark_url, extra_args=["--allow-shell"])
    try:
        kc = handle.kc
        path = example_plugin()
        loaded = stream_text(run_ok(kc, f"%load_magic {path}"))
        assert loaded == f"Loaded magic plugin {path}: %hello, %%upper, %rowcount\n"
        view = "CREATE OR REPLACE TEMPORARY VIEW kl_plugin_late AS SELECT id FROM range(12)"
        msgs = run_ok(kc, f"{view}\n%rowcount kl_plugin_late")
        assert "|       12|" in result(msgs)
    finally:
        handle.close()


def test_plugin_sql_as_csv(tmp_path: Path, spark_url: str):
    so = tmp_path / "fixture.so"
    cmd = ["cc", "-shared", "-fPIC", "-w", f"-I{REPO / 'include'}", "-o", str(so), str(FIXTURE_SOURCE)]
    subprocess.run(cmd, check=True, timeout=60)
    handle = SparkKernel(tmp_path / "kernel", remote=spark_url, extra_args=["--magic-plugin", str(so)])
    try:
        msgs = run_ok(handle.kc, "%fx_sql SELECT id, id * 2 AS twice FROM range(3)")
        results = of_type(msgs, "execute_result")
        assert len(results) == 1
        assert results[0]["content"]["data"]["text/csv"] == "id,twice\r\n0,0\r\n1,2\r\n2,4\r\n"  # RFC 4180 line ends
    finally:
        handle.close()


def test_time_runs_sql(plugin_kernel):
    """%%time runs its body as a cell: SQL results as usual, then the wall time."""
    msgs = run_ok(plugin_kernel.kc, "%%time\nSELECT 41 + 1 AS answer")
    assert "|    42|" in result(msgs)
    assert stream_text(msgs).startswith("Wall time: ")
