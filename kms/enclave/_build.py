"""cffi out-of-line builder for the untrusted bridge (`make python` runs it): kms.enclave._native."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]

CDEF = """
unsigned int kms_bridge_abi_version(void);
typedef struct kms_bridge kms_bridge;
unsigned int kms_bridge_open(const char *simcpu_path, const char *image_path,
                             const char *sigstruct_path, const char *platform_dir,
                             unsigned int tcs_num, uint64_t heap_size, uint64_t stack_size,
                             void *host_ctx, kms_bridge **out, char *why, size_t why_cap);
void kms_bridge_close(kms_bridge *bridge);
unsigned int kms_bridge_read_state_log_from(kms_bridge *bridge, const char *sqlite_path);
const void *kms_bridge_sqlite_entry(void);
unsigned int kms_bridge_audit_open(kms_bridge *bridge);
int kms_bridge_audit_take(kms_bridge *bridge, uint8_t *buf, size_t cap, size_t *used);
void kms_bridge_audit_settle(kms_bridge *bridge, const uint64_t *tickets, const int *outcomes, size_t n);
void kms_bridge_audit_close(kms_bridge *bridge);
#define KMS_AUDIT_TAKE_MIN ...
unsigned int kms_bridge_init(kms_bridge *bridge, int *retval);
unsigned int kms_bridge_call(kms_bridge *bridge, const uint8_t *req, size_t req_len, uint8_t *resp,
                             size_t resp_cap, size_t *resp_len, int *retval);
unsigned int kms_bridge_report(kms_bridge *bridge, const uint8_t *target_info, uint8_t *report,
                               int *retval);
unsigned int kms_bridge_session_open(kms_bridge *bridge, int64_t host_time, uint64_t *session_id, int *retval);
unsigned int kms_bridge_session_feed(kms_bridge *bridge, uint64_t session_id, int64_t host_time, const uint8_t *in,
                                     size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len, size_t *pending,
                                     int *closed, int *retval);
unsigned int kms_bridge_session_close(kms_bridge *bridge, uint64_t session_id, int *retval);
#define KMS_BRIDGE_ABI_VERSION 8
#define KMS_SESSION_IN_MAX ...
#define KMS_SESSION_OUT_MAX ...
#define KMS_MAX_REQUEST_SIZE ...
#define KMS_MAX_RESPONSE_SIZE ...
#define KMS_SIMCPU_HEAP_MIN ...
#define KMS_SIMCPU_HEAP_MAX ...
#define KMS_SIMCPU_HEAP_DEFAULT ...
#define KMS_SIMCPU_STACK_MIN ...
#define KMS_SIMCPU_STACK_MAX ...
extern "Python+C" int kms_py_store_get(void *, const char *, size_t, uint8_t *, size_t, size_t *);
extern "Python+C" void kms_py_log(void *, int, int, const char *);
extern "Python+C" int kms_py_store_put(void *, const char *, size_t, uint64_t, uint64_t, const uint8_t *, size_t);
extern "Python+C" int kms_py_store_list(void *, const char *, size_t, uint32_t, char *, size_t, size_t *);
extern "Python+C" int kms_py_audit_head(void *, uint8_t *, size_t, size_t *);
extern "Python+C" int kms_py_store_commit(void *, const char *, size_t, uint64_t, uint64_t, const uint8_t *, size_t,
                                          uint64_t, const uint8_t *, size_t);
extern "Python+C" int kms_py_state_log_get(void *, uint64_t, uint8_t *, size_t, size_t *);
"""

HARDEN = [
    "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-fstack-protector-strong",
    "-fstack-clash-protection", "-D_FORTIFY_SOURCE=3", "-DKMS_UNTRUSTED_BUILD",
]


def build() -> Path:
    """Compile the bridge into kms/enclave/_native*.so and return its path."""
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        "kms.enclave._native",
        '#include "kms/bridge.h"\n#include "kms/limits.h"\n#include "kms/simcpu.h"\n',
        sources=[str(ROOT / "enclave/bridge/bridge.c"), str(ROOT / "enclave/bridge/state_reader.c"),
                 str(ROOT / "enclave/bridge/audit_queue.c")],
        include_dirs=[str(ROOT / "enclave/include"), str(ROOT / "enclave/bridge")],
        extra_compile_args=HARDEN,
        extra_link_args=["-Wl,-z,relro,-z,now,-z,noexecstack"],
        libraries=["dl", "sqlite3", "pthread"],
    )
    tmp = ROOT / "build" / "cffi"
    built = Path(ffi.compile(tmpdir=str(tmp), verbose=False))
    target = ROOT / "kms" / "enclave" / built.name
    shutil.copy2(built, target)
    return target


if __name__ == "__main__":
    print(build(), file=sys.stderr)
