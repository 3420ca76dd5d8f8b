"""What only the PostgreSQL store has, against a real server (tests/pg.py): a COMMIT whose answer is lost is
settled by reading back (stored: success, once; absent: run again), never re-sent blindly; the schema's
version table (a newer schema is refused, replicas starting together migrate once); the URL and password
rules of the settings."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from kms.config import ConfigError, load_settings
from kms.service.store import StoreError, open_store, store_password
from kms.service.store.postgres import PostgresStore


class CommitDropper:
    """A TCP proxy to the server that, when armed, breaks the link at the next COMMIT: "before" never delivers
    it; "after" delivers it and closes, so the server commits but the answer never reaches the client."""

    def __init__(self, port: int) -> None:
        self.target, self.mode, self.dropped = ("127.0.0.1", port), "", 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream and self.mode and b"COMMIT\x00" in data:
                    mode, self.mode = self.mode, ""
                    self.dropped += 1
                    if mode == "after":
                        dst.sendall(data)
                        dst.shutdown(socket.SHUT_WR)  # the server reads COMMIT, commits, then sees the end
                    src.close()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def dropper(pg_cluster):
    proxy = CommitDropper(pg_cluster.port)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_lost_commit_is_settled_by_reading_back_never_duplicated(pg_cluster, dropper, tmp_path: Path,
                                                                   mode: str) -> None:
    db = pg_cluster.create_database().rsplit("/", 1)[1]
    url = f"postgresql://kms@127.0.0.1:{dropper.port}/{db}"
    with PostgresStore(tmp_path, url, password=pg_cluster.password, timeout_s=5) as store:
        store.put("k", 0, 1, b"one")
        dropper.mode = mode
        store.commit("k", 1, 2, b"two", 1, b"entry-1")  # succeeds: read back ("after") or run again ("before")
        assert dropper.dropped == 1
        dropper.mode = mode
        store.audit_append(1, b"audit-1")
        assert dropper.dropped == 2
        assert store.get("k") == b"two" and store.revision("k") == 2
        assert store.state_log_get(1) == b"entry-1" and store.state_log_get(2) is None
        assert store.audit_entries() == [(1, b"audit-1")]
        store.commit("k", 2, 3, b"three", 2, b"entry-2")  # the chain goes on, no gap, no duplicate
    assert pg_cluster.sql("SELECT count(*) FROM state_log", db=db) == "2\n"


def test_a_newer_schema_is_refused_and_migration_runs_once(pg_cluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database()
    db = url.rsplit("/", 1)[1]
    stores: list[PostgresStore] = []
    threads = [threading.Thread(target=lambda: stores.append(PostgresStore(tmp_path, url,
                                                                           password=pg_cluster.password)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(stores) == 4  # replicas starting together: one migrates, the others wait and find it done
    for s in stores:
        s.close()
    assert pg_cluster.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
                          db=db) == "1,2\n"
    pg_cluster.sql("INSERT INTO schema_migrations VALUES (99, 'from the future', 'now')", db=db)
    with pytest.raises(StoreError, match="version 99, newer than this KMS knows"):
        PostgresStore(tmp_path, url, password=pg_cluster.password)


def test_a_wrong_password_is_a_clear_start_up_error(pg_cluster, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the PostgreSQL store"):
        PostgresStore(tmp_path, pg_cluster.create_database(), password="wrong", timeout_s=3)


def test_settings_select_postgres_with_the_password_from_a_file(pg_cluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database()
    settings = load_settings(env={"KMS_STORE_URL": url}, flags={
        "data_dir": str(tmp_path / "d"), "store_password_file": str(pg_cluster.password_file(tmp_path))})
    with open_store(settings, env={}) as store:
        assert isinstance(store, PostgresStore)
        store.put("k", 0, 1, b"v")
    with open_store(load_settings(env={"KMS_STORE_URL": url}, flags={"data_dir": str(tmp_path / "d")}),
                    env={"KMS_STORE_PASSWORD": pg_cluster.password}) as store:
        assert store.get("k") == b"v"


def test_store_url_rules(tmp_path: Path) -> None:
    for url, why in (("postgresql://kms:secret@127.0.0.1/kms", "holds a password"),
                     ("postgresql://kms@127.0.0.1/kms?password=secret", "holds a password"),
                     ("mysql://kms@127.0.0.1/kms", "expected a postgresql:// URL"),
                     ("postgresql://kms@db.example:5432/kms", "needs sslmode=verify-full"),
                     ("postgresql://kms@10.0.0.5/kms?sslmode=require", "needs sslmode=verify-full")):
        with pytest.raises(ConfigError, match=why) as info:
            load_settings(env={}, flags={"store_url": url})
        assert "secret" not in str(info.value)
    for ok in ("postgresql://kms@127.0.0.1:5432/kms", "postgresql://kms@localhost/kms", "postgresql:///kms?host=/run/pg",
               "postgresql://kms@db.example/kms?sslmode=verify-full&sslrootcert=/etc/ca.pem"):
        assert load_settings(env={}, flags={"store_url": ok}).store_url == ok
    assert load_settings(env={}, flags={"store_url": "postgresql://kms@db.example/kms",
                                        "store_plaintext_insecure": True}).store_plaintext_insecure
    with pytest.raises(ConfigError, match="only with a postgresql"):
        load_settings(env={}, flags={"store_password_file": "/x"})


def test_password_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    os.chmod(path, 0o644)
    with pytest.raises(StoreError, match="readable by other users"):
        store_password(str(path), {})
    os.chmod(path, 0o600)
    assert store_password(str(path), {"KMS_STORE_PASSWORD": "env"}) == "s3cret"
    path.write_text("")
    with pytest.raises(StoreError, match="one line"):
        store_password(str(path), {})
    assert store_password("", {"KMS_STORE_PASSWORD": "env"}) == "env"
