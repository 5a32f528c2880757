"""The command line: version, help, and `kindling install` writing a kernelspec Jupyter can use."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from e2e_support import kindling_binary


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kindling_binary()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("VIRTUAL_ENV", "JUPYTER_DATA_DIR", "XDG_DATA_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def test_version():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kindling 0.1.0"


@pytest.mark.parametrize("args", [("--help",), ("help",), ("kernel", "--help"), ("install", "--help")])
def test_help(args):
    result = run(*args)
    assert result.returncode == 0, result.stderr
    text = (result.stdout + result.stderr).lower()
    assert "usage" in text
    if args[0] == "kernel":
        assert "--history-file" in text and "-f" in text
    if args[0] == "install":
        assert "--sys-prefix" in text and "--display-name" in text


def test_unknown_command_fails():
    result = run("no-such-command")
    assert result.returncode != 0


def test_kernel_with_missing_connection_file_fails(tmp_path):
    result = run("kernel", "-f", str(tmp_path / "missing.json"), "--no-history")
    assert result.returncode != 0
    assert result.stderr.strip(), "no message saying what went wrong"


def _spec(kernels: Path, name: str = "kindling") -> dict:
    path = kernels / name / "kernel.json"
    assert path.is_file(), f"{path} not written; found {sorted(str(p) for p in kernels.parent.rglob('*'))}"
    return json.loads(path.read_text())


def _check_default_spec(spec: dict, env: dict | None = None) -> None:
    assert spec["argv"] == [str(kindling_binary()), "kernel", "-f", "{connection_file}"]
    assert Path(spec["argv"][0]).is_absolute()
    assert spec["display_name"] == "Spark SQL (Kindling)"
    assert spec["language"] == "sql"
    assert spec["interrupt_mode"] == "message"
    assert spec["kernel_protocol_version"] == "5.5"
    assert spec["metadata"] == {"supported_encryption": ["curve"]}
    assert spec.get("env", {}) == (env or {})


def test_install_prefix(tmp_path):
    result = run("install", "--prefix", str(tmp_path), env=clean_env())
    assert result.returncode == 0, result.stderr
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    _check_default_spec(_spec(kernels))
    # jupyter_client itself accepts what was written.
    spec = KernelSpecManager(kernel_dirs=[str(kernels)]).get_kernel_spec("kindling")
    assert spec.language == "sql"
    assert spec.interrupt_mode == "message"


def test_install_sys_prefix_uses_virtual_env(tmp_path):
    result = run("install", "--sys-prefix", env=clean_env(VIRTUAL_ENV=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    # The environment is recorded, so a kernel started by that environment's Jupyter without
    # activating it still finds the environment's pyspark for the embedded local server.
    _check_default_spec(_spec(tmp_path / "share" / "jupyter" / "kernels"),
                        env={"VIRTUAL_ENV": str(tmp_path)})


def test_install_user(tmp_path):
    result = run("install", "--user", env=clean_env(HOME=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    _check_default_spec(_spec(tmp_path / ".local" / "share" / "jupyter" / "kernels"))


def test_install_options(tmp_path):
    result = run(
        "install", "--prefix", str(tmp_path), "--name", "kindling-prod", "--display-name", "Spark (prod)",
        "--env", "SPARK_USER=ada", "--env", "KL_X=a=b", env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    spec = _spec(tmp_path / "share" / "jupyter" / "kernels", "kindling-prod")
    assert spec["display_name"] == "Spark (prod)"
    assert spec["env"] == {"SPARK_USER": "ada", "KL_X": "a=b"}
    assert spec["argv"][:4] == [str(kindling_binary()), "kernel", "-f", "{connection_file}"]


def test_install_twice_replaces(tmp_path):
    for display in ("First", "Second"):
        result = run("install", "--prefix", str(tmp_path), "--display-name", display, env=clean_env())
        assert result.returncode == 0, result.stderr
    assert _spec(tmp_path / "share" / "jupyter" / "kernels")["display_name"] == "Second"
