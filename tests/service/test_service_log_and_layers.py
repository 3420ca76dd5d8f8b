"""Logs are JSON with no data bytes and no secret fields; imports run one way (api -> service -> enclave)."""

from __future__ import annotations

import ast
import io
import json
import logging
from pathlib import Path

import structlog

from kms import log

KMS = Path(__file__).resolve().parents[2] / "kms"


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_bytes_and_secret_fields_are_redacted() -> None:
    stream = io.StringIO()
    log.configure("debug", stream)
    try:
        structlog.contextvars.bind_contextvars(request_id="r-1")
        log.get_logger("t").info("op", plaintext="hunter2", data=b"\x01\x02", frame_bytes=12, key_id="k",
                                 nested={"private_key": "x", "ok": 1, "raw": b"zz"}, items=[b"a", "b"])
        structlog.contextvars.clear_contextvars()
    finally:
        log.configure("info")
    (line,) = _lines(stream)
    assert line["event"] == "op" and line["request_id"] == "r-1" and line["component"] == "t"
    assert line["plaintext"] == line["data"] == log.REDACTED and line["frame_bytes"] == 12 and line["key_id"] == "k"
    assert line["nested"] == {"private_key": log.REDACTED, "ok": 1, "raw": log.REDACTED}
    assert line["items"] == [log.REDACTED, "b"] and "hunter2" not in stream.getvalue()


def test_stdlib_logs_become_json_with_the_request_id() -> None:
    stream = io.StringIO()
    log.configure("info", stream)
    try:
        structlog.contextvars.bind_contextvars(request_id="r-2")
        logging.getLogger("kms.enclave").error("enclave: %s (code %d)", "store write failed", 905)
        logging.getLogger("kms.enclave").debug("hidden at info")
        structlog.contextvars.clear_contextvars()
    finally:
        log.configure("info")
    (line,) = _lines(stream)
    assert line == {**line, "event": "enclave: store write failed (code 905)", "level": "error",
                    "component": "kms.enclave", "request_id": "r-2"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_imports_run_one_way() -> None:
    for path in (KMS / "service").glob("*.py"):
        bad = {n for n in _imports(path) if n.split(".")[0] == "grpc" or n.startswith(("grpc_", "kms.api"))}
        assert not bad, f"{path.name} imports {bad}"
    for path in (KMS / "enclave").glob("*.py"):
        bad = {n for n in _imports(path) if n.startswith(("kms.api", "kms.service", "grpc"))}
        assert not bad, f"{path.name} imports {bad}"
