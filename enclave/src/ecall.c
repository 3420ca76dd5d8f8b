/*
 * ecall.c - the boundary checks of every ECALL (models.md rule 3, place 2): init state,
 * size limits, nanopb decode into a zeroed bounded struct, version and operation checks.
 * Semantic checks belong to the handlers.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "authz.h"
#include "crypto.h"
#include "dispatch.h"
#include "ecall.h"
#include "kms/limits.h"
#include "log.h"
#include "platform.h"
#include "ratls.h"
#include "session.h"

_Static_assert(Request_size <= KMS_MAX_REQUEST_SIZE, "KMS_MAX_REQUEST_SIZE below nanopb's bound");
_Static_assert(Response_size <= KMS_MAX_RESPONSE_SIZE, "KMS_MAX_RESPONSE_SIZE below nanopb's bound");

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

kms_err_t kms_ecall_call_impl(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
                              size_t *resp_len)
{
    if (atomic_load(&g_state) != STATE_READY) return KMS_ERR_NOT_INITIALIZED;
    if (req_len > KMS_MAX_REQUEST_SIZE) return KMS_ERR_REQUEST_TOO_LARGE;
    Request *in = calloc(1, sizeof *in);
    Response *out = calloc(1, sizeof *out);
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    if (in == NULL || out == NULL) goto done;
    pb_istream_t is = pb_istream_from_buffer(req, req_len);
    err = KMS_ERR_MALFORMED_REQUEST;
    if (!pb_decode(&is, Request_fields, in)) goto done;
    err = KMS_ERR_UNSUPPORTED_VERSION;
    if (in->version != BoundaryVersion_BOUNDARY_VERSION_1) goto done;
    kms_caller_set(NULL); /* the call ECALL is the host */
    KMS_GOTO_IF_ERR(err, kms_process(in, out), done);
    out->version = BoundaryVersion_BOUNDARY_VERSION_1;
    out->request_id = in->request_id;
    pb_ostream_t os = pb_ostream_from_buffer(resp, cap);
    if (!pb_encode(&os, Response_fields, out)) {
        /* nanopb stops before the field that does not fit: bytes_written may be below cap. */
        size_t need = 0;
        err = pb_get_encoded_size(&need, Response_fields, out) && need > cap ? KMS_ERR_BUFFER_TOO_SMALL
                                                                             : KMS_ERR_ENCODE;
        OPENSSL_cleanse(resp, cap);
        goto done;
    }
    *resp_len = os.bytes_written;
done:
    if (in != NULL) OPENSSL_cleanse(in, sizeof *in);
    if (out != NULL) OPENSSL_cleanse(out, sizeof *out);
    free(in);
    free(out);
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
