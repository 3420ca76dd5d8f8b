"""Envelope encryption of data of any size: the AWS Encryption SDK message format (v2, framed, key commitment,
ECDSA P-384 signature), through the `aws-encryption-sdk` library, with the data key from this KMS.

The library does the message format and the local AES-GCM; this module is its master key provider: a data key
comes from GenerateDataKey under a SYMMETRIC_DEFAULT key and the header's encryption context (the ESDK adds its
`aws-crypto-public-key`), and goes back through Decrypt with the context the header holds, so the KMS binds
the whole header context to the wrapped data key. docs/formats.md describes the format and the choices.

Imported only when a stream is encrypted or decrypted (the library pulls in boto3, ~0.4 s).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import attr
from aws_encryption_sdk import CommitmentPolicy, EncryptionSDKClient
from aws_encryption_sdk.exceptions import (
    AWSEncryptionSDKClientError,
    DecryptKeyError,
    InvalidKeyIdError,
    SerializationError,
)
from aws_encryption_sdk.identifiers import Algorithm
from aws_encryption_sdk.internal.defaults import ENCODED_SIGNER_KEY
from aws_encryption_sdk.key_providers.base import MasterKey, MasterKeyConfig, MasterKeyProvider, MasterKeyProviderConfig
from aws_encryption_sdk.structures import DataKey, EncryptedDataKey, RawDataKey
from cryptography.exceptions import InvalidSignature, InvalidTag

from kms.client.errors import InvalidMessage
from kms.client.types import EnvelopeResult

if TYPE_CHECKING:
    from kms.client.operations import Operations

PROVIDER_ID = "enclave-kms"      # the encrypted data key's provider id; its provider info is the key id
SUITE = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384   # 0x0578, the only suite written or read
FRAME_LENGTH = 256 * 1024        # plaintext bytes per frame written
MAX_FRAME = 4 * 1024 * 1024      # the largest frame (or unframed body) read: bounds memory on decrypt
MAX_CONTEXT = 15                 # the enclave takes 16 context pairs; the ESDK adds its public key
RESERVED_PREFIX = "aws-crypto-"  # context keys the message format reserves
CHUNK = 1024 * 1024              # bytes asked of the library per read
_ESDK = EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
                            max_encrypted_data_keys=1)


@attr.s(hash=True)
class KmsMasterKeyConfig(MasterKeyConfig):
    """A key of this KMS as an ESDK master key: `key_id`, the `client` that reaches it, and (on decrypt) the
    context the caller expects, checked against the header's before the data key is sent to the KMS."""

    provider_id = PROVIDER_ID
    client: Operations = attr.ib(hash=False, eq=False)
    expected_context: dict[str, str] | None = attr.ib(hash=False, eq=False, default=None)


class KmsMasterKey(MasterKey):
    """One SYMMETRIC_DEFAULT key: GenerateDataKey, Encrypt and Decrypt with the header's encryption context."""

    provider_id = PROVIDER_ID
    _config_class = KmsMasterKeyConfig

    def __init__(self, **kwargs: Any) -> None:
        self.used: tuple[str, int] | None = None   # (key id, version) of the last data key made or opened

    @property
    def _kms_key(self) -> str:
        return self.key_id.decode()

    def _generate_data_key(self, algorithm: Algorithm, encryption_context: dict[str, str]) -> DataKey:
        dk = self.config.client.generate_data_key(self._kms_key, algorithm.kdf_input_len, encryption_context)
        self.used = (dk.key_id, dk.key_version)
        return DataKey(key_provider=self.key_provider, data_key=dk.plaintext, encrypted_data_key=dk.ciphertext)

    def _encrypt_data_key(self, data_key: RawDataKey | DataKey, algorithm: Algorithm,
                          encryption_context: dict[str, str]) -> EncryptedDataKey:
        r = self.config.client.encrypt(self._kms_key, data_key.data_key, encryption_context)
        return EncryptedDataKey(key_provider=self.key_provider, encrypted_data_key=r.ciphertext)

    def _decrypt_data_key(self, encrypted_data_key: EncryptedDataKey, algorithm: Algorithm,
                          encryption_context: dict[str, str]) -> DataKey:
        if algorithm is not SUITE:  # before anything is sent: no data key for a suite this module never writes
            raise InvalidMessage(f"the message's algorithm suite {algorithm.name} is not accepted (only {SUITE.name})")
        expected = self.config.expected_context
        if expected is not None:
            found = {k: v for k, v in encryption_context.items() if k != ENCODED_SIGNER_KEY}
            if found != expected:
                raise InvalidMessage(f"the message's encryption context (keys: {', '.join(sorted(found)) or 'none'})"
                                     " is not the one given; it must match exactly")
        r = self.config.client.decrypt(encrypted_data_key.encrypted_data_key, encryption_context)
        if r.key_id != self._kms_key:
            raise InvalidMessage(f"the data key is under key {r.key_id}, the header names {self._kms_key}")
        self.used = (r.key_id, r.key_version)
        return DataKey(key_provider=self.key_provider, data_key=r.plaintext,
                       encrypted_data_key=encrypted_data_key.encrypted_data_key)


@attr.s(hash=True)
class KmsMasterKeyProviderConfig(MasterKeyProviderConfig):
    """`client`; `key_ids`: encrypt under the first, decrypt only data keys under one of them (empty: decrypt under
    any key the header names); `expected_context`: as KmsMasterKeyConfig."""

    client: Operations = attr.ib(hash=False, eq=False)
    key_ids: tuple[str, ...] = attr.ib(hash=True, default=(), converter=tuple)
    expected_context: dict[str, str] | None = attr.ib(hash=False, eq=False, default=None)


class KmsMasterKeyProvider(MasterKeyProvider):
    """An ESDK master key provider backed by this KMS: pass it as `key_provider=` to the library's own
    encrypt/decrypt/stream calls (with `CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT`)."""

    provider_id = PROVIDER_ID
    _config_class = KmsMasterKeyProviderConfig

    def __init__(self, **kwargs: Any) -> None:
        self.add_master_keys_from_list(self.config.key_ids)

    def _new_master_key(self, key_id: bytes) -> KmsMasterKey:
        try:
            name = key_id.decode()
        except UnicodeDecodeError:
            raise InvalidKeyIdError("the key id is not UTF-8") from None
        if self.config.key_ids and name not in self.config.key_ids:
            raise InvalidKeyIdError(f"key {name} is not one of the keys this provider decrypts with")
        return KmsMasterKey(key_id=key_id, client=self.config.client, expected_context=self.config.expected_context)

    def used(self) -> tuple[str, int]:
        """(key id, version) of the data key the last message used."""
        for key in [*self._members, *self._decrypt_key_index.values()]:
            if key.used is not None:
                return key.used
        raise InvalidMessage("no data key was used")


class _Counted:
    """A source that counts what the library read from it."""

    def __init__(self, source: BinaryIO) -> None:
        self.source, self.count = source, 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.count += len(data)
        return data


def _check_context(context: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(context or {})
    if len(out) > MAX_CONTEXT:
        raise ValueError(f"an envelope message's encryption context has at most {MAX_CONTEXT} pairs")
    if any(not isinstance(k, str) or not isinstance(v, str) for k, v in out.items()):
        raise ValueError("encryption context keys and values are strings")
    if reserved := [k for k in out if k.startswith(RESERVED_PREFIX)]:
        raise ValueError(f"context keys starting with {RESERVED_PREFIX!r} are reserved by the message format: "
                         f"{', '.join(reserved)}")
    return out


def _reason(exc: Exception) -> str:
    if isinstance(exc, InvalidTag):
        return "authentication failed (tampered with, or not made with this data key)"
    if isinstance(exc, InvalidSignature):
        return "its signature does not verify"
    if isinstance(exc, SerializationError) and exc.args[:1] == ("Unexpected deserialization error",):
        return "it ends early (truncated) or is malformed"
    if isinstance(exc, DecryptKeyError):
        return "its data key is not under a key of this KMS that is accepted here"
    return (str(exc) or type(exc).__name__).splitlines()[0]


@contextmanager
def _as_invalid_message(what: str) -> Iterator[None]:
    """The library's refusals (format, commitment, tag, signature) as one typed, one-line error. A header text field
    (provider id, key id, context) that is not UTF-8 reaches us as the library's UnicodeDecodeError."""
    try:
        yield
    except (AWSEncryptionSDKClientError, InvalidTag, InvalidSignature, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"{what}: {_reason(exc)}") from exc


def encrypt_stream(client: Operations, key_id: str, source: BinaryIO, destination: BinaryIO,
                   context: Mapping[str, str] | None = None, *, frame_length: int = FRAME_LENGTH) -> EnvelopeResult:
    """Read `source` to its end and write one message to `destination`, a frame at a time."""
    if not 1 <= frame_length <= MAX_FRAME:
        raise ValueError(f"frame_length is 1..{MAX_FRAME} bytes")
    provider = KmsMasterKeyProvider(client=client, key_ids=(key_id,))
    src = _Counted(source)
    written = 0
    enc = _ESDK.stream(mode="e", source=src, key_provider=provider, encryption_context=_check_context(context),
                       algorithm=SUITE, frame_length=frame_length)
    try:
        with _as_invalid_message("cannot encrypt"):
            while chunk := enc.read(CHUNK):
                destination.write(chunk)
                written += len(chunk)
            enc.close()
    finally:
        io.IOBase.close(enc)  # the library's close() raises on an unfinished message; nothing is left to free
    kid, version = provider.used()
    return EnvelopeResult(kid, version, src.count, written)


def decrypt_stream(client: Operations, source: BinaryIO, destination: BinaryIO,
                   context: Mapping[str, str] | None = None, *, key_ids: tuple[str, ...] = ()) -> EnvelopeResult:
    """Read one message from `source` and write its plaintext to `destination`, each frame once its tag has
    verified; the final frame only after the signature has. The message is whole and authentic only when this
    returns: on any error what was written must be discarded. `context` must equal the header's exactly (the
    library's public key aside) and is checked before the data key goes to the KMS; `key_ids` limits the keys."""
    provider = KmsMasterKeyProvider(client=client, key_ids=key_ids, expected_context=_check_context(context))
    src = _Counted(source)
    written = 0
    dec = _ESDK.stream(mode="d", source=src, key_provider=provider, max_body_length=MAX_FRAME)
    try:
        with _as_invalid_message("not a valid envelope message"):
            while chunk := dec.read(CHUNK):
                destination.write(chunk)
                written += len(chunk)
            dec.close()  # raises unless the footer (and its signature) was read
    finally:
        io.IOBase.close(dec)
    if source.read(1):
        raise InvalidMessage("not a valid envelope message: data follows its end")
    kid, version = provider.used()
    return EnvelopeResult(kid, version, written, src.count)
