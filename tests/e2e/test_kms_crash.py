"""Crash safety: several clients create keys, rotate them, encrypt and move aliases concurrently while the
real server is killed with SIGKILL at random points and restarted on the same data directory (bounded:
KMS_E2E_CRASH_SECONDS, default 20 s, about ten kills). Afterwards every acknowledged change is present
(created keys exist, rotations are at least the acknowledged version, every acknowledged ciphertext
decrypts, each alias names its last acknowledged key or a later unacknowledged one), every stored key
record still decrypts and works, and the audit chain verifies. The server runs with group commit (the
default): concurrent requests' audit records and state changes share flushes, and each request is
answered only after its own records are durable, so every acknowledged encrypt's audit record (found
by its unique context) is in the chain after the kills."""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kms import errors
from kms.audit import context_hash, verify_chain
from kms.client import ClientClosed, Credentials, KmsClient, TransportError, VerificationFailed
from kms.service.store import SqliteStore
from tests.auditor import AUDITOR, auditor_public
from tests.e2e.conftest import anchor_for, policy_for, recovery_public
from tests.e2e.server import ServerProcess

SECONDS = float(os.environ.get("KMS_E2E_CRASH_SECONDS", "20"))
CLIENTS = 6  # enough concurrent requests that group commit batches them
MAX_VERSIONS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ledger:
    """What one client was told: only acknowledged results count; unknown outcomes may go either way."""

    alias: str
    versions: dict[str, int] = field(default_factory=dict)          # key -> acknowledged version (lower bound)
    encrypted: list[tuple[bytes, bytes, dict[str, str]]] = field(default_factory=list)
    alias_acked: str = ""
    alias_pending: set[str] = field(default_factory=set)            # targets of unacknowledged moves since
    acked: int = 0
    unknown: int = 0
    refused: int = 0
    failure: BaseException | None = None


def _step(client: KmsClient, ledger: Ledger, rng: random.Random) -> None:
    keys = list(ledger.versions)
    roll = rng.random()
    if roll < 0.1:
        ledger.versions[client.create_key(description="crash").key_id] = 1
    elif roll < 0.25:
        candidates = [k for k in keys if ledger.versions[k] < MAX_VERSIONS]
        if not candidates:
            return
        key = rng.choice(candidates)
        try:
            info = client.rotate_key(key)
        except errors.KeyStateError:  # an unacknowledged rotation filled the key up: a definite refusal
            ledger.versions[key] = MAX_VERSIONS
            raise
        ledger.versions[key] = max(ledger.versions[key], info.current_version)
    elif roll < 0.75:
        plaintext, context = os.urandom(rng.randint(1, 256)), {"client": ledger.alias, "n": str(rng.random())}
        ct = client.encrypt(rng.choice(keys), plaintext, context).ciphertext
        ledger.encrypted.append((ct, plaintext, context))
    else:
        target = rng.choice(keys)
        ledger.alias_pending.add(target)  # until acknowledged, the move may or may not have happened
        client.update_alias(ledger.alias, target)
        ledger.alias_acked, ledger.alias_pending = target, set()
    ledger.acked += 1


def _worker(target: str, server: ServerProcess, creds: Credentials, ledger: Ledger, stop: threading.Event,
            seed: int) -> None:
    rng = random.Random(seed)
    try:
        with KmsClient(target, credentials=creds, policy=policy_for(server), trust_anchor=anchor_for(server),
                       retries=6, backoff=0.05, max_backoff=0.5, timeout=10) as client:
            while not stop.is_set():
                try:
                    _step(client, ledger, rng)
                except (TransportError, ClientClosed):  # OutcomeUnknown included: either way is allowed
                    ledger.unknown += 1
                    time.sleep(0.1)
                except errors.EnclaveFailure:
                    ledger.refused += 1
    except VerificationFailed as exc:
        ledger.failure = exc
    except BaseException as exc:
        ledger.failure = exc


@pytest.mark.slow
def test_sigkill_during_concurrent_changes_loses_nothing_acknowledged(build: Path, tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    listen = f"--listen=127.0.0.1:{port}"
    server = ServerProcess(data, listen, log_level="info")
    creds = Credentials.generate("alice")
    ledgers = [Ledger(alias=f"alias/crash-{n}") for n in range(CLIENTS)]
    with KmsClient(server.api, credentials=creds, policy=policy_for(server), trust_anchor=anchor_for(server),
                   new_domain=True) as c:
        c.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
        for ledger in ledgers:  # acknowledged before the chaos: one key and the alias on it
            key = c.create_key().key_id
            ledger.versions[key] = 1
            c.create_alias(ledger.alias, key)
            ledger.alias_acked = key
    stop, rng, kills = threading.Event(), random.Random(), 0
    threads = [threading.Thread(target=_worker, args=(server.api, server, creds, ledger, stop, n))
               for n, ledger in enumerate(ledgers)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.6, 1.6))
            os.kill(server.pid, signal.SIGKILL)
            server.proc.wait(10)
            kills += 1
            server = ServerProcess(data, listen, log_level="info")
        time.sleep(1.0)  # let the clients reconnect and get some changes acknowledged on the last server
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        assert not any(t.is_alive() for t in threads)
        assert all(ledger.failure is None for ledger in ledgers), [ledger.failure for ledger in ledgers]
        acked, unknown = sum(x.acked for x in ledgers), sum(x.unknown for x in ledgers)
        print(f"{kills} kills; {acked} changes acknowledged, {unknown} outcomes unknown, "
              f"{sum(x.refused for x in ledgers)} refused; {sum(len(x.encrypted) for x in ledgers)} ciphertexts")
        assert kills >= 5 and acked >= 50, (kills, ledgers)
        audit_key = _check(server, creds, ledgers)
    finally:
        assert server.stop() == 0
    with SqliteStore(data) as store:
        chain = [e for _, e in store.audit_entries(limit=10**6)]
    report = verify_chain(chain, audit_key, auditor_key=AUDITOR)
    assert report.ok, report.reason
    assert None not in report.bodies  # every body opens for the auditor, across every crash and restart
    audited = {b.context_hash for b in report.bodies if b is not None and b.operation == "encrypt" and b.outcome == 0}
    for ledger in ledgers:  # answered only once durable: every acknowledged encrypt's record survived the kills
        assert all(context_hash(context) in audited for _, _, context in ledger.encrypted), ledger.alias


def _check(server: ServerProcess, creds: Credentials, ledgers: list[Ledger]) -> bytes:
    """Every acknowledged change is there and every key works; returns the domain's audit key."""
    with KmsClient(server.api, credentials=creds, policy=policy_for(server), trust_anchor=anchor_for(server)) as c:
        aliases = c.list_aliases()
        for ledger in ledgers:
            for key, version in ledger.versions.items():
                info = c.describe_key(key)  # every acknowledged create survived
                assert info.current_version >= version, (key, info.current_version, version)
            for ct, plaintext, context in ledger.encrypted:
                assert c.decrypt(ct, context).plaintext == plaintext  # every acknowledged encrypt decrypts
            assert aliases[ledger.alias] in {ledger.alias_acked} | ledger.alias_pending, ledger.alias
        for info in c.list_keys():  # every stored key record opens and works, acknowledged or not
            assert info.state == "ENABLED" and 1 <= info.current_version <= MAX_VERSIONS
            assert c.decrypt(c.encrypt(info.key_id, b"alive").ciphertext).plaintext == b"alive"
        return c.identity().audit_public_key
