"""Group commit on both stores: concurrent writers share transactions (fewer transactions than writes),
each gets its own result (a conflict fails that write alone, never its batch), and every write that was
acknowledged survives a SIGKILL of the writing process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from kms.enclave.bridge import StoreConflict
from kms.service.store.base import AuditOp, CommitOp, PutOp

REPO = Path(__file__).resolve().parents[2]


def test_a_batch_fails_only_its_conflicting_ops(opener, tmp_path: Path) -> None:
    with opener(tmp_path / "data") as store:
        store.put("held", 0, 1, b"h1")
        c = store.committer
        ops = [PutOp("new", 0, 1, b"n1"),                             # ok
               PutOp("new", 0, 1, b"again"),                          # conflict: exists now (earlier in the batch)
               PutOp("held", 5, 6, b"stale"),                         # conflict: not the stored revision
               CommitOp(PutOp("held", 0, 1, b"x"), 1, b"log-1"),     # conflict on the record: log entry undone
               CommitOp(PutOp("held", 1, 2, b"h2"), 1, b"log-1b"),   # ok, takes seq 1
               CommitOp(PutOp("other", 0, 1, b"o"), 3, b"log-3"),    # conflict: seq 3 is not the next
               AuditOp(1, b"audit-1"), AuditOp(1, b"audit-dup"), AuditOp(2, b"audit-2")]
        tickets = [c.enqueue(op) for op in ops]
        before = c.batches
        outcomes = []
        for t in tickets:
            try:
                c.wait(t)
                outcomes.append("ok")
            except StoreConflict:
                outcomes.append("conflict")
        assert outcomes == ["ok", "conflict", "conflict", "conflict", "ok", "conflict", "ok", "conflict", "ok"]
        assert c.batches == before + 1  # one transaction for all nine
        assert store.get("new") == b"n1" and store.get("held") == b"h2" and store.get("other") is None
        assert store.state_log_get(1) == b"log-1b" and store.state_log_get(2) is None
        assert store.audit_entries() == [(1, b"audit-1"), (2, b"audit-2")]


def test_an_audit_entry_that_follows_is_kept_only_after_exactly_that_entry(opener, tmp_path: Path) -> None:
    """The enclave queues its records back to back: one that follows another is refused unless that one
    was stored, even when its seq would be the next (another replica took the place)."""
    with opener(tmp_path / "data") as store:
        c = store.committer
        ops = [AuditOp(1, b"theirs-1"), AuditOp(1, b"ours-1"), AuditOp(2, b"ours-2", prev=b"ours-1"),
               AuditOp(2, b"theirs-2", prev=b"theirs-1"), AuditOp(3, b"x", prev=b"nothing")]
        outcomes = []
        for t in [c.enqueue(op) for op in ops]:
            try:
                c.wait(t)
                outcomes.append("ok")
            except StoreConflict:
                outcomes.append("conflict")
        assert outcomes == ["ok", "conflict", "conflict", "ok", "conflict"]
        assert store.audit_entries() == [(1, b"theirs-1"), (2, b"theirs-2")]


def test_concurrent_writers_each_get_their_own_result_in_fewer_transactions(opener, tmp_path: Path) -> None:
    threads, rounds = 16, 15
    with opener(tmp_path / "data") as store:
        store.put("contended", 0, 1, b"0")
        results: dict[int, list[str]] = {}
        start = threading.Barrier(threads)

        def worker(n: int) -> None:
            mine = results.setdefault(n, [])
            start.wait()
            for i in range(rounds):
                store.put(f"own-{n:02d}", i, i + 1, b"%d" % i)  # never conflicts: only this thread writes it
                if i == 0:  # every thread tries revision 2 of one record: exactly one wins
                    try:
                        store.put("contended", 1, 2, b"%d" % n)
                        mine.append("won")
                    except StoreConflict:
                        mine.append("lost")

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120)
        wins = [n for n, r in results.items() if "won" in r]
        assert len(wins) == 1 and sum(r.count("lost") for r in results.values()) == threads - 1
        assert store.get("contended") == b"%d" % wins[0]
        for n in range(threads):
            assert store.revision(f"own-{n:02d}") == rounds
        c = store.committer
        assert c.ops == 1 + threads * rounds + threads
        assert c.batches < c.ops, f"no batching: {c.batches} transactions for {c.ops} writes"


CHILD = """
import os, sys, threading
from tests.service.conftest import open_in_child
store = open_in_child(sys.argv[1])
def worker(n):
    for i in range(100000):
        store.put(f"k-{n}-{i}", 0, 1, b"v")
        os.write(1, f"k-{n}-{i}\\n".encode())  # acknowledged: durable (one write per line: no interleaving)
for n in range(8):
    threading.Thread(target=worker, args=(n,), daemon=True).start()
threading.Event().wait()
"""


def test_every_acknowledged_write_survives_sigkill(opener, tmp_path: Path) -> None:
    data = tmp_path / "data"
    opener(data).close()  # create the schema first
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **opener.child_env})
    acked: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:  # a bounded load: killed after 300 acknowledgements
        acked.append(line.strip())
        if len(acked) >= 300 or time.monotonic() > deadline:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    acked += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    assert len(acked) >= 300
    with opener(data) as store:
        missing = [k for k in acked if store.revision(k) != 1]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"


def test_a_leader_wakes_only_the_writers_it_settled_and_one_next_leader() -> None:
    """Writers queued behind a running batch sleep; when it ends, one of them is woken to lead their batch and
    wakes the others with their results: one wake-up per sleeping writer, none to find nothing to do."""
    from kms.service.store.group import GroupCommitter

    go, seen = threading.Event(), []

    def run_batch(ops):
        if not seen:
            assert go.wait(30)
        seen.append(list(ops))
        return [StoreConflict("odd") if op % 2 else None for op in ops]

    c = GroupCommitter(run_batch)
    outcomes: dict[int, str] = {}

    def writer(op: int) -> None:
        try:
            c.wait(tickets[op])
            outcomes[op] = "ok"
        except StoreConflict:
            outcomes[op] = "conflict"

    tickets = {0: c.enqueue(0)}
    leader = threading.Thread(target=writer, args=(0,))
    leader.start()
    while not c._leading:
        time.sleep(0.001)
    tickets.update({op: c.enqueue(op) for op in range(1, 6)})
    followers = [threading.Thread(target=writer, args=(op,)) for op in range(1, 6)]
    for t in followers:
        t.start()
    deadline = time.monotonic() + 30
    while not all(tickets[op]._parked for op in range(1, 6)) and time.monotonic() < deadline:
        time.sleep(0.001)
    go.set()
    for t in [leader, *followers]:
        t.join(30)
    assert seen == [[0], [1, 2, 3, 4, 5]]
    assert outcomes == {0: "ok", 1: "conflict", 2: "ok", 3: "conflict", 4: "ok", 5: "conflict"}
    assert c.batches == 2 and c.wakeups == 5  # notify_all would have woken all five, then the four again
