"""The host reads nothing of what the audit log says: after real operations against the real server over
loopback (keys created and used, with an encryption context, by an admin and by a user, refusals included),
the store's audit rows, read as the host reads them (the SQLite file), hold none of the operation names, key
ids, principal ids or context hashes of those operations, raw, hex or base64 (the marker search of
test_host_blind.py). The domain's auditor exports and reads all of them, and the chain verifies without any
secret. The control: a server whose domain chose clear audit bodies (`audit_bodies_in_clear_insecure`)
shows every marker to the same search."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kms import errors
from kms.audit import context_hash, verify_chain
from kms.client import Credentials
from kms.service.store import DB_NAME
from tests.auditor import AUDITOR, auditor_public
from tests.e2e.conftest import client_for, recovery_public
from tests.e2e.server import ServerProcess
from tests.e2e.test_host_blind import _forms

CONTEXT = {"department": "payroll-7f3a"}


def _leaks(rows: list[bytes], marker: bytes) -> list[str]:
    """Where a marker shows in rows: raw, hex, base64 (and, for 32-byte values, a 24-byte core: see _forms).
    Operation names are short: only their whole forms are searched (4+ bytes: no chance hit in a few KiB)."""
    forms = _forms(marker) if len(marker) >= 27 else _forms(marker)[:5]
    return [f"form {i} in row {n}" for n, row in enumerate(rows) for i, form in enumerate(forms) if form in row]


def audit_rows(data_dir: Path) -> list[bytes]:
    """Every audit row, straight from the store's file (read-only), as the host sees it."""
    uri = f"file:{data_dir / DB_NAME}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return [bytes(row[0]) for row in db.execute("SELECT entry FROM audit ORDER BY seq")]


def run_operations(server: ServerProcess, admin: Credentials) -> dict[str, bytes]:
    """Operations of every kind; returns the markers the audit bodies hold (name -> bytes)."""
    user = Credentials.generate("svc")
    with client_for(server, admin) as client:
        aes, ed = client.create_key(description="payroll"), client.create_key("ED25519")
        ct = client.encrypt(aes.key_id, b"salary", CONTEXT).ciphertext
        client.decrypt(ct, CONTEXT)
        client.sign(ed.key_id, b"statement")
        client.describe_key(ed.key_id)
        client.generate_data_key(aes.key_id)
        client.add_principal(user.principal_id, "svc", "USER")
        client.create_grant(aes.key_id, user.principal_id, ["decrypt"])
        admin_id = client.principal_id
    with client_for(server, user) as client:
        assert client.decrypt(ct, CONTEXT).plaintext == b"salary"
        with pytest.raises(errors.PermissionDenied):  # a refusal is audited too
            client.sign(ed.key_id, b"not yours")
    markers = {f"key {aes.key_id}": aes.key_id.encode(), f"key {ed.key_id}": ed.key_id.encode(),
               "admin principal": admin_id, "user principal": user.principal_id,
               "context hash": context_hash(CONTEXT)}
    for op in ("create_key", "encrypt", "decrypt", "sign", "describe_key", "generate_data_key", "add_principal",
               "create_grant"):
        markers[f"operation {op}"] = op.encode()
    return markers


def _identity_audit_key(server: ServerProcess, creds: Credentials) -> bytes:
    with client_for(server, creds) as client:
        return client.identity().audit_public_key


def test_audit_rows_hold_nothing_the_host_can_read(server, admin_creds) -> None:
    markers = run_operations(server, admin_creds)
    rows = audit_rows(server.data_dir)
    assert len(rows) >= 12  # the control that the rows were read: one per operation, init included
    for name, marker in markers.items():
        assert not _leaks(rows, marker), f"{name} visible in an audit row: {_leaks(rows, marker)}"
    # The auditor reads every one of them; anyone verifies the chain without a secret.
    audit_key = _identity_audit_key(server, admin_creds)
    assert verify_chain(rows, audit_key).ok
    report = verify_chain(rows, audit_key, auditor_key=AUDITOR)
    assert report.ok and None not in report.bodies and report.epochs[0][1] == auditor_public()
    said = b"".join(b.SerializeToString() for b in report.bodies)
    for name, marker in markers.items():
        assert marker in said, f"{name} is not in what the auditor reads"


def test_control_clear_bodies_show_every_marker(build: Path, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", log_level="info")
    try:
        creds = Credentials.generate("alice")
        with client_for(server, creds, new_domain=True) as client:
            client.init(recovery_public(1), threshold=1, audit_bodies_in_clear_insecure=True)
        markers = run_operations(server, creds)
        rows = audit_rows(server.data_dir)
        for name, marker in markers.items():
            assert _leaks(rows, marker), f"the search does not find {name} in clear audit rows"
    finally:
        server.stop()
