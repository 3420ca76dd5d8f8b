"""A TLS 1.3 session with the enclave, run over any byte transport, with request framing.

The transport is a function `exchange(bytes) -> bytes`: it delivers the client's TLS bytes to
the enclave and returns what the enclave answered (the gRPC Session stream answers every
client frame with exactly one frame). The enclave's certificate must be byte-for-byte the
certificate the caller verified beforehand (RA-TLS evidence); otherwise nothing is sent.
"""

from __future__ import annotations

import os
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from kms.client.credentials import Credentials
from kms.errors import SessionError, error_for_code
from kms.proto.enclave.v1 import boundary_pb2 as pb

Exchange = Callable[[bytes], bytes]
FRAME_MAX = 64 * 1024


class EnclaveIdentityMismatch(SessionError):
    """The TLS peer is not the enclave whose evidence was verified: nothing was sent."""


def _context(credentials: Credentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # The server certificate is self-signed RA-TLS: it is checked against the verified evidence
    # (pinned bytes) right after the handshake, before any request is written.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(credentials.certificate_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(credentials.private_key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


class SessionChannel:
    """One attested session; thread-safe (callers share it, one request on the wire at a time)."""

    def __init__(self, exchange: Exchange, credentials: Credentials, expected_certificate: bytes) -> None:
        self._exchange = exchange
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = _context(credentials).wrap_bio(self._in, self._out, server_side=False)
        self._lock = threading.Lock()
        self._next_id = 1
        self._buffer = b""
        self._handshake(expected_certificate)

    def _flush(self) -> None:
        data = self._out.read()
        reply = self._exchange(data)
        if reply:
            self._in.write(reply)

    def _handshake(self, expected: bytes) -> None:
        for _ in range(16):
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
        else:
            raise SessionError("TLS handshake with the enclave did not complete")
        if self._out.pending:
            self._flush()
        peer = self._tls.getpeercert(binary_form=True)
        if peer != expected:
            raise EnclaveIdentityMismatch("the session's certificate is not the verified enclave certificate")

    def call(self, request: pb.Request) -> pb.Response:
        """Send one request and wait for its response; raises the enclave's typed error."""
        with self._lock:
            request.version = pb.BOUNDARY_VERSION_1
            request.request_id = self._next_id
            self._next_id += 1
            payload = request.SerializeToString()
            if len(payload) > FRAME_MAX:
                raise SessionError(f"request of {len(payload)} bytes exceeds the {FRAME_MAX}-byte frame limit")
            self._tls.write(struct.pack(">I", len(payload)) + payload)
            response = self._receive(request.request_id)
        if response.error:
            raise error_for_code(response.error)
        return response

    def _receive(self, request_id: int) -> pb.Response:
        for _ in range(1024):
            self._flush()
            try:
                while True:
                    self._buffer += self._tls.read(FRAME_MAX + 4)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError as exc:
                raise SessionError("the enclave closed the session") from exc
            while len(self._buffer) >= 4:
                (n,) = struct.unpack(">I", self._buffer[:4])
                if len(self._buffer) < 4 + n:
                    break
                frame, self._buffer = self._buffer[4:4 + n], self._buffer[4 + n:]
                response = pb.Response.FromString(frame)
                if response.request_id == request_id:
                    return response
        raise SessionError("no response from the enclave")

    def close(self) -> None:
        """Send close_notify (best effort)."""
        with self._lock:
            try:
                self._tls.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            try:
                data = self._out.read()
                if data:
                    self._exchange(data)
            except Exception:  # noqa: BLE001 - closing: the transport may already be gone
                pass
