"""Structured JSON logs on stderr (structlog), with request ids and a redaction step: never data bytes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

# Field names whose values are dropped wherever they appear (nested too): a log line never
# carries key material, plaintexts, ciphertexts, TLS payloads or credentials.
SECRET_FIELDS = frozenset({
    "aad", "blob", "ciphertext", "context", "credentials", "data", "digest", "encryption_context", "key",
    "key_material", "mac", "message", "password", "payload", "plaintext", "private_key", "secret", "shares",
    "signature", "sealed", "sealed_domain_key", "tls", "token",
})
REDACTED = "[redacted]"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _clean(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: REDACTED if str(k).lower() in SECRET_FIELDS else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return value


def redact(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: bytes values and known secret field names become "[redacted]"."""
    for name in list(event_dict):
        if name == "event":
            event_dict[name] = REDACTED if isinstance(event_dict[name], bytes | bytearray) else event_dict[name]
        elif name.lower() in SECRET_FIELDS:
            event_dict[name] = REDACTED
        else:
            event_dict[name] = _clean(event_dict[name])
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def configure(level: str = "info", stream: TextIO | None = None, fields: Mapping[str, object] | None = None) -> None:
    """JSON lines to stderr for structlog and the stdlib (grpc, the enclave bridge's OCALL log); `fields` are
    added to every line (a `kms serve --processes` worker's index and pid)."""
    out = stream or sys.stderr
    numeric = _LEVELS.get(level, logging.INFO)
    static = dict(fields or {})

    def add_fields(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for name, value in static.items():
            event_dict.setdefault(name, value)
        return event_dict

    structlog.configure(
        processors=[*_shared_processors(), add_fields, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(sort_keys=True)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), add_fields, structlog.stdlib.add_logger_name, _component],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer(sort_keys=True)],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_kms", False)]:
        root.removeHandler(old)
    handler._kms = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)


def get_logger(name: str) -> Any:
    """A structlog logger with a `component` field (lazy: safe at import time, before configure)."""
    return structlog.get_logger(component=name)


def _component(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Stdlib records name their logger as `component`, like structlog's."""
    if "logger" in event_dict:
        event_dict["component"] = event_dict.pop("logger")
    return event_dict
