"""SQL through the client CLI on a real Spark Connect server: `kindling exec` prints each result as
the text table Spark's own show() makes, and SQL errors give exit status 1."""

from __future__ import annotations

import json
import subprocess

from e2e_support import kindling_binary
from spark_support import SQL_TIMEOUT, show_string


def kexec(conn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kindling_binary()), "exec", "--existing", conn, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SQL_TIMEOUT + 30,
    )


QUERY = "SELECT id, CAST(id * 1.5 AS DOUBLE) AS half, concat('row ', id) AS label FROM range(4)"


def test_exec_select_prints_the_text_table(spark_kernel, spark):
    conn = spark_kernel.km.connection_file
    result = kexec(conn, "-c", QUERY)
    assert result.returncode == 0, result.stderr
    table = show_string(spark, QUERY)
    # Printed as it is, with a newline added only when it has none.
    assert result.stdout == (table if table.endswith("\n") else table + "\n")
    assert "| id|" in result.stdout.replace(" ", "").replace("|id|", "| id|")


def test_exec_statements_and_cells(spark_kernel, spark, tmp_path):
    conn = spark_kernel.km.connection_file
    script = tmp_path / "job.sql"
    script.write_text(
        "CREATE OR REPLACE TEMPORARY VIEW cli_v AS SELECT * FROM range(3);\n"
        "-- %% read it back\n"
        "SELECT id * 10 AS x FROM cli_v ORDER BY id;\n"
    )
    result = kexec(conn, "--file", str(script), "--format", "json", "--timeout", str(SQL_TIMEOUT))
    assert result.returncode == 0, result.stderr
    msgs = [json.loads(line) for line in result.stdout.splitlines()]
    replies = [m for m in msgs if m["msg_type"] == "execute_reply"]
    assert [(m["cell"], m["content"]["status"]) for m in replies] == [(0, "ok"), (1, "ok")]
    # Progress displays (they have a display_id) come too in JSON; the results have none.
    tables = [
        m["content"]["data"]["text/plain"]
        for m in msgs
        if m["cell"] == 1
        and m["msg_type"] in ("execute_result", "display_data")
        and not m["content"].get("transient", {}).get("display_id")
    ]
    # The temporary view lives in this kernel connection's Spark session only, so compare with a
    # query that needs no view.
    assert tables == [show_string(spark, "SELECT id * 10 AS x FROM range(3) ORDER BY id")]


def test_exec_sql_error_exit_status(spark_kernel):
    conn = spark_kernel.km.connection_file
    result = kexec(conn, "-c", "SELECT * FROM no_such_table_for_cli")
    assert result.returncode == 1
    assert "TABLE_OR_VIEW_NOT_FOUND" in result.stderr
    assert result.stdout == ""
