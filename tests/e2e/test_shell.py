"""%sh and %%sh (refused without --allow-shell; output streamed as it comes; exit status, signals,
interrupts, timeouts), %env, %time and %%time, %history, and magics that ask for input when the
client allows none."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

import e2e_support
from e2e_support import (
    KERNEL_NAME,
    TIMEOUT,
    KernelHandle,
    execute,
    get_reply,
    iopub_for,
    of_type,
    parent_is,
    request,
    stream_text,
    wait_iopub,
)


class ArgsKernel(KernelHandle):
    """A kernel started with extra command-line arguments."""

    def __init__(self, workdir: Path, extra_args: list[str]):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "kernel-stderr.log"
        self._log = open(self.log_path, "ab")
        kernels = workdir / "kernels"
        spec_file = e2e_support.write_kernelspec(kernels, workdir / "history.sqlite") / "kernel.json"
        spec = json.loads(spec_file.read_text())
        spec["argv"] += extra_args
        spec_file.write_text(json.dumps(spec, indent=1))
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
        self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
        self.km.shutdown_wait_time = TIMEOUT
        self.km.start_kernel(stdout=self._log, stderr=self._log)
        self.kc = self.km.client()
        self._clients = [self.kc]
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=TIMEOUT)
        except RuntimeError:
            self.close(check=False)
            raise


@pytest.fixture
def shell(tmp_path: Path):
    handle = ArgsKernel(tmp_path / "kernel", ["--allow-shell"])
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def skc(shell):
    return shell.kc


def ok(kc, code: str, **kwargs):
    reply, msgs = execute(kc, code, **kwargs)
    assert reply["content"]["status"] == "ok", reply["content"]
    return msgs


def error(kc, code: str, **kwargs) -> tuple[str, str]:
    reply, msgs = execute(kc, code, **kwargs)
    content = reply["content"]
    assert content["status"] == "error", f"{code!r} did not fail"
    errors = of_type(msgs, "error")
    assert len(errors) == 1 and errors[0]["content"]["ename"] == content["ename"]
    return content["ename"], content["evalue"]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


# --- %sh ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["%sh echo hi", "%%sh\necho hi", "%SH ls /"])
def test_shell_refused_without_allow_shell(kc, code):
    ename, evalue = error(kc, code)
    assert ename == "ShellDisabled"
    label = "%%sh" if code.startswith("%%") else "%sh"
    assert evalue == (
        f"{label} is disabled: shell commands run as the kernel's user, so the kernel must be "
        "started with --allow-shell to allow them (add it to the kernelspec's argv)"
    )


def test_sh_output(skc):
    assert stream_text(ok(skc, "%sh echo hello")) == "hello\n"
    msgs = ok(skc, "%sh echo out; echo err >&2")
    assert stream_text(msgs, "stdout") == "out\n"
    assert stream_text(msgs, "stderr") == "err\n"
    # The child runs as the kernel's user, in the kernel's directory.
    assert stream_text(ok(skc, "%sh id -u")) == f"{os.getuid()}\n"


def test_cell_sh_runs_the_body_as_a_script(skc):
    msgs = ok(skc, "%%sh\nx=3\nfor i in 1 2; do\n  echo \"$i: $((x * i))\"\ndone\n")
    assert stream_text(msgs) == "1: 3\n2: 6\n"
    assert error(skc, "%%sh -x\necho hi") == ("UsageError", "%%sh takes no arguments: the cell body is the script")
    assert error(skc, "%sh") == ("UsageError", "%sh takes a command, e.g. %sh ls -l")


def test_sh_output_is_streamed_as_it_comes(skc):
    msg_id = skc.execute("%sh echo first; sleep 1.5; echo second")
    first = wait_iopub(skc, lambda m: parent_is(msg_id)(m) and m["msg_type"] == "stream")
    assert first["content"]["text"] == "first\n"
    seen_first = time.monotonic()
    assert get_reply(skc, msg_id)["content"]["status"] == "ok"
    assert time.monotonic() - seen_first >= 1.0, "the first line came only at the end"
    streams = of_type(iopub_for(skc, msg_id), "stream")
    assert [m["content"]["text"] for m in streams] == ["first\n", "second\n"]
    sent = [datetime.fromisoformat(str(m["header"]["date"])) for m in streams]
    assert (sent[1] - sent[0]).total_seconds() >= 1.0


def test_sh_interleaves_stdout_and_stderr_in_order(skc):
    msgs = ok(skc, "%sh echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c")
    assert [(m["content"]["name"], m["content"]["text"]) for m in of_type(msgs, "stream")] == [
        ("stdout", "a\n"),
        ("stderr", "b\n"),
        ("stdout", "c\n"),
    ]


def test_sh_large_output_arrives_whole(skc):
    msgs = ok(skc, "%sh seq 1 200000")
    assert stream_text(msgs) == "".join(f"{i}\n" for i in range(1, 200001))


def test_sh_utf8_split_across_reads(skc):
    msgs = ok(skc, "%sh printf '\\342\\202'; sleep 0.3; printf '\\254 \\377\\n'")
    assert stream_text(msgs) == "\u20ac \ufffd\n"


def test_sh_stdin_is_dev_null(skc):
    started = time.monotonic()
    assert stream_text(ok(skc, "%sh cat; echo done")) == "done\n"
    assert time.monotonic() - started < 5


def test_sh_exit_status_is_an_error(skc):
    assert error(skc, "%sh echo partial; exit 3") == (
        "CalledProcessError",
        "Command 'echo partial; exit 3' returned non-zero exit status 3.",
    )
    assert error(skc, "%sh kill -9 $$") == ("CalledProcessError", "Command 'kill -9 $$' died with signal 9 (SIGKILL).")
    assert error(skc, "%%sh\necho more\nexit 4") == (
        "CalledProcessError",
        "Command 'echo more...' returned non-zero exit status 4.",
    )
    assert error(skc, "%sh exit 1\n%echo never")[1] == "Command 'exit 1' returned non-zero exit status 1."


def test_sh_error_keeps_the_output(skc):
    reply, msgs = execute(skc, "%sh echo before; ls /nonexistent-dir")
    assert reply["content"]["ename"] == "CalledProcessError"
    assert stream_text(msgs) == "before\n"
    assert "nonexistent-dir" in stream_text(msgs, "stderr")


def run_interrupted(kc, code: str, interrupt) -> tuple[dict, float, int]:
    """Starts code (which prints its shell's pid first), interrupts it, returns reply, seconds and pid."""
    msg_id = kc.execute(code)
    first = wait_iopub(kc, lambda m: parent_is(msg_id)(m) and m["msg_type"] == "stream")
    pid = int(first["content"]["text"].split()[0])
    started = time.monotonic()
    interrupt()
    reply = get_reply(kc, msg_id)
    return reply, time.monotonic() - started, pid


def test_sh_interrupt_request_stops_the_process_group(skc):
    reply, took, pid = run_interrupted(
        skc, "%sh echo $$; sleep 60 & sleep 60", lambda: request(skc, "interrupt_request", {}, channel="control")
    )
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert reply["content"]["evalue"] == "the shell command was interrupted"
    assert took < 5
    time.sleep(0.3)
    assert group_members(pid) == []
    assert stream_text(ok(skc, "%sh echo still here")) == "still here\n"


def test_sh_sigint_to_the_kernel_stops_the_command(shell):
    kc = shell.kc
    reply, took, pid = run_interrupted(kc, "%sh echo $$; sleep 60", lambda: os.kill(shell.pid, signal.SIGINT))
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert took < 5
    assert shell.km.is_alive()
    time.sleep(0.3)
    assert group_members(pid) == []


def test_sh_that_ignores_sigint_is_killed(skc):
    reply, took, pid = run_interrupted(
        skc, "%sh trap '' INT; echo $$; sleep 60", lambda: request(skc, "interrupt_request", {}, channel="control")
    )
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert 1.5 <= took < 8, f"took {took:.1f}s: SIGKILL comes 2 s after SIGINT"
    time.sleep(0.3)
    assert group_members(pid) == []


def test_shutdown_stops_a_running_command(tmp_path: Path):
    handle = ArgsKernel(tmp_path / "kernel", ["--allow-shell"])
    kc = handle.kc
    msg_id = kc.execute("%sh trap '' INT TERM; echo $$; sleep 60")
    first = wait_iopub(kc, lambda m: parent_is(msg_id)(m) and m["msg_type"] == "stream")
    pid = int(first["content"]["text"])
    started = time.monotonic()
    handle.close()  # a shutdown_request; raises if the kernel did not exit 0
    assert time.monotonic() - started < 10
    time.sleep(0.3)
    assert group_members(pid) == []


def test_sh_timeout(tmp_path: Path):
    handle = ArgsKernel(tmp_path / "kernel", ["--allow-shell", "--shell-timeout", "1"])
    try:
        started = time.monotonic()
        assert error(handle.kc, "%sh sleep 30") == (
            "TimeoutError",
            "the shell command ran longer than 1 s and was stopped (--shell-timeout sets the limit)",
        )
        assert time.monotonic() - started < 6
        assert stream_text(ok(handle.kc, "%sh echo quick")) == "quick\n"
    finally:
        handle.close()


def test_sh_background_job_does_not_hold_the_cell(skc):
    started = time.monotonic()
    msgs = ok(skc, "%sh (sleep 5; echo late) & echo now")
    assert stream_text(msgs) == "now\n"
    assert time.monotonic() - started < 4


def test_sh_does_not_block_other_connections(shell):
    a, b = shell.kc, shell.new_client()
    slow = a.execute("%sh sleep 2; echo slow")
    time.sleep(0.3)
    started = time.monotonic()
    assert stream_text(ok(b, "%sh echo fast")) == "fast\n"
    assert time.monotonic() - started < 1.5
    assert get_reply(a, slow)["content"]["status"] == "ok"


# --- %env --------------------------------------------------------------------------------------------


def test_env_set_show_unset(shell):
    kc = shell.kc
    assert stream_text(ok(kc, "%env KL_E2E_VAR=hello world")) == "env: KL_E2E_VAR=hello world\n"
    assert stream_text(ok(kc, "%env KL_E2E_VAR")) == "hello world\n"
    # The whole kernel's environment: children and other connections see it.
    assert stream_text(ok(kc, "%sh echo \"[$KL_E2E_VAR]\"")) == "[hello world]\n"
    other = shell.new_client()
    assert stream_text(ok(other, "%env KL_E2E_VAR")) == "hello world\n"
    assert stream_text(ok(kc, "%env KL_E2E_VAR other")) == "env: KL_E2E_VAR=other\n"
    assert stream_text(ok(kc, "%env -u KL_E2E_VAR")) == "env: KL_E2E_VAR unset\n"
    assert error(kc, "%env KL_E2E_VAR") == ("KeyError", "the environment has no variable KL_E2E_VAR")


def test_env_hides_secrets(kc):
    assert stream_text(ok(kc, "%env MY_API_TOKEN=abc123")) == "env: MY_API_TOKEN=<hidden>\n"
    ok(kc, "%env KL_PLAIN=visible")
    listing = stream_text(ok(kc, "%env"))
    lines = listing.splitlines()
    assert "MY_API_TOKEN=<hidden>" in lines
    assert "KL_PLAIN=visible" in lines
    assert "abc123" not in listing
    names = [line.split("=", 1)[0] for line in lines if re.match(r"[A-Za-z_][A-Za-z0-9_]*=", line)]
    assert names == sorted(names)
    home = os.environ.get("HOME")
    if home:
        assert f"HOME={home}" in lines


def test_env_bad_names(kc):
    assert error(kc, "%env 1BAD=x") == (
        "UsageError",
        "%env takes NAME, NAME=VALUE or -u NAME; \"1BAD\" is not a variable name",
    )
    assert error(kc, "%env -u a-b")[0] == "UsageError"


# --- %time -------------------------------------------------------------------------------------------

WALL = re.compile(r"Wall time: (\d+(?:\.\d+)?) (s|ms|\u00b5s)\n")


def seconds(text: str) -> float:
    m = WALL.fullmatch(text)
    assert m, f"not a wall time: {text!r}"
    return float(m.group(1)) * {"s": 1, "ms": 1e-3, "\u00b5s": 1e-6}[m.group(2)]


def test_time_line(kc):
    msgs = ok(kc, "%time %sleep 0.3")
    assert 0.3 <= seconds(stream_text(msgs)) < 5


def test_time_cell_runs_its_body_as_a_cell(kc):
    msgs = ok(kc, "%%time\n%echo a\n%sleep 0.2\n%echo b\n")
    text = stream_text(msgs)
    assert text.startswith("a\nb\n")
    assert 0.2 <= seconds(text[4:]) < 5


def test_time_reports_the_time_of_a_failing_cell(kc):
    reply, msgs = execute(kc, "%%time\n%echo a\n%nosuchmagic\n%echo never")
    assert reply["content"]["ename"] == "UnknownMagic"
    text = stream_text(msgs)
    assert text.startswith("a\nWall time: ")
    seconds(text[2:])


def test_time_usage(kc):
    assert error(kc, "%time") == ("UsageError", "%time takes a statement, e.g. %time SELECT count(*) FROM t")
    assert error(kc, "%%time -v\n%echo x") == (
        "UsageError",
        "%%time takes no arguments: the cell body is what it times",
    )
    ename, evalue = error(kc, "%time " * 12 + "%echo deep")
    assert ename == "RecursionError"
    assert evalue == "magics nest more than 8 deep (such as %time inside %%time)"
    assert stream_text(ok(kc, "%time %time %echo nested")).startswith("nested\nWall time: ")


def test_time_is_interruptible(kc):
    msg_id = kc.execute("%%time\n%sleep 30")
    time.sleep(0.5)
    assert request(kc, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    reply = get_reply(kc, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"


def test_time_sh(skc):
    msgs = ok(skc, "%%time\n%%sh\necho inner")
    # A cell magic inside %%time's body takes the rest of the body.
    assert stream_text(msgs).startswith("inner\nWall time: ")


# --- %history ----------------------------------------------------------------------------------------


def test_history_of_this_connection(kernel):
    kc = kernel.kc
    ok(kc, "%echo one")
    ok(kc, "%%html\n<b>two</b>")
    ok(kc, "%echo three")
    assert stream_text(ok(kc, "%history")) == "   1: %echo one\n   2: %%html\n      <b>two</b>\n   3: %echo three\n"
    assert stream_text(ok(kc, "%history -n 1")) == "   4: %history\n"
    assert stream_text(ok(kc, "%history -n 2 echo")) == "   1: %echo one\n   3: %echo three\n"
    assert stream_text(ok(kc, "%history nothing-matches")) == ""
    # Another connection has its own session; -g reaches this user's sessions only
    # (new_client connects as another user, "e2e-extra").
    other = kernel.new_client()
    ok(other, "%echo from the other one")
    assert "other one" not in stream_text(ok(kc, "%history"))
    assert stream_text(ok(kc, "%history -g other one")) == ""
    found = stream_text(ok(other, "%history -g other one"))
    assert re.fullmatch(r"\d+/1: %echo from the other one\n", found), found
    assert error(kc, "%history -n zero") == ("UsageError", "%history: -n takes a number of entries from 1 to 100000")


def test_history_when_the_kernel_keeps_none(tmp_path: Path):
    handle = ArgsKernel(tmp_path / "kernel", ["--no-history"])
    try:
        assert error(handle.kc, "%history") == (
            "HistoryError",
            "no history: the kernel keeps none (--no-history) or could not open its history file",
        )
    finally:
        handle.close()


# --- input when the client allows none ---------------------------------------------------------------


def test_input_magics_without_stdin(kc):
    assert error(kc, "%input Name?", allow_stdin=False) == (
        "StdinNotImplementedError",
        "this cell asks for input, but the client does not accept input requests (allow_stdin is false)",
    )
    # Nothing was sent on stdin, and the connection goes on.
    assert stream_text(ok(kc, "%echo fine")) == "fine\n"
