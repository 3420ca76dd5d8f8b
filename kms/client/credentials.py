"""Client credentials for attested sessions: a key pair and a self-signed certificate.

The enclave authenticates a client by the key in its certificate (the TLS handshake proves
possession); the principal id is SHA-256 of the certificate's SubjectPublicKeyInfo.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Credentials:
    """A PEM certificate and its PEM private key; `directory` is where they were loaded from (its state.json
    keeps the pinned domain and the highest state heads seen: kms.client.state), None for in-memory ones."""

    certificate_pem: bytes
    private_key_pem: bytes
    directory: Path | None = field(default=None, compare=False)

    @classmethod
    def generate(cls, name: str) -> Credentials:
        """A fresh P-256 key and a self-signed certificate naming `name` (valid ten years)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM),
                   key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))

    @property
    def principal_id(self) -> bytes:
        """SHA-256 of the certificate's SubjectPublicKeyInfo: how the enclave knows this client."""
        return principal_id_of(self.certificate_pem)

    @classmethod
    def load(cls, directory: Path | str) -> Credentials:
        """Read cert.pem and key.pem from a directory."""
        d = Path(directory)
        return cls((d / "cert.pem").read_bytes(), (d / "key.pem").read_bytes(), d)

    def save(self, directory: Path | str) -> None:
        """Write cert.pem and key.pem (0600) into a new or existing directory; never overwrite a key."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(d / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.private_key_pem)
        (d / "cert.pem").write_bytes(self.certificate_pem)


def principal_id_of(certificate: bytes) -> bytes:
    """Principal id of a PEM or DER certificate."""
    cert = (x509.load_pem_x509_certificate(certificate) if certificate.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(certificate))
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()
