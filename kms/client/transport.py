"""gRPC transport of the SDK: the evidence call, and one Session stream as an exchange(bytes) -> bytes."""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections.abc import Iterator, Sequence

import grpc

from kms.client.errors import ServerError, TransportError
from kms.proto.v1 import kms_pb2, kms_pb2_grpc

SESSION_FRAME_MAX = 128 * 1024
MESSAGE_MAX = 4 * 1024 * 1024   # a server frame carries all pending TLS output: pipelined answers can exceed 128 KiB
# Codes that say "the call did not complete, try again later" rather than "the server refused it".
TRANSIENT = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
})
DEFAULT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MESSAGE_MAX),
    ("grpc.max_send_message_length", MESSAGE_MAX),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


def open_channel(target: str, credentials: grpc.ChannelCredentials | None = None,
                 options: Sequence[tuple[str, int | str]] = ()) -> grpc.Channel:
    """A gRPC channel; plaintext by default (the attested TLS session runs inside it)."""
    opts = [*DEFAULT_OPTIONS, *options]
    if credentials is None:
        return grpc.insecure_channel(target, options=opts)
    return grpc.secure_channel(target, credentials, options=opts)


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return code() if callable(code) else None


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    return (details() if callable(details) else None) or str(exc)


def rpc_error(exc: grpc.RpcError, what: str, *, sent: bool) -> TransportError | ServerError:
    """The typed error for a failed RPC: transient codes become TransportError, the rest ServerError."""
    code = _code(exc)
    name = code.name if code is not None else "UNKNOWN"
    message = f"{what}: {name}: {_details(exc)}"
    if code is None or code in TRANSIENT:
        return TransportError(message, sent=sent, grpc_code=name)
    return ServerError(message, grpc_code=name)


def fetch_evidence(stub: kms_pb2_grpc.KeyManagementServiceStub, timeout: float,
                   target: str = "the server") -> kms_pb2.GetEvidenceResponse:
    """The server's public evidence (certificate, quote, collateral URL). A failure says what `target` (the
    address dialled) turned out to be, where gRPC's answer shows it."""
    try:
        return stub.GetEvidence(kms_pb2.GetEvidenceRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        raise _evidence_error(exc, target, timeout) from exc


def _evidence_error(exc: grpc.RpcError, target: str, timeout: float) -> TransportError | ServerError:
    code, details = _code(exc), _details(exc)
    text = details.lower()
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return ServerError(f"{target} is a gRPC server without the KMS API (GetEvidence is UNIMPLEMENTED there): "
                           "the health port? The API address is the first one `kms serve` prints",
                           grpc_code=code.name)
    if "http/2" in text or "settings frame" in text or "http1" in text:
        message = (f"{target} does not speak gRPC (an HTTP/1 server answered): the metrics port? The API address "
                   "is the first one `kms serve` prints")
    elif "connection refused" in text:
        message = f"nothing listens at {target} (connection refused): is the KMS running, with this API address?"
    elif "resolv" in text or "lookup" in text:
        message = f"cannot resolve the host of {target}: {details}"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"{target} did not answer GetEvidence within {timeout:g} s"
    else:
        return rpc_error(exc, f"GetEvidence from {target}", sent=False)
    return TransportError(message, sent=False, grpc_code=code.name if code is not None else "UNKNOWN")


class _Watchdog:
    """One daemon thread that cancels Session streams whose current exchange ran past its deadline."""

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[SessionStream] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, stream: SessionStream) -> None:
        with self._lock:
            self._streams.add(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kms-client-watchdog", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                streams = list(self._streams)
            for stream in streams:
                stream.check_deadline(now)


_WATCHDOG = _Watchdog()


class SessionStream:
    """One Session RPC. `exchange` sends one frame and returns the server's one answering frame.

    Not re-entrant: the session channel calls exchange from one thread at a time.
    """

    def __init__(self, stub: kms_pb2_grpc.KeyManagementServiceStub, *, exchange_timeout: float = 30.0) -> None:
        self._requests: queue.SimpleQueue[kms_pb2.SessionFrame | None] = queue.SimpleQueue()
        self._call = stub.Session(self._frames())
        self._timeout = exchange_timeout
        self._deadline: float | None = None
        self._timed_out = False
        self._closed = False
        self.exchanges = 0
        _WATCHDOG.watch(self)

    def _frames(self) -> Iterator[kms_pb2.SessionFrame]:
        while True:
            frame = self._requests.get()
            if frame is None:
                return
            yield frame

    def check_deadline(self, now: float) -> None:
        deadline = self._deadline
        if deadline is not None and now > deadline and not self._timed_out:
            self._timed_out = True
            self._call.cancel()

    def exchange(self, data: bytes) -> bytes:
        """Send TLS bytes, return the answer. Raises TransportError (sent=True) or ServerError."""
        if self._closed:
            raise TransportError("the session stream is closed", sent=False)
        if len(data) > SESSION_FRAME_MAX:
            raise TransportError(f"{len(data)} TLS bytes exceed the {SESSION_FRAME_MAX}-byte frame", sent=False)
        if self._call.done():  # the server already ended the stream (idle timeout, shutdown): nothing is sent
            self._closed = True
            try:
                code = self._call.code()
                detail = f"{code.name}: {self._call.details()}"
            except Exception:
                code, detail = None, "ended"
            raise TransportError(f"the session stream had already ended ({detail})", sent=False,
                                 grpc_code=code.name if code is not None else None)
        self._deadline = time.monotonic() + self._timeout
        try:
            self._requests.put(kms_pb2.SessionFrame(tls=data))
            reply = next(self._call)
        except StopIteration:
            self._closed = True
            raise TransportError("the server ended the session stream", grpc_code="OK") from None
        except grpc.RpcError as exc:
            self._closed = True
            if self._timed_out:
                raise TransportError(f"no answer within {self._timeout:g} s; session stream cancelled",
                                     grpc_code="DEADLINE_EXCEEDED") from exc
            raise rpc_error(exc, "Session", sent=True) from exc
        finally:
            self._deadline = None
        self.exchanges += 1
        return reply.tls

    def close(self, grace: float = 1.0) -> None:
        """Half-close the request stream, let the server end it (up to `grace` s), then cancel (idempotent)."""
        if self._closed:
            self._call.cancel()
            return
        self._closed = True
        self._requests.put(None)
        self._deadline = time.monotonic() + grace
        try:
            for _ in self._call:  # the server answers nothing after a half-close; drain to the status
                pass
        except grpc.RpcError:
            pass
        finally:
            self._deadline = None
            self._call.cancel()
