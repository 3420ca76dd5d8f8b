"""KmsClient: verify the server's enclave first, then run typed operations over one shared attested session."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TypeVar

import grpc

from kms.attestation.anchor import INTEL_SGX_ROOT, TrustAnchor
from kms.attestation.collateral import Collateral, CollateralSource
from kms.attestation.policy import AttestationPolicy
from kms.client.access import AccessOperations
from kms.client.byok import ImportOperations
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.envelope import EnvelopeOperations
from kms.client.errors import ClientClosed, OutcomeUnknown, TransportError, VerificationFailed
from kms.client.evidence import CollateralSources, VerifiedEvidence, verify_evidence
from kms.client.lifecycle import LifecycleOperations
from kms.client.pinning import DomainGuard
from kms.client.state import ClientState, StateHead
from kms.client.transfer import TransferOperations
from kms.client.transport import SessionStream, fetch_evidence, open_channel
from kms.errors import Conflict, SessionError
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2_grpc

_log = logging.getLogger("kms.client")
_T = TypeVar("_T")


class _Connection:
    """A verified evidence, the Session stream and the TLS session pinned to that evidence."""

    def __init__(self, evidence: VerifiedEvidence, stream: SessionStream, channel: SessionChannel) -> None:
        self.evidence = evidence
        self.stream = stream
        self.channel = channel

    def close(self, grace: float = 1.0) -> None:
        broken = self.channel.broken
        try:
            if not broken:
                self.channel.close()
        finally:
            self.stream.close(grace=0 if broken else grace)


class KmsClient(LifecycleOperations, EnvelopeOperations, AccessOperations, ImportOperations, TransferOperations):
    """A client of one Enclave KMS server.

    On construction (and on every reconnect) it fetches the server's evidence and verifies the
    RA-TLS certificate and its quote against `policy`, `trust_anchor` and the collateral
    (default: the server's recommended PCCS, whose answers are themselves signed by the anchor),
    then opens a TLS 1.3 session pinned to exactly that certificate, authenticated by
    `credentials`. A verification failure raises VerificationFailed and is never retried; no
    Session is opened and nothing is sent. Transient transport errors reconnect (re-verifying)
    with bounded exponential backoff; requests that change state in a non-idempotent way
    (create, rotate, import, deletion, grants, aliases, init, recover, add principal; see
    docs/api.md §5) are retried only if they certainly were not sent, else raise OutcomeUnknown.

    Domain pin and freshness (kms.client.pinning): the domain is `domain_id`, else the one pinned in
    `state` (default: `<credentials dir>/state.json` for loaded credentials, else in memory), else the
    one the first verified connection serves (for this object only). A certificate of another domain,
    or of none, raises DomainMismatch before any Session is opened; a server whose state is behind or
    forked from the highest head `state` holds for the domain raises RollbackDetected after a
    get_identity probe, before any request of the caller. Both are VerificationFailed: never retried.
    `new_domain=True` says this client is to init or recover a domain: it accepts only a server without
    one, and init/recover then pin the result (saved in `state`).

    Thread-safe: concurrent callers share one session and are pipelined on it.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: Credentials,
        policy: AttestationPolicy,
        trust_anchor: TrustAnchor = INTEL_SGX_ROOT,
        collateral: Collateral | CollateralSource | None = None,
        at: datetime | None = None,
        retries: int = 4,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        timeout: float = 30.0,
        grpc_credentials: grpc.ChannelCredentials | None = None,
        grpc_options: Sequence[tuple[str, int | str]] = (),
        connect: bool = True,
        domain_id: bytes | None = None,
        new_domain: bool = False,
        state: ClientState | None = None,
    ) -> None:
        if retries < 0 or backoff < 0 or max_backoff < backoff or timeout <= 0:
            raise ValueError("retries and backoffs must be non-negative, max_backoff >= backoff, timeout > 0")
        self._guard = DomainGuard(state if state is not None else ClientState.for_credentials(credentials.directory),
                                  domain_id=domain_id, new_domain=new_domain)
        self.target = target
        self._credentials = credentials
        self._policy = policy
        self._anchor = trust_anchor
        self._collateral = CollateralSources(collateral)
        self._at = at
        self._retries, self._backoff, self._max_backoff, self._timeout = retries, backoff, max_backoff, timeout
        self._grpc = open_channel(target, grpc_credentials, grpc_options)
        self._stub = kms_pb2_grpc.KeyManagementServiceStub(self._grpc)
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        self._closed = False
        self.connects = 0
        super().__init__()
        if connect:
            try:
                self._with_retries(self._connection, sent_is_final=False)
            except BaseException:
                self._shut()
                raise

    # --- connection ---------------------------------------------------------------------------

    @property
    def evidence(self) -> VerifiedEvidence:
        """The evidence the current session is pinned to (connects if needed)."""
        return self._with_retries(self._connection, sent_is_final=False).evidence

    @property
    def principal_id(self) -> bytes:
        """How the enclave knows this client: SHA-256 of its certificate's SubjectPublicKeyInfo."""
        return self._credentials.principal_id

    @property
    def domain_id(self) -> bytes | None:
        """The pinned domain (None until known: an unpinned client before its first connection, or init/recover)."""
        return self._guard.domain_id

    @property
    def state_head(self) -> StateHead | None:
        """The highest state head of the pinned domain this client knows of (from its state and every response)."""
        return self._guard.known_head()

    @property
    def state(self) -> ClientState:
        return self._guard.state

    def save_state(self) -> None:
        """Write the known heads (and a new pin) to the state file now (also done on connect and close)."""
        self._guard.state.save()

    def verify_evidence(self) -> VerifiedEvidence:
        """Fetch and verify the server's evidence now, without opening a session or sending anything."""
        evidence = fetch_evidence(self._stub, self._timeout, self.target)
        return verify_evidence(evidence, self._policy, trust_anchor=self._anchor, collateral=self._collateral,
                               at=self._at)

    def _connection(self) -> _Connection:
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            conn = self._conn
            if conn is not None and not conn.channel.broken:
                return conn
            if conn is not None:
                self._conn = None
                _close_quietly(conn, grace=0)
            verified = self.verify_evidence()  # raises VerificationFailed before any Session is opened
            domain = self._guard.check_certificate(verified)  # DomainMismatch: still no Session
            stream = SessionStream(self._stub, exchange_timeout=self._timeout)
            try:
                channel = SessionChannel(stream.exchange, self._credentials, verified.certificate)
                self._guard.check_session(domain, channel.call)  # RollbackDetected before any caller request
                self._guard.state.save()  # the head the check established survives a crash of this process
            except TransportError as exc:
                stream.close(grace=0)
                raise TransportError(f"opening the session failed: {exc}", sent=False,
                                     grpc_code=exc.grpc_code) from exc
            except SessionError as exc:  # handshake failure: the enclave refused us, nothing was sent
                stream.close(grace=0)
                raise TransportError(f"session handshake failed: {exc}", sent=False) from exc
            except BaseException:
                stream.close(grace=0)
                raise
            self._conn = _Connection(verified, stream, channel)
            self.connects += 1
            return self._conn

    def _drop(self, conn: _Connection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        _close_quietly(conn, grace=0)

    # --- calls --------------------------------------------------------------------------------

    def _call(self, request: pb.Request, *, idempotent: bool = True) -> pb.Response:
        """Run one request in the session; reconnect and retry as the request's idempotency allows."""
        return self._call_with_evidence(request, idempotent=idempotent)[0]

    def _call_with_evidence(self, request: pb.Request, *, idempotent: bool = True
                            ) -> tuple[pb.Response, VerifiedEvidence]:
        """As _call, with the verified evidence of the session that carried the answer."""

        def attempt() -> tuple[pb.Response, VerifiedEvidence]:
            conn = self._connection()
            try:
                response = conn.channel.call(request)
                self._guard.observe(response)
                return response, conn.evidence
            except TransportError:
                self._drop(conn)
                raise
            except SessionError as exc:  # the session died under this request (TLS, framing, closed)
                self._drop(conn)
                raise TransportError(str(exc), sent=True) from exc

        return self._with_retries(attempt, sent_is_final=not idempotent)

    def _with_retries(self, fn: Callable[[], _T], *, sent_is_final: bool) -> _T:
        attempt = 0
        while True:
            try:
                return fn()
            except VerificationFailed:
                raise
            except TransportError as exc:
                if exc.sent and sent_is_final:
                    raise OutcomeUnknown(f"{exc} (the request may or may not have been carried out)",
                                         grpc_code=exc.grpc_code) from exc
                if attempt >= self._retries or self._closed:
                    raise
                _log.info("kms client: transient failure, reconnecting: %s", exc)
            except Conflict:
                if attempt >= self._retries:
                    raise
            attempt += 1
            delay = min(self._max_backoff, self._backoff * (2 ** (attempt - 1)))
            time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not a secret

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """End the session (close_notify) and the gRPC channel, then save the known heads; idempotent.
        ClientStateError if the state file cannot be written."""
        self._shut()
        self._guard.state.save()

    def _shut(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn)
        self._grpc.close()

    # --- the domain ---------------------------------------------------------------------------

    def _check_creating(self, operation: str) -> None:
        if not self._guard.creating:
            raise ValueError(f"{operation} creates or restores a domain: make the client with new_domain=True "
                             "(it then accepts only a server without a domain); nothing was sent")

    def _domain_established(self, domain_id: bytes) -> None:
        self._guard.established(domain_id)

    def __enter__(self) -> KmsClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _close_quietly(conn: _Connection, grace: float = 1.0) -> None:
    try:
        conn.close(grace)
    except Exception as exc:
        _log.debug("kms client: closing a session failed: %s", exc)
