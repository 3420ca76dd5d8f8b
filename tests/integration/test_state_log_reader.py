"""The state log read in C: with a SQLite store the bridge answers the enclave's state_log_get OCALL (the head
read before every audited request) from the store's file itself, without Python. What it hands the enclave is
still untrusted host data: a head altered in the file is refused, and put back it is accepted again, so every
request reads the file afresh (what another replica appends is seen at once). Any other store keeps the OCALL
in Python."""

from __future__ import annotations

import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.audit import AuditorKey
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.store import SqliteStore
from tests.integration.test_audit_chain import Domain


@pytest.fixture
def domain(build, tmp_path):
    d = Domain(tmp_path / "data", AuditorKey(x25519.X25519PrivateKey.generate()))
    yield d
    d.close()


def _encrypt(domain: Domain) -> bytes:
    return domain.call(encrypt=pb.EncryptRequest(key_id=domain.kid, plaintext=b"x")).encrypt.ciphertext


def test_requests_read_the_head_without_python(domain, monkeypatch) -> None:
    assert domain.enclave.reads_state_log_directly

    def refuse(seq: int) -> bytes | None:
        raise AssertionError("state_log_get reached Python")

    monkeypatch.setattr(domain.store, "state_log_get", refuse)
    assert _encrypt(domain)  # audited, so the head was read
    domain.call(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))  # a new head
    assert _encrypt(domain)


def test_a_head_altered_in_the_file_is_refused_and_every_request_reads_it_again(domain) -> None:
    db = sqlite3.connect(domain.store.path, isolation_level=None)
    try:
        seq, entry = db.execute("SELECT seq, entry FROM state_log ORDER BY seq DESC LIMIT 1").fetchone()
        forged = entry[:-1] + bytes([entry[-1] ^ 1])
        db.execute("UPDATE state_log SET entry = ? WHERE seq = ?", (forged, seq))
        with pytest.raises(errors.StaleRecord):
            _encrypt(domain)
        db.execute("UPDATE state_log SET entry = ? WHERE seq = ?", (entry, seq))
        assert _encrypt(domain)
        db.execute("DELETE FROM state_log WHERE seq = ?", (seq,))  # a head behind the enclave's
        with pytest.raises(errors.StaleRecord):
            _encrypt(domain)
    finally:
        db.close()


class _OwnReads(SqliteStore):
    def state_log_get(self, seq: int) -> bytes | None:
        return super().state_log_get(seq)


@pytest.mark.parametrize("store", ["memory", "subclass"])
def test_other_stores_keep_the_ocall_in_python(build, tmp_path, store) -> None:
    backing = MemoryStore() if store == "memory" else _OwnReads(tmp_path / "data")
    enclave = Enclave(tmp_path / "data", store=backing)
    try:
        assert not enclave.reads_state_log_directly
    finally:
        enclave.close()
        if store == "subclass":
            backing.close()
