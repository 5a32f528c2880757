"""The catalog magics (%explain, %schema, %tables, %databases, %functions, %describe), catalog-aware
completion and inspection, against a real Spark Connect server. Every test works in a database of
its own, so exact match lists hold whatever else the server holds."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from e2e_support import execute, request
from spark_support import SQL_TIMEOUT, error_of, outputs, run_ok, show_string, texts, traceback_text

pytestmark = pytest.mark.spark


@pytest.fixture
def db(skc, spark):
    """A database of the test's own, current in the kernel's session, holding tables people and
    orders and a view people_v; dropped afterwards."""
    name = f"kl_cat_{uuid.uuid4().hex[:10]}"
    run_ok(
        skc,
        f"CREATE DATABASE {name};\n"
        f"USE {name};\n"
        "CREATE TABLE people (id INT, name STRING, age INT) USING parquet;\n"
        "CREATE TABLE orders (id INT, person_id INT, total DECIMAL(10,2)) USING parquet "
        "PARTITIONED BY (person_id) TBLPROPERTIES ('owner_team' = 'kindling');\n"
        "CREATE VIEW people_v AS SELECT id, name FROM people;\n",
    )
    try:
        yield name
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def complete(kc, code: str, cursor: int | None = None) -> dict[str, Any]:
    content = request(
        kc, "complete_request", {"code": code, "cursor_pos": len(code) if cursor is None else cursor},
        timeout=SQL_TIMEOUT,
    )["content"]
    assert content["status"] == "ok"
    return content


def matches(kc, code: str, settle: bool = True) -> list[str]:
    """The matches at the end of code. With settle, asks again until two answers agree: the
    first completion of a name may come back before the catalog answered (the deadline) and
    fills the cache for the next."""
    got = complete(kc, code)["matches"]
    if settle:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            again = complete(kc, code)["matches"]
            if again == got:
                break
            got = again
    return got


def types_of(content: dict[str, Any]) -> dict[str, str]:
    return {t["text"]: t["type"] for t in content["metadata"]["_jupyter_types_experimental"]}


def inspect(kc, code: str, cursor: int | None = None, detail: int = 0) -> dict[str, Any]:
    content = request(
        kc,
        "inspect_request",
        {"code": code, "cursor_pos": len(code) if cursor is None else cursor, "detail_level": detail},
        timeout=SQL_TIMEOUT,
    )["content"]
    assert content["status"] == "ok"
    return content


def result_text(msgs) -> str:
    res = [m for m in msgs if m["msg_type"] == "execute_result"]
    assert len(res) == 1, [m["msg_type"] for m in msgs]
    return res[0]["content"]["data"]["text/plain"]


def failed(kc, code: str) -> dict[str, Any]:
    reply, msgs = execute(kc, code, timeout=SQL_TIMEOUT)
    return error_of(reply, msgs)


# --- completion --------------------------------------------------------------------------------


def test_keywords(skc, db):
    assert matches(skc, "SELE", settle=False) == ["SELECT"]
    assert matches(skc, "select * from people whe", settle=False) == ["when", "where"]
    assert matches(skc, "SELECT 1 UNI", settle=False) == ["UNION", "UNIQUE"]


def test_tables_after_from(skc, db):
    assert matches(skc, "SELECT * FROM peo") == ["people", "people_v"]
    content = complete(skc, "SELECT * FROM peo")
    assert types_of(content) == {"people": "table", "people_v": "view"}
    assert (content["cursor_start"], content["cursor_end"]) == (14, 17)
    assert matches(skc, "SELECT * FROM people p JOIN ord") == ["orders"]
    assert matches(skc, f"SELECT * FROM {db}.p") == ["people", "people_v"]
    assert matches(skc, "INSERT INTO ord") == ["orders"]


def test_temp_view_is_a_view(skc, db):
    run_ok(skc, "CREATE OR REPLACE TEMP VIEW peek AS SELECT 1 AS one")
    assert matches(skc, "SELECT * FROM pe") == ["peek", "people", "people_v"]
    assert types_of(complete(skc, "SELECT * FROM pe"))["peek"] == "view"
    # a temporary view belongs to no database
    assert matches(skc, f"SELECT * FROM {db}.pe") == ["people", "people_v"]


def test_columns_after_alias(skc, db):
    code = "SELECT t. FROM people t"
    cursor = len("SELECT t.")
    got = complete(skc, code, cursor)
    deadline = time.monotonic() + 30
    while got["matches"] != ["age", "id", "name"] and time.monotonic() < deadline:
        got = complete(skc, code, cursor)
    assert got["matches"] == ["age", "id", "name"]
    assert (got["cursor_start"], got["cursor_end"]) == (cursor, cursor)
    assert set(types_of(got).values()) == {"column"}
    code = "SELECT o.t FROM orders o"
    assert complete(skc, code, len("SELECT o.t"))["matches"] == ["total"]


def test_columns_in_select(skc, db):
    code = "SELECT ag FROM people"
    cursor = len("SELECT ag")
    deadline = time.monotonic() + 30
    got = complete(skc, code, cursor)
    # Columns and functions come from two catalog lookups that fill the cache independently.
    while not {"age", "aggregate"} <= set(got["matches"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        got = complete(skc, code, cursor)
    # the column first, then functions and keywords with that prefix
    assert got["matches"][0] == "age"
    assert types_of(got)["age"] == "column"
    assert types_of(got)["aggregate"] == "function"


def test_databases(skc, db):
    assert matches(skc, f"USE {db[:-2]}") == [db]
    assert matches(skc, f"SHOW TABLES IN {db[:-1]}") == [db]
    assert types_of(complete(skc, f"USE {db}"))[db] == "database"


def test_function_prefix(skc, db):
    assert matches(skc, "SELECT date_fo") == ["date_format"]
    assert matches(skc, "SELECT DATE_FO") == ["DATE_FORMAT"]
    content = complete(skc, "SELECT array_so")
    assert content["matches"] == ["array_sort"]
    assert types_of(content) == {"array_sort": "function"}
    assert matches(skc, "DESCRIBE FUNCTION to_jso") == ["to_json"]


def test_magic_names_and_options(skc, db):
    assert matches(skc, "%expl", settle=False) == ["%explain"]
    assert matches(skc, "%data", settle=False) == ["%databases"]
    assert matches(skc, "%%sq", settle=False) == ["%%sql"]
    assert matches(skc, "%%sql --", settle=False) == ["--limit", "--output", "--param"]
    assert matches(skc, "%explain ", settle=False) == ["codegen", "cost", "extended", "formatted", "simple"]
    assert matches(skc, "%describe peo") == ["people", "people_v"]
    assert matches(skc, "%%sql --limit 5\nSELECT * FROM ord") == ["orders"]


def test_cache_invalidated_by_ddl(skc, db):
    assert matches(skc, "SELECT * FROM fre") == []
    run_ok(skc, "CREATE TABLE fresh_one (x INT) USING parquet")
    assert matches(skc, "SELECT * FROM fre") == ["fresh_one"]


def test_completion_without_spark_answers_quickly(tmp_path):
    """An endpoint that does not answer: completion still answers, with keywords, in time."""
    from spark_support import SparkKernel, free_port

    handle = SparkKernel(tmp_path / "k", remote=f"sc://127.0.0.1:{free_port()}")
    try:
        started = time.monotonic()
        content = complete(handle.kc, "SELECT * FROM people WHE")
        assert content["matches"] == ["WHEN", "WHERE"]
        assert time.monotonic() - started < 5
    finally:
        handle.close()


# --- inspection --------------------------------------------------------------------------------


def test_inspect_table(skc, db):
    content = inspect(skc, "SELECT * FROM orders", cursor=len("SELECT * FROM ord"))
    assert content["found"] is True
    text = content["data"]["text/plain"]
    lines = text.split("\n")
    assert lines[0] == f"Table {db}.orders" or lines[0] == "Table orders"
    assert "id" in text and "decimal(10,2)" in text
    assert "Partitioned by: person_id" in text
    assert "Provider: parquet" in text
    assert "owner_team" not in text
    html = content["data"]["text/html"]
    assert "<table>" in html and "<td>decimal(10,2)</td>" in html
    more = inspect(skc, "SELECT * FROM orders", cursor=len("SELECT * FROM ord"), detail=1)
    assert "owner_team=kindling" in more["data"]["text/plain"]
    assert "Location: " in more["data"]["text/plain"]


def test_inspect_view_and_qualified(skc, db):
    content = inspect(skc, f"SELECT * FROM {db}.people_v")
    assert content["found"] is True
    assert content["data"]["text/plain"].startswith(f"View {db}.people_v\n")


def test_inspect_function(skc, db):
    content = inspect(skc, "SELECT upper(name) FROM people", cursor=len("SELECT upp"))
    assert content["found"] is True
    text = content["data"]["text/plain"]
    assert text.startswith("Function: upper\nUsage: upper(str) - Returns `str` with all characters")
    assert "Examples:\n" in text and "> SELECT upper('SparkSql');" in text
    assert "Class:" not in text
    more = inspect(skc, "SELECT upper(name) FROM people", cursor=len("SELECT upp"), detail=1)
    assert "Class: org.apache.spark.sql.catalyst.expressions.Upper" in more["data"]["text/plain"]
    assert "Since: " in more["data"]["text/plain"]


def test_inspect_nothing(skc, db):
    assert inspect(skc, "SELECT * FROM no_such_tbl")["found"] is False
    assert inspect(skc, "SELECT 'upper'", cursor=9)["found"] is False
    # a magic still shows its help
    content = inspect(skc, "%tables", cursor=3)
    assert content["found"] is True and "%tables [database] [pattern]" in content["data"]["text/plain"]


# --- magics ------------------------------------------------------------------------------------


def test_explain_modes(skc, spark, db):
    text = result_text(run_ok(skc, "%explain SELECT * FROM people WHERE id > 1"))
    assert text.startswith("== Physical Plan ==")
    text = result_text(run_ok(skc, "%explain extended SELECT * FROM people WHERE id > 1"))
    assert text.startswith("== Parsed Logical Plan ==") and "== Optimized Logical Plan ==" in text
    text = result_text(run_ok(skc, "%explain FORMATTED SELECT * FROM people"))
    assert text.startswith("== Physical Plan ==") and "(1) Scan parquet" in text
    text = result_text(run_ok(skc, "%explain codegen SELECT id + 1 FROM people"))
    assert "Generated code" in text or "WholeStageCodegen" in text
    text = result_text(run_ok(skc, "%explain cost SELECT * FROM people"))
    assert "== Optimized Logical Plan ==" in text and "Statistics(" in text


def test_explain_does_not_run_commands(skc, db):
    text = result_text(run_ok(skc, "%explain DROP TABLE people"))
    assert "DropTable" in text
    # still there
    assert result_text(run_ok(skc, "SELECT count(*) AS n FROM people")).count("0") >= 1


def test_explain_errors(skc, db):
    err = failed(skc, "%explain")
    assert err["ename"] == "UsageError"
    assert "%explain [simple|extended|codegen|cost|formatted] <query>" in err["evalue"]
    err = failed(skc, "%explain simple")
    assert err["ename"] == "UsageError"
    err = failed(skc, "%explain SELECT * FROM no_such_tbl")
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    assert "no_such_tbl" in err["evalue"]


def test_schema(skc, spark, db):
    query = (
        "SELECT 1 AS a, CAST(1.5 AS DECIMAL(10,2)) AS d, array(1, 2) AS arr, "
        "map('k', named_struct('x', 1, 'y', 'z')) AS m, INTERVAL '1' DAY AS i, "
        "'a' COLLATE UTF8_LCASE AS c"
    )
    df = spark.sql(query)
    want = spark.client._analyze(method="tree_string", plan=df._plan.to_proto(spark.client)).tree_string
    assert result_text(run_ok(skc, f"%schema {query}")) == want.rstrip("\n")
    table = result_text(run_ok(skc, "%schema orders"))
    assert table == (
        "root\n"
        " |-- id: integer (nullable = true)\n"
        " |-- total: decimal(10,2) (nullable = true)\n"
        " |-- person_id: integer (nullable = true)"
    )
    assert result_text(run_ok(skc, f"%schema {db}.people_v")).startswith("root\n |-- id: integer")


def test_schema_errors(skc, db):
    err = failed(skc, "%schema no_such_tbl")
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    assert failed(skc, "%schema")["ename"] == "UsageError"
    err = failed(skc, "%schema DROP TABLE people")
    assert err["ename"] == "UsageError" and "table name or a query" in err["evalue"]
    # the table survived
    run_ok(skc, "SELECT * FROM people")


def test_tables(skc, spark, db):
    msgs = run_ok(skc, "%tables")
    assert texts(msgs) == [show_string(spark, f"SHOW TABLES IN {db}")]
    msgs = run_ok(skc, f"%tables {db} peo*")
    assert texts(msgs) == [show_string(spark, f"SHOW TABLES IN {db} LIKE 'peo*'")]
    msgs = run_ok(skc, "%tables *_v")
    assert texts(msgs) == [show_string(spark, f"SHOW TABLES IN {db} LIKE '*_v'")]
    msgs = run_ok(skc, "%tables default nothing_matches_this*")
    assert "people" not in texts(msgs)[0]


def test_tables_errors(skc, db):
    err = failed(skc, "%tables no_such_db_kl")
    assert err["ename"] in ("SCHEMA_NOT_FOUND", "NO_SUCH_DATABASE")
    assert failed(skc, "%tables a b c")["ename"] == "UsageError"
    err = failed(skc, "%tables 'a; DROP TABLE people'")
    assert err["ename"] == "UsageError"
    run_ok(skc, "SELECT * FROM people")


def test_pattern_cannot_break_out(skc, spark, db):
    # a quote and a backslash stay inside the LIKE literal
    msgs = run_ok(skc, f"%tables {db} \"x' OR 1=1 --\\\"")
    assert "people" not in "".join(texts(msgs))
    run_ok(skc, "%functions \"'; DROP TABLE people; --\"")
    run_ok(skc, "SELECT * FROM people")


def test_databases_magic(skc, spark, db):
    msgs = run_ok(skc, f"%databases {db}")
    assert texts(msgs) == [show_string(spark, f"SHOW DATABASES LIKE '{db}'")]
    assert failed(skc, "%databases a b")["ename"] == "UsageError"


def test_functions_magic(skc, spark, db):
    msgs = run_ok(skc, "%functions array_so*")
    assert texts(msgs) == [show_string(spark, "SHOW FUNCTIONS LIKE 'array_so*'")]
    assert failed(skc, "%functions a b")["ename"] == "UsageError"


def test_describe(skc, spark, db):
    msgs = run_ok(skc, "%describe orders")
    want = show_string(spark, f"DESCRIBE TABLE EXTENDED {db}.orders")
    got = texts(msgs)[0]
    # Created Time and the like are the same; compare the column part, which is stable
    assert got.split("# Detailed Table Information")[0] == want.split("# Detailed Table Information")[0]
    err = failed(skc, "%describe no_such_tbl")
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    assert "no_such_tbl" in traceback_text(err)
    assert failed(skc, "%describe")["ename"] == "UsageError"
    assert failed(skc, "%describe people; DROP TABLE people")["ename"] == "UsageError"
