"""Typed results of the SDK's operations and the names it accepts for key specs, usages and algorithms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kms.proto.enclave.v1 import boundary_pb2 as pb

# The usage a spec gets when the caller names none (RSA keys default to signing).
DEFAULT_USAGE = {
    pb.SYMMETRIC_DEFAULT: pb.ENCRYPT_DECRYPT, pb.HMAC_SHA_256: pb.GENERATE_VERIFY_MAC,
    pb.HMAC_SHA_384: pb.GENERATE_VERIFY_MAC, pb.HMAC_SHA_512: pb.GENERATE_VERIFY_MAC,
    pb.ECC_NIST_P256: pb.SIGN_VERIFY, pb.ECC_NIST_P384: pb.SIGN_VERIFY, pb.ECC_SECG_P256K1: pb.SIGN_VERIFY,
    pb.ED25519: pb.SIGN_VERIFY, pb.X25519: pb.KEY_AGREEMENT, pb.RSA_2048: pb.SIGN_VERIFY,
    pb.RSA_3072: pb.SIGN_VERIFY, pb.RSA_4096: pb.SIGN_VERIFY,
}
# The signing algorithm a spec gets when the caller names none.
DEFAULT_SIGNING = {
    pb.ECC_NIST_P256: pb.ECDSA_SHA_256, pb.ECC_SECG_P256K1: pb.ECDSA_SHA_256, pb.ECC_NIST_P384: pb.ECDSA_SHA_384,
    pb.ED25519: pb.ED25519_PURE, pb.RSA_2048: pb.RSASSA_PSS_SHA_256, pb.RSA_3072: pb.RSASSA_PSS_SHA_256,
    pb.RSA_4096: pb.RSASSA_PSS_SHA_256,
}
SPEC_ALIASES = {"AES_256_GCM": "SYMMETRIC_DEFAULT", "AES": "SYMMETRIC_DEFAULT", "P256": "ECC_NIST_P256",
                "P384": "ECC_NIST_P384", "SECP256K1": "ECC_SECG_P256K1", "ECDSA_P256": "ECC_NIST_P256"}


def enum_value(enum: Any, value: str | int, aliases: dict[str, str] | None = None) -> int:
    """An enum number from its number or its name (case-insensitive, '-' for '_', with aliases)."""
    if isinstance(value, int):
        if value not in enum.values() or value == 0:
            raise ValueError(f"{value} is not a valid {enum.DESCRIPTOR.name}")
        return value
    name = value.strip().upper().replace("-", "_")
    name = (aliases or {}).get(name, name)
    try:
        number = int(enum.Value(name))
    except ValueError:
        choices = ", ".join(n for n in enum.keys() if not n.endswith("UNSPECIFIED"))
        raise ValueError(f"unknown {enum.DESCRIPTOR.name} {value!r} (one of: {choices})") from None
    if name.endswith("UNSPECIFIED"):
        raise ValueError(f"{enum.DESCRIPTOR.name} must be specified")
    return number


def _time(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


@dataclass(frozen=True)
class KeyInfo:
    """A key's metadata (never its material)."""

    key_id: str
    spec: str
    usage: str
    state: str
    description: str
    created_at: datetime | None
    current_version: int
    version_count: int
    revision: int

    @classmethod
    def from_pb(cls, m: pb.KeyMetadata) -> KeyInfo:
        return cls(m.key_id, pb.KeySpec.Name(m.spec), pb.KeyUsage.Name(m.usage), pb.KeyState.Name(m.state),
                   m.description, _time(m.created_at), m.current_version, m.version_count, m.revision)

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "spec": self.spec, "usage": self.usage, "state": self.state,
                "description": self.description,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "current_version": self.current_version, "version_count": self.version_count,
                "revision": self.revision}


@dataclass(frozen=True)
class EncryptResult:
    key_id: str
    key_version: int
    ciphertext: bytes


@dataclass(frozen=True)
class DecryptResult:
    key_id: str
    key_version: int
    plaintext: bytes


@dataclass(frozen=True)
class DataKey:
    """A data key: plaintext (empty when not asked for) and its ciphertext, as Encrypt would make it."""

    key_id: str
    key_version: int
    plaintext: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class SignResult:
    key_id: str
    key_version: int
    signature: bytes
    algorithm: str


@dataclass(frozen=True)
class MacResult:
    key_id: str
    key_version: int
    mac: bytes


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    key_version: int
    spec: str
    public_key: bytes  # SubjectPublicKeyInfo, DER or PEM as requested


@dataclass(frozen=True)
class Principal:
    principal_id: bytes
    name: str
    role: str

    @classmethod
    def from_pb(cls, p: pb.Principal) -> Principal:
        return cls(bytes(p.id), p.name, pb.Role.Name(p.role))

    def to_dict(self) -> dict[str, Any]:
        return {"principal_id": self.principal_id.hex(), "name": self.name, "role": self.role}


@dataclass(frozen=True)
class RecoveryShare:
    """One recovery share, encrypted to recovery public key number `index` (see docs/api.md, init)."""

    index: int
    share_x: int
    ephemeral_public_key: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class InitResult:
    domain_id: bytes
    admin_principal_id: bytes
    shares: tuple[RecoveryShare, ...]
    threshold: int
    recovery_public_keys: tuple[bytes, ...]
