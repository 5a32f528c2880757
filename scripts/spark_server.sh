#!/usr/bin/env bash
# A local Spark Connect server for tests and the kernel's embedded-local mode, run from the pyspark
# package in the project's virtualenv (pyspark 4.x bundles the server; its pip package has no
# sbin/start-connect-server.sh, so spark-submit starts the server class directly). Other Spark
# versions run from their own virtualenvs (scripts/spark_versions.sh makes them): pyspark 3.5 lacks
# the Connect server jar, which is taken from <venv>/spark-connect/ (spark_versions.sh puts it there).
#
#   spark_server.sh start [--port N] [--state-dir DIR] [--owner-pid PID] [--no-verify]
#                         [--timeout SECONDS] [--master MASTER] [--token TOKEN]
#                         [--venv DIR | --spark-version X.Y] [--conf KEY=VALUE]...
#       Starts a server bound to 127.0.0.1 (a free port unless --port; a 3.5 server has no such
#       setting and listens on every interface), waits until it answers,
#       and prints its sc:// URL on stdout. With --token the server requires that bearer token
#       ("--token auto" makes a random one) and the URL carries it (";token=..."; Spark 4.0+ only).
#       With --owner-pid the server is stopped as soon as that process exits, so a crashed or
#       killed test run leaves nothing behind. --venv runs the pyspark of that virtualenv;
#       --spark-version runs the one scripts/spark_versions.sh made for X.Y (3.5, 4.0, 4.1). The
#       Spark version started is written to <state-dir>/server.version. --conf adds a Spark
#       setting after the script's own (so it can override them).
#   spark_server.sh stop   [--state-dir DIR]   stops the whole process group
#   spark_server.sh status [--state-dir DIR]   prints the URL and exits 0 while running, else 1
#
# State (pid, port, url, logs, warehouse, scratch space) lives in --state-dir, default
# $KL_SPARK_STATE_DIR or ${TMPDIR:-/tmp}/kindling-spark-$UID; start creates it, stop leaves the logs.
# Environment: KL_SPARK_VENV (default <repo>/.venv; --venv wins), KL_SPARK_DRIVER_MEMORY (default
# 1g), KL_SPARK_START_TIMEOUT (default 180 s).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KL_SPARK_VENV:-$REPO/.venv}"

die() {
  echo "spark_server.sh: $*" >&2
  exit 1
}

cmd="${1:-}"
[[ -n "$cmd" ]] || die "usage: spark_server.sh start|stop|status [options]"
shift

state_dir="${KL_SPARK_STATE_DIR:-${TMPDIR:-/tmp}/kindling-spark-$(id -u)}"
port=""
owner_pid=""
verify=1
timeout="${KL_SPARK_START_TIMEOUT:-180}"
master="local[2]"
token=""
extra_conf=()
while (($#)); do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --state-dir) state_dir="$2"; shift 2 ;;
    --owner-pid) owner_pid="$2"; shift 2 ;;
    --no-verify) verify=0; shift ;;
    --timeout) timeout="$2"; shift 2 ;;
    --master) master="$2"; shift 2 ;;
    --token) token="$2"; shift 2 ;;
    --conf) extra_conf+=(--conf "$2"); shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    --spark-version) VENV="$("$REPO/scripts/spark_versions.sh" venv "$2")" || exit 1; shift 2 ;;
    *) die "unknown option '$1'" ;;
  esac
done
PY="$VENV/bin/python"

pid_file="$state_dir/server.pid"
url_file="$state_dir/server.url"
version_file="$state_dir/server.version"
log_dir="$state_dir/logs"

running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid="$(cat "$pid_file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# The server runs in its own session (setsid), so its pid is also its process-group id and one
# signal to the group reaches spark-submit's java and anything it forked.
stop_server() {
  local pid
  pid="$(running_pid)" || { rm -f "$pid_file" "$url_file"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pid_file" "$url_file" "$version_file"
}

free_port() {
  "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A real round trip through the official client: the port opens before the service is fully up.
verify_server() {
  SPARK_CONNECT_MODE_ENABLED=1 "$PY" - "$1" "$2" <<'EOF'
import sys
from pyspark.sql import SparkSession
url = sys.argv[1]
spark = SparkSession.builder.remote(url).getOrCreate()
v = spark.version
spark.stop()
if v != sys.argv[2]:
    sys.exit(f"unexpected Spark version {v!r}")
EOF
}

start_server() {
  if pid="$(running_pid)"; then
    cat "$url_file"
    return 0
  fi
  [[ -x "$PY" ]] || die "no python at $PY (set KL_SPARK_VENV)"
  local spark_home
  spark_home="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" ||
    die "pyspark is not installed in $VENV"
  local version
  version="$("$PY" -c 'import pyspark; print(pyspark.__version__)')"
  [[ -x "$spark_home/bin/spark-submit" ]] || die "no spark-submit in $spark_home/bin"
  # Spark 3.x: the Connect server is not among pyspark's jars; spark_versions.sh fetched it.
  local -a jars=()
  if [[ "$version" == 3.* ]]; then
    local jar="$VENV/spark-connect/spark-connect_2.12-$version.jar"
    [[ -s "$jar" ]] ||
      die "Spark $version needs $jar: run scripts/spark_versions.sh ensure ${version%.*}"
    jars=(--jars "$jar")
    # Token authentication (spark.connect.authenticate.token) came with Spark 4.0.
    [[ -z "$token" ]] || die "--token needs Spark 4.0 or newer (this is Spark $version)"
  fi
  if [[ -z "${JAVA_HOME:-}" ]]; then
    local java
    java="$(command -v java)" || die "java is not on PATH (Java 17+ is needed)"
    JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$java")")")"
    export JAVA_HOME
  fi
  [[ -n "$port" ]] || port="$(free_port)"
  # The URL file may hold the token: keep the state dir private.
  mkdir -p -m 700 "$state_dir"
  mkdir -p "$log_dir" "$state_dir/warehouse" "$state_dir/local"
  [[ "$token" != auto ]] || token="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"

  local -a conf=(
    --conf "spark.connect.grpc.binding.address=127.0.0.1"
    --conf "spark.connect.grpc.binding.port=$port"
    --conf "spark.driver.host=127.0.0.1"
    --conf "spark.driver.bindAddress=127.0.0.1"
    --conf "spark.ui.enabled=false"
    --conf "spark.sql.catalogImplementation=in-memory"
    --conf "spark.sql.warehouse.dir=$state_dir/warehouse"
    --conf "spark.local.dir=$state_dir/local"
    --conf "spark.sql.shuffle.partitions=4"
    --conf "spark.driver.extraJavaOptions=-Dderby.system.home=$state_dir"
  )
  [[ -z "$token" ]] || conf+=(--conf "spark.connect.authenticate.token=$token")
  conf+=("${extra_conf[@]}")

  # cd: anything Spark drops in its working directory lands in the state dir, not the caller's.
  (
    cd "$state_dir"
    export SPARK_HOME="$spark_home" SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$log_dir"
    exec setsid "$spark_home/bin/spark-submit" \
      --class org.apache.spark.sql.connect.service.SparkConnectServer \
      --name kindling-spark-connect --master "$master" --driver-memory "${KL_SPARK_DRIVER_MEMORY:-1g}" \
      "${jars[@]}" "${conf[@]}" spark-internal </dev/null >"$log_dir/server.out" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$pid_file"

  local deadline=$((SECONDS + timeout))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$log_dir/server.out" >&2 || true
      rm -f "$pid_file"
      die "the server exited during start-up (log: $log_dir/server.out)"
    fi
    if ((SECONDS >= deadline)); then
      stop_server
      die "the server did not open port $port within ${timeout}s (log: $log_dir/server.out)"
    fi
    sleep 0.5
  done
  local url="sc://127.0.0.1:$port"
  [[ -z "$token" ]] || url="$url/;token=$token"
  if ((verify)); then
    # PySpark sends a token without TLS only to a host spelled "localhost" (gRPC local credentials).
    local vurl="$url"
    [[ -z "$token" ]] || vurl="sc://localhost:$port/;token=$token"
    if ! verify_server "$vurl" "$version" >"$log_dir/verify.out" 2>&1; then
      cat "$log_dir/verify.out" >&2
      stop_server
      die "the server on port $port does not answer Spark Connect calls"
    fi
  fi
  (umask 077 && echo "$url" >"$url_file")
  echo "$version" >"$version_file"

  if [[ -n "$owner_pid" ]]; then
    # A detached watchdog: stop the server once its owner is gone, however the owner ended.
    (
      exec </dev/null >/dev/null 2>&1
      while kill -0 "$owner_pid" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      [[ "$(cat "$pid_file" 2>/dev/null)" == "$pid" ]] && stop_server
    ) &
    disown
  fi
  echo "$url"
}

case "$cmd" in
  start) start_server ;;
  stop) stop_server ;;
  status)
    if running_pid >/dev/null && [[ -f "$url_file" ]]; then
      cat "$url_file"
    else
      echo "not running"
      exit 1
    fi
    ;;
  *) die "unknown command '$cmd' (start|stop|status)" ;;
esac
