#!/usr/bin/env bash
# The Spark versions Kindling is tested against, each with a virtualenv whose pyspark package carries
# that version's Spark Connect server (for scripts/spark_server.sh --venv) and its reference client.
#
#   spark_versions.sh list               prints "VERSION PYSPARK VENV" for every supported version
#   spark_versions.sh venv VERSION       prints the virtualenv directory of VERSION (3.5, 4.0, 4.1)
#   spark_versions.sh ensure VERSION...  creates or updates those virtualenvs (idempotent: pip runs
#                                        only when the requirements file or Python changed, the
#                                        Maven download only when the jar is missing), then prints
#                                        their directories, one a line
#
# 4.0 is the project's own .venv (requirements-dev.txt, made by scripts/setup.sh); 3.5 and 4.1 get
# .venv-spark35 and .venv-spark41 from requirements-spark35.txt and requirements-spark41.txt.
# pyspark 3.5's pip package lacks the Connect server jar: "ensure 3.5" copies
# org.apache.spark:spark-connect_2.12:<pyspark version> from Maven Central into
# <venv>/spark-connect/ with mvn, where spark_server.sh finds it; later runs need no network.
# Environment: PYTHON (the interpreter that creates the virtualenvs, default python3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSIONS=(3.5 4.0 4.1)

say() { printf 'spark_versions: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

venv_of() {
  case "$1" in
    3.5) echo "$REPO/.venv-spark35" ;;
    4.0) echo "$REPO/.venv" ;;
    4.1) echo "$REPO/.venv-spark41" ;;
    *) die "unsupported Spark version '$1' (supported: ${VERSIONS[*]})" ;;
  esac
}

reqs_of() {
  case "$1" in
    3.5) echo "$REPO/requirements-spark35.txt" ;;
    4.0) echo "$REPO/requirements-dev.txt" ;;
    4.1) echo "$REPO/requirements-spark41.txt" ;;
  esac
}

pinned_pyspark() { sed -n 's/^pyspark==//p' "$1"; }

venv_works() { [[ -x "$1/bin/python" ]] && "$1/bin/python" -c 'import sys' 2>/dev/null; }

create_venv() { # dir
  local dir="$1" py
  venv_works "$dir" && return 0
  rm -rf "$dir"
  for py in "${PYTHON:-python3}" /usr/bin/python3; do
    command -v "$py" >/dev/null || continue
    say "creating $(basename "$dir") with $py ($("$py" --version 2>&1))"
    if "$py" -m venv "$dir" && venv_works "$dir"; then
      return 0
    fi
    rm -rf "$dir"
  done
  die "could not create a virtualenv at $dir (install python3-venv)"
}

install_packages() { # dir, requirements file
  local dir="$1" reqs="$2" stamp="$1/.requirements.sha256" want
  want="$(sha256sum "$reqs" | cut -d' ' -f1) $("$dir/bin/python" -c 'import sys; print(sys.version)')"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  say "installing $(basename "$reqs") into $(basename "$dir")"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >&2
  printf '%s' "$want" >"$stamp"
}

# The Connect server of Spark 3.x is a separate (shaded, self-contained) artifact.
install_connect_jar() { # dir, spark version
  local dir="$1" version="$2" jar_dir="$1/spark-connect"
  local jar="$jar_dir/spark-connect_2.12-$version.jar"
  [[ -s "$jar" ]] && return 0
  command -v mvn >/dev/null ||
    die "mvn is needed once to fetch spark-connect_2.12:$version (apt-get install maven)"
  say "fetching org.apache.spark:spark-connect_2.12:$version with mvn"
  mkdir -p "$jar_dir"
  rm -f "$jar_dir"/spark-connect_*.jar
  mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="org.apache.spark:spark-connect_2.12:$version:jar" \
    -DoutputDirectory="$jar_dir" -Dmdep.overWriteReleases=true >&2 ||
    die "mvn could not fetch org.apache.spark:spark-connect_2.12:$version"
  [[ -s "$jar" ]] || die "mvn ran but $jar is missing"
}

ensure() { # version
  local version="$1" dir reqs
  dir="$(venv_of "$version")"
  reqs="$(reqs_of "$version")"
  if [[ "$version" == 4.0 ]]; then
    # scripts/setup.sh owns .venv; only check it is there.
    [[ -x "$dir/bin/python" ]] || die "$dir is missing: run scripts/setup.sh"
  else
    create_venv "$dir"
    install_packages "$dir" "$reqs"
  fi
  local installed
  installed="$("$dir/bin/python" -c 'import pyspark; print(pyspark.__version__)')" ||
    die "pyspark is not importable in $dir"
  [[ "$installed" == "$(pinned_pyspark "$reqs")" ]] ||
    die "$dir has pyspark $installed, $(basename "$reqs") pins $(pinned_pyspark "$reqs")"
  [[ "$installed" != 3.* ]] || install_connect_jar "$dir" "$installed"
  echo "$dir"
}

cmd="${1:-}"
[[ -n "$cmd" ]] || die "usage: spark_versions.sh list | venv VERSION | ensure VERSION..."
shift
case "$cmd" in
  list)
    for v in "${VERSIONS[@]}"; do
      echo "$v $(pinned_pyspark "$(reqs_of "$v")") $(venv_of "$v")"
    done
    ;;
  venv)
    (($# == 1)) || die "usage: spark_versions.sh venv VERSION"
    venv_of "$1"
    ;;
  ensure)
    (($#)) || die "usage: spark_versions.sh ensure VERSION..."
    for v in "$@"; do ensure "$v"; done
    ;;
  *) die "unknown command '$cmd' (list|venv|ensure)" ;;
esac
