"""End to end: real enclave REPORT -> simulated QE -> quote -> simulated collateral (file, PCCS) -> verifier."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import now

from kms.attestation import (
    INTEL_SGX_ROOT,
    AttestationPolicy,
    CollateralSource,
    PccsClient,
    Step,
    TcbStatus,
    load_collateral_json,
    verify_quote,
)
from kms.sim import SimPlatform, build_collateral
from kms.sim.levels import tcb_level
from kms.sim.pccs import serve

Quote = Callable[[SimPlatform], bytes]


@pytest.fixture(params=["file", "pccs-v4", "pccs-v3"])
def source(request: pytest.FixtureRequest, platform: SimPlatform, tmp_path: Path):
    """A function giving a fresh collateral source (no cache across calls) of each kind."""
    if request.param == "file":
        def from_file() -> CollateralSource:
            path = tmp_path / "collateral.json"
            build_collateral(platform).write_json(path)
            return load_collateral_json(path)

        yield from_file
        return
    server = serve(platform.data_dir)
    version = int(request.param[-1])
    yield lambda: PccsClient(server.api_url(version))
    server.stop()


@pytest.mark.parametrize("level", ["UpToDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded",
                                   "OutOfDate"])
def test_each_tcb_level_is_reached(platform: SimPlatform, enclave_quote: Quote, policy: AttestationPolicy,
                                   source: Callable[[], CollateralSource], level: str) -> None:
    platform.set_tcb(level)
    result = verify_quote(enclave_quote(platform), source(), policy, at=now(), trust_anchor=platform.trust_anchor())
    assert result.ok, result.to_dict()
    checked = result.verified
    assert checked.tcb_status is TcbStatus(level) and checked.platform_tcb_status is TcbStatus(level)
    assert checked.qe_tcb_status is TcbStatus.UP_TO_DATE
    assert checked.advisory_ids == tcb_level(level).advisory_ids
    assert checked.simulated and not checked.collateral_expired and checked.fmspc == platform.fmspc


def test_default_policy_statuses_accept_only_uptodate(platform: SimPlatform, enclave_quote: Quote,
                                                      enclave_mrsigner: bytes) -> None:
    strict = AttestationPolicy(mrsigner=enclave_mrsigner, allow_simulation_insecure=True)
    collateral = build_collateral(platform).to_collateral()
    assert verify_quote(enclave_quote(platform), collateral, strict, at=now(),
                        trust_anchor=platform.trust_anchor()).ok
    platform.set_tcb("SWHardeningNeeded")
    result = verify_quote(enclave_quote(platform), collateral, strict, at=now(), trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.POLICY_TCB_STATUS


def test_platform_ca_and_qe_out_of_date(data_dir: Path, enclave_quote: Quote, policy: AttestationPolicy) -> None:
    platform = SimPlatform(data_dir, pck_ca="platform")
    platform.set_tcb("SWHardeningNeeded", qe_isvsvn=6)
    result = verify_quote(enclave_quote(platform), build_collateral(platform).to_collateral(), policy, at=now(),
                          trust_anchor=platform.trust_anchor())
    assert result.ok, result.to_dict()
    assert result.verified.pck_ca.value == "platform" and result.verified.qe_tcb_status is TcbStatus.OUT_OF_DATE
    assert result.tcb_status is TcbStatus.OUT_OF_DATE  # converged with the QE's level
    assert set(result.advisory_ids) == {"INTEL-SA-00615"}


def test_revoked_tcb_level_is_refused(platform: SimPlatform, enclave_quote: Quote, policy: AttestationPolicy) -> None:
    platform.set_tcb("Revoked")
    result = verify_quote(enclave_quote(platform), build_collateral(platform).to_collateral(), policy, at=now(),
                          trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.PLATFORM_TCB


def test_revoked_pck_leaf_is_refused(platform: SimPlatform, enclave_quote: Quote, policy: AttestationPolicy,
                                     source: Callable[[], CollateralSource]) -> None:
    quote = enclave_quote(platform)
    platform.revoke_pck()
    result = verify_quote(quote, source(), policy, at=now(), trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.REVOCATION
    assert "PCK certificate" in result.message and "PCK CRL" in result.message
    platform.clear_revocations()
    assert verify_quote(quote, source(), policy, at=now(), trust_anchor=platform.trust_anchor()).ok


@pytest.mark.parametrize("ca", ["processor", "platform"])
def test_revoked_intermediate_is_refused(data_dir: Path, enclave_quote: Quote, policy: AttestationPolicy,
                                         ca: str) -> None:
    platform = SimPlatform(data_dir, pck_ca=ca)
    quote = enclave_quote(platform)
    platform.revoke_intermediate(ca)
    with serve(data_dir) as server:
        result = verify_quote(quote, PccsClient(server.api_url()), policy, at=now(),
                              trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.REVOCATION
    assert "PCK intermediate CA" in result.message and "root CA CRL" in result.message


def test_revoked_tcb_signing_certificate_is_refused(platform: SimPlatform, enclave_quote: Quote,
                                                    policy: AttestationPolicy) -> None:
    platform.revoke("root", platform.tcb_signing.serial_number)
    result = verify_quote(enclave_quote(platform), build_collateral(platform).to_collateral(), policy, at=now(),
                          trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.REVOCATION and "TCB Info" in result.message


def test_intels_root_and_the_default_policy_refuse_simulated_evidence(
    platform: SimPlatform, enclave_quote: Quote, policy: AttestationPolicy, enclave_mrsigner: bytes
) -> None:
    quote, collateral = enclave_quote(platform), build_collateral(platform).to_collateral()
    result = verify_quote(quote, collateral, policy, at=now())
    assert not result.ok and result.failed_step is Step.PCK_CHAIN and "Intel SGX Root CA" in result.message
    assert not verify_quote(quote, collateral, policy, at=now(), trust_anchor=INTEL_SGX_ROOT).ok
    default = AttestationPolicy(mrsigner=enclave_mrsigner)
    result = verify_quote(quote, collateral, default, at=now(), trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.POLICY_SIMULATION


def test_expired_collateral_is_reported(platform: SimPlatform, enclave_quote: Quote, policy: AttestationPolicy) -> None:
    collateral = build_collateral(platform, now=now() - timedelta(days=40)).to_collateral()
    result = verify_quote(enclave_quote(platform), collateral, policy, at=now(), trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.COLLATERAL_EXPIRY


def test_collateral_of_another_platform_is_refused(platform: SimPlatform, enclave_quote: Quote,
                                                   policy: AttestationPolicy, tmp_path: Path) -> None:
    other = SimPlatform(tmp_path / "other")
    result = verify_quote(enclave_quote(platform), build_collateral(other).to_collateral(), policy, at=now(),
                          trust_anchor=platform.trust_anchor())
    assert not result.ok and result.failed_step is Step.REVOCATION
