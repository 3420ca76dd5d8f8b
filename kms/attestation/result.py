"""Verification results: an accepted result exposes evidence, a rejected one raises on access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from kms.attestation.anchor import TrustAnchor
from kms.attestation.chain import iso
from kms.attestation.errors import AttestationError, Step
from kms.attestation.pck import PckCa, SgxExtension
from kms.attestation.quote import Quote, ReportBody
from kms.attestation.tcb import TcbStatus


@dataclass(frozen=True)
class EnclaveIdentity:
    """The enclave's identity fields from its (signed) report body."""

    mrenclave: bytes
    mrsigner: bytes
    isvprodid: int
    isvsvn: int
    attributes: bytes
    miscselect: bytes
    configsvn: int
    configid: bytes
    isvextprodid: bytes
    isvfamilyid: bytes
    report_data: bytes

    @classmethod
    def from_report(cls, body: ReportBody) -> EnclaveIdentity:
        return cls(body.mrenclave, body.mrsigner, body.isvprodid, body.isvsvn, body.attributes,
                   body.miscselect, body.configsvn, body.configid, body.isvextprodid,
                   body.isvfamilyid, body.report_data)

    @property
    def flags(self) -> int:
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def debug(self) -> bool:
        return bool(self.flags & 0x02)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mrenclave": self.mrenclave.hex(), "mrsigner": self.mrsigner.hex(),
            "isvprodid": self.isvprodid, "isvsvn": self.isvsvn,
            "attributes": self.attributes.hex(), "debug": self.debug,
            "miscselect": self.miscselect.hex(), "configsvn": self.configsvn,
            "report_data": self.report_data.hex(),
        }


@dataclass(frozen=True)
class SignedQuote:
    """What the checks without collateral established: the quote parses, its PCK chain verifies to the anchor,
    the PCK key signs the QE report, the QE report binds the attestation key, which signs the enclave's report.
    Revocation, TCB status and the collateral are NOT evaluated: never an acceptance on its own."""

    quote: Quote
    identity: EnclaveIdentity
    pck_chain: tuple[x509.Certificate, ...]
    pck_ca: PckCa
    sgx_extension: SgxExtension
    trust_anchor: TrustAnchor
    simulated: bool
    pck_chain_valid_from: datetime
    pck_chain_expiry: datetime
    verification_time: datetime

    @property
    def pck_chain_status(self) -> str:
        """"valid", "not_yet_valid" or "expired" at the verification time."""
        if self.pck_chain_valid_from > self.verification_time:
            return "not_yet_valid"
        return "expired" if self.pck_chain_expiry <= self.verification_time else "valid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fmspc": self.sgx_extension.fmspc.hex(), "pce_id": self.sgx_extension.pce_id.hex(),
            "pck_ca": self.pck_ca.value, "trust_anchor": self.trust_anchor.name, "simulated": self.simulated,
            "quote_version": self.quote.version,
            "pck_chain_valid_from": iso(self.pck_chain_valid_from), "pck_chain_expiry": iso(self.pck_chain_expiry),
            "pck_chain_status": self.pck_chain_status,
        }


@dataclass(frozen=True)
class VerifiedQuote:
    """What the signature and TCB checks established (before the validity window and policy decisions).

    The validity window of everything checked (certificates, CRLs, TCB Info, QE Identity) is reported,
    not raised: `collateral_expiry`/`collateral_expired` (the earliest end) and `collateral_valid_from`/
    `collateral_not_yet_valid` (the latest start), each with the item that set it."""

    quote: Quote
    identity: EnclaveIdentity
    tcb_status: TcbStatus
    platform_tcb_status: TcbStatus
    qe_tcb_status: TcbStatus
    advisory_ids: tuple[str, ...]
    tcb_date: datetime
    fmspc: bytes
    pce_id: bytes
    pck_ca: PckCa
    tcb_evaluation_data_number: int
    collateral_expiry: datetime
    collateral_expiry_source: str
    collateral_expired: bool
    trust_anchor: TrustAnchor
    simulated: bool
    collateral_valid_from: datetime | None = None
    collateral_valid_from_source: str = ""
    collateral_not_yet_valid: bool = False

    @property
    def collateral_status(self) -> str:
        """"valid", "not_yet_valid" or "expired": the collateral's own result, apart from the TCB status."""
        if self.collateral_not_yet_valid:
            return "not_yet_valid"
        return "expired" if self.collateral_expired else "valid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "tcb_evaluated": True,
            "tcb_status": self.tcb_status.value,
            "platform_tcb_status": self.platform_tcb_status.value,
            "qe_tcb_status": self.qe_tcb_status.value,
            "advisory_ids": list(self.advisory_ids),
            "tcb_date": iso(self.tcb_date),
            "fmspc": self.fmspc.hex(), "pce_id": self.pce_id.hex(), "pck_ca": self.pck_ca.value,
            "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
            "collateral_status": self.collateral_status,
            "collateral_valid_from": None if self.collateral_valid_from is None else iso(self.collateral_valid_from),
            "collateral_valid_from_source": self.collateral_valid_from_source,
            "collateral_not_yet_valid": self.collateral_not_yet_valid,
            "collateral_expiry": iso(self.collateral_expiry),
            "collateral_expiry_source": self.collateral_expiry_source,
            "collateral_expired": self.collateral_expired,
            "trust_anchor": self.trust_anchor.name,
            "simulated": self.simulated,
            "quote_version": self.quote.version,
        }


@dataclass(frozen=True)
class RaTlsEvidence:
    """How an RA-TLS certificate's key was bound to its quote."""

    format: str
    subject_public_key_info: bytes
    claims: tuple[tuple[str, bytes], ...] = ()

    @property
    def nonce(self) -> bytes | None:
        return dict(self.claims).get("nonce")


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of verify_quote / verify_ratls_certificate.

    `ok` is True only when every check and the policy passed. On a rejected result, the
    accessors (`verified`, `identity`, `tcb_status`, ...) raise the AttestationError that
    rejected it; `diagnostics` may hold what the TCB evaluation established and `signatures` what the
    signature checks established, for display only.
    """

    at: datetime
    error: AttestationError | None
    quote: Quote | None = None
    checked: VerifiedQuote | None = None
    ratls_evidence: RaTlsEvidence | None = None
    signatures: SignedQuote | None = None

    def __post_init__(self) -> None:
        if self.error is None and self.checked is None:
            raise ValueError("an accepted result needs verified evidence")

    @classmethod
    def accepted(cls, at: datetime, checked: VerifiedQuote, ratls: RaTlsEvidence | None = None) -> VerificationResult:
        return cls(at, None, checked.quote, checked, ratls)

    @classmethod
    def rejected(cls, at: datetime, error: AttestationError, quote: Quote | None = None,
                 checked: VerifiedQuote | None = None, ratls: RaTlsEvidence | None = None,
                 signatures: SignedQuote | None = None) -> VerificationResult:
        return cls(at, error, quote, checked, ratls, signatures)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failed_step(self) -> Step | None:
        return None if self.error is None else self.error.step

    @property
    def message(self) -> str:
        return "accepted" if self.error is None else self.error.message

    def raise_for_failure(self) -> None:
        if self.error is not None:
            raise self.error

    @property
    def verified(self) -> VerifiedQuote:
        """The accepted evidence; raises the rejection error otherwise."""
        self.raise_for_failure()
        assert self.checked is not None
        return self.checked

    @property
    def identity(self) -> EnclaveIdentity:
        return self.verified.identity

    @property
    def tcb_status(self) -> TcbStatus:
        return self.verified.tcb_status

    @property
    def advisory_ids(self) -> tuple[str, ...]:
        return self.verified.advisory_ids

    @property
    def collateral_expiry(self) -> datetime:
        return self.verified.collateral_expiry

    @property
    def ratls(self) -> RaTlsEvidence:
        self.raise_for_failure()
        if self.ratls_evidence is None:
            raise AttributeError("this result is not from an RA-TLS certificate")
        return self.ratls_evidence

    @property
    def diagnostics(self) -> VerifiedQuote | None:
        """Checked-but-rejected evidence (e.g. expired collateral, policy mismatch). NOT accepted."""
        return None if self.ok else self.checked

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "failed_step": None if self.error is None else self.error.step.value,
            "message": self.message,
            "at": iso(self.at),
        }
        if self.checked is not None:
            out.update(self.checked.to_dict())
        elif self.signatures is not None:
            out.update(self.signatures.to_dict(), tcb_evaluated=False, tcb_status=None, advisory_ids=None)
        if self.quote is not None:
            out["identity"] = EnclaveIdentity.from_report(self.quote.body).to_dict()
            out["identity_signature_verified"] = self.checked is not None or self.signatures is not None
        if self.ratls_evidence is not None:
            out["ratls_format"] = self.ratls_evidence.format
        return out
