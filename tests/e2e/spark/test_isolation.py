"""Each client connection of one kernel has its own Spark session: temporary views and SQL
settings of one notebook are invisible to another notebook on the same kernel."""

from __future__ import annotations

import pytest

from e2e_support import execute
from spark_support import SQL_TIMEOUT, SparkKernel, error_of, run_ok, show_string, texts

pytestmark = pytest.mark.spark


def test_same_temp_view_name_different_contents(spark_kernel, spark):
    a, b = spark_kernel.kc, spark_kernel.new_client()
    view_a = "SELECT * FROM VALUES ('a', 1), ('a', 2) AS t(owner, n)"
    view_b = "SELECT * FROM VALUES ('b', 10, true) AS t(owner, n, flag)"
    run_ok(a, f"CREATE OR REPLACE TEMP VIEW shared_name AS {view_a}")
    run_ok(b, f"CREATE OR REPLACE TEMP VIEW shared_name AS {view_b}")
    # Read back in the other order, and twice, so neither creation order nor caching decides.
    for _ in range(2):
        for kc, view in ((b, view_b), (a, view_a)):
            shown = texts(run_ok(kc, "SELECT * FROM shared_name ORDER BY n"))
            assert shown == [show_string(spark, f"{view} ORDER BY n")]


def test_view_of_one_client_is_unknown_to_another(spark_kernel):
    a, b = spark_kernel.kc, spark_kernel.new_client()
    run_ok(a, "CREATE OR REPLACE TEMP VIEW only_in_a AS SELECT 1 AS x")
    err = error_of(*execute(b, "SELECT * FROM only_in_a", timeout=SQL_TIMEOUT))
    assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    run_ok(a, "SELECT * FROM only_in_a")


def test_sql_settings_are_per_connection(spark_kernel, spark):
    a, b = spark_kernel.kc, spark_kernel.new_client()
    run_ok(a, "SET spark.sql.ansi.enabled=false")
    # Without ANSI mode, division by zero is NULL; b still has the default (ANSI on) and fails.
    assert texts(run_ok(a, "SELECT 1 / 0 AS q")) == [show_string(spark, "SELECT CAST(NULL AS DOUBLE) AS q")]
    err = error_of(*execute(b, "SELECT 1 / 0 AS q", timeout=SQL_TIMEOUT))
    assert err["ename"] == "DIVIDE_BY_ZERO"


def test_second_kernel_does_not_see_views(spark_kernel, tmp_path, spark_url):
    run_ok(spark_kernel.kc, "CREATE OR REPLACE TEMP VIEW only_in_first AS SELECT 1 AS x")
    other = SparkKernel(tmp_path / "other", remote=spark_url)
    try:
        err = error_of(*execute(other.kc, "SELECT * FROM only_in_first", timeout=SQL_TIMEOUT))
        assert err["ename"] == "TABLE_OR_VIEW_NOT_FOUND"
    finally:
        other.close()
