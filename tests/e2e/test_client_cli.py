"""The client commands on a running kernel (no Spark): `kindling exec`, `kindling call` and
`kindling console` (driven through a pseudo-terminal), all built on libkindling-client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from e2e_support import TIMEOUT, KernelHandle, kindling_binary


def run(*args: str, stdin: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kindling_binary()), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def conn(kernel: KernelHandle) -> str:
    return kernel.km.connection_file


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- exec ------------------------------------------------------------------------------------


def test_exec_code(conn):
    result = run("exec", "--existing", conn, "-c", "%echo hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"


def test_exec_outputs_of_each_kind(conn):
    result = run(
        "exec", "--existing", conn,
        "-c", "%echo out\n%echo --stderr err\n%truncation",
        "-c", "%%html\n<b>bold</b>",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # stdout stream, then the execute_result's text/plain, then the display (HTML only: as is).
    assert result.stdout == "out\nTruncation: on\n<b>bold</b>\n"
    assert result.stderr == "err\n"


def test_exec_file_with_cell_separators(conn, tmp_path):
    script = tmp_path / "cells.sql"
    script.write_text("%echo one\n-- %% the second cell\n%echo two\n%truncation\n--  %%\n\n")
    result = run("exec", "--existing", conn, "--file", str(script), "--format", "json")
    assert result.returncode == 0, result.stderr
    msgs = json_lines(result.stdout)
    assert [(m["cell"], m["msg_type"]) for m in msgs] == [
        (0, "stream"),
        (0, "execute_reply"),
        (1, "stream"),
        (1, "execute_result"),
        (1, "execute_reply"),
    ]
    assert msgs[2]["content"] == {"name": "stdout", "text": "two\n"}
    assert msgs[3]["content"]["data"]["text/plain"] == "Truncation: on"
    assert msgs[4]["content"]["status"] == "ok"
    # --one-cell keeps the file whole: the separator is then just a SQL comment line.
    result = run("exec", "--existing", conn, "--file", str(script), "--one-cell", "--format", "json")
    assert {m["cell"] for m in json_lines(result.stdout)} == {0}


def test_exec_file_from_stdin(conn):
    result = run("exec", "--existing", conn, "--file", "-", stdin="%echo piped\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "piped\n"


def test_exec_error_exit_code_and_stop(conn):
    result = run("exec", "--existing", conn, "-c", "%echo first", "-c", "%nosuchmagic", "-c", "%echo never")
    assert result.returncode == 1
    assert result.stdout == "first\n"
    assert "UnknownMagic" in result.stderr and "nosuchmagic" in result.stderr
    assert "\x1b[" not in result.stderr, "no colour codes when stderr is not a terminal"
    result = run("exec", "--existing", conn, "--keep-going", "-c", "%nosuchmagic", "-c", "%echo after")
    assert result.returncode == 1
    assert result.stdout == "after\n"


def test_exec_json_error(conn):
    result = run("exec", "--existing", conn, "--format", "json", "-c", "%nosuchmagic")
    assert result.returncode == 1
    msgs = json_lines(result.stdout)
    assert [m["msg_type"] for m in msgs] == ["error", "execute_reply"]
    assert msgs[0]["content"]["ename"] == "UnknownMagic"
    assert msgs[1]["content"]["status"] == "error"


def test_exec_input_from_stdin(conn):
    result = run("exec", "--existing", conn, "-c", "%input Name?", stdin="Ada\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("you said: Ada\n")


def test_exec_help_page(conn):
    result = run("exec", "--existing", conn, "-c", "%help echo")
    assert result.returncode == 0, result.stderr
    assert "%echo [--stderr] TEXT" in result.stdout


def test_exec_sigint_interrupts_the_cell(conn):
    proc = subprocess.Popen(
        [str(kindling_binary()), "exec", "--existing", conn, "-c", "%sleep 30"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert time.monotonic() - start < 10, "the interrupt ended the 30 s sleep"
    assert proc.returncode == 1
    assert "KeyboardInterrupt" in err


def test_exec_timeout_interrupts(conn):
    start = time.monotonic()
    result = run("exec", "--existing", conn, "--timeout", "1", "-c", "%sleep 30")
    assert result.returncode == 3
    assert "did not finish within 1.0 s" in result.stderr
    assert time.monotonic() - start < 10
    # The kernel was interrupted: it runs the next cell at once.
    result = run("exec", "--existing", conn, "--timeout", "10", "-c", "%echo free")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "free\n"


def test_exec_connection_problems(tmp_path):
    result = run("exec", "--existing", str(tmp_path / "missing.json"), "-c", "%echo x")
    assert result.returncode == 3
    assert "missing.json" in result.stderr
    # A connection file whose kernel is gone: no answer within the connect timeout.
    dead = tmp_path / "dead.json"
    dead.write_text(json.dumps({
        "shell_port": 9, "iopub_port": 9, "stdin_port": 9, "control_port": 9, "hb_port": 9,
        "ip": "127.0.0.1", "key": "k", "transport": "tcp", "signature_scheme": "hmac-sha256",
    }))  # fmt: skip
    start = time.monotonic()
    result = run("exec", "--existing", str(dead), "--connect-timeout", "1", "-c", "%echo x")
    assert result.returncode == 3
    assert "is it running" in result.stderr
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    "args",
    [
        ("exec", "-c", "%echo x"),  # no --existing
        ("exec", "--existing", "f.json"),  # nothing to run
        ("exec", "--existing", "f.json", "--format", "yaml", "-c", "x"),
        ("exec", "--existing", "f.json", "--timeout", "soon", "-c", "x"),
        ("call", "--existing", "f.json"),  # no --target
        ("call", "--existing", "f.json", "--target", "t", "--msg", "[1]"),
        ("console",),
    ],
)
def test_usage_errors(args):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip()


@pytest.mark.parametrize("command", ["exec", "console", "call"])
def test_help(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: kindling " + command)
    assert "--existing" in result.stdout


# --- call ------------------------------------------------------------------------------------


def test_call_echo_json(conn):
    result = run(
        "call", "--existing", conn, "--target", "kindling.echo",
        "--open-data", '{"sql": "unused"}',
        "--msg", '{"a": 1}', "--msg", '{"b": [1, 2.5, "x", null, true]}',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"a": 1}, {"b": [1, 2.5, "x", None, True]}]


def test_call_echo_msgpack(conn):
    value = {"row": [1, -2, 2.5, "text", None, False, {"nested": [3]}]}
    result = run(
        "call", "--existing", conn, "--target", "kindling.echo", "--msgpack", "--msg", json.dumps(value)
    )
    assert result.returncode == 0, result.stderr
    # The echo sends the msgpack buffer back; the CLI decodes it.
    assert json_lines(result.stdout) == [value]


def test_call_many_messages_from_a_file(conn, tmp_path):
    msgs = tmp_path / "msgs.jsonl"
    msgs.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(200)))
    result = run("call", "--existing", conn, "--target", "kindling.echo", "--msgs-from", str(msgs))
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"i": i} for i in range(200)]


def test_call_unknown_target(conn):
    result = run("call", "--existing", conn, "--target", "no.such.target", "--msg", "{}")
    assert result.returncode == 1
    assert "closed the comm" in result.stderr


# --- console ---------------------------------------------------------------------------------


def spawn_console(conn: str, history: Path) -> pexpect.spawn:
    child = pexpect.spawn(
        str(kindling_binary()),
        ["console", "--existing", conn, "--history-file", str(history)],
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 200),
    )
    child.expect(r"In \[1\]: ")
    return child


def test_console_cells_interrupt_and_history(conn, tmp_path):
    history = tmp_path / "history"
    child = spawn_console(conn, history)
    try:
        # A line magic runs at once.
        child.sendline("%echo hi there")
        child.expect("hi there\r\n")
        child.expect(r"In \[2\]: ")
        # A cell magic spans lines and ends with a blank line.
        child.sendline("%%html")
        child.expect(r"\.\.\.: ")
        child.sendline("<i>x</i>")
        child.expect(r"\.\.\.: ")
        child.sendline("")
        child.expect(r"<i>x</i>\r\n")
        child.expect(r"In \[3\]: ")
        # SQL continues until a line ends with ";" (no Spark here: it fails, as one cell).
        child.sendline("SELECT 1")
        child.expect(r"\.\.\.: ")
        child.sendline("FROM t;")
        child.expect("SparkConnect")
        child.expect(r"In \[4\]: ")
        # Ctrl-C while a cell runs interrupts it through the control channel.
        child.sendline("%sleep 30")
        time.sleep(1.5)
        start = time.monotonic()
        child.sendintr()
        child.expect("KeyboardInterrupt")
        child.expect(r"In \[5\]: ")
        assert time.monotonic() - start < 10
        # Ctrl-C at the prompt drops the line being typed.
        child.send("half a line")
        time.sleep(0.3)
        child.sendintr()
        child.expect(r"In \[5\]: ")
        child.sendline("%echo still alive")
        child.expect("still alive\r\n")
        child.expect(r"In \[6\]: ")
        # Ctrl-D leaves.
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    saved = history.read_text()
    assert "%echo\\040hi\\040there" in saved or "%echo hi there" in saved
    assert "%sleep" in saved


def test_console_input_and_completion(conn, tmp_path):
    child = spawn_console(conn, tmp_path / "history")
    try:
        child.sendline("%input Your name?")
        child.expect(r"Your name\?")
        child.sendline("Grace")
        child.expect("you said: Grace")
        child.expect(r"In \[2\]: ")
        # Tab asks the kernel for completions: "%ech" becomes "%echo " (the terminal only shows
        # the redrawn tail), which the output proves ("%echdone" would be an unknown magic).
        child.send("%ech\t")
        time.sleep(0.5)
        child.sendline("done")
        child.expect("\r\ndone\r\n")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


# --- CurveZMQ --------------------------------------------------------------------------------


def test_exec_over_curve(tmp_path):
    """A kernel whose connection file carries a CurveZMQ keypair (JEP 145) accepts only encrypted
    clients; exec reads the keys from the same file."""
    import zmq

    if not zmq.has("curve"):
        pytest.skip("libzmq without CurveZMQ")
    public, secret = (k.decode() for k in zmq.curve_keypair())
    conn = tmp_path / "curve.json"
    conn.write_text(json.dumps({
        "transport": "ipc", "ip": str(tmp_path / "k"), "shell_port": 1, "iopub_port": 2,
        "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": "curve-test",
        "signature_scheme": "hmac-sha256", "curve_publickey": public, "curve_secretkey": secret,
    }))  # fmt: skip
    log = open(tmp_path / "kernel.log", "wb")
    kernel = subprocess.Popen(
        [str(kindling_binary()), "kernel", "-f", str(conn), "--no-history", "--spark-remote", "sc://127.0.0.1:9"],
        stdout=log,
        stderr=log,
    )
    try:
        result = run("exec", "--existing", str(conn), "-c", "%echo sealed")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "sealed\n"
        # Another server key: the handshake fails and nothing gets through.
        wrong = json.loads(conn.read_text())
        wrong["curve_publickey"], wrong["curve_secretkey"] = (k.decode() for k in zmq.curve_keypair())
        bad = tmp_path / "wrong.json"
        bad.write_text(json.dumps(wrong))
        result = run("exec", "--existing", str(bad), "--connect-timeout", "1.5", "-c", "%echo no")
        assert result.returncode == 3
        assert result.stdout == ""
    finally:
        kernel.terminate()
        kernel.wait(timeout=TIMEOUT)
        log.close()
