"""Cells of several SQL statements: DDL and temporary views, which statements show output and as
which message, splitting on ';' outside quotes and comments, and Spark errors with their error
class, SQLSTATE and the failing fragment marked."""

from __future__ import annotations

import uuid

import pytest

from e2e_support import execute
from spark_support import (
    SQL_TIMEOUT,
    assert_fragment_marked,
    check_bundle,
    error_of,
    outputs,
    show_string,
    texts,
    traceback_text,
)

pytestmark = pytest.mark.spark


def run(kc, code: str):
    return execute(kc, code, timeout=SQL_TIMEOUT)


def ok(kc, code: str):
    reply, msgs = run(kc, code)
    content = reply["content"]
    assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"
    return reply, msgs


PEOPLE = "SELECT * FROM VALUES (1, 'ann', DATE'1990-05-01'), (2, 'bob', NULL) AS t(id, name, born)"


def test_temp_view_then_select(skc, spark):
    _, msgs = ok(skc, f"CREATE OR REPLACE TEMP VIEW people AS {PEOPLE}")
    assert outputs(msgs) == [], "CREATE VIEW returns no columns, so it shows nothing"
    _, msgs = ok(skc, "SELECT * FROM people ORDER BY id")
    assert texts(msgs) == [show_string(spark, f"SELECT * FROM ({PEOPLE}) ORDER BY id")]
    check_bundle(outputs(msgs)[0], ["id", "name", "born"], 2)


def test_table_ddl_and_dml(skc, spark):
    table = f"kl_e2e_{uuid.uuid4().hex[:10]}"
    try:
        reply, msgs = ok(
            skc,
            f"CREATE TABLE {table} (id INT, s STRING) USING parquet;\n"
            f"INSERT INTO {table} VALUES (2, 'two'), (1, 'one');\n"
            f"SELECT * FROM {table} ORDER BY id;\n",
        )
        results = outputs(msgs)
        assert [m["msg_type"] for m in results] == ["execute_result"]
        assert texts(msgs) == [show_string(spark, f"SELECT * FROM {table} ORDER BY id")]
        assert results[0]["content"]["execution_count"] == reply["content"]["execution_count"]
    finally:
        _, msgs = ok(skc, f"DROP TABLE IF EXISTS {table}")
        assert outputs(msgs) == []
    err = error_of(*run(skc, f"SELECT * FROM {table}"))
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"


def test_statements_with_columns_each_show_output_in_order(skc, spark):
    statements = ["SELECT 1 AS a", "SELECT 'x' AS b, 2 AS c", "SHOW DATABASES", "SELECT 3 AS d"]
    reply, msgs = ok(skc, ";\n".join(statements))
    results = outputs(msgs)
    assert [m["msg_type"] for m in results] == ["display_data"] * 3 + ["execute_result"]
    assert texts(msgs) == [show_string(spark, s) for s in statements]
    assert results[-1]["content"]["execution_count"] == reply["content"]["execution_count"]
    # Outputs come after execute_input and before the cell's idle status.
    kinds = [m["msg_type"] for m in msgs]
    assert kinds.index("execute_input") < kinds.index("display_data")
    assert kinds[-1] == "status"


def test_statements_without_columns_show_nothing(skc, spark):
    view = f"v_{uuid.uuid4().hex[:8]}"
    _, msgs = ok(
        skc,
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT 1 AS x;\n"
        f"SELECT x + 1 AS y FROM {view};\n"
        f"DROP VIEW {view}",
    )
    # The contract leaves open whether a result followed only by output-less statements is an
    # execute_result or display_data; it must be shown exactly once.
    assert texts(msgs) == [show_string(spark, "SELECT 2 AS y")]
    _, msgs = ok(skc, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT 1 AS x; DROP VIEW {view}")
    assert outputs(msgs) == []


def test_set_shows_key_and_value(skc, spark):
    _, msgs = ok(skc, "SET spark.sql.shuffle.partitions=3")
    assert texts(msgs) == [show_string(spark, "SET spark.sql.shuffle.partitions=3")]


def test_semicolons_inside_quotes_and_comments_do_not_split(skc, spark):
    code = (
        "-- a leading comment; not a statement\n"
        "SELECT 'a;b' AS `semi;colon`, \"c;d\" AS dq /* ; in a block comment */ ;\n"
        "SELECT 'it\\'s; fine' AS esc, `x;y`.v FROM (SELECT 1 AS v) AS `x;y`; -- trailing; comment\n"
        "/* a block comment between statements; with a semicolon */\n"
        "SELECT '--not a comment' AS s, '/*nor this*/' AS t"
    )
    _, msgs = ok(skc, code)
    assert texts(msgs) == [
        show_string(spark, "SELECT 'a;b' AS `semi;colon`, \"c;d\" AS dq"),
        show_string(spark, "SELECT 'it\\'s; fine' AS esc, `x;y`.v FROM (SELECT 1 AS v) AS `x;y`"),
        show_string(spark, "SELECT '--not a comment' AS s, '/*nor this*/' AS t"),
    ]
    assert [m["msg_type"] for m in outputs(msgs)] == ["display_data", "display_data", "execute_result"]


def test_empty_statements_are_skipped(skc, spark):
    _, msgs = ok(skc, ";\n  ; SELECT 1 AS one;;\n;  \n")
    assert texts(msgs) == [show_string(spark, "SELECT 1 AS one")]
    assert [m["msg_type"] for m in outputs(msgs)] == ["execute_result"]


# --- errors --------------------------------------------------------------------------------------


def spark_error(spark, query: str):
    """The reference error: what pyspark reports for query on the same server."""
    with pytest.raises(Exception) as info:
        spark.sql(query).collect()
    return info.value


def test_table_not_found_marks_the_name(skc, spark):
    query = "SELECT a FROM   no_such_table_xyz"
    expected = spark_error(spark, query)
    (ctx,) = expected.getQueryContext()
    err = error_of(*run(skc, query))
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND" == expected.getCondition()
    assert "`no_such_table_xyz` cannot be found" in err["evalue"]
    assert "JVM stacktrace" not in err["evalue"]
    text = traceback_text(err)
    assert "SQLSTATE" in text and expected.getSqlState() in text
    assert_fragment_marked(err, query, ctx.startIndex(), ctx.stopIndex())
    assert ctx.fragment() == "no_such_table_xyz"


def test_parse_error(skc, spark):
    query = "SELEC 1"
    expected = spark_error(spark, query)
    err = error_of(*run(skc, query))
    assert err["ename"] == "PARSE_SYNTAX_ERROR" == expected.getCondition()
    assert "Syntax error at or near 'SELEC'" in err["evalue"]
    text = traceback_text(err)
    assert "SQLSTATE" in text and "42601" in text


def test_runtime_error_divide_by_zero(skc, spark):
    query = "SELECT id, 10 / (id - 2) AS q FROM range(5)"
    expected = spark_error(spark, query)
    (ctx,) = expected.getQueryContext()
    err = error_of(*run(skc, query))
    assert err["ename"] == "DIVIDE_BY_ZERO" == expected.getCondition()
    assert "Division by zero" in err["evalue"]
    assert "SQLSTATE" in traceback_text(err) and "22012" in traceback_text(err)
    assert_fragment_marked(err, query, ctx.startIndex(), ctx.stopIndex())


def test_error_in_second_statement_stops_the_rest(skc, spark):
    view = f"never_{uuid.uuid4().hex[:8]}"
    second = "SELECT *  FROM missing_view_abc"
    code = f"SELECT 1 AS first;\n{second};\nCREATE TEMP VIEW {view} AS SELECT 1 AS x;\nSELECT 4 AS fourth"
    reply, msgs = run(skc, code)
    err = error_of(reply, msgs)
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    assert texts(msgs) == [show_string(spark, "SELECT 1 AS first")], "the first statement's result is shown"
    assert [m["msg_type"] for m in outputs(msgs)] == ["display_data"]
    kinds = [m["msg_type"] for m in msgs]
    assert kinds.index("display_data") < kinds.index("error")
    # The position is counted within the failing statement, as Spark reports it.
    (ctx,) = spark_error(spark, second).getQueryContext()
    assert_fragment_marked(err, second, ctx.startIndex(), ctx.stopIndex())
    # Nothing after the failing statement ran.
    err = error_of(*run(skc, f"SELECT * FROM {view}"))
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    # The connection is fine afterwards.
    _, msgs = ok(skc, "SELECT 5 AS five")
    assert texts(msgs) == [show_string(spark, "SELECT 5 AS five")]
