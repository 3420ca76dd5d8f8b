"""An independent reader of the AWS Encryption SDK message format (v2, framed, committing, signed suite 0x0578),
written from the published specification (docs/formats.md lists the fields) with pyca primitives only: it
shares no code with the `aws-encryption-sdk` library, so a message it decrypts is evidence that what the
library writes is the documented format, not just what the library reads back. A test oracle, never used to
decrypt anything outside the tests."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SUITE_ID = 0x0578
FRAMED = 0x02
FINAL = 0xFFFFFFFF


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def field(self) -> bytes:
        return self.take(self.uint(2))


@dataclass
class Header:
    message_id: bytes
    context: dict[str, str]
    data_keys: list[tuple[str, str, bytes]]   # (provider id, provider info, encrypted data key)
    frame_length: int
    commitment: bytes
    body: bytes       # the header body, the AAD of the header authentication tag
    tag: bytes
    end: int          # offset of the message body


def parse_header(message: bytes) -> Header:
    r = _Reader(message)
    if r.uint(1) != 2 or r.uint(2) != SUITE_ID:
        raise ValueError("not a v2 message with suite 0x0578")
    message_id = r.take(32)
    context: dict[str, str] = {}
    aad = _Reader(r.field())
    if aad.data:
        for _ in range(aad.uint(2)):
            key = aad.field().decode()
            context[key] = aad.field().decode()
        if aad.pos != len(aad.data):
            raise ValueError("encryption context longer than its pairs")
    keys = [(r.field().decode(), r.field().decode(), r.field()) for _ in range(r.uint(2))]
    if r.uint(1) != FRAMED:
        raise ValueError("not framed")
    frame_length = r.uint(4)
    commitment = r.take(32)
    body = message[:r.pos]
    return Header(message_id, context, keys, frame_length, commitment, body, r.take(16), r.pos)


def _hkdf(data_key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA512(), length=32, salt=salt, info=info).derive(data_key)


def decrypt(message: bytes, data_key: bytes) -> bytes:
    """The plaintext, after checking commitment, header tag, every frame's tag and order, and the signature."""
    h = parse_header(message)
    if _hkdf(data_key, h.message_id, b"COMMITKEY") != h.commitment:
        raise ValueError("key commitment does not match")
    aead = AESGCM(_hkdf(data_key, h.message_id, struct.pack(">H", SUITE_ID) + b"DERIVEKEY"))
    aead.decrypt(bytes(12), h.tag, h.body)  # header authentication: empty plaintext, IV of zeros
    r, out, seq = _Reader(message), [], 1
    r.pos = h.end
    while True:
        first = r.uint(4)
        final = first == FINAL
        if (r.uint(4) if final else first) != seq:
            raise ValueError("frame out of order")
        iv = r.take(12)
        length = r.uint(4) if final else h.frame_length
        if length > h.frame_length:
            raise ValueError("final frame longer than a frame")
        sealed = r.take(length + 16)
        label = b"AWSKMSEncryptionClient Final Frame" if final else b"AWSKMSEncryptionClient Frame"
        aad = h.message_id + label + seq.to_bytes(4, "big") + length.to_bytes(8, "big")
        out.append(aead.decrypt(iv, sealed, aad))
        seq += 1
        if final:
            break
    signed = message[:r.pos]
    signature = r.field()
    if r.pos != len(message):
        raise ValueError("data after the footer")
    point = base64.b64decode(h.context["aws-crypto-public-key"])
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point).verify(
        signature, signed, ec.ECDSA(hashes.SHA384()))
    return b"".join(out)
