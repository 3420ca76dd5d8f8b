"""Fixtures for SDK tests: an in-process fake server over the real enclave, policies and credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kms.attestation import AttestationPolicy
from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public
from tests.client.fakeserver import FakeServer


@pytest.fixture
def server(build: Path, tmp_path: Path) -> Iterator[FakeServer]:
    s = FakeServer(tmp_path / "data")
    yield s
    s.stop()


@pytest.fixture
def policy(server: FakeServer) -> AttestationPolicy:
    return AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)


@pytest.fixture
def alice() -> Credentials:
    return Credentials.generate("alice")


def recovery_public(n: int) -> list[bytes]:
    return [x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) for _ in range(n)]


@pytest.fixture
def admin(server: FakeServer, policy: AttestationPolicy, alice: Credentials) -> Iterator[KmsClient]:
    """An initialized server's first admin."""
    with KmsClient(server.target, credentials=alice, policy=policy,
                   trust_anchor=server.platform.trust_anchor(), new_domain=True) as client:
        client.init(recovery_public(2), threshold=1, admin_name="alice", auditor_public_keys=auditor_public())
        yield client
