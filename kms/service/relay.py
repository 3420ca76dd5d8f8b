"""The enclave as the server uses it: ECALLs on a bounded worker pool (contextvars kept), counted sessions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kms.enclave.bridge import SESSION_IN_MAX, Enclave, RecordStore
from kms.enclave.node import SEALED_DOMAIN_KEY
from kms.errors import E, KmsError, NotInitialized, SealError, SessionError, StaleRecord
from kms.log import get_logger
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.ecall_pool import EcallPool
from kms.service.evidence import QuotingEnclave, install_evidence

T = TypeVar("T")
EcallObserver = Callable[[str, float], None]


class Overloaded(KmsError):
    """Too many ECALLs are queued: the request is refused before it waits (retry later)."""


class SessionLimitReached(KmsError):
    """The concurrent-session limit is reached (front end or enclave)."""


class FrameTooLarge(KmsError):
    """A client frame carries more TLS bytes than one feed accepts."""


class SessionIdle(KmsError):
    """No client frame arrived within the idle timeout; the session was closed."""

_log = get_logger("kms.service")


@dataclass(frozen=True)
class Evidence:
    """What GetEvidence returns, all public."""

    certificate: bytes
    quote: bytes
    simulated: bool
    initialized: bool
    enclave_version: str


def open_enclave(data_dir: Path, store: RecordStore, qe: QuotingEnclave, *, tcs: int, heap_size: int = 0,
                 stack_size: int = 0) -> Enclave:
    """Load the enclave, unseal the domain key if this node has one, install fresh RA-TLS evidence."""
    enclave = Enclave(data_dir, store=store, tcs_num=tcs, heap_size=heap_size, stack_size=stack_size)
    try:
        sealed = Path(data_dir) / SEALED_DOMAIN_KEY
        if sealed.exists():
            blob = sealed.read_bytes()
            try:
                loaded = enclave.call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=blob)))
            except SealError as exc:
                raise SealError(f"cannot unseal {sealed} ({exc.code_name}): it was sealed on another machine, "
                                "by another signer or a newer enclave, or it is damaged; restore the domain "
                                "from recovery shares on a fresh data directory", exc.code) from exc
            except StaleRecord as exc:
                raise StaleRecord(f"the store does not match the enclave's state log, nothing is served ({exc}); "
                                  "restore the store (and its state log) from a backup taken together, "
                                  "see docs/operations.md", exc.code) from exc
            damage = loaded.load_domain_key
            if damage.damaged_records:
                _log.warning("store records are damaged: each is refused when used", count=damage.damaged_records,
                             detail=damage.damaged_detail)
        install_evidence(enclave, qe)
    except BaseException:
        enclave.close()
        raise
    return enclave


class Relay:
    """Runs every ECALL of the server on `workers` threads (≤ the enclave's TCS) and tracks sessions."""

    def __init__(self, enclave: Enclave, *, workers: int, max_queued: int, max_sessions: int,
                 observe_ecall: EcallObserver | None = None,
                 on_sessions: Callable[[int], None] | None = None, qe: QuotingEnclave | None = None) -> None:
        self.enclave = enclave
        self.qe = qe
        self._requote = asyncio.Lock()
        self._evidence: Evidence | None = None  # the last answer; its flags are asked again for a new certificate
        self.max_sessions = max_sessions
        self._max_queued = max_queued
        self._queued = 0
        self._pool = EcallPool(workers)
        self._observe = observe_ecall
        self._on_sessions = on_sessions
        self._sessions: dict[int, RelaySession] = {}
        self._reserved = 0
        self._closed = False

    @property
    def sessions_active(self) -> int:
        """Sessions open or being opened."""
        return self._reserved

    def _timed(self, name: str, fn: Callable[..., T], *args: object) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            if self._observe is not None:
                self._observe(name, time.perf_counter() - start)

    async def run(self, name: str, fn: Callable[..., T], *args: object, admit: bool = True) -> T:
        """fn(*args) on the pool, in a copy of the caller's context; Overloaded when the queue is full."""
        if self._closed:
            raise Overloaded("the server is shutting down")
        if admit and self._queued >= self._max_queued:
            raise Overloaded(f"too many enclave calls in progress ({self._max_queued}); retry later")
        self._queued += 1
        try:
            return await self._pool.submit(self._timed, name, fn, *args)  # type: ignore[no-any-return]
        finally:
            self._queued -= 1

    async def identity(self) -> pb.GetIdentityResponse:
        """The enclave's identity and whether its domain is loaded."""
        return await self.run("get_identity", self.enclave.identity)

    async def evidence(self) -> Evidence:
        """The installed RA-TLS certificate and quote, with the platform and domain flags.

        When the enclave's claims changed (a domain was initialized, loaded or recovered: the
        certificate must carry its id and audit key), the enclave is quoted again first. The flags
        (get_identity: a second ECALL) are asked once per certificate: every change of the domain
        changes the claims, hence the certificate, and the flags are informational (clients verify)."""
        try:
            ev = await self._get_evidence()
        except NotInitialized as exc:
            if exc.code != E.KMS_ERR_EVIDENCE_NOT_READY or self.qe is None:
                raise
            async with self._requote:  # one re-quote per change: a second would replace the first's certificate
                try:
                    ev = await self._get_evidence()
                except NotInitialized as again:
                    if again.code != E.KMS_ERR_EVIDENCE_NOT_READY:
                        raise
                    await self.run("install_evidence", install_evidence, self.enclave, self.qe)
                    ev = await self._get_evidence()
        certificate = ev.evidence.certificate
        known = self._evidence
        if known is not None and known.certificate == certificate:
            return known  # the flags of this certificate: a change of domain changes the claims, so the certificate
        ident = await self.identity()
        self._evidence = Evidence(certificate, ev.evidence.quote, ident.simulated, ident.domain_loaded, ident.version)
        return self._evidence

    async def _get_evidence(self) -> pb.Response:
        return await self.run("get_evidence", self.enclave.call, pb.Request(get_evidence=pb.GetEvidenceRequest()))

    async def open_session(self) -> RelaySession:
        """A new enclave session, within the session limit."""
        if self._reserved >= self.max_sessions:
            raise SessionLimitReached(f"too many concurrent sessions (limit {self.max_sessions}); retry later")
        self._count(+1)
        try:
            sid = await self.run("session_open", self.enclave.session_open)
        except SessionError as exc:
            self._count(-1)
            if exc.code == E.KMS_ERR_SESSION_LIMIT:
                raise SessionLimitReached("the enclave's session table is full; retry later") from exc
            raise
        except BaseException:
            self._count(-1)
            raise
        session = RelaySession(self, sid)
        self._sessions[sid] = session
        return session

    def _count(self, delta: int) -> None:
        self._reserved += delta
        if self._on_sessions is not None:
            self._on_sessions(self._reserved)

    def _forget(self, session: RelaySession) -> None:
        if self._sessions.pop(session.sid, None) is not None:
            self._count(-1)

    async def close(self) -> None:
        """Close every session, stop the pool (waiting for running ECALLs), then destroy the enclave."""
        for session in list(self._sessions.values()):
            await session.close()
        self._closed = True
        await asyncio.to_thread(self._pool.close)
        self.enclave.close()


class RelaySession:
    """One enclave session; feeds are serialized, close is idempotent and waits for a running feed."""

    def __init__(self, relay: Relay, sid: int) -> None:
        self.relay = relay
        self.sid = sid
        self._lock = threading.Lock()
        self._ended = False
        self.frames_in = self.frames_out = self.bytes_in = self.bytes_out = 0

    async def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Client TLS bytes in; (TLS bytes for the client, closed) out. Enclave errors end the session."""
        if len(data) > SESSION_IN_MAX:
            raise FrameTooLarge(f"a SessionFrame carries at most {SESSION_IN_MAX} bytes of TLS records, "
                                f"got {len(data)}")
        # Not subject to the queue bound: a session has at most one feed in flight (max_sessions bounds them).
        out, closed = await self.relay.run("session_feed", self._feed, data, admit=False)
        self.frames_in, self.bytes_in = self.frames_in + 1, self.bytes_in + len(data)
        self.frames_out, self.bytes_out = self.frames_out + 1, self.bytes_out + len(out)
        return out, closed

    def _feed(self, data: bytes) -> tuple[bytes, bool]:
        with self._lock:
            if self._ended:
                raise SessionError("the session is closed", E.KMS_ERR_SESSION_NOT_FOUND)
            try:
                out, closed = self.relay.enclave.session_feed(self.sid, data)
            except KmsError:
                self._ended = True  # the enclave freed the session on any failure
                raise
            self._ended = closed
            return out, closed

    def _close(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            try:
                self.relay.enclave.session_close(self.sid)
            except KmsError:
                pass  # already gone (ended by the enclave, reaped, or the enclave is closing)

    async def close(self) -> None:
        """End the session in the enclave (shielded from cancellation) and release its slot."""
        if self.relay._sessions.get(self.sid) is not self:
            return
        try:
            await asyncio.shield(self.relay.run("session_close", self._close, admit=False))
        finally:
            self.relay._forget(self)
