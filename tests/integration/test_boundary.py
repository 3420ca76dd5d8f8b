"""The enclave boundary seen from the host: exports, the shared error vocabulary, and hostile
request bytes through the real bridge (malformed, truncated, oversized, random)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms import errors
from kms.enclave import bridge
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2

KNOWN_CODES = set(errors_pb2.ErrorCode.values())


def defined_dynamic_symbols(path: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}


def test_enclave_exports_only_its_entry_point(build: Path) -> None:
    assert defined_dynamic_symbols(build / "kms_enclave.so") == {"kms_enclave_entry"}


def test_simulated_cpu_exports_only_loader_and_instructions(build: Path) -> None:
    assert defined_dynamic_symbols(build / "libkms_simcpu.so") == {
        "simcpu_abi_version", "simcpu_create_enclave", "simcpu_create_enclave_ex", "simcpu_destroy_enclave",
        "simcpu_ecall", "simcpu_ocall", "simcpu_egetkey", "simcpu_ereport", "simcpu_enclave_layout",
        "simcpu_self_layout", "simcpu_ocalloc", "simcpu_ocfree",
    }


def test_enclave_image_carries_its_own_openssl_and_allocator(build: Path) -> None:
    """Static OpenSSL and jemalloc (no host code shares them); every allocation function wrapped."""
    ldd = subprocess.run(["ldd", str(build / "kms_enclave.so")], capture_output=True, text=True).stdout
    assert "libcrypto" not in ldd and "libssl" not in ldd and "libjemalloc" not in ldd, ldd
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(build / "kms_enclave.so")], capture_output=True,
                               text=True, check=True).stdout
    names = {line.split()[-1].split("@")[0] for line in undefined.splitlines() if line.strip()}
    assert not names & {"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "strdup"}, names
    assert not names & {"OPENSSL_init_crypto", "EVP_EncryptInit_ex", "SSL_new"}


def test_static_tls_setting() -> None:
    from kms.enclave import runtime

    assert runtime.static_tls_setting() >= runtime.STATIC_TLS_BYTES  # conftest re-executed us with it
    merged = runtime.tunables_with_static_tls("glibc.malloc.check=0:glibc.rtld.optional_static_tls=512")
    assert merged == f"glibc.malloc.check=0:glibc.rtld.optional_static_tls={runtime.STATIC_TLS_BYTES}"
    assert runtime.static_tls_setting(merged) == runtime.STATIC_TLS_BYTES


def test_a_refused_pointer_is_a_typed_error() -> None:
    assert isinstance(bridge._ecall_error("call", 0x0002), errors.EnclaveBoundaryViolation)
    assert type(bridge._ecall_error("call", 0x1003)) is errors.EnclaveUnavailable


def test_heap_size_bounds_are_enforced_at_load(build: Path, tmp_path: Path) -> None:
    with pytest.raises(errors.EnclaveLoadError, match="heap_size"):
        bridge.Enclave(tmp_path / "data", heap_size=bridge.HEAP_MIN - 4096)
    with bridge.Enclave(tmp_path / "data2", heap_size=bridge.HEAP_MIN * 4, stack_size=bridge.STACK_MIN * 4) as e:
        assert e.identity().simulated


def test_enclave_image_is_hardened(build: Path) -> None:
    dyn = subprocess.run(["readelf", "-d", "-W", str(build / "kms_enclave.so")], capture_output=True, text=True,
                         check=True).stdout
    assert "BIND_NOW" in dyn or "NOW" in dyn
    seg = subprocess.run(["readelf", "-l", "-W", str(build / "kms_enclave.so")], capture_output=True, text=True,
                         check=True).stdout
    assert "GNU_RELRO" in seg
    stack = [line for line in seg.splitlines() if "GNU_STACK" in line]
    assert stack and "RWE" not in stack[0]


def test_every_error_code_has_a_typed_exception() -> None:
    assert errors.mapped_codes() == KNOWN_CODES - {errors_pb2.KMS_OK}
    for code in errors.mapped_codes():
        exc = errors.error_for_code(code)
        assert isinstance(exc, errors.EnclaveFailure) and exc.code == code
        assert exc.code_name == errors_pb2.ErrorCode.Name(code)


def test_c_and_python_agree_on_limits() -> None:
    assert bridge.MAX_REQUEST_SIZE == 64 * 1024 and bridge.MAX_RESPONSE_SIZE == 64 * 1024


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", errors_pb2.KMS_ERR_UNSUPPORTED_VERSION),  # an empty message decodes to version 0
        (b"\xff\xff\xff", errors_pb2.KMS_ERR_MALFORMED_REQUEST),
        (pb.Request(version=2, get_identity=pb.GetIdentityRequest()).SerializeToString(),
         errors_pb2.KMS_ERR_UNSUPPORTED_VERSION),
        (pb.Request(version=1).SerializeToString(), errors_pb2.KMS_ERR_UNKNOWN_OPERATION),
        (pb.Request(version=1, encrypt=pb.EncryptRequest(key_id="x" * 41)).SerializeToString(),
         errors_pb2.KMS_ERR_MALFORMED_REQUEST),  # above the nanopb bound of key_id
        (pb.Request(version=1, encrypt=pb.EncryptRequest(plaintext=b"x" * 32769)).SerializeToString(),
         errors_pb2.KMS_ERR_MALFORMED_REQUEST),
        (b"\x00" * (64 * 1024 + 1), errors_pb2.KMS_ERR_REQUEST_TOO_LARGE),
    ],
)
def test_bad_requests_get_typed_errors(enclave, raw: bytes, expected: int) -> None:
    with pytest.raises(errors.EnclaveFailure) as exc:
        enclave.call_raw(raw)
    assert exc.value.code == expected


def test_truncated_requests_never_crash(enclave, store) -> None:
    r = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
    r
    full = pb.Request(version=1, request_id=7, encrypt=pb.EncryptRequest(
        key_id=r.key_metadata.key_id, plaintext=b"p" * 100,
        context=[pb.ContextEntry(key=b"k", value=b"v")])).SerializeToString()
    for cut in range(len(full)):
        try:
            pb.Response.FromString(enclave.call_raw(full[:cut]))
        except errors.EnclaveFailure as exc:
            assert exc.code in KNOWN_CODES
    assert pb.Response.FromString(enclave.call_raw(full)).encrypt.key_version == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes_get_typed_errors(enclave, data: bytes) -> None:
    try:
        pb.Response.FromString(enclave.call_raw(data))
    except errors.EnclaveFailure as exc:
        assert exc.code in KNOWN_CODES


def test_concurrent_calls_from_many_threads(enclave, store) -> None:
    r = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
    r
    kid, failures = r.key_metadata.key_id, []

    def worker(n: int) -> None:
        try:
            for i in range(200):
                msg = f"{n}:{i}".encode()
                ct = enclave.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=msg))).encrypt.ciphertext
                if enclave.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext != msg:
                    failures.append(msg)
        except errors.EnclaveUnavailable as exc:  # out of TCS is a transport refusal, not corruption
            if exc.sgx_status != 0x1003:
                failures.append(exc)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_closed_enclave_refuses_calls(build, tmp_path) -> None:
    e = bridge.Enclave(tmp_path)
    e.close()
    with pytest.raises(errors.EnclaveUnavailable):
        e.identity()
