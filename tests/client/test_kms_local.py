"""The SDK's and CLI's local parts, without a server: policy documents, BYOK wrapping (unwrapped again
with pyca), store backup and restore (what is in it, what is refused), opening recovery shares."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

from kms.client.byok import OAEP_MAX, wrap_key_material
from kms.client.envelope import _items
from kms.client.policy import KeyPolicy, PolicyError, Statement, operation_names, operations_mask
from kms.client.recovery import SHARE_FORMAT, raw_public
from kms.commands import backup as backup_mod
from kms.commands.backup import BackupError, backup_store, restore_store
from kms.commands.common import LocalError
from kms.commands.domain import open_shares
from kms.proto.enclave.v1 import boundary_pb2 as pb

BOB = "ab" * 32


def test_policy_document_round_trip() -> None:
    doc = {"format": "enclave-kms key policy v1", "export_policy": "EXPORT_TO_ATTESTED_ENCLAVE", "statements": [
        {"principal": BOB, "operations": ["encrypt", "Decrypt"], "conditions": {"tenant": "a", "app": "b"}},
        {"principal": "*", "operations": ["*"]}]}
    policy = KeyPolicy.from_document(doc)
    req = policy.to_pb("k")
    assert req.export_policy == pb.EXPORT_TO_ATTESTED_ENCLAVE and len(req.statements) == 2
    first = req.statements[0]
    assert first.principal == bytes.fromhex(BOB) and first.operations == pb.OP_ENCRYPT | pb.OP_DECRYPT
    assert [(c.key, c.value) for c in req.statements[0].conditions] == [(b"app", b"b"), (b"tenant", b"a")]
    assert req.statements[1].principal == b"" and operation_names(req.statements[1].operations) == (
        "encrypt", "decrypt", "sign", "verify", "mac", "derive", "describe")
    assert KeyPolicy.from_document(policy.to_document()) == policy
    assert KeyPolicy.from_json(b'{"statements": []}') == KeyPolicy()
    assert Statement.build(None, ["mac"]).to_pb().operations == pb.OP_MAC


@pytest.mark.parametrize("doc", [
    [], {"statements": [], "extra": 1}, {"statements": {}}, {"format": "v2", "statements": []},
    {"statements": [], "export_policy": "ANYWHERE"},
    {"statements": [{"principal": "ab", "operations": ["encrypt"]}]},
    {"statements": [{"principal": BOB, "operations": []}]},
    {"statements": [{"principal": BOB, "operations": ["exfiltrate"]}]},
    {"statements": [{"principal": BOB, "operations": "encrypt"}]},
    {"statements": [{"principal": BOB, "operations": ["encrypt"], "conditions": {"a": "1", "b": "2", "c": "3"}}]},
    {"statements": [{"principal": BOB, "operations": ["encrypt"], "conditions": {"k" * 65: "v"}}]},
    {"statements": [{"principal": BOB, "operations": ["encrypt"], "conditions": {"k": 1}}]},
    {"statements": [{"principal": BOB, "operations": ["encrypt"], "when": {}}]},
    {"statements": [{"principal": "*", "operations": ["encrypt"]}] * 9},
])
def test_policy_documents_fail_closed(doc) -> None:
    with pytest.raises(PolicyError):
        KeyPolicy.from_document(doc)


def test_operations_mask() -> None:
    assert operations_mask(["sign", "verify"]) == pb.OP_SIGN | pb.OP_VERIFY
    for bad in ([], ["nope"]):
        with pytest.raises(PolicyError):
            operations_mask(bad)


def test_byok_wrapping_unwraps_with_the_private_key() -> None:
    private = rsa.generate_private_key(65537, 3072)
    spki = private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    material = os.urandom(32)
    assert private.decrypt(wrap_key_material(spki, material, "RSAES_OAEP_SHA_256_WRAP"), oaep) == material
    big = os.urandom(1200)  # e.g. an RSA-2048 PKCS#8
    wrapped = wrap_key_material(spki, big, "RSA_AES_KEY_WRAP_SHA_256")
    kek = private.decrypt(wrapped[:384], oaep)
    assert aes_key_unwrap_with_padding(kek, wrapped[384:]) == big
    with pytest.raises(ValueError):
        wrap_key_material(spki, os.urandom(OAEP_MAX + 1), "RSAES_OAEP_SHA_256_WRAP")
    small = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError):  # only the enclave's RSA-3072 wrapping keys
        wrap_key_material(small, material, "RSAES_OAEP_SHA_256_WRAP")


def test_batch_bounds() -> None:
    with pytest.raises(ValueError):
        _items([], 64, "x")
    with pytest.raises(ValueError):
        _items([b"x"] * 257, 64, "x")
    with pytest.raises(ValueError):
        _items([b"x" * 65], 64, "x")


# --- backup and restore ------------------------------------------------------------------------------


@pytest.fixture
def source(build: Path, tmp_path: Path) -> Path:
    from kms.service.store import SqliteStore

    data = tmp_path / "source"
    with SqliteStore(data) as store:
        store.put("domain-state", 0, 3, b"state-blob")
        for i in range(5):
            store.put(f"00000000-0000-4000-8000-00000000000{i}", 0, i + 1, os.urandom(100))
        store.put("alias/x", 0, 1, b"alias-blob")
        store.put("sealed-domain-key", 0, 1, b"SEALED-MARKER")
        for seq in range(1, 8):
            store.audit_append(seq, b"entry-%d" % seq)
    return data


def _rows(data: Path) -> tuple[list, list]:
    db = sqlite3.connect(data / "kms.sqlite3")
    try:
        return (db.execute("SELECT key_id, revision, blob FROM records ORDER BY key_id").fetchall(),
                db.execute("SELECT seq, entry FROM audit ORDER BY seq").fetchall())
    finally:
        db.close()


def test_backup_and_restore_round_trip(source: Path, tmp_path: Path) -> None:
    from kms.enclave.node import SEALED_DOMAIN_KEY
    from kms.service import store

    assert (backup_mod.DB_NAME, backup_mod.SCHEMA_VERSION, backup_mod.SEALED_RECORD, backup_mod.SEALED_DOMAIN_KEY,
            backup_mod.MAX_KEY_ID, backup_mod.MAX_REVISION) == (
        store.DB_NAME, store.SCHEMA_VERSION, store.SEALED_RECORD, SEALED_DOMAIN_KEY, store.MAX_KEY_ID,
        store.MAX_REVISION)
    out = tmp_path / "b.jsonl"
    summary = backup_store(source, out)
    assert (summary.records, summary.audit_entries) == (7, 7)
    assert out.stat().st_mode & 0o777 == 0o600 and b"SEALED-MARKER" not in out.read_bytes()
    with pytest.raises(BackupError):
        backup_store(source, out)  # never overwritten
    target = tmp_path / "target"
    assert restore_store(out, target).sha256 == summary.sha256
    assert _rows(target) == _rows(source)
    assert not (target / "domain-key.sealed").exists()
    with pytest.raises(BackupError):
        restore_store(out, target)  # only into a new directory
    with pytest.raises(BackupError):
        restore_store(out, source)  # a directory with a sealed key


@pytest.mark.parametrize("damage", ["truncate", "edit", "reorder_audit", "drop_end", "garbage", "header"])
def test_damaged_backups_restore_nothing(source: Path, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "b.jsonl"
    backup_store(source, out)
    lines = out.read_text().splitlines()
    if damage == "truncate":
        lines = lines[:4] + lines[-1:]
    elif damage == "edit":
        item = json.loads(lines[2])
        item["revision"] += 1
        lines[2] = json.dumps(item)
    elif damage == "reorder_audit":
        lines[-3], lines[-2] = lines[-2], lines[-3]
    elif damage == "drop_end":
        lines = lines[:-1]
    elif damage == "garbage":
        lines.insert(3, "not json")
    else:
        lines[0] = json.dumps({"format": "something else"})
    out.write_text("\n".join(lines) + "\n")
    target = tmp_path / "target"
    with pytest.raises(BackupError):
        restore_store(out, target)
    assert _rows(target) == ([], [])  # nothing kept: the directory is still new


# --- recovery shares ------------------------------------------------------------------------------------


def _share(tmp: Path, domain: bytes, index: int, x: int, threshold: int) -> tuple[str, str]:
    """A share document as the enclave makes it (docs/api.md, init), and its recovery key file."""
    key = x25519.X25519PrivateKey.generate()
    eph = x25519.X25519PrivateKey.generate()
    salt = raw_public(eph) + raw_public(key)
    hkdf = HKDF(hashes.SHA256(), 32, salt=salt, info=b"enclave-kms recovery share v1")
    aes = hkdf.derive(eph.exchange(key.public_key()))
    ct = AESGCM(aes).encrypt(bytes(12), bytes([x]) * 32, domain + index.to_bytes(4, "big"))
    doc = {"format": SHARE_FORMAT, "domain_id": domain.hex(), "threshold": threshold, "share_count": 3,
           "index": index, "share_x": x, "recipient_public_key": raw_public(key).hex(),
           "ephemeral_public_key": raw_public(eph).hex(), "ciphertext": ct.hex()}
    share, keyfile = tmp / f"share-{index}.json", tmp / f"recovery-{index}.key"
    share.write_text(json.dumps(doc))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(share), str(keyfile)


def test_open_shares_checks_locally(tmp_path: Path) -> None:
    domain = os.urandom(16)
    (s0, k0), (s1, k1) = _share(tmp_path, domain, 0, 1, 2), _share(tmp_path, domain, 1, 2, 2)
    assert open_shares(domain, [s0, s1], [k0, k1]) == [(1, b"\x01" * 32), (2, b"\x02" * 32)]
    for shares, keys in (([s0], [k0]),            # fewer than the threshold
                         ([s0, s0], [k0, k0]),    # the same share twice
                         ([s0, s1], [k1, k0]),    # keys swapped
                         ([s0, s1], [k0])):       # one key missing
        with pytest.raises(LocalError):
            open_shares(domain, shares, keys)
    with pytest.raises(LocalError):  # another domain
        open_shares(os.urandom(16), [s0, s1], [k0, k1])
