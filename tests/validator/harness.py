"""privval end-to-end harness: a restartable `kms serve` on a fixed loopback port, the domain, a signer subprocess."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from kms.client import ClientState, Credentials, KmsClient
from kms.validator.kms_link import ValidatorLink
from tests.auditor import auditor_public
from tests.e2e.conftest import anchor_for, policy_for, recovery_public
from tests.e2e.server import ServerProcess, terminate

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KmsServer:
    """`kms serve` on one data directory and one fixed API port, so clients reconnect after a restart."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.api = f"127.0.0.1:{self.port}"
        self.proc: ServerProcess | None = None
        self.start()

    def start(self) -> None:
        self.proc = ServerProcess(self.data_dir, f"--listen={self.api}", log_level="info")

    def kill(self) -> None:
        """SIGKILL: no drain, no flush beyond what the store already committed."""
        assert self.proc is not None
        self.proc.proc.send_signal(signal.SIGKILL)
        self.proc.proc.wait(10)
        self.proc.stop()

    def restart(self) -> None:
        assert self.proc is not None
        self.proc.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def client(self, creds: Credentials, **kw) -> KmsClient:
        assert self.proc is not None
        return KmsClient(self.api, credentials=creds, policy=policy_for(self.proc), trust_anchor=anchor_for(self.proc),
                         **kw)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection to the store, committed and CLOSED on exit: a connection left open in this process would
        go stale when restore() replaces the database under it."""
        db = sqlite3.connect(self.data_dir / "kms.sqlite3", timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def record(self, record_id: str) -> tuple[int, bytes]:
        with self._db() as db:
            row = db.execute("SELECT revision, blob FROM records WHERE key_id = ?", (record_id,)).fetchone()
        assert row is not None, record_id
        return int(row[0]), bytes(row[1])

    def put_record(self, record_id: str, revision: int, blob: bytes) -> None:
        """What a malicious or broken host (or an operator restoring a backup) can do to the store."""
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO records (key_id, revision, blob) VALUES (?, ?, ?)",
                       (record_id, revision, blob))

    def swap_record(self, record_id: str, revision: int, blob: bytes) -> tuple[int, bytes]:
        """put_record, returning the row it replaced, in one transaction (no commit of the server in between)."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            old = db.execute("SELECT revision, blob FROM records WHERE key_id = ?", (record_id,)).fetchone()
            db.execute("INSERT OR REPLACE INTO records (key_id, revision, blob) VALUES (?, ?, ?)",
                       (record_id, revision, blob))
        assert old is not None, record_id
        return int(old[0]), bytes(old[1])

    def snapshot(self, path: Path) -> None:
        """A consistent copy of the whole store as committed now (SQLite's online backup), as a host can take."""
        src, dst = sqlite3.connect(self.data_dir / "kms.sqlite3", timeout=30), sqlite3.connect(path)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()

    def restore(self, path: Path) -> None:
        """SIGKILL the server, put an older snapshot of the store in place, start again: a consistent older prefix."""
        self.kill()
        db = self.data_dir / "kms.sqlite3"
        for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            extra.unlink(missing_ok=True)
        shutil.copyfile(path, db)
        self.start()

    def delete_record(self, record_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM records WHERE key_id = ?", (record_id,))


class Domain:
    """An initialized server with an admin, and a signer principal (USER) that is granted the validator keys."""

    def __init__(self, server: KmsServer, tmp: Path) -> None:
        self.server = server
        self.admin = Credentials.generate("admin")
        self.signer = Credentials.generate("validator-signer")
        self.signer_dir = tmp / "signer-credentials"
        self.signer.save(self.signer_dir)
        with server.client(self.admin, new_domain=True) as c:
            c.init(recovery_public(3), threshold=2, admin_name="admin", auditor_public_keys=auditor_public())
            c.add_principal(self.signer.principal_id, "validator-signer", "USER")
            self.domain_id = c.domain_id
        state = ClientState.for_credentials(self.signer_dir)
        state.pin(self.domain_id)
        state.save()

    def forget_signer_head(self) -> None:
        """What an operator who accepts a restore of the KMS does (`kms credentials forget-head`)."""
        state = ClientState.for_credentials(self.signer_dir)
        state.forget_head(self.domain_id)
        state.save()

    def create_key(self, chain_id: str, spec: str = "ed25519") -> str:
        with self.server.client(self.admin) as c:
            info = ValidatorLink(c).create(chain_id, spec)
            c.create_grant(info.key_id, self.signer.principal_id, ["*"])
        return info.key_id

    def config(self, path: Path, validators: list[dict[str, str]], **signer: object) -> Path:
        """A `kms validator run` TOML file for this domain."""
        assert self.server.proc is not None
        lines = ["[kms]", f'server = "{self.server.api}"', f'credentials = "{self.signer_dir}"',
                 f'mrsigner = "{self.server.proc.mrsigner.hex()}"',
                 f'simulated_root = "{self.server.data_dir / "sgx-sim" / "root-ca.pem"}"',
                 "allow_simulation_insecure = true", "timeout = 10", "", "[signer]",
                 f'identity_key = "{path.parent / "identity.key"}"', "backoff_min_s = 0.05", "backoff_max_s = 0.5"]
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in signer.items()]
        for v in validators:
            lines += ["", "[[validator]]", *[f'{k} = "{val}"' for k, val in v.items()]]
        path.write_text("\n".join(lines) + "\n")
        return path


class SignerProcess:
    """`python -m kms validator run --config FILE` with its JSON log lines kept."""

    def __init__(self, config: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "kms", "validator", "run", "--config", str(config)],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return any(text in line for line in self.lines)
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: whatever the signer had not written is lost."""
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM: the signer finishes the request in hand and exits 0."""
        terminate(self.proc, timeout)
        self._reader.join(5)
        return self.proc.returncode
