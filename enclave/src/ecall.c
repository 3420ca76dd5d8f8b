/*
 * ecall.c - the ECALL implementations behind the trusted edge: the enclave's state machine
 * (init once, then ready) and the transports into the one request path (request.c): the call
 * ECALL runs a request as the host; the session ECALLs go to session.c.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "ecall.h"
#include "keystore.h"
#include "kms/limits.h"
#include "log.h"
#include "platform.h"
#include "ratls.h"
#include "request.h"
#include "session.h"


enum { STATE_NEW = 0, STATE_INITIALIZING = 1, STATE_READY = 2, STATE_FAILED = 3 };
static atomic_int g_state;

kms_err_t kms_ecall_init_impl(void)
{
    int expected = STATE_NEW;
    if (!atomic_compare_exchange_strong(&g_state, &expected, STATE_INITIALIZING))
        return KMS_ERR_ALREADY_INITIALIZED;
    kms_identity self;
    uint8_t probe[32];
    kms_err_t err = platform_self_identity(&self);
    if (err == KMS_OK) err = kms_random(probe, sizeof probe);
    if (err == KMS_OK) err = kms_ratls_init();
    OPENSSL_cleanse(probe, sizeof probe);
    atomic_store(&g_state, err == KMS_OK ? STATE_READY : STATE_FAILED);
    if (err == KMS_OK && platform_is_simulated())
        kms_log(KMS_LOG_WARNING, KMS_OK, "running on the SIMULATED SGX platform: no protection");
    return err;
}

void kms_ecall_uninit_impl(void)
{
    atomic_store(&g_state, STATE_FAILED);
    kms_keystore_clear();
    /* The request slots stay: all-zero, nothing to wipe, and a free here is one more chance to meet a
     * thread whose jemalloc data is gone (docs/simulation.md); the heap goes with the image. */
}

kms_err_t kms_ecall_call_impl(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
                              size_t *resp_len)
{
    if (atomic_load(&g_state) != STATE_READY) return KMS_ERR_NOT_INITIALIZED;
    static const kms_caller k_host = {.kind = KMS_CALLER_HOST}; /* the call ECALL is the host */
    kms_answer a = {.out = resp, .cap = cap, .refusals = 0};
    kms_err_t err = kms_request_run(&k_host, NULL, req, req_len, &a);
    /* A refusal is the ECALL's code; the response goes out too when it explains it. */
    if (err == KMS_OK) err = a.encoded;
    *resp_len = a.encoded == KMS_OK ? a.len : 0;
    return err;
}

kms_err_t kms_ecall_report_impl(const uint8_t target_info[512], uint8_t report[432])
{
    if (atomic_load(&g_state) != STATE_READY) return KMS_ERR_NOT_INITIALIZED;
    /* REPORTDATA is the enclave's to choose: the binding of its RA-TLS key, never host data. */
    uint8_t report_data[KMS_SGX_REPORT_DATA_SIZE];
    KMS_RETURN_IF_ERR(kms_ratls_report_data(report_data));
    return platform_report(target_info, report_data, report);
}

kms_err_t kms_ecall_session_open_impl(int64_t host_time, uint64_t *session_id)
{
    if (atomic_load(&g_state) != STATE_READY) return KMS_ERR_NOT_INITIALIZED;
    return kms_session_open(host_time, session_id);
}

kms_err_t kms_ecall_session_feed_impl(uint64_t session_id, int64_t host_time, const uint8_t *in, size_t in_len,
                                      uint8_t *out, size_t cap, size_t *out_len, size_t *pending, int *closed)
{
    if (atomic_load(&g_state) != STATE_READY) return KMS_ERR_NOT_INITIALIZED;
    return kms_session_feed(session_id, host_time, in, in_len, out, cap, out_len, pending, closed);
}

kms_err_t kms_ecall_session_close_impl(uint64_t session_id)
{
    if (atomic_load(&g_state) != STATE_READY) return KMS_ERR_NOT_INITIALIZED;
    return kms_session_close(session_id);
}
