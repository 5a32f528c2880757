"""Statements, errors, parameters and %config against Spark 3.5 and 4.1 servers: what differs per
version is what the server can say about an error (3.5 sends no error class or SQLSTATE as metadata
and has no FetchErrorDetails, so the class comes from the message and no fragment is marked), not
what the user can do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from e2e_support import execute
from spark_support import (
    SQL_TIMEOUT,
    assert_fragment_marked,
    check_bundle,
    error_of,
    outputs,
    run_ok,
    texts,
    traceback_text,
)

pytestmark = [pytest.mark.spark, pytest.mark.spark_compat]


@pytest.fixture(scope="module")
def kc(compat) -> Iterator:
    handle = compat.kernel("statements")
    try:
        yield handle.kc
    finally:
        handle.close()


def run(kc, code: str):
    return execute(kc, code, timeout=SQL_TIMEOUT)


def assert_class(compat, err: dict, expected: dict, error_class: str) -> None:
    """The kernel names the error class on every version; pyspark's own 3.5 client cannot (its
    server sends the class only inside the message), 4.0+ agrees with the kernel."""
    assert err["ename"] == error_class, f"{err['ename']}: {err['evalue']}"
    if compat.at_least_4:
        assert expected["condition"] == error_class, expected
    else:
        assert expected["condition"] in (None, error_class), expected


def test_multi_statement_cell_with_ddl_and_query(compat, kc):
    table = f"kl_compat_{uuid.uuid4().hex[:10]}"
    view = f"v_{uuid.uuid4().hex[:8]}"
    try:
        reply, msgs = run(
            kc,
            f"CREATE TABLE {table} (id INT, s STRING) USING parquet;\n"
            f"INSERT INTO {table} VALUES (3, 'three'), (1, 'one'), (2, 'two');\n"
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {table} WHERE id > 1;\n"
            f"SELECT count(*) AS n FROM {table};\n"
            f"SELECT * FROM {view} ORDER BY id",
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        results = outputs(msgs)
        # DDL and INSERT return no columns and show nothing; each query shows its table.
        assert [m["msg_type"] for m in results] == ["display_data", "execute_result"]
        assert texts(msgs) == [
            compat.ref.show(f"SELECT count(*) AS n FROM {table}"),
            compat.ref.show(f"SELECT * FROM {table} WHERE id > 1 ORDER BY id"),
        ]
        check_bundle(results[1], ["id", "s"], 2)
        # SHOW and DESCRIBE are commands whose rows come back with the command itself.
        for command in (f"SHOW TABLES LIKE '{table}'", f"DESCRIBE TABLE {table}"):
            assert texts(run_ok(kc, command)) == [compat.ref.show(command)]
    finally:
        run_ok(kc, f"DROP TABLE IF EXISTS {table}")
    err = error_of(*run(kc, f"SELECT * FROM {view}"))
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND", "the view read a dropped table"


def test_table_not_found_names_class_and_table(compat, kc):
    query = "SELECT a FROM   no_such_table_xyz"
    expected = compat.ref.call(op="error", query=query)
    err = error_of(*run(kc, query))
    assert_class(compat, err, expected, "TABLE_OR_VIEW_NOT_FOUND")
    assert "`no_such_table_xyz` cannot be found" in err["evalue"]
    text = traceback_text(err)
    assert text.splitlines()[0].startswith("TABLE_OR_VIEW_NOT_FOUND"), text
    if compat.at_least_4:
        # 4.0+: SQLSTATE as metadata and the query context through FetchErrorDetails.
        assert f"(SQLSTATE {expected['sql_state']})" in text
        assert_fragment_marked(err, query, 16, 32)
    else:
        # 3.5 sends neither: the report is the class and the server's own message, which says
        # where ("line 1 pos 16").
        assert "SQLSTATE" not in text.splitlines()[0]
        assert "line 1 pos 16" in err["evalue"]
    assert "JVM stacktrace" not in err["evalue"]
    # The kernel carries on.
    assert texts(run_ok(kc, "SELECT 1 AS one")) == [compat.ref.show("SELECT 1 AS one")]


def test_parse_error(compat, kc):
    query = "SELEC 1"
    expected = compat.ref.call(op="error", query=query)
    err = error_of(*run(kc, query))
    assert_class(compat, err, expected, "PARSE_SYNTAX_ERROR")
    assert "Syntax error at or near 'SELEC'" in err["evalue"]
    # The server's message points at the spot itself on every version.
    assert "== SQL ==" in err["evalue"] and "SELEC 1" in err["evalue"]


def test_runtime_error_in_ansi_mode(compat, kc):
    # ANSI mode is on by default only from 4.0; with it, 3.5 fails the same way.
    run_ok(kc, "SET spark.sql.ansi.enabled=true")
    compat.ref.call(op="sql", query="SET spark.sql.ansi.enabled=true")
    try:
        query = "SELECT id, 10 / (id - 2) AS q FROM range(5)"
        expected = compat.ref.call(op="error", query=query)
        err = error_of(*run(kc, query))
        assert_class(compat, err, expected, "DIVIDE_BY_ZERO")
        assert "Division by zero" in err["evalue"]
    finally:
        run_ok(kc, "RESET spark.sql.ansi.enabled")
        compat.ref.call(op="sql", query="RESET spark.sql.ansi.enabled")


def test_error_in_second_statement_stops_the_rest(compat, kc):
    view = f"never_{uuid.uuid4().hex[:8]}"
    reply, msgs = run(
        kc, f"SELECT 1 AS first;\nSELECT * FROM missing_view_abc;\nCREATE TEMP VIEW {view} AS SELECT 1 AS x"
    )
    assert error_of(reply, msgs)["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    assert texts(msgs) == [compat.ref.show("SELECT 1 AS first")]
    assert error_of(*run(kc, f"SELECT * FROM {view}"))["ename"] == "TABLE_OR_VIEW_NOT_FOUND"


def test_named_parameter_binds_on_every_version(compat, kc):
    # The kernel sends named_arguments (4.0+) and the same literals as args, which 3.5 reads.
    run_ok(kc, "%set who='O''Brien'\n%set n=41")
    try:
        msgs = run_ok(kc, "SELECT :who AS who, typeof(:who) AS t, :n + 1 AS m, typeof(:n) AS nt")
        same = "SELECT 'O\\'Brien' AS who, 'string' AS t, 42L AS m, 'bigint' AS nt"
        assert texts(msgs) == [compat.ref.show(same)]
    finally:
        run_ok(kc, "%unset who\n%unset n")


def test_config_set_get_unset_all(compat, kc):
    key = "spark.sql.shuffle.partitions"
    msgs = run_ok(kc, f"%config {key}=7")
    assert "set spark.sql.shuffle.partitions" in "".join(
        m["content"]["text"] for m in msgs if m["msg_type"] == "stream"
    )
    assert texts(run_ok(kc, f"%config {key}")) == [f"{key} = 7"]
    # The setting is the session's: SQL sees it too.
    assert "7" in texts(run_ok(kc, f"SET {key}"))[0]
    # Every version's GetAll answers with the keys less the prefix asked for.
    listed = texts(run_ok(kc, "%config --all spark.sql.shuffle."))[0]
    assert "partitions = 7" in listed.splitlines(), listed
    run_ok(kc, f"%config --unset {key}")
    # Unset drops the session's value (Spark then answers its built-in default, not the server's
    # --conf); SQL in the same session agrees.
    (after,) = texts(run_ok(kc, f"%config {key}"))
    assert after.startswith(f"{key} = ") and after != f"{key} = 7", after
    assert after.split(" = ")[1] in texts(run_ok(kc, f"SET {key}"))[0]


def test_config_unknown_key_is_a_clear_error(compat, kc):
    key = "spark.kindling.compat.no_such_key"
    err = error_of(*run(kc, f"%config {key}"))
    assert key in err["evalue"], err
    assert texts(run_ok(kc, "SELECT 2 AS two")) == [compat.ref.show("SELECT 2 AS two")]
