"""Group commit of the audit chain, in process on the real enclave build and a real SQLite store:
concurrent audited requests from several threads (one attested session each) share transactions, so
the store runs fewer transactions than requests, and each request is answered only once its own
record is durable; an injected store failure refuses the requests whose records it hit (never an
unaudited answer), the next record re-reads the head, and the chain has no gap or fork."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.audit import AuditorKey, verify_chain
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.integration.test_audit_chain import Domain, _session

THREADS, ROUNDS = 6, 8


@pytest.fixture
def domain(build, tmp_path):
    d = Domain(tmp_path / "data", AuditorKey(x25519.X25519PrivateKey.generate()))
    yield d
    d.close()


def _slow_disk(domain: Domain, monkeypatch, fail: list[int] | None = None) -> list[int]:
    """Each transaction takes 5 ms more (a slow flush), so that requests overlap on 2 cores; while
    fail[0] > 0, the next transaction fails as a full disk would (and counts it down). Returns the
    sizes of the batches run."""
    real, sizes, lock = domain.store._transact, [], threading.Lock()

    def transact(ops):
        time.sleep(0.005)
        with lock:
            failing = fail is not None and fail[0] > 0
            if failing:
                fail[0] -= 1
        if failing:
            raise sqlite3.OperationalError("database or disk is full")
        sizes.append(len(ops))
        return real(ops)

    monkeypatch.setattr(domain.store, "_transact", transact)
    return sizes


def _run(domain: Domain, worker) -> list[list[object]]:
    """worker(session, thread number, round) in THREADS threads, ROUNDS rounds each: outcomes per thread."""
    sessions = [_session(domain.enclave, domain.creds, domain.cert) for _ in range(THREADS)]
    outcomes: list[list[object]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def run(n: int) -> None:
        start.wait()
        for i in range(ROUNDS):
            try:
                outcomes[n].append(worker(sessions[n], n, i))
            except errors.KmsError as exc:
                outcomes[n].append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def _encrypt(session, n: int, i: int, kid: str) -> bytes:
    resp = session.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"%d-%d" % (n, i))))
    return resp.encrypt.ciphertext


def test_concurrent_requests_share_transactions_and_each_record_is_durable(domain, monkeypatch) -> None:
    sizes = _slow_disk(domain, monkeypatch)
    before, batches = len(domain.entries()), domain.store.committer.batches
    outcomes = _run(domain, lambda s, n, i: _encrypt(s, n, i, domain.kid))
    requests = THREADS * ROUNDS
    assert all(isinstance(o, bytes) for row in outcomes for o in row)
    ran = domain.store.committer.batches - batches
    assert ran < requests and max(sizes) > 1, (ran, sizes)  # shared flushes
    entries = domain.entries()
    assert len(entries) == before + requests  # one durable record per answered request
    report = verify_chain(entries, domain.enclave.identity().audit_public_key, auditor_key=domain.auditor)
    assert report.ok and [b.operation for b in report.bodies[before:]] == ["encrypt"] * requests


def test_a_failed_flush_refuses_its_requests_and_the_chain_has_no_gap(domain, monkeypatch) -> None:
    fail = [0]
    _slow_disk(domain, monkeypatch, fail)
    before = len(domain.entries())

    def worker(session, n: int, i: int) -> bytes:
        if n == 0 and i == 2:
            # the disk is full for the next 12 transactions, with other threads' records queued: the enclave
            # tries a record a failing store refused once more (audit.c), so a request whose two tries
            # both fall in them is refused; one whose second try comes after is answered, audited
            fail[0] = 12
        return _encrypt(session, n, i, domain.kid)

    outcomes = _run(domain, worker)
    ok = [o for row in outcomes for o in row if isinstance(o, bytes)]
    refused = [o for row in outcomes for o in row if not isinstance(o, bytes)]
    assert refused and all(getattr(e, "code_name", "") == "KMS_ERR_AUDIT_UNAVAILABLE" for e in refused), refused
    entries = domain.entries()
    assert len(entries) == before + len(ok)  # every answered request is audited, no refused one is
    report = verify_chain(entries, domain.enclave.identity().audit_public_key, auditor_key=domain.auditor)
    assert report.ok  # numbered and chained without a gap or a fork across the failure
    assert domain.call(encrypt=pb.EncryptRequest(key_id=domain.kid, plaintext=b"after")).encrypt.key_version == 1
