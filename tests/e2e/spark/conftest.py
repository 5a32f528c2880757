"""Fixtures of the Spark end-to-end tests: ONE Spark Connect server for the whole run (started by
scripts/spark_server.sh, stopped at the end, also when tests fail; its watchdog stops it should
pytest itself die), kernels pointed at it with --spark-remote, and a pyspark Spark Connect session
on the same server that computes the expected output.

KL_SPARK_REMOTE=sc://host:port uses a server you already run instead of starting one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_support import SparkKernel, SparkServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spark: needs a Spark Connect server (tests/e2e/spark)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this directory needs the server, marked or not."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark_url() -> Iterator[str]:
    given = os.environ.get("KL_SPARK_REMOTE")
    if given:
        yield given
        return
    state = Path(tempfile.mkdtemp(prefix="kl-e2e-spark-"))
    # Eight task slots: the tenancy tests run eight connections' queries at once, and queries that
    # wait (not compute) need slots, not cores.
    server = SparkServer(state, master="local[8]")
    try:
        try:
            url = server.start()
        except Exception as exc:
            pytest.fail(f"could not start the Spark Connect server: {exc}", pytrace=False)
        yield url
    finally:
        server.stop()
        if not os.environ.get("KL_E2E_KEEP"):
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def spark(spark_url: str):
    """The reference: pyspark's own Spark Connect client on the same server."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_url).getOrCreate()
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def spark_kernel(tmp_path: Path, spark_url: str) -> Iterator[SparkKernel]:
    handle = SparkKernel(tmp_path / "kernel", remote=spark_url)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def skc(spark_kernel: SparkKernel):
    return spark_kernel.kc
