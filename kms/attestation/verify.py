"""The DCAP quote verification algorithm (reference §2.3), in stages that each name their step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import constant_time, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kms.attestation.anchor import INTEL_SGX_ROOT, TrustAnchor
from kms.attestation.chain import (
    SignatureMemo,
    Validity,
    check_not_revoked,
    digest,
    iso,
    malformed,
    verify_chain,
    verify_crl,
)
from kms.attestation.collateral import Collateral, CollateralSource, SignedDocument
from kms.attestation.errors import (
    AttestationError,
    CertificateChainError,
    CollateralError,
    RevocationError,
    SignatureError,
    Step,
    TcbError,
    TcbNotEvaluatedError,
)
from kms.attestation.pck import PckCa, common_name, pck_ca_of, sgx_extension
from kms.attestation.policy import AttestationPolicy
from kms.attestation.quote import CERT_DATA_PCK_CHAIN, CERT_DATA_PCK_LEAF, Quote, parse_quote
from kms.attestation.result import EnclaveIdentity, SignedQuote, VerificationResult, VerifiedQuote
from kms.attestation.tcb import (
    TcbStatus,
    converge,
    match_platform_level,
    match_qe_identity,
    merge_advisories,
    parse_qe_identity,
    parse_tcb_info,
)

T = TypeVar("T")
_ROOT_CN = "SGX Root CA"
_CA_CN = {PckCa.PROCESSOR: "Processor CA", PckCa.PLATFORM: "Platform CA"}


def verification_time(at: datetime) -> datetime:
    """The caller's verification time, which must carry a time zone; returned in UTC."""
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the verification time must be a timezone-aware datetime")
    return at.astimezone(UTC)


def verify_quote(
    quote: bytes | Quote,
    collateral: Collateral | CollateralSource | None,
    policy: AttestationPolicy,
    *,
    at: datetime,
    trust_anchor: TrustAnchor = INTEL_SGX_ROOT,
    pck_chain: Sequence[x509.Certificate] | None = None,
) -> VerificationResult:
    """Verify a quote against collateral and a policy at time `at`. Never raises for a bad quote:
    the result says which step failed. `pck_chain` (leaf, CA, root) is for quotes that do not
    carry their PCK chain (certification data types 1-4).

    `collateral=None` checks what needs no collateral (parsing, every signature up to the PCK chain,
    the enclave part of the policy) and is then rejected at `tcb_not_evaluated`: never an acceptance."""
    at = verification_time(at)
    parsed: Quote | None = None
    signed: SignedQuote | None = None
    checked: VerifiedQuote | None = None
    try:
        parsed = quote if isinstance(quote, Quote) else parse_quote(quote)
        validity, memo = Validity(at), SignatureMemo()
        signed = _signature_stage(parsed, trust_anchor, pck_chain, validity, memo)
        if collateral is None:
            policy.evaluate_without_tcb(signed)
            raise TcbNotEvaluatedError(_not_evaluated(signed))
        checked = _collateral_stage(signed, collateral, validity, memo)
        policy.evaluate(checked)
    except AttestationError as exc:
        return VerificationResult.rejected(at, exc, parsed, checked, signatures=signed)
    return VerificationResult.accepted(at, checked)


def _not_evaluated(signed: SignedQuote) -> str:
    window = {"valid": "", "expired": f" (the PCK chain expired at {iso(signed.pck_chain_expiry)})",
              "not_yet_valid": f" (the PCK chain is not valid before {iso(signed.pck_chain_valid_from)})"}
    return ("verified without collateral: the quote parses and every signature verifies up to the PCK chain "
            f"({signed.trust_anchor.name}){window[signed.pck_chain_status]}; its TCB status, advisories and "
            "revocation were NOT evaluated, so it is not accepted")


def _raw_signature(signature: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))


def _ecdsa_ok(key: object, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, ec.EllipticCurvePublicKey) or len(signature) != 64:
        return False
    try:
        key.verify(_raw_signature(signature), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    der = serialization.Encoding.DER
    return a.public_bytes(der) == b.public_bytes(der)


def _pck_chain(quote: Quote, supplied: Sequence[x509.Certificate] | None) -> tuple[x509.Certificate, ...]:
    """The PCK chain: from the quote (type 5), or supplied beside it (types 1-4)."""
    embedded = quote.embedded_pck_chain()
    chain = tuple(supplied) if supplied is not None else ()
    if quote.cert_data_type == CERT_DATA_PCK_CHAIN:
        if chain and (len(chain) != len(embedded) or not all(map(_same, chain, embedded))):
            raise CertificateChainError(Step.PCK_CHAIN, "the supplied PCK chain differs from the quote's")
        return embedded
    if not chain:
        raise CertificateChainError(
            Step.PCK_CHAIN, f"certification data type {quote.cert_data_type} carries no PCK chain; "
                            "supply the PCK certificate chain beside the quote")
    if quote.cert_data_type == CERT_DATA_PCK_LEAF:
        if len(embedded) != 1 or not _same(chain[0], embedded[0]):
            raise CertificateChainError(Step.PCK_CHAIN, "the supplied PCK leaf differs from the quote's")
    return chain


def _signed_document(
    doc: SignedDocument,
    issuer_chain: Sequence[x509.Certificate],
    collateral: Collateral,
    anchor: TrustAnchor,
    validity: Validity,
    memo: SignatureMemo,
    *,
    step: Step,
    what: str,
    parse: Callable[[bytes], T],
) -> T:
    """Chain of the TCB signing certificate, its revocation, the signature over the exact text."""
    with malformed(step, f"{what} issuer chain"):
        verify_chain(issuer_chain, anchor, step=step, what=f"{what} issuer chain",
                     names=("TCB Signing", _ROOT_CN), validity=validity, memo=memo)
    with malformed(Step.REVOCATION, "root CA CRL"):
        check_not_revoked(collateral.root_ca_crl, issuer_chain[0], f"{what} signing certificate", "root CA CRL")
    if not _ecdsa_ok(issuer_chain[0].public_key(), doc.signature, doc.body):
        raise CollateralError(step, f"{what} signature does not verify over its JSON text")
    return parse(doc.body)


def _check_revocation(collateral: Collateral, chain: Sequence[x509.Certificate], ca: PckCa,
                      anchor: TrustAnchor, validity: Validity, memo: SignatureMemo) -> None:
    """Both CRLs, signed by the quote's root and CA; the collateral's CRL issuer chain is that CA."""
    leaf, intermediate, root = chain
    verify_crl(collateral.root_ca_crl, root, "root CA CRL", validity)
    check_not_revoked(collateral.root_ca_crl, intermediate, "PCK intermediate CA", "root CA CRL")
    verify_crl(collateral.pck_crl, intermediate, "PCK CRL", validity)
    check_not_revoked(collateral.pck_crl, leaf, "PCK certificate", "PCK CRL")
    issuers = collateral.pck_crl_issuer_chain
    verify_chain(issuers, anchor, step=Step.REVOCATION, what="PCK CRL issuer chain",
                 names=(_CA_CN[ca], _ROOT_CN), validity=validity, memo=memo, first_is_ca=True)
    if issuers[0].public_key() != intermediate.public_key() or issuers[0].subject != intermediate.subject:
        raise RevocationError("PCK CRL issuer chain does not start with the quote's PCK CA")


def _check_quote_signatures(quote: Quote, leaf: x509.Certificate) -> None:
    if not _ecdsa_ok(leaf.public_key(), quote.qe_report_signature, quote.qe_report.raw):
        raise SignatureError(Step.QE_REPORT_SIGNATURE, "QE report signature does not verify with the PCK key")
    bound = digest(hashes.SHA256(), quote.attestation_key + quote.qe_auth_data)
    if not constant_time.bytes_eq(bound, quote.qe_report.report_data[:32]):
        raise SignatureError(Step.QE_REPORT_DATA, "QE REPORTDATA is not SHA-256(attestation key || QE "
                                                  "authentication data): the attestation key is not bound")


def _check_isv_signature(quote: Quote) -> None:
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + quote.attestation_key)
    except ValueError as exc:
        raise SignatureError(Step.ISV_SIGNATURE, "attestation key is not a P-256 point") from exc
    if not _ecdsa_ok(key, quote.isv_signature, quote.signed_data):
        raise SignatureError(Step.ISV_SIGNATURE, "ISV report signature does not verify with the attestation key")


def _signature_stage(quote: Quote, anchor: TrustAnchor, supplied: Sequence[x509.Certificate] | None,
                     validity: Validity, memo: SignatureMemo) -> SignedQuote:
    """Parsing and every signature up to the PCK chain: chain to the anchor, QE report, its binding of
    the attestation key, the ISV report. Needs no collateral."""
    with malformed(Step.PCK_CHAIN, "PCK chain"):
        chain = _pck_chain(quote, supplied)
        ca = pck_ca_of(chain[0])
        verify_chain(chain, anchor, step=Step.PCK_CHAIN, what="PCK chain",
                     names=("SGX PCK Certificate", _CA_CN[ca], _ROOT_CN), validity=validity, memo=memo)
        ext = sgx_extension(chain[0], ca)
    _check_quote_signatures(quote, chain[0])
    _check_isv_signature(quote)
    assert validity.earliest is not None and validity.latest_start is not None
    return SignedQuote(
        quote=quote, identity=EnclaveIdentity.from_report(quote.body), pck_chain=tuple(chain), pck_ca=ca,
        sgx_extension=ext, trust_anchor=anchor,
        simulated=anchor.simulated or "simulat" in common_name(chain[-1].subject).lower(),
        pck_chain_valid_from=validity.latest_start, pck_chain_expiry=validity.earliest,
        verification_time=validity.at)


def _collateral_stage(signed: SignedQuote, collateral: Collateral | CollateralSource, validity: Validity,
                      memo: SignatureMemo) -> VerifiedQuote:
    """Revocation, TCB Info, QE Identity, their match to the PCK, the QE identity and the platform TCB level.
    The validity window is recorded, never raised: the policy decides after every other check."""
    quote, chain, ca, ext, anchor = signed.quote, signed.pck_chain, signed.pck_ca, signed.sgx_extension, \
        signed.trust_anchor
    coll = collateral.collateral_for(ext.fmspc, ca, at=validity.at)
    with malformed(Step.REVOCATION, "CRL or its issuer chain"):
        _check_revocation(coll, chain, ca, anchor, validity, memo)
    tcb_info = _signed_document(coll.tcb_info, coll.tcb_info_issuer_chain, coll, anchor, validity,
                                memo, step=Step.TCB_INFO, what="TCB Info", parse=parse_tcb_info)
    validity.window(Step.TCB_INFO, "TCB Info", tcb_info.issue_date, tcb_info.next_update)
    qe_identity = _signed_document(coll.qe_identity, coll.qe_identity_issuer_chain, coll, anchor,
                                   validity, memo, step=Step.QE_IDENTITY, what="QE Identity",
                                   parse=parse_qe_identity)
    validity.window(Step.QE_IDENTITY, "QE Identity", qe_identity.issue_date, qe_identity.next_update)
    if tcb_info.version == 3 and tcb_info.id != "SGX":
        raise CollateralError(Step.COLLATERAL_MATCH, f"TCB Info id is {tcb_info.id!r}, not 'SGX'")
    if tcb_info.fmspc != ext.fmspc or tcb_info.pce_id != ext.pce_id:
        raise CollateralError(Step.COLLATERAL_MATCH,
                              f"TCB Info is for FMSPC {tcb_info.fmspc.hex()} / PCE-ID {tcb_info.pce_id.hex()}, "
                              f"the PCK certificate has {ext.fmspc.hex()} / {ext.pce_id.hex()}")
    if qe_identity.id != "QE":
        raise CollateralError(Step.COLLATERAL_MATCH, f"QE Identity id is {qe_identity.id!r}, not 'QE'")
    qe_status, qe_level = match_qe_identity(qe_identity, quote.qe_report)
    level = match_platform_level(tcb_info, ext.tcb_components, ext.pcesvn)
    platform_status = TcbStatus(level.status)
    status = converge(platform_status, qe_status)
    if status is TcbStatus.REVOKED:
        raise TcbError(Step.PLATFORM_TCB, f"TCB is Revoked (platform {platform_status.value}, "
                                          f"QE {qe_status.value})")
    assert validity.earliest is not None
    return VerifiedQuote(
        quote=quote,
        identity=signed.identity,
        tcb_status=status,
        platform_tcb_status=platform_status,
        qe_tcb_status=qe_status,
        advisory_ids=merge_advisories(level.advisory_ids, qe_level.advisory_ids),
        tcb_date=level.tcb_date,
        fmspc=ext.fmspc,
        pce_id=ext.pce_id,
        pck_ca=ca,
        tcb_evaluation_data_number=tcb_info.tcb_evaluation_data_number,
        collateral_expiry=validity.earliest,
        collateral_expiry_source=validity.source,
        collateral_expired=validity.expired,
        trust_anchor=anchor,
        simulated=signed.simulated,
        collateral_valid_from=validity.latest_start,
        collateral_valid_from_source=validity.start_source,
        collateral_not_yet_valid=validity.not_yet_valid,
    )


def check_quote_signatures(
    quote: Quote,
    *,
    at: datetime,
    trust_anchor: TrustAnchor = INTEL_SGX_ROOT,
    pck_chain: Sequence[x509.Certificate] | None = None,
) -> SignedQuote:
    """What needs no collateral (§2.3 steps 1-3, 7, 8, 10 without the CRLs): raises AttestationError.
    The result is NOT an acceptance: revocation and the TCB status were not evaluated."""
    at = verification_time(at)
    return _signature_stage(quote, trust_anchor, pck_chain, Validity(at), SignatureMemo())


def check_quote(
    quote: Quote,
    collateral: Collateral | CollateralSource,
    *,
    at: datetime,
    trust_anchor: TrustAnchor = INTEL_SGX_ROOT,
    pck_chain: Sequence[x509.Certificate] | None = None,
) -> VerifiedQuote:
    """All of §2.3 except the policy. Raises AttestationError; the validity window is recorded, not raised."""
    at = verification_time(at)
    validity, memo = Validity(at), SignatureMemo()
    signed = _signature_stage(quote, trust_anchor, pck_chain, validity, memo)
    return _collateral_stage(signed, collateral, validity, memo)
