"""The Helm chart (helm/kindling): `helm lint` and `helm template` with the default values and with
tests/deploy/values-custom.yaml, and properties of the rendered manifests: probes on the health
endpoints, a non-root read-only pod, ClientIP affinity over all six ports, credentials only through
secretKeyRef, and the optional objects only when enabled.

helm comes from $KL_HELM, <repo>/.tools/bin/helm (scripts/install_helm.sh builds it there; the test
runs that script when helm is missing) or PATH. No cluster is needed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kindling"
CUSTOM = Path(__file__).resolve().parent / "values-custom.yaml"
ZMQ = ("shell", "iopub", "stdin", "control", "hb")
RELEASE, NAMESPACE = "rel", "kl-test"


@lru_cache(maxsize=1)
def helm_binary() -> str:
    for cand in (os.environ.get("KL_HELM"), str(REPO / ".tools" / "bin" / "helm"), shutil.which("helm")):
        if cand and os.access(cand, os.X_OK):
            return cand
    proc = subprocess.run(
        [str(REPO / "scripts" / "install_helm.sh")], capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
        pytest.skip(f"helm is not installed and scripts/install_helm.sh could not install it:\n{proc.stderr[-2000:]}")
    return lines[-1]


def helm(*args: str) -> str:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@lru_cache(maxsize=None)
def render_text(*extra: str) -> str:
    return helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra)


def render(*extra: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render_text(*extra)) if d]


def values(custom: bool) -> dict[str, Any]:
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    if custom:
        merge(base, yaml.safe_load(CUSTOM.read_text()))
    return base


def merge(into: dict[str, Any], over: dict[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v


VARIANTS = {"default": (), "custom": ("-f", str(CUSTOM))}


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    return request.param


@pytest.fixture
def docs(variant: str) -> list[dict[str, Any]]:
    return render(*VARIANTS[variant])


@pytest.fixture
def vals(variant: str) -> dict[str, Any]:
    return values(variant == "custom")


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod["containers"][0]


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of container arguments."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def resolved_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it (ConfigMap refs resolved; Secret refs
    shown as <secret:name/key>)."""
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for e in container(docs).get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
            continue
        ref = e["valueFrom"]
        if "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            assert r["name"] in cms, f"env {e['name']} refers to a ConfigMap that is not rendered"
            assert r["key"] in cms[r["name"]], f"env {e['name']}: ConfigMap has no key {r['key']}"
            env[e["name"]] = cms[r["name"]][r["key"]]
        else:
            r = ref["secretKeyRef"]
            env[e["name"]] = f"<secret:{r['name']}/{r['key']}>"
    return env


def args_of(docs: list[dict[str, Any]]) -> list[str]:
    env = resolved_env(docs)
    return [expand(a, env) for a in container(docs)["args"]]


# ---- lint ------------------------------------------------------------------------------------


def test_helm_lint_default_and_custom():
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out
    out = helm("lint", "--strict", str(CHART), "-f", str(CUSTOM))
    assert "0 chart(s) failed" in out


def test_rendered_objects(docs, variant):
    base = ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"]
    extra = ["NetworkPolicy", "ServiceMonitor"] if variant == "custom" else []
    assert kinds(docs) == sorted(base + extra)
    for d in docs:
        assert d["metadata"]["namespace"] == NAMESPACE


# ---- the pod -----------------------------------------------------------------------------------


def test_probes_hit_the_health_endpoints(docs, vals):
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == vals["kernel"]["healthPort"], probe
    assert f"--health-port={vals['kernel']['healthPort']}" in args_of(docs)


def test_pod_runs_non_root_read_only(docs):
    dep = only(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    # Writable places are emptyDirs: /tmp and the connection file's directory.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    conn = resolved_env(docs)["KINDLING_CONNECTION_FILE"]
    assert "emptyDir" in volumes[mounts[os.path.dirname(conn)]]
    assert f"--connection-file-out={conn}" in args_of(docs)
    assert c["resources"]["requests"] and c["resources"]["limits"]


def test_grace_period_fits_the_termination_grace(docs, vals):
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    k = vals["kernel"]
    assert pod["terminationGracePeriodSeconds"] == k["gracePeriod"] + k["terminationGraceMargin"]
    assert pod["terminationGracePeriodSeconds"] > k["gracePeriod"]
    assert f"--grace-period={k['gracePeriod']}" in args_of(docs)


def test_every_argument_variable_is_defined(docs):
    """$(VAR) in args expands only for variables the container defines: none may stay literal."""
    for arg in args_of(docs):
        assert "$(" not in arg, f"unexpanded argument {arg!r}"


def test_options_come_from_the_configmap(docs, vals, variant):
    args = args_of(docs)
    assert args[0] == "serve"
    assert "--ip=0.0.0.0" in args
    for name in ZMQ:
        assert f"--{name}-port={vals['kernel']['ports'][name]}" in args
    env = resolved_env(docs)
    assert env["SPARK_REMOTE"] == vals["sparkConnect"]["url"]
    assert env["KINDLING_LOG_FORMAT"] == "json"
    if variant == "custom":
        for flag in ("--max-connections=256", "--cull-idle=3600", "--shared-session", "--display-limit=500",
                     "--log-level=debug", "--plugin-dir=/opt/kindling/plugins"):
            assert flag in args
        assert any(a.startswith("--history-file=") for a in args) and "--no-history" not in args
        assert env["TZ"] == "UTC"
        assert container(docs)["image"] == (
            "registry.example.com/kindling@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
        assert only(docs, "Deployment")["spec"]["replicas"] == 3
    else:
        assert "--no-history" in args and "--allow-shell" not in args
        assert container(docs)["image"] == f"kindling:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}"


def test_config_and_secret_changes_roll_the_pods(docs):
    ann = only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", ann["checksum/config"])
    assert re.fullmatch(r"[0-9a-f]{64}", ann["checksum/secret"])


# ---- the Service -------------------------------------------------------------------------------


def test_service_pins_clients_to_one_pod_on_all_six_ports(docs, vals):
    svc = only(docs, "Service")["spec"]
    assert svc["sessionAffinity"] == "ClientIP"
    assert svc["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == vals["service"]["sessionAffinityTimeoutSeconds"]
    want = {name: vals["kernel"]["ports"][name] for name in ZMQ} | {"metrics": vals["kernel"]["healthPort"]}
    got = {p["name"]: p["port"] for p in svc["ports"]}
    assert got == want
    # Each Service port reaches the container port of the same name and number.
    cports = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    for p in svc["ports"]:
        assert cports[p["targetPort"]] == p["port"]
        assert p["protocol"] == "TCP"
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"].items() <= pod_labels.items()


def test_custom_service_keeps_client_addresses(docs, variant):
    svc = only(docs, "Service")["spec"]
    if variant == "custom":
        assert svc["type"] == "LoadBalancer"
        assert svc["externalTrafficPolicy"] == "Local"
        assert svc["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    else:
        assert svc["type"] == "ClusterIP" and "externalTrafficPolicy" not in svc


# ---- credentials -----------------------------------------------------------------------------


def secret_values(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in only(docs, "Secret")["data"].items()}


def test_credentials_reach_the_container_only_through_secret_refs(docs, variant):
    secret = only(docs, "Secret")
    data = secret_values(docs)
    env = {e["name"]: e for e in container(docs)["env"]}
    key_ref = env["KINDLING_KEY"]["valueFrom"]["secretKeyRef"]
    assert key_ref == {"name": secret["metadata"]["name"], "key": "key"}
    if variant == "custom":
        assert data["key"] == "key-KL-TEST-7a41c2e8f5"
        tok_ref = env["SPARK_CONNECT_AUTHENTICATE_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert tok_ref == {"name": secret["metadata"]["name"], "key": "spark-token"}
        assert data["spark-token"] == "tok-KL-TEST-0d6f3c1e9b"
    else:
        # Generated when not given.
        assert re.fullmatch(r"[A-Za-z0-9]{64}", data["key"])
        assert "SPARK_CONNECT_AUTHENTICATE_TOKEN" not in env and "spark-token" not in data
    for e in container(docs)["env"]:
        if "value" in e:
            assert e["value"] not in data.values(), f"env {e['name']} carries a secret in plain text"


def test_no_plaintext_secret_outside_the_secret(docs):
    data = secret_values(docs)
    others = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    for name, value in data.items():
        assert value not in others, f"{name} appears in plain text outside the Secret"
        assert base64.b64encode(value.encode()).decode() not in others
    for arg in container(docs)["args"]:
        assert not any(v in arg for v in data.values())
    cm = only(docs, "ConfigMap")["data"]
    assert not any(re.search(r"KEY|TOKEN", k) for k in cm), f"credential-like ConfigMap keys: {list(cm)}"


def test_generated_token_and_existing_secret():
    docs = render("--set", "sparkConnect.token.generate=true")
    data = secret_values(docs)
    assert re.fullmatch(r"[A-Za-z0-9]{48}", data["spark-token"])
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["SPARK_CONNECT_AUTHENTICATE_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "spark-token"

    docs = render("--set", "auth.existingSecret=team-kindling", "--set", "sparkConnect.token.inExistingSecret=true")
    assert "Secret" not in kinds(docs)
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["KINDLING_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "team-kindling"
    assert env["SPARK_CONNECT_AUTHENTICATE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "team-kindling"
    assert "checksum/secret" not in only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]


# ---- availability, network, monitoring ---------------------------------------------------


def test_pod_disruption_budget(docs, variant):
    pdb = only(docs, "PodDisruptionBudget")["spec"]
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    if variant == "custom":
        assert pdb["minAvailable"] == 2 and "maxUnavailable" not in pdb
    else:
        assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    assert "PodDisruptionBudget" not in kinds(render("--set", "podDisruptionBudget.enabled=false"))


def test_network_policy_limits_ingress_to_client_namespaces(docs, vals, variant):
    if variant == "default":
        assert "NetworkPolicy" not in kinds(docs)
        return
    np = only(docs, "NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Ingress"]
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert np["podSelector"]["matchLabels"].items() <= pod_labels.items()
    clients, metrics = np["ingress"]
    sel = clients["from"][0]["namespaceSelector"]["matchExpressions"][0]
    assert sel["key"] == "kubernetes.io/metadata.name" and sel["operator"] == "In"
    assert sorted(sel["values"]) == sorted(["notebooks", "jobs", NAMESPACE])
    assert clients["from"][0]["podSelector"] == {"matchLabels": {"kindling-client": "true"}}
    assert sorted(p["port"] for p in clients["ports"]) == sorted(vals["kernel"]["ports"][n] for n in ZMQ)
    assert metrics["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["monitoring"]
    assert [p["port"] for p in metrics["ports"]] == [vals["kernel"]["healthPort"]]


def test_service_monitor_scrapes_metrics(docs, variant):
    if variant == "default":
        assert "ServiceMonitor" not in kinds(docs)
        return
    sm = only(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics" and ep["interval"] == "15s"
    svc_labels = only(docs, "Service")["metadata"]["labels"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc_labels.items()
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


@pytest.mark.parametrize(
    "setting",
    [
        "sparkConnect.url=sc://spark:15002/;token=abc",  # a token belongs in the Secret
        "extraEnv[0].name=KINDLING_KEY",  # so does the key
        "kernel.ports.shell=70000",
        "service.type=ExternalName",
        "kernel.logFormat=xml",
    ],
)
def test_schema_refuses_bad_values(setting: str):
    proc = subprocess.run(
        [helm_binary(), "template", RELEASE, str(CHART), "--set", setting], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0, f"{setting} was accepted"
    assert "schema" in proc.stderr


# ---- the chart's command line against the real binary --------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def kindling_binary() -> Path:
    value = os.environ.get("KINDLING_BINARY")
    return Path(value).resolve() if value else REPO / "build" / "kindling"


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_rendered_pod_command_runs_the_kernel_service(tmp_path: Path):
    """The container's arguments and environment, resolved as the kubelet does, start a working
    `kindling serve`: it binds the chart's ports, writes the connection file with the Secret's key,
    answers the probes' paths, serves a client, and exits 0 on SIGTERM."""
    binary = kindling_binary()
    if not binary.is_file():
        pytest.fail(f"kindling binary not found at {binary}: build it or set KINDLING_BINARY", pytrace=False)
    ports = dict(zip((*ZMQ, "health"), free_ports(6)))
    conn = tmp_path / "run" / "connection.json"
    conn.parent.mkdir()
    sets = [f"kernel.ports.{n}={ports[n]}" for n in ZMQ] + [
        f"kernel.healthPort={ports['health']}",
        f"kernel.connectionFile={conn}",
        "kernel.gracePeriod=2",
        "sparkConnect.url=sc://127.0.0.1:9",
    ]
    docs = render(*[a for s in sets for a in ("--set", s)])
    args = args_of(docs)
    secret = secret_values(docs)
    env = {k: v for k, v in resolved_env(docs).items() if not v.startswith("<secret:")}
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path), PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    env["KINDLING_KEY"] = secret["key"]  # what the secretKeyRef delivers
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(binary), *args], env=env, stdout=log, stderr=log)
    kc = None
    try:
        deadline = time.monotonic() + 30
        while not conn.exists() or http_status(ports["health"], "/healthz") != 200:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "no /healthz within 30 s"
            time.sleep(0.2)
        info = json.loads(conn.read_text())
        assert {n: info[f"{n}_port"] for n in ZMQ} == {n: ports[n] for n in ZMQ}
        assert info["key"] == secret["key"] and info["signature_scheme"] == "hmac-sha256"
        # Spark is unreachable here: not ready, so a Service would send no clients.
        assert http_status(ports["health"], "/readyz") == 503
        assert http_status(ports["health"], "/metrics") == 200
        # The image's HEALTHCHECK command.
        hc = subprocess.run([str(binary), "health", "--port", str(ports["health"]), "--quiet"], timeout=30)
        assert hc.returncode == 0

        from jupyter_client.blocking.client import BlockingKernelClient

        kc = BlockingKernelClient()
        kc.load_connection_info({**info, "ip": "127.0.0.1"})
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        msg_id = kc.execute("%echo through the chart")
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
        kc.stop_channels()
        kc = None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert secret["key"] not in (tmp_path / "serve.log").read_text(), "the key reached the log"
    finally:
        if kc is not None:
            kc.stop_channels()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_notes_write_a_usable_connection_file(tmp_path: Path):
    """NOTES.txt (which `helm template` does not render) prints a command that writes a valid
    connection file for the Service: rendered here through a copy of the chart."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes-check.yaml").write_text(
        '{{- define "notes.check" }}' + notes + "{{- end }}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ include "notes.check" . | quote }}\n'
    )
    out = helm("template", "kindling", str(chart), "-n", "nb", "--show-only", "templates/notes-check.yaml")
    text = yaml.safe_load(out)["data"]["notes"]
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("(umask 077; printf")]
    subprocess.run(["bash", "-c", line], cwd=tmp_path, env={"KEY": "k3y", "PATH": os.environ["PATH"]}, check=True)
    info = json.loads((tmp_path / "kindling.json").read_text())
    assert info == {
        "transport": "tcp", "ip": "kindling.nb.svc", "shell_port": 5555, "iopub_port": 5556,
        "stdin_port": 5557, "control_port": 5558, "hb_port": 5559, "signature_scheme": "hmac-sha256", "key": "k3y",
    }
    assert (tmp_path / "kindling.json").stat().st_mode & 0o077 == 0
    assert "get secret kindling " in text
