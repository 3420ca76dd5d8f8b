"""The agent driven from a non-Python gRPC client: Node.js with @grpc/grpc-js and @grpc/proto-loader, installed
with `npm ci` from tests/agent/node's committed package.json and package-lock.json (pinned versions, integrity
hashes checked by npm) into tests/agent/node/node_modules. It creates keys, encrypts, decrypts, signs, verifies,
reads a public key and meets an error; the ECDSA signature it got is verified here with pyca/cryptography.

Without node and npm this skips with the reason, except under CI=true, where it fails (`./dev setup` installs
Debian's nodejs when run as root)."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.agent.harness import AgentProcess, init_domain
from tests.e2e.server import REPO, ServerProcess
from tests.node_packages import NODE_ENV, node_with_packages

NODE_DIR = Path(__file__).resolve().parent / "node"
MESSAGE = "hello from node through the attested agent"


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages(NODE_DIR)


@pytest.fixture(scope="module")
def agent(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("agent-node")
    server = ServerProcess(tmp / "data")
    try:
        agent = AgentProcess(init_domain(server, tmp / "work"), tmp / "agent.sock")
        yield agent
        agent.stop()
    finally:
        server.stop()


def test_node_client_through_the_agent(node: str, agent: AgentProcess) -> None:
    proc = subprocess.run([node, "client.js", agent.target, str(REPO / "proto"), MESSAGE], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=120, env=NODE_ENV)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["decrypted"] == MESSAGE and out["decrypt_key_id"] == out["key_id"]
    assert MESSAGE.encode() not in base64.b64decode(out["ciphertext"])
    assert out["verify_valid"] is True and out["public_key_spec"] == "ECC_NIST_P256"
    public = serialization.load_der_public_key(base64.b64decode(out["public_key"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(out["signature"]), MESSAGE.encode(), ec.ECDSA(hashes.SHA256()))
    assert out["error"] == {"code": "INVALID_ARGUMENT", "kms_error_code": "KMS_ERR_INVALID_CIPHERTEXT",
                            "details": out["error"]["details"]}
    assert out["error"]["details"].startswith("KMS_ERR_INVALID_CIPHERTEXT")
