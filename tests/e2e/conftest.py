"""End-to-end fixtures: the real `kms serve` subprocess on loopback, policies, admin/user clients, the proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kms.attestation import AttestationPolicy, TrustAnchor
from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public
from tests.e2e.proxy import RecordingProxy
from tests.e2e.server import ServerProcess


def recovery_public(n: int) -> list[bytes]:
    return [x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) for _ in range(n)]


def policy_for(server: ServerProcess) -> AttestationPolicy:
    return AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)


def anchor_for(server: ServerProcess) -> TrustAnchor:
    return TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)


def client_for(server: ServerProcess, creds: Credentials, target: str | None = None, **kw) -> KmsClient:
    return KmsClient(target or server.api, credentials=creds, policy=policy_for(server),
                     trust_anchor=anchor_for(server), **kw)


@pytest.fixture(scope="module")
def store_backend() -> str:
    """The record store the module's server uses; a module overrides this (params sqlite, postgres) to run
    its tests on both."""
    return "sqlite"


def store_flags(request: pytest.FixtureRequest, backend: str, directory: Path) -> list[str]:
    """`kms serve` flags for a fresh store of the backend: nothing for SQLite; a new database on the session's
    PostgreSQL cluster (tests/pg.py), its password in a 0600 file."""
    if backend == "sqlite":
        return []
    cluster = request.getfixturevalue("pg_cluster")
    directory.mkdir(parents=True, exist_ok=True)
    return [f"--store-url={cluster.create_database()}", f"--store-password-file={cluster.password_file(directory)}"]


@pytest.fixture(scope="module")
def server(build: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
           store_backend: str) -> Iterator[ServerProcess]:
    """One real server per module, on a fresh data directory (and store)."""
    root = tmp_path_factory.mktemp("e2e")
    srv = ServerProcess(root / "data", *store_flags(request, store_backend, root / "secrets"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin_creds(server: ServerProcess) -> Credentials:
    """The module's server, initialized once; the first admin's credentials."""
    creds = Credentials.generate("alice")
    with client_for(server, creds, new_domain=True) as client:
        client.init(recovery_public(3), threshold=2, admin_name="alice", auditor_public_keys=auditor_public())
    return creds


@pytest.fixture
def admin(server: ServerProcess, admin_creds: Credentials) -> Iterator[KmsClient]:
    with client_for(server, admin_creds) as client:
        yield client


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[RecordingProxy]:
    p = RecordingProxy(server.api)
    yield p
    p.stop()
