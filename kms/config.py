"""`kms serve` settings: TOML file, then KMS_* environment, then flags; validated into a frozen Settings.

The flags themselves are declared from these fields by kms.commands.serve.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms import paths

# Enclave limits the front end must stay within (enclave/include/kms/limits.h, enclave/src/session.h;
# tests/service/test_config.py checks them against the built bridge).
SESSION_FRAME_MAX = 128 * 1024      # KMS_SESSION_IN_MAX: client TLS bytes per SessionFrame
ENCLAVE_MAX_SESSIONS = 128          # KMS_MAX_SESSIONS
ENCLAVE_SESSION_IDLE_S = 600        # KMS_SESSION_IDLE_SECONDS: the enclave reaps idle sessions after this
MAX_TCS = 64                        # the simulated CPU's bound on thread slots
MAX_PROCESSES = 64                  # kms serve --processes
ENV_PREFIX = "KMS_"
CONFIG_ENV = "KMS_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")
QUOTING = ("simulated", "dcap")     # the quoting enclaves (kms.service.evidence.open_quoting_enclave)


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or out of range; the message names it and its source."""


def _meta(help_text: str, *, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"help": help_text, "lo": lo, "hi": hi}


@dataclass(frozen=True)
class Settings:
    """Every setting of `kms serve`; names are the TOML keys, KMS_<NAME> the environment, --name the flags."""

    data_dir: Path = field(default_factory=paths.server_data_dir, metadata=_meta(
        "data directory: store, sealed domain key, simulated platform (default: <KMS home>/server)"))
    listen: str = field(default="127.0.0.1:7443", metadata=_meta("gRPC API address host:port (0: any free port)"))
    health_listen: str = field(default="127.0.0.1:7444", metadata=_meta("plaintext gRPC health address"))
    metrics_listen: str = field(default="127.0.0.1:9464", metadata=_meta("Prometheus HTTP address ('' disables)"))
    enclave_tcs: int = field(default=8, metadata=_meta("the enclave's thread slots (TCS)", lo=1, hi=MAX_TCS))
    enclave_heap_mib: int = field(default=256, metadata=_meta(
        "the enclave's heap in MiB (its EPC budget; allocations beyond it fail with KMS_ERR_OUT_OF_MEMORY)",
        lo=4, hi=16384))
    enclave_stack_kib: int = field(default=1024, metadata=_meta("stack per thread slot in KiB", lo=64, hi=65536))
    workers: int = field(default=0, metadata=_meta("ECALL worker threads (0: enclave_tcs; at most enclave_tcs)",
                                                   lo=0, hi=MAX_TCS))
    max_queued_ecalls: int = field(default=256, metadata=_meta("evidence and session-open ECALLs queued or running",
                                                               lo=1, hi=65536))
    max_message_bytes: int = field(default=SESSION_FRAME_MAX + 1024, metadata=_meta(
        "largest gRPC message received", lo=1024, hi=SESSION_FRAME_MAX + 1024))
    max_sessions: int = field(default=ENCLAVE_MAX_SESSIONS, metadata=_meta(
        "concurrent sessions", lo=1, hi=ENCLAVE_MAX_SESSIONS))
    session_idle_timeout_s: float = field(default=300.0, metadata=_meta(
        "seconds without a client frame before a session is ended", lo=1, hi=ENCLAVE_SESSION_IDLE_S))
    keepalive_time_s: float = field(default=120.0, metadata=_meta("server keepalive ping interval", lo=1, hi=86400))
    keepalive_timeout_s: float = field(default=20.0, metadata=_meta("keepalive ping ack timeout", lo=1, hi=3600))
    keepalive_min_time_s: float = field(default=10.0, metadata=_meta(
        "shortest client ping interval accepted", lo=1, hi=3600))
    shutdown_delay_s: float = field(default=2.0, metadata=_meta(
        "seconds health reports NOT_SERVING before the server stops accepting", lo=0, hi=300))
    shutdown_grace_s: float = field(default=10.0, metadata=_meta(
        "seconds in-flight RPCs get to finish on shutdown", lo=0, hi=300))
    reflection: bool = field(default=False, metadata=_meta("serve gRPC reflection (advertises the API surface)"))
    sim_pccs: bool = field(default=True, metadata=_meta("start the simulated PCCS and advertise its URL"))
    sim_pccs_listen: str = field(default="127.0.0.1:0", metadata=_meta("simulated PCCS address (loopback only)"))
    collateral_url: str = field(default="", metadata=_meta(
        "PCCS URL advertised in GetEvidence (overrides sim_pccs); with quoting = dcap also where the join's collateral "
        "is fetched"))
    quoting: str = field(default="simulated", metadata=_meta(
        "quoting enclave: simulated (the simulated platform's QE) or dcap (the platform's QE3 through Intel's "
        "DCAP quote library, libsgx_dcap_ql.so.1; SGX hardware only)"))
    housekeeping_interval_s: float = field(default=3600.0, metadata=_meta(
        "seconds between housekeeping rounds (destroy keys past their deletion window, scheduled rotation); 0: off",
        lo=0, hi=7 * 86400))
    store_dir: str = field(default="", metadata=_meta(
        "directory of the record store when replicas share one (SQLite; '' = data_dir); the sealed domain key "
        "and the simulated platform stay in data_dir, which is this node's own"))
    replica_name: str = field(default="", metadata=_meta(
        "this replica's label in `kms cluster list` ('' = the host name; untrusted, for admins to read)"))
    cluster_poll_s: float = field(default=1.0, metadata=_meta(
        "seconds between this replica's looks at the shared store for joins (asking, admitting, granting)",
        lo=0.05, hi=3600))
    processes: int = field(default=1, metadata=_meta(
        "kms serve processes on this node, each with its own enclave, sharing the data directory, the store and "
        "the API port (SO_REUSEPORT); above 1 a supervisor serves health and metrics and restarts a worker that "
        "dies (docs/cluster.md)", lo=1, hi=MAX_PROCESSES))
    log_level: str = field(default="info", metadata=_meta("debug, info, warning or error"))
    store_url: str = field(default="", metadata=_meta(
        "record store: '' for the embedded SQLite file in data_dir, or postgresql://USER@HOST:PORT/DB (no password "
        "in it: store_password_file or KMS_STORE_PASSWORD)"))
    store_password_file: str = field(default="", metadata=_meta(
        "file holding the PostgreSQL password (one line; not readable by other users)"))
    store_pool_size: int = field(default=8, metadata=_meta("PostgreSQL connections in the pool", lo=1, hi=256))
    store_timeout_s: float = field(default=10.0, metadata=_meta(
        "PostgreSQL connect, statement and lock timeout; also the bound on settling a lost commit", lo=0.1, hi=600))
    store_group_commit: bool = field(default=True, metadata=_meta(
        "concurrent writes share one transaction and one flush (off: one transaction each)"))
    store_plaintext_insecure: bool = field(default=False, metadata=_meta(
        "allow a PostgreSQL host that is not loopback or a unix socket without sslmode=verify-full"))
    allow_world_writable_data_dir_insecure: bool = field(default=False, metadata=_meta(
        "start even if other users can write the data directory"))

    @property
    def worker_count(self) -> int:
        """The ECALL pool size: workers, or the enclave's thread slots."""
        return self.workers or self.enclave_tcs

    def insecure_settings(self) -> dict[str, object]:
        """The `_insecure` settings that are switched on (logged at start-up)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.endswith("_insecure") and getattr(self, f.name)}

    def public(self) -> dict[str, object]:
        """All settings as plain values, for the start-up log."""
        return {f.name: str(v) if isinstance(v := getattr(self, f.name), Path) else v for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_BOOL_TEXT = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def setting_type(name: str) -> type:
    """The Python type of a setting (Path, str, int, float or bool)."""
    return {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}[str(FIELDS[name].type)]


def _coerce(name: str, value: object, source: str, *, typed: bool = False) -> object:
    """A value from TOML (typed=True: no parsing of strings) or text (env, flags) as the setting's type."""
    kind, where = setting_type(name), f"{name} (from {source})"
    if isinstance(value, str) and kind is not str and kind is not Path and not typed:
        text = value.strip().lower()
        if kind is bool:
            if text not in _BOOL_TEXT:
                raise ConfigError(f"{where}: expected true or false, got {value!r}")
            return _BOOL_TEXT[text]
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{where}: expected {'an integer' if kind is int else 'a number'}, "
                              f"got {value!r}") from None
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if kind in (str, Path) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return Path(value) if kind is Path else kind(value)


def parse_address(value: str, name: str, *, port_zero: bool = True) -> tuple[str, int]:
    """Split host:port ([v6]:port); the host must be an IP address or 'localhost'."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{name}: expected host:port, got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{name}: host must be an IP address or localhost, got {host!r}") from None
    port = int(port_text)
    if not (0 if port_zero else 1) <= port <= 65535:
        raise ConfigError(f"{name}: port out of range in {value!r}")
    return host, port


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _validate(s: Settings) -> None:
    for name, f in FIELDS.items():
        lo, hi, value = f.metadata["lo"], f.metadata["hi"], getattr(s, name)
        if lo is not None and not lo <= value <= hi:
            raise ConfigError(f"{name}: {_num(value)} is outside {_num(lo)}..{_num(hi)}")
    if s.workers > s.enclave_tcs:
        raise ConfigError(f"workers: {s.workers} exceeds the enclave's {s.enclave_tcs} thread slots (enclave_tcs); "
                          "more would fail with SGX_ERROR_OUT_OF_TCS")
    if s.max_queued_ecalls < s.worker_count:
        raise ConfigError(f"max_queued_ecalls: {s.max_queued_ecalls} is below the {s.worker_count} workers")
    for name in ("listen", "health_listen", "sim_pccs_listen"):
        parse_address(getattr(s, name), name)
    if s.metrics_listen:
        parse_address(s.metrics_listen, "metrics_listen")
    if s.listen == s.health_listen and not s.listen.endswith(":0"):
        raise ConfigError("health_listen: must differ from listen (health is also served on the main port)")
    if s.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {s.log_level!r}")
    if s.collateral_url and not s.collateral_url.startswith(("http://", "https://")):
        raise ConfigError(f"collateral_url: expected an http(s) URL, got {s.collateral_url!r}")
    if s.quoting not in QUOTING:
        raise ConfigError(f"quoting: expected one of {', '.join(QUOTING)}, got {s.quoting!r}")
    if s.quoting == "dcap" and s.sim_pccs:
        raise ConfigError("sim_pccs: the simulated PCCS serves collateral for the simulated platform only; with "
                          "quoting = dcap set sim_pccs = false (and collateral_url to the platform's PCCS)")
    if s.processes > 1 and s.sim_pccs and not s.sim_pccs_listen.endswith(":0"):
        raise ConfigError("sim_pccs_listen: with processes > 1 every worker starts its own simulated PCCS: leave its "
                          "port 0")
    if not str(s.data_dir):
        raise ConfigError("data_dir: must not be empty")
    if s.store_url and s.store_dir:
        raise ConfigError("store_dir: the SQLite store's directory; leave it empty with a postgresql:// store_url")
    if s.store_url:
        _check_store_url(s.store_url, s.store_plaintext_insecure)
    elif s.store_password_file:
        raise ConfigError("store_password_file: set only with a postgresql:// store_url")


def _check_store_url(url: str, plaintext: bool) -> None:
    """A postgresql:// URL with no password in it, and TLS that checks the server unless it is local.
    The messages never repeat the URL: it may hold a password."""
    from psycopg.conninfo import conninfo_to_dict  # only when PostgreSQL is configured

    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("store_url: expected a postgresql:// URL (or '' for the embedded SQLite store)")
    try:
        info = conninfo_to_dict(url)
    except Exception:
        raise ConfigError("store_url: not a valid PostgreSQL URL") from None
    if "password" in info:
        raise ConfigError("store_url: holds a password; remove it and put the password in store_password_file or "
                          "the KMS_STORE_PASSWORD environment variable (a URL is logged and shown in process lists)")
    hosts = [h for h in str(info.get("host") or "").split(",") if h] or ["/"]
    local = all(h.startswith("/") or h == "localhost" or _is_loopback(h) for h in hosts)
    if not local and info.get("sslmode") != "verify-full" and not plaintext:
        raise ConfigError("store_url: a database that is not on this host needs sslmode=verify-full (and sslrootcert); "
                          "store_plaintext_insecure allows it without")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_file(path: Path, origin: str = "") -> dict[str, object]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}{origin}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    if unknown := sorted(set(data) - set(FIELDS)):
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def load_settings(config_file: str | Path | None = None, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, object] | None = None) -> Settings:
    """Defaults < config file (or $KMS_CONFIG) < KMS_* environment < flags (None = not given)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    path = config_file or env.get(CONFIG_ENV)
    if path:
        origin = "" if config_file else f" (from {CONFIG_ENV})"
        for name, value in _read_file(Path(path), origin).items():
            values[name] = _coerce(name, value, f"config file {path}", typed=True)
    for name in FIELDS:
        if (text := env.get(ENV_PREFIX + name.upper())) is not None:
            values[name] = _coerce(name, text, f"environment {ENV_PREFIX}{name.upper()}")
    for name, value in (flags or {}).items():
        if name not in FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(name, value, f"flag --{name.replace('_', '-')}")
    settings = Settings(**values)  # type: ignore[arg-type]
    _validate(settings)
    return settings
