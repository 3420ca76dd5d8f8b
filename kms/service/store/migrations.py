"""Schema migrations, one mechanism for both backends: a version table, and each migration's
statements per dialect, applied in order in one transaction under an exclusive lock (SQLite:
BEGIN IMMEDIATE; PostgreSQL: an advisory lock, so replicas starting together migrate once).

A store whose version table names a migration this build does not know was written by a newer
KMS: it is refused, never downgraded. SQLite stores from before the version table recorded their
schema in PRAGMA user_version (2: records, audit, state log); they are adopted as version 2.
PRAGMA user_version keeps following the version, for `kms backup` and older tools.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from kms.service.store.base import StoreError

VERSION_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]


def _log_table(name: str, blob: str) -> str:
    # gap-free like the audit chain: seq must be the last + 1 (checked by the store at append)
    return f"CREATE TABLE {name} (seq BIGINT PRIMARY KEY NOT NULL CHECK (seq > 0), entry {blob} NOT NULL)"


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records (encrypted by the enclave, revision in the AAD) and the audit chain",
              sqlite=("CREATE TABLE records (key_id TEXT PRIMARY KEY NOT NULL, revision INTEGER NOT NULL "
                      "CHECK (revision > 0), blob BLOB NOT NULL) WITHOUT ROWID", _log_table("audit", "BLOB")),
              postgresql=("CREATE TABLE records (key_id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, revision BIGINT "
                          "NOT NULL CHECK (revision > 0), blob BYTEA NOT NULL)", _log_table("audit", "BYTEA"))),
    Migration(2, "the state log: one entry per record change, in the record's transaction",
              sqlite=(_log_table("state_log", "BLOB"),), postgresql=(_log_table("state_log", "BYTEA"),)),
)
LATEST = MIGRATIONS[-1].version
LEGACY_SQLITE_VERSION = 2  # PRAGMA user_version of the stores written before the version table


class Target(Protocol):
    """A connection the migrations run on."""

    dialect: str

    def exclusive(self) -> AbstractContextManager[None]:
        """One transaction, holding the schema lock; committed on a clean exit."""

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (placeholders: %s), returning its rows."""

    def legacy_version(self) -> int:
        """The schema version recorded before the version table (SQLite: user_version), else 0."""

    def set_legacy_version(self, version: int) -> None:
        """Mirror the version where older tools read it."""


def pending(applied: set[int]) -> Iterator[Migration]:
    """The migrations still to run; refuses a store with gaps or one newer than this build."""
    newest = max(applied, default=0)
    if newest > LATEST:
        raise StoreError(f"the store's schema is version {newest}, newer than this KMS knows ({LATEST}): "
                         "run the KMS release that wrote it (a schema is never downgraded)")
    if applied != set(range(1, newest + 1)):
        raise StoreError(f"the store's schema versions {sorted(applied)} have a gap: it was altered")
    return (m for m in MIGRATIONS if m.version > newest)


def migrate(target: Target) -> int:
    """Bring the schema to LATEST; returns the number of migrations applied."""
    with target.exclusive():
        target.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY NOT NULL, "
                       "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
        applied = {int(r[0]) for r in target.execute(f"SELECT version FROM {VERSION_TABLE}")}  # noqa: S608
        if not applied and (legacy := target.legacy_version()):
            if legacy != LEGACY_SQLITE_VERSION:
                raise StoreError(f"store schema version {legacy} is not {LEGACY_SQLITE_VERSION}: it cannot be adopted")
            for m in MIGRATIONS[:LEGACY_SQLITE_VERSION]:
                _record(target, m, "adopted from PRAGMA user_version")
            applied = set(range(1, LEGACY_SQLITE_VERSION + 1))
        todo = list(pending(applied))
        for m in todo:
            for statement in m.sqlite if target.dialect == "sqlite" else m.postgresql:
                target.execute(statement)
            _record(target, m)
        target.set_legacy_version(LATEST)
    return len(todo)


def _record(target: Target, m: Migration, note: str = "") -> None:
    stamp = "CURRENT_TIMESTAMP"
    target.execute(f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) "  # noqa: S608 - constants
                   f"VALUES (%s, %s, {stamp})", (m.version, m.description + (f" ({note})" if note else "")))
