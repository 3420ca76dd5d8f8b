"""Real and Intel-sample vectors: the full algorithm, pinned times, byte flips at each step."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest
from attest_testpki import flip, replace_v3_cert_data, vectors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms.attestation import (
    INTEL_SGX_ROOT,
    INTEL_SGX_ROOT_PUBLIC_KEY_HEX,
    AttestationPolicy,
    Collateral,
    SignedDocument,
    Step,
    TcbStatus,
    TrustAnchor,
    check_quote,
    collateral_from_parts,
    load_collateral_json,
    parse_quote,
    split_signed_response,
    verify_quote,
)

JULY = datetime(2025, 7, 1, tzinfo=UTC)
AUGUST = datetime(2025, 8, 1, tzinfo=UTC)
QVL_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
QVL_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
CSWH = TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED


@pytest.fixture(scope="module")
def qvl() -> tuple[bytes, Collateral]:
    d = vectors("dcap", "dcap-qvl")
    return (d / "sgx_quote").read_bytes(), load_collateral_json(d / "sgx_quote_collateral.json")


@pytest.fixture(scope="module")
def policy() -> AttestationPolicy:
    return AttestationPolicy.build(mrenclave=QVL_MRENCLAVE, mrsigner=QVL_MRSIGNER, isvprodid=0,
                                   allowed_tcb_statuses=("UpToDate", CSWH), report_data=b"Hello, world!")


def test_intel_root_constant_is_the_key_of_the_published_root() -> None:
    cert = x509.load_der_x509_certificate((vectors("dcap", "dcap-qvl") / "TrustedRootCA.der").read_bytes())
    point = cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert point == bytes.fromhex(INTEL_SGX_ROOT_PUBLIC_KEY_HEX) == INTEL_SGX_ROOT.public_point
    assert TrustAnchor.from_certificate(cert) == dataclasses.replace(INTEL_SGX_ROOT, name=cert.subject.rfc4514_string())


def test_dcap_qvl_passes_every_check(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, policy, at=JULY)
    assert result.ok, result.message
    assert result.tcb_status is CSWH
    assert result.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert result.verified.platform_tcb_status is CSWH
    assert result.verified.qe_tcb_status is TcbStatus.UP_TO_DATE
    assert result.identity.mrenclave.hex() == QVL_MRENCLAVE
    assert result.identity.report_data.startswith(b"Hello, world!")
    assert not result.identity.debug
    assert result.verified.fmspc.hex().upper() == "00A067110000"
    assert result.collateral_expiry == datetime(2025, 7, 19, 10, 1, 18, tzinfo=UTC)
    assert not result.verified.collateral_expired


def test_dcap_qvl_expired_collateral_is_its_own_result(qvl: tuple[bytes, Collateral],
                                                       policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, policy, at=AUGUST)
    assert not result.ok and not result
    assert result.failed_step is Step.COLLATERAL_EXPIRY
    assert "2025-07-19T10:01:18Z" in result.message
    with pytest.raises(Exception, match="collateral expired"):
        _ = result.identity
    assert result.diagnostics is not None and result.diagnostics.tcb_status is CSWH
    relaxed = dataclasses.replace(policy, allow_expired_collateral_insecure=True)
    late = verify_quote(quote, collateral, relaxed, at=AUGUST)
    assert late.ok and late.verified.collateral_expired


def test_dcap_qvl_fails_at_the_chain_step_for_another_root(qvl: tuple[bytes, Collateral],
                                                           policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    other = TrustAnchor.from_public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    result = verify_quote(quote, collateral, policy, at=JULY, trust_anchor=other)
    assert result.failed_step is Step.PCK_CHAIN
    assert "not the trust anchor" in result.message
    test_root = vectors("dcap", "intel-qvl-sample") / "trustedRootCaCert.pem"
    result = verify_quote(quote, collateral, policy, at=JULY, trust_anchor=TrustAnchor.load(test_root.read_bytes()))
    assert result.failed_step is Step.PCK_CHAIN


def test_dcap_qvl_is_refused_under_the_default_status_policy(qvl: tuple[bytes, Collateral]) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, AttestationPolicy.build(mrenclave=QVL_MRENCLAVE), at=JULY)
    assert result.failed_step is Step.POLICY_TCB_STATUS
    assert "ConfigurationAndSWHardeningNeeded" in result.message


FLIPS = [
    pytest.param(48 + 64, Step.ISV_SIGNATURE, "ISV report signature", id="isv-body-mrenclave"),
    pytest.param(48 + 320, Step.ISV_SIGNATURE, "ISV report signature", id="isv-body-reportdata"),
    pytest.param(8, Step.ISV_SIGNATURE, "ISV report signature", id="header-qe-svn"),
    pytest.param(436 + 5, Step.ISV_SIGNATURE, "ISV report signature", id="isv-signature"),
    pytest.param(564 + 64, Step.QE_REPORT_SIGNATURE, "QE report signature", id="qe-report"),
    pytest.param(948 + 3, Step.QE_REPORT_SIGNATURE, "QE report signature", id="qe-report-signature"),
    pytest.param(500 + 10, Step.QE_REPORT_DATA, "attestation key is not bound", id="attestation-key"),
    pytest.param(1014 + 4, Step.QE_REPORT_DATA, "attestation key is not bound", id="qe-auth-data"),
]


@pytest.mark.parametrize(("offset", "step", "text"), FLIPS)
def test_dcap_qvl_flipped_byte(qvl: tuple[bytes, Collateral], policy: AttestationPolicy,
                               offset: int, step: Step, text: str) -> None:
    quote, collateral = qvl
    result = verify_quote(flip(quote, offset), collateral, policy, at=JULY)
    assert result.failed_step is step, result.message
    assert text in result.message


def _leaf_flipped(quote: bytes, position: int) -> bytes:
    chain = parse_quote(quote).embedded_pck_chain()
    leaf = bytearray(chain[0].public_bytes(serialization.Encoding.DER))
    leaf[position] ^= 0x01
    leaf_pem = x509.load_der_x509_certificate(bytes(leaf)).public_bytes(serialization.Encoding.PEM)
    rest = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[1:])
    return replace_v3_cert_data(quote, leaf_pem + rest + b"\x00")


def test_dcap_qvl_pck_leaf_signature_byte(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    result = verify_quote(_leaf_flipped(quote, -3), collateral, policy, at=JULY)
    assert result.failed_step is Step.PCK_CHAIN
    assert "signature by its issuer does not verify" in result.message


def test_dcap_qvl_rebuilt_cert_data_still_verifies(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    chain = parse_quote(quote).embedded_pck_chain()
    no_nul = replace_v3_cert_data(quote, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    assert verify_quote(no_nul, collateral, policy, at=JULY).ok


def _doc(doc: SignedDocument, body: bytes | None = None, signature: bytes | None = None) -> SignedDocument:
    return SignedDocument(body if body is not None else doc.body,
                          signature if signature is not None else doc.signature)


@pytest.mark.parametrize(("field", "step"), [("tcb_info", Step.TCB_INFO), ("qe_identity", Step.QE_IDENTITY)])
def test_dcap_qvl_collateral_signature_and_text(qvl: tuple[bytes, Collateral], policy: AttestationPolicy,
                                                field: str, step: Step) -> None:
    quote, collateral = qvl
    doc: SignedDocument = getattr(collateral, field)
    bad_sig = dataclasses.replace(collateral, **{field: _doc(doc, signature=flip(doc.signature, 40))})
    body = re.sub(rb'"issueDate":"2025-06-19', b'"issueDate":"2025-06-18', doc.body)
    assert body != doc.body
    bad_text = dataclasses.replace(collateral, **{field: _doc(doc, body=body)})
    for tampered in (bad_sig, bad_text):
        result = verify_quote(quote, tampered, policy, at=JULY)
        assert result.failed_step is step
        assert "signature does not verify over its JSON text" in result.message


def test_dcap_qvl_crl_signature(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    der = bytearray(collateral.pck_crl.public_bytes(serialization.Encoding.DER))
    der[-2] ^= 0x01
    tampered = dataclasses.replace(collateral, pck_crl=x509.load_der_x509_crl(bytes(der)))
    result = verify_quote(quote, tampered, policy, at=JULY)
    assert result.failed_step is Step.REVOCATION and "PCK CRL signature" in result.message


def test_dcap_qvl_before_the_collateral_was_issued(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, policy, at=datetime(2025, 6, 19, 10, 30, tzinfo=UTC))
    assert result.failed_step is Step.COLLATERAL_NOT_YET_VALID and "not valid before" in result.message
    assert result.diagnostics is not None and result.diagnostics.tcb_status is CSWH  # reported, not accepted


def test_verification_time_must_be_aware(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    with pytest.raises(ValueError, match="timezone"):
        verify_quote(qvl[0], qvl[1], policy, at=datetime(2025, 7, 1))


# --- Intel QVL sample: TCB Info v2, certification data type 1, test root -----------------

@pytest.fixture(scope="module")
def sample() -> dict[str, object]:
    d = vectors("dcap", "intel-qvl-sample")
    read = lambda name: (d / name).read_bytes()  # noqa: E731
    collateral = collateral_from_parts(
        pck_crl_issuer_chain=read("pckSignChain.pem"), root_ca_crl=read("rootCaCrl.der"),
        pck_crl=read("intermediateCaCrl.der"), tcb_info_issuer_chain=read("tcbSignChain.pem"),
        tcb_info=split_signed_response(read("tcbInfo.json"), "tcbInfo"),
        qe_identity_issuer_chain=read("tcbSignChain.pem"),
        qe_identity=split_signed_response(read("qeIdentity.json"), "enclaveIdentity"))
    chain = [x509.load_pem_x509_certificate(read("pckCert.pem")),
             *x509.load_pem_x509_certificates(read("pckSignChain.pem"))]
    return {"quote": read("quote.dat"), "collateral": collateral, "chain": chain,
            "anchor": TrustAnchor.load(read("trustedRootCaCert.pem"))}


SAMPLE_AT = datetime(2025, 1, 1, tzinfo=UTC)
ANY_ENCLAVE = AttestationPolicy(allow_any_enclave_insecure=True)


def test_intel_sample_passes_as_up_to_date_against_its_test_root(sample: dict) -> None:
    quote = parse_quote(sample["quote"])
    assert quote.cert_data_type == 1 and quote.qe_auth_data == b""
    result = verify_quote(quote, sample["collateral"], ANY_ENCLAVE, at=SAMPLE_AT,
                          trust_anchor=sample["anchor"], pck_chain=sample["chain"])
    assert result.ok, result.message
    assert result.tcb_status is TcbStatus.UP_TO_DATE
    assert result.advisory_ids == ()
    checked = check_quote(quote, sample["collateral"], at=SAMPLE_AT, trust_anchor=sample["anchor"],
                          pck_chain=sample["chain"])
    assert checked.tcb_status is TcbStatus.UP_TO_DATE


def test_intel_sample_fails_against_intels_root(sample: dict) -> None:
    result = verify_quote(sample["quote"], sample["collateral"], ANY_ENCLAVE, at=SAMPLE_AT, pck_chain=sample["chain"])
    assert result.failed_step is Step.PCK_CHAIN and "Intel SGX Root CA" in result.message


def test_intel_sample_needs_its_pck_chain(sample: dict) -> None:
    result = verify_quote(sample["quote"], sample["collateral"], ANY_ENCLAVE, at=SAMPLE_AT,
                          trust_anchor=sample["anchor"])
    assert result.failed_step is Step.PCK_CHAIN and "supply the PCK certificate chain" in result.message
