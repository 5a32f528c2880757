"""interrupt_request and pipelined kindling.sql calls (docs/comm.md, "Interrupts"): a client that sent
many calls and then interrupts gets exactly one answer per call, its rows when the call had
finished and a KeyboardInterrupt error for every call still running or waiting, in the comm's
format, one call at a time and batched; calls sent after the interrupt run as usual; and an
interrupt of one connection's comm calls leaves another connection's cell alone. SIGINT stops the
calls every comm holds, as it stops every connection's running cell."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import pytest

from comm_support import Comm, doc_of, rows_of
from e2e_support import get_reply, request
from spark_support import SQL_TIMEOUT, SparkKernel

pytestmark = pytest.mark.spark

MOD = 1000003


def slow(n: int) -> str:
    """A call that counts the ids of range(n) with its value's remainder: a scan of n ids alone,
    one scan for a whole batch of calls (which Spark runs as a join of the calls with an
    aggregate of the scan), and an exact answer to check."""
    return f"SELECT count(*) AS n FROM range({n}) WHERE id % {MOD} = :x"


# About half a second a call on a warm server (more on a cold or busy one): 200 of them take
# minutes one at a time, so most are still waiting when the interrupt comes.
ONE_BY_ONE = 300_000_000
# Seconds a batch on a warm server: the interrupt lands while it runs.
BATCHED = 1_000_000_000


def expected(n: int, x: int) -> int:
    return len(range(x, n, MOD))


def interrupt(kc) -> None:
    reply = request(kc, "interrupt_request", {}, channel="control")
    assert reply["content"]["status"] == "ok", reply["content"]


def value_of(answer: dict[str, Any], fmt: str) -> int:
    rows = doc_of(answer)["rows"] if fmt != "json" else rows_of(answer)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def collect(comm: Comm, rids: list[Any], timeout: float) -> dict[Any, dict[str, Any]]:
    """The answers of rids, waiting for all of them; then a moment more, in which none may come
    twice (Comm.pump refuses a second answer)."""
    got: dict[Any, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(rids):
        missing = [r for r in rids if r not in got]
        assert time.monotonic() < deadline, f"{len(missing)} calls unanswered, e.g. {missing[:5]}"
        comm.pump(0.5)
        for r in [r for r in comm.answers if r in rids]:
            got[r] = comm.answers.pop(r)
    comm.drain(1.0)
    counts = Counter(comm.log)
    assert all(counts[r] == 1 for r in rids), {r: counts[r] for r in rids if counts[r] != 1}
    return got


def split(answers: dict[Any, dict[str, Any]], xs: dict[Any, int], n: int, fmt: str):
    """Finished and interrupted calls; every answer is one or the other, finished ones exact."""
    finished, stopped = [], []
    for rid, answer in answers.items():
        data = answer["data"]
        if "error" in data:
            err = data["error"]
            assert err["ename"] == "KeyboardInterrupt", (rid, err)
            assert "interrupted" in err["evalue"], err
            assert answer["buffers"] == [] and set(data) == {"request_id", "error"}, data
            stopped.append(rid)
        else:
            assert value_of(answer, fmt) == expected(n, xs[rid]), (rid, data)
            finished.append(rid)
    return finished, stopped


def batch_sizes(kernel: SparkKernel, comm: Comm) -> list[int]:
    return [int(n) for n in re.findall(rf"comm {comm.id}: (\d+) calls in one query", kernel.stderr_text())]


def wait_for_batch(kernel: SparkKernel, comm: Comm) -> None:
    """Until a batch of several calls of comm runs (its query takes seconds: an interrupt sent
    now finds it running)."""
    deadline = time.monotonic() + SQL_TIMEOUT
    while not any(n > 1 for n in batch_sizes(kernel, comm)):
        assert time.monotonic() < deadline, "no batch started"
        time.sleep(0.05)


def send_call(comm: Comm, rid: Any, x: int, fmt: str) -> None:
    if fmt == "json":
        comm.send(rid, {"x": x})
    else:
        comm.send(rid, packed=msgpack.packb({"x": x}))


@pytest.fixture
def ik(tmp_path: Path, spark_url: str):
    """A kernel that logs each batch it runs."""
    kernel = SparkKernel(tmp_path / "kernel", remote=spark_url, extra_args=["--log-level", "debug"])
    try:
        yield kernel
    finally:
        kernel.close()


@pytest.mark.parametrize("fmt", ["json", "application/msgpack"])
def test_interrupt_answers_every_queued_call_one_at_a_time(ik, fmt):
    kc = ik.kc
    comm = Comm(kc, {"sql": slow(ONE_BY_ONE), "format": fmt})
    send_call(comm, "warm", 1, fmt)
    comm.wait("warm")
    xs = {f"c{i}": (i * 7919) % 1000 for i in range(200)}
    for rid, x in xs.items():
        send_call(comm, rid, x, fmt)
    # A few answers first, so that some calls finished and the rest are running or queued
    # (behind the running one, in the connection's own request queue).
    deadline = time.monotonic() + SQL_TIMEOUT
    while len([r for r in comm.answers if r in xs]) < 2:
        assert time.monotonic() < deadline, "no answers"
        comm.pump(0.2)
    t0 = time.monotonic()
    interrupt(kc)
    # Sent after the interrupt, before its reply could be read: it must run.
    send_call(comm, "after", 5, fmt)
    answers = collect(comm, list(xs), SQL_TIMEOUT)
    finished, stopped = split(answers, xs, ONE_BY_ONE, fmt)
    assert len(finished) >= 2
    # Interrupted calls are answered at once, not run: 200 calls would take minutes.
    assert len(stopped) >= 150, f"only {len(stopped)} of 200 interrupted"
    assert time.monotonic() - t0 < 30, "the waiting calls ran instead of being answered"
    # Answers in the order the calls were sent, as always with concurrency 1.
    order = [r for r in comm.log if r in xs]
    assert order == list(xs), "answers out of order"
    assert value_of(comm.wait("after"), fmt) == expected(ONE_BY_ONE, 5)
    assert value_of(comm.call({"x": 11}), fmt) == expected(ONE_BY_ONE, 11)


@pytest.mark.parametrize("concurrency,fmt", [(2, "application/msgpack"), (4, "json")])
def test_interrupt_answers_every_batched_call(ik, concurrency, fmt):
    kc = ik.kc
    comm = Comm(kc, {"sql": slow(BATCHED), "concurrency": concurrency, "format": fmt})
    xs = {i: (i * 7919) % 1000 for i in range(200)}
    for rid, x in xs.items():
        send_call(comm, rid, x, fmt)
    wait_for_batch(ik, comm)
    t0 = time.monotonic()
    interrupt(kc)
    answers = collect(comm, list(xs), SQL_TIMEOUT)
    elapsed = time.monotonic() - t0
    finished, stopped = split(answers, xs, BATCHED, fmt)
    assert len(stopped) >= 1, "nothing was interrupted"
    assert elapsed < 30, f"the interrupted calls took {elapsed:.1f}s to be answered"
    assert "calls interrupted" in ik.stderr_text()
    # Later calls run as usual, batched again: an interrupt says nothing against batching.
    before = len(batch_sizes(ik, comm))
    later = {f"l{i}": i for i in range(10)}
    for rid, x in later.items():
        send_call(comm, rid, x, fmt)
    got = collect(comm, list(later), SQL_TIMEOUT * 2)
    assert [value_of(got[r], fmt) for r in later] == [expected(BATCHED, x) for x in later.values()]
    assert len(batch_sizes(ik, comm)) > before, "the comm stopped batching after an interrupt"


def test_interrupting_comm_calls_leaves_other_connections_alone(ik):
    a, b = ik.kc, ik.new_client()
    # b's cell sleeps a few seconds, whatever the server's warmth.
    cell = b.execute("SELECT reflect('java.lang.Thread', 'sleep', 8000L) AS slept")
    comm = Comm(a, {"sql": slow(BATCHED), "concurrency": 2})
    for i in range(20):
        comm.send(i, {"x": i})
    wait_for_batch(ik, comm)
    with pytest.raises(TimeoutError):
        get_reply(b, cell, timeout=0.1)
    # a runs no cell: its comm calls are its running work, and only they stop.
    interrupt(a)
    answers = collect(comm, list(range(20)), SQL_TIMEOUT)
    assert any("error" in ans["data"] for ans in answers.values())
    reply = get_reply(b, cell, timeout=SQL_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]


def test_sigint_answers_the_calls_every_comm_holds(ik):
    comm = Comm(ik.kc, {"sql": slow(BATCHED), "concurrency": 4})
    xs = {i: (i * 7919) % 1000 for i in range(100)}
    for rid, x in xs.items():
        send_call(comm, rid, x, "json")
    wait_for_batch(ik, comm)
    t0 = time.monotonic()
    os.kill(ik.pid, signal.SIGINT)
    answers = collect(comm, list(xs), SQL_TIMEOUT)
    elapsed = time.monotonic() - t0
    finished, stopped = split(answers, xs, BATCHED, "json")
    assert len(stopped) >= 1, "SIGINT interrupted no comm call"
    assert elapsed < 30, f"the interrupted calls took {elapsed:.1f}s to be answered"
    # The kernel lives on, and the comm serves the next call.
    assert value_of(comm.call({"x": 3}), "json") == expected(BATCHED, 3)
