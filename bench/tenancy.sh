#!/usr/bin/env bash
# Builds the Release kernel and load generator (as bench/run.sh does), starts a local Spark
# Connect server for the SELECT 1 runs (or uses $KL_SPARK_REMOTE), runs bench/tenancy.py and stops
# the server. Arguments go to bench/tenancy.py (e.g. --repeats 1 --duration 2).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${KL_BENCH_BUILD:-$REPO/build-bench}"
PY="$REPO/.venv/bin/python"

if ! "$PY" -c 'import jupyter_client, ipykernel, pyspark' 2>/dev/null; then
  echo "bench: .venv missing or incomplete; running scripts/setup.sh" >&2
  "$REPO/scripts/setup.sh"
fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKL_TESTS=OFF -DKL_BENCH=ON
fi
cmake --build "$BUILD" -j "${KL_JOBS:-2}" --target kindling kl_loadgen kl_rt_floor

remote="${KL_SPARK_REMOTE:-}"
state=""
if [[ -z "$remote" ]]; then
  state="$(mktemp -d "${TMPDIR:-/tmp}/kl-bench-spark-XXXXXX")"
  trap '"$REPO/scripts/spark_server.sh" stop --state-dir "$state" >/dev/null 2>&1 || true' EXIT
  remote="$("$REPO/scripts/spark_server.sh" start --state-dir "$state" --owner-pid $$ --master 'local[2]')"
fi
"$PY" "$REPO/bench/tenancy.py" --kindling "$BUILD/kindling" --loadgen "$BUILD/kl_loadgen" --floor "$BUILD/kl_rt_floor" \
  --spark-remote "$remote" --command "bench/tenancy.sh${*:+ $*}" "$@"
