"""The validator's own side of the two-sided double-sign guard (docs/validators.md, "The watermark").

`kms validator run` keeps, per key and chain, the last height/round/step it handed a signature to
its node for and SHA-256 of those sign bytes, in a file of its own state directory. It refuses
locally anything below that watermark, sends the watermark with every sign request (the enclave
then signs only above both its own state and the watermark), releases a signature at the
watermark's own position only if it is over the watermark's bytes, and writes the new watermark
durably (atomic rename, file and directory fsync) BEFORE the node gets the signature. A rolled-back
KMS store alone then cannot produce a double sign: the validator's host must be rolled back too.

File (`<state_dir>/<chain_id>@<key_id>.json`, both %-quoted; JSON, like CometBFT's
priv_validator_state.json, so an operator can read and, when re-seeding, write it):

    {"format": "enclave-kms validator watermark", "version": 1, "chain_id": "cosmoshub-4",
     "key_id": "…", "height": 12345, "round": 0, "step": 3, "sign_bytes_sha256": "<64 hex or empty>"}

A file that is not exactly this (unknown or missing fields, wrong types or ranges, another key or
chain, another format or version) stops the signer: it is never silently reset. A missing file is
seeded once from the KMS's guard state (trust on first use; logged).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from kms.log import get_logger
from kms.proto.enclave.v1 import boundary_pb2 as pb

FORMAT, VERSION = "enclave-kms validator watermark", 1
STEPS = {"propose": 1, "prevote": 2, "precommit": 3}  # FilePV steps, as the enclave numbers them
_FIELDS = {"format", "version", "chain_id", "key_id", "height", "round", "step", "sign_bytes_sha256"}
_LIMITS = {"height": 2**63 - 1, "round": 2**31 - 1, "step": 3}
REPAIR = ("see docs/validators.md, 'When the watermark file is lost or damaged': move the file aside and "
          "re-seed it only once you know the last height this validator signed")

Position = tuple[int, int, int]  # height, round, step
_log = get_logger("kms.validator")


class WatermarkError(Exception):
    """The watermark cannot be read (corrupt), written, or locked: the message names the file."""


class Regression(Exception):
    """The request is at or below what this validator already handed out: refused without asking the KMS."""


@dataclass(frozen=True)
class Watermark:
    """A last signed position and SHA-256 of the sign bytes signed there (b"" when unknown)."""

    height: int
    round: int
    step: int
    sign_bytes_sha256: bytes = b""

    @property
    def position(self) -> Position:
        return (self.height, self.round, self.step)

    def to_pb(self) -> pb.ValidatorWatermark:
        return pb.ValidatorWatermark(height=self.height, round=self.round, step=self.step,
                                     sign_bytes_hash=self.sign_bytes_sha256)


def file_name(chain_id: str, key_id: str) -> str:
    """The watermark file's name in the state directory (unambiguous: '@' is quoted inside both parts)."""
    return f"{quote(chain_id, safe='')}@{quote(key_id, safe='')}.json"


def _parse(text: str, chain_id: str, key_id: str) -> Watermark:
    data = json.loads(text)
    if not isinstance(data, dict) or set(data) != _FIELDS:
        raise ValueError(f"expected exactly the fields {', '.join(sorted(_FIELDS))}")
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise ValueError(f"not a version {VERSION} watermark file")
    if (data["chain_id"], data["key_id"]) != (chain_id, key_id):
        raise ValueError(f"it belongs to key {data['key_id']!r} of chain {data['chain_id']!r}")
    for name, top in _LIMITS.items():
        value = data[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise ValueError(f"{name}: expected an integer in 0..{top}")
    digest = data["sign_bytes_sha256"]
    if not isinstance(digest, str) or len(digest) not in (0, 64) or digest.strip("0123456789abcdef"):
        raise ValueError("sign_bytes_sha256: expected 64 lowercase hex digits or ''")
    return Watermark(data["height"], data["round"], data["step"], bytes.fromhex(digest))


def read_existing(path: Path, repair: str) -> str | None:
    """A watermark file's text, None when there is none; WatermarkError (naming `repair`) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise WatermarkError(f"cannot read the watermark file {path}: {exc}; {repair}") from exc


def write_durably(path: Path, text: str) -> None:
    """Replace path's content atomically and durably: temp file, fsync, rename, directory fsync."""
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise WatermarkError(f"cannot write the watermark file {path}: {exc}") from exc


def lock_exclusive(path: Path) -> int:
    """Create path's directory (0700) and hold `path.lock` (flock, non-blocking) for the caller's lifetime: one
    signer process per key. Returns the lock's descriptor; WatermarkError when it is held or cannot be made."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise WatermarkError(f"cannot use the state directory {path.parent}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise WatermarkError(f"{path} is in use by another signer process: one signer per key") from exc
    return fd


class WatermarkFile:
    """The watermark file of one key and chain, locked (flock) against a second signer for its lifetime."""

    def __init__(self, state_dir: Path, chain_id: str, key_id: str) -> None:
        self.chain_id, self.key_id = chain_id, key_id
        self.dir = state_dir
        self.path = state_dir / file_name(chain_id, key_id)
        self._lock_fd = lock_exclusive(self.path)

    def load(self) -> Watermark | None:
        """The stored watermark, None when there is no file; WatermarkError when it is not a valid one."""
        text = read_existing(self.path, REPAIR)
        if text is None:
            return None
        try:
            return _parse(text, self.chain_id, self.key_id)
        except (ValueError, TypeError) as exc:
            raise WatermarkError(f"the watermark file {self.path} is corrupt ({exc}); the signer will not "
                                 f"start with it; {REPAIR}") from exc

    def write(self, wm: Watermark) -> None:
        """Replace the file atomically and durably: temp file, fsync, rename, directory fsync."""
        body = {"format": FORMAT, "version": VERSION, "chain_id": self.chain_id, "key_id": self.key_id,
                "height": wm.height, "round": wm.round, "step": wm.step,
                "sign_bytes_sha256": wm.sign_bytes_sha256.hex()}
        write_durably(self.path, json.dumps(body, indent=1) + "\n")

    def close(self) -> None:
        """Release the lock (the process's exit does too)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class SignerGuard:
    """The validator-side guard of one key: the watermark in memory, written through to its file.
    Thread-safe; one handler (one node connection) per key uses it."""

    def __init__(self, file: WatermarkFile) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._current = file.load()

    @property
    def current(self) -> Watermark | None:
        return self._current

    def seed(self, export: pb.ValidatorStateExport) -> Watermark:
        """First start without a file: start from the KMS's guard state (its position and sign bytes)."""
        with self._lock:
            if self._current is None:
                digest = hashlib.sha256(export.sign_bytes).digest() if export.sign_bytes else b""
                wm = Watermark(export.height, export.round, export.step, digest)
                self.file.write(wm)
                self._current = wm
                _log.warning("validator: no watermark file for this key: seeded from the KMS's guard state (right "
                             "on a first start; otherwise the file was lost, see docs/validators.md)",
                             key_id=self.file.key_id, chain=self.file.chain_id, path=str(self.file.path),
                             height=wm.height, round=wm.round, step=wm.step)
            return self._current

    def check(self, pos: Position) -> pb.ValidatorWatermark:
        """Before asking the KMS: Regression below the watermark, and at it when its bytes are unknown."""
        with self._lock:
            wm = self._current
            if wm is None:
                raise WatermarkError(f"no watermark for key {self.file.key_id} yet (not seeded)")
            if pos < wm.position or (pos == wm.position and not wm.sign_bytes_sha256):
                raise Regression(f"at or below this validator's watermark {wm.position}")
            return wm.to_pb()

    def record(self, pos: Position, signed: bytes) -> None:
        """After the KMS signed `signed` at pos, before the node gets it: at the watermark the bytes must be
        the watermark's (Regression otherwise); above it the new watermark is written (WatermarkError if not)."""
        digest = hashlib.sha256(signed).digest()
        with self._lock:
            wm = self._current
            if wm is None or pos < wm.position:
                raise Regression(f"below this validator's watermark {wm.position if wm else None}")
            if pos == wm.position:
                if digest != wm.sign_bytes_sha256:
                    raise Regression(f"the KMS's signature at {pos} is over other bytes than this validator "
                                     "handed out there")
                return
            new = Watermark(*pos, digest)
            self.file.write(new)
            self._current = new
