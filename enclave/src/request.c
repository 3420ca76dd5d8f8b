/*
 * request.c - the one request path (request.h): decode, version, operation, caller's right,
 * handler, audit. Both transports (ecall.c, session.c) call kms_request_run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "audit.h"
#include "authz.h"
#include "kms/limits.h"
#include "crypto.h"
#include "domain.h"
#include "handlers.h"
#include "request.h"
#include "request_slot.h"
#include "statelog.h"

_Static_assert(Request_size <= KMS_MAX_REQUEST_SIZE, "KMS_MAX_REQUEST_SIZE below nanopb's bound");
_Static_assert(Response_size <= KMS_MAX_RESPONSE_SIZE, "KMS_MAX_RESPONSE_SIZE below nanopb's bound");

/* The key version the answer names (0 when it names none). */
static uint32_t answer_version(const Response *resp)
{
    switch (resp->which_result) {
    case Response_encrypt_tag: return resp->result.encrypt.key_version;
    case Response_decrypt_tag: return resp->result.decrypt.key_version;
    case Response_sign_tag: return resp->result.sign.key_version;
    case Response_generate_mac_tag: return resp->result.generate_mac.key_version;
    case Response_get_public_key_tag: return resp->result.get_public_key.key_version;
    case Response_generate_data_key_tag: return resp->result.generate_data_key.key_version;
    case Response_generate_data_key_pair_tag: return resp->result.generate_data_key_pair.key_version;
    case Response_re_encrypt_tag: return resp->result.re_encrypt.key_version;
    case Response_key_metadata_tag: return resp->result.key_metadata.current_version;
    default: return 0;
    }
}

/* SHA-256 of the canonical encoding of the operation's encryption context (the table's context
 * column), into out; 0 bytes when it has none. */
static pb_size_t context_hash(const kms_op *op, const Request *req, uint8_t out[32])
{
    pb_size_t count = 0;
    const ContextEntry *entries = kms_op_context(op, req, &count);
    uint8_t *buf = count > 0 ? malloc(KMS_CONTEXT_MAX_LEN) : NULL;
    int duplicates = 0; /* a refused request's context is hashed as it came */
    pb_size_t size = 0;
    if (buf != NULL) {
        size_t len = kms_context_encode(entries, count, buf, &duplicates);
        size = kms_sha256(buf, len, out) == KMS_OK ? 32 : 0;
        kms_wipe(buf, KMS_CONTEXT_MAX_LEN);
        free(buf);
    }
    return size;
}

void kms_request_audit_body(const kms_ctx *ctx, const Request *req, const Response *resp, kms_err_t outcome,
                            AuditBody *rec)
{
    snprintf(rec->operation, sizeof rec->operation, "%s", ctx->op->name);
    kms_op_key_id(&ctx->op->key, req, resp, rec->key_id, sizeof rec->key_id);
    kms_op_key_id(&ctx->op->source, req, resp, rec->source_key_id, sizeof rec->source_key_id);
    if (ctx->caller.kind == KMS_CALLER_PRINCIPAL) {
        memcpy(rec->principal.bytes, ctx->caller.principal, 32);
        rec->principal.size = 32;
    }
    rec->outcome = outcome;
    rec->key_version = outcome == KMS_OK ? answer_version(resp) : 0;
    if (ctx->has_policy_hash) memcpy(rec->policy_hash.bytes, ctx->policy_hash, 32);
    rec->policy_hash.size = ctx->has_policy_hash ? 32 : 0;
    rec->context_hash.size = context_hash(ctx->op, req, rec->context_hash.bytes);
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
    /* The domain's state as the shared log has it now, before the caller's rights are read from it. */
    kms_err_t err = ctx->op->audit != KMS_AUDIT_NO && kms_state_is_open() ? kms_cluster_gate() : KMS_OK;
    if (err == KMS_OK) err = kms_authz_op(ctx, ctx->op->allow);
    if (err == KMS_OK) err = ctx->op->handler(ctx, req, resp);
    if (!audited(ctx, err)) return err;
    AuditBody *body = calloc(1, sizeof *body);
    kms_err_t audit = KMS_ERR_OUT_OF_MEMORY;
    if (body != NULL) {
        kms_request_audit_body(ctx, req, resp, err, body);
        audit = kms_audit_record(body, ctx->now);
        kms_wipe(body, sizeof *body);
        free(body);
    }
    return err != KMS_OK ? err : audit; /* an unaudited success is a failure */
}

/* Every answer carries the domain and its state head, for the client's freshness check. */
static void fill_head(Response *resp)
{
    resp->has_state_head = kms_state_head(&resp->state_head.seq, resp->state_head.hash.bytes) == KMS_OK;
    resp->state_head.hash.size = resp->has_state_head ? 32 : 0;
    resp->domain_id.size = resp->has_state_head && kms_domain_id(resp->domain_id.bytes) ? 16 : 0;
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
    kms_wipe(out, cap);
    return pb_get_encoded_size(&need, Response_fields, resp) && need > cap ? KMS_ERR_BUFFER_TOO_SMALL : KMS_ERR_ENCODE;
}

/* Decode, check the version, run; the answer in s->resp. */
static kms_err_t run(kms_ctx *ctx, const int64_t *time, const uint8_t *in, size_t len, kms_slot *s)
{
    if (len > KMS_MAX_REQUEST_SIZE) return KMS_ERR_REQUEST_TOO_LARGE;
    if (!kms_slot_decode(s, in, len)) return KMS_ERR_MALFORMED_REQUEST;
    if (s->req.version != BoundaryVersion_BOUNDARY_VERSION_1) return KMS_ERR_UNSUPPORTED_VERSION;
    if (time != NULL) s->req.host_time = *time; /* a session's requests carry the feed's time */
    ctx->now = kms_state_now(s->req.host_time); /* time only moves forward inside the enclave */
    return process(ctx, &s->req, &s->resp);
}

kms_err_t kms_request_run(const kms_caller *caller, const int64_t *time, const uint8_t *in, size_t len,
                          kms_answer *a)
{
    kms_ctx ctx = {.caller = *caller};
    kms_slot *s = kms_slot_take();
    kms_err_t err = s != NULL ? run(&ctx, time, in, len, s) : KMS_ERR_OUT_OF_MEMORY;
    a->len = 0;
    a->encoded = KMS_ERR_OUT_OF_MEMORY;
    if (s != NULL) {
        Response *resp = &s->resp;
        /* A refused handler may have written part of its answer: none of it goes out. */
        if (err != KMS_OK) memset(&resp->result, 0, sizeof resp->result), resp->which_result = 0;
        fill_head(resp);
        resp->version = BoundaryVersion_BOUNDARY_VERSION_1;
        resp->request_id = s->req.request_id;
        resp->error = err;
        a->encoded = KMS_OK;
        if (err == KMS_OK || a->refusals || resp->error_detail[0] != '\0') a->encoded = kms_response_encode(resp, a->out, a->cap, &a->len);
    }
    kms_slot_give(s);
    kms_wipe(&ctx, sizeof ctx);
    return err;
}
