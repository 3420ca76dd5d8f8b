/*
 * edge.c - the trusted edge of enclave/kms.edl, written as sgx_edger8r would generate it:
 * the single exported entry point dispatches ECALLs by index; every marshalling struct and
 * [in] buffer is copied into enclave memory before use and every [out] buffer is copied
 * out after, so the host cannot change what the enclave checked (no double fetch). The
 * only file that knows the marshalling layout (kms/edge.h) on the trusted side.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ocalls.h"
#include "ecall.h"
#include "kms/edge.h"
#include "kms/export.h"
#include "kms/limits.h"
#include "kms/sgx_status.h"
#include "log.h"
#include "platform.h"

KMS_EXPORT int kms_enclave_entry(int index, void *ms);

static int ecall_init(void *pms)
{
    ms_kms_ecall_init_t ms;
    memcpy(&ms, pms, sizeof ms);
    ms.ms_retval = kms_ecall_init_impl();
    memcpy(pms, &ms, sizeof ms);
    return SGX_SUCCESS;
}

static int ecall_call(void *pms)
{
    ms_kms_ecall_call_t ms;
    memcpy(&ms, pms, sizeof ms);
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
    if (err == KMS_OK) {
        memcpy(ms.ms_resp, resp, resp_len);
        *ms.ms_resp_len = resp_len;
    }
done:
    if (req != NULL) OPENSSL_cleanse(req, ms.ms_req_len);
    if (resp != NULL) OPENSSL_cleanse(resp, cap);
    free(req);
    free(resp);
    ms.ms_retval = err;
    memcpy(pms, &ms, sizeof ms);
    return SGX_SUCCESS;
}

static int ecall_report(void *pms)
{
    ms_kms_ecall_report_t ms;
    memcpy(&ms, pms, sizeof ms);
    uint8_t ti[KMS_SGX_TARGET_INFO_SIZE], report[KMS_SGX_REPORT_SIZE];
    kms_err_t err = KMS_ERR_BAD_PARAMETER;
    if (ms.ms_target_info != NULL && ms.ms_report != NULL) {
        memcpy(ti, ms.ms_target_info, sizeof ti);
        err = kms_ecall_report_impl(ti, report);
        if (err == KMS_OK) memcpy(ms.ms_report, report, sizeof report);
    }
    ms.ms_retval = err;
    memcpy(pms, &ms, sizeof ms);
    return SGX_SUCCESS;
}

static int ecall_session_open(void *pms)
{
    ms_kms_ecall_session_open_t ms;
    memcpy(&ms, pms, sizeof ms);
    uint64_t id = 0;
    kms_err_t err = ms.ms_session_id == NULL ? KMS_ERR_BAD_PARAMETER : kms_ecall_session_open_impl(ms.ms_host_time, &id);
    if (err == KMS_OK) *ms.ms_session_id = id;
    ms.ms_retval = err;
    memcpy(pms, &ms, sizeof ms);
    return SGX_SUCCESS;
}

static int ecall_session_feed(void *pms)
{
    ms_kms_ecall_session_feed_t ms;
    memcpy(&ms, pms, sizeof ms);
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
        *ms.ms_out_len = out_len;
        *ms.ms_pending = pending;
        *ms.ms_closed = closed;
    }
done:
    free(in);
    if (out != NULL) OPENSSL_cleanse(out, cap);
    free(out);
    ms.ms_retval = err;
    memcpy(pms, &ms, sizeof ms);
    return SGX_SUCCESS;
}

static int ecall_session_close(void *pms)
{
    ms_kms_ecall_session_close_t ms;
    memcpy(&ms, pms, sizeof ms);
    ms.ms_retval = kms_ecall_session_close_impl(ms.ms_session_id);
    memcpy(pms, &ms, sizeof ms);
    return SGX_SUCCESS;
}

int kms_enclave_entry(int index, void *ms)
{
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

void kms_log(int level, kms_err_t code, const char *msg)
{
    ms_kms_ocall_log_t ms = {.ms_level = level, .ms_code = (int)code, .ms_msg = msg};
    (void)platform_ocall(KMS_OCALL_LOG, &ms);
}

kms_err_t kms_edge_store_put(const char *key_id, uint64_t expected_revision, uint64_t revision,
                             const uint8_t *blob, size_t len)
{
    /* [in] buffers of an OCALL are copied out of the enclave first. */
    uint8_t *outside = malloc(len);
    if (outside == NULL) return KMS_ERR_OUT_OF_MEMORY;
    memcpy(outside, blob, len);
    ms_kms_ocall_store_put_t ms = {.ms_retval = -1, .ms_key_id = key_id, .ms_key_id_len = strlen(key_id),
                                   .ms_expected_revision = expected_revision, .ms_revision = revision,
                                   .ms_blob = outside, .ms_blob_len = len};
    kms_err_t err = platform_ocall(KMS_OCALL_STORE_PUT, &ms);
    if (err == KMS_OK) err = ms.ms_retval == 0 ? KMS_OK : ms.ms_retval == 1 ? KMS_ERR_CONFLICT : KMS_ERR_STORE_UNAVAILABLE;
    free(outside);
    return err;
}

kms_err_t kms_edge_store_list(const char *after, uint32_t limit, char *ids, size_t cap, size_t *len)
{
    char *outside = malloc(cap);
    size_t out_len = 0;
    if (outside == NULL) return KMS_ERR_OUT_OF_MEMORY;
    ms_kms_ocall_store_list_t ms = {.ms_retval = -1, .ms_after = after, .ms_after_len = strlen(after),
                                    .ms_limit = limit, .ms_ids = outside, .ms_cap = cap, .ms_len = &out_len};
    kms_err_t err = platform_ocall(KMS_OCALL_STORE_LIST, &ms);
    if (err == KMS_OK && (ms.ms_retval != 0 || out_len > cap)) err = KMS_ERR_STORE_UNAVAILABLE;
    if (err == KMS_OK) {
        memcpy(ids, outside, out_len);
        *len = out_len;
    }
    free(outside);
    return err;
}

kms_err_t kms_edge_audit_append(uint64_t seq, const uint8_t *entry, size_t len)
{
    uint8_t *outside = malloc(len);
    if (outside == NULL) return KMS_ERR_OUT_OF_MEMORY;
    memcpy(outside, entry, len);
    ms_kms_ocall_audit_append_t ms = {.ms_retval = -1, .ms_seq = seq, .ms_entry = outside, .ms_len = len};
    kms_err_t err = platform_ocall(KMS_OCALL_AUDIT_APPEND, &ms);
    free(outside);
    return err == KMS_OK && ms.ms_retval == 0 ? KMS_OK : KMS_ERR_AUDIT_UNAVAILABLE;
}

kms_err_t kms_edge_audit_head(uint8_t *entry, size_t cap, size_t *len)
{
    uint8_t *outside = malloc(cap);
    size_t out_len = 0;
    if (outside == NULL) return KMS_ERR_OUT_OF_MEMORY;
    ms_kms_ocall_audit_head_t ms = {.ms_retval = -1, .ms_entry = outside, .ms_cap = cap, .ms_len = &out_len};
    kms_err_t err = platform_ocall(KMS_OCALL_AUDIT_HEAD, &ms);
    if (err == KMS_OK && (ms.ms_retval != 0 || out_len > cap)) err = KMS_ERR_AUDIT_UNAVAILABLE;
    if (err == KMS_OK) {
        memcpy(entry, outside, out_len);
        *len = out_len;
    }
    free(outside);
    return err;
}

kms_err_t kms_edge_store_get(const char *key_id, uint8_t *blob, size_t cap, size_t *len)
{
    /* [out] buffers of an OCALL live outside the enclave; copy in after checking the size. */
    uint8_t *outside = malloc(cap);
    size_t out_len = 0;
    if (outside == NULL) return KMS_ERR_OUT_OF_MEMORY;
    ms_kms_ocall_store_get_t ms = {.ms_retval = -1, .ms_key_id = key_id,
                                   .ms_key_id_len = strlen(key_id), .ms_blob = outside,
                                   .ms_blob_cap = cap, .ms_blob_len = &out_len};
    kms_err_t err = platform_ocall(KMS_OCALL_STORE_GET, &ms);
    if (err == KMS_OK && ms.ms_retval != 0) err = KMS_ERR_STORE_UNAVAILABLE;
    if (err == KMS_OK && out_len > cap) err = KMS_ERR_STORE_UNAVAILABLE;
    if (err == KMS_OK) {
        memcpy(blob, outside, out_len);
        *len = out_len;
    }
    free(outside);
    return err;
}
