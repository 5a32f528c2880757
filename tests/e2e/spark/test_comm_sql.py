"""The kindling.sql comm on a real Spark Connect server: one parameterised statement, many calls, in
JSON and in msgpack (decoded here with Python's msgpack), checked value by value against what
pyspark computes from the same data; Spark errors with their error class; values bound as data,
never as SQL text; row limits; the connection's own Spark session; and ownership of comms."""

from __future__ import annotations

import base64
import datetime as dt
import struct
import time
import uuid
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from comm_support import Comm, doc_of, error_of, rows_of
from e2e_support import read_iopub, request, send
from spark_support import SQL_TIMEOUT, run_ok

pytestmark = pytest.mark.spark

# The ids as inline VALUES (a local relation): Spark's optimizer then folds each lookup into a
# local result without starting a job, which keeps 2,000 calls affordable on a small machine.
IDS_SQL = ", ".join(f"({i})" for i in range(1200))
VIEW = f"""
CREATE OR REPLACE TEMP VIEW comm_data AS
SELECT id,
       CAST(id AS INT) AS i,
       id * 1.5D AS d,
       CAST(id / 7 AS FLOAT) AS f,
       CAST(id AS DECIMAL(12, 2)) / 4 AS dec,
       CASE WHEN id % 10 = 0 THEN NULL ELSE concat('row-', id, '-é') END AS s,
       id % 3 = 0 AS b,
       date_add(DATE'2024-01-01', CAST(id AS INT)) AS day,
       timestamp_micros(1704067200000000 + id * 1000001) AS ts,
       CAST(hex(id) AS BINARY) AS bin,
       array(id, id + 1) AS arr,
       map('k', CAST(id AS INT)) AS m,
       named_struct('a', id, 'b', CAST(id AS STRING)) AS st
FROM (SELECT CAST(v AS BIGINT) AS id FROM VALUES {IDS_SQL} AS t(v))
"""
QUERY = "SELECT * FROM comm_data WHERE id = :id"
COLUMNS = ["id", "i", "d", "f", "dec", "s", "b", "day", "ts", "bin", "arr", "m", "st"]


def comm_info(kc: BlockingKernelClient, target: str | None = None) -> dict[str, Any]:
    return request(kc, "comm_info_request", {"target_name": target} if target else {})["content"]["comms"]


# --- expected values, from pyspark ----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(spark) -> dict[int, Any]:
    spark.sql(VIEW)
    rows = spark.sql("SELECT * FROM comm_data").collect()
    return {r["id"]: r for r in rows}


def local(ts: dt.datetime) -> dt.datetime:
    """pyspark hands timestamps back as naive local time; the instant they mean."""
    return ts.astimezone()


def f32(x: float) -> bytes:
    return struct.pack("<f", x)


def check_json_row(got: list[Any], want: Any) -> None:
    g = dict(zip(COLUMNS, got))
    assert g["id"] == want["id"] and g["i"] == want["i"]
    assert g["d"] == want["d"]
    assert f32(g["f"]) == f32(want["f"])  # a float, given with its own shortest digits
    assert Decimal(g["dec"]) == want["dec"] and g["dec"] == format(want["dec"], "f")
    assert g["s"] == want["s"]
    assert g["b"] is want["b"]
    assert g["day"] == want["day"].isoformat()
    assert dt.datetime.fromisoformat(g["ts"]) == local(want["ts"])
    assert base64.b64decode(g["bin"]) == bytes(want["bin"])
    assert g["arr"] == want["arr"]
    assert g["m"] == want["m"]
    assert g["st"] == want["st"].asDict()


def check_msgpack_row(got: list[Any], want: Any) -> None:
    g = dict(zip(COLUMNS, got))
    assert g["id"] == want["id"] and g["i"] == want["i"]
    assert g["d"] == want["d"]
    assert g["f"] == want["f"]  # float 32 on the wire: exactly the same value
    assert Decimal(g["dec"]) == want["dec"]
    assert g["s"] == want["s"]
    assert g["b"] is want["b"]
    assert g["day"] == want["day"].isoformat()
    assert isinstance(g["ts"], dt.datetime) and g["ts"] == local(want["ts"])
    assert isinstance(g["bin"], bytes) and g["bin"] == bytes(want["bin"])
    assert g["arr"] == want["arr"]
    assert g["m"] == want["m"]
    assert g["st"] == want["st"].asDict()


# --- the calls ------------------------------------------------------------------------------------

IDS = [(i * 7919) % 1200 for i in range(1000)]  # 1,000 distinct ids, in a scrambled order


def test_json_calls_match_pyspark(skc, spark, reference):
    run_ok(skc, VIEW)
    comm = Comm(skc, {"sql": QUERY, "concurrency": 8})
    answers = comm.many([{"id": i} for i in IDS], window=16)
    for i, answer in zip(IDS, answers):
        rows = rows_of(answer)
        assert len(rows) == 1, (i, rows)
        check_json_row(rows[0], reference[i])
        assert answer["data"]["truncated"] is False
    cols = answers[0]["data"]["columns"]
    assert [c["name"] for c in cols] == COLUMNS
    assert [c["type"] for c in cols] == [
        "bigint", "int", "double", "float", "decimal(16,6)", "string", "boolean", "date",
        "timestamp", "binary", "array<bigint>", "map<string,int>", "struct<a:bigint,b:string>"]
    # The same binding through pyspark's own client gives the same rows.
    for i in IDS[:10]:
        want = spark.sql(QUERY, args={"id": i}).collect()
        got = comm.call({"id": i})
        assert len(want) == 1
        check_json_row(rows_of(got)[0], want[0])
    # No row for an id outside the data; the columns are still there.
    empty = comm.call({"id": 5000})
    assert rows_of(empty) == [] and [c["name"] for c in empty["data"]["columns"]] == COLUMNS


def test_msgpack_calls_match_pyspark(skc, reference):
    run_ok(skc, VIEW)
    comm = Comm(skc, {"sql": QUERY, "format": "application/msgpack", "concurrency": 8})
    answers = comm.many([{"id": i} for i in IDS], window=16, msgpack_params=True)
    for i, answer in zip(IDS, answers):
        doc = doc_of(answer)
        assert len(doc["rows"]) == 1, (i, doc)
        check_msgpack_row(doc["rows"][0], reference[i])
    assert [c["name"] for c in doc_of(answers[0])["columns"]] == COLUMNS
    # JSON parameters work with a msgpack answer too.
    doc = doc_of(comm.call({"id": 3}))
    check_msgpack_row(doc["rows"][0], reference[3])


def test_every_parameter_type_binds(skc):
    comm = Comm(skc, {"sql": "SELECT :i AS i, :f AS f, :s AS s, :b AS b, :n AS n, "
                             "typeof(:i) AS ti, typeof(:f) AS tf, typeof(:n) AS tn",
                      "format": "application/msgpack"})
    doc = doc_of(comm.call({"i": 2**62, "f": 0.5, "s": "é'", "b": True, "n": None}))
    assert doc["rows"] == [[2**62, 0.5, "é'", True, None, "bigint", "double", "void"]]
    # msgpack-only kinds: binary, float 32, a timestamp, an unsigned beyond bigint
    when = dt.datetime(2024, 3, 10, 9, 59, 59, 500000, tzinfo=dt.timezone.utc)
    comm2 = Comm(skc, {"sql": "SELECT :bin AS bin, :ts AS ts, :big AS big, :f32 AS f32, "
                              "typeof(:ts) AS tts, typeof(:big) AS tbig, typeof(:f32) AS tf32",
                       "format": "application/msgpack"})
    packed = msgpack.packb({"bin": b"\x00\xff", "ts": msgpack.Timestamp.from_datetime(when),
                            "big": 2**64 - 1, "f32": 1.5}, use_single_float=True)
    doc = doc_of(comm2.call(None, packed=packed))
    assert doc["rows"] == [[b"\x00\xff", when, "18446744073709551615", 1.5,
                            "timestamp", "decimal(20,0)", "float"]]
    # positional markers take a list
    pos = Comm(skc, {"sql": "SELECT ? + ? AS total, ? AS label"})
    assert rows_of(pos.call([40, 2, "x"])) == [[42, "x"]]


def test_values_are_bound_never_spliced(skc):
    comm = Comm(skc, {"sql": "SELECT count(*) AS n FROM range(10) WHERE CAST(id AS STRING) = :v"})
    assert rows_of(comm.call({"v": "1' OR '1'='1"})) == [[0]]
    assert rows_of(comm.call({"v": "1"})) == [[1]]


def test_sequential_answers_come_before_idle(skc):
    comm = Comm(skc, {"sql": "SELECT :x * 2 AS y"})
    for x in range(20):
        msg = skc.session.msg("comm_msg", {"comm_id": comm.id, "data": {"request_id": x, "params": {"x": x}}})
        skc.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        # Read this request's IOPub traffic up to its idle: the answer must be among it.
        got = None
        deadline = time.monotonic() + SQL_TIMEOUT
        while True:
            m = read_iopub(skc, 1.0)
            assert time.monotonic() < deadline
            if m is None or m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "comm_msg":
                got = m["content"]["data"]
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                break
        assert got is not None and got["request_id"] == x and got["rows"] == [[2 * x]]


def test_row_limit_and_truncation(skc):
    comm = Comm(skc, {"sql": "SELECT id FROM range(10) WHERE id >= :lo", "limit": 3})
    a = comm.call({"lo": 2})
    assert rows_of(a) == [[2], [3], [4]] and a["data"]["truncated"] is True
    b = comm.call({"lo": 8})
    assert rows_of(b) == [[8], [9]] and b["data"]["truncated"] is False
    mp = Comm(skc, {"sql": "SELECT id FROM range(10) WHERE id >= :lo", "limit": 3,
                    "format": "application/msgpack"})
    doc = doc_of(mp.call({"lo": 0}))
    assert doc["rows"] == [[0], [1], [2]] and doc["truncated"] is True


# --- errors ---------------------------------------------------------------------------------------


def test_spark_errors_keep_their_class(skc, spark):
    from pyspark.errors import AnalysisException

    missing = "SELECT * FROM no_such_table_for_comms WHERE id = :id"
    with pytest.raises(AnalysisException) as ref:
        spark.sql(missing, args={"id": 1}).collect()
    comm = Comm(skc, {"sql": missing})
    err = error_of(comm.call({"id": 1}, request_id="r1"))
    assert err["ename"] == ref.value.getCondition() == "TABLE_OR_VIEW_NOT_FOUND"
    assert err["sqlstate"] == ref.value.getSqlState() == "42P01"
    assert "no_such_table_for_comms" in err["evalue"]
    assert comm.id in comm_info(skc, "kindling.sql")  # an error does not close the comm

    # A failure that depends on the values, then a good call on the same comm.
    div = Comm(skc, {"sql": "SELECT 10 / :x AS q"})
    err = error_of(div.call({"x": 0}))
    assert err["ename"] == "DIVIDE_BY_ZERO" and err["sqlstate"] == "22012"
    assert rows_of(div.call({"x": 4})) == [[2.5]]
    # A value of the wrong type for the statement: Spark's own cast error.
    cast = Comm(skc, {"sql": "SELECT CAST(:v AS INT) AS n"})
    assert error_of(cast.call({"v": "not a number"}))["ename"] == "CAST_INVALID_INPUT"


def test_malformed_message_is_answered(skc):
    comm = Comm(skc, {"sql": "SELECT :a AS a"})
    err = error_of(comm.call({"b": 1}, request_id=7))
    assert err["ename"] == "UNBOUND_SQL_PARAMETER" and ":a" in err["evalue"]
    err = error_of(comm.call(None, request_id=8, packed=b"\x92\x01"))
    assert err["ename"] == "InvalidRequest" and "msgpack" in err["evalue"]
    assert rows_of(comm.call({"a": 5})) == [[5]]


# --- connections ----------------------------------------------------------------------------------


def test_comm_info_filtered_by_target(skc):
    sql = Comm(skc, {"sql": "SELECT 1"})
    echo = uuid.uuid4().hex
    send(skc, "comm_open", {"comm_id": echo, "target_name": "kindling.echo", "data": {}})
    listed = comm_info(skc, "kindling.sql")
    assert sql.id in listed and echo not in listed
    assert echo in comm_info(skc, "kindling.echo")


def test_comm_uses_its_connection_session_and_refuses_other_clients(spark_kernel):
    a, b = spark_kernel.kc, spark_kernel.new_client()
    run_ok(a, "CREATE OR REPLACE TEMP VIEW only_in_a AS SELECT 41 AS x")
    mine = Comm(a, {"sql": "SELECT x + :d AS y FROM only_in_a"})
    assert rows_of(mine.call({"d": 1})) == [[42]]
    # Commands run too, in the same session: the view is listed.
    tables = rows_of(Comm(a, {"sql": "SHOW TABLES"}).call(None))
    assert any(row[1] == "only_in_a" and row[2] is True for row in tables), tables
    # b's own comm runs in b's session, which has no such view.
    theirs = Comm(b, {"sql": "SELECT x + :d AS y FROM only_in_a"})
    assert error_of(theirs.call({"d": 1}))["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    # b cannot call a's comm: nothing answers, and the kernel logs why.
    msg = b.session.msg("comm_msg", {"comm_id": mine.id, "data": {"request_id": "x", "params": {"d": 2}}})
    b.shell_channel.send(msg)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        mine.pump(0.2)
    assert "x" not in mine.answers
    assert f"comm_msg for comm {mine.id} refused" in spark_kernel.stderr_text()
    assert rows_of(mine.call({"d": 2})) == [[43]]


# --- stopping calls -------------------------------------------------------------------------------

SLOW = "SELECT count(*) AS n FROM range(:n) a CROSS JOIN range(:n) b WHERE a.id + b.id = -1"


def test_interrupt_stops_a_running_call(skc):
    comm = Comm(skc, {"sql": SLOW})
    comm.send("slow", {"n": 50000})
    time.sleep(1.0)
    t0 = time.monotonic()
    assert request(skc, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    err = error_of(comm.wait("slow", timeout=30))
    assert err["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - t0 < 20
    assert rows_of(comm.call({"n": 3})) == [[0]]  # the comm goes on


def test_closing_a_comm_stops_its_calls(skc):
    comm = Comm(skc, {"sql": SLOW, "concurrency": 4})
    for i in range(4):
        comm.send(i, {"n": 50000})
    time.sleep(1.0)
    t0 = time.monotonic()
    send(skc, "comm_close", {"comm_id": comm.id, "data": {}})
    # comm_info is answered once the close (which waits for the cancelled calls) is done.
    assert comm.id not in comm_info(skc, "kindling.sql")
    assert time.monotonic() - t0 < 20, "the close waited for the calls to finish instead of stopping them"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        comm.pump(0.2)
    assert not any(isinstance(r, int) for r in comm.answers), "a closed comm answered"
    fresh = Comm(skc, {"sql": "SELECT :x AS x"})
    assert rows_of(fresh.call({"x": 1})) == [[1]]


def test_shutdown_with_calls_in_flight_is_clean(spark_kernel):
    comm = Comm(spark_kernel.kc, {"sql": SLOW, "concurrency": 4})
    for i in range(4):
        comm.send(i, {"n": 50000})
    time.sleep(1.0)
    # The fixture's close asks for a shutdown and checks the exit status and sanitizer output.
