"""Every common Spark SQL type as the kernel shows it from a Spark 3.5 or 4.1 server, compared
character for character with what the same server prints through that version's own pyspark client.
The queries are tests/e2e/spark/test_types.py's (its known kernel gaps apply here too). VARIANT only
exists from Spark 4.0, and a 3.5 server cannot send a CalendarInterval result at all (its own
client gets the same error)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e_support import execute
from spark_support import DISPLAY_LIMIT, SQL_TIMEOUT, check_bundle, error_of, outputs, run_ok
from test_types import CASES, KNOWN_GAPS

pytestmark = [pytest.mark.spark, pytest.mark.spark_compat]

BASE_ZONE = "America/Los_Angeles"
# Case ids that need Spark 4.0 (by prefix), and what a 3.5 server answers instead of a result.
SINCE_4_0 = ("variant",)
FAILS_ON_3_5 = {"interval-calendar": "UNSUPPORTED_DATATYPE"}
CASE_ID = {query: case_id for case_id, query in CASES}


@pytest.fixture(scope="module")
def types_kc(compat) -> Iterator:
    handle = compat.kernel("types")
    try:
        run_ok(handle.kc, f"SET spark.sql.session.timeZone={BASE_ZONE}")
        compat.ref.call(op="sql", query=f"SET spark.sql.session.timeZone={BASE_ZONE}")
        yield handle.kc
    finally:
        handle.close()


def one_result(kc, query: str) -> dict:
    results = outputs(run_ok(kc, query))
    assert [m["msg_type"] for m in results] == ["execute_result"]
    return results[0]


@pytest.mark.parametrize("query", [q for _, q in CASES], ids=[i for i, _ in CASES])
def test_type_matches_the_versions_own_client(request, compat, types_kc, query):
    case_id = CASE_ID[query]
    if case_id.startswith(SINCE_4_0) and not compat.at_least_4:
        pytest.skip(f"{case_id} needs Spark 4.0 (this is {compat.full_version})")
    if case_id in FAILS_ON_3_5 and not compat.at_least_4:
        expected = compat.ref.call(op="error", query=query)
        err = error_of(*execute(types_kc, query, timeout=SQL_TIMEOUT))
        assert err["ename"] == FAILS_ON_3_5[case_id], f"{err['ename']}: {err['evalue']}"
        assert FAILS_ON_3_5[case_id] in expected["message"], expected
        return
    reason = KNOWN_GAPS.get(case_id) or KNOWN_GAPS.get(f"{case_id}-cut")
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    expected = compat.ref.call(op="show", query=query, limit=DISPLAY_LIMIT, truncate=20, count=True)
    result = one_result(types_kc, query)
    assert result["content"]["data"]["text/plain"] == expected["text"]
    check_bundle(result, expected["columns"], min(expected["count"], DISPLAY_LIMIT))


def test_empty_result(compat, types_kc):
    query = "SELECT id, CAST(id AS STRING) AS s FROM range(0)"
    result = one_result(types_kc, query)
    assert result["content"]["data"]["text/plain"] == compat.ref.show(query)
    check_bundle(result, ["id", "s"], 0)


def test_display_limit_footer(compat, types_kc):
    query = "SELECT id, id * 7 % 1000 AS m, concat('row ', id) AS label FROM range(100000)"
    result = one_result(types_kc, query)
    text = result["content"]["data"]["text/plain"]
    expected = compat.ref.show(query, limit=DISPLAY_LIMIT)
    if not compat.at_least_4:
        # 3.5 ends its footer line with a newline, 4.0+ does not; the kernel prints 4.0's.
        expected = expected.removesuffix("\n")
    assert text == expected
    assert text.endswith(f"only showing top {DISPLAY_LIMIT} rows")
    check_bundle(result, ["id", "m", "label"], DISPLAY_LIMIT)
