"""Fixtures of the end-to-end suite: a fresh kindling kernel per test, checked for sanitizer reports
and a clean exit when the test ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import e2e_support
from e2e_support import KernelHandle, kindling_binary


def pytest_configure(config: pytest.Config) -> None:
    e2e_support.prepare_session()


def pytest_unconfigure(config: pytest.Config) -> None:
    e2e_support.cleanup_session()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"kindling binary: {kindling_binary()}", f"e2e scratch dir: {e2e_support.SESSION_DIR}"]


@pytest.fixture(scope="session", autouse=True)
def binary() -> Path:
    path = kindling_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"kindling binary not found at {path}: build it or set KINDLING_BINARY", pytrace=False)
    return path


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelHandle]:
    handle = KernelHandle(tmp_path / "kernel")
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def km(kernel: KernelHandle):
    return kernel.km


@pytest.fixture
def kc(kernel: KernelHandle):
    return kernel.kc
