"""Magic plugins (include/kindling/magic.h): the example plugin loaded at start (--magic-plugin), from
a plugin directory and at run time (%load_magic), the errors of each way of loading, and every host
function through the test fixture plugin (tests/data/plugins/fixture_plugin.c, compiled here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

import e2e_support
from e2e_support import (
    KERNEL_NAME,
    REPO,
    TIMEOUT,
    KernelHandle,
    execute,
    get_reply,
    iopub_for,
    kindling_binary,
    of_type,
    plain_result,
    request,
    stream_text,
    wait_msg,
)

FIXTURE_SOURCE = REPO / "tests" / "data" / "plugins" / "fixture_plugin.c"


class ArgsKernel(KernelHandle):
    """A kernel started with extra command-line arguments (and optionally extra environment)."""

    def __init__(self, workdir: Path, extra_args: list[str], env: dict[str, str] | None = None):
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
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.km.start_kernel(stdout=self._log, stderr=self._log, env=full_env)
        self.kc = self.km.client()
        self._clients = [self.kc]
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=TIMEOUT)
        except RuntimeError:
            self.close(check=False)
            raise


def example_plugin() -> Path:
    path = kindling_binary().parent / "examples" / "kindling_example_magic.so"
    if not path.is_file():
        pytest.fail(f"the example plugin is not built: {path}", pytrace=False)
    return path


def build_fixture(out: Path, *defines: str) -> Path:
    """Compiles the fixture plugin (with FIXTURE_* macros) to out."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["cc", "-shared", "-fPIC", "-w", f"-I{REPO / 'include'}", *[f"-D{d}" for d in defines]]
    cmd += ["-o", str(out), str(FIXTURE_SOURCE)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture
def with_example(tmp_path: Path):
    handle = ArgsKernel(tmp_path / "kernel", ["--magic-plugin", str(example_plugin())])
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def loader(tmp_path: Path):
    """A kernel that may load plugins from cells (%load_magic needs --allow-shell)."""
    handle = ArgsKernel(tmp_path / "kernel", ["--allow-shell"])
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def fixture_so(tmp_path: Path) -> Path:
    return build_fixture(tmp_path / "plugins" / "fixture.so")


@pytest.fixture
def with_fixture(tmp_path: Path, fixture_so: Path):
    handle = ArgsKernel(tmp_path / "kernel", ["--magic-plugin", str(fixture_so), "--display-limit", "50"])
    try:
        yield handle
    finally:
        handle.close()


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


# --- the example plugin ------------------------------------------------------------------------


def check_example_magics(kc) -> None:
    assert stream_text(ok(kc, "%hello")) == "Hello, world!\n"
    assert stream_text(ok(kc, "%HELLO Ada Lovelace")) == "Hello, Ada Lovelace!\n"
    msgs = ok(kc, "%%upper\nabc <x> & y")
    shown = of_type(msgs, "display_data")
    assert len(shown) == 1
    assert shown[0]["content"]["data"] == {
        "text/plain": "ABC <X> & Y",
        "text/html": "<pre>ABC &lt;X&gt; &amp; Y</pre>",
    }
    assert of_type(msgs, "stream") == []


def test_example_loaded_at_start(with_example):
    kc = with_example.kc
    check_example_magics(kc)
    listing = plain_result(ok(kc, "%lsmagic"))
    line_magics, cell_magics = listing.split("Available cell magics:")
    assert "%hello" in line_magics.split() and "%rowcount" in line_magics.split()
    assert "%%upper" in cell_magics.split()
    assert "%load_magic" in line_magics.split()


def test_example_usage_and_help(with_example):
    kc = with_example.kc
    reply = request(kc, "inspect_request", {"code": "%rowcount", "cursor_pos": 3, "detail_level": 0})
    assert reply["content"]["found"]
    assert reply["content"]["data"]["text/plain"].startswith(
        "%rowcount TABLE\n\nCount the rows of TABLE on this connection's Spark session.")
    assert error(kc, "%rowcount") == ("UsageError", "%rowcount takes one table name, e.g. %rowcount db.events")
    assert error(kc, "%upper") == ("UsageError", "%upper is a cell magic: write it as %%upper")


def test_example_loaded_at_run_time(loader):
    kernel = loader
    kc = kernel.kc
    path = example_plugin()
    assert error(kc, "%hello")[0] == "UnknownMagic"
    msgs = ok(kc, f"%load_magic {path}")
    assert stream_text(msgs) == f"Loaded magic plugin {path}: %hello, %%upper, %rowcount\n"
    check_example_magics(kc)
    # Another connection sees the magics too: they are the kernel's.
    other = kernel.new_client()
    assert stream_text(ok(other, "%hello there")) == "Hello, there!\n"
    # Loading the same file again changes nothing.
    assert stream_text(ok(other, f"%load_magic {path}")) == f"{path} is already loaded\n"
    assert "%hello" in plain_result(ok(kc, "%lsmagic")).split()


def test_load_magic_relative_path(loader):
    """A bare file name means a file in the kernel's working directory, not a library search."""
    kc = loader.kc
    ename, evalue = error(kc, "%load_magic kindling_example_magic.so")
    assert ename == "PluginError"
    assert evalue.startswith("cannot load magic plugin kindling_example_magic.so: ./kindling_example_magic.so: ")


# --- errors when loading ---------------------------------------------------------------------------


def test_load_magic_needs_allow_shell(kernel):
    """A plugin is native code run as the kernel's user: like %sh, only with --allow-shell."""
    kc = kernel.kc
    assert error(kc, f"%load_magic {example_plugin()}") == (
        "PluginError",
        "%load_magic is disabled: a plugin runs native code as the kernel's user, so the kernel must "
        "be started with --allow-shell to load one from a cell (or load it at start with "
        "--magic-plugin or --plugin-dir)",
    )
    assert error(kc, "%hello")[0] == "UnknownMagic"


def test_load_magic_errors(loader, tmp_path: Path):
    kc = loader.kc
    assert error(kc, "%load_magic") == ("UsageError", "%load_magic takes the path of a magic plugin (a .so file)")
    assert error(kc, "%load_magic /nonexistent/plugin.so") == (
        "PluginError",
        "cannot load magic plugin /nonexistent/plugin.so: /nonexistent/plugin.so: cannot open shared "
        "object file: No such file or directory",
    )
    bad_abi = build_fixture(tmp_path / "bad_abi.so", "FIXTURE_ABI=999")
    assert error(kc, f"%load_magic {bad_abi}") == (
        "PluginError",
        f"cannot load magic plugin {bad_abi}: built for magic plugin ABI version 999, but this kernel "
        "has ABI version 1: rebuild the plugin against this kernel's include/kindling/magic.h",
    )
    not_plugin = tmp_path / "notes.so"
    not_plugin.write_text("not an ELF file\n")
    ename, evalue = error(kc, f"%load_magic {not_plugin}")
    assert ename == "PluginError" and evalue.startswith(f"cannot load magic plugin {not_plugin}: {not_plugin}: ")
    failing = build_fixture(tmp_path / "failing.so", "FIXTURE_INIT_FAILS")
    assert error(kc, f"%load_magic {failing}") == (
        "PluginError",
        f"cannot load magic plugin {failing}: its kindling_magic_plugin_init failed (returned 3)",
    )
    bad_name = build_fixture(tmp_path / "bad_name.so", "FIXTURE_BAD_NAME")
    ename, evalue = error(kc, f"%load_magic {bad_name}")
    assert evalue == (
        f"cannot load magic plugin {bad_name}: refused: the magic name \"bad-name\" may only hold "
        "letters, digits and '_' (%bad-name could never be typed)"
    )
    # None of the refused plugins left a magic behind.
    assert error(kc, "%fx_result")[0] == "UnknownMagic"
    # The kernel is fine.
    assert stream_text(ok(kc, "%echo alive")) == "alive\n"


def test_name_clash_is_refused_whole(loader, tmp_path: Path):
    kc = loader.kc
    example = example_plugin()
    ok(kc, f"%load_magic {example}")
    clash = build_fixture(tmp_path / "clash.so", "FIXTURE_CLASH")
    assert error(kc, f"%load_magic {clash}") == (
        "PluginError",
        f"cannot load magic plugin {clash}: %hello is already a magic, from the plugin {example}",
    )
    assert error(kc, "%fx_result")[0] == "UnknownMagic"
    assert stream_text(ok(kc, "%hello")) == "Hello, world!\n"


def start_failure(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Runs the kernel on a fresh connection file with args; its exit status and stderr."""
    conn = tmp_path / "conn.json"
    write_connection_file(str(conn), ip="127.0.0.1", key=b"k")
    proc = subprocess.run(
        [str(kindling_binary()), "kernel", "-f", str(conn), "--no-history", *args],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    return proc.returncode, proc.stderr


def test_a_named_plugin_that_fails_stops_the_start(tmp_path: Path):
    rc, err = start_failure(tmp_path, "--magic-plugin", "/nonexistent/plugin.so")
    assert rc == 2
    assert ("kindling: cannot load magic plugin /nonexistent/plugin.so: /nonexistent/plugin.so: cannot "
            "open shared object file: No such file or directory\n") in err
    bad_abi = build_fixture(tmp_path / "bad_abi.so", "FIXTURE_ABI=2")
    rc, err = start_failure(tmp_path, "--magic-plugin", str(example_plugin()), "--magic-plugin", str(bad_abi))
    assert rc == 2
    assert f"kindling: cannot load magic plugin {bad_abi}: built for magic plugin ABI version 2" in err


def test_the_same_plugin_twice_at_start_loads_once(tmp_path: Path):
    example = str(example_plugin())
    handle = ArgsKernel(tmp_path / "kernel", ["--magic-plugin", example, "--magic-plugin", example])
    try:
        assert stream_text(ok(handle.kc, "%hello")) == "Hello, world!\n"
    finally:
        handle.close()


@pytest.mark.parametrize("how", ["option", "env"])
def test_plugin_directory_skips_bad_files(tmp_path: Path, how: str):
    plugins = tmp_path / "plugins"
    build_fixture(plugins / "a_fixture.so")
    build_fixture(plugins / "b_bad_abi.so", "FIXTURE_ABI=7")
    (plugins / "c_broken.so").write_text("garbage")
    (plugins / "readme.txt").write_text("not a plugin, not even tried")
    if how == "option":
        handle = ArgsKernel(tmp_path / "kernel", ["--plugin-dir", str(plugins)])
    else:
        handle = ArgsKernel(tmp_path / "kernel", [], env={"KINDLING_PLUGIN_DIR": str(plugins)})
    try:
        assert plain_result(ok(handle.kc, "%fx_result")) == "42"
        log = handle.stderr_text()
        assert f"skipped: cannot load magic plugin {plugins}/b_bad_abi.so: built for magic plugin ABI version 7" in log
        assert f"skipped: cannot load magic plugin {plugins}/c_broken.so: " in log
        assert "readme.txt" not in log
    finally:
        handle.close()


# --- the host table, through the fixture plugin ----------------------------------------------------


def test_host_result_and_errors(with_fixture):
    kc = with_fixture.kc
    msgs = ok(kc, "%fx_result")
    results = of_type(msgs, "execute_result")
    assert len(results) == 1
    assert results[0]["content"]["data"] == {"text/plain": "42", "application/json": {"answer": 42}}
    assert error(kc, "%fx_error boom") == ("FixtureError", "failed with boom")
    assert error(kc, "%fx_fail") == ("MagicError", "%fx_fail failed")
    ename, evalue = error(kc, "%fx_badjson")
    assert ename == "PluginError" and evalue.startswith("the application/json output is not JSON: ")
    assert error(kc, "%fx_noplain") == ("PluginError", "an execute_result needs a text/plain item")
    # The first error stops the cell.
    reply, msgs = execute(kc, "%fx_error first\n%echo never")
    assert reply["content"]["evalue"] == "failed with first"
    assert stream_text(msgs) == ""


def test_host_streams(with_fixture):
    kc = with_fixture.kc
    assert stream_text(ok(kc, "%fx_both a  b")) == "user=ud line: a  b\n"
    assert stream_text(ok(kc, "%%fx_both\nline 1\nline 2\n")) == "user=ud cell: line 1\nline 2\n"
    assert stream_text(ok(kc, "%fx_bytes")) == "bad \ufffd byte\n"
    msgs = ok(kc, "%fx_log a line for the log")
    assert stream_text(msgs, "stderr") == "logged\n"
    assert "fixture.so: a line for the log" in with_fixture.stderr_text()


def test_host_options(with_fixture):
    kc = with_fixture.kc
    assert stream_text(ok(kc, "%fx_opts")) == "display_limit=50 truncation=1 param_x=(unset)\n"
    ok(kc, "%truncation off")
    assert stream_text(ok(kc, "%fx_opts")) == "display_limit=50 truncation=0 param_x=(unset)\n"
    # Per connection: another client still truncates.
    other = with_fixture.new_client()
    assert stream_text(ok(other, "%fx_opts")) == "display_limit=50 truncation=1 param_x=(unset)\n"


def test_host_param_from_set(with_fixture):
    kc = with_fixture.kc
    reply, _ = execute(kc, "%set x=it's 5")
    if reply["content"]["status"] != "ok":
        pytest.skip(f"%set is not available: {reply['content'].get('evalue')}")
    assert stream_text(ok(kc, "%fx_opts")) == "display_limit=50 truncation=1 param_x=it's 5\n"


def test_host_input(with_fixture):
    kc = with_fixture.kc
    msg_id = kc.execute("%fx_input", allow_stdin=True)
    req = wait_msg(kc, "stdin", lambda m: m["msg_type"] == "input_request")
    assert req["content"] == {"prompt": "name? ", "password": False}
    kc.input("Grace")
    assert get_reply(kc, msg_id)["content"]["status"] == "ok"
    assert stream_text(iopub_for(kc, msg_id)) == "got Grace\n"
    assert error(kc, "%fx_input", allow_stdin=False) == (
        "StdinNotImplementedError",
        "this cell asks for input, but the client does not accept input requests (allow_stdin is false)",
    )


def test_host_run_blocking_leaves_the_kernel_free(with_fixture):
    a = with_fixture.kc
    b = with_fixture.new_client()
    started = time.monotonic()
    slow = a.execute("%fx_block 2000")
    time.sleep(0.3)
    reply, msgs = execute(b, "%echo meanwhile")
    assert reply["content"]["status"] == "ok" and stream_text(msgs) == "meanwhile\n"
    assert time.monotonic() - started < 1.5, "another connection waited for the blocking job"
    assert get_reply(a, slow)["content"]["status"] == "ok"
    assert stream_text(iopub_for(a, slow)) == "blocking returned 7\n"
    assert time.monotonic() - started >= 2.0


def test_host_sleep_is_interruptible(with_fixture):
    kc = with_fixture.kc
    assert stream_text(ok(kc, "%fx_sleep 10")) == "slept\n"
    msg_id = kc.execute("%fx_sleep 30000")
    time.sleep(0.5)
    started = time.monotonic()
    assert request(kc, "interrupt_request", {}, channel="control")["content"]["status"] == "ok"
    reply = get_reply(kc, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - started < 5


def test_host_run_sql_reports_spark_errors(with_fixture):
    """Without a reachable Spark the SQL a plugin runs fails like a SQL cell does."""
    kc = with_fixture.kc
    plain = execute(kc, "SELECT 1")[0]["content"]
    via_plugin = execute(kc, "%fx_sql SELECT 1")[0]["content"]
    assert plain["status"] == via_plugin["status"] == "error"
    assert via_plugin["ename"] == plain["ename"]


def test_plugin_magic_in_a_cell_with_others(with_fixture, tmp_path: Path):
    kc = with_fixture.kc
    msgs = ok(kc, "%echo before\n%fx_both x\n%echo after")
    assert stream_text(msgs) == "before\nuser=ud line: x\nafter\n"
    reply = request(kc, "execute_request", {"code": "%help", "silent": False})
    page = reply["content"]["payload"][0]["data"]["text/plain"]
    assert re.search(r"%fx_both ARGS, %%fx_both\s+line and cell", page)
