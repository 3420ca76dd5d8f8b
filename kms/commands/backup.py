"""`kms admin backup|restore`: the wrapped store (records, state log, audit chain) to a file and into a new data dir.

The backup holds only what the store holds: records encrypted under the domain key, the state log
that says which revision of each record is current, and the signed audit chain. It never holds
the node-local sealed domain key, so a restored directory starts uninitialized and needs
`kms admin recover` (M of N recovery shares) on its new platform.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kms.commands.common import LocalError, emit, run_command
from kms.commands.flags import add_output

BACKUP_FORMAT = "enclave-kms store backup v2"  # v1 had no state log: its records would be refused
# As kms.service.store and kms.enclave.node (not imported here: they load the enclave bridge; a test checks them).
DB_NAME, SCHEMA_VERSION, SEALED_RECORD, SEALED_DOMAIN_KEY = "kms.sqlite3", 3, "sealed-domain-key", "domain-key.sealed"
MAX_KEY_ID, MAX_REVISION = 128, 2**63 - 1


class BackupError(LocalError):
    """The backup cannot be written, or a backup file is damaged or does not fit the target."""


@dataclass(frozen=True)
class BackupSummary:
    records: int
    audit_entries: int
    sha256: str
    state_entries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "state_entries": self.state_entries, "audit_entries": self.audit_entries,
                "sha256": self.sha256}


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.hash = out, hashlib.sha256()

    def line(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n").encode()
        self.hash.update(data)
        self.out.write(data)


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (2, SCHEMA_VERSION):  # 3 added the join board, which a backup does not carry
        conn.close()
        raise BackupError(f"{db}: store schema version {version} is not {SCHEMA_VERSION}")
    return conn


def backup_store(data_dir: Path, out: Path) -> BackupSummary:
    """Write every record and audit entry of data_dir's store to a new file `out` (0600), from one snapshot."""
    db = data_dir / DB_NAME
    if not db.is_file():
        raise BackupError(f"no store at {db}")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BackupError(f"cannot create {out} (an existing file is never overwritten): {exc.strerror}") from exc
    conn = _connect(db)
    try:
        with os.fdopen(fd, "wb") as f:
            w = _HashingWriter(f)
            w.line({"format": BACKUP_FORMAT, "created_at": datetime.now(UTC).isoformat(),
                    "schema_version": SCHEMA_VERSION})
            conn.execute("BEGIN")  # one read snapshot (WAL): consistent while the server runs
            records = audit = state = 0
            for key_id, revision, blob in conn.execute(
                    "SELECT key_id, revision, blob FROM records WHERE key_id != ? ORDER BY key_id", (SEALED_RECORD,)):
                w.line({"record": key_id, "revision": revision, "blob": base64.b64encode(blob).decode()})
                records += 1
            for seq, entry in conn.execute("SELECT seq, entry FROM state_log ORDER BY seq"):
                w.line({"state": seq, "entry": base64.b64encode(entry).decode()})
                state += 1
            for seq, entry in conn.execute("SELECT seq, entry FROM audit ORDER BY seq"):
                w.line({"audit": seq, "entry": base64.b64encode(entry).decode()})
                audit += 1
            conn.execute("COMMIT")
            digest = w.hash.hexdigest()
            w.out.write((json.dumps({"end": True, "records": records, "state_entries": state, "audit_entries": audit,
                                     "sha256": digest}) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    return BackupSummary(records, audit, digest, state)


def _lines(path: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    try:
        with path.open("rb") as f:
            for raw in f:
                try:
                    yield raw, json.loads(raw)
                except ValueError as exc:
                    raise BackupError(f"{path}: not a backup file (a line is not JSON)") from exc
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _check_target(data_dir: Path) -> None:
    if (data_dir / SEALED_DOMAIN_KEY).exists():
        raise BackupError(f"{data_dir} holds a sealed domain key: restore only into a new data directory")
    db = data_dir / DB_NAME
    if db.exists():
        conn = sqlite3.connect(db)
        try:
            used = conn.execute("SELECT (SELECT COUNT(*) FROM records) + (SELECT COUNT(*) FROM audit)"
                                " + (SELECT COUNT(*) FROM state_log)").fetchone()[0]
        except sqlite3.Error:
            used = 1
        finally:
            conn.close()
        if used:
            raise BackupError(f"{db} is not empty: restore only into a new data directory")


def _record(item: dict[str, Any]) -> tuple[str, int, bytes]:
    key_id, revision = item.get("record"), item.get("revision")
    if (not isinstance(key_id, str) or not key_id or len(key_id) > MAX_KEY_ID or not key_id.isascii()
            or not key_id.isprintable() or key_id == SEALED_RECORD or not isinstance(revision, int)
            or not 0 < revision <= MAX_REVISION):
        raise BackupError("a record line is malformed")
    return key_id, revision, base64.b64decode(item.get("blob", ""), validate=True)


def restore_store(backup: Path, data_dir: Path) -> BackupSummary:
    """Load a backup into a new data directory's store in one transaction; nothing is kept unless it all checks."""
    from kms.service.store import SqliteStore

    _check_target(data_dir)
    SqliteStore(data_dir).close()  # the directory (0700), the database (0600) and its schema
    conn = _connect(data_dir / DB_NAME)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        digest, records, audit, state, end = hashlib.sha256(), 0, 0, 0, None
        for n, (raw, item) in enumerate(_lines(backup)):
            if end is not None:
                raise BackupError(f"{backup}: data after the end line")
            if n == 0:
                if not isinstance(item, dict) or item.get("format") != BACKUP_FORMAT:
                    raise BackupError(f"{backup}: not an {BACKUP_FORMAT} file")
            elif isinstance(item, dict) and "end" in item:
                end = item
                continue
            elif isinstance(item, dict) and "record" in item:
                conn.execute("INSERT INTO records (key_id, revision, blob) VALUES (?, ?, ?)", _record(item))
                records += 1
            elif isinstance(item, dict) and item.get("state") == state + 1:
                conn.execute("INSERT INTO state_log (seq, entry) VALUES (?, ?)",
                             (state + 1, base64.b64decode(item.get("entry", ""), validate=True)))
                state += 1
            elif isinstance(item, dict) and item.get("audit") == audit + 1:
                conn.execute("INSERT INTO audit (seq, entry) VALUES (?, ?)",
                             (audit + 1, base64.b64decode(item.get("entry", ""), validate=True)))
                audit += 1
            else:
                raise BackupError(f"{backup}: line {n + 1} is malformed or out of sequence")
            digest.update(raw)
        if end is None or (end.get("records"), end.get("state_entries"), end.get("audit_entries"),
                           end.get("sha256")) != (records, state, audit, digest.hexdigest()):
            raise BackupError(f"{backup}: truncated or altered (counts or checksum do not match its end line)")
        conn.execute("COMMIT")
    except (ValueError, sqlite3.Error) as exc:  # bad base64, a repeated record name
        raise BackupError(f"{backup}: cannot be restored: {exc}") from exc
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return BackupSummary(records, audit, digest.hexdigest(), state)


def register(sub: Any) -> None:
    """Add `kms admin backup` and `kms admin restore` (host-side: they read and write a data directory)."""
    backup = sub.add_parser("backup", help="export the wrapped store (records and audit chain) to a file",
                            description="Host-side, safe while the server runs. The node-local sealed domain key "
                                        "is not included: a restore needs `kms admin recover`.")
    backup.add_argument("--data-dir", type=Path, required=True, metavar="DIR", help="the server's data directory")
    backup.add_argument("--out", type=Path, required=True, metavar="FILE", help="a new file (0600)")
    add_output(backup)
    backup.set_defaults(func=run_command(_backup))
    restore = sub.add_parser("restore", help="load a backup into a NEW data directory (then serve and recover)")
    restore.add_argument("--in", dest="input", type=Path, required=True, metavar="FILE",
                         help="a backup from `kms admin backup`")
    restore.add_argument("--data-dir", type=Path, required=True, metavar="NEW_DIR",
                         help="a new (or empty) data directory to restore into")
    add_output(restore)
    restore.set_defaults(func=run_command(_restore))


def _backup(args: argparse.Namespace) -> None:
    summary = backup_store(args.data_dir, args.out)
    emit(args, {"file": str(args.out), **summary.to_dict()})


def _restore(args: argparse.Namespace) -> None:
    summary = restore_store(args.input, args.data_dir)
    emit(args, {"data_dir": str(args.data_dir), **summary.to_dict(),
                "next": "kms serve on it, then kms admin recover with the recovery shares"})
