"""Group commit: concurrent writes share one transaction and one flush.

Writers (the enclave's OCALLs, on ECALL worker threads) enqueue an operation and wait. The
first waiter that finds no commit under way becomes the leader: it takes everything queued (up
to max_batch) and hands it to the backend, which applies each operation under its own savepoint
and commits once; a conditional-write conflict fails that operation alone. Followers sleep until
their own operation is settled (or they are handed the lead), so every writer returns only once
its own records are durable (or with its own error). With max_batch = 1 every write is its own
transaction (the baseline the benchmark compares against), through the same code.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Op(Protocol):
    """One write: applied inside the batch's transaction, and recognisable afterwards by reading back."""

    def apply(self, tx: Any) -> None:
        """Check and write; raise StoreConflict (nothing of this op is kept) when a condition fails."""

    def committed(self, reader: Any) -> bool:
        """True when this op's writes are in the store (used when a commit's outcome is unknown)."""


class Ticket:
    """A queued op and, once done, its outcome: error is None on success."""

    __slots__ = ("_parked", "done", "error", "op")

    def __init__(self, op: Op) -> None:
        self.op = op
        self.done = False
        self.error: BaseException | None = None
        self._parked: threading.Lock | None = None  # held while its writer sleeps (released to wake it)


BatchRunner = Callable[[Sequence[Op]], list[BaseException | None]]


class GroupCommitter:
    """Batches ops from many threads into few transactions (one leader at a time).

    Each waiting writer sleeps on its own lock, and a leader wakes exactly the writers whose ops it
    settled, plus (when ops are still queued) the oldest writer waiting among them, to lead the next
    batch: no writer wakes to find it has nothing to do (one thread crossing per writer, not one per
    writer per batch).
    """

    def __init__(self, run_batch: BatchRunner, *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[Ticket] = deque()
        self._leading = False
        self.batches = 0   # transactions run (for tests and the benchmark)
        self.ops = 0       # ops committed or refused through them
        self.wakeups = 0   # sleeping writers woken (for tests and the benchmark)

    def enqueue(self, op: Op) -> Ticket:
        """Queue op; the caller must wait() on the ticket (ops run in enqueue order)."""
        ticket = Ticket(op)
        with self._lock:
            self._queue.append(ticket)
        return ticket

    def wait(self, ticket: Ticket) -> None:
        """Lead batches until ticket is done, or sleep until the leader settles it (or hands over); raise the
        op's error."""
        while True:
            with self._lock:
                if ticket.done:
                    break
                if self._leading:
                    parked = ticket._parked = threading.Lock()
                    parked.acquire()
                    batch = None
                else:
                    self._leading = True
                    batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            if batch is None:
                parked.acquire()  # released by the leader that settles this ticket or hands it the lead
            else:
                self._lead(batch)
        if ticket.error is not None:
            raise ticket.error

    def submit(self, op: Op) -> None:
        """enqueue + wait: durable (or raised) on return."""
        self.wait(self.enqueue(op))

    def _lead(self, batch: list[Ticket]) -> None:
        results: list[BaseException | None]
        try:
            results = self._run_batch([t.op for t in batch]) if batch else []
        except BaseException as exc:  # the whole batch failed: every op in it reports it
            results = [exc] * len(batch)
        with self._lock:
            self.batches += 1 if batch else 0
            self.ops += len(batch)
            for ticket, error in zip(batch, results, strict=True):
                ticket.error, ticket.done = error, True
                self._wake(ticket)
            self._leading = False
            # the next leader: the oldest queued op whose writer sleeps (one not yet waiting leads when it waits)
            for queued in self._queue:
                if self._wake(queued):
                    break

    def _wake(self, ticket: Ticket) -> bool:
        """Wake ticket's writer if it sleeps (lock held)."""
        parked, ticket._parked = ticket._parked, None
        if parked is None:
            return False
        self.wakeups += 1
        parked.release()
        return True
