/*
 * bridge.h - the untrusted bridge that Python loads through cffi (kms/enclave/_build.py).
 * It loads the simulated CPU (libkms_simcpu.so) and through it the signed enclave image,
 * forwards ECALLs with the EDL convention (kms/edge.h) and serves the enclave's OCALLs by
 * calling back into Python (kms_py_store_get, kms_py_log, declared `extern "Python"`).
 *
 * Every call returns an sgx_status_t ("did the ECALL run"); the enclave's own answer, a
 * kms_err_t, is written to *retval only when the status is SGX_SUCCESS. The enclave refuses
 * an ECALL whose marshalling struct or buffers are not wholly outside its ELRANGE with
 * SGX_ERROR_INVALID_PARAMETER (the SDK's edge does the same); *retval is then left as -1. Thread-safety: all calls may run concurrently on one
 * bridge (bounded by the enclave's TCS count) except open/close. Sizes are bytes.
 */
#ifndef KMS_BRIDGE_H
#define KMS_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

/* Bumped whenever this header changes; kms.enclave.bridge refuses a mismatch at load. */
#define KMS_BRIDGE_ABI_VERSION 8u

typedef struct kms_bridge kms_bridge;

unsigned int kms_bridge_abi_version(void);

/*
 * Load simcpu_path, then create the enclave from image_path + sigstruct_path on the platform
 * in platform_dir, with tcs_num thread slots, a heap of heap_size bytes and stack_size bytes
 * of stack per thread slot (0: the CPU's defaults; kms/simcpu.h gives the bounds).
 * host_ctx is passed back to the OCALL callbacks. On failure a reason (a fixed string) is
 * copied into why (why_cap bytes, NUL-terminated): SGX_ERROR_INVALID_PARAMETER for sizes out
 * of bounds, SGX_ERROR_OUT_OF_MEMORY also when the process lacks static TLS for the image (the
 * reason names GLIBC_TUNABLES). Ownership: *out belongs to the caller until kms_bridge_close.
 */
unsigned int kms_bridge_open(const char *simcpu_path, const char *image_path,
                             const char *sigstruct_path, const char *platform_dir,
                             unsigned int tcs_num, uint64_t heap_size, uint64_t stack_size,
                             void *host_ctx, kms_bridge **out, char *why, size_t why_cap);
/*
 * Answer the state_log_get OCALL from the SQLite database at sqlite_path (a SqliteStore's file) in C,
 * without calling Python. Before the first ECALL that reads the log, once: SGX_ERROR_UNEXPECTED when the
 * database cannot be opened and read (state_log_get then stays with Python).
 */
unsigned int kms_bridge_read_state_log_from(kms_bridge *bridge, const char *sqlite_path);
/* The address of sqlite3_libversion in the SQLite library the bridge is linked with. */
const void *kms_bridge_sqlite_entry(void);

/*
 * The audit entries' queue: from audit_open on, the enclave's audit_enqueue and audit_wait OCALLs are
 * answered in C (without it, refused as failures). One host thread calls audit_take (blocks until
 * entries are queued, writes them into buf in queue order, each a 24-byte header:
 * ticket, seq as little-endian uint64, follows, length as uint32, and the entry; returns how many, -1
 * once closed), appends them, and audit_settle's each ticket with 0 (durable), 1 (out of sequence) or
 * -1 (failed). audit_close wakes that thread and fails whatever is unsettled; close it and join the
 * thread before kms_bridge_close. buf holds at least KMS_AUDIT_TAKE_MIN bytes.
 */
unsigned int kms_bridge_audit_open(kms_bridge *bridge);
int kms_bridge_audit_take(kms_bridge *bridge, uint8_t *buf, size_t cap, size_t *used);
void kms_bridge_audit_settle(kms_bridge *bridge, const uint64_t *tickets, const int *outcomes, size_t n);
void kms_bridge_audit_close(kms_bridge *bridge);
#define KMS_AUDIT_TAKE_MIN (24u + 65536u)

/* Destroy the enclave. No ECALL may be running. NULL is ignored. */
void kms_bridge_close(kms_bridge *bridge);

/* ECALL 0: initialize. */
unsigned int kms_bridge_init(kms_bridge *bridge, int *retval);
/* ECALL 1: one encoded Request in, one encoded Response out (resp_cap bytes available). */
unsigned int kms_bridge_call(kms_bridge *bridge, const uint8_t *req, size_t req_len, uint8_t *resp,
                             size_t resp_cap, size_t *resp_len, int *retval);
/* ECALL 2: a 432-byte REPORT for the 512-byte target info. */
unsigned int kms_bridge_report(kms_bridge *bridge, const uint8_t *target_info, uint8_t *report,
                               int *retval);

/* ECALLs 3-5: attested sessions (enclave/src/session.h). */
unsigned int kms_bridge_session_open(kms_bridge *bridge, int64_t host_time, uint64_t *session_id, int *retval);
unsigned int kms_bridge_session_feed(kms_bridge *bridge, uint64_t session_id, int64_t host_time, const uint8_t *in,
                                     size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len, size_t *pending,
                                     int *closed, int *retval);
unsigned int kms_bridge_session_close(kms_bridge *bridge, uint64_t session_id, int *retval);

#endif /* KMS_BRIDGE_H */
