"""The enclave as a Python object: loads the signed image through the cffi bridge and makes ECALLs.

Thread-safe: calls run concurrently (cffi releases the GIL for the whole ECALL), bounded by
the enclave's thread slots. Errors are typed (kms.errors): EnclaveUnavailable when the ECALL
itself failed, an EnclaveFailure subclass when the enclave refused.
"""

from __future__ import annotations

import itertools
import struct
import threading
import time
from pathlib import Path
from types import TracebackType

from kms import paths
from kms.enclave.records import RESERVED_RECORDS, AuditQueue, MemoryStore, RecordStore, StoreConflict
from kms.errors import EnclaveBoundaryViolation, EnclaveLoadError, EnclaveUnavailable, InvalidRequest, error_for_code
from kms.proto.enclave.v1 import boundary_pb2 as pb

try:
    from kms.enclave import _native  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError("the enclave bridge is not built: run `make python` (or ./dev build)") from exc

ffi, lib = _native.ffi, _native.lib
ABI_VERSION = 8
if lib.kms_bridge_abi_version() != ABI_VERSION or lib.KMS_BRIDGE_ABI_VERSION != ABI_VERSION:
    raise ImportError(
        f"enclave bridge ABI {lib.kms_bridge_abi_version()} does not match the Python side ({ABI_VERSION}): rebuild"
    )

from kms.enclave import ocalls  # noqa: E402,F401 - registers the OCALL callbacks on the bridge

__all__ = ["RESERVED_RECORDS", "Enclave", "MemoryStore", "RecordStore", "StoreConflict"]

SGX_SUCCESS = 0
SGX_ERROR_INVALID_PARAMETER = 0x0002
SGX_ERROR_OUT_OF_MEMORY = 0x0003
HEAP_MIN, HEAP_MAX = int(lib.KMS_SIMCPU_HEAP_MIN), int(lib.KMS_SIMCPU_HEAP_MAX)
STACK_MIN, STACK_MAX = int(lib.KMS_SIMCPU_STACK_MIN), int(lib.KMS_SIMCPU_STACK_MAX)
MAX_REQUEST_SIZE = int(lib.KMS_MAX_REQUEST_SIZE)
MAX_RESPONSE_SIZE = int(lib.KMS_MAX_RESPONSE_SIZE)
REPORT_SIZE, TARGET_INFO_SIZE = 432, 512
SESSION_IN_MAX = int(lib.KMS_SESSION_IN_MAX)
SESSION_OUT_MAX = int(lib.KMS_SESSION_OUT_MAX)
AUDIT_TAKE = int(lib.KMS_AUDIT_TAKE_MIN)
_AUDIT_HEADER = struct.Struct("<QQII")  # what kms_bridge_audit_take writes before each entry



def _ecall_error(what: str, status: int) -> EnclaveUnavailable:
    """The typed error of an ECALL that did not run to an answer."""
    if status == SGX_ERROR_INVALID_PARAMETER:
        return EnclaveBoundaryViolation(f"{what} ECALL refused: a buffer is not wholly outside the enclave", status)
    return EnclaveUnavailable(f"{what} ECALL failed", status)


class Enclave:
    """A loaded, initialized enclave on the simulated SGX platform."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        image: Path | str | None = None,
        sigstruct: Path | str | None = None,
        simcpu: Path | str | None = None,
        tcs_num: int = 8,
        heap_size: int = 0,
        stack_size: int = 0,
        store: RecordStore | None = None,
    ) -> None:
        """Load and initialize. heap_size / stack_size (bytes, 0: the simulated CPU's defaults)
        are the enclave's heap (its EPC budget) and each thread slot's stack."""
        build = paths.build_dir()
        self.image = Path(image) if image else build / "kms_enclave.so"
        self.sigstruct = Path(sigstruct) if sigstruct else self.image.with_suffix(".sigstruct")
        self.simcpu = Path(simcpu) if simcpu else build / "libkms_simcpu.so"
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._store = store
        self._flusher: threading.Thread | None = None
        self._handle = ffi.new_handle(self)
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._lock = threading.Lock()
        out = ffi.new("kms_bridge **")
        why = ffi.new("char[]", 256)
        status = lib.kms_bridge_open(
            str(self.simcpu).encode(), str(self.image).encode(), str(self.sigstruct).encode(),
            str(self.data_dir).encode(), tcs_num, heap_size, stack_size, self._handle, out, why, 256,
        )
        if status != SGX_SUCCESS:
            raise EnclaveLoadError(f"cannot load the enclave: {ffi.string(why).decode()}", status)
        self._bridge = out[0]
        self.reads_state_log_directly = _read_state_log_directly(self._bridge, store)
        if store is not None:
            self._start_flusher(AuditQueue(store))
        retval = ffi.new("int *")
        status = lib.kms_bridge_init(self._bridge, retval)
        if status != SGX_SUCCESS or retval[0] != 0:
            self.close()
            if status != SGX_SUCCESS:
                raise _ecall_error("initialize", status)
            raise error_for_code(retval[0])

    def _start_flusher(self, audit: AuditQueue) -> None:
        """The audit flusher: the one thread that appends what the enclave's threads queue (they wait in C)."""
        if lib.kms_bridge_audit_open(self._bridge) != SGX_SUCCESS:
            self.close()
            raise EnclaveLoadError("cannot set up the audit queue", SGX_ERROR_OUT_OF_MEMORY)
        self._flusher = threading.Thread(target=_flush_audit, args=(self._bridge, audit), name="kms-audit-flush",
                                         daemon=True)
        self._flusher.start()

    def _buffer(self) -> object:
        buf = getattr(self._local, "resp", None)
        if buf is None:
            buf = self._local.resp = ffi.new("uint8_t[]", MAX_RESPONSE_SIZE)
        return buf

    def call_raw(self, request: bytes) -> bytes:
        """One encoded Request in, one encoded Response out (no envelope handling)."""
        bridge = self._bridge
        if bridge is None:
            raise EnclaveUnavailable("the enclave is closed", 0x0004)
        resp, resp_len, retval = self._buffer(), ffi.new("size_t *"), ffi.new("int *")
        status = lib.kms_bridge_call(bridge, request, len(request), resp, MAX_RESPONSE_SIZE, resp_len, retval)
        if status != SGX_SUCCESS:
            raise _ecall_error("call", status)
        if retval[0] != 0:
            raise error_for_code(retval[0], _detail(bytes(ffi.buffer(resp, resp_len[0]))))
        return bytes(ffi.buffer(resp, resp_len[0]))

    def call(self, request: pb.Request) -> pb.Response:
        """Send one operation (the oneof must be set); returns the Response or raises a typed error."""
        request.version = pb.BOUNDARY_VERSION_1
        if not request.request_id:
            request.request_id = next(self._ids)
        if not request.host_time:
            request.host_time = int(time.time())
        data = request.SerializeToString()
        if len(data) > MAX_REQUEST_SIZE:
            raise InvalidRequest(f"request of {len(data)} bytes exceeds {MAX_REQUEST_SIZE}")
        response = pb.Response.FromString(self.call_raw(data))
        if response.request_id != request.request_id:
            raise EnclaveUnavailable("response does not answer this request", 0x0001)
        return response

    def report(self, target_info: bytes) -> bytes:
        """A 432-byte SGX REPORT of this enclave for the target enclave described by target_info."""
        if len(target_info) != TARGET_INFO_SIZE:
            raise InvalidRequest(f"target info must be {TARGET_INFO_SIZE} bytes")
        report, retval = ffi.new("uint8_t[]", REPORT_SIZE), ffi.new("int *")
        status = lib.kms_bridge_report(self._bridge, target_info, report, retval)
        if status != SGX_SUCCESS:
            raise _ecall_error("report", status)
        if retval[0] != 0:
            raise error_for_code(retval[0])
        return bytes(ffi.buffer(report, REPORT_SIZE))

    def session_open(self) -> int:
        """Open an attested TLS session inside the enclave; returns its id."""
        sid, retval = ffi.new("uint64_t *"), ffi.new("int *")
        self._check(lib.kms_bridge_session_open(self._require(), int(time.time()), sid, retval), retval, "session open")
        return int(sid[0])

    def session_feed(self, session_id: int, data: bytes) -> tuple[bytes, bool]:
        """Feed client TLS bytes; returns (TLS bytes for the client, closed). Drains all pending output."""
        if len(data) > SESSION_IN_MAX:
            raise InvalidRequest(f"{len(data)} bytes of TLS input exceed {SESSION_IN_MAX} per feed")
        out = getattr(self._local, "session_out", None)
        if out is None:
            out = self._local.session_out = ffi.new("uint8_t[]", SESSION_OUT_MAX)
        out_len, pending, closed, retval = ffi.new("size_t *"), ffi.new("size_t *"), ffi.new("int *"), ffi.new("int *")
        chunks, now, payload = [], int(time.time()), data
        while True:
            status = lib.kms_bridge_session_feed(self._require(), session_id, now, payload, len(payload), out,
                                                 SESSION_OUT_MAX, out_len, pending, closed, retval)
            self._check(status, retval, "session feed")
            chunks.append(bytes(ffi.buffer(out, out_len[0])))
            if pending[0] == 0:  # after a close too: the answer ends with the enclave's close_notify
                return b"".join(chunks), bool(closed[0])
            payload = b""

    def session_close(self, session_id: int) -> None:
        """End a session (a no-op error for one that already ended is raised as SessionError)."""
        retval = ffi.new("int *")
        self._check(lib.kms_bridge_session_close(self._require(), session_id, retval), retval, "session close")

    def _require(self) -> object:
        bridge = self._bridge
        if bridge is None:
            raise EnclaveUnavailable("the enclave is closed", 0x0004)
        return bridge

    @staticmethod
    def _check(status: int, retval: object, what: str) -> None:
        if status != SGX_SUCCESS:
            raise _ecall_error(what, status)
        if retval[0] != 0:  # type: ignore[index]
            raise error_for_code(retval[0])  # type: ignore[index]

    def identity(self) -> pb.GetIdentityResponse:
        """The enclave's identity as the (simulated) CPU reports it."""
        return self.call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity

    def close(self) -> None:
        """Destroy the enclave; later calls raise EnclaveUnavailable."""
        with self._lock:
            bridge, self._bridge = getattr(self, "_bridge", None), None
            flusher, self._flusher = getattr(self, "_flusher", None), None
        if bridge is not None:
            if flusher is not None:
                lib.kms_bridge_audit_close(bridge)
                flusher.join()
            lib.kms_bridge_close(bridge)

    def __enter__(self) -> Enclave:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()


def _flush_audit(bridge: object, audit: AuditQueue) -> None:
    """Take what the enclave queued (in order, at least one entry a time), append it, settle each entry."""
    buf, used = ffi.new("uint8_t[]", AUDIT_TAKE), ffi.new("size_t *")
    while (count := lib.kms_bridge_audit_take(bridge, buf, AUDIT_TAKE, used)) >= 0:
        data, at, tickets, entries = ffi.buffer(buf, used[0])[:], 0, [], []
        for _ in range(count):
            ticket, seq, follows, length = _AUDIT_HEADER.unpack_from(data, at)
            at += _AUDIT_HEADER.size
            tickets.append(ticket)
            entries.append((seq, bool(follows), data[at:at + length]))
            at += length
        try:
            outcomes = audit.flush(entries)
        except Exception:  # never leave a thread waiting: each entry failed (the enclave re-reads the head)
            outcomes = [AuditQueue.FAILED] * count
        except BaseException:  # the flusher stops: the queue fails every entry from now on (fails closed)
            lib.kms_bridge_audit_close(bridge)
            raise
        lib.kms_bridge_audit_settle(bridge, tickets, outcomes, count)


def _read_state_log_directly(bridge: object, store: RecordStore | None) -> bool:
    """Let the bridge answer state_log_get from a SQLite store's file in C (no GIL per request), when the store
    offers its file (`state_log_file()`, None when a subclass reads the log its own way) and Python's sqlite3
    runs on the very SQLite library the bridge calls (two copies would break each other's file locks)."""
    offer = getattr(store, "state_log_file", None)
    path = offer() if callable(offer) else None
    if path is None or _python_sqlite_entry() != int(ffi.cast("uintptr_t", lib.kms_bridge_sqlite_entry())):
        return False
    return lib.kms_bridge_read_state_log_from(bridge, str(path).encode()) == SGX_SUCCESS


def _python_sqlite_entry() -> int | None:
    """Where Python's sqlite3 module finds sqlite3_libversion (None: not found, e.g. linked in statically)."""
    import _sqlite3
    import ctypes

    try:
        return ctypes.cast(ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion, ctypes.c_void_p).value
    except (AttributeError, OSError):
        return None


def _detail(response: bytes) -> str:
    """The error detail a refused call's response carries (empty when there is none)."""
    if not response:
        return ""
    try:
        return pb.Response.FromString(response).error_detail
    except Exception:  # a refusal's detail is a courtesy: never let it hide the refusal
        return ""
