"""Fixtures for the privval end-to-end tests: one real KMS server and an initialized domain per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.validator.harness import Domain, KmsServer


@pytest.fixture(scope="module")
def kms_server(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsServer]:
    server = KmsServer(tmp_path_factory.mktemp("validator") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def domain(kms_server: KmsServer, tmp_path_factory: pytest.TempPathFactory) -> Domain:
    return Domain(kms_server, tmp_path_factory.mktemp("domain"))
