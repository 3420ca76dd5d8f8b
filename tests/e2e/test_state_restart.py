"""`kms serve` on a store that does not match its state log: a record put back to an older
revision, or removed, or an authentic record the log never had, stops the start with a message
that names the record; a damaged record does not (it is refused when used); a consistent older
copy of the whole data directory starts (what clients that saw newer state must catch)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public
from tests.e2e.conftest import client_for, recovery_public
from tests.e2e.server import LOOPBACK_FLAGS, REPO, ServerProcess


def head_seq(client: KmsClient) -> int:
    """The state head the server's answers carry (the SDK keeps the highest it saw)."""
    client.identity()
    return client.state_head.seq


def start_fails(data: Path) -> str:
    """Run `kms serve` expecting it to refuse to start; its output."""
    proc = subprocess.run([sys.executable, "-m", "kms", "serve", f"--data-dir={data}", *LOOPBACK_FLAGS],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def row(data: Path, name: str) -> tuple[int, bytes]:
    with sqlite3.connect(data / "kms.sqlite3") as db:
        revision, blob = db.execute("SELECT revision, blob FROM records WHERE key_id = ?", (name,)).fetchone()
    return int(revision), bytes(blob)


def set_row(data: Path, name: str, revision: int | None, blob: bytes = b"") -> None:
    with sqlite3.connect(data / "kms.sqlite3") as db:
        if revision is None:
            db.execute("DELETE FROM records WHERE key_id = ?", (name,))
        else:
            db.execute("INSERT OR REPLACE INTO records (key_id, revision, blob) VALUES (?, ?, ?)",
                       (name, revision, blob))


@pytest.mark.timeout(600)
def test_a_store_that_does_not_match_its_log_is_refused_at_start(build, tmp_path) -> None:
    data, creds = tmp_path / "data", Credentials.generate("alice")
    srv = ServerProcess(data)
    try:
        with client_for(srv, creds, new_domain=True) as admin:
            admin.init(recovery_public(3), threshold=2, admin_name="alice", auditor_public_keys=auditor_public())
            kid = admin.create_key().key_id
            admin.disable_key(kid)
            old = row(data, kid)
            admin.enable_key(kid)
            admin.rotate_key(kid)
            current = row(data, kid)
    finally:
        assert srv.stop() == 0
    assert (old[0], current[0]) == (2, 4)

    set_row(data, kid, *old)  # one record older than the log says
    out = start_fails(data)
    assert f"record {kid} is at revision 2, the state log says revision 4" in out, out
    set_row(data, kid, None)  # the record gone
    out = start_fails(data)
    assert f"record {kid} is missing" in out, out
    set_row(data, kid, *current)
    set_row(data, "00000000-0000-4000-8000-00000000abcd", *current)  # a copy under a name the log never had
    out = start_fails(data)
    assert "is not in the state log" in out or "does not authenticate" in out, out
    set_row(data, "00000000-0000-4000-8000-00000000abcd", None)

    damaged = current[1][:-1] + bytes([current[1][-1] ^ 1])
    set_row(data, kid, current[0], damaged)  # damage, not rollback: the server starts and says so
    srv = ServerProcess(data)
    try:
        assert any("damaged" in line and kid in line for line in srv.lines), "\n".join(srv.lines[-20:])
        with client_for(srv, creds) as admin:
            with pytest.raises(Exception, match="KMS_ERR_RECORD_CORRUPT"):
                admin.describe_key(kid)
    finally:
        assert srv.stop() == 0


@pytest.mark.timeout(600)
def test_a_consistent_older_copy_starts_with_an_older_head(build, tmp_path) -> None:
    data, creds = tmp_path / "data", Credentials.generate("alice")
    srv = ServerProcess(data)
    try:
        with client_for(srv, creds, new_domain=True) as admin:
            admin.init(recovery_public(3), threshold=2, admin_name="alice", auditor_public_keys=auditor_public())
            admin.create_key()
    finally:
        assert srv.stop() == 0
    shutil.copytree(data, tmp_path / "backup")  # the host keeps an old copy of everything
    srv = ServerProcess(data)
    try:
        with client_for(srv, creds) as admin:
            newer = head_seq(admin)
            admin.create_key()
            newest = head_seq(admin)
    finally:
        assert srv.stop() == 0
    shutil.rmtree(data)
    shutil.copytree(tmp_path / "backup", data)
    srv = ServerProcess(data)  # the enclave cannot tell: the copy is consistent
    try:
        with client_for(srv, creds) as admin:  # a client that never saw the newer head (its own state)
            assert head_seq(admin) == newer < newest
    finally:
        assert srv.stop() == 0
