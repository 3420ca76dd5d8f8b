"""The simulated PCK PKI: root CA, Processor and Platform CAs, PCK leaves, TCB signing cert, CRLs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from kms.sim.errors import SimProvisioningError
from kms.sim.sgxext import SGX_EXTENSION_OID

# Every name says SIMULATED; the CN substrings are the ones Intel's verifiers look for
# ("SGX Root CA", "Processor CA"/"Platform CA", "SGX PCK Certificate", "TCB Signing").
ORGANIZATION = "Enclave KMS SIMULATED SGX platform (not Intel)"
ROOT_CN = "Enclave KMS SIMULATED SGX Root CA - not Intel"
CA_CN = {
    "processor": "Enclave KMS SIMULATED SGX PCK Processor CA",
    "platform": "Enclave KMS SIMULATED SGX PCK Platform CA",
}
PCK_CN = "Enclave KMS SIMULATED SGX PCK Certificate"
TCB_SIGNING_CN = "Enclave KMS SIMULATED SGX TCB Signing"
CA_TYPES = ("processor", "platform")
CRL_NAMES = ("root", *CA_TYPES)

BACKDATE = timedelta(hours=1)  # tolerate clock skew between the simulator and verifiers
ROOT_LIFETIME = timedelta(days=365 * 25)
CA_LIFETIME = timedelta(days=365 * 15)
LEAF_LIFETIME = timedelta(days=365 * 7)
CRL_LIFETIME = timedelta(days=30)

_CA_USAGE = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
_SIGNER_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False)


def name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(data: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SimProvisioningError(f"{what} is not a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SimProvisioningError(f"{what} is not a P-256 key")
    return key


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def load_cert(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise SimProvisioningError(f"{what} is not a PEM certificate: {exc}") from exc


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    now: datetime,
    lifetime: timedelta,
    path_length: int | None,
    extra: Iterable[x509.ExtensionType] = (),
) -> x509.Certificate:
    """A certificate; path_length None = end entity. Never outlives its issuer."""
    not_after = now + lifetime
    if issuer is not None:
        not_after = min(not_after, issuer.not_valid_after_utc)
    ca = path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer.subject if issuer is not None else name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_CA_USAGE if ca else _SIGNER_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_root(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    return _issue(ROOT_CN, key, None, key, now=now, lifetime=ROOT_LIFETIME, path_length=1)


def make_ca(ca_type: str, key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
            root_key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    return _issue(CA_CN[ca_type], key, root, root_key, now=now, lifetime=CA_LIFETIME, path_length=0)


def make_tcb_signing(key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
                     root_key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    return _issue(TCB_SIGNING_CN, key, root, root_key, now=now, lifetime=LEAF_LIFETIME, path_length=None)


def make_pck(key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
             sgx_extension: bytes, now: datetime) -> x509.Certificate:
    """A PCK leaf carrying the SGX extension (see kms.sim.sgxext)."""
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), sgx_extension)
    return _issue(PCK_CN, key, ca, ca_key, now=now, lifetime=LEAF_LIFETIME, path_length=None, extra=[ext])


def make_crl(
    issuer: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    number: int,
    revoked: dict[int, datetime],
    now: datetime,
) -> x509.CertificateRevocationList:
    """A CRL with crlNumber and authorityKeyIdentifier (both required by QVL), valid CRL_LIFETIME."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now - BACKDATE)
        .next_update(now - BACKDATE + CRL_LIFETIME)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(min(when, now - BACKDATE)).build())
    return builder.sign(key, hashes.SHA256())


def raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256/SHA-256 as raw big-endian r||s (64 bytes), the DCAP encoding."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The public key as x||y (64 bytes, no 0x04 prefix), the DCAP encoding."""
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point[1:]
