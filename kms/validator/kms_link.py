"""Validator operations of the KMS, sent as boundary Requests over a KmsClient's attested session."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kms.client.client import KmsClient
from kms.client.types import KeyInfo
from kms.proto.enclave.v1 import boundary_pb2 as pb

SPECS = {"ed25519": pb.ED25519, "secp256k1": pb.ECC_SECG_P256K1}


@dataclass(frozen=True)
class ValidatorPublicKey:
    """A validator key's public half in CometBFT's raw form (Ed25519 32 bytes, secp256k1 33 compressed)."""

    key_type: str  # "ed25519" or "secp256k1"
    raw: bytes
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def raw_public_key(der: bytes) -> ValidatorPublicKey:
    """CometBFT's form of a DER SubjectPublicKeyInfo (Ed25519 or secp256k1 only)."""
    key = serialization.load_der_public_key(der)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return ValidatorPublicKey("ed25519", raw, key)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256K1):
        raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        return ValidatorPublicKey("secp256k1", raw, key)
    raise ValueError("not a validator key type (Ed25519 or secp256k1)")


class ValidatorLink:
    """Typed validator_sign / validator_state / import / create over one KmsClient (thread-safe like it)."""

    def __init__(self, client: KmsClient) -> None:
        self.client = client

    def _call(self, request: pb.Request) -> pb.Response:
        # KmsClient runs any boundary Request in its verified session (reconnecting and re-verifying as needed;
        # retrying as kms.client.idempotency allows).
        return self.client._call(request)

    def sign(self, key_id: str, chain_id: str, kind: int, sign_bytes: bytes, extension_sign_bytes: bytes = b"",
             recoverable: bool = False, watermark: pb.ValidatorWatermark | None = None) -> pb.ValidatorSignResponse:
        """Sign through the enclave's guard (DoubleSignRefused when it refuses); retrying is safe (stored answer).
        `watermark`: the signer's own last signed position, a second lower bound for the guard."""
        req = pb.ValidatorSignRequest(key_id=key_id, chain_id=chain_id, kind=kind, sign_bytes=sign_bytes,
                                      extension_sign_bytes=extension_sign_bytes, recoverable=recoverable)
        if watermark is not None:
            req.watermark.CopyFrom(watermark)
        return self._call(pb.Request(validator_sign=req)).validator_sign

    def state(self, key_id: str) -> pb.ValidatorStateExport:
        """The guard's last signed height/round/step, as an export signed by the enclave."""
        req = pb.ValidatorStateRequest(key_id=key_id)
        return self._call(pb.Request(validator_state=req)).validator_state

    def import_state(self, export: pb.ValidatorStateExport) -> pb.ValidatorStateExport:
        """Move the guard forward to a signed export (never backward); returns the resulting state."""
        req = pb.ValidatorStateImport(state=export)
        return self._call(pb.Request(validator_state_import=req)).validator_state

    def public_key(self, key_id: str) -> ValidatorPublicKey:
        """The validator key's public key in CometBFT's form."""
        req = pb.GetPublicKeyRequest(key_id=key_id, format=pb.PUBLIC_KEY_DER)
        r = self._call(pb.Request(get_public_key=req)).get_public_key
        return raw_public_key(bytes(r.public_key))

    def create(self, chain_id: str, spec: str = "ed25519", description: str = "") -> KeyInfo:
        """A new validator key for chain_id, generated inside the enclave (admins)."""
        req = pb.CreateKeyRequest(spec=SPECS[spec], usage=pb.VALIDATOR, chain_id=chain_id, description=description)
        return KeyInfo.from_pb(self._call(pb.Request(create_key=req)).key_metadata)

    def import_validator(self, request: pb.ImportValidatorRequest) -> KeyInfo:
        """Import a validator key and its last signed state (admins), only ever inside a verified session."""
        # KmsClient opens a session only after the enclave's evidence verified against its policy.
        _ = self.client.evidence  # verify (or reuse the verified session) before the key leaves this process
        return KeyInfo.from_pb(self._call(pb.Request(import_validator=request)).key_metadata)
