"""The container recipe (docker/Dockerfile), checked without a Docker engine:

- every shared library the built binary loads (`ldd`) comes from a package the runtime stage
  installs, from one of their dependencies, or from the base image's own packages, and every
  library it links directly (DT_NEEDED) from a package the runtime stage names itself;
- the build stage installs scripts/setup.sh's build packages and configures CMake exactly as
  scripts/setup.sh does (the recipe CI proves);
- the runtime stage runs as uid 1000 with exec-form ENTRYPOINT/CMD/HEALTHCHECK (no shell needed),
  a HEALTHCHECK that the binary itself serves, and OCI labels;
- the Enterprise Gateway kernelspec examples beside it are well-formed.

The binary is $KINDLING_BINARY, else <repo>/build/kindling. Needs dpkg (Debian).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
SETUP = REPO / "scripts" / "setup.sh"

# Packages of debian:bookworm-slim itself (Priority: required, and what they pull in): present in
# the runtime stage without being named.
BASE_PACKAGES = {
    "libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1", "liblzma5", "libbz2-1.0",
    "libmd0", "libselinux1", "libpcre2-8-0", "libacl1", "libattr1", "libcrypt1", "libgmp10",
    "libsystemd0", "libudev1", "libcap2", "libgcrypt20", "libgpg-error0", "liblz4-1", "libtinfo6",
    "libaudit1", "libcap-ng0", "libpam0g", "libdb5.3", "libsemanage2", "libsepol2", "libxxhash0",
    "libseccomp2", "libhogweed6", "libnettle8", "libffi8", "libp11-kit0", "libtasn1-6",
    "libgnutls30", "libunistring2", "libidn2-0", "debconf", "dpkg", "tar", "coreutils",
}
# Build packages scripts/setup.sh installs only for tests, fuzzing, the embedded Spark server or
# the virtualenv: the image's build stage leaves them out on purpose.
NOT_FOR_THE_IMAGE = {
    "openjdk-17-jdk-headless", "maven", "clang", "libclang-rt-14-dev", "clang-format", "python3-venv",
    "openssl", "curl",
}


def kindling_binary() -> Path:
    value = os.environ.get("KINDLING_BINARY")
    return Path(value).resolve() if value else REPO / "build" / "kindling"


@pytest.fixture(scope="module")
def binary() -> Path:
    path = kindling_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"kindling binary not found at {path}: build it or set KINDLING_BINARY", pytrace=False)
    return path


# ---- Dockerfile parsing ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def build_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for word, rest in instructions():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v
    return args


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, FROM first; base images with global ARGs expanded."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    gargs = build_args()
    for word, rest in instructions():
        if word == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert m, f"every stage is named: FROM {rest}"
            image = re.sub(r"\$\{(\w+)\}", lambda g: gargs[g.group(1)], m.group(1))
            current = out.setdefault(m.group(2), [("FROM", image)])
        elif current is not None:
            current.append((word, rest))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    return list(stages().values())[-1]


def apt_packages(stage: list[tuple[str, str]]) -> list[str]:
    pkgs: list[str] = []
    for word, rest in stage:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            toks = shlex.split(cmd)
            if toks[:2] == ["apt-get", "install"]:
                pkgs += [t for t in toks[2:] if not t.startswith("-")]
    return pkgs


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return value


# ---- dpkg ------------------------------------------------------------------------------------


def require_dpkg() -> None:
    if not shutil.which("dpkg-query"):
        pytest.skip("needs dpkg (a Debian host)")


def spellings(path: str) -> list[str]:
    """A library path as dpkg may have recorded it: as given, resolved, and both sides of the
    /usr merge (/lib/... and /usr/lib/...)."""
    out = []
    for p in (path, os.path.realpath(path)):
        out.append(p)
        if p.startswith("/usr/lib/"):
            out.append(p[4:])
        elif p.startswith("/lib/"):
            out.append("/usr" + p)
    return list(dict.fromkeys(out))


def packages_of(paths: list[str]) -> dict[str, str]:
    """Library path -> the Debian package that ships it (one dpkg-query for all of them)."""
    cands = {p: spellings(p) for p in paths}
    every = sorted({c for cs in cands.values() for c in cs})
    proc = subprocess.run(["dpkg-query", "-S", *every], capture_output=True, text=True, check=False)
    owner: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        pkgs, _, file = line.partition(": ")
        owner[file.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    result = {}
    for p, cs in cands.items():
        found = [owner[c] for c in cs if c in owner]
        assert found, f"no Debian package ships {p}"
        result[p] = found[0]
    return result


@lru_cache(maxsize=1)
def installed_depends() -> dict[str, tuple[str, ...]]:
    """Installed package -> the packages it depends on (every alternative of an "a | b")."""
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Depends}, ${Pre-Depends}\n"],
        capture_output=True, text=True, check=True,
    )
    deps: dict[str, tuple[str, ...]] = {}
    for line in proc.stdout.splitlines():
        name, status, rest = line.split("\t", 2)
        if not status.endswith(" installed"):
            continue
        names = []
        for alt in rest.split(","):
            names += [re.split(r"[\s(:]", a.strip())[0] for a in alt.split("|") if a.strip()]
        deps[name] = tuple(n for n in names if n)
    return deps


def closure(pkgs: list[str]) -> set[str]:
    deps = installed_depends()
    missing = [p for p in pkgs if p not in deps]
    assert not missing, f"not installed here, so their dependencies are unknown: {missing}"
    seen: set[str] = set()
    todo = list(pkgs)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += deps.get(p, ())
    return seen


def ldd_paths(binary: Path) -> list[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "not found" not in out, out
    paths = []
    for line in out.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            paths.append(m.group(1))
    return paths


def needed(binary: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


# ---- tests -----------------------------------------------------------------------------------


def test_stages_are_bookworm():
    st = stages()
    assert list(st) == ["build", "runtime"]
    assert st["build"][0][1] == "debian:bookworm"
    assert st["runtime"][0][1] == "debian:bookworm-slim"


def test_every_loaded_library_comes_from_the_runtime_packages(binary):
    require_dpkg()
    listed = apt_packages(runtime_stage())
    allowed = closure(listed) | BASE_PACKAGES
    owners = packages_of(ldd_paths(binary))
    missing = {path: pkg for path, pkg in owners.items() if pkg not in allowed}
    assert not missing, f"libraries whose packages the runtime stage does not install: {missing}"


def test_directly_linked_libraries_are_named_in_the_runtime_stage(binary):
    """Leaning on another package's dependencies for a library the binary links itself would
    break when that package changes: each DT_NEEDED library's package is listed by name."""
    require_dpkg()
    listed = set(apt_packages(runtime_stage()))
    paths = {os.path.basename(p): p for p in ldd_paths(binary)}
    owners = packages_of(list(paths.values()))
    for soname in needed(binary):
        if soname not in paths:  # the dynamic loader itself
            continue
        pkg = owners[paths[soname]]
        assert pkg in listed or pkg in {"libc6"}, f"{soname} ({pkg}) is linked but not installed by name"


def bound_at_first_use(binary: Path) -> list[str]:
    """The SONAMEs the binary opens itself (src/runtime/dynlib.h): compiled in as strings, and
    invisible to ldd and DT_NEEDED."""
    data = binary.read_bytes()
    linked = set(needed(binary))
    names = {m.decode() for m in re.findall(rb"\blib[A-Za-z0-9_+.-]+?\.so\.[0-9]+\b", data)}
    return sorted(n for n in names if n not in linked)


def soname_path(soname: str) -> str:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) \(libc6,x86-64[^)]*\) => (\S+)", line)
        if m and m.group(1) == soname:
            return m.group(2)
    raise AssertionError(f"{soname} is not installed on this machine")


def test_libraries_bound_at_first_use_are_named_in_the_runtime_stage(binary):
    """gRPC, libcurl, libmicrohttpd, SQLite, LZ4, Zstandard and libedit are opened with dlopen at
    first use: ldd cannot see them, so a runtime stage missing one would only fail at the first
    SQL cell, %AddJar or `kindling serve`."""
    require_dpkg()
    sonames = bound_at_first_use(binary)
    for expected in ("libgrpc.so", "libcurl.so", "libmicrohttpd.so", "libsqlite3.so"):
        assert any(n.startswith(expected) for n in sonames), f"{expected}* not found in {sonames}"
    listed = set(apt_packages(runtime_stage()))
    owners = packages_of([soname_path(n) for n in sonames])
    for path, pkg in owners.items():
        assert pkg in listed, f"{path} ({pkg}) is opened at first use but not installed by name"
    allowed = closure(sorted(listed)) | BASE_PACKAGES
    for path in owners:
        deps = packages_of(ldd_paths(Path(path)))
        missing = {p: pkg for p, pkg in deps.items() if pkg not in allowed}
        assert not missing, f"{path} needs libraries the runtime stage does not install: {missing}"


def test_runtime_packages_exist_in_bookworm():
    require_dpkg()
    for pkg in apt_packages(runtime_stage()):
        known = pkg in installed_depends()
        if not known and shutil.which("apt-cache"):
            known = bool(subprocess.run(["apt-cache", "show", pkg], capture_output=True, check=False).stdout)
        assert known, f"{pkg} is neither installed here nor known to apt"


def setup_sh_packages() -> list[str]:
    text = SETUP.read_text()
    m = re.search(r"APT_PACKAGES=\((.*?)\)", text, re.S)
    assert m, "scripts/setup.sh has no APT_PACKAGES list"
    return [w for line in m.group(1).splitlines() for w in line.split("#")[0].split()]


def test_build_stage_installs_the_build_packages_of_setup_sh():
    build = set(apt_packages(stages()["build"]))
    want = set(setup_sh_packages()) - NOT_FOR_THE_IMAGE
    assert want <= build, f"build packages missing from the build stage: {sorted(want - build)}"


def cmake_configure_options(text: str) -> list[str]:
    m = re.search(r"cmake -S \S+ -B \S+((?: -[GD]\s*\S+)+)", text)
    assert m, "no `cmake -S ... -B ...` configure line"
    return m.group(1).split()


def test_build_stage_configures_cmake_as_setup_sh_does():
    dockerfile_runs = " ".join(rest for word, rest in stages()["build"] if word == "RUN")
    assert cmake_configure_options(dockerfile_runs) == cmake_configure_options(SETUP.read_text())
    assert "--target kindling" in dockerfile_runs


def test_runtime_runs_as_uid_1000_without_a_shell():
    rt = runtime_stage()
    users = [rest for word, rest in rt if word == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    entry = [exec_form(rest) for word, rest in rt if word == "ENTRYPOINT"]
    assert entry == [["/usr/local/bin/kindling"]]
    (cmd,) = [exec_form(rest) for word, rest in rt if word == "CMD"]
    assert cmd[0] == "serve"
    assert not any(re.search(r"--key(=|$)", a) for a in cmd), "no key on the command line"
    # Whatever runs after USER needs no shell: no shell-form RUN after it.
    after_user = rt[[i for i, (w, _) in enumerate(rt) if w == "USER"][-1]:]
    assert not [r for w, r in after_user if w == "RUN"]


def test_healthcheck_is_the_binary_itself():
    rt = runtime_stage()
    (hc,) = [rest for word, rest in rt if word == "HEALTHCHECK"]
    m = re.search(r"CMD\s+(\[.*\])$", hc)
    assert m, f"HEALTHCHECK must use the exec form: {hc}"
    argv = exec_form(m.group(1))
    assert argv[:2] == ["/usr/local/bin/kindling", "health"]
    port = argv[argv.index("--port") + 1]
    exposed = " ".join(rest for word, rest in rt if word == "EXPOSE").split()
    assert port in exposed
    (cmd,) = [exec_form(rest) for word, rest in rt if word == "CMD"]
    assert f"--health-port={port}" in cmd


def test_healthcheck_and_launch_commands_exist(binary):
    for command in ("health", "launch", "serve"):
        proc = subprocess.run([str(binary), command, "--help"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"`kindling {command} --help` failed ({proc.returncode}): {proc.stderr}"
        assert "Usage: kindling " + command in proc.stdout


def test_oci_labels():
    labels: dict[str, str] = {}
    for word, rest in runtime_stage():
        if word == "LABEL":
            for tok in shlex.split(rest):
                k, _, v = tok.partition("=")
                labels[k] = v
    for key in ("title", "description", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.title"] == "kindling"


def test_image_carries_binary_and_kernelspec():
    copies = [rest for word, rest in runtime_stage() if word == "COPY"]
    assert any(c.startswith("--from=build /usr/local/bin/kindling ") for c in copies)
    assert any("/usr/local/share/jupyter/kernels/kindling/" in c for c in copies)
    assert not [rest for word, rest in runtime_stage() if word == "ADD"]


def test_build_context_is_filtered():
    lines = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    assert ignore[0] == "*", "the context starts empty and names what the build copies"
    copied = {rest.split()[0].rstrip("/") for word, rest in stages()["build"] if word == "COPY"}
    for src in copied:
        assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is copied but excluded from the context"


# ---- Enterprise Gateway kernelspec examples ----------------------------------------------------


def test_eg_kernelspecs_are_well_formed():
    for name in ("kernelspec-eg-launch.json", "kernelspec-eg-kubernetes.json"):
        spec = json.loads((REPO / "docker" / name).read_text())
        assert spec["language"] == "sql"
        pp = spec["metadata"]["process_proxy"]["class_name"]
        assert pp.startswith("enterprise_gateway.services.processproxies.")
        argv = spec["argv"]
        for flag, placeholder in (
            ("--RemoteProcessProxy.kernel-id", "{kernel_id}"),
            ("--RemoteProcessProxy.response-address", "{response_address}"),
            ("--RemoteProcessProxy.public-key", "{public_key}"),
            ("--RemoteProcessProxy.port-range", "{port_range}"),
        ):
            assert argv[argv.index(flag) + 1] == placeholder, (name, flag)
    k8s = json.loads((REPO / "docker" / "kernelspec-eg-kubernetes.json").read_text())
    assert k8s["metadata"]["process_proxy"]["config"]["image_name"].startswith("kindling")


def test_eg_pod_template_runs_the_launcher_unprivileged():
    """The Jinja template with its {% %} lines dropped and {{ }} values filled in is a Pod."""
    text = (REPO / "docker" / "kernel-pod.yaml.j2").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("{%"))
    text = re.sub(r"\{\{\s*kernel_(uid|gid)[^}]*\}\}", "1000", text)
    text = re.sub(r"\{\{\s*(\w+)[^}]*\}\}", lambda m: f"x-{m.group(1)}", text)
    pod = yaml.safe_load(text)
    assert pod["kind"] == "Pod" and pod["spec"]["restartPolicy"] == "Never"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == "x-kernel_image"
    assert c["args"][0] == "launch"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp"]
