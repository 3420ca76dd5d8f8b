/*
 * handlers_domain.c - the domain over attested sessions: initialization (first admin,
 * domain key, recovery shares, auditors), principals, and the auditors' replacement.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ocalls.h"
#include "handlers.h"
#include "audit.h"
#include "audit_epoch.h"
#include "domain.h"
#include "keystore.h"
#include "principals.h"
#include "ratls.h"
#include "record.h"
#include "recovery.h"
#include "replicas.h"
#include "statelog.h"

#define SEALED_DOMAIN_KEY_ID KMS_SEALED_DOMAIN_KEY_ID

static kms_err_t fill_principals(Response *resp);

kms_err_t kms_domain_open_state(int fresh, char *detail, size_t cap, size_t *damaged)
{
    uint8_t id[KMS_DOMAIN_ID_LEN];
    kms_principals_clear(); /* nothing read of the domain's state before its key was open is kept */
    KMS_RETURN_IF_ERR(kms_state_open(fresh, detail, cap, damaged));
    if (kms_domain_id(id)) kms_ratls_set_domain(id); /* clients pin it: re-quote from now on */
    return KMS_OK;
}

void kms_domain_forget(void)
{
    kms_ratls_set_domain(NULL);
    kms_state_close();
    kms_domain_reset();
    kms_principals_clear();
    kms_keystore_clear();
    kms_audit_set_key(NULL, 0);
}

kms_err_t kms_activate_audit(void)
{
    uint8_t der[DomainState_size < 128 ? DomainState_size : 128];
    size_t len = 0;
    kms_auditors auditors;
    kms_err_t err = kms_principals_audit_key(der, sizeof der, &len);
    if (err == KMS_OK && len > 0) err = kms_principals_auditors(&auditors);
    if (err == KMS_OK && len > 0) err = kms_audit_set_key(der, len);
    if (err == KMS_OK && len > 0) kms_audit_set_auditors(&auditors);
    OPENSSL_cleanse(der, sizeof der);
    return err;
}

/* Add one auditor key of a request to a (its size checked). */
static kms_err_t add_auditor(kms_auditors *a, pb_size_t size, const uint8_t *key)
{
    if (size != 32) return KMS_ERR_INVALID_KEY;
    if (a->count >= KMS_MAX_AUDITORS_COUNT) return KMS_ERR_INVALID_ARGUMENT;
    memcpy(a->keys[a->count++], key, 32);
    return KMS_OK;
}

/*
 * Order matters: the domain state is written first (conditional on none existing), then the
 * sealed domain key; only then are the shares produced. If a write fails, the in-memory domain
 * key is forgotten, so the enclave never works with a key the host does not hold.
 */
static kms_err_t init_domain(const kms_ctx *ctx, const InitRequest *q, const kms_auditors *auditors, InitResponse *r,
                             char *detail, size_t cap)
{
    uint8_t sealed[1024], dk[32];
    size_t sealed_len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_domain_generate(sealed, sizeof sealed, &sealed_len, r->domain_id.bytes), done);
    r->domain_id.size = KMS_DOMAIN_ID_LEN;
    KMS_GOTO_IF_ERR(err, kms_domain_open_state(1, detail, cap, NULL), fail);
    KMS_GOTO_IF_ERR(err, kms_principals_create(ctx->caller.principal, q->admin_name, q->threshold,
                                               q->recovery_public_keys_count, auditors), fail);
    KMS_GOTO_IF_ERR(err, kms_activate_audit(), fail);
    KMS_GOTO_IF_ERR(err, kms_edge_store_put(SEALED_DOMAIN_KEY_ID, 0, 1, sealed, sealed_len), fail);
    KMS_GOTO_IF_ERR(err, kms_domain_copy_key(dk), fail);
    err = kms_recovery_split(dk, r->domain_id.bytes, q, r);
    OPENSSL_cleanse(dk, sizeof dk);
    if (err != KMS_OK) goto fail;
    memcpy(r->admin_principal_id.bytes, ctx->caller.principal, 32);
    r->admin_principal_id.size = 32;
    return KMS_OK;
fail:
    kms_domain_forget();
done:
    return err;
}

kms_err_t kms_handle_init(kms_ctx *ctx, const Request *req, Response *resp)
{
    const InitRequest *q = &req->op.init;
    pb_size_t n = q->recovery_public_keys_count;
    if (n < 1 || q->threshold < 1 || q->threshold > n) return KMS_ERR_INVALID_ARGUMENT;
    for (pb_size_t i = 0; i < n; i++)
        if (q->recovery_public_keys[i].size != 32) return KMS_ERR_INVALID_KEY;
    kms_auditors auditors = {.clear_bodies = q->audit_bodies_in_clear_insecure};
    for (pb_size_t i = 0; i < q->auditor_public_keys_count; i++)
        KMS_RETURN_IF_ERR(add_auditor(&auditors, q->auditor_public_keys[i].size, q->auditor_public_keys[i].bytes));
    KMS_RETURN_IF_ERR(kms_audit_check_auditors(&auditors)); /* fail closed: no auditor, no domain (unless chosen) */
    KMS_RETURN_IF_ERR(init_domain(ctx, q, &auditors, &resp->result.init, resp->error_detail, sizeof resp->error_detail));
    resp->which_result = Response_init_tag;
    return KMS_OK;
}

/*
 * Recovery: the recombined key must open this domain's stored state (its AAD binds the domain
 * id), which proves both the shares and the domain; only then is it sealed here and persisted.
 */
kms_err_t kms_handle_recover(kms_ctx *ctx, const Request *req, Response *resp)
{
    const RecoverRequest *q = &req->op.recover;
    uint8_t dk[32], sealed[1024];
    size_t sealed_len = 0;
    PrincipalList *check = calloc(1, sizeof *check);
    if (check == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    if (q->domain_id.size != KMS_DOMAIN_ID_LEN) goto done;
    KMS_GOTO_IF_ERR(err, kms_recovery_combine(q, dk), done);
    KMS_GOTO_IF_ERR(err, kms_domain_install_recovered(dk, q->domain_id.bytes, sealed, sizeof sealed, &sealed_len), done);
    kms_principals_clear();
    err = kms_record_authenticates(KMS_DOMAIN_STATE_ID) == KMS_OK ? KMS_OK : KMS_ERR_INVALID_ARGUMENT;
    if (err != KMS_OK) goto fail; /* wrong shares, too few, or another domain: nothing stays installed */
    KMS_GOTO_IF_ERR(err, kms_domain_open_state(0, resp->error_detail, sizeof resp->error_detail, NULL), fail);
    resp->error_detail[0] = '\0'; /* damaged records (if any) are refused when used */
    err = kms_principals_list(check);
    if (err != KMS_OK) { /* wrong shares, too few, or another domain: nothing stays installed */
        err = KMS_ERR_INVALID_ARGUMENT;
        goto fail;
    }
    KMS_GOTO_IF_ERR(err, kms_replicas_enroll_self(ctx->now), fail); /* this node: a replica the shares approved */
    KMS_GOTO_IF_ERR(err, kms_edge_store_put(SEALED_DOMAIN_KEY_ID, 0, 1, sealed, sealed_len), fail);
    KMS_GOTO_IF_ERR(err, kms_activate_audit(), fail);
    free(check);
    OPENSSL_cleanse(dk, sizeof dk);
    return fill_principals(resp);
fail:
    kms_domain_forget();
done:
    free(check);
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}

static kms_err_t fill_principals(Response *resp)
{
    KMS_RETURN_IF_ERR(kms_principals_list(&resp->result.principals));
    resp->which_result = Response_principals_tag;
    return KMS_OK;
}

kms_err_t kms_handle_add_principal(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const AddPrincipalRequest *q = &req->op.add_principal;
    if (q->principal_id.size != 32) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_principals_put(q->principal_id.bytes, q->name, q->role));
    return fill_principals(resp);
}

kms_err_t kms_handle_remove_principal(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const RemovePrincipalRequest *q = &req->op.remove_principal;
    if (q->principal_id.size != 32) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_principals_remove(q->principal_id.bytes));
    return fill_principals(resp);
}

kms_err_t kms_handle_list_principals(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    (void)req;
    return fill_principals(resp);
}

/* Replace the auditors: persisted first, then the next record opens an epoch sealed to them only. */
kms_err_t kms_handle_set_auditors(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const SetAuditorsRequest *q = &req->op.set_auditors;
    kms_auditors auditors = {.clear_bodies = 0};
    for (pb_size_t i = 0; i < q->auditor_public_keys_count; i++)
        KMS_RETURN_IF_ERR(add_auditor(&auditors, q->auditor_public_keys[i].size, q->auditor_public_keys[i].bytes));
    KMS_RETURN_IF_ERR(kms_audit_check_auditors(&auditors)); /* at least one: clear bodies are init's choice only */
    KMS_RETURN_IF_ERR(kms_principals_set_auditors(&auditors));
    kms_audit_set_auditors(&auditors);
    AuditorList *out = &resp->result.auditors;
    for (size_t i = 0; i < auditors.count; i++) {
        memcpy(out->auditor_public_keys[i].bytes, auditors.keys[i], 32);
        out->auditor_public_keys[i].size = 32;
    }
    out->auditor_public_keys_count = (pb_size_t)auditors.count;
    resp->which_result = Response_auditors_tag;
    return KMS_OK;
}
