"""The test suite's auditor: one X25519 key pair that the test domains are initialized with (a domain needs at
least one auditor), so that tests read what audit records say through the same key an auditor would use."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import x25519

from kms.audit import AuditorKey

AUDITOR = AuditorKey(x25519.X25519PrivateKey.generate())


def auditor_public() -> list[bytes]:
    """The auditor public keys to initialize a test domain with (raw X25519)."""
    return [AUDITOR.public]
