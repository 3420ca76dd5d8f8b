"""CometBFT SecretConnection (p2p/conn/secret_connection.go): X25519 + Merlin + HKDF + ChaCha20-Poly1305 + Ed25519."""

from __future__ import annotations

import hashlib
import socket
import struct

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from merlin_transcripts import MerlinTranscript

from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.validator.protoio import PlainStream, ProtocolError, read_message, write_message

TRANSCRIPT_LABEL = b"TENDERMINT_SECRET_CONNECTION_TRANSCRIPT_HASH"
LABEL_EPH_LOWER = b"EPHEMERAL_LOWER_PUBLIC_KEY"
LABEL_EPH_UPPER = b"EPHEMERAL_UPPER_PUBLIC_KEY"
LABEL_DH_SECRET = b"DH_SECRET"
LABEL_MAC = b"SECRET_CONNECTION_MAC"
HKDF_INFO = b"TENDERMINT_SECRET_CONNECTION_KEY_AND_CHALLENGE_GEN"
DATA_MAX = 1024
FRAME = 4 + DATA_MAX  # 1028 plaintext bytes
SEALED_FRAME = FRAME + 16  # 1044 on the wire
_COUNTER_MAX = 2**64 - 1


def derive_secrets(dh_secret: bytes, loc_is_least: bool) -> tuple[bytes, bytes, bytes]:
    """(recv_key, send_key, legacy challenge): HKDF-SHA256(dh, salt empty, info) -> 96 bytes, split by ordering."""
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=None, info=HKDF_INFO).derive(dh_secret)
    first, second = okm[:32], okm[32:64]
    return (first, second, okm[64:]) if loc_is_least else (second, first, okm[64:])


def peer_id(public_key: bytes) -> str:
    """CometBFT's node id of an Ed25519 public key: hex of the first 20 bytes of its SHA-256."""
    return hashlib.sha256(public_key).digest()[:20].hex()


def _raw(key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SecretConnection:
    """An authenticated, encrypted stream over a connected socket (either side runs the same handshake)."""

    def __init__(self, sock: socket.socket, identity: ed25519.Ed25519PrivateKey) -> None:
        self._plain = PlainStream(sock)
        self._send_nonce = 0
        self._recv_nonce = 0
        self._buffer = b""
        eph = x25519.X25519PrivateKey.generate()
        loc_eph = _raw(eph.public_key())
        write_message(self._plain, cmt.BytesValue(value=loc_eph))
        rem_eph = read_message(self._plain, cmt.BytesValue(), limit=1024).value
        if len(rem_eph) != 32 or rem_eph == loc_eph:
            raise ProtocolError("the peer's ephemeral key is not a fresh 32-byte X25519 key")
        lo, hi = sorted((loc_eph, rem_eph))
        transcript = MerlinTranscript(TRANSCRIPT_LABEL)
        transcript.append_message(LABEL_EPH_LOWER, lo)
        transcript.append_message(LABEL_EPH_UPPER, hi)
        try:
            dh = eph.exchange(x25519.X25519PublicKey.from_public_bytes(rem_eph))
        except ValueError as exc:  # a low-order point gives the all-zero secret
            raise ProtocolError("the peer's ephemeral key is a low-order point") from exc
        if dh == bytes(32):
            raise ProtocolError("the peer's ephemeral key is a low-order point")
        transcript.append_message(LABEL_DH_SECRET, dh)
        recv_key, send_key, _ = derive_secrets(dh, loc_eph == lo)
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        challenge = transcript.challenge_bytes(LABEL_MAC, 32)
        auth = cmt.AuthSigMessage(sig=identity.sign(challenge))
        auth.pub_key.ed25519 = _raw(identity.public_key())
        write_message(self, auth)
        remote = read_message(self, cmt.AuthSigMessage(), limit=1024 * 1024)
        if remote.pub_key.WhichOneof("sum") != "ed25519" or len(remote.pub_key.ed25519) != 32:
            raise ProtocolError("the peer did not authenticate with an Ed25519 key")
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(remote.pub_key.ed25519).verify(remote.sig, challenge)
        except InvalidSignature as exc:
            raise ProtocolError("the peer's challenge signature does not verify") from exc
        self.remote_public_key: bytes = bytes(remote.pub_key.ed25519)

    @property
    def remote_id(self) -> str:
        """The peer's node id (from its authenticated Ed25519 key)."""
        return peer_id(self.remote_public_key)

    @staticmethod
    def _nonce(counter: int) -> bytes:
        if counter >= _COUNTER_MAX:
            raise ProtocolError("nonce counter exhausted")
        return b"\x00\x00\x00\x00" + struct.pack("<Q", counter)

    def write(self, data: bytes) -> None:
        """Send data in sealed 1044-byte frames of at most 1024 data bytes each."""
        view = memoryview(data)
        frames = []
        while view:
            chunk, view = view[:DATA_MAX], view[DATA_MAX:]
            frame = struct.pack("<I", len(chunk)) + bytes(chunk) + bytes(DATA_MAX - len(chunk))
            frames.append(self._send.encrypt(self._nonce(self._send_nonce), frame, None))
            self._send_nonce += 1
        self._plain.write(b"".join(frames))

    def _read_frame(self) -> bytes:
        sealed = self._plain.read_exact(SEALED_FRAME)
        try:
            frame = self._recv.decrypt(self._nonce(self._recv_nonce), sealed, None)
        except InvalidTag as exc:
            raise ProtocolError("a frame failed authentication") from exc
        self._recv_nonce += 1
        (length,) = struct.unpack_from("<I", frame)
        if length > DATA_MAX:
            raise ProtocolError("frame length exceeds 1024")
        return frame[4:4 + length]  # the padding (stale bytes in Go's sender) is ignored

    def read_exact(self, n: int) -> bytes:
        """Exactly n plaintext bytes, across frames as needed."""
        while len(self._buffer) < n:
            self._buffer += self._read_frame()
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def close(self) -> None:
        self._plain.close()
