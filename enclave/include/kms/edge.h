/*
 * edge.h - the marshalling structures of enclave/kms.edl, laid out as sgx_edger8r would
 * generate them (one `ms_` struct per function, the return value first). Shared by the
 * trusted edge (enclave/src/edge.c) and the untrusted bridge (enclave/bridge/bridge.c).
 * The structs live in untrusted memory: the trusted edge refuses a struct or a pointer in it
 * that is not wholly outside the enclave (SGX_ERROR_INVALID_PARAMETER as the ECALL's status,
 * ms_retval untouched) and copies every field before use. OCALL structs and their buffers are
 * in untrusted memory the enclave took with platform_ocalloc (docs/boundary.md).
 * Thread-safety: plain data.
 */
#ifndef KMS_EDGE_H
#define KMS_EDGE_H

#include <stddef.h>
#include <stdint.h>

/* ECALL indices: order of the trusted functions in kms.edl. */
enum {
    KMS_ECALL_INIT = 0,
    KMS_ECALL_CALL = 1,
    KMS_ECALL_REPORT = 2,
    KMS_ECALL_SESSION_OPEN = 3,
    KMS_ECALL_SESSION_FEED = 4,
    KMS_ECALL_SESSION_CLOSE = 5,
    KMS_ECALL_COUNT = 6
};
/* Not an ECALL of kms.edl: the CPU's command at destroy (the SDK's ECMD_UNINIT_ENCLAVE), with a
 * NULL marshalling struct. The enclave runs its global cleanup (OpenSSL, the heap's thread
 * keys) so that no host thread calls into the image after the enclave is gone. */
#define KMS_ECALL_UNINIT (-3)
/* OCALL indices: order of the untrusted functions in kms.edl. */
enum {
    KMS_OCALL_LOG = 0,
    KMS_OCALL_STORE_GET = 1,
    KMS_OCALL_STORE_PUT = 2,
    KMS_OCALL_STORE_LIST = 3,
    KMS_OCALL_AUDIT_ENQUEUE = 4,
    KMS_OCALL_AUDIT_HEAD = 5,
    KMS_OCALL_STORE_COMMIT = 6,
    KMS_OCALL_STATE_LOG_GET = 7,
    KMS_OCALL_AUDIT_WAIT = 8,
    KMS_OCALL_COUNT = 9
};

typedef struct {
    int ms_retval;
} ms_kms_ecall_init_t;

typedef struct {
    int ms_retval;
    const uint8_t *ms_req;
    size_t ms_req_len;
    uint8_t *ms_resp;
    size_t ms_resp_cap;
    size_t *ms_resp_len;
} ms_kms_ecall_call_t;

typedef struct {
    int ms_retval;
    const uint8_t *ms_target_info;
    uint8_t *ms_report;
} ms_kms_ecall_report_t;

typedef struct {
    int ms_retval;
    int64_t ms_host_time;
    uint64_t *ms_session_id;
} ms_kms_ecall_session_open_t;

typedef struct {
    int ms_retval;
    uint64_t ms_session_id;
    int64_t ms_host_time;
    const uint8_t *ms_in;
    size_t ms_in_len;
    uint8_t *ms_out;
    size_t ms_out_cap;
    size_t *ms_out_len;
    size_t *ms_pending;
    int *ms_closed;
} ms_kms_ecall_session_feed_t;

typedef struct {
    int ms_retval;
    uint64_t ms_session_id;
} ms_kms_ecall_session_close_t;

typedef struct {
    int ms_level;
    int ms_code;
    const char *ms_msg;
} ms_kms_ocall_log_t;

typedef struct {
    int ms_retval;
    const char *ms_key_id;
    size_t ms_key_id_len;
    uint8_t *ms_blob;
    size_t ms_blob_cap;
    size_t *ms_blob_len;
} ms_kms_ocall_store_get_t;

typedef struct {
    int ms_retval;
    const char *ms_key_id;
    size_t ms_key_id_len;
    uint64_t ms_expected_revision;
    uint64_t ms_revision;
    const uint8_t *ms_blob;
    size_t ms_blob_len;
} ms_kms_ocall_store_put_t;

typedef struct {
    int ms_retval;
    const char *ms_after;
    size_t ms_after_len;
    uint32_t ms_limit;
    char *ms_ids;
    size_t ms_cap;
    size_t *ms_len;
} ms_kms_ocall_store_list_t;

typedef struct {
    int ms_retval;
    uint64_t ms_seq;
    int ms_follows;
    const uint8_t *ms_entry;
    size_t ms_len;
    uint64_t *ms_ticket;
} ms_kms_ocall_audit_enqueue_t;

typedef struct {
    int ms_retval;
    uint64_t ms_ticket;
} ms_kms_ocall_audit_wait_t;

typedef struct {
    int ms_retval;
    uint8_t *ms_entry;
    size_t ms_cap;
    size_t *ms_len;
} ms_kms_ocall_audit_head_t;

typedef struct {
    int ms_retval;
    const char *ms_key_id;
    size_t ms_key_id_len;
    uint64_t ms_expected_revision;
    uint64_t ms_revision;
    const uint8_t *ms_blob;
    size_t ms_blob_len;
    uint64_t ms_seq;
    const uint8_t *ms_entry;
    size_t ms_entry_len;
} ms_kms_ocall_store_commit_t;

typedef struct {
    int ms_retval;
    uint64_t ms_seq;
    uint8_t *ms_entry;
    size_t ms_cap;
    size_t *ms_len;
} ms_kms_ocall_state_log_get_t;

/* An OCALL: takes its marshalling struct, returns an sgx_status_t. */
typedef unsigned int (*kms_ocall_fn)(void *ms);

/* The OCALL table passed with every ECALL (the SDK's sgx_ocall_table_t shape). */
typedef struct {
    size_t nr_ocall;
    kms_ocall_fn table[KMS_OCALL_COUNT];
} kms_ocall_table_t;

/* Log levels of kms_ocall_log. */
enum { KMS_LOG_DEBUG = 10, KMS_LOG_INFO = 20, KMS_LOG_WARNING = 30, KMS_LOG_ERROR = 40 };

#endif /* KMS_EDGE_H */
