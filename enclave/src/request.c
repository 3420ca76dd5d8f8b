/*
 * request.c - the one request path (request.h): decode, version, operation, caller's right,
 * handler, audit. Both transports (ecall.c, session.c) call kms_request_run.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "audit.h"
#include "authz.h"
#include "kms/limits.h"
#include "request.h"

_Static_assert(Request_size <= KMS_MAX_REQUEST_SIZE, "KMS_MAX_REQUEST_SIZE below nanopb's bound");
_Static_assert(Response_size <= KMS_MAX_RESPONSE_SIZE, "KMS_MAX_RESPONSE_SIZE below nanopb's bound");

void kms_ctx_step(kms_ctx *ctx, uint32_t op_class, const ContextEntry *context, pb_size_t count)
{
    ctx->op_class = op_class;
    ctx->context = context;
    ctx->context_count = count;
}

/* Should this outcome of op be audited? */
static int audited(const kms_ctx *ctx, kms_err_t outcome)
{
    switch (ctx->op->audit) {
    case KMS_AUDIT_YES: return 1;
    /* The host's housekeeping proposes destroy/rotate for every key on a timer; a refused
     * proposal changed nothing, so it is not worth an audit record (and an fsync) per key. */
    case KMS_AUDIT_HOUSEKEEPING: return outcome == KMS_OK || !kms_ctx_is_host(ctx);
    default: return 0;
    }
}

/* Authorize and run a decoded request; append its audit record. */
static kms_err_t process(kms_ctx *ctx, const Request *req, Response *resp)
{
    ctx->op = kms_op_find(req->which_op);
    if (ctx->op == NULL) return KMS_ERR_UNKNOWN_OPERATION;
    ctx->op_class = kms_op_class(ctx->op, req);
    ctx->context = kms_op_context(ctx->op, req, &ctx->context_count);
    kms_err_t err = kms_authz_op(ctx);
    if (err == KMS_OK) err = ctx->op->handler(ctx, req, resp);
    if (!audited(ctx, err)) return err;
    kms_err_t audit = kms_audit_record(ctx, req, resp, err);
    return err != KMS_OK ? err : audit; /* an unaudited success is a failure */
}

kms_err_t kms_request_run(const kms_caller *caller, const int64_t *time, const uint8_t *in, size_t len,
                          Response *resp)
{
    kms_ctx ctx = {.caller = *caller};
    Request *req = len <= KMS_MAX_REQUEST_SIZE ? calloc(1, sizeof *req) : NULL;
    kms_err_t err = len > KMS_MAX_REQUEST_SIZE ? KMS_ERR_REQUEST_TOO_LARGE : KMS_ERR_OUT_OF_MEMORY;
    if (req == NULL) goto done;
    pb_istream_t is = pb_istream_from_buffer(in, len);
    err = KMS_ERR_MALFORMED_REQUEST;
    if (!pb_decode(&is, Request_fields, req)) goto done;
    err = KMS_ERR_UNSUPPORTED_VERSION;
    if (req->version != BoundaryVersion_BOUNDARY_VERSION_1) goto done;
    if (time != NULL) req->host_time = *time; /* a session's requests carry the feed's time */
    ctx.now = req->host_time;
    err = process(&ctx, req, resp);
done:
    if (err != KMS_OK) memset(&resp->result, 0, sizeof resp->result), resp->which_result = 0;
    resp->version = BoundaryVersion_BOUNDARY_VERSION_1;
    resp->request_id = req != NULL ? req->request_id : 0;
    resp->error = err;
    if (req != NULL) OPENSSL_cleanse(req, sizeof *req);
    free(req);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    return err;
}

kms_err_t kms_response_encode(const Response *resp, uint8_t *out, size_t cap, size_t *len)
{
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    if (pb_encode(&os, Response_fields, resp)) {
        *len = os.bytes_written;
        return KMS_OK;
    }
    /* nanopb stops before the field that does not fit: bytes_written may be below cap. */
    size_t need = 0;
    OPENSSL_cleanse(out, cap);
    return pb_get_encoded_size(&need, Response_fields, resp) && need > cap ? KMS_ERR_BUFFER_TOO_SMALL : KMS_ERR_ENCODE;
}
