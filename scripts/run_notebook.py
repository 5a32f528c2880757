#!/usr/bin/env python3
"""Execute a notebook with a Jupyter kernel and print every cell and its outputs as plain text.

Usage: run_notebook.py NOTEBOOK [--kernel NAME] [--output PATH] [--timeout SECONDS]

A cell tagged "raises-exception" may fail; any other failing cell stops the run with exit 1.
The executed notebook is written to --output even when a cell fails, so it can be inspected.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Preferred order when a bundle has several representations; the first found is shown.
TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "application/javascript", "application/json")


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").split("\n"))


def bundle_text(data: dict) -> str:
    for mime in TEXT_MIMES:
        if mime in data:
            value = data[mime]
            if not isinstance(value, str):
                value = str(value)
            return value if mime == "text/plain" else f"[{mime}]\n{value}"
    return f"[{', '.join(sorted(data))}]"


def output_text(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        label = "" if out.get("name") == "stdout" else f"[{out.get('name')}] "
        return label + out.get("text", "")
    if kind in ("execute_result", "display_data"):
        return bundle_text(out.get("data", {}))
    if kind == "error":
        # A kernel's traceback normally repeats "ename: evalue"; fall back to it when empty.
        lines = [ANSI.sub("", t) for t in out.get("traceback", [])]
        return "\n".join(lines) or f"{out.get('ename')}: {out.get('evalue')}"
    return f"[{kind}]"


def print_cell(index: int, cell: dict) -> None:
    tags = cell.get("metadata", {}).get("tags", [])
    count = cell.get("execution_count")
    head = f"--- cell {index} [{count if count is not None else ' '}]"
    if "raises-exception" in tags:
        head += " (expected to raise)"
    print(head)
    print(indent(cell.get("source", ""), "In:  "))
    for out in cell.get("outputs", []):
        print(indent(output_text(out), "Out: "))
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--kernel", default="kindling", help="kernelspec name (default: kindling)")
    ap.add_argument("--output", type=Path, help="where to write the executed notebook")
    ap.add_argument("--timeout", type=int, default=120, help="per-cell timeout in seconds")
    args = ap.parse_args()

    # With no Spark Connect endpoint configured the kernel runs pyspark's server from $VIRTUAL_ENV;
    # demo.sh calls .venv/bin/python without activating .venv, so name this interpreter's venv.
    if sys.prefix != sys.base_prefix:
        os.environ.setdefault("VIRTUAL_ENV", sys.prefix)

    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=args.kernel,
        timeout=args.timeout,
        startup_timeout=60,
        resources={"metadata": {"path": str(args.notebook.parent.resolve())}},
    )

    failure: CellExecutionError | None = None
    try:
        client.execute()
    except CellExecutionError as exc:
        failure = exc

    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            print_cell(index, cell)
        else:
            print(f"--- cell {index} ({cell.cell_type})")
            print(indent(cell.source, "  | ") + "\n")

    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, args.output)
        print(f"executed notebook written to {args.output}")

    if failure is not None:
        print(f"run_notebook: a cell failed unexpectedly:\n{ANSI.sub('', str(failure))}", file=sys.stderr)
        return 1
    errors = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and "raises-exception" in c.metadata.get("tags", [])
        and not any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    if errors:
        # A tagged cell that stopped raising means the notebook's story is out of date.
        print(f"run_notebook: cells {errors} are tagged raises-exception but did not raise", file=sys.stderr)
        return 1
    print(f"run_notebook: {sum(c.cell_type == 'code' for c in nb.cells)} code cells executed, ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
