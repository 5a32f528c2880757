"""Magics about a connection's Spark session: SQL parameters (%set, %unset, %%sql --param, Toree's
${name}) bound as named arguments and checked against pyspark's spark.sql(query, args=...);
%%dataframe; the live progress display of a multi-stage query (%progress); %connect to a
token-protected server, the token asked for over stdin and found nowhere in history or logs."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from e2e_support import (
    execute,
    get_reply,
    iopub_for,
    of_type,
    plain_result,
    request,
    stream_text,
    wait_msg,
)
from spark_support import (
    RESULT_MIME,
    SERVER_SCRIPT,
    SQL_TIMEOUT,
    TRUNCATE,
    SparkKernel,
    error_of,
    free_port,
    outputs,
    run_ok,
    traceback_text,
)

pytestmark = pytest.mark.spark


def run(kc, code: str, **kwargs: Any):
    return execute(kc, code, timeout=SQL_TIMEOUT, **kwargs)


def shown(spark, query: str, args: dict[str, Any] | None = None, limit: int = 1000) -> str:
    """What pyspark's own client shows for query with its parameters bound by Spark."""
    return spark.sql(query, args=args)._show_string(limit, TRUNCATE, False)


def results(msgs):
    """The cell's outputs without progress displays (a loaded machine may make any query slow
    enough for one)."""
    return [m for m in outputs(msgs) if not m["content"].get("transient", {}).get("display_id")]


def result_text(msgs) -> str:
    found = [m["content"]["data"]["text/plain"] for m in results(msgs)]
    assert len(found) == 1, f"expected one result, got {found}"
    return found[0]


# --- parameters --------------------------------------------------------------------------------

# (text after %set v=, the Python value pyspark binds for the same parameter). Integers bind as
# bigint: numpy's int64 makes pyspark do the same (a plain Python int would be an int).
VALUES = [
    ("42", np.int64(42)),
    ("-7", np.int64(-7)),
    ("9007199254740993", np.int64(9007199254740993)),
    ("2.5", 2.5),
    ("1e3", 1000.0),
    ("true", True),
    ("FALSE", False),
    ("'O''Brien'", "O'Brien"),
    ('"say ""hi"""', 'say "hi"'),
    ("'; DROP TABLE x; --", "'; DROP TABLE x; --"),
    ("Robert'); DROP TABLE students;--", "Robert'); DROP TABLE students;--"),
    ("héllo wörld ✓ 日本", "héllo wörld ✓ 日本"),
    ("'42'", "42"),
    ("back\\slash", "back\\slash"),
]


@pytest.mark.parametrize("text,value", VALUES, ids=[t for t, _ in VALUES])
def test_set_binds_typed_literals_like_pyspark(skc, spark, text, value):
    run_ok(skc, f"%set v={text}")
    query = "SELECT :v AS v, typeof(:v) AS t"
    msgs = run_ok(skc, query)
    assert result_text(msgs) == shown(spark, query, {"v": value})


def test_parameters_in_where_and_select_match_pyspark(skc, spark):
    # Spark SQL escapes a quote with a backslash ('' would join two literals).
    people = (
        "SELECT * FROM VALUES (1, 'ann'), (2, 'O\\'Brien'), (3, '; DROP TABLE x; --') AS t(id, name)"
    )
    run_ok(skc, "%set who='O''Brien'\n%set min_id=1")
    query = (
        f"SELECT id, name, :min_id + id AS shifted FROM ({people}) "
        "WHERE name = :who AND id > :min_id"
    )
    msgs = run_ok(skc, query)
    assert result_text(msgs) == shown(spark, query, {"who": "O'Brien", "min_id": np.int64(1)})
    assert "O'Brien" in result_text(msgs)


def test_injection_attempt_is_only_a_value(skc, spark):
    table = f"kl_param_{uuid.uuid4().hex[:8]}"
    run_ok(skc, f"CREATE TABLE {table} (id INT) USING parquet; INSERT INTO {table} VALUES (1)")
    try:
        run_ok(skc, f"%set evil='; DROP TABLE {table}; --")
        msgs = run_ok(skc, f"SELECT count(*) AS n, :evil AS v FROM {table}")
        query = f"SELECT count(*) AS n, :evil AS v FROM {table}"
        assert result_text(msgs) == shown(spark, query, {"evil": f"'; DROP TABLE {table}; --"})
        # The table survived: the value never became SQL.
        assert spark.catalog.tableExists(table)
        msgs = run_ok(skc, f"SELECT * FROM {table}")
        assert result_text(msgs) == shown(spark, f"SELECT * FROM {table}")
    finally:
        run_ok(skc, f"DROP TABLE IF EXISTS {table}")


def test_set_lists_with_types_and_unset_removes(skc):
    run_ok(skc, "%set n = 10\n%set who='Ann Lee'\n%set ok=true\n%set f=0.5")
    msgs = run_ok(skc, "%set")
    listing = result_text(msgs)
    lines = [re.split(r"\s{2,}", line.strip()) for line in listing.splitlines()]
    assert lines == [
        ["name", "type", "value"],
        ["f", "double", "0.5"],
        ["n", "long", "10"],
        ["ok", "boolean", "true"],
        ["who", "string", "Ann Lee"],
    ]
    run_ok(skc, "%unset n ok")
    lines = result_text(run_ok(skc, "%set")).splitlines()
    assert [line.split()[0] for line in lines] == ["name", "f", "who"]
    err = error_of(*run(skc, "%unset n"))
    assert err["ename"] == "UsageError" and "no parameter n is set" in err["evalue"]
    err = error_of(*run(skc, "%set 1bad=2"))
    assert err["ename"] == "UsageError"


def test_parameters_belong_to_their_connection(spark_kernel):
    kc = spark_kernel.kc
    other = spark_kernel.new_client()
    run_ok(kc, "%set mine=1")
    err = error_of(*run(other, "SELECT :mine"))
    assert err["ename"] == "UNBOUND_SQL_PARAMETER"
    assert "No parameters are set" in result_text(run_ok(other, "%set"))


def test_cell_param_wins_for_that_cell_only(skc, spark):
    run_ok(skc, "%set v=1")
    msgs = run_ok(skc, "%%sql --param v='cell value' --param w=2\nSELECT :v AS v, :w AS w")
    assert result_text(msgs) == shown(
        spark, "SELECT :v AS v, :w AS w", {"v": "cell value", "w": np.int64(2)}
    )
    msgs = run_ok(skc, "SELECT :v AS v, typeof(:v) AS t")
    assert result_text(msgs) == shown(spark, "SELECT :v AS v, typeof(:v) AS t", {"v": np.int64(1)})
    err = error_of(*run(skc, "SELECT :w"))
    assert err["ename"] == "UNBOUND_SQL_PARAMETER"


def test_sql_param_option_errors(skc):
    err = error_of(*run(skc, "%%sql --param nope\nSELECT 1"))
    assert err["ename"] == "UsageError" and "--param takes name=value" in err["evalue"]
    err = error_of(*run(skc, "%%sql --param\nSELECT 1"))
    assert err["ename"] == "UsageError"
    err = error_of(*run(skc, "%%sql --bogus\nSELECT 1"))
    assert err["ename"] == "UsageError" and "--bogus" in err["evalue"]


def test_toree_braces_become_bound_parameters(skc, spark):
    run_ok(skc, "%set who='; DROP TABLE x; --'\n%set n=3")
    code = "SELECT ${who} AS who, ${n} + 1 AS n1, '${who}' AS literal -- ${n}"
    msgs = run_ok(skc, code)
    expected = shown(
        spark,
        "SELECT :who AS who, :n + 1 AS n1, '${who}' AS literal",
        {"who": "; DROP TABLE x; --", "n": np.int64(3)},
    )
    assert result_text(msgs) == expected
    # ${name} for no parameter is left to Spark's own variable substitution.
    msgs = run_ok(skc, "SELECT '${unknown_name}' AS s")
    assert result_text(msgs) == shown(spark, "SELECT '${unknown_name}' AS s")


def test_unknown_marker_error_names_it(skc):
    reply, msgs = run(skc, "SELECT :not_set_anywhere AS x")
    err = error_of(reply, msgs)
    assert err["ename"] == "UNBOUND_SQL_PARAMETER"
    assert ":not_set_anywhere" in err["evalue"]
    assert "%set not_set_anywhere=VALUE" in err["evalue"]
    assert "%set not_set_anywhere=VALUE" in traceback_text(err)


def test_only_used_parameters_are_sent(skc, spark):
    """A parameter set but unused must not disturb statements where markers are not allowed."""
    run_ok(skc, "%set unused=1")
    view = f"kl_v_{uuid.uuid4().hex[:8]}"
    run_ok(skc, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT 1 AS a")
    msgs = run_ok(skc, f"SELECT * FROM {view}")
    assert result_text(msgs) == shown(spark, "SELECT 1 AS a")


# --- %%dataframe -------------------------------------------------------------------------------


def test_dataframe_defaults_to_ten_rows_of_html(skc, spark):
    query = "SELECT id, id * 2 AS twice FROM range(25)"
    msgs = run_ok(skc, f"%%dataframe\n{query}")
    [out] = results(msgs)
    data = out["content"]["data"]
    assert set(data) == {"text/plain", "text/html"}, sorted(data)
    assert data["text/plain"] == shown(spark, query, limit=10)
    assert data["text/html"].count("<tr") == 11, "a header row and ten data rows"


def test_dataframe_toree_spelling_and_outputs(skc):
    msgs = run_ok(skc, "%%DataFrame --output=csv --limit=3\nSELECT id, 'a,b' AS s FROM range(5)")
    [out] = results(msgs)
    assert out["content"]["data"]["text/csv"].splitlines() == ["id,s", '0,"a,b"', '1,"a,b"', '2,"a,b"']
    msgs = run_ok(skc, "%%dataframe --output json --limit 2\nSELECT id FROM range(5)")
    [out] = results(msgs)
    assert out["content"]["data"]["application/json"] == [{"id": 0}, {"id": 1}]
    msgs = run_ok(skc, "%%dataframe --output table\nSELECT 1 AS a")
    [out] = results(msgs)
    assert RESULT_MIME in out["content"]["data"]


def test_dataframe_takes_params_and_reports_bad_options(skc, spark):
    msgs = run_ok(skc, "%%dataframe --param x='hi there'\nSELECT :x AS x")
    [out] = results(msgs)
    expected = shown(spark, "SELECT :x AS x", {"x": "hi there"}, limit=10)
    assert out["content"]["data"]["text/plain"] == expected
    err = error_of(*run(skc, "%%dataframe --output xml\nSELECT 1"))
    assert err["ename"] == "UsageError" and "xml" in err["evalue"] and "%%dataframe" in err["evalue"]
    err = error_of(*run(skc, "%%dataframe --limit 0\nSELECT 1"))
    assert err["ename"] == "UsageError"


# --- live progress ------------------------------------------------------------------------------

# Two shuffles over 20 million rows: several stages, each long enough to be reported. A warm
# server ran it in a third of a second, under the display's first 500 ms, so each of the first
# stage's four tasks also sleeps a second, at its first row (the only one whose id is a multiple
# of five million; OR does not evaluate its right side when the left one holds, and reflect()
# returns the text 'null' of a void method, which keeps the row): the query takes over a second
# on any server, warm or cold, with the same result.
MULTI_STAGE = (
    "SELECT count(*) AS groups, sum(c) AS total FROM ("
    "SELECT a.k, count(*) AS c FROM "
    "(SELECT id % 1000 AS k FROM range(0, 20000000, 1, 4) "
    "WHERE id % 5000000 <> 0 OR reflect('java.lang.Thread', 'sleep', 1000L) IS NOT NULL) a "
    "JOIN (SELECT id AS k FROM range(0, 1000)) b ON a.k = b.k GROUP BY a.k)"
)
# Between jobs every stage Spark knows of may be done: then no stage is named.
PROGRESS_LINE = re.compile(
    r"^(\[Stage \d+: \d+/\d+ tasks\] )?\d+ of \d+ stages? done, \d+/\d+ tasks, "
    r"[\d.]+ (B|KiB|MiB|GiB) read, [\d.]+ s$"
)


def progress_msgs(msgs):
    return [
        m
        for m in msgs
        if m["msg_type"] in ("display_data", "update_display_data")
        and m["content"].get("transient", {}).get("display_id")
    ]


def configure_fast_reports(kc):
    # Spark reports every 2 s by default; more often makes the test short and the throttle visible.
    run_ok(kc, "%config spark.connect.progress.reportInterval=100ms")
    run_ok(kc, "%config spark.sql.shuffle.partitions=4")


def test_progress_updates_one_display(skc, spark):
    assert result_text(run_ok(skc, "%progress")) == "Progress: on"
    configure_fast_reports(skc)
    msgs = run_ok(skc, MULTI_STAGE)
    prog = progress_msgs(msgs)
    assert prog, f"no progress display in {[m['msg_type'] for m in msgs]}"
    assert prog[0]["msg_type"] == "display_data"
    assert all(m["msg_type"] == "update_display_data" for m in prog[1:])
    ids = {m["content"]["transient"]["display_id"] for m in prog}
    assert len(ids) == 1, ids
    # How many reports arrive depends on how fast the stages run (the server reports on its own
    # clock): the display and its final update are certain, updates between them are not.
    assert len(prog) >= 2, "the display and at least its final update"
    for m in prog[:-1]:
        line = m["content"]["data"]["text/plain"]
        assert PROGRESS_LINE.match(line), line
        assert "width:" in m["content"]["data"]["text/html"]
    assert any(m["content"]["data"]["text/plain"].startswith("[Stage ") for m in prog[:-1])
    assert prog[-1]["content"]["data"]["text/plain"].startswith("Done: ")
    # The result comes after the finished display.
    kinds = [m["msg_type"] for m in msgs]
    assert kinds.index("execute_result") > max(i for i, m in enumerate(msgs) if m in prog)
    assert plain_result(msgs) == shown(spark, MULTI_STAGE)
    # Throttled: reports come every 100 ms, updates at most every 250 ms (the last is the end).
    times = [m["header"]["date"] for m in prog[:-1]]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert all(g >= 0.2 for g in gaps), gaps


def test_progress_off_shows_none(skc):
    configure_fast_reports(skc)
    run_ok(skc, "%progress off")
    assert result_text(run_ok(skc, "%progress")) == "Progress: off"
    msgs = run_ok(skc, MULTI_STAGE)
    assert progress_msgs(msgs) == []
    assert of_type(msgs, "update_display_data") == []
    err = error_of(*run(skc, "%progress maybe"))
    assert err["ename"] == "UsageError"


def test_quick_query_shows_no_progress(skc):
    msgs = run_ok(skc, "SELECT 1 AS a")
    assert progress_msgs(msgs) == []


# --- %connect -----------------------------------------------------------------------------------

TOKEN = "kl-" + uuid.uuid4().hex + "-secret"


@pytest.fixture(scope="module")
def token_server() -> Iterator[str]:
    """A second Spark Connect server that wants TOKEN; its URL without the token."""
    state = Path(tempfile.mkdtemp(prefix="kl-e2e-token-spark-"))
    port = free_port()
    args = [str(SERVER_SCRIPT), "start", "--port", str(port), "--token", TOKEN,
            "--owner-pid", str(os.getpid()), "--state-dir", str(state)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"token server did not start:\n{done.stderr}", pytrace=False)
    try:
        yield f"sc://127.0.0.1:{port}"
    finally:
        stop = [str(SERVER_SCRIPT), "stop", "--state-dir", str(state)]
        subprocess.run(stop, capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def debug_kernel(tmp_path: Path, spark_url: str) -> Iterator[SparkKernel]:
    handle = SparkKernel(tmp_path / "kernel", remote=spark_url, extra_args=["--log-level", "debug"])
    try:
        yield handle
    finally:
        handle.close()


def connect_with_token(kc, url: str, token: str):
    msg_id = kc.execute(f"%connect {url} --token", allow_stdin=True)
    req = wait_msg(kc, "stdin", lambda m: m["msg_type"] == "input_request", timeout=SQL_TIMEOUT)
    assert req["parent_header"]["msg_id"] == msg_id
    assert req["content"]["password"] is True
    assert url in req["content"]["prompt"]
    kc.stdin_channel.send(kc.session.msg("input_reply", {"value": token}, parent=req))
    reply = get_reply(kc, msg_id, timeout=SQL_TIMEOUT)
    return reply, iopub_for(kc, msg_id, timeout=SQL_TIMEOUT)


def history_text(path: Path) -> str:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT source, source_raw FROM history").fetchall()
        rows += db.execute("SELECT output, '' FROM output_history").fetchall()
    return "\n".join(f"{a}\n{b}" for a, b in rows)


def test_connect_shows_the_endpoint(skc, spark_url):
    text = result_text(run_ok(skc, "%connect"))
    host_port = spark_url.split("://")[1].split("/")[0]
    assert text.startswith("Spark Connect endpoint: ") and host_port in text
    assert "the kernel's endpoint" in text


def test_connect_refuses_a_token_in_the_cell(skc, token_server):
    reply, msgs = run(skc, f"%connect {token_server}/;token={TOKEN}")
    err = error_of(reply, msgs)
    assert err["ename"] == "UsageError" and "--token" in err["evalue"]
    assert TOKEN not in str(reply) and TOKEN not in str(msgs).replace(f"token={TOKEN}", "")
    assert TOKEN not in err["evalue"] and TOKEN not in traceback_text(err)


def test_connect_token_needs_stdin(skc, token_server):
    err = error_of(*run(skc, f"%connect {token_server} --token", allow_stdin=False))
    assert err["ename"] == "StdinNotImplementedError"
    assert "allow_stdin" in err["evalue"]


def test_connect_bad_url_and_unreachable(skc):
    err = error_of(*run(skc, "%connect http://example.com"))
    assert err["ename"] == "UsageError"
    err = error_of(*run(skc, f"%connect sc://127.0.0.1:{free_port()}"))
    assert err["ename"] == "SparkConnectUNAVAILABLE"
    assert "stays on" in err["evalue"]
    run_ok(skc, "SELECT 1")


def test_connect_with_token_over_stdin(debug_kernel, token_server, spark, spark_url):
    kc = debug_kernel.kc
    view = f"kl_home_{uuid.uuid4().hex[:8]}"
    run_ok(kc, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT 'home' AS here")

    # A wrong token: a clear error, and the connection stays where it was.
    reply, msgs = connect_with_token(kc, token_server, "wrong-" + TOKEN[::-1])
    err = error_of(reply, msgs)
    assert err["ename"] == "SparkConnectUNAUTHENTICATED", err
    assert token_server in err["evalue"] and "stays on" in err["evalue"]
    assert plain_result(run_ok(kc, f"SELECT * FROM {view}")) == shown(spark, "SELECT 'home' AS here")

    # The right one: connected, and SQL runs on the other server in a new session.
    reply, msgs = connect_with_token(kc, token_server, TOKEN)
    assert reply["content"]["status"] == "ok", reply["content"]
    version = spark.version
    assert stream_text(msgs) == f"Connected to {token_server} ({'Spark ' + version})\n"
    msgs = run_ok(kc, "SELECT 40 + 2 AS answer")
    # A cold server may take long enough for a progress display: the result is what counts.
    assert plain_result(msgs) == shown(spark, "SELECT 40 + 2 AS answer")
    err = error_of(*run(kc, f"SELECT * FROM {view}"))
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    text = result_text(run_ok(kc, "%connect"))
    assert token_server.split("://")[1] in text and "%connect" in text and TOKEN not in text

    # Back to the kernel's endpoint.
    msgs = run_ok(kc, "%connect local")
    assert stream_text(msgs).startswith("Connected to ")
    assert "the kernel's endpoint" in result_text(run_ok(kc, "%connect"))
    run_ok(kc, "SELECT 1")

    # A token typed into a cell is refused and redacted in history.
    run(kc, f"%connect {token_server}/;token={TOKEN}")

    # The token is nowhere: not in history (after a history_request, every store has landed),
    # not in the kernel's log at debug level.
    request(kc, "history_request", {"output": True, "raw": True, "hist_access_type": "tail", "n": 100})
    history = history_text(debug_kernel.workdir / "history.sqlite")
    assert "%connect" in history and "token=<redacted>" in history
    assert TOKEN not in history
    log = debug_kernel.stderr_text()
    assert TOKEN not in log
    assert TOKEN[::-1] not in log and TOKEN[::-1] not in history
