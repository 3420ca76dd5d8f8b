"""The host's record stores: embedded SQLite (the default) and PostgreSQL (shared by replicas).

Both implement the RecordStore protocol (kms.enclave.records) with the same semantics: reads,
conditional writes, the state log written with its record, the gap-free audit chain, the
node-local sealed domain key file, and group commit (kms.service.store.group).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kms.config import Settings
from kms.service.store.base import (
    MAX_KEY_ID,
    MAX_REVISION,
    SEALED_RECORD,
    BaseStore,
    Observer,
    OutcomeUnknown,
    StoreError,
)
from kms.service.store.sqlite import DB_NAME, SCHEMA_VERSION, SqliteStore

__all__ = ["DB_NAME", "MAX_KEY_ID", "MAX_REVISION", "SCHEMA_VERSION",
           "SEALED_RECORD", "BaseStore", "Observer", "OutcomeUnknown", "SqliteStore",
           "StoreError", "open_store", "store_password"]

PASSWORD_ENV = "KMS_STORE_PASSWORD"  # noqa: S105 - the variable's name


def store_password(password_file: str, env: Mapping[str, str]) -> str | None:
    """The PostgreSQL password: from the file (not readable by other users), else KMS_STORE_PASSWORD, else
    None (libpq's own sources then apply: PGPASSWORD, ~/.pgpass)."""
    if password_file:
        path = Path(password_file)
        try:
            if path.stat().st_mode & 0o077:
                raise StoreError(f"store_password_file {path}: readable by other users; chmod 600 (or 400) it")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"store_password_file {path}: cannot read it: {exc.strerror or exc}") from None
        lines = text.splitlines()
        if len(lines) != 1 or not lines[0]:
            raise StoreError(f"store_password_file {path}: expected the password on one line")
        return lines[0]
    return env.get(PASSWORD_ENV)


def open_store(settings: Settings, *, observer: Observer | None = None,
               env: Mapping[str, str] | None = None) -> BaseStore:
    """The store the settings select: PostgreSQL when store_url is set, else SQLite in the data directory."""
    if not settings.store_url:
        return SqliteStore(settings.data_dir, observer=observer, group_commit=settings.store_group_commit)
    from kms.service.store.postgres import PostgresStore

    return PostgresStore(settings.data_dir, settings.store_url,
                         password=store_password(settings.store_password_file, os.environ if env is None else env),
                         pool_size=settings.store_pool_size, timeout_s=settings.store_timeout_s, observer=observer,
                         group_commit=settings.store_group_commit)
