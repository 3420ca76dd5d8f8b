"""Envelope and batch operations of KmsClient: streams of any size (kms.client.stream), data key pairs, and batch
Encrypt/Decrypt/Sign with per-item status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from kms.client.errors import ServerError
from kms.client.operations import Operations, _context
from kms.client.types import DataKeyPair, EnvelopeResult, enum_value
from kms.errors import EnclaveFailure, error_for_code
from kms.proto.enclave.v1 import boundary_pb2 as pb

BATCH_MAX_ITEMS = 256
BATCH_MAX_PLAINTEXT = 64      # plaintexts and messages
BATCH_MAX_CIPHERTEXT = 134    # a 64-byte plaintext's ciphertext
ENVELOPE_PREFIX = 2  # bytes is_envelope needs


def is_envelope(prefix: bytes) -> bool:
    """Whether a ciphertext's first bytes are an AWS Encryption SDK message (v2: 0x02; v1: 0x01 0x80) rather than
    the direct Encrypt format (0x01, then the key id length 36): what `decrypt_stream` rather than `decrypt` reads."""
    return prefix[:1] == b"\x02" or prefix[:2] == b"\x01\x80"


PAIR_SPECS = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_SECG_P256K1", "ED25519", "X25519", "RSA_2048")


@dataclass(frozen=True)
class BatchItem:
    """One item's outcome: `data` (ciphertext, plaintext or signature) or `error` (a typed enclave refusal)."""

    data: bytes
    error: EnclaveFailure | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> bytes:
        """The data, or raise the item's error."""
        if self.error is not None:
            raise self.error
        return self.data


def _items(items: Sequence[bytes], limit: int, what: str) -> list[bytes]:
    out = [bytes(i) for i in items]
    if not 1 <= len(out) <= BATCH_MAX_ITEMS:
        raise ValueError(f"a batch has 1..{BATCH_MAX_ITEMS} items, got {len(out)}")
    if any(len(i) > limit for i in out):
        raise ValueError(f"batch {what} are at most {limit} bytes each")
    return out


class EnvelopeOperations(Operations):
    """Mixin: encrypt_stream/decrypt_stream, generate_data_key_pair and the batch operations."""

    def encrypt_stream(self, key_id: str, source: BinaryIO, destination: BinaryIO,
                       context: Mapping[str, str] | None = None, *, frame_length: int | None = None) -> EnvelopeResult:
        """Envelope-encrypt `source` (read to its end, a frame at a time) into `destination`: an AWS Encryption
        SDK message with a data key from GenerateDataKey under key_id and `context` (docs/formats.md)."""
        from kms.client import stream

        return stream.encrypt_stream(self, key_id, source, destination, context,
                                     frame_length=frame_length or stream.FRAME_LENGTH)

    def decrypt_stream(self, source: BinaryIO, destination: BinaryIO, context: Mapping[str, str] | None = None, *,
                       key_ids: Sequence[str] = ()) -> EnvelopeResult:
        """Decrypt an envelope message from `source` into `destination`. `context` must equal the one it was
        encrypted with; `key_ids` (optional) are the only keys accepted. Plaintext is written a verified frame at
        a time: it is whole and authentic only when this returns (on InvalidMessage or any error, discard it)."""
        from kms.client import stream

        return stream.decrypt_stream(self, source, destination, context, key_ids=tuple(key_ids))

    def generate_data_key_pair(self, key_id: str, pair_spec: str | int = "ECC_NIST_P256",
                               context: Mapping[str, str] | None = None, *,
                               with_plaintext: bool = True) -> DataKeyPair:
        """A fresh key pair: its public key, its PKCS#8 private key (unless with_plaintext=False) and the
        private key encrypted under key_id (decrypt it later with `decrypt` and the same context)."""
        spec = enum_value(pb.KeySpec, pair_spec)
        req = pb.GenerateDataKeyPairRequest(key_id=key_id, pair_spec=spec, context=_context(context),
                                            without_plaintext=not with_plaintext)
        r = self._call(pb.Request(generate_data_key_pair=req)).generate_data_key_pair
        return DataKeyPair(r.key_id, r.key_version, pb.KeySpec.Name(spec), bytes(r.public_key),
                           bytes(r.private_key_plaintext), bytes(r.private_key_ciphertext))

    def _batch(self, request: pb.BatchRequest, count: int) -> list[BatchItem]:
        results = self._call(pb.Request(batch=request)).batch.results
        if len(results) != count:  # the enclave answers one result per item, in order
            raise ServerError(f"the batch answer has {len(results)} results for {count} items")
        return [BatchItem(bytes(r.data)) if r.error == 0 else BatchItem(b"", error_for_code(r.error))
                for r in results]

    def batch_encrypt(self, key_id: str, plaintexts: Sequence[bytes]) -> list[BatchItem]:
        """Encrypt up to 256 plaintexts of at most 64 bytes (no encryption context) under key_id."""
        items = _items(plaintexts, BATCH_MAX_PLAINTEXT, "plaintexts")
        return self._batch(pb.BatchRequest(operation=pb.BATCH_ENCRYPT, key_id=key_id, items=items), len(items))

    def batch_decrypt(self, ciphertexts: Sequence[bytes]) -> list[BatchItem]:
        """Decrypt up to 256 batch ciphertexts (made without a context); each names its own key."""
        items = _items(ciphertexts, BATCH_MAX_CIPHERTEXT, "ciphertexts")
        return self._batch(pb.BatchRequest(operation=pb.BATCH_DECRYPT, items=items), len(items))

    def batch_sign(self, key_id: str, messages: Sequence[bytes] | None = None, *,
                   digests: Sequence[bytes] | None = None, algorithm: str | int | None = None) -> list[BatchItem]:
        """Sign up to 256 messages or digests (≤ 64 bytes each) with an ECDSA or Ed25519 key; DER signatures."""
        if (messages is None) == (digests is None):
            raise ValueError("give exactly one of messages= or digests=")
        items = _items(messages if messages is not None else digests or [], BATCH_MAX_PLAINTEXT,
                       "messages" if messages is not None else "digests")
        req = pb.BatchRequest(operation=pb.BATCH_SIGN, key_id=key_id, algorithm=self._algorithm(key_id, algorithm),
                              message_type=pb.RAW if messages is not None else pb.DIGEST, items=items)
        return self._batch(req, len(items))
