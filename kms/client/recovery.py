"""Recovery keys and shares: X25519 key files, the share file format, and opening a share with its key."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms.client.types import InitResult, RecoveryShare

SHARE_FORMAT = "enclave-kms recovery share v1"
_INFO = b"enclave-kms recovery share v1"


def raw_public(key: x25519.X25519PrivateKey | x25519.X25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, x25519.X25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(data: bytes) -> bytes:
    """A raw X25519 public key from PEM or DER SubjectPublicKeyInfo, 32 raw bytes or 64 hex digits."""
    text = data.strip()
    if len(data) == 32 and not text.startswith(b"-----"):
        return data
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    loader = serialization.load_pem_public_key if text.startswith(b"-----") else serialization.load_der_public_key
    key = loader(text if text.startswith(b"-----") else data)
    if not isinstance(key, x25519.X25519PublicKey):
        raise ValueError("not an X25519 public key")
    return raw_public(key)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def generate_recovery_keys(directory: Path, count: int) -> list[tuple[Path, bytes]]:
    """Write recovery-<i>.key (PKCS#8 PEM, 0600) and recovery-<i>.pub (PEM) for i in 0..count-1; never overwrite."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    targets = [(directory / f"recovery-{i}.key", directory / f"recovery-{i}.pub") for i in range(count)]
    for key_path, pub_path in targets:
        if key_path.exists() or pub_path.exists():
            raise FileExistsError(f"{key_path} or {pub_path} already exists")
    out = []
    for key_path, pub_path in targets:
        key = x25519.X25519PrivateKey.generate()
        _write_new(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()), 0o600)
        _write_new(pub_path, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        out.append((key_path, raw_public(key)))
    return out


def share_document(result: InitResult, share: RecoveryShare) -> dict[str, Any]:
    """The JSON document of one share (what `kms admin init` writes to share-<index>.json)."""
    return {
        "format": SHARE_FORMAT, "domain_id": result.domain_id.hex(), "threshold": result.threshold,
        "share_count": len(result.shares), "index": share.index, "share_x": share.share_x,
        "recipient_public_key": result.recovery_public_keys[share.index].hex(),
        "ephemeral_public_key": share.ephemeral_public_key.hex(), "ciphertext": share.ciphertext.hex(),
    }


def write_shares(directory: Path, result: InitResult) -> list[Path]:
    """share-<index>.json for every share (0600, never overwriting)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = []
    for share in result.shares:
        path = directory / f"share-{share.index}.json"
        _write_new(path, (json.dumps(share_document(result, share), indent=2) + "\n").encode(), 0o600)
        paths.append(path)
    return paths


def open_share(document: dict[str, Any], private_key: x25519.X25519PrivateKey) -> tuple[int, bytes]:
    """Decrypt a share document with its recovery private key: (Shamir x, 32-byte share). Raises on any mismatch."""
    if document.get("format") != SHARE_FORMAT:
        raise ValueError("not an enclave-kms recovery share v1 document")
    recipient = raw_public(private_key)
    if bytes.fromhex(document["recipient_public_key"]) != recipient:
        raise ValueError("this share is encrypted to another recovery key")
    eph = bytes.fromhex(document["ephemeral_public_key"])
    shared = private_key.exchange(x25519.X25519PublicKey.from_public_bytes(eph))
    key = HKDF(hashes.SHA256(), 32, salt=eph + recipient, info=_INFO).derive(shared)
    aad = bytes.fromhex(document["domain_id"]) + int(document["index"]).to_bytes(4, "big")
    share = AESGCM(key).decrypt(bytes(12), bytes.fromhex(document["ciphertext"]), aad)
    return int(document["share_x"]), share
