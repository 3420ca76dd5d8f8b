"""Both record stores (SQLite, PostgreSQL: the `opener` fixture): conditional, durable, thread-safe puts;
sorted listing; the node-local sealed key file; SQLite's WAL and full sync; and a damaged row that only the
enclave notices, for that key alone."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kms.enclave.bridge import StoreConflict
from kms.service.store import DB_NAME, BaseStore, SqliteStore, StoreError

SEALED = "sealed-domain-key"


@pytest.fixture
def store(opener, tmp_path: Path):
    with opener(tmp_path / "data") as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path: Path):
    with SqliteStore(tmp_path / "data") as s:
        yield s


def test_conditional_writes(store: BaseStore) -> None:
    assert store.get("k") is None and store.revision("k") == 0
    store.put("k", 0, 1, b"one")
    with pytest.raises(StoreConflict):
        store.put("k", 0, 1, b"again")  # must not exist
    with pytest.raises(StoreConflict):
        store.put("k", 2, 3, b"stale")  # not the stored revision
    store.put("k", 1, 2, b"two")
    assert store.get("k") == b"two" and store.revision("k") == 2


def test_bad_puts_are_refused(store: BaseStore) -> None:
    for args in (("k", 1, 1, b"x"), ("k", 2, 1, b"x"), ("", 0, 1, b"x"), ("a\nb", 0, 1, b"x"), ("k" * 200, 0, 1, b"")):
        with pytest.raises(StoreError):
            store.put(*args)
    assert store.list("", 10) == []


def test_observer_counts_results(opener, tmp_path: Path) -> None:
    seen: list[str] = []
    with opener(tmp_path, observer=seen.append) as s:
        s.put("k", 0, 1, b"x")
        with pytest.raises(StoreConflict):
            s.put("k", 0, 1, b"x")
        with pytest.raises(StoreError):
            s.put("k", 1, 1, b"x")
    assert seen == ["ok", "conflict", "error"]


def test_wal_and_full_sync(sqlite_store: SqliteStore) -> None:
    store = sqlite_store
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_a_returned_put_survives_a_crash(opener, tmp_path: Path) -> None:
    """The writer dies right after put returns (no close, no checkpoint): the record is on disk."""
    code = ("import os, sys; from tests.service.conftest import open_in_child; s = open_in_child(sys.argv[1]); "
            "s.put('k', 0, 1, b'durable'); s.put('domain-state', 0, 1, b'ds'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=Path(__file__).parents[2],
                   env={**os.environ, **opener.child_env})
    with opener(tmp_path) as s:
        assert s.get("k") == b"durable" and s.revision("k") == 1 and s.get("domain-state") == b"ds"


def test_reopen_keeps_everything(opener, tmp_path: Path) -> None:
    with opener(tmp_path) as s:
        s.put("a", 0, 1, b"1")
        s.put("a", 1, 2, b"2")
    with opener(tmp_path) as s:
        assert s.get("a") == b"2" and s.revision("a") == 2
        with pytest.raises(StoreConflict):
            s.put("a", 1, 2, b"x")


def test_list_sorted_paged_reserved_excluded(store: BaseStore) -> None:
    """Every record is listed (the enclave checks the whole store against its state log), but the
    node-local sealed domain key."""
    names = ["b", "a", "B", "c-1", "c", "domain-state"]
    for name in names:
        store.put(name, 0, 1, name.encode())
    store.put(SEALED, 0, 1, b"sealed")
    assert store.list("", 100) == ["B", "a", "b", "c", "c-1", "domain-state"]  # byte order
    assert store.list("a", 2) == ["b", "c"]
    assert store.list("domain-state", 10) == [] and store.list("", 0) == []


def test_concurrent_writers(store: BaseStore) -> None:
    """Threads bump one counter record with conditional puts (retrying conflicts) and write their own."""
    threads, rounds = 8, 25
    store.put("counter", 0, 1, b"0")

    def worker(n: int) -> None:
        for i in range(rounds):
            store.put(f"own-{n}-{i:03d}", 0, 1, bytes([n]))
            while True:
                rev = store.revision("counter")
                try:
                    store.put("counter", rev, rev + 1, str(rev).encode())
                    break
                except StoreConflict:
                    continue

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert store.revision("counter") == 1 + threads * rounds
    assert len(store.list("own", 10_000)) == threads * rounds


def test_sealed_key_is_an_atomic_file_not_a_row(store: BaseStore) -> None:
    store.put(SEALED, 0, 1, b"sealed-blob")
    path = store.data_dir / "domain-key.sealed"
    assert path.read_bytes() == b"sealed-blob" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get(SEALED) == b"sealed-blob" and store.revision(SEALED) == 1
    assert [p.name for p in store.data_dir.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(StoreConflict):
        store.put(SEALED, 0, 1, b"other")
    with pytest.raises(StoreError):
        store.put(SEALED, 1, 2, b"other")  # one revision only
    assert store.list("", 10) == [] and store._read(lambda r: r.record(SEALED)) is None  # no row, shared or not
    assert path.read_bytes() == b"sealed-blob"


def test_sealed_key_write_interrupted_before_rename_leaves_nothing(store: BaseStore, monkeypatch) -> None:
    def crash(*_args: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.put(SEALED, 0, 1, b"sealed-blob")
    monkeypatch.undo()
    assert store.get(SEALED) is None and store.revision(SEALED) == 0
    store.put(SEALED, 0, 1, b"sealed-blob")  # a retry works
    assert store.get(SEALED) == b"sealed-blob"


def test_a_damaged_row_fails_that_key_only(build, tmp_path: Path) -> None:
    """The store returns what it holds; the enclave refuses the damaged record: RECORD_CORRUPT, that key only."""
    from kms import errors
    from kms.enclave.node import open_node
    from kms.proto.enclave.v1 import boundary_pb2 as pb

    data = tmp_path / "data"

    def create(enclave) -> str:
        return enclave.call(pb.Request(create_key=pb.CreateKeyRequest(
            spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id

    with SqliteStore(data) as store, open_node(data, store=store) as enclave:
        victim, other = create(enclave), create(enclave)
        ct = enclave.call(pb.Request(encrypt=pb.EncryptRequest(key_id=other, plaintext=b"p"))).encrypt.ciphertext
    db = sqlite3.connect(data / DB_NAME)
    blob = bytearray(db.execute("SELECT blob FROM records WHERE key_id = ?", (victim,)).fetchone()[0])
    blob[len(blob) // 2] ^= 0x01
    db.execute("UPDATE records SET blob = ? WHERE key_id = ?", (bytes(blob), victim))
    db.commit()
    db.close()
    with SqliteStore(data) as store, open_node(data, store=store, create=False) as enclave:
        with pytest.raises(errors.StoreError) as info:
            enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=victim)))
        assert info.value.code_name == "KMS_ERR_RECORD_CORRUPT"
        assert enclave.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"p"
        assert enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=other))).key_metadata.key_id == other
