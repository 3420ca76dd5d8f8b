"""Trust anchors: Intel's SGX root public key by default, or an explicit one (simulated, test)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Intel SGX Root CA public key, uncompressed P-256 point, copied from the project's reference notes
# (../shared/reference/dcap-ratls.md §2.1), which took it from Intel's QvE (DCAP
# QuoteVerification/QvE/Enclave/qve.cpp INTEL_ROOT_PUB_KEY). Both published root certificates
# (2018-2033 and 2018-2049) carry this key; tests check it against the real 2049 certificate.
INTEL_SGX_ROOT_PUBLIC_KEY_HEX = (
    "04"
    "0BA9C4C0C0C86193A3FE23D6B02CDA10A8BBD4E88E48B4458561A36E705525F5"
    "67918E2EDC88E40D860BD0CC4EE26AACC988E505A953558C453F6B0904AE7394"
)

AnchorKey = ec.EllipticCurvePublicKey | bytes


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@dataclass(frozen=True)
class TrustAnchor:
    """A root public key (uncompressed P-256 point) that certificate chains must end at."""

    public_point: bytes
    name: str
    simulated: bool = False

    def __post_init__(self) -> None:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.public_point)
        if _point(key) != self.public_point:
            raise ValueError("trust anchor must be an uncompressed P-256 point")

    @classmethod
    def from_public_key(
        cls, key: AnchorKey, name: str = "explicit anchor", *, simulated: bool = False
    ) -> TrustAnchor:
        if isinstance(key, bytes):
            return cls(key, name, simulated)
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("trust anchor must be a P-256 public key")
        return cls(_point(key), name, simulated)

    @classmethod
    def from_certificate(cls, cert: x509.Certificate, *, simulated: bool = False) -> TrustAnchor:
        """Anchor on the public key of a root certificate (its other fields are not pinned)."""
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("trust anchor certificate does not hold an EC key")
        return cls.from_public_key(key, cert.subject.rfc4514_string(), simulated=simulated)

    @classmethod
    def load(cls, data: bytes, *, simulated: bool = False) -> TrustAnchor:
        """From a PEM or DER certificate, or a PEM/DER SubjectPublicKeyInfo."""
        loaders = (x509.load_pem_x509_certificate, x509.load_der_x509_certificate)
        for load_cert in loaders:
            try:
                return cls.from_certificate(load_cert(data), simulated=simulated)
            except ValueError:
                continue
        for load_key in (serialization.load_pem_public_key, serialization.load_der_public_key):
            try:
                key = load_key(data)
            except ValueError:
                continue
            if isinstance(key, ec.EllipticCurvePublicKey):
                return cls.from_public_key(key, "explicit public key", simulated=simulated)
        raise ValueError("not a P-256 certificate or public key in PEM or DER")

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.public_point)

    def matches(self, key: object) -> bool:
        return isinstance(key, ec.EllipticCurvePublicKey) and _point(key) == self.public_point


INTEL_SGX_ROOT = TrustAnchor(bytes.fromhex(INTEL_SGX_ROOT_PUBLIC_KEY_HEX), "Intel SGX Root CA")
