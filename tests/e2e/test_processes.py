"""`kms serve --processes N` as real processes (docs/cluster.md, "Processes on one node"): a supervisor and N
workers, each with its own enclave, on one data directory and store, all on the API port (SO_REUSEPORT).
Connections reach every worker (each worker's log lines carry its pid); a worker that is killed is restarted
while the others keep answering; health and metrics come from the supervisor for all workers; SIGTERM drains
every worker and ends with 0, a second SIGTERM ends them at once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kms.client import Credentials
from kms.config import ConfigError, load_settings
from kms.serve.supervisor import WORKER_ENV, Supervisor
from tests.auditor import auditor_public
from tests.e2e.conftest import client_for, recovery_public
from tests.e2e.server import ServerProcess

OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # each client its own TCP connection, so its own worker


def until(check: Callable[[], object], timeout: float = 60, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def events(server: ServerProcess, name: str) -> list[dict]:
    out = []
    for line in list(server.lines):
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def health(server: ServerProcess, service: str = "kms.v1.KeyManagementService") -> int:
    with grpc.insecure_channel(server.info["health_listen"]) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def encrypt_once(server: ServerProcess, creds: Credentials, domain: bytes, key: str) -> None:
    with client_for(server, creds, domain_id=domain, grpc_options=OWN_CONNECTION) as c:
        assert c.decrypt(c.encrypt(key, b"one node, many processes").ciphertext).plaintext == \
            b"one node, many processes"


def served_pids(server: ServerProcess) -> set[int]:
    return {e["pid"] for e in events(server, "rpc finished") if e.get("method", "").endswith("/Session")}


@pytest.fixture(scope="module")
def pair(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Credentials,
                                                                                  bytes, str]]:
    srv = ServerProcess(tmp_path_factory.mktemp("processes") / "node", "--processes=2", "--cluster-poll-s=0.2",
                        "--housekeeping-interval-s=0", log_level="info")
    creds = Credentials.generate("alice")
    try:
        with client_for(srv, creds, new_domain=True) as c:
            c.init(recovery_public(1), threshold=1, admin_name="alice", auditor_public_keys=auditor_public())
            domain, key = c.domain_id, c.create_key().key_id
        assert domain is not None
        # the worker that did not take the init loads the key its sibling sealed on this node (no join)
        until(lambda: events(srv, "loaded the domain key another process on this node sealed"),
              what="the other worker to load the sealed domain key")
        yield srv, creds, domain, key
    finally:
        code = srv.stop()
    assert code == 0, "\n".join(srv.lines[-30:])
    assert not [p for p in srv.info["worker_pids"] if alive(p)]
    assert events(srv, "stopped")[-1]["exit_codes"] == [0, 0]


def test_both_workers_serve_and_health_and_metrics_cover_both(pair) -> None:
    srv, creds, domain, key = pair
    pids = set(srv.info["worker_pids"])
    assert len(pids) == 2 and srv.pid not in pids and all(alive(p) for p in pids)
    for _ in range(40):
        encrypt_once(srv, creds, domain, key)
        if served_pids(srv) >= pids:
            break
    assert served_pids(srv) >= pids, f"requests reached only {served_pids(srv)} of {pids}"
    assert health(srv) == health_pb2.HealthCheckResponse.SERVING
    assert srv.metric("kms_serve_workers_ready") == 2
    # the supervisor's metrics add up every worker's: as many Session RPCs as the workers logged
    def agree() -> bool:
        finished = len([e for e in events(srv, "rpc finished") if e.get("method", "").endswith("/Session")])
        return srv.metric("grpc_server_handled_total", grpc_method="Session") == finished > 0

    until(agree, timeout=10, what="the summed Session metric to match the workers' logs")


def test_a_killed_worker_is_restarted_and_the_service_keeps_answering(pair) -> None:
    srv, creds, domain, key = pair
    victim = srv.info["worker_pids"][1]
    os.kill(victim, signal.SIGKILL)
    for _ in range(5):  # at once: the survivor takes every new connection
        encrypt_once(srv, creds, domain, key)
    restarted = until(lambda: [e for e in events(srv, "worker serving") if e["pid"] not in srv.info["worker_pids"]],
                      what="the worker's restart")
    new_pid = restarted[0]["pid"]
    assert [e["exit_code"] for e in events(srv, "worker ended; restarting")] == [-signal.SIGKILL]
    assert srv.metric("kms_serve_worker_restarts_total") == 1
    until(lambda: srv.metric("kms_serve_workers_ready") == 2, what="two workers ready")
    for _ in range(40):
        encrypt_once(srv, creds, domain, key)
        if new_pid in served_pids(srv):
            break
    assert new_pid in served_pids(srv), "the restarted worker never served"
    assert health(srv) == health_pb2.HealthCheckResponse.SERVING


def test_second_sigterm_ends_every_worker_at_once(build: Path, tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "node", "--processes=2", "--housekeeping-interval-s=0", "--shutdown-delay-s=30",
                        log_level="info")
    try:
        pids = srv.info["worker_pids"]
        # a long drain: health says NOT_SERVING at once, the workers keep serving while they wait
        srv.proc.send_signal(signal.SIGTERM)
        until(lambda: health(srv) == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=10, what="NOT_SERVING")
        assert srv.evidence().certificate
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.proc.wait(10)
        assert time.monotonic() - start < 5
        assert code == 1
        assert not [p for p in pids if alive(p)]
    finally:
        srv.stop()


@pytest.fixture
def _no_worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_ENV, raising=False)


async def _worker_env(settings) -> dict[str, str]:
    sup = Supervisor(settings)
    try:
        return sup.worker_env(1)
    finally:
        await sup.close()


def test_workers_get_every_setting_and_the_resolved_port(tmp_path: Path, _no_worker_env) -> None:
    """The config file's and the flags' settings reach the workers as KMS_* (the file itself does not)."""
    import asyncio

    conf = tmp_path / "kms.toml"
    conf.write_text('replica_name = "from-file"\nprocesses = 3\n')
    settings = load_settings(conf, env={}, flags={"listen": "127.0.0.1:0", "store_group_commit": False,
                                                  "data_dir": str(tmp_path / "d")})
    env = asyncio.run(_worker_env(settings))
    assert env["KMS_REPLICA_NAME"] == "from-file" and env["KMS_STORE_GROUP_COMMIT"] == "false"
    assert env["KMS_PROCESSES"] == "1" and env[WORKER_ENV] == "1" and "KMS_CONFIG" not in env
    host, _, port = env["KMS_LISTEN"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert env["KMS_METRICS_LISTEN"] == "" and env["KMS_HEALTH_LISTEN"] == "127.0.0.1:0"
    assert load_settings(env=env).replica_name == "from-file"


def test_processes_need_free_simulated_pccs_ports() -> None:
    with pytest.raises(ConfigError, match="sim_pccs_listen"):
        load_settings(env={}, flags={"processes": "2", "sim_pccs_listen": "127.0.0.1:8081"})
    with pytest.raises(ConfigError, match="processes"):
        load_settings(env={}, flags={"processes": "0"})
