"""KmsClient: verify each replica's enclave first, then run typed operations over attested sessions to them."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
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
from kms.client.cluster import ClusterOperations
from kms.client.credentials import Credentials
from kms.client.envelope import EnvelopeOperations
from kms.client.errors import TransportError
from kms.client.eth import EthOperations
from kms.client.evidence import CollateralSources, VerifiedEvidence, verify_evidence
from kms.client.failover import Failover
from kms.client.idempotency import is_idempotent, operation_of
from kms.client.lifecycle import LifecycleOperations
from kms.client.link import Connection, Link
from kms.client.pinning import DomainGuard
from kms.client.replicas import Chooser, ReplicaState, Resolver, expand
from kms.client.state import ClientState, StateHead
from kms.client.transfer import TransferOperations
from kms.client.transport import SessionStream, fetch_evidence
from kms.errors import SessionError
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2_grpc

_log = logging.getLogger("kms.client")
_T = TypeVar("_T")


class KmsClient(Failover, LifecycleOperations, EnvelopeOperations, AccessOperations, ImportOperations,
                TransferOperations, ClusterOperations, EthOperations):
    """A client of an Enclave KMS domain, served by one server or several replicas.

    `target`: one address, several (comma-separated, or a sequence), or a DNS name resolved to all its A/AAAA
    records: each is a replica (kms.client.replicas). Before a replica is used (and on every reconnect) its
    evidence is fetched and the RA-TLS certificate and its quote verified against `policy`, `trust_anchor` and
    the collateral (default: the server's recommended PCCS, whose answers are themselves signed by the anchor);
    then a TLS 1.3 session pinned to exactly that certificate is opened, authenticated by `credentials`. A
    verification failure raises VerificationFailed with one address; with several, that replica is refused (not
    asked again for `recheck_s` seconds) and the request goes to another, and VerificationFailed is raised when
    every one is refused. Nothing is sent to a refused replica. Requests go to the replica with the fewest in
    flight (round-robin among equals). Transient transport errors retry on another replica, or reconnect
    (re-verifying) with bounded exponential backoff once every one was tried; a request that is not idempotent
    (kms.client.idempotency; docs/api.md §5) is retried only if it certainly was not sent, else OutcomeUnknown.

    Domain pin and freshness (kms.client.pinning), one for all replicas: the domain is `domain_id`, else the one
    pinned in `state` (default: `<credentials dir>/state.json` for loaded credentials, else in memory), else the
    one the first verified connection serves (for this object only). A certificate of another domain, or of
    none, raises DomainMismatch before any Session is opened; a server whose state is behind or forked from the
    highest head `state` holds for the domain raises RollbackDetected after a get_identity probe, before any
    request of the caller. Both are VerificationFailed. `new_domain=True` says this client is to init or recover
    a domain: it accepts only a server without one, and init/recover then pin the result (saved in `state`).

    Thread-safe: concurrent callers share one session per replica and are pipelined on it.
    """

    def __init__(
        self,
        target: str | Sequence[str],
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
        recheck_s: float = 5.0,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        if retries < 0 or backoff < 0 or max_backoff < backoff or timeout <= 0 or recheck_s < 0:
            raise ValueError("retries, backoffs and recheck_s must be non-negative, max_backoff >= backoff, "
                             "timeout > 0")
        try:
            replicas = expand(target, resolver)
        except OSError as exc:
            raise TransportError(f"cannot resolve {target}: {exc}", sent=False) from exc
        self._guard = DomainGuard(state if state is not None else ClientState.for_credentials(credentials.directory),
                                  domain_id=domain_id, new_domain=new_domain)
        self.target = target if isinstance(target, str) else ",".join(target)
        self._credentials = credentials
        self._policy = policy
        self._anchor = trust_anchor
        self._collateral = CollateralSources(collateral)
        self._at = at
        self._retries, self._backoff, self._max_backoff, self._timeout = retries, backoff, max_backoff, timeout
        self._links = [Link(address, self._open, grpc_credentials, [*grpc_options, *(
            [("grpc.ssl_target_name_override", name)] if name and grpc_credentials is not None else [])])
            for address, name in replicas]
        self._chooser = Chooser([ReplicaState(link.address) for link in self._links], recheck_s)
        self._closed = False
        super().__init__()
        if connect:
            try:
                self._run(lambda link: link.connection(), operation=None, idempotent=True)
            except BaseException:
                self._shut()
                raise

    # --- connection ---------------------------------------------------------------------------

    @property
    def evidence(self) -> VerifiedEvidence:
        """The evidence the session of the next replica is pinned to (connects if needed)."""
        return self._run(lambda link: link.connection().evidence, operation=None, idempotent=True)

    @property
    def connects(self) -> int:
        """Sessions opened so far, over all replicas."""
        return sum(link.connects for link in self._links)

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
        """Fetch and verify the evidence of the next replica now, without opening a session or sending anything."""
        return self._run(lambda link: self._verify(link.stub, link.address), operation=None, idempotent=True)

    def _verify(self, stub: kms_pb2_grpc.KeyManagementServiceStub, address: str) -> VerifiedEvidence:
        evidence = fetch_evidence(stub, self._timeout, address)
        return verify_evidence(evidence, self._policy, trust_anchor=self._anchor, collateral=self._collateral,
                               at=self._at)

    def _open(self, stub: kms_pb2_grpc.KeyManagementServiceStub, address: str) -> Connection:
        verified = self._verify(stub, address)  # raises VerificationFailed before any Session is opened
        domain = self._guard.check_certificate(verified)  # DomainMismatch: still no Session
        stream = SessionStream(stub, exchange_timeout=self._timeout)
        try:
            channel = SessionChannel(stream.exchange, self._credentials, verified.certificate)
            self._guard.check_session(domain, channel.call)  # RollbackDetected before any caller request
            self._guard.state.save()  # the head the check established survives a crash of this process
        except TransportError as exc:
            stream.close(grace=0)
            raise TransportError(f"opening the session failed: {exc}", sent=False, grpc_code=exc.grpc_code) from exc
        except SessionError as exc:  # handshake failure: the enclave refused us, nothing was sent
            stream.close(grace=0)
            raise TransportError(f"session handshake failed: {exc}", sent=False) from exc
        except BaseException:
            stream.close(grace=0)
            raise
        return Connection(verified, stream, channel)

    # --- calls --------------------------------------------------------------------------------

    def _call(self, request: pb.Request) -> pb.Response:
        """Run one request in a session; retry, here or on another replica, as its idempotency allows."""
        return self._call_with_evidence(request)[0]

    def _call_with_evidence(self, request: pb.Request) -> tuple[pb.Response, VerifiedEvidence]:
        """As _call, with the verified evidence of the session that carried the answer."""

        def attempt(link: Link) -> tuple[pb.Response, VerifiedEvidence]:
            conn = link.connection()
            try:
                response = conn.channel.call(request)
                self._guard.observe(response)
                return response, conn.evidence
            except TransportError:
                link.drop(conn)
                raise
            except SessionError as exc:  # the session died under this request (TLS, framing, closed)
                link.drop(conn)
                raise TransportError(str(exc), sent=True) from exc

        operation = operation_of(request)
        return self._run(attempt, operation=operation, idempotent=is_idempotent(operation))

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """End the sessions (close_notify) and the gRPC channels, then save the known heads; idempotent.
        ClientStateError if the state file cannot be written."""
        self._shut()
        self._guard.state.save()

    def _shut(self) -> None:
        self._closed = True
        for link in self._links:
            link.close()

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
