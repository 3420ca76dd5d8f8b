"""deploy/: every overlay renders, validates offline against the Kubernetes schemas in strict mode, and keeps
the security settings, SGX resources, probes, disruption budget and network policy that docs/deploy.md
describes (so a later edit cannot silently drop them)."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest

from kms import config
from tests.deploy.conftest import (
    API_PORT,
    CLUSTER_OVERLAYS,
    DEPLOY,
    HEALTH_PORT,
    KMS_UID,
    METRICS_PORT,
    OVERLAYS,
    SECRET_EXAMPLES,
    SGX_OVERLAYS,
    WORKLOAD_KINDS,
    containers,
    dump,
    env_values,
    one,
    pod_spec,
    render,
)

# The oldest Kubernetes these manifests target (native gRPC probes, PVC retention policy, PDB
# unhealthyPodEvictionPolicy are all on by default there) and the newest schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.30.0", "1.37.0")
INTEL_RESOURCES = {"sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"}
ACK_RESOURCE = "alibabacloud.com/sgx_epc_MiB"
SGX_RESOURCES = INTEL_RESOURCES | {ACK_RESOURCE}
POD_LABELS = {"app.kubernetes.io/name": "enclave-kms", "app.kubernetes.io/component": "server"}


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    assert found, "no workload rendered"
    return found


def kms_statefulset(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "StatefulSet", "enclave-kms")


def kms_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in pod_spec(kms_statefulset(docs))["containers"] if c["name"] == "kms")


def test_every_overlay_is_there() -> None:
    assert set(OVERLAYS) == {"intel", "intel-dcap-inproc", "ack", "simulated", "cluster", "cluster-sandboxed"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_expected_objects(rendered, overlay: str) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered[overlay])
    expected = {("NetworkPolicy", "enclave-kms"), ("PodDisruptionBudget", "enclave-kms"),
                ("Service", "enclave-kms"), ("Service", "enclave-kms-internal"),
                ("ServiceAccount", "enclave-kms"), ("StatefulSet", "enclave-kms")}
    if overlay != "simulated":
        expected |= {("ConfigMap", "enclave-kms-sgx-qcnl"), ("StorageClass", "enclave-kms-local")}
    assert set(kinds) == expected
    assert len(kinds) == len(set(kinds))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_strictly_offline(rendered, overlay: str, version: str) -> None:
    """Bundled JSON schemas, strict: an unknown or misspelt field fails (no network is used)."""
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {version}: "
                        f"{exc.message} at {'/'.join(map(str, exc.path))}")


def test_base_validates_strictly() -> None:
    for doc in render(DEPLOY / "base"):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_strict_validation_is_not_vacuous(rendered) -> None:
    """A misspelt field and a wrong type are refused, so the test above can fail."""
    sts = copy.deepcopy(kms_statefulset(rendered["simulated"]))
    sts["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[-1], strict=True)
    sts = copy.deepcopy(kms_statefulset(rendered["simulated"]))
    sts["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[-1], strict=True)


# ---- security settings of every workload ------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_run_locked_down(rendered, overlay: str) -> None:
    for workload in workloads(rendered[overlay]):
        where = f"{overlay}: {workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser") == KMS_UID and pod_sc.get("runAsGroup") == KMS_UID, where
        assert pod_sc.get("fsGroup") == KMS_UID and pod_sc.get("fsGroupChangePolicy") == "OnRootMismatch", where
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}, where
        assert spec.get("automountServiceAccountToken") is False, where
        assert spec.get("enableServiceLinks") is False, where  # no KMS_PORT_* variables from a Service named kms
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{where}: {flag}"
        for c in containers(workload):
            sc = c.get("securityContext", {})
            cwhere = f"{where} container {c['name']}"
            assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", KMS_UID) != 0, cwhere
            assert sc.get("allowPrivilegeEscalation") is False, cwhere
            assert sc.get("readOnlyRootFilesystem") is True, cwhere
            assert sc.get("privileged", False) is False, cwhere
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], cwhere
            assert not sc.get("capabilities", {}).get("add"), cwhere
            assert sc.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}, cwhere
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{cwhere}: {kind} {res}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_paths_are_the_data_volume_and_tmp_only(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    sts = kms_statefulset(docs)
    spec = pod_spec(sts)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in kms_container(docs)["volumeMounts"]}
    assert mounts["/var/lib/kms"]["name"] == "data"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["medium"] == "Memory"
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["sizeLimit"]
    for path, mount in mounts.items():
        if path not in ("/var/lib/kms", "/tmp"):
            assert mount.get("readOnly") is True, f"{overlay}: {path} is mounted writable"
        volume = volumes.get(mount["name"])
        if volume and "hostPath" in volume:
            assert volume["hostPath"]["path"] == "/var/run/aesmd" and path == "/var/run/aesmd", (overlay, path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_probes_on_the_plaintext_health_port(rendered, overlay: str) -> None:
    c = kms_container(rendered[overlay])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": API_PORT, "health": HEALTH_PORT, "metrics": METRICS_PORT}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(c[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, (overlay, probe)
        assert c[probe]["grpc"]["port"] == HEALTH_PORT, (overlay, probe)
    assert c["readinessProbe"]["grpc"]["service"] == "kms.v1.KeyManagementService"
    env = env_values(c, rendered[overlay])
    assert env["KMS_HEALTH_LISTEN"] == f"0.0.0.0:{HEALTH_PORT}"  # the kubelet probes the pod IP
    assert env["KMS_LISTEN"] == f"0.0.0.0:{API_PORT}"
    assert env["KMS_METRICS_LISTEN"] == f"0.0.0.0:{METRICS_PORT}"


def test_probe_service_is_the_servers_service_name() -> None:
    """The readiness probe asks what `kms health` asks, on the port it asks by default (docs/operations.md)."""
    from kms.commands import health
    from kms.proto.v1 import kms_pb2

    assert kms_pb2.DESCRIPTOR.services_by_name["KeyManagementService"].full_name == "kms.v1.KeyManagementService"
    assert health.SERVICE == "kms.v1.KeyManagementService" and health.DEFAULT_HEALTH_PORT == HEALTH_PORT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kms_environment_is_valid_server_settings(rendered, overlay: str) -> None:
    """Every KMS_* variable names a `kms serve` setting, and together they pass its validation."""
    env = env_values(kms_container(rendered[overlay]), rendered[overlay])
    kms_env = {k: v for k, v in env.items() if k.startswith(config.ENV_PREFIX)}
    unknown = {k for k in kms_env if k[len(config.ENV_PREFIX):].lower() not in config.FIELDS}
    assert not unknown, f"{overlay}: not kms serve settings: {unknown}"
    settings = config.load_settings(env=kms_env)
    assert str(settings.data_dir) == "/var/lib/kms"
    assert settings.sim_pccs is (overlay == "simulated")
    assert settings.quoting == ("simulated" if overlay == "simulated" else "dcap")  # the SGX overlays: Intel's QE3
    if overlay == "simulated":
        assert not settings.collateral_url
    else:
        assert settings.collateral_url.startswith("https://")
    assert bool(settings.store_url) is (overlay in CLUSTER_OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_statefulset_pins_and_spreads_replicas(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    sts = kms_statefulset(docs)
    # one whole KMS per overlay; the cluster overlays: replicas of one domain on one database (docs/cluster.md)
    assert sts["spec"]["replicas"] == (3 if overlay in CLUSTER_OVERLAYS else 1)
    assert sts["spec"]["selector"]["matchLabels"] == POD_LABELS
    assert POD_LABELS.items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    anti = pod_spec(sts)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" and t["labelSelector"]["matchLabels"] == POD_LABELS
               for t in anti), dump(anti)
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    if overlay == "simulated":
        assert "storageClassName" not in claim  # the default class: the simulated "fuses" move with the volume
    else:
        # sealed state stays on the node that sealed it: a local-volume class bound at scheduling
        assert claim["storageClassName"] == "enclave-kms-local"
        sc = one(docs, "StorageClass", "enclave-kms-local")
        assert sc["volumeBindingMode"] == "WaitForFirstConsumer" and sc["reclaimPolicy"] == "Retain"
        assert sc["provisioner"] == "kubernetes.io/no-provisioner"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_covers_the_pods(rendered, overlay: str) -> None:
    pdb = one(rendered[overlay], "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"] == POD_LABELS
    if overlay in CLUSTER_OVERLAYS:  # a majority of the replicas stays up: a drain takes one node at a time
        replicas = kms_statefulset(rendered[overlay])["spec"]["replicas"]
        assert pdb["spec"]["minAvailable"] == replicas // 2 + 1 and "maxUnavailable" not in pdb["spec"]
    else:  # the only replica cannot move: its sealed state is its node's
        assert pdb["spec"]["maxUnavailable"] == 0
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy(rendered, overlay: str) -> None:
    np = one(rendered[overlay], "NetworkPolicy")["spec"]
    assert np["podSelector"]["matchLabels"] == POD_LABELS
    assert sorted(np["policyTypes"]) == ["Egress", "Ingress"]
    by_port: dict[int, list[dict[str, Any]]] = {}
    for rule in np["ingress"]:
        assert rule.get("from") and rule.get("ports"), f"{overlay}: an ingress rule open to all: {dump(rule)}"
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(rule["from"])
    assert set(by_port) == {API_PORT, HEALTH_PORT, METRICS_PORT}
    # no replica-to-replica traffic: joins are relayed through the database, no rule admits the KMS pods
    assert not [peer for peers in by_port.values() for peer in peers
                if POD_LABELS.items() <= peer.get("podSelector", {}).get("matchLabels", {}).items()]
    # the API only from labelled client pods
    assert by_port[API_PORT] and all(
        peer.get("podSelector", {}).get("matchLabels") == {"enclave-kms.io/client": "true"} and "ipBlock" not in peer
        for peer in by_port[API_PORT]), dump(by_port[API_PORT])
    assert all(peer.get("podSelector", {}).get("matchLabels") == {"enclave-kms.io/metrics-scraper": "true"}
               for peer in by_port[METRICS_PORT])
    egress_ports = set()
    for rule in np["egress"]:
        assert rule.get("to") and rule.get("ports"), f"{overlay}: an egress rule open to all: {dump(rule)}"
        egress_ports |= {(p["port"], p["protocol"]) for p in rule["ports"]}
    dns = {(53, "UDP"), (53, "TCP")}
    database = {(5432, "TCP")} if overlay in CLUSTER_OVERLAYS else set()
    assert egress_ports == (dns if overlay == "simulated" else dns | {(443, "TCP"), (8081, "TCP")}) | database


# ---- SGX platforms -------------------------------------------------------------------------------------

def sgx_resources(c: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {kind: {k: v for k, v in c["resources"].get(kind, {}).items() if k in SGX_RESOURCES}
            for kind in ("requests", "limits")}


def test_intel_overlays_request_epc_enclave_and_provision(rendered) -> None:
    aesmd = sgx_resources(kms_container(rendered["intel"]))
    inproc = sgx_resources(kms_container(rendered["intel-dcap-inproc"]))
    for res in (aesmd, inproc):
        assert res["requests"] == res["limits"]
    assert aesmd["limits"] == {"sgx.intel.com/epc": "64Mi", "sgx.intel.com/enclave": "1"}
    assert inproc["limits"] == {"sgx.intel.com/epc": "64Mi", "sgx.intel.com/enclave": "1",
                                "sgx.intel.com/provision": "1"}
    for overlay in ("intel", "intel-dcap-inproc"):
        spec = pod_spec(kms_statefulset(rendered[overlay]))
        assert spec["nodeSelector"] == {"intel.feature.node.kubernetes.io/sgx": "true"}
        assert {"key": "sgx.intel.com/epc", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_ack_overlay_requests_epc_mib_with_toleration_and_node_selector(rendered) -> None:
    c = kms_container(rendered["ack"])
    res = sgx_resources(c)
    assert res["requests"] == res["limits"] == {ACK_RESOURCE: "64"}
    spec = pod_spec(kms_statefulset(rendered["ack"]))
    assert {"key": ACK_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"] == {"alibabacloud.com/tee-hardware-category": "intel-sgx2"}
    qcnl = json.loads(one(rendered["ack"], "ConfigMap")["data"]["sgx_default_qcnl.conf"])
    assert ".aliyuncs.com/sgx/certification/v4/" in qcnl["pccs_url"]


@pytest.mark.parametrize("overlay", ["intel", "ack"])
def test_out_of_process_quoting_through_aesmd(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    c = kms_container(docs)
    assert env_values(c, docs)["SGX_AESM_ADDR"] == "1"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/run/aesmd")
    volume = next(v for v in pod_spec(kms_statefulset(docs))["volumes"] if v["name"] == mount["name"])
    assert volume["hostPath"] == {"path": "/var/run/aesmd", "type": "Directory"}
    assert mount.get("readOnly") is True
    # the webhook would inject a second /var/run/aesmd volume on top of ours
    assert "sgx.intel.com/quote-provider" not in kms_statefulset(docs)["spec"]["template"]["metadata"].get(
        "annotations", {})


def test_in_process_quoting_has_no_aesmd(rendered) -> None:
    docs = rendered["intel-dcap-inproc"]
    c = kms_container(docs)
    assert "SGX_AESM_ADDR" not in env_values(c, docs)
    assert all(m["mountPath"] != "/var/run/aesmd" for m in c["volumeMounts"])


@pytest.mark.parametrize("overlay", SGX_OVERLAYS)
def test_qcnl_config_names_a_pccs(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    cm = one(docs, "ConfigMap", "enclave-kms-sgx-qcnl")
    qcnl = json.loads(cm["data"]["sgx_default_qcnl.conf"])
    assert qcnl["pccs_url"].startswith("https://") and qcnl["pccs_url"].endswith("/sgx/certification/v4/")
    assert "localhost" not in qcnl["pccs_url"] and "127.0.0.1" not in qcnl["pccs_url"]  # a pod's own loopback
    assert qcnl["use_secure_cert"] is True
    assert cm["data"]["collateral_url"].startswith("https://")
    assert cm["data"]["collateral_url"].rstrip("/").endswith("/sgx/certification/v4")
    c = kms_container(docs)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/sgx_default_qcnl.conf")
    assert mount["subPath"] == "sgx_default_qcnl.conf" and mount["readOnly"] is True
    assert env_values(c, docs)["QCNL_CONF_PATH"] == "/etc/sgx_default_qcnl.conf"


def test_simulated_overlay_has_no_sgx_and_says_so(rendered) -> None:
    docs = rendered["simulated"]
    sts = kms_statefulset(docs)
    c = kms_container(docs)
    assert sgx_resources(c) == {"requests": {}, "limits": {}}
    spec = pod_spec(sts)
    assert all("hostPath" not in v for v in spec["volumes"])
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert "SGX_AESM_ADDR" not in env_values(c, docs)
    assert sts["spec"]["template"]["metadata"]["labels"]["enclave-kms.io/sgx-platform"] == "simulated"
    for meta in (sts["metadata"], sts["spec"]["template"]["metadata"]):
        assert "nothing is protected" in meta["annotations"]["enclave-kms.io/warning"]
    assert not [d for d in docs if d["kind"] in ("ConfigMap", "StorageClass")]


@pytest.mark.parametrize("overlay", SGX_OVERLAYS)
def test_sgx_overlays_request_some_epc(rendered, overlay: str) -> None:
    res = sgx_resources(kms_container(rendered[overlay]))
    assert {"sgx.intel.com/epc", ACK_RESOURCE} & set(res["limits"]), res


# ---- the cluster overlays ------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", CLUSTER_OVERLAYS)
def test_cluster_reads_the_database_password_from_a_0400_file(rendered, overlay: str) -> None:
    """The Secret's password reaches the KMS as a 0400 file: the kubelet makes Secret files group-readable under
    an fsGroup, which the store refuses, so an init container copies it (install -m 0400) to a memory volume."""
    docs = rendered[overlay]
    spec = pod_spec(kms_statefulset(docs))
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret = volumes["store-secret"]["secret"]
    assert secret["secretName"] == "enclave-kms-store" and secret["defaultMode"] == 0o400
    assert {i["key"] for i in secret["items"]} == {"password", "ca.crt"}
    assert volumes["store-password"]["emptyDir"]["medium"] == "Memory"
    (init,) = spec["initContainers"]
    assert init["image"] == kms_container(docs)["image"]
    assert init["command"] == ["install", "-m", "0400", "/etc/kms-store-secret/password", "/run/kms-store/password"]
    assert {m["mountPath"]: m["name"] for m in init["volumeMounts"]} == {
        "/etc/kms-store-secret": "store-secret", "/run/kms-store": "store-password"}
    settings = config.load_settings(env={k: v for k, v in env_values(kms_container(docs), docs).items()
                                         if k.startswith(config.ENV_PREFIX)})
    mounts = {m["mountPath"]: m for m in kms_container(docs)["volumeMounts"]}
    assert settings.store_password_file == "/run/kms-store/password"
    assert mounts["/run/kms-store"]["name"] == "store-password" and mounts["/run/kms-store"]["readOnly"] is True
    assert "sslmode=verify-full" in settings.store_url  # an external database: TLS that checks the server
    assert mounts["/etc/kms-store"]["name"] == "store-secret"  # sslrootcert=/etc/kms-store/ca.crt
    assert settings.replica_name == "enclave-kms-0"


def test_the_secret_example_is_the_one_documented() -> None:
    url = SECRET_EXAMPLES["enclave-kms-store", "url"]
    assert url in (DEPLOY / "components" / "cluster" / "statefulset-patch.yaml").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sandboxed_runtime_class_only_where_asked(rendered, overlay: str) -> None:
    runtime = pod_spec(kms_statefulset(rendered[overlay])).get("runtimeClassName")
    assert runtime == ("kata" if overlay == "cluster-sandboxed" else None)
