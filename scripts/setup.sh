#!/usr/bin/env bash
# One-time (and idempotent) setup: Debian packages, .venv with the pinned Python tools, the build in
# build/, and the "kindling" kernelspec installed into .venv. A second run only re-checks and
# re-runs the incremental build, so scripts/demo.sh and scripts/test.sh can call it every time.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

VENV="$REPO/.venv"
REQS="$REPO/requirements-dev.txt"
BUILD="$REPO/build"
JOBS="${KL_JOBS:-2}"

say() { printf 'setup: %s\n' "$*"; }

# Everything the build, the tests and the fuzzers need from Debian bookworm.
APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libuv1-dev libzmq3-dev libjansson-dev libssl-dev libmsgpack-dev libsqlite3-dev
  libcriterion-dev
  liblz4-dev libzstd-dev libprotobuf-c-dev protobuf-c-compiler libgrpc-dev
  libcurl4-openssl-dev libedit-dev libmicrohttpd-dev
  openjdk-17-jdk-headless maven
  openssl curl
  clang libclang-rt-14-dev clang-format
  python3-venv
)

install_apt_packages() {
  local missing=() pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    say "Debian packages present"
    return
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { say "need root or sudo to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
}

venv_works() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; }

create_venv() {
  if venv_works; then
    return
  fi
  rm -rf "$VENV"
  local py
  # The first python3 on PATH (pyenv here) is preferred; Debian's own python3 has python3-venv.
  for py in "${PYTHON:-python3}" /usr/bin/python3; do
    command -v "$py" >/dev/null || continue
    say "creating .venv with $py ($("$py" --version 2>&1))"
    if "$py" -m venv "$VENV" && venv_works; then
      return
    fi
    rm -rf "$VENV"
  done
  # Last resort when no interpreter ships the venv module.
  say "python3 -m venv failed; using virtualenv from pip"
  python3 -m pip install --user --quiet virtualenv
  python3 -m virtualenv "$VENV"
  venv_works
}

install_python_packages() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$REQS" | cut -d' ' -f1) $("$VENV/bin/python" -c 'import sys; print(sys.version)')"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "Python packages up to date"
    return
  fi
  say "installing Python packages from requirements-dev.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  printf '%s' "$want" >"$stamp"
}

build() {
  if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
    say "configuring build/"
    cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  say "building build/"
  cmake --build "$BUILD" -j "$JOBS"
}

install_kernelspec() {
  [[ -x "$BUILD/kindling" ]] || { say "build/kindling was not built"; exit 1; }
  # --sys-prefix resolves to $VIRTUAL_ENV, so the spec lands in .venv/share/jupyter/kernels.
  VIRTUAL_ENV="$VENV" "$BUILD/kindling" install --sys-prefix >/dev/null
  local specs
  specs="$("$VENV/bin/jupyter" kernelspec list 2>/dev/null || true)"
  if ! grep -q '^ *kindling ' <<<"$specs"; then
    say "kernelspec 'kindling' not visible to .venv/bin/jupyter after install"
    exit 1
  fi
  say "kernelspec 'kindling' installed in .venv"
}

install_apt_packages
create_venv
install_python_packages
build
install_kernelspec
say "done"
