"""A client with several addresses against three real `kms serve` replicas on one PostgreSQL store
(tests/e2e/replicas.py): it spreads its requests over all of them (given as a list, or as one DNS name with a
record per replica), refuses a replica of another domain and never sends it anything, and keeps working when a
replica is stopped mid-run: idempotent requests are retried on another replica without the caller seeing it; a
create_key in flight on the replica that dies gets OutcomeUnknown naming the operation, never a silent second try.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.client import Credentials, KmsClient
from kms.client.errors import OutcomeUnknown, TransportError
from tests.auditor import auditor_public
from tests.e2e.conftest import anchor_for, policy_for, recovery_public
from tests.e2e.replicas import HOSTS, Trio, make_trio
from tests.e2e.server import ServerProcess


@pytest.fixture(scope="module")
def trio(build: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Trio]:
    t = make_trio(request, tmp_path_factory.mktemp("trio"), "postgres")
    yield t
    t.stop()


def served(client: KmsClient) -> list[int]:
    return [int(r["served"]) for r in client.replicas()]   # type: ignore[call-overload]


def test_a_dns_name_with_a_record_per_replica_spreads_the_load(trio: Trio) -> None:
    """One name, three records (an injected resolver answers them; the system's resolves localhost to one): each
    record is a replica, verified and pinned, and each serves requests."""
    def resolver(host: str, port: int, type: int = 0) -> list[tuple]:
        assert host == "kms.test"
        return [(socket.AF_INET6 if ":" in h else socket.AF_INET, socket.SOCK_STREAM, 6, "", (h, port)) for h in HOSTS]

    sessions = [s.session_rpcs() for s in trio.servers]
    with trio.client(target=f"kms.test:{trio.port}", resolver=resolver) as client:
        assert [r["server"] for r in client.replicas()] == trio.addresses
        key = client.create_key().key_id
        for i in range(12):
            assert client.decrypt(client.encrypt(key, b"%d" % i).ciphertext).plaintext == b"%d" % i
        assert all(n >= 5 for n in served(client)), client.replicas()
    assert all(s.session_rpcs() == n + 1 for s, n in zip(trio.servers, sessions, strict=True))   # one session each


def test_a_replica_of_another_domain_is_refused_and_not_used(trio: Trio, tmp_path: Path) -> None:
    """Same platform and signer (its evidence verifies), another domain: refused before any Session."""
    shutil.copytree(trio.root / "n0" / "sgx-sim", tmp_path / "x" / "sgx-sim")
    other = ServerProcess(tmp_path / "x")
    try:
        with KmsClient(other.api, credentials=Credentials.generate("mallory"), policy=policy_for(other),
                       trust_anchor=anchor_for(other), new_domain=True) as c:
            c.init(recovery_public(1), threshold=1, admin_name="mallory", auditor_public_keys=auditor_public())
        before = other.session_rpcs()
        with trio.client(target=",".join([other.api, *trio.addresses])) as client:
            key = client.create_key().key_id
            for _ in range(8):
                client.encrypt(key, b"never to the other domain")
            status = {r["server"]: r for r in client.replicas()}
        assert "not the pinned domain" in str(status[other.api]["refused"]), status
        assert status[other.api]["served"] == 0 and not status[other.api]["up"]
        assert all(status[a]["served"] > 0 for a in trio.addresses), status
        assert other.session_rpcs() == before   # nothing was ever sent to it
    finally:
        other.stop()


def test_a_replica_stopped_mid_run(trio: Trio) -> None:
    """Load on three clients of three addresses; replica 1 is frozen (its sessions stay open, nothing answers)
    and then SIGKILLed. Encrypt/decrypt carry on, retried on another replica; a create_key in flight on replica 1
    (a fourth client whose first address, so first request, is replica 1) raises OutcomeUnknown naming the
    operation and the replica; every other failure a creator sees is OutcomeUnknown too; no key is created twice
    and none acknowledged is lost; the restarted replica serves again."""
    with trio.client() as admin:
        key = admin.create_key().key_id
        before = {k.key_id for k in admin.list_keys()}
    stop, errors, acked, unknown = threading.Event(), [], [], []
    loaders = [trio.client() for _ in range(2)]
    creator = trio.client()
    probe = trio.client(target=",".join([trio.addresses[1], trio.addresses[0], trio.addresses[2]]))
    for c in (*loaders, creator, probe):
        c.connect_all()   # a session to each replica, so that a request can be in flight on the frozen one

    def load(client: KmsClient) -> None:
        while not stop.is_set():
            try:
                assert client.decrypt(client.encrypt(key, b"steady").ciphertext).plaintext == b"steady"
            except Exception as exc:
                errors.append(exc)

    def create(client: KmsClient, once: bool = False) -> None:
        while not stop.is_set():
            try:
                acked.append(client.create_key().key_id)
            except OutcomeUnknown as exc:
                unknown.append(exc)
            except Exception as exc:
                errors.append(exc)
            if once:
                return

    threads = [threading.Thread(target=load, args=(c,)) for c in loaders]
    threads.append(threading.Thread(target=create, args=(creator,)))
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        victim = trio.servers[1]
        assert victim is not None
        os.kill(victim.pid, signal.SIGSTOP)
        in_flight = threading.Thread(target=create, args=(probe, True))
        in_flight.start()
        time.sleep(1.5)   # requests sent to it now wait on an open session
        trio.kill(1)
        in_flight.join(30)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    for c in (*loaders, creator, probe):
        c.close()
    assert not errors, errors
    on_victim = [e for e in unknown if e.server == trio.addresses[1] and isinstance(e.__cause__, TransportError)]
    assert on_victim and all(e.operation == "create_key" for e in unknown), unknown
    assert acked
    trio.start(1)
    with trio.client() as admin:
        after = {k.key_id for k in admin.list_keys()} - before
        assert set(acked) <= after and len(after) <= len(acked) + len(unknown)   # lost none, none twice
        for kid in after:
            admin.describe_key(kid)
        for _ in range(6):   # the restarted replica serves again
            admin.encrypt(key, b"back")
        assert min(served(admin)) >= 1, admin.replicas()
