#!/usr/bin/env bash
# Command (b): set everything up, then run every test the project has, stopping at the first failing
# stage:
#   1. unit tests (ctest) in build/
#   2. the same with AddressSanitizer + UBSan in build-asan/
#   3. each libFuzzer target for a bounded time in build-fuzz/ (when clang is installed)
#   4. the end-to-end pytest suite against build/kindling, then against build-asan/kindling: first
#      the protocol tests (no Spark), then tests/e2e/spark against a real Spark Connect server that
#      scripts/spark_server.sh starts for the run (Java 17 and pyspark from .venv)
#   5. deploy: helm (installed by scripts/install_helm.sh) lints and renders the chart, and the
#      tests check the manifests and the container recipe (tests/deploy)
#   6. e2e-compat: tests/e2e/spark_compat against Spark 3.5 and 4.1 servers (the main suite runs
#      against the pinned 4.0), creating their virtualenvs first (scripts/spark_versions.sh; about
#      800 MB of downloads the first time, then cached in .venv-spark35/ and .venv-spark41/)
# The output ends with a recap that repeats the runners' own summary lines.
#
# Environment: KL_FUZZ_SECONDS (default 20) per fuzzer; KL_JOBS (default 2) build parallelism;
# KL_STAGES to run only some stages while iterating locally, e.g. KL_STAGES="e2e e2e-asan"
# (default: "unit asan fuzz e2e e2e-asan deploy e2e-compat"). CI runs them all.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

JOBS="${KL_JOBS:-2}"
STAGES=" ${KL_STAGES:-unit asan fuzz e2e e2e-asan deploy e2e-compat} "
FUZZ_SECONDS="${KL_FUZZ_SECONDS:-20}"
PY="$REPO/.venv/bin/python"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/kindling-test.XXXXXX")"

STAGE="setup"
RECAP=()

say() { printf '\n==> %s\n' "$*"; }

finish() {
  local rc=$?
  set +e
  echo
  ((rc == 0)) && echo "test.sh: all stages passed (logs in $LOGS)"
  if ((${#RECAP[@]})); then
    echo "---------------------------------------- recap"
    printf '%s\n' "${RECAP[@]}"
  fi
  ((rc == 0)) || echo "test.sh: FAILED in stage '$STAGE' (exit $rc); logs in $LOGS"
  exit "$rc"
}
trap finish EXIT

# Sanitizer settings shared by the ASan unit tests, the ASan kernel under pytest and the fuzzers.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

configure() { # build-dir, extra cmake args...
  local dir="$1"
  shift
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    cmake -S "$REPO" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  fi
  cmake --build "$dir" -j "$JOBS"
}

run_ctest() { # build-dir
  local dir="$1" log="$LOGS/ctest-$(basename "$1").log" rc line
  set +e
  ctest --test-dir "$dir" --output-on-failure --no-tests=error 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  line="$(grep -E '^[0-9]+% tests passed' "$log" | tail -n1)"
  RECAP+=("[ctest $(basename "$dir")]" "${line:-(no ctest summary line)}")
  return "$rc"
}

run_fuzzers() {
  local fuzzers=() bin name corpus work log runs
  for bin in build-fuzz/fuzz_*; do
    [[ -f "$bin" && -x "$bin" ]] && fuzzers+=("$bin")
  done
  if ((${#fuzzers[@]} == 0)); then
    echo "no fuzz_* targets built"
    RECAP+=("[fuzz] no fuzz targets")
    return
  fi
  for bin in "${fuzzers[@]}"; do
    name="$(basename "$bin")"
    STAGE="fuzz $name"
    work="$(mktemp -d "$LOGS/$name.XXXXXX")"
    mkdir -p "$work/corpus"
    # The checked-in corpus seeds the run; new inputs go to the copy so the repo is not modified.
    for corpus in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/${name#fuzz_}"; do
      [[ -d "$corpus" ]] && cp -R "$corpus/." "$work/corpus/"
    done
    local dict=()
    [[ -f "tests/fuzz/$name.dict" ]] && dict=("-dict=$REPO/tests/fuzz/$name.dict")
    log="$LOGS/$name.log"
    echo "fuzzing $name for ${FUZZ_SECONDS}s ($(find "$work/corpus" -type f | wc -l) seed inputs)"
    if ! (cd "$work" && "$REPO/$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/" "${dict[@]}" corpus) >"$log" 2>&1; then
      tail -n 60 "$log"
      mkdir -p build-fuzz/artifacts
      cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* build-fuzz/artifacts/ \
        2>/dev/null || true
      echo "$name failed; reproducer(s) copied to build-fuzz/artifacts/"
      return 1
    fi
    runs="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n1)"
    echo "  $name: ${runs:-finished}"
    RECAP+=("[fuzz] $name: ${runs:-finished}, no crash")
  done
}

run_pytest() { # suite (e2e | e2e/spark), label, kindling binary
  local suite="$1" label="$2" bin="$3" log rc line
  local -a args=("$REPO/tests/e2e" -m "not spark and not spark_compat")
  [[ "$suite" == e2e ]] || args=("$REPO/tests/$suite")
  log="$LOGS/pytest-${suite//\//-}-$label.log"
  set +e
  KINDLING_BINARY="$bin" timeout -k 30 2400 "$PY" -m pytest "${args[@]}" -p no:cacheprovider \
    -v -rfEs --color=no 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  line="$(grep -E '^=+ .*( in [0-9.]+s).* =+$' "$log" | tail -n1)"
  RECAP+=("[pytest $suite, $label kernel: ${bin#"$REPO"/}]" "${line:-(no pytest summary line)}")
  if ((rc == 5)); then
    echo "pytest collected no tests"
    return 1
  fi
  return "$rc"
}

want() { [[ "$STAGES" == *" $1 "* ]]; }

say "setup"
"$REPO/scripts/setup.sh"

if want unit; then
  STAGE="ctest build"
  say "$STAGE"
  run_ctest build
fi

if want asan || want e2e-asan; then
  STAGE="build build-asan"
  say "$STAGE"
  configure build-asan -DKL_SANITIZE=ON
fi
if want asan; then
  STAGE="ctest build-asan"
  say "$STAGE"
  run_ctest build-asan
fi

if want fuzz; then
  if command -v clang >/dev/null; then
    STAGE="build build-fuzz"
    say "$STAGE"
    configure build-fuzz -DCMAKE_C_COMPILER=clang -DKL_FUZZ=ON -DKL_TESTS=OFF -DKL_BENCH=OFF
    STAGE="fuzz"
    say "$STAGE"
    run_fuzzers
  else
    echo "clang not found: fuzzers skipped"
    RECAP+=("[fuzz] skipped: clang not installed")
  fi
fi

if want e2e; then
  STAGE="pytest e2e build/kindling"
  say "$STAGE"
  run_pytest e2e release "$REPO/build/kindling"
  STAGE="pytest e2e/spark build/kindling"
  say "$STAGE"
  run_pytest e2e/spark release "$REPO/build/kindling"
fi

if want e2e-asan; then
  STAGE="pytest e2e build-asan/kindling"
  say "$STAGE"
  run_pytest e2e asan "$REPO/build-asan/kindling"
  STAGE="pytest e2e/spark build-asan/kindling"
  say "$STAGE"
  run_pytest e2e/spark asan "$REPO/build-asan/kindling"
fi

if want deploy; then
  STAGE="helm"
  say "$STAGE"
  "$REPO/scripts/install_helm.sh" >/dev/null
  STAGE="pytest deploy"
  say "$STAGE"
  run_pytest deploy release "$REPO/build/kindling"
fi

if want e2e-compat; then
  STAGE="spark versions"
  say "$STAGE"
  "$REPO/scripts/spark_versions.sh" ensure 3.5 4.1
  STAGE="pytest e2e/spark_compat build/kindling"
  say "$STAGE"
  run_pytest e2e/spark_compat release "$REPO/build/kindling"
fi
