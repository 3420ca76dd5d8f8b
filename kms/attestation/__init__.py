"""Client-side DCAP attestation: quote and RA-TLS verification, collateral, policy."""

from kms.attestation.anchor import INTEL_SGX_ROOT, INTEL_SGX_ROOT_PUBLIC_KEY_HEX, TrustAnchor
from kms.attestation.collateral import (
    Collateral,
    CollateralSource,
    SignedDocument,
    collateral_from_parts,
    dump_collateral_json,
    load_collateral_json,
    parse_collateral_json,
    split_signed_response,
)
from kms.attestation.errors import (
    AttestationError,
    CertificateChainError,
    CollateralError,
    CollateralExpiredError,
    CollateralFetchError,
    NotYetValidError,
    PolicyError,
    QuoteFormatError,
    RaTlsError,
    RevocationError,
    SignatureError,
    Step,
    TcbError,
    TcbNotEvaluatedError,
)
from kms.attestation.pccs import CollateralCache, PccsClient
from kms.attestation.pck import PckCa, SgxExtension
from kms.attestation.policy import AttestationPolicy
from kms.attestation.quote import Quote, ReportBody, parse_quote
from kms.attestation.ratls import verify_ratls_certificate
from kms.attestation.result import (
    EnclaveIdentity,
    RaTlsEvidence,
    SignedQuote,
    VerificationResult,
    VerifiedQuote,
)
from kms.attestation.tcb import TcbStatus
from kms.attestation.verify import check_quote, check_quote_signatures, verify_quote

__all__ = [
    "INTEL_SGX_ROOT", "INTEL_SGX_ROOT_PUBLIC_KEY_HEX", "AttestationError", "AttestationPolicy",
    "CertificateChainError", "Collateral", "CollateralCache", "CollateralError",
    "CollateralExpiredError", "CollateralFetchError", "CollateralSource", "EnclaveIdentity",
    "NotYetValidError", "PccsClient", "PckCa", "PolicyError", "Quote", "QuoteFormatError",
    "RaTlsError", "RaTlsEvidence", "ReportBody", "RevocationError", "SgxExtension",
    "SignatureError", "SignedDocument", "SignedQuote", "Step", "TcbError", "TcbNotEvaluatedError", "TcbStatus",
    "TrustAnchor", "VerificationResult", "VerifiedQuote", "check_quote", "check_quote_signatures",
    "collateral_from_parts",
    "dump_collateral_json", "load_collateral_json", "parse_collateral_json", "parse_quote",
    "split_signed_response", "verify_quote", "verify_ratls_certificate",
]
