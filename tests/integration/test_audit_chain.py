"""The audit chain end to end: operations in attested sessions produce signed, hash-chained
records appended by the host before the enclave answers; `kms audit verify` checks them against
the audit key bound into the RA-TLS evidence and names the first break for every kind of
tampering; a store that refuses audit writes makes requests fail, not succeed unaudited."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from kms import errors
from kms.audit import audit_key_from_certificate, verify_chain
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import raw_public
from kms.enclave.bridge import Enclave
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.service.store import SqliteStore
from kms.sim.qe import SimQuotingEnclave


@pytest.fixture
def domain(build, tmp_path):
    """An initialized domain on a SQLite store, with an admin session and ten audited operations."""
    data = tmp_path / "data"
    store = SqliteStore(data)
    enclave = Enclave(data, store=store)
    qe = SimQuotingEnclave.open(data)
    cert = install_evidence(enclave, qe).certificate
    sid = enclave.session_open()
    admin = SessionChannel(lambda d: enclave.session_feed(sid, d)[0], Credentials.generate("alice"), cert)
    admin.call(pb.Request(init=pb.InitRequest(admin_name="alice", threshold=1,
                                              recovery_public_keys=[raw_public(x25519.X25519PrivateKey.generate())])))
    kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                               usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    for i in range(4):
        ct = admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"%d" % i))).encrypt.ciphertext
        admin.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct)))
    with pytest.raises(errors.InvalidCiphertext):  # failures are audited too
        admin.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct[:-1] + b"\x00")))
    attested = install_evidence(enclave, qe).certificate  # re-quoted after init: binds the audit key
    yield enclave, store, admin, attested, kid, data
    enclave.close()
    store.close()


def entries(store: SqliteStore) -> list[bytes]:
    return [e for _, e in store.audit_entries()]


def test_chain_verifies_against_the_attested_key(domain) -> None:
    enclave, store, _, cert, kid, _ = domain
    key = audit_key_from_certificate(cert)
    assert key == enclave.identity().audit_public_key
    report = verify_chain(entries(store), key)
    assert report.ok and report.count == 11
    ops = [(r.operation, r.outcome) for r in report.records]
    assert ops[0] == ("init", 0) and ops[1] == ("create_key", 0)
    assert ("decrypt", errors.InvalidCiphertext("", 502).code) in ops
    assert all(r.key_id == kid for r in report.records[1:])
    assert all(len(r.principal) == 32 for r in report.records)  # every record names who asked


@pytest.mark.parametrize("tamper", ["delete", "reorder", "edit", "truncate", "foreign_key"])
def test_every_tampering_is_detected(domain, tamper) -> None:
    _, store, _, cert, _, _ = domain
    chain, key = entries(store), audit_key_from_certificate(cert)
    honest = verify_chain(chain, key)
    expect_head = None
    if tamper == "delete":
        del chain[4]
    elif tamper == "reorder":
        chain[3], chain[4] = chain[4], chain[3]
    elif tamper == "edit":
        entry = pb.AuditEntry.FromString(chain[5])
        record = pb.AuditRecord.FromString(entry.record)
        record.time += 1  # any change to a signed field
        entry.record = record.SerializeToString()
        chain[5] = entry.SerializeToString()
    elif tamper == "truncate":
        chain = chain[:-2]
        expect_head = (honest.head_seq, honest.head_hash)
    else:  # a chain signed by someone else's key, e.g. a forged log
        key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    report = verify_chain(chain, key, expect_head=expect_head)
    assert not report.ok and report.reason
    assert report.broken_at == {"delete": 5, "reorder": 4, "edit": 6, "truncate": 10, "foreign_key": 1}[tamper]


def test_a_store_that_refuses_audit_writes_fails_the_request(domain, monkeypatch) -> None:
    enclave, store, admin, _, kid, _ = domain

    def refuse(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "audit_append", refuse)
    with pytest.raises(errors.StoreError) as exc:
        admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"unaudited")))
    assert exc.value.code_name == "KMS_ERR_AUDIT_UNAVAILABLE"
    monkeypatch.undo()
    assert admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"ok"))).encrypt.key_version == 1
    assert verify_chain(entries(store), enclave.identity().audit_public_key).ok


def test_cli_export_and_verify(domain, tmp_path) -> None:
    _enclave, _store, _, cert, _, data = domain
    (tmp_path / "cert.der").write_bytes(cert)
    out = tmp_path / "audit.jsonl"
    run = lambda *a: subprocess.run([sys.executable, "-m", "kms", "audit", *a], capture_output=True, text=True)  # noqa: E731
    assert run("export", "--data-dir", str(data), "--out", str(out)).returncode == 0
    ok = run("verify", "--file", str(out), "--cert", str(tmp_path / "cert.der"), "--output", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["entries"] == 11
    lines = out.read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    broken = run("verify", "--file", str(tmp_path / "cut.jsonl"), "--cert", str(tmp_path / "cert.der"),
                 "--output", "json")
    assert broken.returncode == 2 and json.loads(broken.stdout)["broken_at"] == 4
