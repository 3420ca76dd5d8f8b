"""The record store under test, on each backend: `opener(data_dir, **kw)` opens a store (SQLite in data_dir, or
one PostgreSQL database per test on the session's throwaway cluster, tests/pg.py); calling it again reopens the
same store. `open_in_child` does the same in a subprocess, from the environment `opener.child_env` gives it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kms.service.store import BaseStore, SqliteStore

URL_ENV = "KMS_TEST_STORE_URL"


class Opener:
    def __init__(self, backend: str, cluster=None) -> None:
        self.backend = backend
        self.url = cluster.create_database() if cluster else ""
        self.password = cluster.password if cluster else ""
        self.child_env = {URL_ENV: self.url, "KMS_STORE_PASSWORD": self.password}

    def __call__(self, data_dir: Path, **kw) -> BaseStore:
        if self.backend == "sqlite":
            return SqliteStore(data_dir, **kw)
        from kms.service.store.postgres import PostgresStore

        return PostgresStore(data_dir, self.url, password=self.password, **kw)


def open_in_child(data_dir: str) -> BaseStore:
    """The store a test's subprocess writes to (see Opener.child_env)."""
    if url := os.environ.get(URL_ENV):
        from kms.service.store.postgres import PostgresStore

        return PostgresStore(data_dir, url, password=os.environ["KMS_STORE_PASSWORD"])
    return SqliteStore(data_dir)


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request) -> Opener:
    return Opener(request.param, request.getfixturevalue("pg_cluster") if request.param == "postgres" else None)
