"""Fixtures for the simulated platform services: a provisioned platform, quotes of the real enclave."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kms.attestation import AttestationPolicy, TcbStatus
from kms.sim import SimPlatform, SimQuotingEnclave

ALL_BUT_REVOKED = frozenset(s for s in TcbStatus if s is not TcbStatus.REVOKED)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def platform(data_dir: Path) -> SimPlatform:
    return SimPlatform(data_dir)


@pytest.fixture
def enclave_report(build: Path) -> Callable[[Path, bytes], bytes]:
    """A REPORT of the real enclave, started fresh on `data_dir` (so it reads the current CPUSVN)."""
    from kms.enclave.bridge import Enclave

    def make(data_dir: Path, target_info: bytes = SimQuotingEnclave.target_info()) -> bytes:
        with Enclave(data_dir) as enclave:
            return enclave.report(target_info)

    return make


@pytest.fixture
def enclave_quote(enclave_report: Callable[[Path, bytes], bytes]) -> Callable[[SimPlatform], bytes]:
    def make(platform: SimPlatform) -> bytes:
        return SimQuotingEnclave(platform).quote(enclave_report(platform.data_dir))

    return make


@pytest.fixture(scope="session")
def enclave_mrsigner(build: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from kms.enclave.bridge import Enclave

    with Enclave(tmp_path_factory.mktemp("ident")) as enclave:
        return bytes(enclave.identity().mrsigner)


@pytest.fixture
def policy(enclave_mrsigner: bytes) -> AttestationPolicy:
    """Pins the enclave's MRSIGNER; accepts simulation and every status but Revoked (tests check it)."""
    return AttestationPolicy(mrsigner=enclave_mrsigner, isvprodid=1, allowed_tcb_statuses=ALL_BUT_REVOKED,
                             allow_outdated_tcb_insecure=True, allow_simulation_insecure=True)
