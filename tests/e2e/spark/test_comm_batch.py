"""Batching of pipelined kindling.sql calls (docs/comm.md, "Batching"): when many calls of one comm
wait, the kernel answers them with one Spark query, and each answer must be exactly the one the
call gets alone: the same columns, rows, truncation and errors, in JSON and in msgpack, with no row
of one call in another's answer. Statements that cannot be batched, and batches that Spark refuses,
still answer every call correctly, one at a time."""

from __future__ import annotations

import math
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from comm_support import Comm, doc_of, rows_of
from spark_support import SQL_TIMEOUT, SparkKernel, run_ok

pytestmark = pytest.mark.spark

# A local relation (inline VALUES): lookups in it need no Spark job, so thousands of calls stay
# affordable on a small machine.
IDS_SQL = ", ".join(f"({i})" for i in range(1200))
VIEW = f"""
CREATE OR REPLACE TEMP VIEW batch_data AS
SELECT id, concat('row-', id) AS s, id % 7 AS g, array(id, id * 2) AS arr,
       CAST(id AS DECIMAL(10, 2)) / 4 AS dec
FROM (SELECT CAST(v AS BIGINT) AS id FROM VALUES {IDS_SQL} AS t(v))
"""
# lo % 5 rows per call (0 to 4), each carrying the call's own parameter: a row in the wrong
# answer shows.
RANGE_SQL = ("SELECT :lo AS lo, id, s, arr, dec FROM batch_data "
             "WHERE id >= :lo AND id < :lo + (:lo % 5)")
LOS = random.Random(5).sample(range(-20, 1220), 1000)


def expected_range(lo: int) -> list[int]:
    """RANGE_SQL's ids, with Spark's remainder (the dividend's sign, as in Java)."""
    rem = int(math.fmod(lo, 5))
    return [i for i in range(max(lo, 0), lo + rem) if i < 1200]


def batches(kernel: SparkKernel, comm: Comm) -> list[int]:
    """Sizes of the batched queries the kernel ran for comm (its debug log)."""
    text = kernel.stderr_text()
    return [int(n) for n in re.findall(rf"comm {comm.id}: (\d+) calls in one query", text)]


def assert_batched(kernel: SparkKernel, comm: Comm, ncalls: int) -> list[int]:
    """Most of ncalls pipelined calls shared queries (how many share one depends on how many
    arrived while the previous query ran, so only the total is checked)."""
    sizes = batches(kernel, comm)
    assert sum(sizes) >= ncalls // 2 and max(sizes) > 1, f"the calls were not batched: {sizes}"
    return sizes


@pytest.fixture
def bk(tmp_path: Path, spark_url: str):
    """A kernel that logs each batch it runs, with the test view."""
    kernel = SparkKernel(tmp_path / "kernel", remote=spark_url, extra_args=["--log-level", "debug"])
    try:
        run_ok(kernel.kc, VIEW)
        yield kernel
    finally:
        kernel.close()


def test_batched_json_answers_equal_one_by_one(bk):
    kc = bk.kc
    piped = Comm(kc, {"sql": RANGE_SQL, "concurrency": 2})
    answers = piped.pipeline([{"lo": lo} for lo in LOS])
    assert_batched(bk, piped, len(LOS))
    for lo, answer in zip(LOS, answers):
        rows = rows_of(answer)
        # Rows of this call only, every one of them, in the order Spark scans them.
        assert [r[1] for r in rows] == expected_range(lo), (lo, rows)
        assert all(r[0] == lo for r in rows), (lo, rows)
        assert answer["data"]["truncated"] is False
    # Alone (a comm that never batches: concurrency 1), the same answer, columns included.
    alone = Comm(kc, {"sql": RANGE_SQL})
    sample = [lo for lo in LOS if lo % 5 == 0][:5] + [lo for lo in LOS if lo % 5 == 4][:10] + [-3, 1219]
    for lo in sample:
        want = alone.call({"lo": lo})["data"]
        got = answers[LOS.index(lo)]["data"] if lo in LOS else piped.call({"lo": lo})["data"]
        assert got == {**want, "request_id": got["request_id"]}, lo
    assert [c["name"] for c in answers[0]["data"]["columns"]] == ["lo", "id", "s", "arr", "dec"]


def test_batched_msgpack_answers_equal_one_by_one(bk):
    kc = bk.kc
    piped = Comm(kc, {"sql": RANGE_SQL, "concurrency": 2, "format": "application/msgpack"})
    answers = piped.pipeline([{"lo": lo} for lo in LOS], packed=True)
    assert_batched(bk, piped, len(LOS))
    alone = Comm(kc, {"sql": RANGE_SQL, "format": "application/msgpack"})
    for i, (lo, answer) in enumerate(zip(LOS, answers)):
        doc = doc_of(answer)
        assert [r[1] for r in doc["rows"]] == expected_range(lo), (lo, doc)
        assert all(r[0] == lo for r in doc["rows"])
        if i % 40 == 0:
            assert doc == doc_of(alone.call({"lo": lo})), lo
    assert [c["name"] for c in doc_of(answers[0])["columns"]] == ["lo", "id", "s", "arr", "dec"]


def test_truncation_is_per_call(bk):
    sql = "SELECT id FROM batch_data WHERE id >= :lo AND id < :lo + (:lo % 5)"
    for fmt in ("json", "application/msgpack"):
        comm = Comm(bk.kc, {"sql": sql, "concurrency": 2, "limit": 2, "format": fmt})
        los = LOS[:400]
        answers = comm.pipeline([{"lo": lo} for lo in los])
        for lo, answer in zip(los, answers):
            rows = doc_of(answer)["rows"] if fmt != "json" else rows_of(answer)
            want = expected_range(lo)
            assert [r[0] for r in rows] == want[:2], (lo, rows)
            assert answer["data"]["truncated"] is (len(want) > 2)
        assert_batched(bk, comm, len(los))


def test_an_error_fails_only_its_own_call(bk):
    kc = bk.kc
    # A value that makes its own call fail while running: Spark fails the whole batch, and the
    # kernel narrows it down so that only that call gets the error.
    values = [str(i) for i in range(300)]
    bad = {17, 150, 151, 299}
    for i in bad:
        values[i] = f"not a number {i}"
    comm = Comm(kc, {"sql": "SELECT CAST(:v AS INT) * 2 AS n, :v AS v", "concurrency": 2})
    answers = comm.pipeline([{"v": v} for v in values])
    alone = Comm(kc, {"sql": "SELECT CAST(:v AS INT) * 2 AS n, :v AS v"})
    for i, (v, answer) in enumerate(zip(values, answers)):
        if i in bad:
            err = answer["data"]["error"]
            assert err["ename"] == "CAST_INVALID_INPUT" and err["sqlstate"] == "22018", err
            assert err == alone.call({"v": v})["data"]["error"]
        else:
            assert rows_of(answer) == [[2 * i, v]], (i, answer)
    # Batching goes on for the comm after such a failure.
    assert_batched(bk, comm, len(values))
    n_before = len(batches(bk, comm))
    again = comm.pipeline([{"v": str(i)} for i in range(200)])
    assert [rows_of(a) for a in again] == [[[2 * i, str(i)]] for i in range(200)]
    assert len(batches(bk, comm)) > n_before

    # A division by zero the same way; a refused value (kindling's own check) never reaches Spark.
    div = Comm(kc, {"sql": "SELECT 12 / :x AS q", "concurrency": 2})
    params: list[Any] = [{"x": x} for x in [1, 2, 0, 3, 4, 6, 0, 12] * 20]
    params[5] = {"x": [1, 2]}
    answers = div.pipeline(params)
    for p, answer in zip(params, answers):
        data = answer["data"]
        if isinstance(p["x"], list):
            assert data["error"]["ename"] == "InvalidRequest"
        elif p["x"] == 0:
            assert data["error"]["ename"] == "DIVIDE_BY_ZERO", data
        else:
            assert data["rows"] == [[12 / p["x"]]]


def test_parameters_of_different_types_are_not_mixed(bk):
    comm = Comm(bk.kc, {"sql": "SELECT typeof(:v) AS t, :v AS v, :v IS NULL AS n", "concurrency": 2})
    values: list[Any] = [i if i % 4 == 0 else f"s{i}" if i % 4 == 1 else None if i % 4 == 2
                         else i / 2 for i in range(400)]
    answers = comm.pipeline([{"v": v} for v in values])
    kinds = {int: "bigint", str: "string", type(None): "void", float: "double"}
    for v, answer in zip(values, answers):
        assert rows_of(answer) == [[kinds[type(v)], v, v is None]], (v, answer)
    assert_batched(bk, comm, len(values))


def test_aggregates_answer_each_call(bk):
    # A global aggregate gives one row per call, also for a call that matches nothing.
    comm = Comm(bk.kc, {"sql": "SELECT count(*) AS n, max(id) AS m FROM batch_data "
                               "WHERE id % 100 = :g", "concurrency": 2})
    gs = list(range(-50, 150))
    answers = comm.pipeline([{"g": g} for g in gs])
    for g, answer in zip(gs, answers):
        want = [[12, 1100 + g]] if 0 <= g < 100 else [[0, None]]
        assert rows_of(answer) == want, (g, answer)
    assert_batched(bk, comm, len(gs))
    # Grouped: the groups of each call, in any order (Spark promises none without ORDER BY).
    grouped = Comm(bk.kc, {"sql": "SELECT g, count(*) AS n FROM batch_data WHERE id < :n GROUP BY g",
                           "concurrency": 2})
    ns = list(range(0, 60))
    for n, answer in zip(ns, grouped.pipeline([{"n": n} for n in ns])):
        want = {}
        for i in range(n):
            want[i % 7] = want.get(i % 7, 0) + 1
        assert sorted(map(tuple, rows_of(answer))) == sorted(want.items()), (n, answer)


def test_statements_that_are_not_batched_still_work(bk):
    kc = bk.kc
    # ORDER BY: never batched; answers in order, per call.
    ordered = Comm(kc, {"sql": "SELECT id FROM batch_data WHERE id < :n ORDER BY id DESC",
                        "concurrency": 2})
    answers = ordered.pipeline([{"n": n} for n in range(40)])
    assert [rows_of(a) for a in answers] == [[[i] for i in reversed(range(n))] for n in range(40)]
    assert batches(bk, ordered) == []
    # A command runs once per call.
    cmd = Comm(kc, {"sql": "SET spark.sql.shuffle.partitions", "concurrency": 2})
    for a in cmd.pipeline([None] * 20):
        assert rows_of(a)[0][0] == "spark.sql.shuffle.partitions"
    assert batches(bk, cmd) == []
    # range() needs a constant: the batched form does not analyze, so the calls run alone (and the
    # comm stops trying).
    tvf = Comm(kc, {"sql": "SELECT count(*) AS n FROM range(:n)", "concurrency": 2})
    answers = tvf.pipeline([{"n": n} for n in range(100)])
    assert [rows_of(a) for a in answers] == [[[n]] for n in range(100)]
    tried = batches(bk, tvf)
    assert len(tried) == 1, f"the batched form was not tried exactly once: {tried}"
    answers = tvf.pipeline([{"n": n} for n in range(100)])
    assert [rows_of(a) for a in answers] == [[[n]] for n in range(100)]
    assert batches(bk, tvf) == tried, "a comm whose batch failed analysis tried again"
    # An unnamed expression of a parameter is named after its value when alone: batches cannot
    # reproduce that, so the comm answers one at a time, with the names it gets alone.
    unnamed = Comm(kc, {"sql": "SELECT :x + 1", "concurrency": 2})
    answers = unnamed.pipeline([{"x": x} for x in range(50)])
    alone = Comm(kc, {"sql": "SELECT :x + 1"})
    for x, a in zip(range(50), answers):
        assert rows_of(a) == [[x + 1]]
        if x % 10 == 0:
            assert a["data"]["columns"] == alone.call({"x": x})["data"]["columns"]
    # Positional markers batch like named ones.
    pos = Comm(kc, {"sql": "SELECT ? + ? AS total, ? AS label", "concurrency": 2})
    answers = pos.pipeline([[i, 1, f"l{i}"] for i in range(300)])
    assert [rows_of(a) for a in answers] == [[[i + 1, f"l{i}"]] for i in range(300)]
    assert_batched(bk, pos, 300)


def test_one_call_alone_is_not_delayed(bk):
    comm = Comm(bk.kc, {"sql": "SELECT :x * 2 AS y", "concurrency": 2})
    comm.call({"x": 1})  # warm
    t0 = time.monotonic()
    for x in range(5):
        assert rows_of(comm.call({"x": x})) == [[2 * x]]
    # One call at a time runs as one query of its own, straight away.
    assert batches(bk, comm) == []
    assert time.monotonic() - t0 < SQL_TIMEOUT


def test_closing_a_comm_stops_its_running_batch(bk):
    # A batch that takes long: each call counts the matches of its value in 3 billion ids.
    slow = "SELECT count(*) AS n FROM range(3000000000) WHERE id % 1000003 = :x"
    comm = Comm(bk.kc, {"sql": slow, "concurrency": 2})
    for i in range(40):
        comm.send(i, {"x": i})
    deadline = time.monotonic() + SQL_TIMEOUT
    while not any(n > 1 for n in batches(bk, comm)):
        assert time.monotonic() < deadline, "no batch started"
        time.sleep(0.2)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        comm.pump(0.2)
    answered = set(comm.answers)  # calls that ran alone before the batch may have finished
    t0 = time.monotonic()
    msg = bk.kc.session.msg("comm_close", {"comm_id": comm.id, "data": {}})
    bk.kc.shell_channel.send(msg)
    # comm_info is answered once the close (which waits for the cancelled batch) is done.
    info = bk.kc.session.msg("comm_info_request", {"target_name": "kindling.sql"})
    bk.kc.shell_channel.send(info)
    while True:
        reply = bk.kc.get_shell_msg(timeout=SQL_TIMEOUT)
        if reply["parent_header"].get("msg_id") == info["header"]["msg_id"]:
            break
    assert comm.id not in reply["content"]["comms"]
    assert time.monotonic() - t0 < 20, "the close waited for the batch instead of stopping it"
    end = time.monotonic() + 2
    while time.monotonic() < end:
        comm.pump(0.2)
    assert set(comm.answers) == answered, "a closed comm answered"
    fresh = Comm(bk.kc, {"sql": "SELECT :x AS x", "concurrency": 2})
    assert rows_of(fresh.call({"x": 1})) == [[1]]


def test_calls_with_many_rows_get_smaller_batches(bk):
    # 2,500 rows a call: 40 calls or more reach what one batch may return (100,000 rows), so
    # such a batch is answered call by call, and the comm's later batches hold fewer calls.
    comm = Comm(bk.kc, {"sql": "SELECT id, :k AS k FROM range(2500) WHERE id >= :k - :k",
                        "concurrency": 2, "format": "application/msgpack"})
    ks = list(range(120))
    answers = comm.pipeline([{"k": k} for k in ks])
    for k, answer in zip(ks, answers):
        doc = doc_of(answer)
        assert doc["rows"] == [[i, k] for i in range(2500)], k
        assert doc["truncated"] is False
    sizes = batches(bk, comm)
    assert sizes, "never batched"
    reached = re.findall(rf"comm {comm.id}: (\d+) calls reached", bk.stderr_text())
    assert [int(n) for n in reached] == [n for n in sizes if n >= 40], (sizes, reached)
    # After an overflow, no batch holds more calls than half of the one that overflowed.
    if reached:
        later = sizes[sizes.index(int(reached[0])) + 1:]
        assert all(n <= int(reached[0]) // 2 for n in later), (sizes, reached)
