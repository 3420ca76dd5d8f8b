"""Harness of the Ethereum signer tests: the HTTP app over a signer on a loopback test server (`Api`), the real
`kms validator eth serve` as a subprocess (`EthServe`), and validator keys in a real KMS granted to its signer."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kms.validator.eth.http import HttpSettings, make_app
from kms.validator.eth.signer import EthSigner
from tests.e2e.server import terminate
from tests.validator.harness import REPO, Domain


def call(app: web.Application, method: str, path: str, **kwargs: Any) -> tuple[int, str, bytes]:
    """One HTTP request to the app on a loopback test server: (status, content type, body)."""
    async def go() -> tuple[int, str, bytes]:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            resp = await client.request(method, path, **kwargs)
            return resp.status, resp.headers.get("Content-Type", ""), await resp.read()
    return asyncio.run(go())


@dataclass
class Api:
    """The HTTP API over a signer: each call on a fresh app (the state is the signer's and the KMS's)."""

    signer: EthSigner
    settings: HttpSettings

    def __call__(self, method: str, path: str, **kwargs: Any) -> tuple[int, str, bytes]:
        return call(make_app(self.signer, self.settings), method, path, **kwargs)


def eth_key(domain: Domain, gvr: bytes, secret: bytes | None = None, **kw: Any) -> tuple[str, bytes]:
    """A BLS validator key for the chain `gvr` (imported when `secret`, else generated in the enclave), granted to
    the domain's signer principal: (key id, public key)."""
    with domain.server.client(domain.admin) as admin:
        info = (admin.eth_import_secret(secret, genesis_validators_root=gvr, **kw) if secret is not None
                else admin.eth_generate_key(gvr, **kw))
        admin.create_grant(info.key_id, domain.signer.principal_id, ["*"])
        return info.key_id, admin.eth_public_key(info.key_id)


def disable(domain: Domain, key_id: str) -> None:
    with domain.server.client(domain.admin) as admin:
        admin.disable_key(key_id)


class EthServe:
    """`python -m kms validator eth serve --config FILE` on 127.0.0.1 (port chosen by the OS, read from its log)."""

    def __init__(self, domain: Domain, work: Path, **eth: str) -> None:
        assert domain.server.proc is not None
        work.mkdir(parents=True, exist_ok=True)
        self.config, self.state_dir = work / "eth-signer.toml", work / "eth-state"
        settings = {"listen": "127.0.0.1:0", "state_dir": str(self.state_dir), **eth}
        self.config.write_text("\n".join([
            "[kms]", f'server = "{domain.server.api}"', f'credentials = "{domain.signer_dir}"',
            f'mrsigner = "{domain.server.proc.mrsigner.hex()}"', f'simulated_root = "{domain.server.proc.root_pem}"',
            "allow_simulation_insecure = true", "timeout = 10", "", "[eth]",
            *[f"{k} = {json.dumps(v)}" for k, v in settings.items()]]) + "\n")
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.url = ""

    def start(self, timeout: float = 60) -> EthServe:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "kms", "validator", "eth", "serve", "--config",
                                      str(self.config)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        serving = threading.Event()
        threading.Thread(target=self._read, args=(serving,), daemon=True).start()
        if not serving.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError("kms validator eth serve did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _read(self, serving: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "serving the Web3Signer-compatible API" in line:
                self.url = "http://" + json.loads(line)["listen"]
                serving.set()
        serving.set()

    def decisions(self) -> list[dict]:
        """The signer's per-request log lines ("eth signature")."""
        return [json.loads(x) for x in self.lines if x.startswith("{") and '"eth signature"' in x]

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        terminate(self.proc, timeout)
        return self.proc.returncode
