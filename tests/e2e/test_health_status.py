"""`kms health` and `kms status` as subprocesses against the real `kms serve` on loopback: both ports, a swapped
pair, the metrics port, a server that is down or draining, an uninitialized and an initialized server, with and
without credentials, and the exit codes of every kms command (0 ok, 1 usage or local, 2 server or trust)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import REPO, ServerProcess


@pytest.fixture(scope="module")
def srv(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("health") / "data", log_level="info")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


def base_env(work: Path) -> dict[str, str]:
    """No KMS_ settings of the caller's, and a KMS home of this module's (credentials by name go there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
    env.update(PYTHONPATH=str(REPO), KMS_HOME=str(work / "home"))
    return env


def trusting(srv: ServerProcess, work: Path) -> dict[str, str]:
    """The policy a client of this simulated server uses (from the environment, as the README does)."""
    env = base_env(work)
    env.update(KMS_MRSIGNER=srv.mrsigner.hex(), KMS_SIMULATED_ROOT=str(srv.root_pem), KMS_ALLOW_SIMULATION_INSECURE="1")
    return env


def kms(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "kms", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def health(srv: ServerProcess, work: Path, *extra: str, api: str | None = None, port: str | None = None):
    args = ["health", "--server", api or srv.api, "--health-server", port or srv.info["health_listen"], *extra]
    return kms(base_env(work), work, *args)


def free_port() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# --- kms health -------------------------------------------------------------------------------------------

def test_health_of_both_ports(srv: ServerProcess, work: Path) -> None:
    proc = health(srv, work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["PORT", "ADDRESS", "STATUS"]
    assert lines[1].split()[:3] == ["api", srv.api, "SERVING"]
    assert lines[2].split()[:3] == ["health", srv.info["health_listen"], "SERVING"]
    report = json.loads(health(srv, work, "--output", "json").stdout)
    assert report["ok"] is True and report["service"] == "kms.v1.KeyManagementService"
    assert [(p["port"], p["status"]) for p in report["ports"]] == [("api", "SERVING"), ("health", "SERVING")]


def test_health_probes_log_at_debug_only(srv: ServerProcess, work: Path) -> None:
    """The API port logs every RPC at info, but a successful health check at debug (probes ask every 10 s)."""
    assert health(srv, work).returncode == 0
    assert kms(trusting(srv, work), work, "status", "--server", srv.api).returncode == 0
    finished = [json.loads(line) for line in srv.lines if '"rpc finished"' in line]
    assert any(e["method"] == "/kms.v1.KeyManagementService/GetEvidence" for e in finished)  # info is written
    assert not any(e["method"].startswith("/grpc.health.v1.Health/") for e in finished)  # the probe's is not


def test_health_default_health_address_is_port_7444_of_the_server_host(srv: ServerProcess, work: Path) -> None:
    """Without --health-server the health port is the --server host's 7444 (the default health_listen): nothing
    of this test server listens there, so that port fails and the message names it."""
    proc = kms(base_env(work), work, "health", "--server", srv.api, "--output", "json")
    report = json.loads(proc.stdout)
    assert report["ports"][1]["address"] == srv.api.rpartition(":")[0] + ":7444"
    if report["ports"][1]["ok"]:  # another server of this machine holds 7444: nothing to show
        pytest.skip("a server on this machine listens on 127.0.0.1:7444")
    assert proc.returncode == 2 and report["ok"] is False
    assert proc.stderr.splitlines() == [
        "error: not serving: the health port 127.0.0.1:7444: UNREACHABLE (nothing listens there (connection "
        "refused): is the server running, and is this its address?)"]


def test_swapped_ports_are_named(srv: ServerProcess, work: Path) -> None:
    proc = health(srv, work, api=srv.info["health_listen"], port=srv.api)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert f"the api port {srv.info['health_listen']}: WRONG_PORT (a gRPC health server, but not the API port" \
        in proc.stderr
    assert f"the health port {srv.api}: WRONG_PORT (the API port (it echoes x-request-id)" in proc.stderr
    assert "--server takes the API port (default 7443)" in proc.stderr


def test_the_metrics_port_is_not_the_api_port(srv: ServerProcess, work: Path) -> None:
    proc = health(srv, work, "--timeout", "3", api=srv.metrics)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: not serving: the api port {srv.metrics}: WRONG_PORT (it answers, but not gRPC (HTTP/1): the "
        "metrics port? --server takes the API port (default 7443), --health-server the plaintext health port "
        "(default 7444); the metrics port answers HTTP only)"]
    rows = [line.split()[:3] for line in proc.stdout.splitlines()[1:]]
    assert rows == [["api", srv.metrics, "WRONG_PORT"], ["health", srv.info["health_listen"], "SERVING"]]


def test_a_server_that_is_down(srv: ServerProcess, work: Path) -> None:
    api, port = free_port(), free_port()
    proc = health(srv, work, "--timeout", "3", api=api, port=port)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: not serving: the api port {api}: UNREACHABLE (nothing listens there")
    assert f"; the health port {port}: UNREACHABLE (nothing listens there" in line
    report = json.loads(health(srv, work, "--output", "json", api=api, port=port).stdout)
    assert report["ok"] is False and [p["status"] for p in report["ports"]] == ["UNREACHABLE", "UNREACHABLE"]


@pytest.mark.parametrize(("args", "text"), [
    (["--server", "nohost"], "argument --server: expected HOST:PORT"),  # checked as it is parsed (flags.py)
    (["--server", "127.0.0.1:70000"], "argument --server: expected HOST:PORT (port 1..65535)"),
    (["--health-server", "x:"], "--health-server takes HOST:PORT"),
    (["--timeout", "0"], "--timeout is 0..300 seconds"),
])
def test_health_usage_errors_exit_1(work: Path, args: list[str], text: str) -> None:
    proc = kms(base_env(work), work, "health", *args)
    assert proc.returncode == 1 and text in proc.stderr and proc.stdout == ""


def test_a_draining_server_is_not_serving(build: Path, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--shutdown-delay-s=20")
    try:
        address = server.info["health_listen"]
        assert health(server, tmp_path).returncode == 0
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while not any('"health NOT_SERVING; draining"' in line for line in server.lines):
            assert time.monotonic() < deadline, "the server did not start draining"
            time.sleep(0.1)
        proc = health(server, tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            f"error: not serving: the api port {server.api}: NOT_SERVING (draining or not started); "
            f"the health port {address}: NOT_SERVING (draining or not started)"]
    finally:
        server.stop()
    proc = health(server, tmp_path, "--timeout", "3")
    assert proc.returncode == 2 and proc.stderr.count("UNREACHABLE (nothing listens there") == 2  # and once gone


def test_the_docs_name_every_port_status() -> None:
    from kms.commands.health import STATUSES

    docs = (REPO / "docs" / "operations.md").read_text()
    section = docs[docs.index("\n## Health\n"):docs.index("\n## Shutdown\n")]
    assert all(f"`{status}`" in section for status in STATUSES), STATUSES


# --- kms status -------------------------------------------------------------------------------------------

def test_status_of_an_uninitialized_server_without_credentials(srv: ServerProcess, work: Path) -> None:
    proc = kms(trusting(srv, work), work, "status", "--server", srv.api, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verified"] is True and report["failed_step"] is None
    assert report["mrsigner"] == srv.mrsigner.hex() and report["mrenclave"] == srv.mrenclave.hex()
    assert report["isvprodid"] == 1 and report["isvsvn"] == 1 and report["debug"] is False
    assert report["tcb_status"] == "UpToDate" and report["advisory_ids"] == []
    assert report["simulated"] is True and report["domain_id"] is None and report["initialized"] is False
    assert report["state_head"] is None and report["credentials"] is None
    assert report["collateral"].startswith("valid until ")
    table = kms(trusting(srv, work), work, "status", "--server", srv.api).stdout
    assert "unknown without pinned credentials" in table and "none: the evidence alone" in table
    assert "SIMULATED" in table and "not initialized" in table


def test_status_refused_evidence_still_shows_what_it_established(srv: ServerProcess, work: Path) -> None:
    env = trusting(srv, work)
    del env["KMS_ALLOW_SIMULATION_INSECURE"]
    proc = kms(env, work, "status", "--server", srv.api)
    assert proc.returncode == 2
    assert "NO (refused at policy_simulation; what follows is claimed)" in proc.stdout and "UpToDate" in proc.stdout
    assert proc.stderr.startswith("error: server NOT trusted") and len(proc.stderr.splitlines()) == 1
    proc = kms(trusting(srv, work), work, "status", "--server", srv.api, "--mrsigner", "00" * 32, "--output", "json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["failed_step"] == "policy_mrsigner"


def test_status_exit_codes_for_local_errors_and_wrong_servers(srv: ServerProcess, work: Path) -> None:
    proc = kms(base_env(work), work, "status", "--server", srv.api)  # nothing pinned
    assert proc.returncode == 1 and "pin MRENCLAVE and/or MRSIGNER" in proc.stderr
    env = trusting(srv, work)
    down = free_port()
    proc = kms(env, work, "status", "--server", down, "--timeout", "3")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: nothing listens at {down} (connection refused): is the KMS "
                                        "running, with this API address?"]  # kms.client.transport's wording
    proc = kms(env, work, "status", "--server", srv.info["health_listen"])
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "UNIMPLEMENTED" in proc.stderr and "the health port?" in proc.stderr
    proc = kms(env, work, "status", "--server", srv.metrics, "--timeout", "3")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert f"{srv.metrics} does not speak gRPC (an HTTP/1 server answered): the metrics port?" in proc.stderr
    proc = kms(env, work, "status", "--server", srv.api, "--credentials", "no/such/dir")
    assert proc.returncode == 1 and "--credentials no/such/dir: no client credentials there" in proc.stderr


def test_status_with_credentials_reads_the_state_head(srv: ServerProcess, work: Path) -> None:
    """Default credentials that are not pinned yet: the evidence alone. Once `kms admin init` pinned them: a
    session, the pinned domain and the server's state head. Credentials named on purpose must be pinned (1) and
    to this server's domain (2)."""
    env = trusting(srv, work)
    assert kms(env, work, "credentials", "new").returncode == 0  # credentials/default, not pinned yet
    unpinned = kms(env, work, "status", "--server", srv.api, "--output", "json")
    assert unpinned.returncode == 0, unpinned.stderr
    assert json.loads(unpinned.stdout)["credentials"] is None and json.loads(unpinned.stdout)["state_head"] is None

    assert kms(env, work, "audit", "keygen", "--out", "auditor").returncode == 0
    init = kms(env, work, "admin", "init", "--recovery-keys", "1", "--auditor-key", "auditor/auditor.pub",
               "--server", srv.api, "--output", "json")
    assert init.returncode == 0, init.stderr
    domain = json.loads(init.stdout)["domain_id"]

    proc = kms(env, work, "status", "--server", srv.api, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    shown = json.loads(kms(env, work, "credentials", "show", "--output", "json").stdout)
    assert report["verified"] is True and report["domain_id"] == domain and report["initialized"] is True
    assert report["state_head"] == shown["state_head"] and report["state_head"].count(":") == 1
    assert report["credentials"] == str(work / "home" / "credentials" / "default")
    table = kms(env, work, "status", "--server", srv.api).stdout
    assert f"domain_id        {domain}" in table and f"state_head       {report['state_head']}" in table

    assert kms(env, work, "credentials", "new", "--out", "stranger").returncode == 0
    proc = kms(env, work, "status", "--server", srv.api, "--credentials", "stranger")
    assert proc.returncode == 1 and "not pinned to a domain" in proc.stderr
    proc = kms({**env, "KMS_CREDENTIALS": "stranger"}, work, "status", "--server", srv.api)
    assert proc.returncode == 1 and "not pinned to a domain" in proc.stderr

    assert kms(env, work, "credentials", "new", "--out", "elsewhere", "--domain", "ab" * 16).returncode == 0
    proc = kms(env, work, "status", "--server", srv.api, "--credentials", "elsewhere")
    assert proc.returncode == 2 and proc.stderr.startswith("error: server NOT trusted") and proc.stdout == ""
    assert "abab" in proc.stderr and domain in proc.stderr


def test_health_of_several_replicas(srv: ServerProcess, work: Path) -> None:
    """Comma-separated replicas: every port of each is asked, in order; one replica down makes the answer 2 and
    names it; health addresses pair up with API addresses or not at all."""
    down_api, down_health = free_port(), free_port()
    proc = health(srv, work, "--output", "json", api=f"{srv.api},{down_api}",
                  port=f"{srv.info['health_listen']},{down_health}")
    assert proc.returncode == 2, proc.stderr
    report = json.loads(proc.stdout)
    assert [(p["port"], p["address"], p["status"]) for p in report["ports"]] == [
        ("api", srv.api, "SERVING"), ("health", srv.info["health_listen"], "SERVING"),
        ("api", down_api, "UNREACHABLE"), ("health", down_health, "UNREACHABLE")]
    assert report["ok"] is False and down_api in proc.stderr and srv.api not in proc.stderr
    hp = srv.info["health_listen"]
    both = health(srv, work, api=f"{srv.api},{srv.api}", port=f"{hp},{hp}")
    assert both.returncode == 0 and both.stdout.count("SERVING") == 4
    mismatch = health(srv, work, api=f"{srv.api},{down_api}", port=srv.info["health_listen"])
    assert mismatch.returncode == 1 and "one health address per API address" in mismatch.stderr


def test_status_of_several_replicas(srv: ServerProcess, work: Path) -> None:
    """Each replica is verified on its own; one that is down does not hide the other's summary; exit 2."""
    env = trusting(srv, work)
    down = free_port()
    proc = kms(env, work, "status", "--server", f"{srv.api},{down}", "--timeout", "3", "--output", "json")
    assert proc.returncode == 2 and proc.stdout.startswith("["), proc.stderr
    first, second = json.loads(proc.stdout)
    assert first["server"] == srv.api and first["verified"] is True and first["tcb_status"] == "UpToDate"
    assert second["server"] == down and second["verified"] is False and "connection refused" in second["error"]
    assert proc.stderr.startswith("error: server NOT trusted") and down in proc.stderr
    table = kms(env, work, "status", "--server", f"{srv.api},{srv.api}")
    assert table.returncode == 0 and table.stdout.count(f"== {srv.api}") == 2 and "SIMULATED" in table.stdout
