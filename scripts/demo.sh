#!/usr/bin/env bash
# Command (a): set everything up, then run examples/demo.ipynb on the installed "kindling" kernel and
# print each cell with its outputs. The executed notebook is kept in build/demo.out.ipynb.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

"$REPO/scripts/setup.sh"

# JUPYTER_PATH is searched first: the kernelspec setup.sh just installed into .venv wins over an
# older "kindling" in the user's home.
export JUPYTER_PATH="$REPO/.venv/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export JUPYTER_PLATFORM_DIRS=1
exec "$REPO/.venv/bin/python" "$REPO/scripts/run_notebook.py" "$REPO/examples/demo.ipynb" \
  --kernel kindling --output "$REPO/build/demo.out.ipynb" "$@"
