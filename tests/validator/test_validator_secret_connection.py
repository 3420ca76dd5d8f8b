"""SecretConnection against an independent node-side handshake written from the reference text, byte by byte."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from merlin_transcripts import MerlinTranscript

from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.validator.protoio import ProtocolError
from kms.validator.secret_connection import SecretConnection, peer_id


def _raw(key) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "closed"
        buf += chunk
    return buf


class NodeSide:
    """The node's half of the handshake, from ecosystem.md §3.2 (not from kms.validator)."""

    def __init__(self, sock: socket.socket, identity: ed25519.Ed25519PrivateKey, *, eph_pub: bytes | None = None,
                 bad_sig: bool = False, wrong_key_type: bool = False) -> None:
        self.sock = sock
        eph = x25519.X25519PrivateKey.generate()
        mine = eph_pub or _raw(eph.public_key())
        sock.sendall(b"\x22\x0a\x20" + mine)  # BytesValue{value: 32 bytes}, uvarint length-delimited
        theirs = _recv(sock, 35)
        assert theirs[:3] == b"\x22\x0a\x20"
        self.remote_eph = theirs[3:]
        if eph_pub is not None:
            return
        lo, hi = sorted((mine, self.remote_eph))
        t = MerlinTranscript(b"TENDERMINT_SECRET_CONNECTION_TRANSCRIPT_HASH")
        t.append_message(b"EPHEMERAL_LOWER_PUBLIC_KEY", lo)
        t.append_message(b"EPHEMERAL_UPPER_PUBLIC_KEY", hi)
        dh = eph.exchange(x25519.X25519PublicKey.from_public_bytes(self.remote_eph))
        t.append_message(b"DH_SECRET", dh)
        okm = HKDF(hashes.SHA256(), 96, None, b"TENDERMINT_SECRET_CONNECTION_KEY_AND_CHALLENGE_GEN").derive(dh)
        recv, send = (okm[:32], okm[32:64]) if mine == lo else (okm[32:64], okm[:32])
        self.send_aead, self.recv_aead = ChaCha20Poly1305(send), ChaCha20Poly1305(recv)
        self.send_n = self.recv_n = 0
        challenge = t.challenge_bytes(b"SECRET_CONNECTION_MAC", 32)
        sig = identity.sign(challenge)
        if bad_sig:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        tag = b"\x12" if wrong_key_type else b"\x0a"  # PublicKey oneof: ed25519 = 1, secp256k1 = 2
        auth = b"\x0a\x22" + tag + b"\x20" + _raw(identity.public_key()) + b"\x12\x40" + sig
        self.send_plain(bytes([len(auth)]) + auth)
        body = self.recv_plain()
        assert body[0] == len(body) - 1
        msg = cmt.AuthSigMessage.FromString(body[1:])
        ed25519.Ed25519PublicKey.from_public_bytes(msg.pub_key.ed25519).verify(msg.sig, challenge)
        self.remote_key = msg.pub_key.ed25519

    @staticmethod
    def nonce(n: int) -> bytes:
        return bytes(4) + n.to_bytes(8, "little")

    def send_frame(self, length: int, data: bytes, padding: bytes | None = None) -> None:
        frame = struct.pack("<I", length) + data
        frame += (padding or bytes(1028))[: 1028 - len(frame)]
        self.sock.sendall(self.send_aead.encrypt(self.nonce(self.send_n), frame, None))
        self.send_n += 1

    def send_plain(self, data: bytes) -> None:
        for i in range(0, len(data), 1024):
            chunk = data[i:i + 1024]
            self.send_frame(len(chunk), chunk)

    def recv_frame(self) -> tuple[int, bytes]:
        sealed = _recv(self.sock, 1044)
        frame = self.recv_aead.decrypt(self.nonce(self.recv_n), sealed, None)
        self.recv_n += 1
        (length,) = struct.unpack_from("<I", frame)
        assert frame[4 + length:] == bytes(1024 - length), "senders zero the padding"
        return length, frame[4:4 + length]

    def recv_plain(self) -> bytes:
        return self.recv_frame()[1]


Pair = tuple[SecretConnection | Exception, NodeSide, ed25519.Ed25519PrivateKey]


def _pair(node_factory: Callable[[socket.socket], NodeSide]) -> Pair:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    signer_key = ed25519.Ed25519PrivateKey.generate()
    result: list = []

    def signer() -> None:
        try:
            result.append(SecretConnection(a, signer_key))
        except Exception as exc:  # reported to the test
            result.append(exc)

    t = threading.Thread(target=signer)
    t.start()
    node = node_factory(b)
    t.join(10)
    return result[0], node, signer_key


def test_handshake_and_frames_match_the_reference() -> None:
    node_key = ed25519.Ed25519PrivateKey.generate()
    conn, node, signer_key = _pair(lambda s: NodeSide(s, node_key))
    assert isinstance(conn, SecretConnection)
    assert node.remote_key == _raw(signer_key.public_key())
    assert conn.remote_public_key == _raw(node_key.public_key())
    assert conn.remote_id == peer_id(_raw(node_key.public_key())) and len(conn.remote_id) == 40
    data = bytes(range(256)) * 10  # 2560 bytes: three frames 1024 + 1024 + 512, nonces 1, 2, 3
    conn.write(data)
    frames = [node.recv_frame() for _ in range(3)]
    assert [n for n, _ in frames] == [1024, 1024, 512] and b"".join(d for _, d in frames) == data
    node.send_frame(5, b"hello", padding=b"\xee" * 1028)  # stale padding (Go reuses its buffer): ignored
    node.send_frame(0, b"")
    node.send_frame(6, b" world")
    assert conn.read_exact(11) == b"hello world"


def test_oversized_frame_length_is_refused() -> None:
    conn, node, _ = _pair(lambda s: NodeSide(s, ed25519.Ed25519PrivateKey.generate()))
    node.send_frame(1025, b"x" * 1024)
    with pytest.raises(ProtocolError, match="1024"):
        conn.read_exact(1)


def test_tampered_or_replayed_frame_is_refused() -> None:
    conn, node, _ = _pair(lambda s: NodeSide(s, ed25519.Ed25519PrivateKey.generate()))
    frame = struct.pack("<I", 3) + b"abc" + bytes(1021)
    sealed = bytearray(node.send_aead.encrypt(node.nonce(node.send_n), frame, None))
    sealed[10] ^= 1
    node.sock.sendall(bytes(sealed))
    with pytest.raises(ProtocolError, match="authentication"):
        conn.read_exact(3)
    conn, node, _ = _pair(lambda s: NodeSide(s, ed25519.Ed25519PrivateKey.generate()))
    sealed = node.send_aead.encrypt(node.nonce(0), frame, None)  # nonce 0 was the auth message's
    node.sock.sendall(sealed)
    with pytest.raises(ProtocolError):
        conn.read_exact(3)


@pytest.mark.parametrize("kind", ["bad_sig", "wrong_key_type"])
def test_bad_authentication_is_refused(kind: str) -> None:
    def node(s: socket.socket) -> NodeSide | None:
        try:
            return NodeSide(s, ed25519.Ed25519PrivateKey.generate(), **{kind: True})
        except (AssertionError, OSError):
            return None

    conn, _, _ = _pair(node)
    assert isinstance(conn, ProtocolError)


@pytest.mark.parametrize("eph", [bytes(32), (1).to_bytes(32, "little")])
def test_low_order_ephemeral_keys_are_refused(eph: bytes) -> None:
    conn, _, _ = _pair(lambda s: NodeSide(s, ed25519.Ed25519PrivateKey.generate(), eph_pub=eph))
    assert isinstance(conn, ProtocolError)
