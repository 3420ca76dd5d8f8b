"""The enclave's RA-TLS identity: REPORTDATA binds its TLS key, and the certificate it issues
around an installed quote carries the interoperable evidence extension (checked with pyca and
cbor2, independently of the enclave's own encoder)."""

from __future__ import annotations

import hashlib
import struct

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2 as codes

EVIDENCE_OID = x509.ObjectIdentifier("2.23.133.5.4.9")


def fake_quote(report: bytes) -> bytes:
    """A structurally minimal quote v3 around a report body (signatures are not checked here:
    the enclave only checks that the quote carries its own body; the verifier checks the rest)."""
    header = struct.pack("<HHI", 3, 2, 0) + bytes(40)
    return header + report[:384] + bytes(1020 - 48 - 384)


def test_reportdata_binds_the_tls_key_and_the_certificate_carries_the_quote(enclave) -> None:
    report = enclave.report(bytes(512))
    with pytest.raises(errors.NotInitialized):
        enclave.call(pb.Request(get_evidence=pb.GetEvidenceRequest()))
    quote = fake_quote(report)
    ev = enclave.call(pb.Request(install_quote=pb.InstallQuoteRequest(quote=quote))).evidence
    assert ev.quote == quote
    cert = x509.load_der_x509_certificate(ev.certificate)
    assert cert.issuer == cert.subject
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    ext = cert.extensions.get_extension_for_oid(EVIDENCE_OID)
    assert not ext.critical
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    tagged = cbor2.loads(ext.value.value)
    assert tagged.tag == 60000 and tagged.value[0] == quote
    claims_bytes = tagged.value[1]
    spki = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    domain_id = enclave.identity().domain_id  # the fixture's domain: clients pin it
    assert len(domain_id) == 16
    assert cbor2.loads(claims_bytes) == {"pubkey-hash": cbor2.dumps([1, hashlib.sha256(spki).digest()]),
                                         "domain-id": domain_id}
    assert report[320:384] == hashlib.sha256(claims_bytes).digest() + bytes(32)
    again = enclave.call(pb.Request(get_evidence=pb.GetEvidenceRequest())).evidence
    assert again.certificate == ev.certificate and again.quote == quote


@pytest.mark.parametrize("offset", [48 + 64, 48 + 128, 48 + 256, 48 + 258, 48 + 48, 48 + 320, 48 + 383, 0])
def test_a_quote_of_another_body_is_refused(enclave, offset: int) -> None:
    quote = bytearray(fake_quote(enclave.report(bytes(512))))
    quote[offset] ^= 0x01
    with pytest.raises(errors.InvalidRequest) as exc:
        enclave.call(pb.Request(install_quote=pb.InstallQuoteRequest(quote=bytes(quote))))
    assert exc.value.code == codes.KMS_ERR_QUOTE_MISMATCH


def test_short_quote_is_refused(enclave) -> None:
    with pytest.raises(errors.InvalidRequest):
        enclave.call(pb.Request(install_quote=pb.InstallQuoteRequest(quote=fake_quote(enclave.report(bytes(512)))[:1019])))
