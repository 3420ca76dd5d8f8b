"""Files of the simulated platform: atomic writes with explicit modes, an inter-process lock, JSON."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kms.sim.errors import SimProvisioningError

PRIVATE, PUBLIC = 0o600, 0o644


def ensure_dir(path: Path) -> Path:
    """Create `path` (mode 0700, like the C side creates <data>/sgx-sim) if it is absent."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SimProvisioningError(f"cannot create {path}: {exc}") from exc
    return path


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a temporary file created with `mode`, fsync it, rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise SimProvisioningError(f"cannot write {path}: {exc}") from exc


def read_bytes(path: Path, *, private: bool = False) -> bytes:
    """Read a platform file; private files must not be readable by group or others."""
    try:
        if private and os.stat(path).st_mode & 0o077:
            raise SimProvisioningError(f"{path} must be mode 0600 (readable by its owner only)")
        return path.read_bytes()
    except OSError as exc:
        raise SimProvisioningError(f"cannot read {path}: {exc}") from exc


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), PUBLIC)


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_bytes(path))
    except ValueError as exc:
        raise SimProvisioningError(f"{path} is not valid JSON: {exc}") from exc


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on <directory>/.lock, held for the block (processes and threads)."""
    ensure_dir(directory)
    try:
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
    except OSError as exc:
        raise SimProvisioningError(f"cannot open the lock file in {directory}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
