/*
 * bridge.c - untrusted shim between Python (cffi) and the enclave on the simulated CPU.
 * It is the "untrusted edge" of kms.edl: builds the marshalling structs, EENTERs through
 * simcpu_ecall, and implements the OCALLs by calling Python, except two it answers in C: the audit
 * entries' queue and wait (audit_queue.c, drained by one Python thread) and state_log_get on a SQLite
 * store (state_reader.c, when Python hands the bridge the store's file).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms/bridge.h"
#include "kms/edge.h"
#include "kms/simcpu.h"
#include "audit_queue.h"
#include "state_reader.h"

/* Implemented in Python (kms/enclave/bridge.py) through cffi's extern "Python". */
int kms_py_store_get(void *host_ctx, const char *key_id, size_t key_id_len, uint8_t *blob,
                     size_t blob_cap, size_t *blob_len);
void kms_py_log(void *host_ctx, int level, int code, const char *msg);
int kms_py_store_put(void *host_ctx, const char *key_id, size_t key_id_len, uint64_t expected_revision,
                     uint64_t revision, const uint8_t *blob, size_t blob_len);
int kms_py_store_list(void *host_ctx, const char *after, size_t after_len, uint32_t limit, char *ids,
                      size_t cap, size_t *len);
int kms_py_audit_head(void *host_ctx, uint8_t *entry, size_t cap, size_t *len);
int kms_py_store_commit(void *host_ctx, const char *key_id, size_t key_id_len, uint64_t expected_revision,
                        uint64_t revision, const uint8_t *blob, size_t blob_len, uint64_t seq, const uint8_t *entry,
                        size_t entry_len);
int kms_py_state_log_get(void *host_ctx, uint64_t seq, uint8_t *entry, size_t cap, size_t *len);

struct kms_bridge {
    void *simcpu;
    uint64_t eid;
    void *host_ctx;
    kms_sgx_status_t (*create)(const char *, const char *, const char *, const kms_simcpu_config *,
                               uint64_t *, const char **);
    kms_sgx_status_t (*destroy)(uint64_t);
    kms_sgx_status_t (*ecall)(uint64_t, int, const void *, void *);
    unsigned int (*abi)(void);
    kms_state_reader *state_reader; /* NULL: state_log_get goes to Python */
    kms_audit_queue *audit;         /* NULL: no store, audit entries are refused */
};

_Static_assert(KMS_AUDIT_TAKE_MIN == KMS_AUDIT_QUEUE_HEADER + KMS_AUDIT_QUEUE_ENTRY_MAX, "bridge.h's take buffer");

/* The bridge whose ECALL is running on this thread: OCALLs find their host context here. */
static __thread kms_bridge *t_bridge;

static unsigned int ocall_log(void *pms)
{
    const ms_kms_ocall_log_t *ms = pms;
    if (t_bridge != NULL && ms->ms_msg != NULL) kms_py_log(t_bridge->host_ctx, ms->ms_level, ms->ms_code, ms->ms_msg);
    return SGX_SUCCESS;
}

static unsigned int ocall_store_get(void *pms)
{
    ms_kms_ocall_store_get_t *ms = pms;
    if (t_bridge == NULL || ms->ms_blob_len == NULL) return SGX_ERROR_UNEXPECTED;
    ms->ms_retval = kms_py_store_get(t_bridge->host_ctx, ms->ms_key_id, ms->ms_key_id_len, ms->ms_blob,
                                     ms->ms_blob_cap, ms->ms_blob_len);
    return SGX_SUCCESS;
}

static unsigned int ocall_store_put(void *pms)
{
    ms_kms_ocall_store_put_t *ms = pms;
    if (t_bridge == NULL) return SGX_ERROR_UNEXPECTED;
    ms->ms_retval = kms_py_store_put(t_bridge->host_ctx, ms->ms_key_id, ms->ms_key_id_len, ms->ms_expected_revision,
                                     ms->ms_revision, ms->ms_blob, ms->ms_blob_len);
    return SGX_SUCCESS;
}

static unsigned int ocall_store_list(void *pms)
{
    ms_kms_ocall_store_list_t *ms = pms;
    if (t_bridge == NULL || ms->ms_len == NULL) return SGX_ERROR_UNEXPECTED;
    ms->ms_retval = kms_py_store_list(t_bridge->host_ctx, ms->ms_after, ms->ms_after_len, ms->ms_limit, ms->ms_ids,
                                      ms->ms_cap, ms->ms_len);
    return SGX_SUCCESS;
}

static unsigned int ocall_audit_enqueue(void *pms)
{
    ms_kms_ocall_audit_enqueue_t *ms = pms;
    if (t_bridge == NULL || ms->ms_ticket == NULL) return SGX_ERROR_UNEXPECTED;
    kms_audit_queue *q = t_bridge->audit;
    ms->ms_retval = q != NULL ? kms_audit_queue_put(q, ms->ms_seq, ms->ms_follows, ms->ms_entry, ms->ms_len, ms->ms_ticket)
                              : -1;
    return SGX_SUCCESS;
}

static unsigned int ocall_audit_wait(void *pms)
{
    ms_kms_ocall_audit_wait_t *ms = pms;
    if (t_bridge == NULL) return SGX_ERROR_UNEXPECTED;
    ms->ms_retval = t_bridge->audit != NULL ? kms_audit_queue_wait(t_bridge->audit, ms->ms_ticket) : -1;
    return SGX_SUCCESS;
}

static unsigned int ocall_audit_head(void *pms)
{
    ms_kms_ocall_audit_head_t *ms = pms;
    if (t_bridge == NULL || ms->ms_len == NULL) return SGX_ERROR_UNEXPECTED;
    ms->ms_retval = kms_py_audit_head(t_bridge->host_ctx, ms->ms_entry, ms->ms_cap, ms->ms_len);
    return SGX_SUCCESS;
}

static unsigned int ocall_store_commit(void *pms)
{
    ms_kms_ocall_store_commit_t *ms = pms;
    if (t_bridge == NULL) return SGX_ERROR_UNEXPECTED;
    ms->ms_retval = kms_py_store_commit(t_bridge->host_ctx, ms->ms_key_id, ms->ms_key_id_len, ms->ms_expected_revision,
                                        ms->ms_revision, ms->ms_blob, ms->ms_blob_len, ms->ms_seq, ms->ms_entry,
                                        ms->ms_entry_len);
    return SGX_SUCCESS;
}

static unsigned int ocall_state_log_get(void *pms)
{
    ms_kms_ocall_state_log_get_t *ms = pms;
    if (t_bridge == NULL || ms->ms_len == NULL) return SGX_ERROR_UNEXPECTED;
    if (t_bridge->state_reader != NULL)
        ms->ms_retval = kms_state_reader_get(t_bridge->state_reader, ms->ms_seq, ms->ms_entry, ms->ms_cap, ms->ms_len);
    else
        ms->ms_retval = kms_py_state_log_get(t_bridge->host_ctx, ms->ms_seq, ms->ms_entry, ms->ms_cap, ms->ms_len);
    return SGX_SUCCESS;
}

static const kms_ocall_table_t k_ocalls = {
    .nr_ocall = KMS_OCALL_COUNT,
    .table = {[KMS_OCALL_LOG] = ocall_log, [KMS_OCALL_STORE_GET] = ocall_store_get,
              [KMS_OCALL_STORE_PUT] = ocall_store_put, [KMS_OCALL_STORE_LIST] = ocall_store_list,
              [KMS_OCALL_AUDIT_ENQUEUE] = ocall_audit_enqueue, [KMS_OCALL_AUDIT_HEAD] = ocall_audit_head,
              [KMS_OCALL_STORE_COMMIT] = ocall_store_commit, [KMS_OCALL_STATE_LOG_GET] = ocall_state_log_get,
              [KMS_OCALL_AUDIT_WAIT] = ocall_audit_wait},
};

unsigned int kms_bridge_abi_version(void) { return KMS_BRIDGE_ABI_VERSION; }

static void set_why(char *why, size_t cap, const char *msg)
{
    if (why != NULL && cap > 0) snprintf(why, cap, "%s", msg);
}

#define RESOLVE(b, field, name) \
    do { void *s_ = dlsym((b)->simcpu, name); memcpy(&(b)->field, &s_, sizeof s_); } while (0)

unsigned int kms_bridge_open(const char *simcpu_path, const char *image_path,
                             const char *sigstruct_path, const char *platform_dir,
                             unsigned int tcs_num, uint64_t heap_size, uint64_t stack_size,
                             void *host_ctx, kms_bridge **out, char *why, size_t why_cap)
{
    kms_bridge *b = calloc(1, sizeof *b);
    if (b == NULL) return SGX_ERROR_OUT_OF_MEMORY;
    b->host_ctx = host_ctx;
    /* RTLD_LOCAL: the enclave image finds this very copy of the CPU by its soname (DT_NEEDED)
     * in its own scope, so two CPUs with different sonames (the baseline variant of the
     * benchmark) can serve their own images in one process. */
    b->simcpu = dlopen(simcpu_path, RTLD_NOW | RTLD_LOCAL);
    kms_sgx_status_t rc = SGX_ERROR_INVALID_PARAMETER;
    if (b->simcpu == NULL) {
        set_why(why, why_cap, "cannot load the simulated CPU library");
        goto fail;
    }
    RESOLVE(b, create, "simcpu_create_enclave_ex");
    RESOLVE(b, destroy, "simcpu_destroy_enclave");
    RESOLVE(b, ecall, "simcpu_ecall");
    RESOLVE(b, abi, "simcpu_abi_version");
    if (b->create == NULL || b->destroy == NULL || b->ecall == NULL || b->abi == NULL ||
        b->abi() != KMS_SIMCPU_ABI_VERSION) {
        set_why(why, why_cap, "simulated CPU library has the wrong ABI");
        goto fail;
    }
    const char *reason = "ok";
    kms_simcpu_config config = {.struct_size = sizeof config, .tcs_num = tcs_num, .heap_size = heap_size,
                                .stack_size = stack_size};
    rc = b->create(platform_dir, image_path, sigstruct_path, &config, &b->eid, &reason);
    if (rc != SGX_SUCCESS) {
        set_why(why, why_cap, reason);
        goto fail;
    }
    *out = b;
    return SGX_SUCCESS;
fail:
    if (b->simcpu != NULL) dlclose(b->simcpu);
    free(b);
    return rc;
}

unsigned int kms_bridge_read_state_log_from(kms_bridge *b, const char *sqlite_path)
{
    if (b->state_reader != NULL) return SGX_ERROR_INVALID_PARAMETER;
    b->state_reader = kms_state_reader_open(sqlite_path);
    return b->state_reader != NULL ? SGX_SUCCESS : SGX_ERROR_UNEXPECTED;
}

const void *kms_bridge_sqlite_entry(void) { return kms_state_reader_sqlite_entry(); }

unsigned int kms_bridge_audit_open(kms_bridge *b)
{
    if (b->audit != NULL) return SGX_ERROR_INVALID_PARAMETER;
    b->audit = kms_audit_queue_new();
    return b->audit != NULL ? SGX_SUCCESS : SGX_ERROR_OUT_OF_MEMORY;
}

int kms_bridge_audit_take(kms_bridge *b, uint8_t *buf, size_t cap, size_t *used)
{
    return b->audit != NULL ? kms_audit_queue_take(b->audit, buf, cap, used) : -1;
}

void kms_bridge_audit_settle(kms_bridge *b, const uint64_t *tickets, const int *outcomes, size_t n)
{
    if (b->audit != NULL) kms_audit_queue_settle(b->audit, tickets, outcomes, n);
}

void kms_bridge_audit_close(kms_bridge *b)
{
    if (b->audit != NULL) kms_audit_queue_close(b->audit);
}

void kms_bridge_close(kms_bridge *b)
{
    if (b == NULL) return;
    b->destroy(b->eid);
    kms_state_reader_close(b->state_reader);
    kms_audit_queue_free(b->audit);
    dlclose(b->simcpu);
    free(b);
}

static unsigned int enter(kms_bridge *b, int index, void *ms)
{
    kms_bridge *saved = t_bridge;
    t_bridge = b;
    unsigned int rc = b->ecall(b->eid, index, &k_ocalls, ms);
    t_bridge = saved;
    return rc;
}

unsigned int kms_bridge_init(kms_bridge *b, int *retval)
{
    ms_kms_ecall_init_t ms = {.ms_retval = -1};
    unsigned int rc = enter(b, KMS_ECALL_INIT, &ms);
    *retval = ms.ms_retval;
    return rc;
}

unsigned int kms_bridge_call(kms_bridge *b, const uint8_t *req, size_t req_len, uint8_t *resp,
                             size_t resp_cap, size_t *resp_len, int *retval)
{
    ms_kms_ecall_call_t ms = {.ms_retval = -1, .ms_req = req, .ms_req_len = req_len, .ms_resp = resp,
                              .ms_resp_cap = resp_cap, .ms_resp_len = resp_len};
    unsigned int rc = enter(b, KMS_ECALL_CALL, &ms);
    *retval = ms.ms_retval;
    return rc;
}

unsigned int kms_bridge_report(kms_bridge *b, const uint8_t *target_info, uint8_t *report, int *retval)
{
    ms_kms_ecall_report_t ms = {.ms_retval = -1, .ms_target_info = target_info, .ms_report = report};
    unsigned int rc = enter(b, KMS_ECALL_REPORT, &ms);
    *retval = ms.ms_retval;
    return rc;
}

unsigned int kms_bridge_session_open(kms_bridge *b, int64_t host_time, uint64_t *session_id, int *retval)
{
    ms_kms_ecall_session_open_t ms = {.ms_retval = -1, .ms_host_time = host_time, .ms_session_id = session_id};
    unsigned int rc = enter(b, KMS_ECALL_SESSION_OPEN, &ms);
    *retval = ms.ms_retval;
    return rc;
}

unsigned int kms_bridge_session_feed(kms_bridge *b, uint64_t session_id, int64_t host_time, const uint8_t *in,
                                     size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len, size_t *pending,
                                     int *closed, int *retval)
{
    ms_kms_ecall_session_feed_t ms = {.ms_retval = -1, .ms_session_id = session_id, .ms_host_time = host_time,
                                      .ms_in = in, .ms_in_len = in_len, .ms_out = out, .ms_out_cap = out_cap,
                                      .ms_out_len = out_len, .ms_pending = pending, .ms_closed = closed};
    unsigned int rc = enter(b, KMS_ECALL_SESSION_FEED, &ms);
    *retval = ms.ms_retval;
    return rc;
}

unsigned int kms_bridge_session_close(kms_bridge *b, uint64_t session_id, int *retval)
{
    ms_kms_ecall_session_close_t ms = {.ms_retval = -1, .ms_session_id = session_id};
    unsigned int rc = enter(b, KMS_ECALL_SESSION_CLOSE, &ms);
    *retval = ms.ms_retval;
    return rc;
}
