/*
 * edge.c - the trusted edge of enclave/kms.edl, written as sgx_edger8r would generate it:
 * the single exported entry point dispatches ECALLs by index. The only file that knows the
 * marshalling layout (kms/edge.h) on the trusted side.
 *
 * ECALLs (edger8r's CHECK_REF_POINTER / CHECK_UNIQUE_POINTER): the marshalling struct must lie
 * wholly outside ELRANGE (platform/elrange.h) and is copied in once (no double fetch); then
 * every pointer it holds must lie wholly outside ELRANGE for its whole declared size (NULL
 * passes, the trusted function refuses it). A failed check returns SGX_ERROR_INVALID_PARAMETER
 * as the ECALL's status before anything is read through a host pointer or written anywhere;
 * ms_retval is not written. [in] buffers are copied into enclave memory before use, [out] data
 * is written only to checked host memory, after the call.
 *
 * OCALLs (sgx_ocalloc): the marshalling struct and every buffer the host sees are allocated in
 * untrusted memory (platform_ocalloc), [in] data is copied out, and after the OCALL the return
 * value and [out] sizes are read once from that memory, checked against the buffers the enclave
 * handed out, and only then is [out] data copied in. The host's copy of the pointers in the
 * struct is never used. platform_ocfree releases the frame.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ocalls.h"
#include "crypto.h"
#include "ecall.h"
#include "elrange.h"
#include "kms/edge.h"
#include "kms/export.h"
#include "kms/limits.h"
#include "kms/sgx_status.h"
#include "log.h"
#include "platform.h"

KMS_EXPORT int kms_enclave_entry(int index, void *ms);

/* edger8r's CHECK_UNIQUE_POINTER: NULL, or [p, p + n) wholly outside ELRANGE. */
static int host_or_null(const void *p, size_t n) { return p == NULL || is_outside_enclave(p, n); }

/* Copy the marshalling struct in, if it lies wholly outside ELRANGE (CHECK_REF_POINTER). */
static int fetch_ms(void *local, const void *pms, size_t size)
{
    if (!is_outside_enclave(pms, size)) return 0;
    memcpy(local, pms, size);
    return 1;
}

/* Write ms_retval (an int at offset off) of a checked host marshalling struct. */
static void put_retval(void *pms, size_t off, int value) { memcpy((uint8_t *)pms + off, &value, sizeof value); }

#define RETVAL(pms, type, err) put_retval((pms), offsetof(type, ms_retval), (int)(err))

static int ecall_init(void *pms)
{
    ms_kms_ecall_init_t ms;
    if (!fetch_ms(&ms, pms, sizeof ms)) return SGX_ERROR_INVALID_PARAMETER;
    RETVAL(pms, ms_kms_ecall_init_t, kms_ecall_init_impl());
    return SGX_SUCCESS;
}

static int ecall_call(void *pms)
{
    ms_kms_ecall_call_t ms;
    if (!fetch_ms(&ms, pms, sizeof ms)) return SGX_ERROR_INVALID_PARAMETER;
    if (!host_or_null(ms.ms_req, ms.ms_req_len) || !host_or_null(ms.ms_resp, ms.ms_resp_cap) ||
        !host_or_null(ms.ms_resp_len, sizeof *ms.ms_resp_len))
        return SGX_ERROR_INVALID_PARAMETER;
    uint8_t *req = NULL, *resp = NULL;
    size_t cap = ms.ms_resp_cap < KMS_MAX_RESPONSE_SIZE ? ms.ms_resp_cap : KMS_MAX_RESPONSE_SIZE;
    size_t resp_len = 0;
    kms_err_t err = KMS_ERR_BAD_PARAMETER;
    if ((ms.ms_req == NULL && ms.ms_req_len != 0) || ms.ms_resp == NULL || ms.ms_resp_len == NULL)
        goto done;
    err = KMS_ERR_REQUEST_TOO_LARGE;
    if (ms.ms_req_len > KMS_MAX_REQUEST_SIZE) goto done;
    err = KMS_ERR_OUT_OF_MEMORY;
    req = malloc(ms.ms_req_len + 1);
    resp = malloc(cap + 1);
    if (req == NULL || resp == NULL) goto done;
    if (ms.ms_req_len > 0) memcpy(req, ms.ms_req, ms.ms_req_len);
    err = kms_ecall_call_impl(req, ms.ms_req_len, resp, cap, &resp_len);
    if (err == KMS_OK || resp_len > 0) { /* a refusal's response carries only its code and detail */
        memcpy(ms.ms_resp, resp, resp_len);
        memcpy(ms.ms_resp_len, &resp_len, sizeof resp_len);
    }
done:
    if (req != NULL) kms_wipe(req, ms.ms_req_len);
    /* The response encoding wrote resp_len bytes, or wiped what it wrote when it failed (request.c). */
    if (resp != NULL) kms_wipe(resp, resp_len);
    free(req);
    free(resp);
    RETVAL(pms, ms_kms_ecall_call_t, err);
    return SGX_SUCCESS;
}

static int ecall_report(void *pms)
{
    ms_kms_ecall_report_t ms;
    if (!fetch_ms(&ms, pms, sizeof ms)) return SGX_ERROR_INVALID_PARAMETER;
    if (!host_or_null(ms.ms_target_info, KMS_SGX_TARGET_INFO_SIZE) || !host_or_null(ms.ms_report, KMS_SGX_REPORT_SIZE))
        return SGX_ERROR_INVALID_PARAMETER;
    uint8_t ti[KMS_SGX_TARGET_INFO_SIZE], report[KMS_SGX_REPORT_SIZE];
    kms_err_t err = KMS_ERR_BAD_PARAMETER;
    if (ms.ms_target_info != NULL && ms.ms_report != NULL) {
        memcpy(ti, ms.ms_target_info, sizeof ti);
        err = kms_ecall_report_impl(ti, report);
        if (err == KMS_OK) memcpy(ms.ms_report, report, sizeof report);
    }
    OPENSSL_cleanse(ti, sizeof ti);
    RETVAL(pms, ms_kms_ecall_report_t, err);
    return SGX_SUCCESS;
}

static int ecall_session_open(void *pms)
{
    ms_kms_ecall_session_open_t ms;
    if (!fetch_ms(&ms, pms, sizeof ms)) return SGX_ERROR_INVALID_PARAMETER;
    if (!host_or_null(ms.ms_session_id, sizeof *ms.ms_session_id)) return SGX_ERROR_INVALID_PARAMETER;
    uint64_t id = 0;
    kms_err_t err = ms.ms_session_id == NULL ? KMS_ERR_BAD_PARAMETER : kms_ecall_session_open_impl(ms.ms_host_time, &id);
    if (err == KMS_OK) memcpy(ms.ms_session_id, &id, sizeof id);
    RETVAL(pms, ms_kms_ecall_session_open_t, err);
    return SGX_SUCCESS;
}

static int ecall_session_feed(void *pms)
{
    ms_kms_ecall_session_feed_t ms;
    if (!fetch_ms(&ms, pms, sizeof ms)) return SGX_ERROR_INVALID_PARAMETER;
    if (!host_or_null(ms.ms_in, ms.ms_in_len) || !host_or_null(ms.ms_out, ms.ms_out_cap) ||
        !host_or_null(ms.ms_out_len, sizeof(size_t)) || !host_or_null(ms.ms_pending, sizeof(size_t)) ||
        !host_or_null(ms.ms_closed, sizeof(int)))
        return SGX_ERROR_INVALID_PARAMETER;
    uint8_t *in = NULL, *out = NULL;
    size_t cap = ms.ms_out_cap < KMS_SESSION_OUT_MAX ? ms.ms_out_cap : KMS_SESSION_OUT_MAX;
    size_t out_len = 0, pending = 0;
    int closed = 0;
    kms_err_t err = KMS_ERR_BAD_PARAMETER;
    if ((ms.ms_in == NULL && ms.ms_in_len != 0) || ms.ms_out == NULL || ms.ms_out_len == NULL ||
        ms.ms_pending == NULL || ms.ms_closed == NULL)
        goto done;
    err = KMS_ERR_REQUEST_TOO_LARGE;
    if (ms.ms_in_len > KMS_SESSION_IN_MAX) goto done;
    err = KMS_ERR_OUT_OF_MEMORY;
    if ((in = malloc(ms.ms_in_len + 1)) == NULL || (out = malloc(cap + 1)) == NULL) goto done;
    if (ms.ms_in_len > 0) memcpy(in, ms.ms_in, ms.ms_in_len);
    err = kms_ecall_session_feed_impl(ms.ms_session_id, ms.ms_host_time, in, ms.ms_in_len, out, cap, &out_len,
                                      &pending, &closed);
    if (err == KMS_OK) {
        memcpy(ms.ms_out, out, out_len);
        memcpy(ms.ms_out_len, &out_len, sizeof out_len);
        memcpy(ms.ms_pending, &pending, sizeof pending);
        memcpy(ms.ms_closed, &closed, sizeof closed);
    }
done:
    free(in);
    if (out != NULL) kms_wipe(out, out_len); /* what the session wrote: TLS records */
    free(out);
    RETVAL(pms, ms_kms_ecall_session_feed_t, err);
    return SGX_SUCCESS;
}

static int ecall_session_close(void *pms)
{
    ms_kms_ecall_session_close_t ms;
    if (!fetch_ms(&ms, pms, sizeof ms)) return SGX_ERROR_INVALID_PARAMETER;
    RETVAL(pms, ms_kms_ecall_session_close_t, kms_ecall_session_close_impl(ms.ms_session_id));
    return SGX_SUCCESS;
}

int kms_enclave_entry(int index, void *ms)
{
    if (index == KMS_ECALL_UNINIT) {
        kms_ecall_uninit_impl(); /* before the platform drops the heap */
        platform_exit();
        return SGX_SUCCESS;
    }
    kms_err_t err = platform_enter();
    if (err != KMS_OK) return err == KMS_ERR_OUT_OF_MEMORY ? SGX_ERROR_OUT_OF_MEMORY : SGX_ERROR_UNEXPECTED;
    if (ms == NULL) return SGX_ERROR_INVALID_PARAMETER;
    switch (index) {
    case KMS_ECALL_INIT: return ecall_init(ms);
    case KMS_ECALL_CALL: return ecall_call(ms);
    case KMS_ECALL_REPORT: return ecall_report(ms);
    case KMS_ECALL_SESSION_OPEN: return ecall_session_open(ms);
    case KMS_ECALL_SESSION_FEED: return ecall_session_feed(ms);
    case KMS_ECALL_SESSION_CLOSE: return ecall_session_close(ms);
    default: return SGX_ERROR_INVALID_FUNCTION;
    }
}

/* ---- OCALLs ------------------------------------------------------------------------------ */

/* n bytes of the OCALL frame (untrusted memory) holding a copy of src (NULL: uninitialised). */
static void *oc_copy(const void *src, size_t n)
{
    void *p = platform_ocalloc(n);
    if (p != NULL && src != NULL && n > 0) memcpy(p, src, n);
    return p;
}

/* The OCALL's return value, read once from its marshalling struct in the frame. */
static int oc_retval(const void *pms, size_t off)
{
    int v;
    memcpy(&v, (const uint8_t *)pms + off, sizeof v);
    return v;
}

/* A size the host wrote into the frame, read once. */
static size_t oc_size(const size_t *p)
{
    size_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

void kms_log(int level, kms_err_t code, const char *msg)
{
    ms_kms_ocall_log_t ms = {.ms_level = level, .ms_code = (int)code, .ms_msg = oc_copy(msg, strlen(msg) + 1)};
    void *pms = ms.ms_msg != NULL ? oc_copy(&ms, sizeof ms) : NULL;
    if (pms != NULL) (void)platform_ocall(KMS_OCALL_LOG, pms);
    platform_ocfree();
}

kms_err_t kms_edge_store_put(const char *key_id, uint64_t expected_revision, uint64_t revision,
                             const uint8_t *blob, size_t len)
{
    size_t id_len = strlen(key_id);
    ms_kms_ocall_store_put_t ms = {.ms_retval = -1, .ms_key_id = oc_copy(key_id, id_len), .ms_key_id_len = id_len,
                                   .ms_expected_revision = expected_revision, .ms_revision = revision,
                                   .ms_blob = oc_copy(blob, len), .ms_blob_len = len};
    void *pms = ms.ms_key_id != NULL && ms.ms_blob != NULL ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_STORE_PUT, pms) : KMS_ERR_OCALL;
    if (err == KMS_OK) {
        int rv = oc_retval(pms, offsetof(ms_kms_ocall_store_put_t, ms_retval));
        err = rv == 0 ? KMS_OK : rv == 1 ? KMS_ERR_CONFLICT : KMS_ERR_STORE_UNAVAILABLE;
    }
    platform_ocfree();
    return err;
}

kms_err_t kms_edge_store_list(const char *after, uint32_t limit, char *ids, size_t cap, size_t *len)
{
    size_t after_len = strlen(after), zero = 0;
    ms_kms_ocall_store_list_t ms = {.ms_retval = -1, .ms_after = oc_copy(after, after_len), .ms_after_len = after_len,
                                    .ms_limit = limit, .ms_ids = oc_copy(NULL, cap), .ms_cap = cap,
                                    .ms_len = oc_copy(&zero, sizeof zero)};
    size_t *o_len = ms.ms_len;
    const char *o_ids = ms.ms_ids;
    void *pms = ms.ms_after && ms.ms_ids && o_len ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_STORE_LIST, pms) : KMS_ERR_OCALL;
    if (err == KMS_OK) {
        size_t got = oc_size(o_len);
        if (oc_retval(pms, offsetof(ms_kms_ocall_store_list_t, ms_retval)) != 0 || got > cap) {
            err = KMS_ERR_STORE_UNAVAILABLE;
        } else {
            if (got > 0) memcpy(ids, o_ids, got);
            *len = got;
        }
    }
    platform_ocfree();
    return err;
}

/* An audit OCALL's answer: 0 done, 1 refused as out of sequence (KMS_ERR_CONFLICT), anything else failed. */
static kms_err_t audit_answer(kms_err_t err, void *pms, size_t retval_at)
{
    int rv = err == KMS_OK ? oc_retval(pms, retval_at) : -1;
    return rv == 0 ? KMS_OK : rv == 1 ? KMS_ERR_CONFLICT : KMS_ERR_AUDIT_UNAVAILABLE;
}

kms_err_t kms_edge_audit_enqueue(uint64_t seq, int follows, const uint8_t *entry, size_t len, uint64_t *ticket)
{
    uint64_t zero = 0;
    ms_kms_ocall_audit_enqueue_t ms = {.ms_retval = -1, .ms_seq = seq, .ms_follows = follows,
                                       .ms_entry = oc_copy(entry, len), .ms_len = len,
                                       .ms_ticket = oc_copy(&zero, sizeof zero)};
    uint64_t *o_ticket = ms.ms_ticket;
    void *pms = ms.ms_entry != NULL && o_ticket != NULL ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_AUDIT_ENQUEUE, pms) : KMS_ERR_OCALL;
    err = audit_answer(err, pms, offsetof(ms_kms_ocall_audit_enqueue_t, ms_retval));
    if (err == KMS_OK) memcpy(ticket, o_ticket, sizeof *ticket); /* read once; any value is only the host's name */
    platform_ocfree();
    return err;
}

kms_err_t kms_edge_audit_wait(uint64_t ticket)
{
    ms_kms_ocall_audit_wait_t ms = {.ms_retval = -1, .ms_ticket = ticket};
    void *pms = oc_copy(&ms, sizeof ms);
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_AUDIT_WAIT, pms) : KMS_ERR_OCALL;
    err = audit_answer(err, pms, offsetof(ms_kms_ocall_audit_wait_t, ms_retval));
    platform_ocfree();
    return err;
}

kms_err_t kms_edge_audit_head(uint8_t *entry, size_t cap, size_t *len)
{
    size_t zero = 0;
    ms_kms_ocall_audit_head_t ms = {.ms_retval = -1, .ms_entry = oc_copy(NULL, cap), .ms_cap = cap,
                                    .ms_len = oc_copy(&zero, sizeof zero)};
    size_t *o_len = ms.ms_len;
    const uint8_t *o_entry = ms.ms_entry;
    void *pms = o_entry != NULL && o_len != NULL ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_AUDIT_HEAD, pms) : KMS_ERR_OCALL;
    if (err == KMS_OK) {
        size_t got = oc_size(o_len);
        if (oc_retval(pms, offsetof(ms_kms_ocall_audit_head_t, ms_retval)) != 0 || got > cap) {
            err = KMS_ERR_AUDIT_UNAVAILABLE;
        } else {
            if (got > 0) memcpy(entry, o_entry, got);
            *len = got;
        }
    }
    platform_ocfree();
    return err;
}

kms_err_t kms_edge_store_commit(const char *key_id, uint64_t expected_revision, uint64_t revision,
                                const uint8_t *blob, size_t len, uint64_t seq, const uint8_t *entry, size_t entry_len)
{
    size_t id_len = strlen(key_id);
    ms_kms_ocall_store_commit_t ms = {.ms_retval = -1, .ms_key_id = oc_copy(key_id, id_len), .ms_key_id_len = id_len,
                                      .ms_expected_revision = expected_revision, .ms_revision = revision,
                                      .ms_blob = oc_copy(blob, len), .ms_blob_len = len, .ms_seq = seq,
                                      .ms_entry = oc_copy(entry, entry_len), .ms_entry_len = entry_len};
    void *pms = ms.ms_key_id && ms.ms_blob && ms.ms_entry ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_STORE_COMMIT, pms) : KMS_ERR_OCALL;
    if (err == KMS_OK) {
        int rv = oc_retval(pms, offsetof(ms_kms_ocall_store_commit_t, ms_retval));
        err = rv == 0 ? KMS_OK : rv == 1 ? KMS_ERR_CONFLICT : KMS_ERR_STORE_UNAVAILABLE;
    }
    platform_ocfree();
    return err;
}

kms_err_t kms_edge_state_log_get(uint64_t seq, uint8_t *entry, size_t cap, size_t *len)
{
    size_t zero = 0;
    ms_kms_ocall_state_log_get_t ms = {.ms_retval = -1, .ms_seq = seq, .ms_entry = oc_copy(NULL, cap), .ms_cap = cap,
                                       .ms_len = oc_copy(&zero, sizeof zero)};
    size_t *o_len = ms.ms_len;
    const uint8_t *o_entry = ms.ms_entry;
    void *pms = o_entry != NULL && o_len != NULL ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_STATE_LOG_GET, pms) : KMS_ERR_OCALL;
    if (err == KMS_OK) {
        size_t got = oc_size(o_len);
        if (oc_retval(pms, offsetof(ms_kms_ocall_state_log_get_t, ms_retval)) != 0 || got > cap) {
            err = KMS_ERR_STORE_UNAVAILABLE;
        } else {
            if (got > 0) memcpy(entry, o_entry, got);
            *len = got;
        }
    }
    platform_ocfree();
    return err;
}

kms_err_t kms_edge_store_get(const char *key_id, uint8_t *blob, size_t cap, size_t *len)
{
    size_t id_len = strlen(key_id), zero = 0;
    ms_kms_ocall_store_get_t ms = {.ms_retval = -1, .ms_key_id = oc_copy(key_id, id_len), .ms_key_id_len = id_len,
                                   .ms_blob = oc_copy(NULL, cap), .ms_blob_cap = cap,
                                   .ms_blob_len = oc_copy(&zero, sizeof zero)};
    size_t *o_len = ms.ms_blob_len;
    const uint8_t *o_blob = ms.ms_blob;
    void *pms = ms.ms_key_id && o_blob && o_len ? oc_copy(&ms, sizeof ms) : NULL;
    kms_err_t err = pms != NULL ? platform_ocall(KMS_OCALL_STORE_GET, pms) : KMS_ERR_OCALL;
    if (err == KMS_OK) {
        size_t got = oc_size(o_len);
        if (oc_retval(pms, offsetof(ms_kms_ocall_store_get_t, ms_retval)) != 0 || got > cap) {
            err = KMS_ERR_STORE_UNAVAILABLE;
        } else {
            if (got > 0) memcpy(blob, o_blob, got);
            *len = got;
        }
    }
    platform_ocfree();
    return err;
}
