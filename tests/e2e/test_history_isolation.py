"""History isolation between tenants: connections of different users on one kernel never see each
other's inputs (history_request tail, search and range, %history and %history -g); connections of
the same user do, across a kernel restart too; --shared-session shares everything."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.session import Session

from e2e_support import TIMEOUT, KernelHandle, execute, get_reply, request, stream_text


class Users:
    """Connections to one kernel, each with a username of its own choosing."""

    def __init__(self, kernel: KernelHandle):
        self.kernel = kernel
        self.clients: list[BlockingKernelClient] = []

    def connect(self, username: str) -> BlockingKernelClient:
        km = self.kernel.km
        session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme, username=username)
        kc = km.client(session=session)
        kc.start_channels()
        self.clients.append(kc)
        kc.wait_for_ready(timeout=TIMEOUT)
        return kc

    def close(self) -> None:
        for kc in self.clients:
            kc.stop_channels()


@pytest.fixture
def users(kernel: KernelHandle) -> Iterator[Users]:
    u = Users(kernel)
    try:
        yield u
    finally:
        u.close()


@pytest.fixture
def shared_kernel(tmp_path: Path) -> Iterator[KernelHandle]:
    handle = KernelHandle(tmp_path / "shared", extra_args=["--shared-session"])
    try:
        yield handle
    finally:
        handle.close()


def run(kc: BlockingKernelClient, code: str) -> str:
    reply, msgs = execute(kc, code)
    assert reply["content"]["status"] == "ok", reply["content"]
    return stream_text(msgs)


def history(kc: BlockingKernelClient, access: str, **fields: Any) -> list[list[Any]]:
    content = {"hist_access_type": access, "raw": True, "output": False, **fields}
    reply = request(kc, "history_request", content)["content"]
    assert reply["status"] == "ok", reply
    return reply["history"]


def inputs(entries: list[list[Any]]) -> list[str]:
    return [e[2] for e in entries]


def everything(kc: BlockingKernelClient) -> list[str]:
    """Every input kc can reach by any means: tail, search, %history -g (newest first)."""
    seen = inputs(history(kc, "tail", n=1000)) + inputs(history(kc, "search", pattern="*", n=0))
    listing = run(kc, "%history -g -n 1000")
    seen += [re.sub(r"^\s*\d+/\d+: ", "", line) for line in listing.splitlines()]
    return seen


def test_each_user_sees_only_their_own_history(kernel: KernelHandle, users: Users):
    tag = uuid.uuid4().hex[:10]
    alice = users.connect("alice")
    bob = users.connect("bob")
    run(alice, f"%echo alice secret {tag}")
    run(alice, f"%echo alice second {tag}")
    run(bob, f"%echo bob secret {tag}")
    alice_cells = [f"%echo alice secret {tag}", f"%echo alice second {tag}"]
    bob_cells = [f"%echo bob secret {tag}"]

    # tail and search: each user's own inputs only
    assert inputs(history(alice, "tail", n=10)) == alice_cells
    assert inputs(history(bob, "tail", n=10)) == bob_cells
    assert inputs(history(alice, "search", pattern=f"*secret {tag}", n=10)) == alice_cells[:1]
    assert inputs(history(bob, "search", pattern=f"*secret {tag}", n=10)) == bob_cells
    assert inputs(history(bob, "search", pattern="*alice*", n=0, unique=True)) == []

    # range: session 0 is one's own; counting back skips the other users' sessions, and another
    # user's session asked for by number gives nothing
    alice_session = history(alice, "tail", n=1)[0][0]
    bob_session = history(bob, "tail", n=1)[0][0]
    assert bob_session > alice_session
    assert inputs(history(alice, "range", session=0, start=1, stop=0)) == alice_cells
    assert history(bob, "range", session=-1, start=1, stop=0) == []
    assert history(bob, "range", session=alice_session, start=1, stop=0) == []
    assert history(alice, "range", session=bob_session, start=1, stop=0) == []

    # %history and %history -g
    assert run(bob, "%history") == f"   1: %echo bob secret {tag}\n"
    assert "alice" not in run(bob, "%history -g")
    assert "bob" not in run(alice, "%history -g -n 1000")
    found = run(alice, f"%history -g secret {tag}")
    assert re.fullmatch(rf"{alice_session}/1: %echo alice secret {tag}\n", found), found

    # nothing of either reaches a third user (the kernel fixture's own client is another user too)
    carol = users.connect("carol")
    assert not [i for i in everything(carol) if tag in i]
    assert not [i for i in everything(kernel.kc) if tag in i]

    # the same user on another connection sees their earlier session, and nothing of bob's
    alice2 = users.connect("alice")
    seen = everything(alice2)
    assert set(alice_cells) <= set(seen)
    assert not [i for i in seen if "bob" in i]
    assert inputs(history(alice2, "range", session=-1, start=1, stop=3)) == alice_cells
    assert history(alice2, "range", session=bob_session, start=1, stop=0) == []


def test_subshells_belong_to_their_connections_user(users: Users):
    tag = uuid.uuid4().hex[:10]
    alice = users.connect("alice")
    bob = users.connect("bob")
    sub = request(alice, "create_subshell_request", {}, channel="control")["content"]["subshell_id"]
    msg = alice.session.msg("execute_request", {"code": f"%echo from the subshell {tag}", "silent": False,
                                                "store_history": True, "user_expressions": {},
                                                "allow_stdin": False, "stop_on_error": True})
    msg["header"]["subshell_id"] = sub
    alice.shell_channel.send(msg)
    assert get_reply(alice, msg["header"]["msg_id"])["content"]["status"] == "ok"
    assert f"%echo from the subshell {tag}" in inputs(history(alice, "search", pattern=f"*{tag}*", n=0))
    assert history(bob, "search", pattern=f"*{tag}*", n=0) == []
    assert tag not in run(bob, "%history -g")


def test_shared_session_shares_history(shared_kernel: KernelHandle):
    tag = uuid.uuid4().hex[:10]
    users = Users(shared_kernel)
    try:
        alice = users.connect("alice")
        bob = users.connect("bob")
        run(alice, f"%echo alice shared {tag}")
        run(bob, f"%echo bob shared {tag}")
        want = [f"%echo alice shared {tag}", f"%echo bob shared {tag}"]
        for kc in (alice, bob):
            assert inputs(history(kc, "search", pattern=f"%echo *shared {tag}", n=0)) == want
            assert inputs(history(kc, "tail", n=2)) == want
        alice_session, bob_session = (e[0] for e in history(bob, "tail", n=2))
        for kc in (alice, bob):
            listing = run(kc, f"%history -g shared {tag}")
            lines = [line.split(": ", 1)[1] for line in listing.splitlines()]
            assert [line for line in lines if line.startswith("%echo")] == want
        # another user's session, by number or counted back by number as IPython does
        assert bob_session > alice_session
        assert inputs(history(bob, "range", session=alice_session, start=1, stop=2)) == want[:1]
        back = alice_session - bob_session
        assert inputs(history(bob, "range", session=back, start=1, stop=2)) == want[:1]
    finally:
        users.close()


def test_history_survives_a_restart_for_the_same_user(kernel: KernelHandle, users: Users):
    tag = uuid.uuid4().hex[:10]
    alice = users.connect("alice")
    bob = users.connect("bob")
    run(alice, f"%echo alice before restart {tag}")
    run(bob, f"%echo bob before restart {tag}")
    before = kernel.process
    kernel.km.restart_kernel(now=False)
    assert before.wait(timeout=TIMEOUT) == 0
    for kc in (kernel.kc, alice, bob):
        kc.wait_for_ready(timeout=TIMEOUT)

    run(alice, "%echo alice after restart")
    assert inputs(history(alice, "search", pattern=f"*{tag}*", n=0)) == [f"%echo alice before restart {tag}"]
    assert inputs(history(alice, "range", session=-1, start=1, stop=0)) == [f"%echo alice before restart {tag}"]
    assert inputs(history(bob, "search", pattern=f"*{tag}*", n=0)) == [f"%echo bob before restart {tag}"]
    assert re.search(rf"\d+/1: %echo alice before restart {tag}\n", run(alice, "%history -g"))
    dave = users.connect("dave")
    assert history(dave, "search", pattern=f"*{tag}*", n=0) == []

    # the file stays IPython's: IPython reads it, and the owner is the session's remark
    from IPython.core.history import HistoryAccessor

    path = kernel.workdir / "history.sqlite"
    accessor = HistoryAccessor(hist_file=str(path))
    hits = list(accessor.search(f"*alice before restart {tag}"))
    assert [h[2] for h in hits] == [f"%echo alice before restart {tag}"]
    info = accessor.get_session_info(hits[0][0])
    assert info[0] == hits[0][0] and info[4] == "kindling:user=alice"
    accessor.db.close()
    with sqlite3.connect(path) as db:
        owners = {r[0] for r in db.execute("SELECT remark FROM sessions")}
    assert {"kindling:user=alice", "kindling:user=bob"} <= owners
