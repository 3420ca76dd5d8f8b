"""The crash test's hostile KMS host: it owns `kms serve` and its store, and at random points of signing it
SIGKILLs the server, replays an older (authentic) `vstate-<key>` row (which the state log refuses, live and at a
restart, so the host puts the current row back after a while), restarts the server on an older
consistent prefix of the whole store, or SIGKILLs the signer process (a crash of the validator's host, which
is not rolled back: its watermark file stays). After a prefix, the signer (whose credentials remember a newer
state head) refuses the KMS until its operator accepts the restore (`accept_restore`: forget the head, restart
the signer), and from then on the watermark alone stands between the rolled-back guard and a double sign.
Seeded, so a failing run can be replayed (KMS_CRASH_SEED)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.validator.harness import Domain

ACTIONS = ("kill", "replay", "prefix", "signer")


class HostileHost:
    """Runs `plan` (a list of ACTIONS) on its own thread; `progress()` counts the positions the node got signed."""

    def __init__(self, domain: Domain, key: str, tmp: Path, seed: int, plan: list[str],
                 progress: Callable[[], int], restart_signer: Callable[[], None],
                 accept_restore: Callable[[], None]) -> None:
        self.domain, self.record, self.tmp, self.plan = domain, f"vstate-{key}", tmp, plan
        self.rng = random.Random(seed)
        self.progress, self.restart_signer, self.accept_restore = progress, restart_signer, accept_restore
        self.rows: list[tuple[int, bytes]] = []
        self.snapshots: list[Path] = []
        self.done: list[str] = []  # what was done, in order (part of every failure message)
        self.refused_starts = 0  # restarts on a replayed row that the server refused
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-host", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _wait_for_progress(self, n: int, timeout: float = 30) -> None:
        goal, deadline = self.progress() + n, time.monotonic() + timeout
        while self.progress() < goal and time.monotonic() < deadline:
            time.sleep(0.002)

    def _keep(self) -> None:
        """What a host can keep at any time: the guard's row as stored now, and a copy of the whole store."""
        self.rows.append(self.domain.server.record(self.record))
        path = self.tmp / f"store-{len(self.snapshots)}.sqlite3"
        self.domain.server.snapshot(path)
        self.snapshots.append(path)

    def _run(self) -> None:
        try:
            for action in self.plan:
                self._wait_for_progress(1)  # signing is going on ...
                self._keep()
                # ... two more positions signed: the validator's watermark is now above everything kept (at most
                # one request is in flight when keeping, so the second new position lies above the kept state)
                self._wait_for_progress(2)
                time.sleep(self.rng.uniform(0, 0.03))  # ... and strike at a random point of the next signature
                getattr(self, f"_{action}")()
                self.done.append(action)
        finally:
            self.finished.set()

    def _kill(self) -> None:
        self.domain.server.kill()
        if self.rng.random() < 0.3:
            time.sleep(self.rng.uniform(0.05, 0.5))  # stay down a while: requests fail meanwhile
        self.domain.server.start()

    def _replay(self) -> None:
        """Put an older authentic row of the guard back while the server runs, and now and then restart the server
        on it. The enclave's state log refuses that row (StaleRecord when read, and the restart stops), so the
        host, to be served at all, puts the current row back after a while and starts the server again."""
        revision, blob = self.rng.choice(self.rows)
        current = self.domain.server.swap_record(self.record, revision, blob)
        time.sleep(self.rng.uniform(0, 0.05))  # signing requests meet the replayed row meanwhile
        if self.rng.random() < 0.5:
            self.domain.server.kill()
            try:
                self.domain.server.start()
            except RuntimeError:
                self.refused_starts += 1  # the start refused the store: the row is older than the state log
            else:
                raise AssertionError("kms serve started on a store with a replayed guard row")
            self.domain.server.put_record(self.record, *current)
            self.domain.server.start()
        else:
            self.domain.server.put_record(self.record, *current)

    def _prefix(self) -> None:
        self.domain.server.restore(self.rng.choice(self.snapshots))
        time.sleep(self.rng.uniform(0, 0.3))  # the signer meets the rolled-back KMS (and refuses it) a while
        self.accept_restore()

    def _signer(self) -> None:
        self.restart_signer()
