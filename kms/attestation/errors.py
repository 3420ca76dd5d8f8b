"""Verification steps and the typed exceptions that name the step that failed."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """One named check of quote, collateral, policy or RA-TLS verification, in order."""

    QUOTE_FORMAT = "quote_format"
    PCK_CHAIN = "pck_chain"
    QE_REPORT_SIGNATURE = "qe_report_signature"
    QE_REPORT_DATA = "qe_report_data"
    ISV_SIGNATURE = "isv_signature"
    COLLATERAL_FETCH = "collateral_fetch"
    COLLATERAL_FORMAT = "collateral_format"
    REVOCATION = "revocation"
    TCB_INFO = "tcb_info"
    QE_IDENTITY = "qe_identity"
    COLLATERAL_MATCH = "collateral_match"
    QE_IDENTITY_MATCH = "qe_identity_match"
    PLATFORM_TCB = "platform_tcb"
    POLICY_SIMULATION = "policy_simulation"
    POLICY_ATTRIBUTES = "policy_attributes"
    POLICY_MRENCLAVE = "policy_mrenclave"
    POLICY_MRSIGNER = "policy_mrsigner"
    POLICY_ISVPRODID = "policy_isvprodid"
    POLICY_ISVSVN = "policy_isvsvn"
    POLICY_TCB_STATUS = "policy_tcb_status"
    POLICY_REPORT_DATA = "policy_report_data"
    COLLATERAL_NOT_YET_VALID = "collateral_not_yet_valid"
    COLLATERAL_EXPIRY = "collateral_expiry"
    TCB_NOT_EVALUATED = "tcb_not_evaluated"
    RATLS_CERTIFICATE = "ratls_certificate"
    RATLS_BINDING = "ratls_binding"


class AttestationError(Exception):
    """A check failed: `step` names it, `message` says why. Never a warning."""

    def __init__(self, step: Step, message: str) -> None:
        super().__init__(f"{step.value}: {message}")
        self.step = step
        self.message = message


class QuoteFormatError(AttestationError):
    """The quote bytes do not parse as a supported DCAP quote."""

    def __init__(self, message: str) -> None:
        super().__init__(Step.QUOTE_FORMAT, message)


class CertificateChainError(AttestationError):
    """A certificate chain (PCK or collateral signer) does not verify to the anchor."""


class RevocationError(AttestationError):
    """A CRL is invalid, or it revokes a certificate in the chain."""

    def __init__(self, message: str) -> None:
        super().__init__(Step.REVOCATION, message)


class CollateralError(AttestationError):
    """Collateral is malformed, wrongly signed, or does not belong to this quote."""


class CollateralFetchError(AttestationError):
    """Collateral could not be obtained from a PCCS, Intel PCS or a file."""

    def __init__(self, message: str) -> None:
        super().__init__(Step.COLLATERAL_FETCH, message)


class SignatureError(AttestationError):
    """A quote signature (QE report or ISV report) or its binding does not verify."""


class TcbError(AttestationError):
    """The QE identity or the platform TCB level does not match the collateral."""


class NotYetValidError(AttestationError):
    """All checks passed, but a certificate, CRL or collateral document starts after the verification time.
    Never relaxed: it is a wrong clock or collateral from the future."""

    def __init__(self, message: str) -> None:
        super().__init__(Step.COLLATERAL_NOT_YET_VALID, message)


class CollateralExpiredError(AttestationError):
    """All checks passed, but some collateral had expired at the verification time."""

    def __init__(self, message: str) -> None:
        super().__init__(Step.COLLATERAL_EXPIRY, message)


class TcbNotEvaluatedError(AttestationError):
    """Verified without collateral: the quote parses and its signatures verify up to the PCK chain, but its TCB
    status, revocation and collateral were not evaluated. Never an acceptance."""

    def __init__(self, message: str) -> None:
        super().__init__(Step.TCB_NOT_EVALUATED, message)


class PolicyError(AttestationError):
    """The verified quote does not satisfy the caller's AttestationPolicy."""


class RaTlsError(AttestationError):
    """The RA-TLS certificate is malformed or its key is not bound to the quote."""
