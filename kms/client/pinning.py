"""The domain pin and the freshness check of a KmsClient (docs/api.md §5, "Pinning and freshness").

On every connection, in this order:
1. after the evidence verified and BEFORE any Session is opened: the certificate's "domain-id" claim must be the
   pinned domain (DomainMismatch otherwise; a server without a domain is refused unless the client was made to
   create or recover one);
2. after the TLS handshake and BEFORE any request of the caller: one get_identity carrying the highest head this
   client saw for the domain; the enclave must know that head (HEAD_KNOWN), and report the pinned domain
   (RollbackDetected / DomainMismatch otherwise);
3. then every response's head raises the known head (kept in memory; saved after the check, after init/recover,
   and on close).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kms.client.errors import ClientStateError, DomainMismatch, RollbackDetected
from kms.client.evidence import VerifiedEvidence
from kms.client.state import DOMAIN_ID_LEN, ClientState, StateHead
from kms.proto.enclave.v1 import boundary_pb2 as pb

_log = logging.getLogger("kms.client")


class DomainGuard:
    """The pinned domain (explicit, from the state, or from the first verified connection) and the known heads."""

    def __init__(self, state: ClientState, *, domain_id: bytes | None = None, new_domain: bool = False) -> None:
        if domain_id is not None and len(domain_id) != DOMAIN_ID_LEN:
            raise ValueError(f"domain_id is {DOMAIN_ID_LEN} bytes")
        self.state = state
        self._pin = domain_id if domain_id is not None else state.domain_id
        self._source = "given" if domain_id is not None else "the credentials' state" if self._pin else ""
        self._new_domain = new_domain
        self._lock = threading.Lock()

    @property
    def domain_id(self) -> bytes | None:
        """The pinned domain (None before the first connection of an unpinned client, or before init/recover)."""
        with self._lock:
            return self._pin

    @property
    def creating(self) -> bool:
        """True while the client is to create or recover a domain (new_domain=True, until init/recover succeeded)."""
        with self._lock:
            return self._new_domain

    def known_head(self) -> StateHead | None:
        pin = self.domain_id
        return None if pin is None else self.state.head(pin)

    def check_certificate(self, evidence: VerifiedEvidence) -> bytes | None:
        """Before any Session: the domain the verified certificate claims against the pin; returns it."""
        claim = evidence.domain_id
        with self._lock:
            if self._new_domain:
                if claim is not None:
                    raise DomainMismatch(f"the server already serves domain {claim.hex()}: creating or recovering a "
                                         "domain needs a server without one; nothing was sent",
                                         expected=None, actual=claim)
                return None
            if claim is None:
                wants = f"is pinned to {self._pin.hex()}" if self._pin else "expects one"
                raise DomainMismatch(f"the server serves no domain (not initialized, or wiped), but this client "
                                     f"{wants}: refused, nothing was sent (a client that creates or recovers a "
                                     "domain says so: new_domain=True)", expected=self._pin, actual=None)
            if self._pin is None:
                self._pin, self._source = claim, "the first verified connection"
            elif claim != self._pin:
                raise DomainMismatch(f"the server serves domain {claim.hex()}, not the pinned domain {self._pin.hex()} "
                                     f"({self._source}): refused, nothing was sent", expected=self._pin, actual=claim)
            return claim

    def check_session(self, domain: bytes | None, call: Callable[[pb.Request], pb.Response]) -> None:
        """After the handshake, before any request of the caller: the identity probe with the known head."""
        known = None if domain is None else self.state.head(domain)
        request = pb.GetIdentityRequest()
        if known is not None:
            request.known_head.CopyFrom(known.to_pb())
        response = call(pb.Request(get_identity=request))
        ident = response.get_identity
        if domain is None:
            if ident.domain_loaded:
                raise DomainMismatch("inside the session the enclave reports a domain; none was expected",
                                     expected=None, actual=bytes(ident.domain_id))
            return
        if bytes(ident.domain_id) != domain or bytes(response.domain_id) != domain:
            raise DomainMismatch(f"inside the session the enclave reports domain {bytes(ident.domain_id).hex()}, not "
                                 f"{domain.hex()}", expected=domain, actual=bytes(ident.domain_id))
        head = StateHead.from_pb(response.state_head)
        if known is not None and (ident.known_head_check != pb.HEAD_KNOWN or head.seq < known.seq):
            check = pb.HeadCheck.Name(ident.known_head_check)
            raise RollbackDetected(f"the server's state of domain {domain.hex()} is at {head.seq} ({check}), behind "
                                   f"or forked from the head {known} this client saw: its store was rolled back; "
                                   "refused before any request was sent",
                                   domain_id=domain, known=(known.seq, known.hash), server=(head.seq, head.hash),
                                   check=check)
        self.state.observe(domain, head)

    def observe(self, response: pb.Response) -> None:
        """Every response carries its domain and head: remember the highest."""
        domain = bytes(response.domain_id)
        if len(domain) == DOMAIN_ID_LEN and response.HasField("state_head"):
            self.state.observe(domain, StateHead.from_pb(response.state_head))

    def established(self, domain_id: bytes) -> None:
        """init or recover succeeded: from now on this client (and the credentials' state) is pinned to it.

        Saving is tried at once; a failure must not lose init's answer (the recovery shares), so it is logged
        here, and the client's close() tries again and raises ClientStateError if it still cannot write."""
        with self._lock:
            self._pin, self._source, self._new_domain = domain_id, "init/recover", False
        self.state.pin(domain_id)
        try:
            self.state.save()
        except ClientStateError as exc:
            _log.error("kms client: the new domain %s is pinned in memory but not saved yet: %s", domain_id.hex(), exc)
