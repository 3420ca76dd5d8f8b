"""The KMS servers one agent talks to: one SDK client over all their addresses, which verifies, pins, spreads and
fails over (kms.client.failover); this adapter adds the agent's errors, metrics, logs and health.

Every server is verified by the client (the attestation policy, the domain pin, the freshness check against the
one ClientState; re-verified on every reconnect). A server that fails verification is not asked again for
`recheck_s` seconds; one that cannot be reached is tried last during that time. Requests go to the verified
server with the fewest in flight; an idempotent one is retried on another after a transport failure, one that is
not (kms.client.idempotency, the SDK's table) gets OutcomeUnknown once it may have run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from kms.agent import metrics
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


class ServerPool:
    """Thread-safe: callers share each server's one pipelined session."""

    def __init__(self, client: KmsClient, *, on_change: Callable[[bool], None] | None = None) -> None:
        self._client = client
        self.on_change = on_change   # called with `serving` when it changes
        self._lock = threading.Lock()
        self._serving = False
        client.watch(self._event)

    @property
    def serving(self) -> bool:
        """True while at least one server holds a verified session."""
        with self._lock:
            return self._serving

    def status(self) -> list[dict[str, object]]:
        """Each server: address, up, why it was refused or is down, requests served (logs, start-up)."""
        return self._client.replicas()

    def call(self, request: pb.Request) -> pb.Response:
        """Run one request as the agent's principal on a verified server, failing over between them.

        Raises the enclave's typed refusal (kms.errors.EnclaveFailure) as it is, OutcomeUnknown when a request
        that is not idempotent may have run, and AgentUntrusted / AgentUnavailable when no server could take it."""
        return self._mapped(lambda: self._client._call(request))

    def evidence(self) -> VerifiedEvidence:
        """The verified evidence of a server (connecting to one if none is)."""
        return self._mapped(lambda: self._client.evidence)

    def connect_all(self) -> None:
        """Open (verify) a session to every server now: failover then needs no handshake. Never raises."""
        try:
            self._client.connect_all()
        except ClientClosed:
            pass
        self._update()

    def close(self) -> None:
        """End every session and save the state heads (errors are logged: closing goes on)."""
        try:
            self._client.close()
        except KmsError as exc:
            _log.error("closing the sessions failed", error=str(exc))

    # --- internals ------------------------------------------------------------------------------------------

    def _mapped(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except OutcomeUnknown:
            raise   # it may have run: never sent again, here or elsewhere
        except VerificationFailed as exc:
            raise AgentUntrusted(f"no KMS server passed verification, nothing was sent ({exc})") from exc
        except ClientClosed as exc:
            raise AgentUnavailable("the agent is closing") from exc
        except (TransportError, ServerError) as exc:
            count = len(self._client.replicas())
            raise AgentUnavailable(f"no KMS server could be reached ({count} known): {exc}") from exc

    def _event(self, event: str, server: str, detail: str) -> None:
        if event == "refused":
            metrics.VERIFICATION_FAILURES.labels(server=server).inc()
            _log.error("KMS server refused: it failed verification; not used", server=server, reason=detail)
        elif event == "down":
            _log.warning("KMS server unreachable", server=server, reason=detail)
        elif event == "failover":
            metrics.FAILOVERS.inc()
            _log.warning("failed over", server=server)
        if event != "failover":
            metrics.SERVER_UP.labels(server=server).set(1 if event == "up" else 0)
        self._update()

    def _update(self) -> None:
        serving = any(s["up"] for s in self._client.replicas())
        with self._lock:
            changed, self._serving = serving != self._serving, serving
        if changed and self.on_change is not None:
            self.on_change(serving)
