"""Key and state files: the signer's SecretConnection identity, CometBFT's priv_validator_key/state JSON."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kms.proto.enclave.v1 import boundary_pb2 as pb

ED25519_TYPES = ("tendermint/PrivKeyEd25519", "cometbft/PrivKeyEd25519")
SECP256K1_TYPES = ("tendermint/PrivKeySecp256k1", "cometbft/PrivKeySecp256k1")


class KeyFileError(ValueError):
    """A key or state file is missing, malformed, inconsistent or too widely readable."""


def load_or_create_identity(path: Path) -> ed25519.Ed25519PrivateKey:
    """The signer's SecretConnection Ed25519 key (not the validator key); created 0600 on first start."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_identity(path)
    except OSError as exc:
        raise KeyFileError(f"cannot create the identity key {path}: {exc.strerror or exc}") from exc
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key


def _load_identity(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the identity key {path}: {exc.strerror or exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise KeyFileError(f"the identity key {path} is readable by others (chmod 600 it)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class ValidatorKey:
    """A validator private key read from a file (sent only to a verified enclave, then dropped)."""

    spec: int  # pb.ED25519 or pb.ECC_SECG_P256K1
    private_key: bytes  # Ed25519 seed or secp256k1 scalar (32 bytes)
    public_key: bytes  # CometBFT form: 32-byte Ed25519, 33-byte compressed secp256k1


def _b64(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{what} is not base64") from exc


def parse_validator_key(text: str) -> ValidatorKey:
    """CometBFT's priv_validator_key.json (Ed25519 or secp256k1), or tmkms' base64 Ed25519 seed file."""
    try:
        doc = json.loads(text)
    except ValueError:
        raw = _b64(text.strip(), "the key file")
        if len(raw) not in (32, 64):
            raise KeyFileError("a raw key file holds a base64 Ed25519 seed (32 bytes) or key pair (64)") from None
        return _ed25519(raw[:32], raw[32:] or None)
    try:
        priv_type, priv = doc["priv_key"]["type"], _b64(doc["priv_key"]["value"], "priv_key.value")
        pub = _b64(doc["pub_key"]["value"], "pub_key.value") if "pub_key" in doc else None
    except (KeyError, TypeError) as exc:
        raise KeyFileError("not a priv_validator_key.json (priv_key.type/value missing)") from exc
    if priv_type in ED25519_TYPES:
        if len(priv) != 64:
            raise KeyFileError("an Ed25519 priv_key value is 64 bytes (seed || public key)")
        key = _ed25519(priv[:32], priv[32:])
        address = doc.get("address")
        if address and str(address).upper() != hashlib.sha256(key.public_key).digest()[:20].hex().upper():
            raise KeyFileError("the key file's address does not match its key")
    elif priv_type in SECP256K1_TYPES:
        if len(priv) != 32:
            raise KeyFileError("a secp256k1 priv_key value is 32 bytes")
        try:
            sk = ec.derive_private_key(int.from_bytes(priv, "big"), ec.SECP256K1())
        except ValueError as exc:
            raise KeyFileError("the secp256k1 key is out of range") from exc
        public = sk.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        key = ValidatorKey(pb.ECC_SECG_P256K1, priv, public)
    else:
        raise KeyFileError(f"unsupported validator key type {priv_type!r} (Ed25519 or secp256k1)")
    if pub is not None and pub != key.public_key:
        raise KeyFileError("the key file's pub_key does not match its priv_key")
    return key


def _ed25519(seed: bytes, public: bytes | None) -> ValidatorKey:
    derived = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if public is not None and public != derived:
        raise KeyFileError("the Ed25519 key pair is inconsistent (public half does not match the seed)")
    return ValidatorKey(pb.ED25519, seed, derived)


@dataclass(frozen=True)
class LastSignState:
    """priv_validator_state.json: the last signed height/round/step (FilePV steps 0..3)."""

    height: int
    round: int
    step: int
    sign_bytes: bytes = b""
    signature: bytes = b""


def _int(doc: dict, name: str, lo: int, hi: int) -> int:
    value = doc.get(name, 0)
    try:
        number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not lo <= number <= hi:
        raise KeyFileError(f"state file: {name} must be an integer in {lo}..{hi}")
    return number


def parse_state(text: str) -> LastSignState:
    """CometBFT's (or tmkms') priv_validator_state.json; tmkms' has no signbytes/signature."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KeyFileError("the state file is not JSON") from exc
    if not isinstance(doc, dict) or "height" not in doc:
        raise KeyFileError("not a priv_validator_state.json (no height)")
    try:
        sign_bytes = bytes.fromhex(doc.get("signbytes") or "")
    except (TypeError, ValueError) as exc:
        raise KeyFileError("state file: signbytes is not hex") from exc
    signature = _b64(doc["signature"], "state file: signature") if doc.get("signature") else b""
    return LastSignState(_int(doc, "height", 0, 2**63 - 1), _int(doc, "round", 0, 2**31 - 1),
                         _int(doc, "step", 0, 3), sign_bytes, signature)


def import_request(key: ValidatorKey, state: LastSignState, chain_id: str, description: str = "",
                   ) -> pb.ImportValidatorRequest:
    """The enclave's ImportValidatorRequest for a key file and a state file."""
    return pb.ImportValidatorRequest(spec=key.spec, private_key=key.private_key, chain_id=chain_id,
                                     height=state.height, round=state.round, step=state.step,
                                     sign_bytes=state.sign_bytes, signature=state.signature,
                                     description=description)
