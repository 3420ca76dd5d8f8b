"""The PKCS#11 module's local framed protocol (local.proto) against the real agent and the real server: frames,
login state per connection, token info, operations and the enclave's refusals as Responses, malformed frames."""

from __future__ import annotations

import socket
import stat
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.proto.agent.v1 import local_pb2 as lp
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2
from tests.agent.harness import AgentProcess, init_domain, local_call, read_frame
from tests.e2e.server import ServerProcess

PIN = "4711-secret-pin"


@pytest.fixture(scope="module")
def agent(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("agent-local")
    server = ServerProcess(tmp / "data")
    try:
        env = init_domain(server, tmp / "work")
        env["KMS_AGENT_PIN"] = PIN
        agent = AgentProcess(env, tmp / "agent.sock", f"--p11-socket={tmp / 'p11.sock'}",
                             "--p11-token-label=Test token")
        yield agent
        agent.stop()
    finally:
        server.stop()


def connect(agent: AgentProcess) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(agent.info["p11_socket"])
    return sock


def login(sock: socket.socket, pin: str = PIN) -> lp.LocalResponse:
    return local_call(sock, lp.LocalRequest(login=lp.LoginRequest(pin=pin)))


def op(sock: socket.socket, **kw) -> lp.LocalResponse:
    return local_call(sock, lp.LocalRequest(request=pb.Request(**kw)))


def test_socket_mode_is_0600(agent: AgentProcess) -> None:
    for path in (agent.info["p11_socket"], agent.info["socket"]):
        st = Path(path).lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600


def test_token_info_before_login(agent: AgentProcess) -> None:
    with connect(agent) as sock:
        r = local_call(sock, lp.LocalRequest(token_info=lp.TokenInfoRequest()))
    assert r.error == lp.AGENT_OK and r.WhichOneof("body") == "token_info"
    info = r.token_info
    assert info.label == "Test token" and info.login_required and info.simulated
    assert len(info.domain_id) == 16 and info.serial == info.domain_id[:8].hex() and len(info.mrsigner) == 32
    assert info.domain_id.hex() == agent.info["domain_id"]


def test_login_state_belongs_to_the_connection(agent: AgentProcess) -> None:
    with connect(agent) as first, connect(agent) as second:
        refused = op(first, generate_random=pb.GenerateRandomRequest(length=16))
        assert refused.error == lp.AGENT_ERROR_NOT_LOGGED_IN and refused.WhichOneof("body") is None
        wrong = login(first, "0000")
        assert wrong.error == lp.AGENT_ERROR_PIN_INCORRECT
        assert op(first, generate_random=pb.GenerateRandomRequest(length=16)).error == lp.AGENT_ERROR_NOT_LOGGED_IN
        assert login(first).error == lp.AGENT_OK
        ok = op(first, generate_random=pb.GenerateRandomRequest(length=16))
        assert ok.error == lp.AGENT_OK and len(ok.response.generate_random.random) == 16
        assert op(second, generate_random=pb.GenerateRandomRequest(length=16)).error == lp.AGENT_ERROR_NOT_LOGGED_IN
    with connect(agent) as third:   # a new connection starts logged out
        assert op(third, generate_random=pb.GenerateRandomRequest(length=8)).error == lp.AGENT_ERROR_NOT_LOGGED_IN
    assert not [line for line in agent.lines if PIN in line]


def test_operations_and_refusals_are_enclave_responses(agent: AgentProcess) -> None:
    with connect(agent) as sock:
        assert login(sock).error == lp.AGENT_OK
        created = op(sock, create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))
        assert created.error == lp.AGENT_OK and created.response.error == errors_pb2.KMS_OK
        key_id = created.response.key_metadata.key_id
        # what the module sets in version/request_id/host_time is ignored: the session sets its own
        enc = op(sock, version=99, request_id=12345, host_time=1,
                 encrypt=pb.EncryptRequest(key_id=key_id, plaintext=b"local frame plaintext"))
        assert enc.response.error == errors_pb2.KMS_OK
        assert len(enc.response.domain_id) == 16 and enc.response.state_head.seq > 0
        dec = op(sock, decrypt=pb.DecryptRequest(ciphertext=enc.response.encrypt.ciphertext))
        assert dec.response.decrypt.plaintext == b"local frame plaintext"
        bad = op(sock, decrypt=pb.DecryptRequest(ciphertext=b"\x01" * 64))
        assert bad.error == lp.AGENT_OK and bad.response.error == errors_pb2.KMS_ERR_INVALID_CIPHERTEXT
        missing = op(sock, describe_key=pb.DescribeKeyRequest(key_id=str(uuid.uuid4())))
        assert missing.response.error == errors_pb2.KMS_ERR_KEY_NOT_FOUND
        not_forwarded = op(sock, init=pb.InitRequest())
        assert not_forwarded.response.error == errors_pb2.KMS_ERR_UNKNOWN_OPERATION
        too_large = op(sock, encrypt=pb.EncryptRequest(key_id=key_id, plaintext=b"x" * 70000))
        assert too_large.response.error == errors_pb2.KMS_ERR_REQUEST_TOO_LARGE
        # the session still works after all of these
        assert op(sock, describe_key=pb.DescribeKeyRequest(key_id=key_id)).response.key_metadata.key_id == key_id


@pytest.mark.parametrize("frame", [struct.pack(">I", 131073), struct.pack(">I", 3) + b"\xff\xff\xff",
                                   struct.pack(">I", 0)], ids=["too-long", "undecodable", "empty"])
def test_malformed_frames_end_the_connection(agent: AgentProcess, frame: bytes) -> None:
    with connect(agent) as sock:
        sock.sendall(frame)
        r = lp.LocalResponse.FromString(read_frame(sock))
        assert r.error == lp.AGENT_ERROR_MALFORMED and r.error_detail
        assert sock.recv(1) == b""   # closed after the answer
