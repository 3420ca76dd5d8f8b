"""A throwaway PostgreSQL cluster for the tests: Debian's postgresql, initdb'd under a temporary
directory, listening on a free loopback port (and a unix socket in that directory), stopped and
removed at the end. initdb refuses to run as root: as root the cluster belongs to the `postgres`
user Debian creates; otherwise to the current user. Clients log in as role `kms` with a password."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROLE = "kms"


def pg_bin() -> Path | None:
    """The newest installed server binaries directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """initdb + pg_ctl start; `url(db)` for role kms, `password` for it; `stop()` removes everything."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="kms-pg-"))
        self.data, self.socket_dir = self.root / "data", self.root / "run"
        self.port = _free_port()
        self.password = secrets.token_urlsafe(18)
        self.owner = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o644)
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.owner, "--auth=trust", "-E", "UTF8",
                      "--no-locale", "--no-sync")
            pwfile.unlink()
            (self.data / "postgresql.auto.conf").open("a").write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 200\nfsync = on\nsynchronous_commit = on\nshared_buffers = 32MB\n")
            (self.data / "pg_hba.conf").write_text(  # the owner over the socket; the kms role only with its password
                f"local all {self.owner} trust\nlocal all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "start")
            self.sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")
        except BaseException:
            self.stop()
            raise

    def _run(self, tool: str, *args: str) -> str:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if proc.returncode:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc.stdout

    def sql(self, statement: str, db: str = "postgres") -> str:
        """Run one statement as the cluster owner (over the unix socket)."""
        return self._run("psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.owner, "-d", db,
                         "-v", "ON_ERROR_STOP=1", "-XAtqc", statement)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database owned by role kms; returns its URL (no password in it)."""
        name = name or f"kms_{secrets.token_hex(6)}"
        self.sql(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{db}"

    def password_file(self, directory: Path) -> Path:
        """The password in a 0600 file under directory (as store_password_file wants it)."""
        path = directory / "store-password"
        path.write_text(self.password + "\n")
        os.chmod(path, 0o600)
        return path

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)
