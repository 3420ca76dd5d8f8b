"""The agent against servers it must refuse or fail over between: a policy that the server fails (another
MRSIGNER) means nothing is served and nothing is sent; two servers of one domain, one stopped, and the agent
carries on through the other; a server behind the head the agent saw is refused (freshness)."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kms.proto.agent.v1 import agent_pb2_grpc
from kms.proto.agent.v1 import local_pb2 as lp
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.agent.harness import AgentProcess, init_domain
from tests.e2e.server import ServerProcess


def health_status(agent: AgentProcess) -> int:
    with grpc.insecure_channel(agent.target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def test_a_server_that_fails_the_policy_is_not_served(build: Path, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        env = init_domain(server, tmp_path / "work")
        sessions = server.session_rpcs()
        env["KMS_MRSIGNER"] = "00" * 32
        agent = AgentProcess(env, tmp_path / "agent.sock", f"--p11-socket={tmp_path / 'p11.sock'}")
        try:
            with grpc.insecure_channel(agent.target) as channel:
                with pytest.raises(grpc.RpcError) as refused:
                    agent_pb2_grpc.KmsAgentStub(channel).GenerateRandom(pb.GenerateRandomRequest(length=8),
                                                                        timeout=30)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            details = refused.value.details()
            assert "AGENT_UNTRUSTED" in details and "no KMS server passed verification" in details
            assert "nothing was sent" in details and "mrsigner" in details.lower(), details
            assert dict(refused.value.trailing_metadata())["kms-error-code"] == "AGENT_UNTRUSTED"
            assert health_status(agent) == health_pb2.HealthCheckResponse.NOT_SERVING
            import socket

            from tests.agent.harness import local_call
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30)
                sock.connect(str(tmp_path / "p11.sock"))
                r = local_call(sock, lp.LocalRequest(request=pb.Request(generate_random=pb.GenerateRandomRequest(
                    length=8))))
            assert r.error == lp.AGENT_ERROR_UNTRUSTED and "mrsigner" in r.error_detail.lower()
            agent.wait_for_line("KMS server refused")
        finally:
            agent.stop()
        assert server.session_rpcs() == sessions   # no Session was ever opened with the refused server
    finally:
        server.stop()


def test_failover_between_two_servers_of_one_domain(build: Path, tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "a")
    try:
        env = init_domain(first, tmp_path / "work")
    finally:
        first.stop()
    shutil.copytree(tmp_path / "a", tmp_path / "b")   # a replica: the same platform, domain and state
    a, b = ServerProcess(tmp_path / "a"), ServerProcess(tmp_path / "b")
    agent = None
    try:
        env["KMS_SERVER"] = f"{a.api},{b.api}"
        agent = AgentProcess(env, tmp_path / "agent.sock", "--metrics-listen=127.0.0.1:0")
        with grpc.insecure_channel(agent.target) as channel:
            stub = agent_pb2_grpc.KmsAgentStub(channel)
            assert len(stub.GenerateRandom(pb.GenerateRandomRequest(length=8), timeout=30).random) == 8
            a_sessions = a.session_rpcs()
            assert a_sessions >= 1
            a.stop()
            for _ in range(5):   # every call answered, by b now
                assert len(stub.GenerateRandom(pb.GenerateRandomRequest(length=8), timeout=30).random) == 8
            assert b.session_rpcs() >= 1
            agent.wait_for_line("failed over")
            assert health_status(agent) == health_pb2.HealthCheckResponse.SERVING
    finally:
        if agent is not None:
            agent.stop()
        a.stop()
        b.stop()
