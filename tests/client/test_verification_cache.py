"""The client's cache of accepted evidence verifications (kms.client.verification_cache): what a cached entry
does NOT accept. Against the real enclave's RA-TLS certificate, the simulated PCCS's collateral and the real
verifier; the clock is the `at` every verification takes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kms.attestation import AttestationPolicy, PccsClient
from kms.attestation.collateral import Collateral, SignedDocument
from kms.attestation.errors import Step
from kms.attestation.ratls import parse_ratls_certificate
from kms.client import Credentials, DomainMismatch, KmsClient, RollbackDetected, VerificationFailed
from kms.client import evidence as evidence_module
from kms.client.evidence import CollateralSources, VerifiedEvidence, verify_evidence
from kms.client.state import ClientState, StateHead
from kms.client.verification_cache import VERIFIED, VerificationCache
from kms.proto.v1 import kms_pb2
from tests.client.fakeserver import FakeServer

SECOND = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def full_verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The certificates verified in full (the real verifier, counted); the process-wide cache starts empty."""
    seen: list[bytes] = []
    real = evidence_module.verify_ratls_certificate

    def counted(certificate, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(bytes(certificate))
        return real(certificate, *args, **kwargs)

    monkeypatch.setattr(evidence_module, "verify_ratls_certificate", counted)
    VERIFIED.clear()
    yield seen
    VERIFIED.clear()


def _evidence(server: FakeServer, certificate: bytes | None = None) -> kms_pb2.GetEvidenceResponse:
    return kms_pb2.GetEvidenceResponse(certificate=server.evidence.certificate if certificate is None else certificate,
                                       collateral_url=server.pccs.url)


def _verify(server: FakeServer, policy: AttestationPolicy, sources: CollateralSources, *, at: datetime,
            certificate: bytes | None = None) -> VerifiedEvidence:
    return verify_evidence(_evidence(server, certificate), policy, trust_anchor=server.platform.trust_anchor(),
                           collateral=sources, at=at)


@pytest.fixture
def fixed(server: FakeServer, policy: AttestationPolicy,
          full_verifications: list[bytes]) -> tuple[Collateral, VerifiedEvidence]:
    """One collateral set fetched from the PCCS, served unchanged (so its expiry is reached), and a first
    verification with it (now cached; the count of full verifications starts after it)."""
    now = datetime.now(UTC)
    first = _verify(server, policy, CollateralSources(PccsClient(server.pccs.url)), at=now)
    checked = first.result.checked
    assert checked is not None
    collateral = PccsClient(server.pccs.url).collateral_for(checked.fmspc, checked.pck_ca, at=now)
    VERIFIED.clear()
    cached = _verify(server, policy, CollateralSources(collateral), at=now)
    full_verifications.clear()
    return collateral, cached


def test_the_same_certificate_is_verified_once_and_re_checked_at_each_time(server, policy, full_verifications) -> None:
    sources = CollateralSources(PccsClient(server.pccs.url))
    now = datetime.now(UTC)
    first = _verify(server, policy, sources, at=now)
    later = _verify(server, policy, sources, at=now + SECOND)
    assert len(full_verifications) == 1 and len(VERIFIED) == 1
    assert later.certificate == first.certificate and later.identity == first.identity
    assert later.result.at == now + SECOND  # the verdict's time-dependent checks were made at this time


def test_a_different_certificate_is_verified_in_full_and_refused(server, policy, fixed, full_verifications) -> None:
    collateral, cached = fixed
    sources = CollateralSources(collateral)
    cert = bytearray(cached.certificate)
    cert[-1] ^= 1  # the self-signature's last byte
    with pytest.raises(VerificationFailed) as refused:
        _verify(server, policy, sources, at=datetime.now(UTC), certificate=bytes(cert))
    assert refused.value.step is Step.RATLS_CERTIFICATE
    assert full_verifications[-1] == bytes(cert) and len(VERIFIED) == 1  # the refusal is not kept


@pytest.mark.parametrize("edge", ["before the certificate", "after the certificate"])
def test_a_cached_certificate_outside_its_validity_is_refused(server, policy, fixed, full_verifications,
                                                              edge: str) -> None:
    collateral, cached = fixed
    cert = parse_ratls_certificate(cached.certificate)
    at = cert.not_before - SECOND if edge.startswith("before") else cert.not_after + SECOND
    with pytest.raises(VerificationFailed):
        _verify(server, policy, CollateralSources(collateral), at=at)
    assert len(full_verifications) == 1  # not answered from the cache


def test_a_cached_certificate_with_expired_collateral_is_refused(server, policy, fixed, full_verifications) -> None:
    collateral, cached = fixed
    checked = cached.result.checked
    assert checked is not None and checked.collateral_expiry < parse_ratls_certificate(cached.certificate).not_after
    sources = CollateralSources(collateral)
    assert _verify(server, policy, sources, at=checked.collateral_expiry - SECOND)  # cached, still in the window
    assert not full_verifications
    with pytest.raises(VerificationFailed) as refused:
        _verify(server, policy, sources, at=checked.collateral_expiry)
    assert "collateral expired" in str(refused.value) and len(full_verifications) == 1


def test_changed_collateral_is_verified_in_full(server, policy, fixed, full_verifications) -> None:
    """A source that now serves other collateral (a refreshed CRL or TCB Info; here a forged TCB Info) gets no
    help from the verdict made with the old one."""
    collateral, _ = fixed
    tcb = collateral.tcb_info
    forged = dataclasses.replace(collateral, tcb_info=SignedDocument(tcb.body, bytes(64)))
    with pytest.raises(VerificationFailed) as refused:
        _verify(server, policy, CollateralSources(forged), at=datetime.now(UTC))
    assert refused.value.step is Step.TCB_INFO and len(full_verifications) == 1


@pytest.mark.parametrize("change", ["another signer", "no simulation"])
def test_a_cached_certificate_is_judged_by_the_policy_given_now(server, policy, fixed, full_verifications,
                                                                change: str) -> None:
    collateral, _ = fixed
    other = (AttestationPolicy.build(mrsigner=bytes(32), allow_simulation_insecure=True) if change == "another signer"
             else AttestationPolicy.build(mrsigner=server.mrsigner))
    with pytest.raises(VerificationFailed):
        _verify(server, other, CollateralSources(collateral), at=datetime.now(UTC))
    assert len(full_verifications) == 1
    assert _verify(server, policy, CollateralSources(collateral), at=datetime.now(UTC))  # the first policy: cached
    assert len(full_verifications) == 1


def test_a_cached_certificate_still_meets_the_domain_pin(server, policy, admin, full_verifications) -> None:
    """The pin and the freshness probe are checked on every connection, cached verdict or not."""
    kw = {"credentials": Credentials.generate("bob"), "policy": policy, "trust_anchor": server.platform.trust_anchor(),
          "collateral": PccsClient(server.pccs.url)}  # cached collateral: a new PccsClient's would be fetched anew
    with KmsClient(server.target, domain_id=admin.domain_id, **kw):
        pass
    verified = len(full_verifications)
    with pytest.raises(DomainMismatch):
        KmsClient(server.target, domain_id=os.urandom(16), **kw)
    with pytest.raises(DomainMismatch):
        KmsClient(server.target, new_domain=True, **kw)
    domain, known = admin.domain_id, admin.state_head
    assert domain is not None and known is not None
    with pytest.raises(RollbackDetected):  # a head the enclave does not hold (forked): the probe still runs
        KmsClient(server.target, state=ClientState(domain_id=domain, heads={domain: StateHead(known.seq, bytes(32))}),
                  retries=0, **kw)
    assert len(full_verifications) == verified  # every refusal came after a cached verdict


def test_the_cache_is_bounded(server, policy, fixed) -> None:
    collateral, cached = fixed
    cache = VerificationCache(max_entries=2)
    keys = [cache.key(cached.certificate + bytes([i]), policy, server.platform.trust_anchor()) for i in range(3)]
    for key in keys:
        cache.remember(key, cached.certificate, cached.result, collateral)
    now = datetime.now(UTC)
    assert len(cache) == 2 and cache.lookup(keys[0], collateral, now) is None
    assert cache.lookup(keys[2], collateral, now) is not None
