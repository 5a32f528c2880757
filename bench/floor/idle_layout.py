#!/usr/bin/env python3
"""Writes idle-layout.ld: the linker-script fragment that groups the code and read-only data an idle
kernel touches, so that they occupy a few pages of the binary instead of being spread over all
of it (see docs/idle-memory.md).

The kernel only needs a few dozen KiB of its own code and strings from start-up to an idle wait
after its first reply, but those bytes sit in every module (each registers magics, metrics,
options), and the kernel maps a file page into the process 64 KiB at a time around every page
touched (fault-around): spread out, 60 KiB of code kept about 400 KiB of the binary resident.

How: relinks the kindling binary of BUILD (configured with -ffunction-sections -fdata-sections, so
that each function and each function's strings are an input section of their own) with a link
map and without the current layout; runs it under valgrind's lackey tool, which reports every
memory access, through start-up, a kernel_info_request, an idle second and another request; maps every byte it
touched in the binary to the input section that holds it; and writes the sections as linker
script patterns, in their current order:

    .text.kl_idle     before .text     (the functions run, and assembly in plain .text)
    .rodata.kl_idle   after .eh_frame  (from a 64 KiB boundary on, so that no fault-around
                                        window covering it reaches cold read-only data)

A stale list is harmless: patterns that match nothing are ignored, and code that is not listed
stays where the default layout puts it; it only costs resident memory again. Re-run after large
changes to start-up or to the kernel_info path:

    .venv/bin/python bench/floor/idle_layout.py --build build-bench

Needs valgrind, and the Python packages of .venv (pyzmq, jupyter_client).
"""
from __future__ import annotations

import argparse
import bisect
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

REPO = Path(__file__).resolve().parents[2]
GRANULE = 4  # bits: touched addresses are kept at 16-byte granularity


def link_command(build: Path, out: Path, mapfile: Path) -> str:
    """The kindling link command of BUILD, writing out and mapfile, without a layout script."""
    cmds = subprocess.run(["ninja", "-C", str(build), "-t", "commands", "kindling"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    cmd = cmds[-1].strip()
    cmd = re.sub(r"^:\s*&&\s*", "", cmd)
    cmd = re.sub(r"\s*&&\s*:\s*$", "", cmd)
    args = [a for a in shlex.split(cmd) if "idle-layout.ld" not in a]
    i = args.index("-o")
    args[i + 1] = str(out)
    args.append(f"-Wl,-Map,{mapfile}")
    return shlex.join(args)


def read_trace(fd: int, granules: set[int], loads: set[int]) -> None:
    """Collects the addresses of lackey's "I/L/S/M addr,size" lines; loads gets those only read
    ("L"): the dynamic linker's relocation writes ("M") do not make data used."""
    with os.fdopen(fd, "r", errors="replace") as f:
        for line in f:
            k = line[:3].strip()
            if k not in ("I", "L", "S", "M"):
                continue
            comma = line.find(",", 3)
            if comma < 0:
                continue
            try:
                addr = int(line[3:comma], 16)
                size = int(line[comma + 1:])
            except ValueError:
                continue
            for a in range(addr >> GRANULE, ((addr + max(size, 1) - 1) >> GRANULE) + 1):
                granules.add(a)
                if k == "L":
                    loads.add(a)


def run_traced(binary: Path, workdir: Path, idle: float) -> tuple[set[int], set[int], int]:
    """Runs binary under lackey through two kernel_info requests idle seconds apart.

    Returns the touched 16-byte granules, those only read, and where the binary was loaded."""
    key = uuid.uuid4().hex
    cf, info = write_connection_file(fname=str(workdir / "conn.json"), ip="127.0.0.1",
                                     key=key.encode(), transport="tcp",
                                     signature_scheme="hmac-sha256")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-fd={w}", str(binary), "kernel",
         "-f", cf, "--no-history", "--spark-remote", "sc://127.0.0.1:9"],
        pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(workdir / "kernel.log", "wb"))  # noqa: SIM115 - lives as long as the child
    os.close(w)
    granules: set[int] = set()
    loads: set[int] = set()
    reader = threading.Thread(target=read_trace, args=(r, granules, loads))
    reader.start()
    session = Session(key=key.encode(), signature_scheme="hmac-sha256")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{info['shell_port']}")

    def kernel_info() -> None:
        sent = session.send(sock, "kernel_info_request", {})["header"]["msg_id"]
        deadline = time.monotonic() + 300
        while True:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("no kernel_info_reply from the traced kernel; see "
                                   f"{workdir / 'kernel.log'}")
            if sock.poll(100, zmq.POLLIN):
                _, msg = session.feed_identities(sock.recv_multipart())
                msg = session.deserialize(msg)
                if msg["parent_header"].get("msg_id") == sent:
                    return

    try:
        # The first request waits in the socket while the kernel starts (as bench/run.py sends
        # it); the second reaches a kernel idle on its poll handles. Each takes its own path
        # through the socket code, and both are what an idle kernel has run.
        kernel_info()
        time.sleep(idle)
        kernel_info()
        time.sleep(idle)
        base = None
        for line in open(f"/proc/{proc.pid}/maps", encoding="ascii"):
            f = line.split()
            if len(f) > 5 and f[5] == str(binary) and int(f[2], 16) == 0:
                base = int(f[0].split("-")[0], 16)
                break
        if base is None:
            raise RuntimeError("cannot find where the binary is mapped")
    finally:
        # Killed, not asked to stop: shutdown code must not count as idle code.
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sock.close()
        ctx.term()
        reader.join()
    return granules, loads, base


def input_sections(mapfile: Path) -> list[tuple[int, int, str, str]]:
    """(address, size, section, file) of every input section the link map places."""
    out = []
    pending = None
    for line in mapfile.read_text(errors="replace").splitlines():
        m = re.match(r"^ (\.\S+)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\.\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m:
            out.append((int(m.group(2), 16), int(m.group(3), 16), m.group(1), m.group(4)))
            pending = None
            continue
        m = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m and pending:
            out.append((int(m.group(1), 16), int(m.group(2), 16), pending, m.group(3)))
        pending = None
    return sorted(s for s in out if s[1] > 0 and s[0] > 0)


def file_pattern(path: str) -> str:
    """A linker-script file pattern for one input file: archive:member, or the object's name."""
    m = re.match(r"^(.*?)([^/]+\.a)\((.+)\)$", path)
    if m:
        return f"*{m.group(2)}:{m.group(3)}"
    return "*" + path.rsplit("/", 1)[-1]


def rodata_referenced(build: Path, used: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(file pattern, section) of every .rodata* section the given sections relocate to."""
    by_file: dict[str, dict[str, set[str]]] = {}  # archive or object -> member -> sections
    for path, secs in used.items():
        m = re.match(r"^(.*\.a)\((.+)\)$", path)
        by_file.setdefault(m.group(1) if m else path, {})[m.group(2) if m else ""] = secs
    out = set()
    for path, members in by_file.items():
        file = Path(path) if Path(path).is_absolute() else build / path
        if not file.exists():
            continue
        symtab = subprocess.run(["objdump", "-t", str(file)], capture_output=True,
                                text=True).stdout
        relocs = subprocess.run(["objdump", "-r", str(file)], capture_output=True,
                                text=True).stdout
        is_archive = path.endswith(".a")
        # symbol -> section, per member
        where: dict[str, dict[str, str]] = {}
        member = ""
        for line in symtab.splitlines():
            m = re.match(r"^(\S+):\s+file format", line)
            if m:
                member = m.group(1) if is_archive else ""
                continue
            m = re.match(r"^[0-9a-f]+ .{7} (\S+)\s+[0-9a-f]+\s+(\S+)$", line)
            if m:
                where.setdefault(member, {})[m.group(2)] = m.group(1)
        member, section = "", None
        for line in relocs.splitlines():
            m = re.match(r"^(\S+):\s+file format", line)
            if m:
                member = m.group(1) if is_archive else ""
                continue
            m = re.match(r"^RELOCATION RECORDS FOR \[(.+)\]:", line)
            if m:
                section = m.group(1) if m.group(1) in members.get(member, ()) else None
                continue
            f = line.split()
            if section is None or len(f) != 3 or not re.match(r"^[0-9a-f]+$", f[0]):
                continue
            sym = re.split(r"[+-]0x", f[2])[0]
            target = sym if sym.startswith(".rodata") else where.get(member, {}).get(sym, "")
            if target.startswith(".rodata"):
                name = f"{Path(path).name}({member})" if is_archive else path
                out.add((file_pattern(name), target))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(REPO / "build-bench"),
                    help="a configured build directory whose kindling target is up to date")
    ap.add_argument("--out", default=str(Path(__file__).with_name("idle-layout.ld")))
    ap.add_argument("--idle", type=float, default=1.0, help="seconds traced after the reply")
    args = ap.parse_args()
    build = Path(args.build).resolve()
    with tempfile.TemporaryDirectory(prefix="kl-idle-layout-") as tmp:
        workdir = Path(tmp)
        binary, mapfile = workdir / "kindling", workdir / "kindling.map"
        subprocess.run(link_command(build, binary, mapfile), shell=True, cwd=build, check=True)
        sections = input_sections(mapfile)
        if not any(name.startswith(".text.") for _, _, name, _ in sections):
            sys.exit("idle_layout: the objects have no per-function sections; configure with "
                     "-ffunction-sections -fdata-sections")
        granules, loads, base = run_traced(binary, workdir, args.idle)
    starts = [s[0] for s in sections]
    touched: dict[tuple[int, int, str, str], None] = {}
    for g in sorted(granules):
        vaddr = (g << GRANULE) - base
        i = bisect.bisect_right(starts, vaddr) - 1
        if i >= 0 and sections[i][0] <= vaddr < sections[i][0] + sections[i][1]:
            if sections[i][2].startswith(".data") and g not in loads:
                continue
            touched[sections[i]] = None
    text, rodata = [], []
    used: dict[str, set[str]] = {}  # input file (as the map names it) -> code and data used
    for addr, size, name, path in sorted(touched):
        pattern = file_pattern(path)
        if name == ".text" or name.startswith(".text."):
            text.append((pattern, name, size))
            used.setdefault(path, set()).add(name)
        elif name.startswith(".rodata"):
            rodata.append((pattern, name, size))
        elif name.startswith(".data"):
            # Not moved (relocated data is written at start-up anyway), but the strings its
            # tables point to are read.
            used.setdefault(path, set()).add(name)
    # The linker keeps one copy of equal strings, and the compiler puts a literal that several
    # functions use in the section of the first: the copy the trace saw may not be the one a
    # function reads once the layout changes. So the read-only data that the code run and the
    # tables read refer to (their relocations) goes along, whatever the trace saw of it.
    listed = {(p, n) for p, n, _ in rodata}
    sizes = {(file_pattern(path), name): size for _, size, name, path in sections}
    for pattern, name in sorted(rodata_referenced(build, used)):
        if (pattern, name) not in listed:
            rodata.append((pattern, name, sizes.get((pattern, name), 0)))
            listed.add((pattern, name))
    lines = [
        "/* Generated by bench/floor/idle_layout.py: the code and read-only data the kernel",
        " * touches from start-up to an idle wait after its first kernel_info_reply, grouped so",
        f" * that they fill few pages ({sum(s for *_, s in text)} bytes of code, "
        f"{sum(s for *_, s in rodata)} of data). Re-run the script",
        " * after large changes; stale entries only cost resident memory, never correctness. */",
        "SECTIONS",
        "{",
        "  .text.kl_idle :",
        "  {",
    ]
    lines += [f"    {p}({n})" for p, n, _ in text]
    lines += ["  }", "}", "INSERT BEFORE .text;", "", "SECTIONS", "{",
              "  /* Last in the read-only segment, from a 64 KiB boundary on: the kernel maps file",
              "   * pages in aligned 64 KiB windows, and the windows that cover this data then",
              "   * reach no untouched rodata (the linker gives it a segment of its own when the",
              "   * alignment leaves a page free). */",
              "  . = ALIGN(0x10000);", "  .rodata.kl_idle :", "  {"]
    lines += [f"    {p}({n})" for p, n, _ in rodata]
    lines += ["  }", "}", "INSERT AFTER .eh_frame;", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"idle_layout: {len(text)} code and {len(rodata)} data sections -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
