"""The kernel contract item by item: kernel_info, magics, errors, execute options, completion,
inspection and history, as a client sees them."""

from __future__ import annotations

import uuid

import pytest

from e2e_support import execute, iopub_for, of_type, plain_result, request, stream_text

LANGUAGE_INFO = {
    "name": "sql",
    "version": "",
    "mimetype": "text/x-sql",
    "file_extension": ".sql",
    "pygments_lexer": "sql",
    "codemirror_mode": "sql",
    "nbconvert_exporter": "script",
}


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_kernel_info(kc, channel):
    content = request(kc, "kernel_info_request", {}, channel=channel)["content"]
    assert content["status"] == "ok"
    assert content["protocol_version"] == "5.5"
    assert content["implementation"] == "kindling"
    assert content["implementation_version"] == "0.1.0"
    assert content["language_info"] == LANGUAGE_INFO
    assert isinstance(content["banner"], str) and content["banner"]
    assert isinstance(content["help_links"], list)
    assert isinstance(content["supported_features"], list)


# --- magics --------------------------------------------------------------------------------------


def test_echo_and_magic_names_ignore_case(kc):
    reply, msgs = execute(kc, "%ECHO Mixed Case")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "Mixed Case\n"


def test_echo_without_text_writes_a_newline(kc):
    assert stream_text(execute(kc, "%echo")[1]) == "\n"


def test_line_magics_on_several_lines(kc):
    _, msgs = execute(kc, "%echo one\n%echo two\n%echo --stderr three")
    assert stream_text(msgs) == "one\ntwo\n"
    assert stream_text(msgs, "stderr") == "three\n"


def test_lsmagic_lists_magics(kc):
    reply, msgs = execute(kc, "%lsmagic")
    text = plain_result(msgs)
    for name in ("echo", "html", "markdown", "javascript", "truncation", "showtypes", "showoutput",
                 "clear", "help", "sleep", "input", "lsmagic"):
        assert name in text, f"{name} missing from %lsmagic"
    assert "text/html" in of_type(msgs, "execute_result")[0]["content"]["data"]


@pytest.mark.parametrize(
    "code, mime, body",
    [
        ("%%html\n<i>x</i>", "text/html", "<i>x</i>"),
        ("%%javascript\nconsole.log(1);", "application/javascript", "console.log(1);"),
        ("%%markdown\n*md*", "text/markdown", "*md*"),
    ],
)
def test_cell_magics_display_their_body(kc, code, mime, body):
    reply, msgs = execute(kc, code)
    assert reply["content"]["status"] == "ok"
    shown = of_type(msgs, "display_data")
    assert len(shown) == 1
    assert shown[0]["content"]["data"][mime].strip() == body


@pytest.mark.parametrize(
    "name, label, default, other",
    [("truncation", "Truncation", "on", "off"), ("showtypes", "ShowTypes", "off", "on"),
     ("showoutput", "ShowOutput", "on", "off")],
)
def test_display_option_magics(kc, name, label, default, other):
    assert plain_result(execute(kc, f"%{name}")[1]) == f"{label}: {default}"
    reply, msgs = execute(kc, f"%{name} {other}")
    assert reply["content"]["status"] == "ok"
    if name != "showoutput":  # turning output off may hide its own confirmation
        assert stream_text(msgs) == f"{label} is now {other}\n"
    assert plain_result(execute(kc, f"%{name}")[1]) == f"{label}: {other}"


def test_display_option_bad_argument(kc):
    reply, msgs = execute(kc, "%truncation sideways")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "UsageError"
    assert plain_result(execute(kc, "%truncation")[1]) == "Truncation: on"


def test_showoutput_off_hides_streams_not_errors(kc):
    execute(kc, "%showoutput off")
    reply, msgs = execute(kc, "%echo hidden")
    assert reply["content"]["status"] == "ok"
    assert of_type(msgs, "stream") == []
    reply, msgs = execute(kc, "%nosuch")
    assert reply["content"]["status"] == "error"
    assert len(of_type(msgs, "error")) == 1
    execute(kc, "%showoutput on")
    assert stream_text(execute(kc, "%echo visible")[1]) == "visible\n"


def test_clear(kc):
    reply, msgs = execute(kc, "%clear")
    assert reply["content"]["status"] == "ok"
    clears = of_type(msgs, "clear_output")
    assert len(clears) == 1 and clears[0]["content"]["wait"] is False


def test_help_for_one_magic(kc):
    reply, _ = execute(kc, "%help echo")
    pages = reply["content"]["payload"]
    assert len(pages) == 1 and pages[0]["source"] == "page" and pages[0]["start"] == 0
    text = pages[0]["data"]["text/plain"]
    assert "echo" in text and "stderr" in text


def test_help_for_all_magics(kc):
    reply, _ = execute(kc, "%help")
    text = reply["content"]["payload"][0]["data"]["text/plain"]
    assert all(name in text for name in ("echo", "truncation", "sleep", "html"))


def test_sleep_finishes(kc):
    reply, msgs = execute(kc, "%sleep 1\n%echo awake")
    assert reply["content"]["status"] == "ok"
    assert stream_text(msgs) == "awake\n"


# --- errors --------------------------------------------------------------------------------------


def test_unknown_magic_suggests_a_near_name(kc):
    reply, msgs = execute(kc, "%lsmagc")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "UnknownMagic"
    assert "%lsmagic" in reply["content"]["evalue"]
    errors = of_type(msgs, "error")
    assert len(errors) == 1 and errors[0]["content"]["ename"] == "UnknownMagic"


def test_unknown_magic_far_from_any_name(kc):
    reply, _ = execute(kc, "%qqqqqqqqqqqq")
    assert reply["content"]["ename"] == "UnknownMagic"
    assert "did you mean" not in reply["content"]["evalue"]


def test_sql_with_unreachable_spark_endpoint(kc):
    """SQL against an endpoint where nothing listens: a clear error naming it, and the kernel
    stays usable."""
    reply, msgs = execute(kc, "SELECT 1 AS one;")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "SparkConnectUNAVAILABLE"
    assert "sc://127.0.0.1:9" in reply["content"]["evalue"]
    assert isinstance(reply["content"]["traceback"], list)
    assert [m["content"]["ename"] for m in of_type(msgs, "error")] == ["SparkConnectUNAVAILABLE"]
    r, out = execute(kc, "%echo still here")
    assert r["content"]["status"] == "ok" and stream_text(out) == "still here\n"


def test_blank_cell_is_ok(kc):
    reply, msgs = execute(kc, "  \n\n")
    assert reply["content"]["status"] == "ok"
    assert of_type(msgs, "error") == []


# --- execute options -----------------------------------------------------------------------------


def test_user_expressions_are_not_implemented(kc):
    reply, _ = execute(kc, "%echo x", user_expressions={"a": "1+1", "b": "x"})
    exprs = reply["content"]["user_expressions"]
    assert set(exprs) == {"a", "b"}
    for value in exprs.values():
        assert value["status"] == "error"
        assert value["ename"] == "NotImplementedError"
        assert isinstance(value["evalue"], str)
        assert value["traceback"] == []


def test_silent_execution(kc):
    first = execute(kc, "%echo count me")[0]["content"]["execution_count"]
    reply, msgs = execute(kc, "%truncation", silent=True)
    assert reply["content"]["status"] == "ok"
    assert of_type(msgs, "execute_input") == []
    assert of_type(msgs, "execute_result") == []
    after = execute(kc, "%echo next")[0]["content"]["execution_count"]
    assert after == first + 1


def test_store_history_false(kc):
    tag = uuid.uuid4().hex[:10]
    first = execute(kc, "%echo one")[0]["content"]["execution_count"]
    reply, _ = execute(kc, f"%echo unrecorded {tag}", store_history=False)
    assert reply["content"]["status"] == "ok"
    after = execute(kc, "%echo two")[0]["content"]["execution_count"]
    assert after == first + 1
    hist = request(kc, "history_request",
                   {"hist_access_type": "search", "pattern": f"*{tag}*", "raw": True, "output": False})
    assert hist["content"]["history"] == []


def test_execution_count_in_execute_input_and_reply(kc):
    msg_id = kc.execute("%echo counted")
    msgs = iopub_for(kc, msg_id)
    inputs = of_type(msgs, "execute_input")
    assert len(inputs) == 1
    assert inputs[0]["content"]["code"] == "%echo counted"
    assert inputs[0]["content"]["execution_count"] >= 1


# --- is_complete, complete, inspect --------------------------------------------------------------


@pytest.mark.parametrize("code", ["SELECT 1", "SELECT 'open", "SELECT (1,"])
def test_incomplete_has_empty_indent(kc, code):
    content = request(kc, "is_complete_request", {"code": code})["content"]
    assert content == {"status": "incomplete", "indent": ""}


@pytest.mark.parametrize(
    "code, expected",
    [("%lsma", "%lsmagic"), ("%%mark", "%%markdown"), ("SELECT 1; SELE", "SELECT 1; SELECT"),
     ("select * fro", "select * from")],
)
def test_complete_replaces_the_word(kc, code, expected):
    content = request(kc, "complete_request", {"code": code, "cursor_pos": len(code)})["content"]
    assert content["status"] == "ok"
    start, end = content["cursor_start"], content["cursor_end"]
    assert end == len(code)
    results = {code[:start] + m + code[end:] for m in content["matches"]}
    assert expected in results


def test_complete_mid_text(kc):
    code = "%lsma\n%echo hi"
    content = request(kc, "complete_request", {"code": code, "cursor_pos": 5})["content"]
    assert "%lsmagic" in content["matches"]
    assert (content["cursor_start"], content["cursor_end"]) == (0, 5)


@pytest.mark.parametrize("cursor", [1, 4, 8])
def test_inspect_magic_anywhere_in_name(kc, cursor):
    content = request(kc, "inspect_request", {"code": "%lsmagic", "cursor_pos": cursor, "detail_level": 0})[
        "content"
    ]
    assert content["status"] == "ok"
    assert content["found"] is True
    assert "lsmagic" in content["data"]["text/plain"]


# --- history -------------------------------------------------------------------------------------


def test_history_with_output(kc):
    execute(kc, "%truncation")
    execute(kc, "%echo plain")
    hist = request(kc, "history_request", {"hist_access_type": "tail", "n": 2, "raw": True, "output": True})
    entries = hist["content"]["history"]
    assert [e[2][0] for e in entries] == ["%truncation", "%echo plain"]
    assert entries[0][2][1] in ("Truncation: on", None)
    assert all(len(e[2]) == 2 for e in entries)
