"""Verify a server's GetEvidence answer (RA-TLS certificate + DCAP quote) before anything is sent to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kms.attestation.anchor import TrustAnchor
from kms.attestation.collateral import Collateral, CollateralSource
from kms.attestation.errors import AttestationError, Step
from kms.attestation.pccs import PccsClient
from kms.attestation.policy import AttestationPolicy
from kms.attestation.ratls import verify_ratls_certificate
from kms.attestation.result import EnclaveIdentity, VerificationResult
from kms.attestation.verify import verification_time
from kms.client.errors import CollateralUnavailable, VerificationFailed
from kms.client.verification_cache import VERIFIED, RecordingSource
from kms.proto.v1 import kms_pb2

CERTIFICATE_MAX = 64 * 1024
DOMAIN_CLAIM = "domain-id"
DOMAIN_ID_LEN = 16


@dataclass(frozen=True)
class VerifiedEvidence:
    """Evidence that passed verification: the certificate to pin and what the verification established."""

    certificate: bytes
    result: VerificationResult
    collateral_url: str
    initialized: bool
    enclave_version: str

    @property
    def identity(self) -> EnclaveIdentity:
        return self.result.identity

    @property
    def domain_id(self) -> bytes | None:
        """The domain the enclave served when it was quoted: the certificate's "domain-id" claim (bound by the
        quote's REPORTDATA), None when it served none."""
        return _domain_claim(self.result)

    def to_dict(self) -> dict[str, object]:
        out = self.result.to_dict()
        domain = self.domain_id
        out.update(collateral_url=self.collateral_url, initialized=self.initialized,
                   enclave_version=self.enclave_version, domain_id=None if domain is None else domain.hex())
        return out


def _domain_claim(result: VerificationResult) -> bytes | None:
    evidence = result.ratls_evidence
    value = None if evidence is None else dict(evidence.claims).get(DOMAIN_CLAIM)
    if value is not None and len(value) != DOMAIN_ID_LEN:
        raise VerificationFailed(f"the certificate's {DOMAIN_CLAIM!r} claim is {len(value)} bytes, not "
                                 f"{DOMAIN_ID_LEN}", step=Step.RATLS_CERTIFICATE, result=result)
    return value


class CollateralSources:
    """The collateral source for each evidence: an explicit one, or one PccsClient per collateral URL (cached)."""

    def __init__(self, explicit: Collateral | CollateralSource | None = None) -> None:
        self._explicit = explicit
        self._by_url: dict[str, PccsClient] = {}

    def for_url(self, url: str) -> Collateral | CollateralSource:
        if self._explicit is not None:
            return self._explicit
        if not url:
            raise VerificationFailed("the server names no collateral URL and no collateral source was configured",
                                     step=Step.COLLATERAL_FETCH)
        source = self._by_url.get(url)
        if source is None:
            try:
                source = PccsClient(url)
            except ValueError as exc:
                raise VerificationFailed(f"unusable collateral URL from the server: {exc}",
                                         step=Step.COLLATERAL_FETCH) from exc
            self._by_url[url] = source
        return source


def verify_evidence(
    evidence: kms_pb2.GetEvidenceResponse,
    policy: AttestationPolicy,
    *,
    trust_anchor: TrustAnchor,
    collateral: CollateralSources,
    at: datetime | None = None,
) -> VerifiedEvidence:
    """Verify the RA-TLS certificate against the policy; raise VerificationFailed (never retried) otherwise,
    or CollateralUnavailable (a transport error: retried) when the collateral could not be fetched.

    The flags the server sends (simulated, initialized) are informational: verification decides.
    """
    certificate = bytes(evidence.certificate)
    if not certificate or len(certificate) > CERTIFICATE_MAX:
        raise VerificationFailed(f"the server sent a certificate of {len(certificate)} bytes",
                                 step=Step.RATLS_CERTIFICATE)
    source = collateral.for_url(evidence.collateral_url)
    key = VERIFIED.key(certificate, policy, trust_anchor)
    try:
        when = verification_time(at if at is not None else datetime.now(UTC))
        recording = RecordingSource(source)
        result = VERIFIED.lookup(key, recording, when)  # only an accepted verdict, re-checked at `when`
        if result is None:
            result = verify_ratls_certificate(certificate, recording, policy, at=when, trust_anchor=trust_anchor)
            VERIFIED.remember(key, certificate, result, recording.used)
    except (AttestationError, ValueError) as exc:  # a policy that cannot be applied is a refusal too
        raise VerificationFailed(f"evidence could not be verified: {exc}",
                                 step=getattr(exc, "step", None)) from exc
    if not result.ok and result.failed_step is Step.COLLATERAL_FETCH:
        # The collateral could not be downloaded (the PCCS is down or restarting): no verdict on the
        # evidence, and nothing was sent. Transient, so the client retries with backoff.
        raise CollateralUnavailable(f"collateral could not be fetched: {result.message}", sent=False)
    if not result.ok:
        raise VerificationFailed.from_result(result)
    _domain_claim(result)  # a malformed claim is a refusal here, not later
    return VerifiedEvidence(certificate, result, evidence.collateral_url, evidence.initialized,
                            evidence.enclave_version)
