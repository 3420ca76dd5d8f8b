"""Three real `kms serve` replicas of one domain on one shared store, for the client failover tests.

They listen on one port at three loopback addresses (127.0.0.1, 127.0.0.2, ::1), so that one DNS name with three
records names all of them, and a killed replica comes back at the same address. They are three processes of one
simulated node (copies of the first one's data directory: its platform and sealed domain key), as `kms serve
--processes N` runs them: a simulated platform has its own root CA, and a client trusts one anchor (on hardware
every replica chains to Intel's root). Each has its own enclave instance, and all share the store (PostgreSQL,
or one SQLite directory), the state log and the audit chain.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public
from tests.e2e.conftest import anchor_for, policy_for, recovery_public
from tests.e2e.server import ServerProcess

HOSTS = ("127.0.0.1", "127.0.0.2", "::1")


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def common_free_port() -> int:
    """A port free on all three addresses."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for host in HOSTS[1:]:
                with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as t:
                    t.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every loopback address")


class Trio:
    """`servers[i]` listens on `addresses[i]`; kill(i) is SIGKILL, start(i) brings it back at the same address."""

    def __init__(self, root: Path, store: list[str], backend: str, pg=None) -> None:
        self.root, self.store, self.backend, self.pg = root, store, backend, pg
        self.port = common_free_port()
        self.addresses = [_join(h, self.port) for h in HOSTS]
        self.admin = Credentials.generate("alice")
        first = ServerProcess(root / "n0", *store, f"--listen={self.addresses[0]}")
        try:
            with KmsClient(first.api, credentials=self.admin, policy=policy_for(first),
                           trust_anchor=anchor_for(first), new_domain=True) as c:
                c.init(recovery_public(1), threshold=1, admin_name="alice", auditor_public_keys=auditor_public())
                self.domain = c.domain_id
                self.audit_key = c.identity().audit_public_key
        finally:
            first.stop()
        for i in (1, 2):
            shutil.copytree(root / "n0", root / f"n{i}")
        self.servers: list[ServerProcess | None] = [None, None, None]
        for i in range(3):
            self.start(i)

    @property
    def any(self) -> ServerProcess:
        return next(s for s in self.servers if s is not None)

    def start(self, i: int) -> ServerProcess:
        self.servers[i] = ServerProcess(self.root / f"n{i}", *self.store, f"--listen={self.addresses[i]}",
                                        log_level="info")
        return self.servers[i]

    def kill(self, i: int) -> None:
        server, self.servers[i] = self.servers[i], None
        if server is not None:
            server.proc.kill()
            server.proc.wait(30)
            server._reader.join(10)

    def client(self, creds: Credentials | None = None, target: str | None = None, **kw) -> KmsClient:
        kw.setdefault("recheck_s", 1.0)
        server = self.any
        return KmsClient(target or ",".join(self.addresses), credentials=creds or self.admin,
                         policy=policy_for(server), trust_anchor=anchor_for(server), domain_id=self.domain, **kw)

    def audit_export(self, out: Path) -> Path:
        """The shared audit chain as `kms audit export` writes it (entries as hex JSON lines)."""
        if self.backend == "sqlite":
            subprocess.run([sys.executable, "-m", "kms", "audit", "export", "--data-dir", str(self.root / "store"),
                            "--out", str(out)], check=True, capture_output=True)
            return out
        (url,) = [f for f in self.store if f.startswith("--store-url=")]
        rows = self.pg.sql("SELECT encode(entry, 'hex') FROM audit ORDER BY seq", db=url.rsplit("/", 1)[1])
        out.write_text("".join(json.dumps({"entry": h}) + "\n" for h in rows.split()))
        return out

    def audit_verify(self, out: Path) -> dict:
        proc = subprocess.run([sys.executable, "-m", "kms", "audit", "verify", "--file", str(self.audit_export(out)),
                               "--audit-key", self.audit_key.hex(), "--output", "json"], capture_output=True,
                              text=True, env={k: v for k, v in os.environ.items() if not k.startswith("KMS_")})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    def stop(self) -> None:
        for server in self.servers:
            if server is not None:
                server.stop()


def make_trio(request: pytest.FixtureRequest, root: Path, backend: str) -> Trio:
    if backend == "sqlite":
        (root / "store").mkdir(parents=True)
        return Trio(root, [f"--store-dir={root / 'store'}"], backend)
    pg = request.getfixturevalue("pg_cluster")
    (root / "secrets").mkdir(parents=True)
    store = [f"--store-url={pg.create_database()}", f"--store-password-file={pg.password_file(root / 'secrets')}"]
    return Trio(root, store, backend, pg)
