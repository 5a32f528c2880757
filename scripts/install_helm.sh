#!/usr/bin/env bash
# Installs helm (pinned) as <repo>/.tools/bin/helm for the chart tests (tests/deploy/test_helm.py),
# built from source with `go install` from the Go module proxy. Idempotent: when the pinned build is
# already there it only prints its path. Prints the helm path as the last line of its output.
#
# Go: the first of `go` on PATH, /usr/local/go/bin/go or a previously fetched toolchain that is new
# enough for the pinned helm (its go.mod asks for Go 1.24). Debian bookworm's golang-go is 1.19,
# too old, so on a fresh machine without a suitable Go the script fetches Go's own toolchain module
# (golang.org/toolchain, the download `GOTOOLCHAIN=go1.24.x` performs) from the module proxy, checks
# its pinned SHA-256 and unpacks it. Needs curl and python3 (to unzip) for that.
#
# Builds are slow (minutes), and CI starts from a fresh clone, so the built binary and a fetched
# toolchain are also kept in ${XDG_CACHE_HOME:-~/.cache}/kindling and copied from there when they
# match; Go's own module and build caches (GOMODCACHE, GOCACHE) are used as they are.
#
# Environment: KL_HELM_VERSION overrides the helm version (then pick KL_HELM_KUBE_MINOR and a Go
# that satisfy it); GOPROXY is honoured (its first entry).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.tools/bin"
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/kindling"
HELM_VERSION="${KL_HELM_VERSION:-v3.19.5}"
GO_MIN_MINOR=24 # helm v3.19's go.mod: go 1.24.0
# The Kubernetes version `helm template` and `helm lint` assume without a cluster: helm's Makefile
# derives it from its k8s.io/client-go (v0.34 -> 1.34) and sets it with -ldflags, as done below.
HELM_KUBE_MINOR="${KL_HELM_KUBE_MINOR:-34}"
GO_TOOLCHAIN_VERSION="go1.24.13"
# sha256 of the golang.org/toolchain module zip per architecture, as served by the module proxy.
declare -A GO_TOOLCHAIN_SHA256=(
  [amd64]=d2b048367a3d1a748b87f756fa06df12ce3b419e1d5f2a3612acb8950d615f9f
)

# `go install` alone leaves helm's version at its major.minor default and its Kubernetes version at
# 1.20: the release Makefile sets both with -ldflags, and so does this.
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
done
BUILD_ID="$HELM_VERSION-$(printf '%s' "$LDFLAGS" | sha256sum | cut -c1-12)"
CACHED_HELM="$CACHE/helm-$BUILD_ID"

say() { printf 'install_helm: %s\n' "$*" >&2; }

# A helm binary is current when it reports the pinned version and its stamp names this build.
helm_ok() { # path
  [[ -x "$1" && -f "$1.build" && "$(cat "$1.build")" == "$BUILD_ID" ]] &&
    [[ "$("$1" version --template '{{.Version}}' 2>/dev/null || true)" == "$HELM_VERSION" ]]
}

install_copy() { # from
  mkdir -p "$BIN"
  cp "$1" "$BIN/helm.tmp" && mv "$BIN/helm.tmp" "$BIN/helm"
  printf '%s' "$BUILD_ID" >"$BIN/helm.build"
}

# Prints the minor version of a go binary (1.24.3 -> 24), or nothing when it does not run.
go_minor() {
  local v
  v="$("$1" env GOVERSION 2>/dev/null || true)"
  [[ "$v" =~ ^go1\.([0-9]+) ]] && printf '%s' "${BASH_REMATCH[1]}"
}

find_go() {
  local cand minor
  for cand in "$(command -v go || true)" /usr/local/go/bin/go "$CACHE/$GO_TOOLCHAIN_VERSION/bin/go"; do
    [[ -n "$cand" && -x "$cand" ]] || continue
    minor="$(go_minor "$cand")"
    if [[ -n "$minor" ]] && ((minor >= GO_MIN_MINOR)); then
      printf '%s' "$cand"
      return 0
    fi
  done
  return 1
}

fetch_go_toolchain() {
  local arch
  case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
  esac
  local sum="${GO_TOOLCHAIN_SHA256[$arch]:-}"
  if [[ -z "$sum" ]]; then
    say "no pinned Go toolchain for $arch: install Go 1.$GO_MIN_MINOR or newer and put it on PATH"
    return 1
  fi
  command -v curl >/dev/null || { say "curl is needed to fetch the Go toolchain"; return 1; }
  command -v python3 >/dev/null || { say "python3 is needed to unpack the Go toolchain"; return 1; }
  local proxy="${GOPROXY:-https://proxy.golang.org}"
  proxy="${proxy%%,*}"
  proxy="${proxy%%|*}"
  [[ "$proxy" == http* ]] || proxy=https://proxy.golang.org
  local mod="v0.0.1-$GO_TOOLCHAIN_VERSION.linux-$arch"
  local dest="$CACHE/$GO_TOOLCHAIN_VERSION" zip="$CACHE/go-toolchain.zip"
  mkdir -p "$CACHE"
  say "fetching the Go toolchain module golang.org/toolchain@$mod"
  curl -sSfL --retry 3 -o "$zip" "$proxy/golang.org/toolchain/@v/$mod.zip"
  local got
  got="$(sha256sum "$zip" | cut -d' ' -f1)"
  if [[ "$got" != "$sum" ]]; then
    rm -f "$zip"
    say "Go toolchain checksum mismatch (got $got, want $sum)"
    return 1
  fi
  rm -rf "$dest" "$dest.unpack"
  python3 - "$zip" "$dest.unpack" <<'EOF'
import os, sys, zipfile
zf = zipfile.ZipFile(sys.argv[1])
zf.extractall(sys.argv[2])
# zipfile drops permission bits; restore them from the archive's Unix mode.
for info in zf.infolist():
    mode = (info.external_attr >> 16) & 0o777
    if mode:
        os.chmod(os.path.join(sys.argv[2], info.filename), mode)
EOF
  mv "$dest.unpack/golang.org/toolchain@$mod" "$dest"
  rm -rf "$dest.unpack" "$zip"
}

if helm_ok "$BIN/helm"; then
  say "helm $HELM_VERSION present"
  printf '%s\n' "$BIN/helm"
  exit 0
fi
if helm_ok "$CACHED_HELM"; then
  install_copy "$CACHED_HELM"
  say "helm $HELM_VERSION copied from $CACHE"
  printf '%s\n' "$BIN/helm"
  exit 0
fi

GO="$(find_go || true)"
if [[ -z "$GO" ]]; then
  fetch_go_toolchain
  GO="$(find_go)" || { say "the fetched Go toolchain does not run"; exit 1; }
fi
say "building helm $HELM_VERSION with $("$GO" env GOVERSION) ($GO)"

work="$(mktemp -d "${TMPDIR:-/tmp}/kindling-helm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
GOBIN="$work" GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0 \
  "$GO" install -trimpath -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

mkdir -p "$CACHE"
cp "$work/helm" "$CACHED_HELM.tmp" && mv "$CACHED_HELM.tmp" "$CACHED_HELM"
printf '%s' "$BUILD_ID" >"$CACHED_HELM.build"
install_copy "$CACHED_HELM"
if ! helm_ok "$BIN/helm"; then
  say "built $BIN/helm, but it does not report $HELM_VERSION"
  exit 1
fi
say "helm $HELM_VERSION installed"
printf '%s\n' "$BIN/helm"
