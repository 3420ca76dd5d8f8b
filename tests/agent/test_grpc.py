"""The agent's unary gRPC API (agent.proto) from a Python gRPC client, against the real agent and real server:
operations, errors with their status and kms-error-code, health, reflection, metrics, the socket gate (mode,
SO_PEERCRED allow-list), the TCP bearer token, and logs that never carry a plaintext."""

from __future__ import annotations

import os
import socket
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kms.proto.agent.v1 import agent_pb2_grpc
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.agent.harness import AgentProcess, init_domain
from tests.e2e.server import ServerProcess

TOKEN = "t0ken-for-the-loopback-listener"
SECRET = b"agent-plaintext-that-must-never-be-logged-7f3a"


@pytest.fixture(scope="module")
def setup(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict, Path]]:
    tmp = tmp_path_factory.mktemp("agent-grpc")
    server = ServerProcess(tmp / "data")
    try:
        yield server, init_domain(server, tmp / "work"), tmp
    finally:
        server.stop()


@pytest.fixture(scope="module")
def agent(setup) -> Iterator[AgentProcess]:
    _, env, tmp = setup
    (tmp / "token").write_text(TOKEN + "\n")
    agent = AgentProcess(env, tmp / "agent.sock", "--tcp-listen=127.0.0.1:0", f"--token-file={tmp / 'token'}",
                         "--metrics-listen=127.0.0.1:0", "--socket-mode=660")
    yield agent
    agent.stop()


@pytest.fixture
def stub(agent: AgentProcess) -> Iterator[agent_pb2_grpc.KmsAgentStub]:
    with grpc.insecure_channel(agent.target) as channel:
        yield agent_pb2_grpc.KmsAgentStub(channel)


def error_code(exc: grpc.RpcError) -> str:
    return dict(exc.trailing_metadata() or ()).get("kms-error-code", "")


def test_operations(stub, agent: AgentProcess) -> None:
    aes = stub.CreateKey(pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT), timeout=30)
    enc = stub.Encrypt(pb.EncryptRequest(key_id=aes.key_id, plaintext=SECRET), timeout=30)
    assert enc.key_id == aes.key_id and SECRET not in enc.ciphertext
    assert stub.Decrypt(pb.DecryptRequest(ciphertext=enc.ciphertext), timeout=30).plaintext == SECRET
    ec = stub.CreateKey(pb.CreateKeyRequest(spec=pb.ECC_NIST_P256, usage=pb.SIGN_VERIFY), timeout=30)
    sig = stub.Sign(pb.SignRequest(key_id=ec.key_id, message=SECRET, algorithm=pb.ECDSA_SHA_256), timeout=30)
    ok = stub.Verify(pb.VerifyRequest(key_id=ec.key_id, message=SECRET, signature=sig.signature,
                                      algorithm=pb.ECDSA_SHA_256), timeout=30)
    assert ok.valid
    pub = stub.GetPublicKey(pb.GetPublicKeyRequest(key_id=ec.key_id), timeout=30)
    assert pub.public_key
    ident = stub.GetIdentity(pb.GetIdentityRequest(), timeout=30)
    assert ident.domain_id.hex() == agent.info["domain_id"]


def test_enclave_refusals_are_grpc_statuses(stub) -> None:
    aes = stub.CreateKey(pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT), timeout=30)
    with pytest.raises(grpc.RpcError) as bad:
        stub.Decrypt(pb.DecryptRequest(ciphertext=b"\x01" * 64), timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(bad.value) == "KMS_ERR_INVALID_CIPHERTEXT" and "KMS_ERR_INVALID_CIPHERTEXT" in bad.value.details()
    with pytest.raises(grpc.RpcError) as usage:
        stub.Sign(pb.SignRequest(key_id=aes.key_id, message=b"m", algorithm=pb.ECDSA_SHA_256), timeout=30)
    assert usage.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_code(usage.value) == "KMS_ERR_INVALID_KEY_USAGE"
    with pytest.raises(grpc.RpcError) as large:
        stub.Encrypt(pb.EncryptRequest(key_id=aes.key_id, plaintext=b"x" * 70000), timeout=30)
    assert large.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(large.value) == "KMS_ERR_REQUEST_TOO_LARGE"
    assert stub.DescribeKey(pb.DescribeKeyRequest(key_id=aes.key_id), timeout=30).key_id == aes.key_id


def test_health_reflection_and_metrics(agent: AgentProcess) -> None:
    with grpc.insecure_channel(agent.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "kms.agent.v1.KmsAgent"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                 timeout=10))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"kms.agent.v1.KmsAgent", "grpc.health.v1.Health"} <= names
        agent_pb2_grpc.KmsAgentStub(channel).GenerateRandom(pb.GenerateRandomRequest(length=8), timeout=30)
    text = urllib.request.urlopen(f"http://{agent.info['metrics']}/metrics", timeout=5).read().decode()
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="GenerateRandom"' in text
    assert "kms_agent_server_up{" in text


def test_socket_mode(agent: AgentProcess) -> None:
    st = Path(agent.info["socket"]).lstat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660


def test_tcp_needs_the_bearer_token(agent: AgentProcess) -> None:
    with grpc.insecure_channel(agent.info["tcp"]) as channel:
        stub = agent_pb2_grpc.KmsAgentStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong-token-of-some-length"),),
                         (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.GenerateRandom(pb.GenerateRandomRequest(length=8), metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.GenerateRandom(pb.GenerateRandomRequest(length=8),
                                 metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=30)
        assert len(ok.random) == 8


def test_a_peer_uid_not_allowed_is_refused(setup) -> None:
    """An agent whose allow-list excludes this test's uid: the connection is closed before a byte is read."""
    _, env, tmp = setup
    other = 65534 if os.getuid() != 65534 else 65533
    agent = AgentProcess(env, tmp / "closed.sock", f"--allow-uid={other}")
    try:
        with grpc.insecure_channel(agent.target) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                agent_pb2_grpc.KmsAgentStub(channel).GenerateRandom(pb.GenerateRandomRequest(length=8), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(10)
            raw.connect(str(tmp / "closed.sock"))
            assert raw.recv(1) == b""
        assert f'"uid": {os.getuid()}' in agent.wait_for_line("peer uid not allowed")
    finally:
        agent.stop()


def test_logs_never_carry_plaintext_or_keys(agent: AgentProcess, stub) -> None:
    key = stub.CreateKey(pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT), timeout=30)
    enc = stub.Encrypt(pb.EncryptRequest(key_id=key.key_id, plaintext=SECRET), timeout=30)
    stub.Decrypt(pb.DecryptRequest(ciphertext=enc.ciphertext), timeout=30)
    dk = stub.GenerateDataKey(pb.GenerateDataKeyRequest(key_id=key.key_id, number_of_bytes=32), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.Decrypt(pb.DecryptRequest(ciphertext=enc.ciphertext[:-1] + bytes([enc.ciphertext[-1] ^ 1])), timeout=30)
    agent.wait_for_line("request refused")
    log = "\n".join(agent.lines).encode()
    assert b'"debug"' in log   # the agent logged at debug level, the most it ever says
    for secret in (SECRET, dk.plaintext):
        for form in (secret, secret.hex().encode(), __import__("base64").b64encode(secret)):
            assert form not in log
    assert TOKEN.encode() not in log
