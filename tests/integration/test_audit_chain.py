"""The audit chain end to end, in process on the real enclave build: operations in attested sessions produce
signed, hash-chained records appended by the host before the enclave answers; `kms audit verify` checks
them against the audit key bound into the RA-TLS evidence, without any secret, and names the first break
for every kind of tampering (the public part, the sealed body, the sealed epoch keys); what each record
says is sealed to the domain's auditors, opens with an auditor's key (pyca's HPKE on what the enclave
sealed), and follows the auditors an admin sets; a store that refuses audit writes makes requests fail,
not succeed unaudited."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from kms import errors
from kms.audit import AuditorKey, audit_key_from_certificate, context_hash, verify_chain
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import raw_public
from kms.enclave.bridge import Enclave
from kms.enclave.node import open_node
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.service.store import SqliteStore
from kms.sim.qe import SimQuotingEnclave

CONTEXT = {"tenant": "acme", "purpose": "audit-test"}


def _ctx() -> list[pb.ContextEntry]:
    return [pb.ContextEntry(key=k.encode(), value=v.encode()) for k, v in CONTEXT.items()]


def _session(enclave: Enclave, creds: Credentials, cert: bytes) -> SessionChannel:
    sid = enclave.session_open()
    return SessionChannel(lambda d: enclave.session_feed(sid, d)[0], creds, cert)


def _init(admin: SessionChannel, **kw) -> pb.InitResponse:
    return admin.call(pb.Request(init=pb.InitRequest(
        admin_name="alice", threshold=1, recovery_public_keys=[raw_public(x25519.X25519PrivateKey.generate())],
        **kw))).init


class Domain:
    """An initialized domain on a SQLite store: an admin session, its auditor, ten audited operations."""

    def __init__(self, data, auditor: AuditorKey | None) -> None:
        self.data, self.auditor = data, auditor
        self.store = SqliteStore(data)
        self.enclave = Enclave(data, store=self.store)
        self.qe = SimQuotingEnclave.open(data)
        self.creds = Credentials.generate("alice")
        self.admin = _session(self.enclave, self.creds, install_evidence(self.enclave, self.qe).certificate)
        if auditor is None:
            _init(self.admin, audit_bodies_in_clear_insecure=True)
        else:
            _init(self.admin, auditor_public_keys=[auditor.public])
        self.kid = self.call(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)
                             ).key_metadata.key_id
        for i in range(4):
            ct = self.call(encrypt=pb.EncryptRequest(key_id=self.kid, plaintext=b"%d" % i, context=_ctx()))
            self.call(decrypt=pb.DecryptRequest(ciphertext=ct.encrypt.ciphertext, context=_ctx()))
        with pytest.raises(errors.InvalidCiphertext):  # failures are audited too
            bad = ct.encrypt.ciphertext[:-1] + bytes([ct.encrypt.ciphertext[-1] ^ 1])  # not "set to 0": it may be 0
            self.call(decrypt=pb.DecryptRequest(ciphertext=bad, context=_ctx()))
        self.cert = install_evidence(self.enclave, self.qe).certificate  # re-quoted after init: binds the audit key

    def call(self, **op) -> pb.Response:
        return self.admin.call(pb.Request(**op))

    def entries(self) -> list[bytes]:
        return [e for _, e in self.store.audit_entries()]

    def close(self) -> None:
        self.enclave.close()
        self.store.close()


@pytest.fixture
def domain(build, tmp_path):
    d = Domain(tmp_path / "data", AuditorKey(x25519.X25519PrivateKey.generate()))
    yield d
    d.close()


def test_chain_verifies_and_the_auditor_reads_it(domain) -> None:
    key = audit_key_from_certificate(domain.cert)
    assert key == domain.enclave.identity().audit_public_key
    public = verify_chain(domain.entries(), key)  # no secret: complete and intact, nothing readable
    assert public.ok and public.count == 11 and public.bodies == [None] * 11
    assert public.epochs == [(1, [domain.auditor.public])] and public.clear_bodies == 0
    report = verify_chain(domain.entries(), key, auditor_key=domain.auditor)
    assert report.ok and None not in report.bodies
    ops = [(b.operation, b.outcome) for b in report.bodies]
    assert ops[0] == ("init", 0) and ops[1] == ("create_key", 0)
    assert ("decrypt", errors.InvalidCiphertext("", 502).code) in ops
    assert all(b.key_id == domain.kid for b in report.bodies[1:])
    assert all(b.principal == domain.creds.principal_id for b in report.bodies)  # every record names who asked
    assert {b.context_hash for b in report.bodies[2:]} == {context_hash(CONTEXT)}  # encrypt/decrypt with context
    assert report.bodies[0].context_hash == b"" and report.bodies[1].key_version == 1
    other = AuditorKey(x25519.X25519PrivateKey.generate())  # not an auditor of this domain: reads nothing
    assert verify_chain(domain.entries(), key, auditor_key=other).bodies == [None] * 11


def _resign(chain: list[bytes], signer: ed25519.Ed25519PrivateKey) -> list[bytes]:
    out = []
    for raw in chain:
        entry = pb.AuditEntry.FromString(raw)
        entry.signature = signer.sign(entry.record)
        out.append(entry.SerializeToString())
    return out


def _edit(raw: bytes, change) -> bytes:
    entry = pb.AuditEntry.FromString(raw)
    record = pb.AuditRecord.FromString(entry.record)
    change(record)
    entry.record = record.SerializeToString()
    return entry.SerializeToString()


def _flip_body(r: pb.AuditRecord) -> None:
    r.sealed_body = r.sealed_body[:5] + bytes([r.sealed_body[5] ^ 1]) + r.sealed_body[6:]


def _flip_envelope(r: pb.AuditRecord) -> None:
    k = r.epoch_keys[0]
    k.sealed_key = k.sealed_key[:40] + bytes([k.sealed_key[40] ^ 1]) + k.sealed_key[41:]


def _tampered(chain: list[bytes], tamper: str) -> list[bytes]:
    c = list(chain)
    if tamper == "delete":
        del c[4]
    elif tamper == "reorder":
        c[3], c[4] = c[4], c[3]
    elif tamper == "edit_time":  # any change to a public field
        c[5] = _edit(c[5], lambda r: setattr(r, "time", r.time + 1))
    elif tamper == "edit_body":  # one bit of the sealed body
        c[5] = _edit(c[5], _flip_body)
    elif tamper == "edit_epoch_key":  # one bit of the epoch key sealed to the auditor
        c[0] = _edit(c[0], _flip_envelope)
    elif tamper == "swap_bodies":  # another record's (valid) sealed body
        other = pb.AuditRecord.FromString(pb.AuditEntry.FromString(c[6]).record).sealed_body
        c[5] = _edit(c[5], lambda r: setattr(r, "sealed_body", other))
    elif tamper == "edit_epoch":
        c[5] = _edit(c[5], lambda r: setattr(r, "epoch", 2))
    elif tamper == "truncate":
        c = c[:-2]
    return c  # foreign_key: the chain as it is, checked against another key


TAMPERING = {"delete": 5, "reorder": 4, "edit_time": 6, "edit_body": 6, "edit_epoch_key": 1, "swap_bodies": 6,
             "edit_epoch": 6, "truncate": 10, "foreign_key": 1}  # where verification must break


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
def test_every_tampering_is_detected_without_a_secret(domain, tamper) -> None:
    chain, key = domain.entries(), audit_key_from_certificate(domain.cert)
    honest = verify_chain(chain, key)
    where = TAMPERING[tamper]
    expect_head = (honest.head_seq, honest.head_hash) if tamper == "truncate" else None
    if tamper == "foreign_key":  # a chain signed by someone else's key, e.g. a forged log
        key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for auditor in (None, domain.auditor):  # the public verification catches it; the auditor's does too
        report = verify_chain(_tampered(chain, tamper), key, expect_head=expect_head, auditor_key=auditor)
        assert not report.ok and report.reason and report.broken_at == where, (tamper, report)


@pytest.mark.parametrize("part", ["body", "epoch_key", "epoch"])
def test_the_auditor_detects_a_resigned_forgery(domain, part) -> None:
    """Even someone holding a signing key (here: a re-signed copy) cannot alter what a record says: the
    body and the epoch keys are authenticated encryption bound to the record's public part."""
    forger = ed25519.Ed25519PrivateKey.generate()
    fpub = forger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    chain = domain.entries()
    last = len(chain) - 1  # the last record: changing its bytes breaks no later prev hash
    if part == "body":
        chain[last] = _edit(chain[last], _flip_body)
    elif part == "epoch":  # a body moved to another record keeps its bytes but not its AAD
        chain[last] = _edit(chain[last], lambda r: setattr(r, "time", r.time + 60))
    else:
        chain = [_edit(chain[0], _flip_envelope)]
    forged = _resign(chain, forger)
    assert verify_chain(forged, fpub).ok  # the signature alone says nothing about who signed it
    report = verify_chain(forged, fpub, auditor_key=domain.auditor)
    assert not report.ok and report.broken_at == len(chain), report


def test_auditors_are_replaced_by_admins_and_the_change_is_in_the_chain(domain) -> None:
    old, new = domain.auditor, AuditorKey(x25519.X25519PrivateKey.generate())
    bob = Credentials.generate("bob")
    domain.call(add_principal=pb.AddPrincipalRequest(principal_id=bob.principal_id, name="bob", role=pb.USER))
    user = _session(domain.enclave, bob, domain.cert)
    with pytest.raises(errors.PermissionDenied):  # users may not choose who reads the log
        user.call(pb.Request(set_auditors=pb.SetAuditorsRequest(auditor_public_keys=[new.public])))
    for bad, exc in (([], errors.InvalidRequest), ([bytes(32)], errors.InvalidKey),  # nobody; a low-order point
                     ([new.public, new.public], errors.InvalidRequest), ([b"short"], errors.InvalidKey)):
        with pytest.raises(exc):
            domain.call(set_auditors=pb.SetAuditorsRequest(auditor_public_keys=bad))
    r = domain.call(set_auditors=pb.SetAuditorsRequest(auditor_public_keys=[new.public]))
    assert list(r.auditors.auditor_public_keys) == [new.public]
    domain.call(encrypt=pb.EncryptRequest(key_id=domain.kid, plaintext=b"after"))
    key = audit_key_from_certificate(domain.cert)
    by_old = verify_chain(domain.entries(), key, auditor_key=old)
    by_new = verify_chain(domain.entries(), key, auditor_key=new)
    assert by_old.ok and by_new.ok
    assert by_old.epochs == [(1, [old.public]), (by_old.count - 1, [new.public])]  # public: who reads from when
    switch = by_old.count - 1  # the set_auditors record opened the new epoch
    assert None not in by_old.bodies[:switch - 1] and by_old.bodies[switch - 1:] == [None, None]
    assert by_new.bodies[:switch - 1] == [None] * (switch - 1)
    said = [(b.operation, b.outcome) for b in by_new.bodies[switch - 1:]]
    assert said == [("set_auditors", 0), ("encrypt", 0)]
    refused = [b for b in by_old.bodies if b is not None and b.operation == "set_auditors"]
    assert [b.outcome for b in refused] == [701, 201, 504, 201, 504]  # every refusal is on the record too


def test_a_restart_opens_a_new_epoch_and_every_body_still_opens(domain) -> None:
    domain.enclave.close()
    domain.enclave = open_node(domain.data, store=domain.store, create=False)
    domain.admin = _session(domain.enclave, domain.creds, install_evidence(domain.enclave, domain.qe).certificate)
    domain.call(encrypt=pb.EncryptRequest(key_id=domain.kid, plaintext=b"after a restart"))
    report = verify_chain(domain.entries(), audit_key_from_certificate(domain.cert), auditor_key=domain.auditor)
    assert report.ok and None not in report.bodies
    assert [seq for seq, _ in report.epochs] == [1, 12] and report.bodies[-1].operation == "encrypt"


def test_init_without_an_auditor_is_refused(build, tmp_path) -> None:
    enclave = Enclave(tmp_path / "data", store=SqliteStore(tmp_path / "data"))
    try:
        cert = install_evidence(enclave, SimQuotingEnclave.open(tmp_path / "data")).certificate
        admin = _session(enclave, Credentials.generate("alice"), cert)
        auditor = AuditorKey(x25519.X25519PrivateKey.generate())
        for kw in ({}, {"auditor_public_keys": [bytes(32)]},  # nobody; a low-order point
                   {"auditor_public_keys": [auditor.public], "audit_bodies_in_clear_insecure": True}):
            with pytest.raises((errors.InvalidRequest, errors.InvalidKey)):
                _init(admin, **kw)
        assert not enclave.identity().domain_loaded  # refused before anything was created
        assert _init(admin, auditor_public_keys=[auditor.public]).domain_id
    finally:
        enclave.close()


def test_clear_bodies_only_by_choice_and_only_until_auditors_are_set(build, tmp_path) -> None:
    d = Domain(tmp_path / "data", None)
    try:
        key = audit_key_from_certificate(d.cert)
        report = verify_chain(d.entries(), key)
        assert report.ok and report.clear_bodies == 11 and report.epochs == []
        assert report.bodies[1].operation == "create_key" and report.bodies[1].key_id == d.kid  # the host reads it
        auditor = AuditorKey(x25519.X25519PrivateKey.generate())
        d.call(set_auditors=pb.SetAuditorsRequest(auditor_public_keys=[auditor.public]))
        d.call(encrypt=pb.EncryptRequest(key_id=d.kid, plaintext=b"x"))
        report = verify_chain(d.entries(), key, auditor_key=auditor)
        assert report.ok and report.clear_bodies == 11 and report.epochs == [(12, [auditor.public])]
        assert [b.operation for b in report.bodies[11:]] == ["set_auditors", "encrypt"]
        assert b"set_auditors" not in d.entries()[11]
        # A clear body after sealed ones is refused by the verifier (the host cannot turn it back on).
        tail = _edit(d.entries()[0], lambda r: (setattr(r, "seq", 14), setattr(r, "prev_hash", report.head_hash)))
        forger = ed25519.Ed25519PrivateKey.generate()
        forged = _resign([*d.entries(), tail], forger)
        fpub = forger.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert verify_chain(forged, fpub).broken_at == 14
    finally:
        d.close()


def test_a_store_that_refuses_audit_writes_fails_the_request(domain, monkeypatch) -> None:
    def refuse(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(domain.store, "_transact", refuse)
    with pytest.raises(errors.StoreError) as exc:
        domain.call(encrypt=pb.EncryptRequest(key_id=domain.kid, plaintext=b"unaudited"))
    assert exc.value.code_name == "KMS_ERR_AUDIT_UNAVAILABLE"
    monkeypatch.undo()
    assert domain.call(encrypt=pb.EncryptRequest(key_id=domain.kid, plaintext=b"ok")).encrypt.key_version == 1
    report = verify_chain(domain.entries(), domain.enclave.identity().audit_public_key, auditor_key=domain.auditor)
    assert report.ok and report.bodies[-1].operation == "encrypt"
    assert [seq for seq, _ in report.epochs] == [1, 12]  # the failed append ended the epoch


def test_cli_keygen_export_and_verify(domain, tmp_path) -> None:
    (tmp_path / "cert.der").write_bytes(domain.cert)
    run = lambda *a: subprocess.run([sys.executable, "-m", "kms", "audit", *a], capture_output=True, text=True)  # noqa: E731
    made = run("keygen", "--out", str(tmp_path / "aud"), "--output", "json")
    assert made.returncode == 0 and stat.S_IMODE((tmp_path / "aud" / "auditor.key").stat().st_mode) == 0o600
    assert run("keygen", "--out", str(tmp_path / "aud")).returncode == 1  # never overwrites a key
    new = AuditorKey.load(tmp_path / "aud" / "auditor.key")
    assert json.loads(made.stdout)["auditor_public_key"] == new.public.hex()
    out = tmp_path / "audit.jsonl"
    assert run("export", "--data-dir", str(domain.data), "--out", str(out)).returncode == 0
    ok = run("verify", "--file", str(out), "--cert", str(tmp_path / "cert.der"), "--output", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["entries"] == 11
    assert all(r["body"] is None for r in json.loads(ok.stdout)["records"])  # no secret, no body
    lines = out.read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    broken = run("verify", "--file", str(tmp_path / "cut.jsonl"), "--cert", str(tmp_path / "cert.der"),
                 "--output", "json")
    assert broken.returncode == 2 and json.loads(broken.stdout)["broken_at"] == 4
    # The auditor's own key file: written the way `kms audit keygen` writes it, read by --auditor-key.
    key_file = tmp_path / "domain-auditor.key"
    key_file.write_bytes(domain.auditor._key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    readable = tmp_path / "readable.jsonl"
    done = run("export", "--file", str(out), "--auditor-key", str(key_file), "--cert", str(tmp_path / "cert.der"),
               "--out", str(readable))
    assert done.returncode == 0, done.stderr
    said = [json.loads(line) for line in readable.read_text().splitlines()]
    assert [s["operation"] for s in said[:2]] == ["init", "create_key"] and said[1]["key_id"] == domain.kid
    assert said[0]["principal"] == domain.creds.principal_id.hex() and said[0]["epoch_auditors"]
    assert run("export", "--file", str(out), "--auditor-key", str(key_file), "--out", str(readable)).returncode == 1
    refused = run("export", "--file", str(tmp_path / "cut.jsonl"), "--auditor-key", str(key_file), "--cert",
                  str(tmp_path / "cert.der"), "--out", str(tmp_path / "never.jsonl"))
    assert refused.returncode == 2 and not (tmp_path / "never.jsonl").exists()  # verified before decrypting
    shown = run("verify", "--file", str(out), "--cert", str(tmp_path / "cert.der"), "--auditor-key", str(key_file),
                "--output", "json")
    assert json.loads(shown.stdout)["records"][4]["context_hash"] == context_hash(CONTEXT).hex()


def test_the_audit_benchmark_runs(build, capsys) -> None:
    """tests/bench/bench_audit.py (./dev bench) on a few calls: every variant it compares still works."""
    from tests.bench import bench_audit

    assert bench_audit.main(["--iterations", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("not audited", "clear bodies", "sealed, 1 auditor", "sealed, 8 auditors", "per-record HPKE"):
        assert row in out
