"""Shared machinery of the end-to-end tests: where the kernel binary is, kernelspecs pointing at it,
a kernel handle that keeps the kernel's stderr, and small helpers to send requests and gather what
comes back on each channel.

The kernel under test is $KINDLING_BINARY, or <repo>/build/kindling when that is unset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any, Callable

from jupyter_client import KernelManager
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.session import Session

REPO = Path(__file__).resolve().parents[2]
KERNEL_NAME = "kindling-test"
# Generous: the same suite runs against the AddressSanitizer build, which is several times slower.
TIMEOUT = float(os.environ.get("KL_E2E_TIMEOUT", "60"))

# Lines a sanitizer writes to the kernel's stderr when it finds a bug; any of them fails the test
# that owned the kernel even if the kernel kept running.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

SESSION_DIR: Path | None = None


def kindling_binary() -> Path:
    value = os.environ.get("KINDLING_BINARY")
    path = Path(value) if value else REPO / "build" / "kindling"
    return path.resolve()


# The protocol tests need no Spark: their kernels point at a port where nothing listens, so no
# kernel starts the embedded local server (a JVM each) and SQL cells fail fast and clearly.
UNREACHABLE_REMOTE = "sc://127.0.0.1:9"


def write_kernelspec(kernels_dir: Path, history_file: Path, extra_args: list[str] | None = None) -> Path:
    """Writes kernels_dir/kindling-test/kernel.json running the binary under test (with
    extra_args appended to its command line)."""
    spec_dir = kernels_dir / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            str(kindling_binary()),
            "kernel",
            "-f",
            "{connection_file}",
            "--history-file",
            str(history_file),
            "--spark-remote",
            UNREACHABLE_REMOTE,
            *(extra_args or []),
        ],
        "display_name": "Kindling (e2e test)",
        "language": "sql",
        "interrupt_mode": "message",
        "env": {},
        "metadata": {},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def prepare_session() -> Path:
    """Isolates Jupyter's paths in a temporary directory and installs the session-wide kernelspec,
    which the jupyter_kernel_test classes find by name through JUPYTER_PATH."""
    global SESSION_DIR
    SESSION_DIR = Path(tempfile.mkdtemp(prefix="kindling-e2e-"))
    share = SESSION_DIR / "share" / "jupyter"
    os.environ["JUPYTER_PATH"] = str(share)
    os.environ["JUPYTER_DATA_DIR"] = str(SESSION_DIR / "data")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(SESSION_DIR / "runtime")
    os.environ["JUPYTER_CONFIG_DIR"] = str(SESSION_DIR / "config")
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    write_kernelspec(share / "kernels", SESSION_DIR / "history.sqlite")
    return SESSION_DIR


def cleanup_session() -> None:
    if SESSION_DIR is not None and not os.environ.get("KL_E2E_KEEP"):
        shutil.rmtree(SESSION_DIR, ignore_errors=True)


class KernelHandle:
    """One kindling process with its manager, a first client, and its stderr kept in a file."""

    def __init__(
        self,
        workdir: Path,
        own_spec: bool = True,
        start_client: bool = True,
        extra_args: list[str] | None = None,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "kernel-stderr.log"
        self._log = open(self.log_path, "ab")
        if own_spec:
            # A spec of its own gives this kernel its own history database.
            kernels = workdir / "kernels"
            write_kernelspec(kernels, workdir / "history.sqlite", extra_args)
            ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
            self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
        else:
            self.km = KernelManager(kernel_name=KERNEL_NAME)
        # Leak checking at exit makes an ASan kernel slow to stop.
        self.km.shutdown_wait_time = TIMEOUT
        self.km.start_kernel(stdout=self._log, stderr=self._log)
        self.kc: BlockingKernelClient = self.km.client()
        self._clients: list[BlockingKernelClient] = [self.kc]
        if start_client:
            self.kc.start_channels()
            try:
                self.kc.wait_for_ready(timeout=TIMEOUT)
            except RuntimeError:
                self.close(check=False)
                raise

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid  # type: ignore[union-attr]

    @property
    def process(self) -> Any:
        return self.km.provisioner.process  # type: ignore[union-attr]

    def new_client(self, context: Any = None) -> BlockingKernelClient:
        """A second client with a session id of its own, i.e. a separate kernel connection."""
        session = Session(
            key=self.km.session.key,
            signature_scheme=self.km.session.signature_scheme,
            username="e2e-extra",
        )
        kwargs: dict[str, Any] = {"session": session}
        if context is not None:
            kwargs["context"] = context
        kc = self.km.client(**kwargs)
        kc.start_channels()
        kc.wait_for_ready(timeout=TIMEOUT)
        self._clients.append(kc)
        return kc

    def drop_client(self, kc: BlockingKernelClient) -> None:
        kc.stop_channels()
        self._clients.remove(kc)

    def stderr_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self, check: bool = True) -> None:
        """Stops the kernel (asking first) and, with check, raises AssertionError when the kernel did
        not exit with status 0 or a sanitizer reported something."""
        for kc in self._clients:
            kc.stop_channels()
        proc = self.process
        alive = self.km.is_alive()
        if alive:
            self.km.shutdown_kernel(now=False)  # also cleans up the connection file
        else:
            self.km.cleanup_resources()
        rc = proc.wait(timeout=TIMEOUT) if proc is not None else None
        self._log.close()
        if not check:
            return
        text = self.log_path.read_text(errors="replace")
        found = [m for m in SANITIZER_MARKERS if m in text]
        if found:
            raise AssertionError(f"sanitizer report in kernel stderr ({found}):\n{tail(text)}")
        if alive and rc != 0:
            raise AssertionError(f"kernel exited with status {rc} on shutdown:\n{tail(text)}")


def tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- reading what the kernel sends -------------------------------------------------------------
# Each client keeps what it has read but not yet consumed, so waiting for one message never loses
# another that arrived first (replies of other requests, IOPub traffic of other cells).


def _pending(kc: BlockingKernelClient, channel: str) -> list[dict[str, Any]]:
    store = kc.__dict__.setdefault("_kl_pending", {})
    return store.setdefault(channel, [])


def iopub_log(kc: BlockingKernelClient) -> list[dict[str, Any]]:
    """Every IOPub message this client has read, in arrival order."""
    return kc.__dict__.setdefault("_kl_iopub", [])


def _channel(kc: BlockingKernelClient, channel: str) -> Any:
    return {
        "shell": kc.shell_channel,
        "control": kc.control_channel,
        "stdin": kc.stdin_channel,
        "iopub": kc.iopub_channel,
    }[channel]


def wait_msg(
    kc: BlockingKernelClient,
    channel: str,
    match: Callable[[dict[str, Any]], bool],
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The first message on channel for which match is true; earlier non-matching ones are kept."""
    if channel == "iopub":
        raise ValueError("use wait_iopub")
    pending = _pending(kc, channel)
    for i, msg in enumerate(pending):
        if match(msg):
            return pending.pop(i)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching message on {channel} within {timeout}s")
        try:
            msg = _channel(kc, channel).get_msg(timeout=min(left, 1.0))
        except Empty:
            continue
        if match(msg):
            return msg
        pending.append(msg)


def get_reply(
    kc: BlockingKernelClient, msg_id: str, channel: str = "shell", timeout: float = TIMEOUT
) -> dict[str, Any]:
    return wait_msg(kc, channel, lambda m: m["parent_header"].get("msg_id") == msg_id, timeout)


def read_iopub(kc: BlockingKernelClient, timeout: float) -> dict[str, Any] | None:
    try:
        msg = kc.iopub_channel.get_msg(timeout=timeout)
    except Empty:
        return None
    iopub_log(kc).append(msg)
    return msg


def wait_iopub(
    kc: BlockingKernelClient,
    match: Callable[[dict[str, Any]], bool],
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The first IOPub message (already read or new) for which match is true."""
    for msg in iopub_log(kc):
        if match(msg):
            return msg
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching IOPub message within {timeout}s")
        msg = read_iopub(kc, min(left, 1.0))
        if msg is not None and match(msg):
            return msg


def parent_is(msg_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["parent_header"].get("msg_id") == msg_id


def is_idle_of(msg_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m["msg_type"] == "status"
        and m["content"].get("execution_state") == "idle"
        and m["parent_header"].get("msg_id") == msg_id
    )


def iopub_for(kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """All IOPub messages of one request, from its busy to its idle status."""
    wait_iopub(kc, is_idle_of(msg_id), timeout)
    return [m for m in iopub_log(kc) if m["parent_header"].get("msg_id") == msg_id]


def execute(
    kc: BlockingKernelClient, code: str, timeout: float = TIMEOUT, **kwargs: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs one cell: its execute_reply and its IOPub messages (busy ... idle)."""
    msg_id = kc.execute(code, **kwargs)
    reply = get_reply(kc, msg_id, "shell", timeout)
    return reply, iopub_for(kc, msg_id, timeout)


def request(
    kc: BlockingKernelClient,
    msg_type: str,
    content: dict[str, Any],
    channel: str = "shell",
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Sends any request and returns its reply."""
    msg_id = send(kc, msg_type, content, channel)
    return get_reply(kc, msg_id, channel, timeout)


def send(kc: BlockingKernelClient, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
    msg = kc.session.msg(msg_type, content)
    _channel(kc, channel).send(msg)
    return msg["header"]["msg_id"]


def of_type(msgs: list[dict[str, Any]], msg_type: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] == msg_type]


def stream_text(msgs: list[dict[str, Any]], name: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in of_type(msgs, "stream") if m["content"]["name"] == name)


def plain_result(msgs: list[dict[str, Any]]) -> str:
    """text/plain of the single execute_result among msgs."""
    results = of_type(msgs, "execute_result")
    assert len(results) == 1, f"expected one execute_result, got {[m['msg_type'] for m in msgs]}"
    return results[0]["content"]["data"]["text/plain"]
