"""A synthetic platform under our control: happy paths, revocation, TCB levels, policy failures."""

from __future__ import annotations

import dataclasses

import pytest
from attest_testpki import (
    COMPONENTS,
    MRENCLAVE,
    MRSIGNER,
    NOW,
    SynthPlatform,
    pem,
    qe_level,
    tcb_level,
)

from kms.attestation import (
    AttestationPolicy,
    PckCa,
    Step,
    TcbStatus,
    TrustAnchor,
    parse_quote,
    verify_quote,
)

POLICY = AttestationPolicy(mrenclaves=frozenset({MRENCLAVE}), mrsigner=MRSIGNER, isvprodid=7, min_isvsvn=3)


@pytest.fixture(scope="module")
def platform() -> SynthPlatform:
    return SynthPlatform()


def verify(p: SynthPlatform, quote: bytes, policy: AttestationPolicy = POLICY, **collateral: object):
    return verify_quote(quote, p.collateral(**collateral), policy, at=NOW, trust_anchor=p.anchor)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("nul", [True, False])
def test_synthetic_quote_passes(platform: SynthPlatform, version: int, nul: bool) -> None:
    result = verify(platform, platform.quote(version=version, nul=nul))
    assert result.ok, result.message
    assert result.tcb_status is TcbStatus.UP_TO_DATE
    assert result.identity.isvprodid == 7 and result.identity.isvsvn == 3
    assert result.verified.quote.version == version


def test_platform_ca_pck_passes() -> None:
    p = SynthPlatform(ca=PckCa.PLATFORM)
    result = verify(p, p.quote())
    assert result.ok, result.message
    assert result.verified.pck_ca is PckCa.PLATFORM


def test_revoked_pck_leaf() -> None:
    p = SynthPlatform(revoke_leaf=True)
    result = verify(p, p.quote())
    assert result.failed_step is Step.REVOCATION
    assert "PCK certificate" in result.message and "revoked by the PCK CRL" in result.message


def test_revoked_intermediate() -> None:
    p = SynthPlatform(revoke_ca=True)
    result = verify(p, p.quote())
    assert result.failed_step is Step.REVOCATION
    assert "PCK intermediate CA" in result.message and "root CA CRL" in result.message


def test_crl_from_the_other_ca_is_refused() -> None:
    processor, platform_ca = SynthPlatform(), SynthPlatform(ca=PckCa.PLATFORM)
    collateral = dataclasses.replace(processor.collateral(), pck_crl=platform_ca.collateral().pck_crl)
    result = verify_quote(processor.quote(), collateral, POLICY, at=NOW, trust_anchor=processor.anchor)
    assert result.failed_step is Step.REVOCATION and "issued by" in result.message


def test_debug_enclave_is_refused(platform: SynthPlatform) -> None:
    quote = platform.quote(flags=0x07)
    result = verify(platform, quote)
    assert result.failed_step is Step.POLICY_ATTRIBUTES and "DEBUG" in result.message
    assert verify(platform, quote, dataclasses.replace(POLICY, allow_debug_insecure=True)).ok


@pytest.mark.parametrize(("kwargs", "step"), [
    ({"mrenclave": bytes(32)}, Step.POLICY_MRENCLAVE),
    ({"mrsigner": bytes(32)}, Step.POLICY_MRSIGNER),
    ({"isvprodid": 8}, Step.POLICY_ISVPRODID),
    ({"isvsvn": 2}, Step.POLICY_ISVSVN),
    ({"report_data": b"other"}, Step.POLICY_REPORT_DATA),
])
def test_identity_policy_failures(platform: SynthPlatform, kwargs: dict, step: Step) -> None:
    policy = dataclasses.replace(POLICY, report_data=b"expected")
    quote = platform.quote(**{"report_data": b"expected", **kwargs})
    result = verify(platform, quote, policy)
    assert result.failed_step is step, result.message
    with pytest.raises(Exception, match=step.value):
        result.raise_for_failure()


def test_any_of_several_mrenclaves(platform: SynthPlatform) -> None:
    policy = dataclasses.replace(POLICY, mrenclaves=frozenset({bytes(32), MRENCLAVE}))
    assert verify(platform, platform.quote(), policy).ok


LOWER = (12, 12, 3, 3, 255, 255, 0) + (0,) * 9


@pytest.mark.parametrize(("components", "pcesvn", "qe_svn", "status", "advisories"), [
    (COMPONENTS, 13, 8, TcbStatus.UP_TO_DATE, ()),
    (LOWER, 13, 8, TcbStatus.SW_HARDENING_NEEDED, ("INTEL-SA-00615",)),
    (LOWER, 12, 8, TcbStatus.OUT_OF_DATE, ("INTEL-SA-00106", "INTEL-SA-00615")),
    (COMPONENTS, 13, 7, TcbStatus.OUT_OF_DATE, ("INTEL-SA-00615",)),
])
def test_tcb_levels_from_the_pck_certificate(components: tuple, pcesvn: int, qe_svn: int,
                                             status: TcbStatus, advisories: tuple) -> None:
    p = SynthPlatform(components=components, pcesvn=pcesvn)
    quote = p.quote(qe_isvsvn=qe_svn)
    result = verify(p, quote)
    assert result.diagnostics is None or result.failed_step is Step.POLICY_TCB_STATUS
    allowed = dataclasses.replace(POLICY, allowed_tcb_statuses=frozenset({status}),
                                  allow_outdated_tcb_insecure=True)
    accepted = verify(p, quote, allowed)
    assert accepted.ok, accepted.message
    assert accepted.tcb_status is status and accepted.advisory_ids == advisories
    if status is not TcbStatus.UP_TO_DATE:
        assert result.failed_step is Step.POLICY_TCB_STATUS


def test_qe_out_of_date_converges_with_configuration_needed() -> None:
    p = SynthPlatform()
    levels = (tcb_level(COMPONENTS, 13, "ConfigurationNeeded", ("INTEL-SA-00289",)),)
    quote = p.quote(qe_isvsvn=6)
    policy = dataclasses.replace(POLICY, allowed_tcb_statuses=frozenset(TcbStatus) - {TcbStatus.REVOKED},
                                 allow_outdated_tcb_insecure=True)
    result = verify_quote(quote, p.collateral(tcb_info=p.tcb_info(levels)), policy, at=NOW, trust_anchor=p.anchor)
    assert result.tcb_status is TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED
    assert result.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")


def test_revoked_tcb_level_fails_hard() -> None:
    p = SynthPlatform()
    quote = p.quote()
    collateral = p.collateral(tcb_info=p.tcb_info((tcb_level(COMPONENTS, 13, "Revoked"),)))
    result = verify_quote(quote, collateral, POLICY, at=NOW, trust_anchor=p.anchor)
    assert result.failed_step is Step.PLATFORM_TCB and "Revoked" in result.message


def test_tcb_below_every_level_is_not_supported() -> None:
    p = SynthPlatform(components=(0,) * 16, pcesvn=1)
    result = verify(p, p.quote())
    assert result.failed_step is Step.PLATFORM_TCB and "not supported" in result.message


def test_unknown_status_string(platform: SynthPlatform) -> None:
    collateral = platform.collateral(tcb_info=platform.tcb_info((tcb_level(COMPONENTS, 13, "Fine"),)))
    result = verify_quote(platform.quote(), collateral, POLICY, at=NOW, trust_anchor=platform.anchor)
    assert result.failed_step is Step.PLATFORM_TCB and "unrecognized" in result.message


@pytest.mark.parametrize(("overrides", "text"), [
    ({"mrsigner": "00" * 32}, "MRSIGNER"),
    ({"isvprodid": 2}, "ISVPRODID"),
    ({"miscselect": "00000001"}, "MISCSELECT"),
    ({"attributes": "13000000000000000000000000000000"}, "ATTRIBUTES"),
    ({"tcbLevels": [qe_level(9, "UpToDate")]}, "below every QE Identity"),
])
def test_qe_identity_mismatch(platform: SynthPlatform, overrides: dict, text: str) -> None:
    collateral = platform.collateral(qe_identity=platform.qe_identity(**overrides))
    result = verify_quote(platform.quote(), collateral, POLICY, at=NOW, trust_anchor=platform.anchor)
    assert result.failed_step is Step.QE_IDENTITY_MATCH and text in result.message


@pytest.mark.parametrize(("tcb_overrides", "text"), [
    ({"fmspc": "00906ED50001"}, "FMSPC"),
    ({"pceId": "0001"}, "PCE-ID"),
    ({"id": "TDX"}, "'TDX'"),
])
def test_collateral_for_another_platform(platform: SynthPlatform, tcb_overrides: dict, text: str) -> None:
    collateral = platform.collateral(tcb_info=platform.tcb_info(**tcb_overrides))
    result = verify_quote(platform.quote(), collateral, POLICY, at=NOW, trust_anchor=platform.anchor)
    assert result.failed_step is Step.COLLATERAL_MATCH and text in result.message


def test_tcb_info_signed_by_a_pck_ca_is_refused(platform: SynthPlatform) -> None:
    collateral = dataclasses.replace(platform.collateral(), tcb_info_issuer_chain=(platform.ca_cert, platform.root))
    result = verify_quote(platform.quote(), collateral, POLICY, at=NOW, trust_anchor=platform.anchor)
    assert result.failed_step is Step.TCB_INFO and "TCB Signing" in result.message


def test_expired_pck_certificate_is_reported_as_expiry() -> None:
    p = SynthPlatform()
    p.pck = p.make_pck(not_after=NOW.replace(month=2))
    result = verify(p, p.quote())
    assert result.failed_step is Step.COLLATERAL_EXPIRY and "PCK chain certificate 0" in result.message


def test_simulated_anchor_is_refused_by_default() -> None:
    p = SynthPlatform()
    quote, collateral = p.quote(), p.collateral()
    simulated = TrustAnchor.from_certificate(p.root, simulated=True)
    result = verify_quote(quote, collateral, POLICY, at=NOW, trust_anchor=simulated)
    assert result.failed_step is Step.POLICY_SIMULATION
    allowed = dataclasses.replace(POLICY, allow_simulation_insecure=True)
    accepted = verify_quote(quote, collateral, allowed, at=NOW, trust_anchor=simulated)
    assert accepted.ok and accepted.verified.simulated


def test_root_named_simulated_is_flagged_even_without_the_anchor_flag() -> None:
    p = SynthPlatform(root_cn="KMS Simulated SGX Root CA (not Intel)")
    result = verify(p, p.quote())
    assert result.failed_step is Step.POLICY_SIMULATION


def test_chain_with_extra_or_missing_certificates(platform: SynthPlatform) -> None:
    short = pem(platform.pck, platform.ca_cert)
    for chain in (short, short + pem(platform.root, platform.root)):
        result = verify(platform, platform.quote(chain=chain))
        assert result.failed_step is Step.PCK_CHAIN and "certificates, expected 3" in result.message


def test_supplied_chain_must_match_an_embedded_one(platform: SynthPlatform) -> None:
    other = SynthPlatform()
    result = verify_quote(platform.quote(), platform.collateral(), POLICY, at=NOW, trust_anchor=platform.anchor,
                          pck_chain=[other.pck, other.ca_cert, other.root])
    assert result.failed_step is Step.PCK_CHAIN and "differs" in result.message


def test_a_rejected_result_never_looks_accepted(platform: SynthPlatform) -> None:
    result = verify(platform, platform.quote(mrenclave=bytes(32)))
    assert not result and not result.ok
    for name in ("verified", "identity", "tcb_status", "advisory_ids", "collateral_expiry"):
        with pytest.raises(Exception, match="policy_mrenclave"):
            getattr(result, name)
    assert result.to_dict()["ok"] is False
    assert parse_quote(platform.quote()).body.mrenclave == MRENCLAVE
