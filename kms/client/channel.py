"""A TLS 1.3 session with the enclave, run over any byte transport, with request framing and pipelining.

The transport is a function `exchange(bytes) -> bytes`: it delivers the client's TLS bytes to
the enclave and returns what the enclave answered (the gRPC Session stream answers every
client frame with exactly one frame). The enclave's certificate must be byte-for-byte the
certificate the caller verified beforehand (RA-TLS evidence); otherwise nothing is sent.

Concurrent callers share the session: each request is framed and encrypted as soon as it is
submitted; whichever caller holds the transport sends everything queued in one exchange and
hands every response to its caller by request id.
"""

from __future__ import annotations

import functools
import os
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from kms.client.credentials import Credentials
from kms.client.errors import TransportError
from kms.errors import KmsError, SessionError, error_for_code
from kms.proto.enclave.v1 import boundary_pb2 as pb

Exchange = Callable[[bytes], bytes]
FRAME_MAX = 64 * 1024          # the enclave's request/response bound (KMS_MAX_REQUEST_SIZE)
EXCHANGE_MAX = 96 * 1024       # TLS bytes per exchange: under the 128 KiB SessionFrame / feed limit
IDLE_ROUNDS_MAX = 16           # exchanges in a row without progress before the session is declared dead


class EnclaveIdentityMismatch(SessionError):
    """The TLS peer is not the enclave whose evidence was verified: nothing was sent."""


@functools.lru_cache(maxsize=8)
def _context(credentials: Credentials) -> ssl.SSLContext:
    """The client TLS context of `credentials`, made once per process and shared by its sessions (an SSLContext is
    safe to share across threads once configured). Loading the key and certificate goes through a temporary
    directory (Python's ssl loads them only from files): about 5 ms here, which every session paid before."""
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


class _Waiter:
    """One submitted request: where its bytes start in the outgoing stream, and its answer."""

    __slots__ = ("error", "event", "response", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.event = threading.Event()
        self.response: pb.Response | None = None
        self.error: BaseException | None = None


class SessionChannel:
    """One attested session; thread-safe, with many requests in flight (request ids)."""

    def __init__(self, exchange: Exchange, credentials: Credentials, expected_certificate: bytes) -> None:
        self._exchange = exchange
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = _context(credentials).wrap_bio(self._in, self._out, server_side=False)
        self._lock = threading.Lock()      # the TLS object, BIOs, buffer, waiters
        self._io = threading.Lock()        # one exchange at a time
        self._next_id = 1
        self._buffer = b""
        self._waiters: dict[int, _Waiter] = {}
        self._sent_total = 0               # TLS bytes taken from the outgoing BIO so far
        self._failure: BaseException | None = None
        self._handshake(expected_certificate)

    @property
    def broken(self) -> bool:
        """True once the session failed (a transport error, a TLS error, a protocol violation)."""
        return self._failure is not None

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
            except ssl.SSLError as exc:
                raise SessionError(f"TLS handshake with the enclave failed: {exc.reason or exc}") from exc
        else:
            raise SessionError("TLS handshake with the enclave did not complete")
        peer = self._tls.getpeercert(binary_form=True)
        if peer != expected:
            raise EnclaveIdentityMismatch("the session's certificate is not the verified enclave certificate")
        # The client's last flight (Certificate, CertificateVerify, Finished) stays in the outgoing BIO: it leaves
        # with the first request (or close_notify) in one exchange, one round trip less per session. The enclave
        # finishes the handshake and reads the request in the same feed (session.c, pump).

    def call(self, request: pb.Request) -> pb.Response:
        """Send one request and wait for its response; raises the enclave's typed error."""
        waiter = self._submit(request)
        while not waiter.event.is_set():
            with self._io:
                if not waiter.event.is_set():
                    self._pump()
        if waiter.error is not None:
            raise waiter.error
        response = waiter.response
        assert response is not None
        if response.error:
            raise error_for_code(response.error)
        return response

    def _submit(self, request: pb.Request) -> _Waiter:
        with self._lock:
            if self._failure is not None:
                raise _unsent(self._failure)
            request.version = pb.BOUNDARY_VERSION_1
            request.request_id = self._next_id
            payload = request.SerializeToString()
            if len(payload) > FRAME_MAX:
                raise SessionError(f"request of {len(payload)} bytes exceeds the {FRAME_MAX}-byte frame limit")
            self._next_id += 1
            waiter = _Waiter(self._sent_total + self._out.pending)
            try:
                self._tls.write(struct.pack(">I", len(payload)) + payload)
            except ssl.SSLError as exc:
                self._fail(SessionError(f"TLS error: {exc.reason or exc}"))
                raise _unsent(self._failure) from exc
            self._waiters[request.request_id] = waiter
            return waiter

    def _pump(self) -> None:
        """One exchange (caller holds the transport): send what is queued, dispatch what comes back."""
        idle = 0
        while True:
            with self._lock:
                if self._failure is not None or not self._waiters:
                    return
                data = self._out.read(EXCHANGE_MAX)
                self._sent_total += len(data)
            try:
                reply = self._exchange(data)
            except BaseException as exc:
                with self._lock:
                    if isinstance(exc, TransportError) and not exc.sent:
                        self._sent_total -= len(data)  # the transport says these bytes never left
                    self._fail(exc)
                return
            with self._lock:
                progress = self._receive(reply)
                if self._failure is not None or progress or data:
                    return
            idle += 1
            if idle >= IDLE_ROUNDS_MAX:
                with self._lock:
                    self._fail(SessionError("no response from the enclave"))
                return

    def _receive(self, reply: bytes) -> bool:
        """Decrypt what arrived and complete the waiters it answers (lock held); True if any completed."""
        if reply:
            self._in.write(reply)
        try:
            while True:
                self._buffer += self._tls.read(FRAME_MAX + 4)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._fail(SessionError("the enclave closed the session"))
            return False
        except ssl.SSLError as exc:
            self._fail(SessionError(f"TLS error in the session: {exc.reason or exc}"))
            return False
        progress = False
        while len(self._buffer) >= 4:
            (n,) = struct.unpack(">I", self._buffer[:4])
            if n > FRAME_MAX:
                self._fail(SessionError(f"response frame of {n} bytes exceeds {FRAME_MAX}"))
                return False
            if len(self._buffer) < 4 + n:
                break
            frame, self._buffer = self._buffer[4:4 + n], self._buffer[4 + n:]
            try:
                response = pb.Response.FromString(frame)
            except Exception:
                self._fail(SessionError("undecodable response frame"))
                return False
            waiter = self._waiters.pop(response.request_id, None)
            if waiter is None:
                self._fail(SessionError(f"response for unknown request id {response.request_id}"))
                return False
            waiter.response = response
            waiter.event.set()
            progress = True
        return progress

    def _fail(self, exc: BaseException) -> None:
        """Mark the session dead and wake every waiter (lock held)."""
        if self._failure is None:
            self._failure = exc
        for waiter in self._waiters.values():
            waiter.error = _for_waiter(self._failure, waiter.start < self._sent_total)
            waiter.event.set()
        self._waiters.clear()

    def close(self) -> None:
        """Send close_notify and read the enclave's (best effort); waiters still queued fail."""
        with self._io, self._lock:
            if self._failure is None:
                try:
                    self._tls.unwrap()
                except (ssl.SSLWantReadError, ssl.SSLError):
                    pass
                try:
                    data = self._out.read()
                    if data:
                        self._in.write(self._exchange(data))
                        self._tls.unwrap()  # completes on the enclave's close_notify (session-protocol §6)
                except Exception:  # noqa: S110 - closing: the transport may already be gone
                    pass
            self._fail(SessionError("the session was closed"))


def _for_waiter(failure: BaseException, sent: bool) -> BaseException:
    """The error a waiter sees: the failure itself, marked with whether its bytes had left."""
    if sent:
        return failure
    return _unsent(failure)


def _unsent(failure: BaseException | None) -> BaseException:
    if isinstance(failure, TransportError):
        return TransportError(str(failure), sent=False, grpc_code=failure.grpc_code)
    if isinstance(failure, KmsError):
        return TransportError(f"session unusable: {failure}", sent=False)
    return TransportError(f"session unusable: {failure!r}", sent=False)
