"""A token for the PKCS#11 tests and benchmark: the real `kms serve` (tests/e2e/server.py), a domain made with the
real CLI, and `kms agent` serving the module's protocol with a PIN; the module built by `make pkcs11`."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.harness import AgentProcess, init_domain
from tests.e2e.server import REPO, ServerProcess

MODULE = REPO / "build" / "libkms_pkcs11.so"
PIN = "2718-token-pin"
# Debian packages of the clients (./dev setup installs them as root)
PACKAGES = {"pkcs11-tool": "opensc", "p11tool": "gnutls-bin", "openssl": "openssl", "java": "openjdk-17-jre-headless"}


@dataclass
class Token:
    server: ServerProcess
    agent: AgentProcess
    socket: str
    work: Path

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs: the module's socket (and libp11's engine its module path)."""
        env = dict(os.environ, KMS_PKCS11_SOCKET=self.socket, PKCS11_MODULE_PATH=str(MODULE))
        env.pop("KMS_PKCS11_DEBUG", None)
        return env

    def stop(self) -> None:
        self.agent.stop()
        self.server.stop()


def build_module() -> Path:
    subprocess.run(["make", "-s", "pkcs11"], cwd=REPO, check=True, capture_output=True, timeout=600)
    return MODULE


def start_token(tmp: Path) -> Token:
    build_module()
    server = ServerProcess(tmp / "data")
    try:
        env = init_domain(server, tmp / "work")
        env["KMS_AGENT_PIN"] = PIN
        agent = AgentProcess(env, tmp / "agent.sock", f"--p11-socket={tmp / 'p11.sock'}", "--log-level=info")
    except BaseException:
        server.stop()
        raise
    return Token(server, agent, agent.info["p11_socket"], tmp / "work")


def need(tool: str) -> str:
    """The tool's path; a skip with the reason when it is missing, a failure under CI=true."""
    path = shutil.which(tool)
    if path is None:
        why = f"{tool} is not installed (Debian package {PACKAGES.get(tool, tool)}; ./dev setup installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def need_engine() -> None:
    out = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True).stdout
    engines = out.split('"')[1] if '"' in out else ""
    if not (Path(engines) / "pkcs11.so").is_file():
        why = f"libp11's OpenSSL engine is not in {engines!r} (Debian package libengine-pkcs11-openssl)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
