"""`kms validator run` configuration: a TOML file with the KMS connection and one [[validator]] per chain/key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kms.attestation.policy import RELAXATIONS

PROTOCOLS = ("v0.38",)
_KMS_VALUE = {"server": "server", "timeout": "timeout", "mrsigner": "mrsigner",
              "isvprodid": "isvprodid", "min_isvsvn": "min-isvsvn", "at": "at", "pccs": "pccs"}
_KMS_PATH = {"credentials": "credentials", "root": "root", "simulated_root": "simulated-root",
             "collateral": "collateral", "pccs_ca": "pccs-ca", "collateral_cache": "collateral-cache"}
_KMS_LIST = {"mrenclave": "mrenclave", "allow_tcb_status": "allow-tcb-status"}
_KMS_FLAGS = {name: name.replace("_", "-") for name in RELAXATIONS}
_NODE_ID = re.compile(r"^[0-9a-f]{40}$")


class ValidatorConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the setting."""


@dataclass(frozen=True)
class Address:
    """Where the node's priv_validator_laddr listens: tcp (SecretConnection) or unix (plain)."""

    scheme: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""
    node_id: str = ""  # tcp://<id>@host:port pins the node's SecretConnection key

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class ValidatorEntry:
    """One [[validator]]: the chain, the KMS key that signs for it and the node to dial."""

    chain_id: str
    key_id: str
    addr: Address
    secret_key: Path
    protocol: str = "v0.38"
    sign_extensions: bool = True


@dataclass(frozen=True)
class SignerConfig:
    """The whole file: KMS connection flags (as `kms` takes them), signer settings and the validators."""

    kms_argv: tuple[str, ...]
    validators: tuple[ValidatorEntry, ...]
    state_dir: Path = Path("validator-state")  # the watermark files (two-sided guard); relative to the file
    metrics_listen: str = ""
    log_level: str = "info"
    backoff_min_s: float = 0.1
    backoff_max_s: float = 10.0
    connect_timeout_s: float = 5.0
    idle_timeout_s: float = 60.0


def parse_address(text: str) -> Address:
    """tcp://[node-id@]host:port or unix:///absolute/path."""
    url = urlsplit(text)
    if url.scheme == "unix":
        path = url.path if not url.netloc else "/" + url.netloc + url.path
        if not path.startswith("/"):
            raise ValidatorConfigError(f"addr {text!r}: unix:// needs an absolute path")
        return Address("unix", path=path)
    if url.scheme == "tcp":
        try:
            host, port = url.hostname, url.port
        except ValueError:
            host, port = None, None
        node_id = (url.username or "").lower()
        if not host or not port or url.path not in ("", "/") or url.password:
            raise ValidatorConfigError(f"addr {text!r}: expected tcp://[node-id@]host:port")
        if node_id and not _NODE_ID.match(node_id):
            raise ValidatorConfigError(f"addr {text!r}: a node id is 40 hex digits")
        return Address("tcp", host=host, port=port, node_id=node_id)
    raise ValidatorConfigError(f"addr {text!r}: the scheme must be tcp:// or unix://")


def kms_argv(table: dict[str, Any], base: Path) -> tuple[str, ...]:
    argv: list[str] = []
    for key, value in table.items():
        if key in _KMS_VALUE:
            argv.append(f"--{_KMS_VALUE[key]}={value}")
        elif key in _KMS_PATH:
            argv.append(f"--{_KMS_PATH[key]}={base / str(value)}")
        elif key in _KMS_LIST:
            values = value if isinstance(value, list) else [value]
            argv += [f"--{_KMS_LIST[key]}={v}" for v in values]
        elif key in _KMS_FLAGS:
            if not isinstance(value, bool):
                raise ValidatorConfigError(f"[kms] {key}: expected true or false")
            argv += [f"--{_KMS_FLAGS[key]}"] if value else []
        else:
            raise ValidatorConfigError(f"[kms] {key}: unknown setting")
    return tuple(argv)


def _entry(raw: dict[str, Any], base: Path, default_key: Path, index: int) -> ValidatorEntry:
    where = f"[[validator]] #{index + 1}"
    allowed = {"chain_id", "key_id", "addr", "secret_key", "protocol", "sign_extensions"}
    unknown = set(raw) - allowed
    if unknown:
        raise ValidatorConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    for name in ("chain_id", "key_id", "addr"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise ValidatorConfigError(f"{where}: {name} is required (a non-empty string)")
    if len(raw["chain_id"]) > 50:
        raise ValidatorConfigError(f"{where}: chain_id is longer than 50 characters")
    protocol = raw.get("protocol", "v0.38")
    if protocol not in PROTOCOLS:
        raise ValidatorConfigError(f"{where}: protocol {protocol!r} is not supported (one of {', '.join(PROTOCOLS)})")
    secret = base / str(raw["secret_key"]) if "secret_key" in raw else default_key
    return ValidatorEntry(raw["chain_id"], raw["key_id"], parse_address(raw["addr"]), secret, protocol,
                          bool(raw.get("sign_extensions", True)))


def _number(table: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValidatorConfigError(f"[signer] {name}: expected a number in {lo}..{hi}")
    return float(value)


def load(path: Path) -> SignerConfig:
    """Read and validate the configuration file (relative paths are relative to its directory)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidatorConfigError(f"cannot read {path}: {exc}") from exc
    base = path.resolve().parent
    unknown = set(data) - {"kms", "signer", "validator"}
    if unknown:
        raise ValidatorConfigError(f"unknown table(s) {', '.join(sorted(unknown))}")
    signer = data.get("signer", {})
    extra = set(signer) - {"identity_key", "metrics_listen", "log_level", "backoff_min_s", "backoff_max_s",
                           "connect_timeout_s", "idle_timeout_s", "state_dir"}
    if extra:
        raise ValidatorConfigError(f"[signer] unknown setting(s) {', '.join(sorted(extra))}")
    default_key = base / str(signer.get("identity_key", "validator-identity.key"))
    if not isinstance(signer.get("state_dir", "validator-state"), str) or not signer.get("state_dir", "x"):
        raise ValidatorConfigError("[signer] state_dir: expected a directory path (a non-empty string)")
    raw = data.get("validator", [])
    if not isinstance(raw, list) or not raw:
        raise ValidatorConfigError("no [[validator]] entries")
    entries = tuple(_entry(r, base, default_key, i) for i, r in enumerate(raw))
    seen = [(e.chain_id, e.key_id) for e in entries]
    if len(set(seen)) != len(seen) or len({e.key_id for e in entries}) != len(entries):
        raise ValidatorConfigError("a key signs for one [[validator]] entry only")
    lo = _number(signer, "backoff_min_s", 0.1, 0.01, 60)
    config = SignerConfig(
        kms_argv=kms_argv(data.get("kms", {}), base), validators=entries,
        state_dir=base / str(signer.get("state_dir", "validator-state")),
        metrics_listen=str(signer.get("metrics_listen", "")), log_level=str(signer.get("log_level", "info")),
        backoff_min_s=lo, backoff_max_s=_number(signer, "backoff_max_s", 10.0, lo, 600),
        connect_timeout_s=_number(signer, "connect_timeout_s", 5.0, 0.1, 120),
        idle_timeout_s=_number(signer, "idle_timeout_s", 60.0, 1, 3600))
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ValidatorConfigError("[signer] log_level: debug, info, warning or error")
    return config
