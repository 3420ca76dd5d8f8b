"""Where Enclave KMS keeps its files when a command is not told: one home directory, never the working directory.

The home is `$KMS_HOME`, else `$XDG_CONFIG_HOME/kms`, else `~/.config/kms` (docs/operations.md, "Files"):

    <home>/credentials/<name>/   client credentials (key.pem 0600, cert.pem, state.json): `--credentials NAME`
    <home>/recovery/keys/        recovery private keys made by `kms admin init --recovery-keys N` (0600)
    <home>/recovery/shares/      the encrypted recovery shares (a separate folder: they go to other people)
    <home>/auditor/              the auditor key pair made by `kms audit keygen`
    <home>/server/               `kms serve`'s data directory (store, sealed domain key, simulated platform)

Nothing here creates a directory: the commands that write create what they write into, with private modes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_CREDENTIALS = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def home() -> Path:
    """The KMS home directory (not created here)."""
    env = os.environ.get("KMS_HOME")
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME")
    return (Path(config).expanduser() if config else Path.home() / ".config") / "kms"


def credentials_dir(value: str | os.PathLike[str] | None) -> Path:
    """A credentials directory from `--credentials`/KMS_CREDENTIALS: a value with a "/" (or "~") is a path,
    a bare name is <home>/credentials/<name>; nothing is the name "default". ValueError for anything else."""
    text = os.fspath(value) if value is not None else DEFAULT_CREDENTIALS
    if "/" in text or text.startswith("~"):
        return Path(text).expanduser()
    if not _NAME.fullmatch(text):
        raise ValueError(f"{text!r} is neither a path (it has no '/') nor a credentials name (letters, digits, "
                         "'_', '.', '-'; at most 64)")
    return home() / "credentials" / text


def recovery_dir() -> Path:
    return home() / "recovery"


def auditor_dir() -> Path:
    return home() / "auditor"


def server_data_dir() -> Path:
    return home() / "server"


def build_dir() -> Path:
    """Where `make` puts the enclave image, its SIGSTRUCT and the simulated CPU: `$KMS_BUILD_DIR`, else the
    checkout's build/ beside this package (whatever the working directory)."""
    env = os.environ.get("KMS_BUILD_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "build"
