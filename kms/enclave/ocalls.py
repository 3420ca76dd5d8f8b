"""The enclave's OCALLs on the host side (cffi extern "Python+C" callbacks into the Enclave's store and log).

Every callback returns a status instead of raising: an exception in the store becomes a store
failure the enclave reports (and fails closed on), never "not found".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kms.enclave.records import StoreConflict

if TYPE_CHECKING:
    from kms.enclave.bridge import Enclave

from kms.enclave import _native  # type: ignore[attr-defined]

ffi = _native.ffi
_log = logging.getLogger("kms.enclave")


def _bytes(p, n: int) -> bytes:  # type: ignore[no-untyped-def]
    """The n bytes at a `const uint8_t *` as bytes (ffi.unpack would give a list of ints: one object each)."""
    return ffi.buffer(p, n)[:]


@ffi.def_extern(error=-1)  # an exception in the store is a store failure, never "not found"
def kms_py_store_get(ctx, key_id, key_id_len, blob, blob_cap, blob_len):  # type: ignore[no-untyped-def]
    """OCALL: copy the store's record for key_id into the enclave's [out] buffer (0 ok, -1 failure)."""
    enclave: Enclave = ffi.from_handle(ctx)
    name = ffi.unpack(key_id, key_id_len).decode("ascii", "replace")
    try:
        data = enclave._store.get(name) if enclave._store is not None else None
    except Exception as exc:
        _log.error("store read failed: %s", type(exc).__name__)
        return -1
    if data is None:
        blob_len[0] = 0
        return 0
    if len(data) > blob_cap:
        return -1
    ffi.memmove(blob, data, len(data))
    blob_len[0] = len(data)
    return 0



@ffi.def_extern(error=-1)  # any exception but a conflict is a store failure: the change fails closed
def kms_py_store_put(ctx, key_id, key_id_len, expected_revision, revision, blob, blob_len):  # type: ignore[no-untyped-def]
    """OCALL: persist a new record revision durably before the enclave answers (0 ok, 1 conflict, -1 failure)."""
    enclave: Enclave = ffi.from_handle(ctx)
    if enclave._store is None:
        return -1
    name = ffi.unpack(key_id, key_id_len).decode("ascii", "replace")
    try:
        enclave._store.put(name, expected_revision, revision, _bytes(blob, blob_len))
    except StoreConflict:
        return 1
    except Exception as exc:
        _log.error("store write failed: %s", type(exc).__name__)
        return -1
    return 0


@ffi.def_extern(error=-1)  # as store_put: a conflict is 1, anything else a failure whose outcome is unknown
def kms_py_store_commit(ctx, key_id, key_id_len, expected_revision, revision, blob, blob_len, seq, entry,  # type: ignore[no-untyped-def]
                        entry_len):
    """OCALL: a record and its state log entry in one durable transaction (0 ok, 1 conflict, -1 failure)."""
    enclave: Enclave = ffi.from_handle(ctx)
    if enclave._store is None:
        return -1
    name = ffi.unpack(key_id, key_id_len).decode("ascii", "replace")
    try:
        enclave._store.commit(name, expected_revision, revision, _bytes(blob, blob_len), seq,
                              _bytes(entry, entry_len))
    except StoreConflict:
        return 1
    except Exception as exc:
        _log.error("store commit failed: %s", type(exc).__name__)
        return -1
    return 0


@ffi.def_extern(error=-1)
def kms_py_state_log_get(ctx, seq, entry, cap, out_len):  # type: ignore[no-untyped-def]
    """OCALL: state log entry seq (0: the last), length 0 when there is none (0 ok, -1 failure)."""
    enclave: Enclave = ffi.from_handle(ctx)
    try:
        data = enclave._store.state_log_get(seq) if enclave._store is not None else None
    except Exception as exc:
        _log.error("state log read failed: %s", type(exc).__name__)
        return -1
    data = data or b""
    if len(data) > cap:
        return -1
    ffi.memmove(entry, data, len(data))
    out_len[0] = len(data)
    return 0


@ffi.def_extern(error=-1)
def kms_py_store_list(ctx, after, after_len, limit, ids, cap, out_len):  # type: ignore[no-untyped-def]
    """OCALL: key ids after `after`, NUL-terminated one after another (0 ok, -1 failure)."""
    enclave: Enclave = ffi.from_handle(ctx)
    try:
        names = enclave._store.list(ffi.unpack(after, after_len).decode("ascii"), limit) if enclave._store else []
    except Exception as exc:
        _log.error("store list failed: %s", type(exc).__name__)
        return -1
    data = b"".join(name.encode("ascii") + b"\0" for name in names)
    if len(data) > cap:
        return -1
    ffi.memmove(ids, data, len(data))
    out_len[0] = len(data)
    return 0


@ffi.def_extern(error=-1)
def kms_py_audit_head(ctx, entry, cap, out_len):  # type: ignore[no-untyped-def]
    """OCALL: the last audit entry (0 ok with length 0 when none, -1 failure)."""
    enclave: Enclave = ffi.from_handle(ctx)
    try:
        head = enclave._store.audit_head() if enclave._store is not None else None
    except Exception as exc:
        _log.error("audit head failed: %s", type(exc).__name__)
        return -1
    head = head or b""
    if len(head) > cap:
        return -1
    ffi.memmove(entry, head, len(head))
    out_len[0] = len(head)
    return 0


@ffi.def_extern()
def kms_py_log(ctx, level, code, msg):  # type: ignore[no-untyped-def]
    """OCALL: a fixed message and an error code from the enclave (never data)."""
    _log.log(level, "enclave: %s (code %d)", ffi.string(msg).decode("ascii", "replace"), code)
