"""uvarint length-delimited protobuf framing (CometBFT libs/protoio) over a byte stream."""

from __future__ import annotations

import socket
from typing import Protocol

from google.protobuf.message import DecodeError, Message

MAX_MESSAGE = 64 * 1024  # a privval message (CometBFT v0.38 itself reads at most 10 KiB)


class ProtocolError(Exception):
    """The peer broke the wire protocol (framing, size, authentication); the connection is dropped."""


class Stream(Protocol):
    """A bidirectional byte stream: a plain socket or a SecretConnection."""

    def read_exact(self, n: int) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def uvarint(n: int) -> bytes:
    """The unsigned LEB128 encoding of n."""
    if n < 0:
        raise ValueError("uvarint of a negative number")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def delimited(body: bytes) -> bytes:
    """body with its uvarint length prefix."""
    return uvarint(len(body)) + body


def split_delimited(data: bytes) -> bytes:
    """The body of exactly one length-prefixed message; anything else is a ProtocolError."""
    n, i = 0, 0
    for shift in range(0, 70, 7):
        if i >= len(data):
            break
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if n != len(data) - i:
                raise ProtocolError("length prefix does not cover the message exactly")
            return data[i:]
    raise ProtocolError("truncated or overlong length prefix")


def read_delimited(stream: Stream, limit: int = MAX_MESSAGE) -> bytes:
    """Read one length-prefixed message body from the stream."""
    n = 0
    for shift in range(0, 70, 7):
        b = stream.read_exact(1)[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
    else:
        raise ProtocolError("overlong length prefix")
    if n > limit:
        raise ProtocolError(f"message of {n} bytes exceeds the limit of {limit}")
    return stream.read_exact(n) if n else b""


def read_message(stream: Stream, msg: Message, limit: int = MAX_MESSAGE) -> Message:
    """Read one length-prefixed protobuf message into msg."""
    body = read_delimited(stream, limit)
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise ProtocolError(f"undecodable {msg.DESCRIPTOR.name}") from exc
    return msg


def write_message(stream: Stream, msg: Message) -> None:
    """Write one length-prefixed protobuf message (one write call, as protoio does)."""
    stream.write(delimited(msg.SerializeToString()))


class PlainStream:
    """A socket as a Stream (privval over unix:// is not encrypted)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the peer")
            buf += chunk
        return bytes(buf)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
