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
    pb.RSA_3072: pb.SIGN_VERIFY, pb.RSA_4096: pb.SIGN_VERIFY, pb.BLS12_381: pb.VALIDATOR,
}
# The signing algorithm a spec gets when the caller names none.
DEFAULT_SIGNING = {
    pb.ECC_NIST_P256: pb.ECDSA_SHA_256, pb.ECC_SECG_P256K1: pb.ECDSA_SHA_256, pb.ECC_NIST_P384: pb.ECDSA_SHA_384,
    pb.ED25519: pb.ED25519_PURE, pb.RSA_2048: pb.RSASSA_PSS_SHA_256, pb.RSA_3072: pb.RSASSA_PSS_SHA_256,
    pb.RSA_4096: pb.RSASSA_PSS_SHA_256,
}
# Largest plaintext or message Encrypt, Sign and GenerateMac take: KMS_MAX_DATA_SIZE (enclave/include/kms/limits.h).
MAX_PLAINTEXT = 32 * 1024
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


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


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
    deletion_date: datetime | None = None
    min_decrypt_version: int = 0
    rotation_period_days: int = 0
    last_rotated_at: datetime | None = None
    origin: str = "ORIGIN_GENERATED"
    policy_hash: bytes = b""
    export_policy: str = "NON_EXPORTABLE"
    chain_id: str = ""

    @classmethod
    def from_pb(cls, m: pb.KeyMetadata) -> KeyInfo:
        return cls(m.key_id, pb.KeySpec.Name(m.spec), pb.KeyUsage.Name(m.usage), pb.KeyState.Name(m.state),
                   m.description, _time(m.created_at), m.current_version, m.version_count, m.revision,
                   _time(m.deletion_date), m.min_decrypt_version, m.rotation_period_days, _time(m.last_rotated_at),
                   pb.KeyOrigin.Name(m.origin), bytes(m.policy_hash), pb.ExportPolicy.Name(m.export_policy),
                   m.chain_id)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key_id": self.key_id, "spec": self.spec, "usage": self.usage, "state": self.state,
            "description": self.description, "created_at": _iso(self.created_at),
            "current_version": self.current_version, "version_count": self.version_count, "revision": self.revision,
            "origin": self.origin.removeprefix("ORIGIN_"), "min_decrypt_version": self.min_decrypt_version,
            "rotation_period_days": self.rotation_period_days, "last_rotated_at": _iso(self.last_rotated_at),
            "deletion_date": _iso(self.deletion_date), "policy_hash": self.policy_hash.hex() or None,
            "export_policy": self.export_policy,
        }
        if self.chain_id:
            out["chain_id"] = self.chain_id
        return out


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
class EnvelopeResult:
    """An envelope message encrypted or decrypted: the key and version of its data key, plaintext and message
    sizes in bytes."""

    key_id: str
    key_version: int
    plaintext_length: int
    message_length: int


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


@dataclass(frozen=True)
class DataKeyPair:
    """A data key pair: SPKI public key, PKCS#8 private key (empty when not asked for) and its ciphertext."""

    key_id: str
    key_version: int
    pair_spec: str
    public_key: bytes
    private_key: bytes
    private_key_ciphertext: bytes


@dataclass(frozen=True)
class Identity:
    """The enclave's own view of itself, as answered inside the attested session."""

    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    debug: bool
    simulated: bool
    domain_loaded: bool
    domain_id: bytes
    version: str
    audit_public_key: bytes  # Ed25519, raw 32 bytes; empty before init

    @classmethod
    def from_pb(cls, r: pb.GetIdentityResponse) -> Identity:
        return cls(bytes(r.mrenclave), bytes(r.mrsigner), r.isv_prod_id, r.isv_svn, r.debug, r.simulated,
                   r.domain_loaded, bytes(r.domain_id), r.version, bytes(r.audit_public_key))

    def to_dict(self) -> dict[str, Any]:
        return {"mrenclave": self.mrenclave.hex(), "mrsigner": self.mrsigner.hex(), "isv_prod_id": self.isv_prod_id,
                "isv_svn": self.isv_svn, "debug": self.debug, "simulated": self.simulated,
                "domain_loaded": self.domain_loaded, "domain_id": self.domain_id.hex() or None,
                "version": self.version, "audit_public_key": self.audit_public_key.hex() or None}
