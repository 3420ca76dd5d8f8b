"""RA-TLS: interoperable DICE evidence and Gramine's legacy extension, bound to synthetic quotes."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime

import cbor2
import pytest
from attest_testpki import MRENCLAVE, NOW, SynthPlatform, seq, tlv
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kms.attestation import AttestationPolicy, Step, verify_ratls_certificate
from kms.attestation import der as derlib

POLICY = AttestationPolicy(mrenclaves=frozenset({MRENCLAVE}))
DICE_OID = x509.ObjectIdentifier("2.23.133.5.4.9")
GRAMINE_MALFORMED_OID = x509.ObjectIdentifier("0.6.9.42.840.113741.1337.6")


@pytest.fixture(scope="module")
def platform() -> SynthPlatform:
    return SynthPlatform()


def spki_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims_for(key: ec.EllipticCurvePrivateKey, alg: int = 1, extra: dict | None = None) -> bytes:
    hasher = {1: hashlib.sha256, 7: hashlib.sha384, 8: hashlib.sha512}[alg]
    return cbor2.dumps({"pubkey-hash": cbor2.dumps([alg, hasher(spki_of(key)).digest()]), **(extra or {})})


def ratls_cert(key: ec.EllipticCurvePrivateKey, extensions: dict[x509.ObjectIdentifier, bytes],
               signer: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kms enclave")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(1).not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
               .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC)))
    for oid, value in extensions.items():
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    return builder.sign(signer or key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def dice_cert(p: SynthPlatform, key: ec.EllipticCurvePrivateKey, claims: bytes | None = None,
              report_data: bytes | None = None) -> bytes:
    claims = claims if claims is not None else claims_for(key)
    quote = p.quote(report_data=report_data if report_data is not None else hashlib.sha256(claims).digest())
    return ratls_cert(key, {DICE_OID: cbor2.dumps(cbor2.CBORTag(60000, [quote, claims]))})


def check(p: SynthPlatform, cert: bytes, **kwargs: object):
    return verify_ratls_certificate(cert, p.collateral(), POLICY, at=NOW, trust_anchor=p.anchor, **kwargs)


@pytest.mark.parametrize("alg", [1, 7, 8])
def test_dice_certificate_verifies(platform: SynthPlatform, alg: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    result = check(platform, dice_cert(platform, key, claims_for(key, alg)))
    assert result.ok, result.message
    assert result.ratls.format == "dice"
    assert result.ratls.subject_public_key_info == spki_of(key)
    assert result.identity.mrenclave == MRENCLAVE


def test_dice_certificate_as_pem_and_with_nonce(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = dice_cert(platform, key, claims_for(key, extra={"nonce": b"n0nce", "custom": b"x\x00"}))
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    result = check(platform, pem, expected_nonce=b"n0nce")
    assert result.ok and result.ratls.nonce == b"n0nce"
    assert check(platform, pem, expected_nonce=b"other").failed_step is Step.RATLS_BINDING


def test_pubkey_hash_of_another_key(platform: SynthPlatform) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    result = check(platform, dice_cert(platform, key, claims_for(other)))
    assert result.failed_step is Step.RATLS_BINDING and "pubkey-hash" in result.message


def test_reportdata_not_bound_to_claims(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    result = check(platform, dice_cert(platform, key, report_data=hashlib.sha256(b"other claims").digest()))
    assert result.failed_step is Step.RATLS_BINDING and "REPORTDATA" in result.message


def test_reportdata_upper_half_must_be_zero(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = claims_for(key)
    result = check(platform, dice_cert(platform, key, claims, hashlib.sha256(claims).digest() + b"\x01"))
    assert result.failed_step is Step.RATLS_BINDING


@pytest.mark.parametrize(("evidence", "text"), [
    (cbor2.dumps(cbor2.CBORTag(60001, [b"q", b"c"])), "tag 60000"),
    (cbor2.dumps(cbor2.CBORTag(60000, [b"q"])), "[bstr quote, bstr claims]"),
    (cbor2.dumps(cbor2.CBORTag(60000, [b"q", cbor2.dumps({"nonce": b"x"})])), "pubkey-hash"),
    (cbor2.dumps(cbor2.CBORTag(60000, [b"q", cbor2.dumps({"pubkey-hash": cbor2.dumps([2, b"x"])})])), "algorithm"),
    (cbor2.dumps(cbor2.CBORTag(60000, [b"q", b"c"])) + b"\x00", "trailing"),
    (b"\xff\xff", "CBOR"),
])
def test_malformed_dice_evidence(platform: SynthPlatform, evidence: bytes, text: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    result = check(platform, ratls_cert(key, {DICE_OID: evidence}))
    assert result.failed_step is Step.RATLS_CERTIFICATE and text in result.message


def legacy_quote(p: SynthPlatform, key: ec.EllipticCurvePrivateKey) -> bytes:
    return p.quote(report_data=hashlib.sha256(spki_of(key)).digest())


def test_gramine_legacy_extension(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = ratls_cert(key, {GRAMINE_MALFORMED_OID: legacy_quote(platform, key)})
    result = check(platform, cert)
    assert result.ok, result.message
    assert result.ratls.format == "gramine-legacy"
    assert check(platform, cert, accept_legacy_gramine=False).failed_step is Step.RATLS_CERTIFICATE


def test_gramine_legacy_binding_mismatch(platform: SynthPlatform) -> None:
    key, other = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    result = check(platform, ratls_cert(key, {GRAMINE_MALFORMED_OID: legacy_quote(platform, other)}))
    assert result.failed_step is Step.RATLS_BINDING


def test_dice_failure_does_not_fall_back_to_legacy(platform: SynthPlatform) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    bad_dice = cbor2.dumps(cbor2.CBORTag(60000, [legacy_quote(platform, key), claims_for(other)]))
    cert = ratls_cert(key, {DICE_OID: bad_dice, GRAMINE_MALFORMED_OID: legacy_quote(platform, key)})
    assert check(platform, cert).failed_step is Step.RATLS_BINDING


def _with_null_params(der: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Re-encode as Gramine/mbedTLS do: ecdsa-with-SHA256 with an explicit NULL parameter."""
    cert = derlib.parse(der)
    tbs, _, _ = derlib.children(cert)
    alg = seq(tlv(0x06, bytes.fromhex("2a8648ce3d040302")), b"\x05\x00")
    parts = [p.raw for p in derlib.children(tbs)]
    parts[2] = alg  # [0] version, serial, signature algorithm, ...
    new_tbs = seq(*parts)
    signature = key.sign(new_tbs, ec.ECDSA(hashes.SHA256()))
    return seq(new_tbs, alg, tlv(0x03, b"\x00" + signature))


def test_gramine_certificate_with_null_signature_parameters(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _with_null_params(ratls_cert(key, {GRAMINE_MALFORMED_OID: legacy_quote(platform, key)}), key)
    assert b"\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02\x05\x00" in cert
    result = check(platform, cert)
    assert result.ok, result.message


def test_self_signature_and_validity(platform: SynthPlatform) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    claims = claims_for(key)
    quote = platform.quote(report_data=hashlib.sha256(claims).digest())
    evidence = {DICE_OID: cbor2.dumps(cbor2.CBORTag(60000, [quote, claims]))}
    forged = check(platform, ratls_cert(key, evidence, signer=other))
    assert forged.failed_step is Step.RATLS_CERTIFICATE and "self-signature" in forged.message
    late = verify_ratls_certificate(ratls_cert(key, evidence), platform.collateral(), POLICY,
                                    at=datetime(2031, 1, 1, tzinfo=UTC), trust_anchor=platform.anchor)
    assert late.failed_step is Step.RATLS_CERTIFICATE and "valid" in late.message


def test_no_evidence_and_garbage(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert check(platform, ratls_cert(key, {})).failed_step is Step.RATLS_CERTIFICATE
    assert check(platform, b"\x30\x03\x02\x01").failed_step is Step.RATLS_CERTIFICATE
    assert check(platform, b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").failed_step \
        is Step.RATLS_CERTIFICATE


def test_quote_policy_still_applies(platform: SynthPlatform) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    policy = dataclasses.replace(POLICY, mrenclaves=frozenset({bytes(32)}))
    result = verify_ratls_certificate(dice_cert(platform, key), platform.collateral(), policy, at=NOW,
                                      trust_anchor=platform.anchor)
    assert result.failed_step is Step.POLICY_MRENCLAVE
    with pytest.raises(Exception, match="policy_mrenclave"):
        _ = result.ratls


def test_policy_report_data_conflicts_with_the_binding(platform: SynthPlatform) -> None:
    with pytest.raises(ValueError, match="REPORTDATA"):
        verify_ratls_certificate(b"", platform.collateral(), dataclasses.replace(POLICY, report_data=b"x"), at=NOW)
