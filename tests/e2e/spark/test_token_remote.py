"""A kernel whose --spark-remote URL carries a bearer token, against a server that requires it
(spark.connect.authenticate.token): the right token runs SQL, a wrong one is a clear error, and
the token never shows in outputs, errors or the kernel's log."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import execute
from spark_support import SQL_TIMEOUT, SparkKernel, SparkServer, free_port, run_ok, texts

pytestmark = pytest.mark.spark

TOKEN = "kl-e2e-secret-7f3a9c"


@pytest.fixture(scope="module")
def token_server() -> Iterator[str]:
    """host:port of a second server that requires TOKEN."""
    state = Path(tempfile.mkdtemp(prefix="kl-e2e-token-"))
    server = SparkServer(state, port=free_port())
    server_args = ["--token", TOKEN]
    original = server._run

    def run_with_token(*args: str, timeout: float = 300):
        if args and args[0] == "start":
            args = (*args, *server_args)
        return original(*args, timeout=timeout)

    server._run = run_with_token  # type: ignore[method-assign]
    try:
        try:
            url = server.start()
        except Exception as exc:
            pytest.fail(f"could not start the token-protected server: {exc}", pytrace=False)
        yield url.split(";")[0][len("sc://"):].rstrip("/")
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def all_text(msgs) -> str:
    parts = []
    for m in msgs:
        c = m["content"]
        parts.append(str(c.get("text", "")))
        parts.append(str(c.get("data", "")))
        parts.append(str(c.get("evalue", "")))
        parts.append(str(c.get("traceback", "")))
    return "\n".join(parts)


def test_token_in_the_url_authenticates(tmp_path: Path, token_server: str):
    kernel = SparkKernel(tmp_path / "k", remote=f"sc://{token_server}/;token={TOKEN}")
    try:
        msgs = run_ok(kernel.kc, "SELECT 'authenticated' AS who")
        assert "authenticated" in "\n".join(texts(msgs))
    finally:
        kernel.close()
    assert TOKEN not in kernel.log_path.read_text(errors="replace")


def test_wrong_token_is_a_clear_error(tmp_path: Path, token_server: str):
    wrong = "not-the-right-token"
    kernel = SparkKernel(tmp_path / "k", remote=f"sc://{token_server}/;token={wrong}",
                         extra_args=["--log-level", "debug"])
    try:
        reply, msgs = execute(kernel.kc, "SELECT 1", timeout=SQL_TIMEOUT)
        content = reply["content"]
        assert content["status"] == "error"
        text = f"{content['ename']}: {content['evalue']}"
        assert "UNAUTHENTICATED" in text or "PERMISSION_DENIED" in text or "token" in text.lower(), text
        assert token_server.split(":")[1] in content["evalue"], "the error should name the endpoint"
        assert wrong not in all_text(msgs)
        # The kernel stays usable.
        assert execute(kernel.kc, "%echo still here")[0]["content"]["status"] == "ok"
    finally:
        kernel.close()
    assert wrong not in kernel.log_path.read_text(errors="replace")


def test_no_token_is_refused(tmp_path: Path, token_server: str):
    kernel = SparkKernel(tmp_path / "k", remote=f"sc://{token_server}")
    try:
        reply, _ = execute(kernel.kc, "SELECT 1", timeout=SQL_TIMEOUT)
        assert reply["content"]["status"] == "error"
    finally:
        kernel.close()
