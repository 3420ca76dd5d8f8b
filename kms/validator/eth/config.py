"""`kms validator eth serve` configuration: a TOML file with [kms] (as `kms validator run` has it) and [eth].

    [kms]                      # the KMS connection, named like the CLI's flags (docs/validators.md)
    server = "kms.example:7443"
    credentials = "creds"      # pinned to the domain (`kms credentials new`)
    ...
    [eth]
    listen = "127.0.0.1:9000"  # loopback by default; another address needs listen_remote_insecure = true
    preset = "mainnet"         # or "minimal" (sync committee of 32: devnets and tests)
    genesis_fork_version = "0x00000000"   # the network's, for VALIDATOR_REGISTRATION (mainnet 0x00000000)
    state_dir = "eth-state"    # the watermark files (two-sided guard), relative to this file
    keymanager_token_file = "keymanager.token"   # serves /eth/v1/keystores with this bearer token; omit: not served
    genesis_validators_root = "0x4b36…"          # the chain imported keys sign for (required with the keymanager)
    metrics_listen = ""        # host:port for /metrics
    log_level = "info"
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kms.config import ConfigError, parse_address
from kms.validator.config import ValidatorConfigError, kms_argv
from kms.validator.eth.ssz import PRESETS

_ETH = {"genesis_validators_root",
        "listen", "listen_remote_insecure", "preset", "genesis_fork_version", "state_dir", "keymanager_token_file",
        "metrics_listen", "log_level"}
MIN_TOKEN = 16


@dataclass(frozen=True)
class EthConfig:
    kms_argv: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 9000
    listen_remote_insecure: bool = False
    preset: str = "mainnet"
    genesis_fork_version: bytes = bytes(4)
    state_dir: Path = Path("eth-state")
    keymanager_token: str | None = None
    genesis_validators_root: bytes = bytes(32)
    metrics_listen: str = ""
    log_level: str = "info"


def _loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def _token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidatorConfigError(f"[eth] keymanager_token_file: cannot read {path}: {exc}") from exc
    if len(token) < MIN_TOKEN or not token.isascii() or any(c.isspace() for c in token):
        raise ValidatorConfigError(f"[eth] keymanager_token_file: {path} must hold one token of at least "
                                   f"{MIN_TOKEN} printable ASCII characters")
    return token


def load(path: Path) -> EthConfig:
    """Read and validate the file (relative paths are relative to its directory)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidatorConfigError(f"cannot read {path}: {exc}") from exc
    base = path.resolve().parent
    unknown = set(data) - {"kms", "eth"}
    if unknown:
        raise ValidatorConfigError(f"unknown table(s) {', '.join(sorted(unknown))}")
    eth = data.get("eth", {})
    if set(eth) - _ETH:
        raise ValidatorConfigError(f"[eth] unknown setting(s) {', '.join(sorted(set(eth) - _ETH))}")
    try:
        host, port = parse_address(str(eth.get("listen", "127.0.0.1:9000")), "[eth] listen")
    except ConfigError as exc:
        raise ValidatorConfigError(str(exc)) from exc
    remote = eth.get("listen_remote_insecure", False)
    if not isinstance(remote, bool):
        raise ValidatorConfigError("[eth] listen_remote_insecure: expected true or false")
    if not _loopback(host) and not remote:
        raise ValidatorConfigError(f"[eth] listen: {host} is not a loopback address; the signing API has no "
                                   "authentication: set listen_remote_insecure = true to serve it there anyway")
    preset = eth.get("preset", "mainnet")
    if preset not in PRESETS:
        raise ValidatorConfigError(f"[eth] preset: one of {', '.join(PRESETS)}")
    version = str(eth.get("genesis_fork_version", "0x00000000"))
    if len(version) != 10 or not version.startswith("0x") or version[2:].strip("0123456789abcdefABCDEF"):
        raise ValidatorConfigError("[eth] genesis_fork_version: expected 0x and 8 hex digits")
    state_dir = eth.get("state_dir", "eth-state")
    if not isinstance(state_dir, str) or not state_dir:
        raise ValidatorConfigError("[eth] state_dir: expected a directory path (a non-empty string)")
    token_file = eth.get("keymanager_token_file")
    gvr = str(eth.get("genesis_validators_root", ""))
    if token_file is not None or gvr:
        if len(gvr) != 66 or not gvr.startswith("0x") or gvr[2:].strip("0123456789abcdefABCDEF"):
            raise ValidatorConfigError("[eth] genesis_validators_root: expected 0x and 64 hex digits (required with "
                                       "keymanager_token_file: the chain imported keys sign for)")
    log_level = str(eth.get("log_level", "info"))
    if log_level not in ("debug", "info", "warning", "error"):
        raise ValidatorConfigError("[eth] log_level: debug, info, warning or error")
    return EthConfig(kms_argv=kms_argv(data.get("kms", {}), base), host=host, port=port,
                     listen_remote_insecure=remote, preset=preset, genesis_fork_version=bytes.fromhex(version[2:]),
                     state_dir=base / state_dir, keymanager_token=None if token_file is None else _token(
                         base / str(token_file)), metrics_listen=str(eth.get("metrics_listen", "")),
                     log_level=log_level, genesis_validators_root=bytes.fromhex(gvr[2:]) if gvr else bytes(32))
