/* handlers_policy.c - key policies (statements with context conditions, export setting) and grants. */
#include <string.h>

#include "crypto.h"
#include "handlers.h"

#define OPERATION_BITS 0x7fu

static int operations_valid(uint32_t ops) { return ops != 0 && (ops & ~OPERATION_BITS) == 0; }

kms_err_t kms_handle_put_key_policy(kms_ctx *ctx, const Request *req, Response *resp)
{
    const PutKeyPolicyRequest *q = &req->op.put_key_policy;
    for (pb_size_t i = 0; i < q->statements_count; i++)
        if (!operations_valid(q->statements[i].operations) ||
            (q->statements[i].principal.size != 0 && q->statements[i].principal.size != 32))
            return KMS_ERR_INVALID_ARGUMENT;
    if (q->export_policy != ExportPolicy_NON_EXPORTABLE && q->export_policy != ExportPolicy_EXPORT_TO_ATTESTED_ENCLAVE)
        return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, q->key_id, &rec));
    _Static_assert(sizeof rec->policy == sizeof q->statements, "policy bound");
    memcpy(rec->policy, q->statements, sizeof rec->policy);
    rec->policy_count = q->statements_count;
    rec->export_policy = q->export_policy;
    kms_err_t err = kms_record_commit(rec, resp);
    kms_record_free(rec);
    return err;
}

static kms_err_t answer_grants(const KeyRecord *rec, Response *resp)
{
    GrantList *r = &resp->result.grants;
    _Static_assert(sizeof r->grants == sizeof rec->grants, "grant bound");
    memcpy(r->key_id, rec->key_id, sizeof r->key_id);
    memcpy(r->grants, rec->grants, sizeof r->grants);
    r->grants_count = rec->grants_count;
    resp->which_result = Response_grants_tag;
    return KMS_OK;
}

kms_err_t kms_handle_create_grant(kms_ctx *ctx, const Request *req, Response *resp)
{
    const CreateGrantRequest *q = &req->op.create_grant;
    if (q->grantee.size != 32 || !operations_valid(q->operations) || (q->expires_at != 0 && q->expires_at <= ctx->now))
        return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, q->key_id, &rec));
    kms_err_t err = rec->grants_count >= sizeof rec->grants / sizeof rec->grants[0] ? KMS_ERR_INVALID_ARGUMENT : KMS_OK;
    if (err == KMS_OK) {
        Grant *g = &rec->grants[rec->grants_count];
        memset(g, 0, sizeof *g);
        err = kms_random(g->grant_id.bytes, 16);
        g->grant_id.size = 16;
        memcpy(g->grantee.bytes, q->grantee.bytes, 32);
        g->grantee.size = 32;
        g->operations = q->operations;
        g->expires_at = q->expires_at;
        _Static_assert(sizeof g->conditions == sizeof q->conditions, "condition bound");
        memcpy(g->conditions, q->conditions, sizeof g->conditions);
        g->conditions_count = q->conditions_count;
        rec->grants_count++;
    }
    if (err == KMS_OK) err = kms_keystore_write(rec, rec->revision - 1);
    if (err == KMS_OK) err = answer_grants(rec, resp);
    kms_record_free(rec);
    return err;
}

kms_err_t kms_handle_list_grants(kms_ctx *ctx, const Request *req, Response *resp)
{
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, req->op.list_grants.key_id, &key));
    kms_err_t err = answer_grants(kms_key_record(key), resp);
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_revoke_grant(kms_ctx *ctx, const Request *req, Response *resp)
{
    const RevokeGrantRequest *q = &req->op.revoke_grant;
    KeyRecord *rec = NULL;
    if (q->grant_id.size != 16) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, q->key_id, &rec));
    pb_size_t i = 0, n = rec->grants_count;
    while (i < n && memcmp(rec->grants[i].grant_id.bytes, q->grant_id.bytes, 16) != 0) i++;
    kms_err_t err = i == n ? KMS_ERR_KEY_NOT_FOUND : KMS_OK;
    if (err == KMS_OK) {
        rec->grants[i] = rec->grants[n - 1];
        rec->grants_count--;
        err = kms_keystore_write(rec, rec->revision - 1);
    }
    if (err == KMS_OK) err = answer_grants(rec, resp);
    kms_record_free(rec);
    return err;
}
