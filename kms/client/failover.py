"""Failover between the replicas of a KmsClient: which one takes each attempt, and when an attempt is retried.

A refused replica (evidence, domain, state, or its enclave says it is not an approved replica: nothing was carried
out) is passed over and the request goes to another; a transport failure retries on another replica, and once
every one was tried, again after a backoff; a request that is not idempotent is never sent again once it may have
run (OutcomeUnknown names it). With one replica this is the plain reconnect-and-retry of one server.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from kms.client.errors import OutcomeUnknown, ServerError, TransportError, VerificationFailed
from kms.client.link import Link
from kms.client.replicas import Chooser, Observer
from kms.errors import Conflict, ReplicaNotApproved, StoreError

_log = logging.getLogger("kms.client")
_T = TypeVar("_T")


class Failover:
    """Mixin of KmsClient: `_links` (one per replica), `_chooser`, the retry settings."""

    _links: list[Link]
    _chooser: Chooser
    _retries: int
    _backoff: float
    _max_backoff: float
    _closed: bool

    def __init__(self) -> None:
        self._affinity = threading.local()
        super().__init__()

    def watch(self, observer: Observer) -> None:
        """Call observer(event, address, detail) as replicas come up, go down, are refused or take over a
        request (event: up | down | refused | failover); from the thread that saw it."""
        self._chooser.observer = observer

    def replicas(self) -> list[dict[str, object]]:
        """Each replica: server (address), up, refused (why, or None), down (why, or None), served (requests)."""
        return [state.as_dict() for state in self._chooser.states]

    def connect_all(self) -> None:
        """Open (verify) a session to every replica not refused lately: failover then needs no handshake. Errors
        are recorded in replicas(), not raised (ClientClosed ends it)."""
        for index, link in enumerate(self._links):
            if len(self._links) > 1 and self._chooser.resting_refused(index):
                continue
            try:
                link.connection()
            except (VerificationFailed, ReplicaNotApproved) as exc:
                self._chooser.mark(index, "refused", str(exc))
            except (TransportError, ServerError) as exc:
                self._chooser.mark(index, "down", str(exc))
            else:
                self._chooser.mark(index, "up", served=False)

    @contextmanager
    def one_replica(self) -> Iterator[None]:
        """Send every request of this thread inside the block to one replica: for steps that use the state of
        one enclave (import parameters then import, prepare then import a transferred key)."""
        if getattr(self._affinity, "index", None) is not None:
            yield
            return
        index = self._chooser.pick(set())
        if index is None:
            raise self._exhausted(None)
        self._affinity.index = index
        try:
            yield
        finally:
            self._affinity.index = None

    def _run(self, fn: Callable[[Link], _T], *, operation: str | None, idempotent: bool) -> _T:
        """fn on a replica; after a refusal or a transport failure on another (or again, after a backoff)."""
        pinned = getattr(self._affinity, "index", None)
        several = len(self._links) > 1 and pinned is None
        tried: set[int] = set()
        attempt, last, budget = 0, None, self._retries + len(self._links) - 1
        while True:
            index = pinned if pinned is not None else self._chooser.pick(tried)
            if index is None:
                raise self._exhausted(last)
            link, wait = self._links[index], True
            try:
                with self._chooser.busy(index):
                    result = fn(link)
            except (VerificationFailed, ReplicaNotApproved) as exc:   # nothing was carried out there
                self._chooser.mark(index, "refused", str(exc))
                if not several:
                    raise
                tried.add(index)
                last = exc
                continue
            except TransportError as exc:
                if exc.sent and not idempotent:
                    raise OutcomeUnknown(f"{operation or 'the request'} on {link.address}: {exc} (it may or may "
                                         "not have been carried out; not sent again)", grpc_code=exc.grpc_code,
                                         operation=operation, server=link.address) from exc
                self._chooser.mark(index, "down", str(exc))
                if attempt >= budget or self._closed:
                    raise
                _log.info("kms client: transient failure on %s, trying again: %s", link.address, exc)
                tried.add(index)
                last, wait = exc, not several or len(tried) >= len(self._links)
            except ServerError as exc:   # a non-transient gRPC status: another replica may serve an idempotent one
                if not (several and idempotent) or attempt >= budget:
                    raise
                self._chooser.mark(index, "down", str(exc))
                tried.add(index)
                last, wait = exc, len(tried) >= len(self._links)
            except StoreError as exc:   # its store failed it (KMS_ERR_STORE_UNAVAILABLE, _AUDIT_UNAVAILABLE)
                if not idempotent:   # the store may have committed it before failing: unknown, never sent again
                    raise OutcomeUnknown(f"{operation} on {link.address}: {exc} (the replica's store failed: it may "
                                         "or may not have been carried out; not sent again)", operation=operation,
                                         server=link.address) from exc
                if attempt >= budget:
                    raise
                tried.add(index)
                last, wait = exc, not several or len(tried) >= len(self._links)
            except Conflict:
                if attempt >= self._retries:
                    raise
            else:
                self._chooser.mark(index, "up")
                if tried:
                    self._chooser.failed_over(index)
                return result
            attempt += 1
            if wait:
                tried.clear()
                delay = min(self._max_backoff, self._backoff * (2 ** (attempt - 1)))
                time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not a secret

    def _exhausted(self, last: Exception | None) -> Exception:
        refused = self._chooser.all_refused()
        if refused and (len(self._links) > 1 or last is None):
            return VerificationFailed(f"no replica passed verification; nothing was sent ({'; '.join(refused)})")
        if last is not None:
            return last
        return TransportError("no replica could be reached; nothing was sent", sent=False)

