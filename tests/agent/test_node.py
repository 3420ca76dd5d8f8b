"""The agent driven from a non-Python gRPC client: Node.js with @grpc/grpc-js and @grpc/proto-loader, installed
with `npm ci` from tests/agent/node's committed package.json and package-lock.json (pinned versions, integrity
hashes checked by npm) into tests/agent/node/node_modules. It creates keys, encrypts, decrypts, signs, verifies,
reads a public key and meets an error; the ECDSA signature it got is verified here with pyca/cryptography.

Without node and npm this skips with the reason, except under CI=true, where it fails (`./dev setup` installs
Debian's nodejs when run as root)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.agent.harness import AgentProcess, init_domain
from tests.e2e.server import REPO, ServerProcess

NODE_DIR = Path(__file__).resolve().parent / "node"
MESSAGE = "hello from node through the attested agent"
NODE_ENV = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}   # the enclave's tunable is not node's


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (Debian: apt-get install nodejs npm; ./dev setup does it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"under CI the Node.js client test must run: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the pinned packages installed from the lock file (once; again when the lock file changed)."""
    node, npm = _need("node"), _need("npm")
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        proc = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300, env=NODE_ENV)
        if proc.returncode != 0:
            pytest.fail(f"npm ci failed (the registry unreachable?):\n{proc.stdout}\n{proc.stderr}")
    return node


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
