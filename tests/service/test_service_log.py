"""Logs are JSON with no data bytes and no secret fields (the import layers: tests/unit/test_structure.py)."""

from __future__ import annotations

import io
import json
import logging

import structlog

from kms import log


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

