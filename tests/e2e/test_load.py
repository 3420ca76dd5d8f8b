"""64 concurrent sessions (one KmsClient per thread) doing mixed operations against the real server for
a bounded time: no errors, correct results, the server's memory flat (VmRSS samples)."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time

import pytest

from kms import errors
from tests.e2e.conftest import client_for

SESSIONS = 64
SECONDS = float(os.environ.get("KMS_E2E_LOAD_SECONDS", "20"))


@pytest.mark.slow
def test_64_sessions_mixed_operations(server, admin, admin_creds) -> None:
    aes, ed, p256 = admin.create_key(), admin.create_key("ED25519"), admin.create_key("ECC_NIST_P256")
    hmac = admin.create_key("HMAC_SHA_256")
    shared_ct = admin.encrypt(aes.key_id, b"shared secret", {"k": "v"}).ciphertext
    clients = [client_for(server, admin_creds) for _ in range(SESSIONS)]  # one session each
    stop = threading.Event()
    ready = threading.Barrier(SESSIONS + 1)
    counts = [0] * SESSIONS
    failures: list[str] = []

    def worker(n: int) -> None:
        client, rng = clients[n], random.Random(n)
        ready.wait()
        try:
            while not stop.is_set():
                op = rng.randrange(6)
                data = secrets.token_bytes(rng.randrange(1, 2048))
                if op == 0:
                    ct = client.encrypt(aes.key_id, data, {"n": str(n)}).ciphertext
                    assert client.decrypt(ct, {"n": str(n)}).plaintext == data
                elif op == 1:
                    assert client.decrypt(shared_ct, {"k": "v"}).plaintext == b"shared secret"
                elif op == 2:
                    key = ed if rng.random() < 0.5 else p256
                    assert client.verify(key.key_id, signature=client.sign(key.key_id, data).signature, message=data)
                elif op == 3:
                    mac = client.generate_mac(hmac.key_id, data).mac
                    assert client.verify_mac(hmac.key_id, data, mac)
                elif op == 4:
                    with pytest.raises(errors.InvalidCiphertext):
                        client.decrypt(shared_ct, {"k": "wrong"})
                else:
                    assert client.describe_key(aes.key_id).key_id == aes.key_id
                    assert len(client.generate_random(32)) == 32
                counts[n] += 1
        except BaseException as exc:
            failures.append(f"session {n}: {type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(SESSIONS)]
    for t in threads:
        t.start()
    samples: list[tuple[float, int]] = []
    try:
        ready.wait(60)
        start = time.monotonic()
        while time.monotonic() - start < SECONDS and not stop.is_set():
            samples.append((time.monotonic() - start, server.rss_kib()))
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
    assert not failures, failures[:5]
    assert all(counts), f"some sessions made no progress: {counts}"
    assert all(c.connects == 1 for c in clients), "a session had to reconnect"
    total = sum(counts)
    # Memory: after a warm-up quarter, the server's RSS stays flat (generous bound: +16 MiB or +15%).
    warm = [rss for t, rss in samples if t >= SECONDS / 4]
    baseline, peak = warm[0], max(warm)
    late = sorted(warm[len(warm) // 2:])
    print(f"\n{SESSIONS} sessions, {SECONDS:g} s: {total} operations ({total / SECONDS:.0f}/s); "
          f"server RSS {samples[0][1] // 1024} MiB at start, {baseline // 1024} after warm-up, "
          f"peak {peak // 1024}, end {warm[-1] // 1024}")
    assert peak - baseline <= max(16 * 1024, baseline * 0.15), samples
    assert late[len(late) // 2] - baseline <= max(8 * 1024, baseline * 0.10), samples
