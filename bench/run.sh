#!/usr/bin/env bash
# Builds the Release kernel and load generator in build-bench/ (or $KL_BENCH_BUILD) and runs
# bench/run.py with the repository's .venv, which scripts/setup.sh creates when it is missing.
# Arguments go to bench/run.py (e.g. --repeats 3 --duration 3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KL_BENCH_BUILD:-$REPO/build-bench}"
PY="$REPO/.venv/bin/python"

if ! "$PY" -c 'import jupyter_client, ipykernel' 2>/dev/null; then
  echo "bench: .venv missing or incomplete; running scripts/setup.sh" >&2
  "$REPO/scripts/setup.sh"
fi

if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKL_TESTS=OFF -DKL_BENCH=ON
fi
cmake --build "$BUILD" -j "${KL_JOBS:-2}" --target kindling kl_loadgen kl_rss_floor

# What results.md names as the command: what was typed, not the paths added here.
export KL_BENCH_COMMAND="bench/run.sh${*:+ $*}"
exec "$PY" "$REPO/bench/run.py" --kindling "$BUILD/kindling" --loadgen "$BUILD/kl_loadgen" "$@"
