"""Fixtures for the Ethereum validator tests: one real KMS server (`kms serve` on loopback), an initialized domain and
its admin's client per module; vectors from ../shared/vectors/eth2 and eip3076 (skipped without them, failing under
CI=true)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.client import KmsClient
from tests.validator.harness import Domain, KmsServer

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def vectors(sub: str) -> Path:
    """A vector folder, or a skip (a failure under CI=true) when it is absent."""
    path = VECTORS / sub
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test vectors missing: {path}")
        pytest.skip(f"test vectors missing: {path}")
    return path


@pytest.fixture(scope="module")
def kms_server(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsServer]:
    server = KmsServer(tmp_path_factory.mktemp("eth") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def domain(kms_server: KmsServer, tmp_path_factory: pytest.TempPathFactory) -> Domain:
    return Domain(kms_server, tmp_path_factory.mktemp("domain"))


@pytest.fixture(scope="module")
def admin(domain: Domain) -> Iterator[KmsClient]:
    with domain.server.client(domain.admin) as client:
        yield client
