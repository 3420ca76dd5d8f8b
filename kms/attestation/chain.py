"""Certificate chains to the trust anchor, CRLs, and the validity window of all collateral."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms.attestation import der
from kms.attestation.anchor import TrustAnchor
from kms.attestation.errors import (
    AttestationError,
    CertificateChainError,
    CollateralError,
    RevocationError,
    Step,
)
from kms.attestation.pck import common_name


def digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    """A hash through pyca/cryptography (the package's only crypto provider)."""
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


@contextmanager
def malformed(step: Step, what: str) -> Iterator[None]:
    """pyca parses certificates and CRLs lazily: a malformed field surfaces as ValueError or
    UnsupportedAlgorithm only when accessed. Report it as a failure of `step`."""
    try:
        yield
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        error: AttestationError
        if step is Step.REVOCATION:
            error = RevocationError(f"{what} is malformed: {exc}")
        elif step in (Step.TCB_INFO, Step.QE_IDENTITY):
            error = CollateralError(step, f"{what} is malformed: {exc}")
        else:
            error = CertificateChainError(step, f"{what} is malformed: {exc}")
        raise error from exc


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class Validity:
    """The validity window of everything checked: the earliest expiry and the latest start, with what set each.

    Neither is raised here: QVL still reports the TCB status of a quote whose collateral is not yet valid
    or expired, so the verifier records both and the policy refuses them after every other check."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.earliest: datetime | None = None
        self.source = ""
        self.latest_start: datetime | None = None
        self.start_source = ""

    def window(self, step: Step, what: str, not_before: datetime | None, not_after: datetime | None) -> None:
        if not_after is None:
            raise CollateralError(step, f"{what} has no expiry (nextUpdate/notAfter)")
        if not_before is not None and (self.latest_start is None or not_before > self.latest_start):
            self.latest_start, self.start_source = not_before, what
        if self.earliest is None or not_after < self.earliest:
            self.earliest, self.source = not_after, what

    def cert(self, step: Step, what: str, cert: x509.Certificate) -> None:
        self.window(step, what, cert.not_valid_before_utc, cert.not_valid_after_utc)

    @property
    def expired(self) -> bool:
        """QvE semantics: expired once the earliest expiry is at or before the verification time."""
        return self.earliest is not None and self.earliest <= self.at

    @property
    def not_yet_valid(self) -> bool:
        """Something starts after the verification time (certificate notBefore, CRL thisUpdate, issueDate)."""
        return self.latest_start is not None and self.latest_start > self.at


ECDSA_SHA256_ALGORITHM = bytes.fromhex("300a06082a8648ce3d040302")


def ecdsa_sha256_signed(encoded: bytes) -> bool:
    """Both the outer and the signed (inner) signature algorithm of a DER certificate or CRL are
    ecdsa-with-SHA256, and the signature BIT STRING has no unused bits. pyca verifies with the
    inner algorithm and reads the signature bits without checking either of these."""
    try:
        tbs, algorithm, signature = der.children(der.parse(encoded, der.TAG_SEQUENCE))
        inner = next(c for c in der.children(tbs) if c.tag == der.TAG_SEQUENCE)
    except (der.DerError, ValueError, StopIteration):
        return False
    if signature.tag != der.TAG_BIT_STRING or signature.content[:1] != b"\x00":
        return False
    return algorithm.raw == inner.raw == ECDSA_SHA256_ALGORITHM


class SignatureMemo:
    """Issuer-signature checks already done within one verification (shared roots, shared signers)."""

    def __init__(self) -> None:
        self._done: set[tuple[bytes, bytes]] = set()

    def signed_by(self, child: x509.Certificate, issuer: x509.Certificate) -> bool:
        encoded = child.public_bytes(serialization.Encoding.DER)
        key = (encoded, issuer.public_bytes(serialization.Encoding.DER))
        if key in self._done:
            return True
        if not ecdsa_sha256_signed(encoded):
            return False
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            return False
        self._done.add(key)
        return True


def _basic_ca(cert: x509.Certificate) -> bool | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return None
    except (x509.DuplicateExtension, ValueError):
        return None


def _can_sign_certs(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


def verify_chain(
    certs: Sequence[x509.Certificate],
    anchor: TrustAnchor,
    *,
    step: Step,
    what: str,
    names: Sequence[str],
    validity: Validity,
    memo: SignatureMemo,
    first_is_ca: bool = False,
) -> None:
    """Check [first, ..., root]: length, CN contents, signatures, CA flags, the root key, validity.
    The first certificate is an end entity unless `first_is_ca` (a CRL issuer chain)."""
    if len(certs) != len(names):
        raise CertificateChainError(step, f"{what} has {len(certs)} certificates, expected {len(names)}")
    root = certs[-1]
    if not anchor.matches(root.public_key()):
        raise CertificateChainError(
            step, f"{what} ends at {root.subject.rfc4514_string()!r}, whose key is not the trust "
                  f"anchor ({anchor.name})")
    if root.subject != root.issuer or not memo.signed_by(root, root):
        raise CertificateChainError(step, f"{what} root is not a valid self-signed certificate")
    for i, cert in enumerate(certs):
        label = f"{what} certificate {i} ({common_name(cert.subject)!r})"
        if names[i] not in common_name(cert.subject):
            raise CertificateChainError(step, f"{label}: CN must contain {names[i]!r}")
        validity.cert(step, label, cert)
        if i + 1 < len(certs):
            issuer = certs[i + 1]
            if _basic_ca(issuer) is not True or not _can_sign_certs(issuer):
                raise CertificateChainError(step, f"{label}: its issuer is not a CA")
            if not memo.signed_by(cert, issuer):
                raise CertificateChainError(step, f"{label}: signature by its issuer does not verify")
    leaf_key = certs[0].public_key()
    if (_basic_ca(certs[0]) is True) != first_is_ca and len(certs) > 1:
        raise CertificateChainError(step, f"{what} first certificate is {'not ' if first_is_ca else ''}a CA")
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or not isinstance(leaf_key.curve, ec.SECP256R1):
        raise CertificateChainError(step, f"{what} leaf key is not ECDSA P-256")


def _has_extension(crl: x509.CertificateRevocationList, kind: type[x509.ExtensionType]) -> bool:
    try:
        crl.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return False
    return True


def verify_crl(
    crl: x509.CertificateRevocationList, issuer: x509.Certificate, what: str, validity: Validity
) -> None:
    """The CRL is issued and signed by `issuer`, carries crlNumber and AKI, and is current."""
    if crl.issuer != issuer.subject:
        raise RevocationError(f"{what} is issued by {crl.issuer.rfc4514_string()!r}, "
                              f"expected {issuer.subject.rfc4514_string()!r}")
    try:
        complete = _has_extension(crl, x509.CRLNumber) and _has_extension(crl, x509.AuthorityKeyIdentifier)
    except (x509.DuplicateExtension, ValueError) as exc:
        raise RevocationError(f"{what} extensions do not parse: {exc}") from exc
    if not complete:
        raise RevocationError(f"{what} lacks the crlNumber or authorityKeyIdentifier extension")
    key = issuer.public_key()
    if not ecdsa_sha256_signed(crl.public_bytes(serialization.Encoding.DER)):
        raise RevocationError(f"{what} is not signed with ecdsa-with-SHA256 (inner and outer)")
    if not isinstance(key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(key):
        raise RevocationError(f"{what} signature does not verify")
    validity.window(Step.REVOCATION, what, crl.last_update_utc, crl.next_update_utc)


def check_not_revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate, what: str, crl_name: str) -> None:
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        raise RevocationError(f"{what} (serial {cert.serial_number:x}) is revoked by the {crl_name}")
