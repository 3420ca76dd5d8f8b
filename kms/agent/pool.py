"""The KMS servers one agent talks to: one verified SDK client per address, failover between them.

Every server is verified by its own KmsClient (kms.client: the attestation policy, the domain pin, the freshness
check; re-verified on every reconnect), and all of them share one ClientState, so the highest state head seen on
any server is what the next one must know. A server that fails verification is not asked again for `recheck_s`
seconds; a server that cannot be reached is passed over until the one in use fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from kms.agent import metrics
from kms.agent.operations import NOT_IDEMPOTENT, operation_of
from kms.client.client import KmsClient
from kms.client.errors import ClientClosed, OutcomeUnknown, ServerError, TransportError, VerificationFailed
from kms.client.evidence import VerifiedEvidence
from kms.errors import KmsError
from kms.log import get_logger
from kms.proto.enclave.v1 import boundary_pb2 as pb

_log = get_logger("kms.agent")
_T = TypeVar("_T")


class AgentUnavailable(KmsError):
    """No KMS server could be reached (or the agent is closing): nothing was carried out."""


class AgentUntrusted(AgentUnavailable):
    """Every reachable KMS server failed verification (policy, domain pin or freshness): nothing was sent."""


@dataclass
class _Server:
    address: str
    client: KmsClient
    up: bool = False
    refused: str = ""          # why its evidence, domain or state was refused ("" when it was not)
    refused_at: float = 0.0


class ServerPool:
    """Thread-safe: callers share each server's one pipelined session."""

    def __init__(self, clients: Sequence[KmsClient], *, recheck_s: float = 5.0,
                 on_change: Callable[[bool], None] | None = None) -> None:
        if not clients:
            raise ValueError("at least one server address")
        self._servers = [_Server(c.target, c) for c in clients]
        self._recheck_s = recheck_s
        self.on_change = on_change   # called with `serving` when it changes
        self._lock = threading.Lock()
        self._current = 0
        self._serving = False

    @property
    def serving(self) -> bool:
        """True while at least one server holds a verified session."""
        with self._lock:
            return self._serving

    def status(self) -> list[dict[str, object]]:
        """Each server: address, up, and why it was refused (for logs and `kms agent` start-up)."""
        with self._lock:
            return [{"server": s.address, "up": s.up, "refused": s.refused or None} for s in self._servers]

    def call(self, request: pb.Request) -> pb.Response:
        """Run one request as the agent's principal on the server in use, failing over to the next.

        Raises the enclave's typed refusal (kms.errors.EnclaveFailure) as it is, OutcomeUnknown when a request
        that is not idempotent may have run, and AgentUntrusted / AgentUnavailable when no server could take it."""
        idempotent = operation_of(request) not in NOT_IDEMPOTENT
        return self._each(lambda client: client._call(request, idempotent=idempotent))

    def evidence(self) -> VerifiedEvidence:
        """The verified evidence of the server in use (connecting to one if none is)."""
        return self._each(lambda client: client.evidence)

    def connect_all(self) -> None:
        """Open (verify) a session to every server now: failover then needs no handshake. Never raises."""
        for server in self._servers:
            if self._skipped(server, time.monotonic()):
                continue
            try:
                _ = server.client.evidence
            except (VerificationFailed, TransportError, ServerError, ClientClosed) as exc:
                self._failed(server, exc)
            else:
                self._mark(server, up=True)

    def close(self) -> None:
        """End every session and save the state heads (errors are logged: closing goes on)."""
        for server in self._servers:
            try:
                server.client.close()
            except KmsError as exc:
                _log.error("closing the session failed", server=server.address, error=str(exc))

    # --- internals ------------------------------------------------------------------------------------------

    def _each(self, fn: Callable[[KmsClient], _T]) -> _T:
        with self._lock:
            start = self._current
        order = [self._servers[(start + i) % len(self._servers)] for i in range(len(self._servers))]
        now = time.monotonic()
        for i, server in enumerate(order):
            if self._skipped(server, now):
                continue
            try:
                result = fn(server.client)
            except OutcomeUnknown:
                raise   # it may have run on this server: never sent again, here or elsewhere
            except (VerificationFailed, TransportError, ServerError) as exc:
                self._failed(server, exc)
                continue
            except ClientClosed as exc:
                raise AgentUnavailable("the agent is closing") from exc
            self._mark(server, up=True)
            if i:
                metrics.FAILOVERS.inc()
                with self._lock:
                    self._current = self._servers.index(server)
                _log.warning("failed over", server=server.address)
            return result
        raise self._no_server()

    def _skipped(self, server: _Server, now: float) -> bool:
        with self._lock:
            return bool(server.refused) and now - server.refused_at < self._recheck_s

    def _failed(self, server: _Server, exc: Exception) -> None:
        if isinstance(exc, VerificationFailed):
            metrics.VERIFICATION_FAILURES.labels(server=server.address).inc()
            _log.error("KMS server refused: it failed verification; not used", server=server.address,
                       reason=str(exc))
            with self._lock:
                server.refused, server.refused_at = str(exc), time.monotonic()
        else:
            _log.warning("KMS server unreachable", server=server.address, reason=str(exc))
            with self._lock:
                server.refused = ""
        self._mark(server, up=False)

    def _mark(self, server: _Server, *, up: bool) -> None:
        with self._lock:
            server.up = up
            if up:
                server.refused = ""
            serving = any(s.up for s in self._servers)
            changed, self._serving = serving != self._serving, serving
        metrics.SERVER_UP.labels(server=server.address).set(1 if up else 0)
        if changed and self.on_change is not None:
            self.on_change(serving)

    def _no_server(self) -> AgentUnavailable:
        with self._lock:
            refused = [f"{s.address}: {s.refused}" for s in self._servers if s.refused]
            count = len(self._servers)
        if refused:
            return AgentUntrusted(f"no KMS server passed verification, nothing was sent ({'; '.join(refused)})")
        return AgentUnavailable(f"no KMS server could be reached ({count} tried); nothing was carried out")
