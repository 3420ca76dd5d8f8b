"""Replicas share one audit chain (docs/cluster.md, "The audit chain"): concurrent audited requests on three real
replicas race for its next sequence number. A replica whose append lost follows the chain's head and appends after
it, inside the enclave, so no caller sees KMS_ERR_AUDIT_UNAVAILABLE for a race (nor KMS_ERR_CONFLICT for the same
race on the state log, whose commits follow the log and retry likewise): three clients, each pinned to one
replica, create keys at once (create_key is not idempotent: a store failure would be OutcomeUnknown, never retried)
and every call succeeds; the chain verifies and holds every record. Bounded: KMS_AUDIT_RACE_CALLS creates per
client (default 40). The mechanism in isolation, deterministically: enclave/tests/test_audit.c (test_race)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.replicas import Trio, make_trio

CALLS = int(os.environ.get("KMS_AUDIT_RACE_CALLS", "40"))


@pytest.fixture(params=["postgres", "sqlite"])
def trio(build: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Trio]:
    t = make_trio(request, tmp_path / "trio", request.param)
    yield t
    t.stop()


def test_concurrent_audited_requests_on_three_replicas_all_succeed(trio: Trio, tmp_path: Path) -> None:
    clients = [trio.client(target=address, retries=0) for address in trio.addresses]
    created: list[list[str]] = [[] for _ in clients]
    errors: list[BaseException] = []
    start = threading.Barrier(len(clients))

    def run(i: int) -> None:
        start.wait()
        try:
            for _ in range(CALLS):
                created[i].append(clients[i].create_key().key_id)
        except BaseException as exc:   # recorded: the test fails on any
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for c in clients:
        c.close()
    logged = [line for s in trio.servers if s is not None for line in s.lines if "error" in line.lower()]
    assert not errors, (errors, logged[-20:])
    assert [len(c) for c in created] == [CALLS] * len(clients)
    report = trio.audit_verify(tmp_path / "audit.jsonl")
    assert report["ok"], report
    assert report["entries"] >= len(clients) * CALLS, report
