/* authz.c - the rules of who may do what (authz.h). */
#include <string.h>

#include <openssl/crypto.h>

#include "authz.h"
#include "domain.h"
#include "policy.h"
#include "principals.h"

#define SESSION_BITS (KMS_ALLOW_ADMIN | KMS_ALLOW_USER | KMS_ALLOW_ANYONE | KMS_ALLOW_NEWDOMAIN)

kms_err_t kms_authz_decide(unsigned int allow, kms_caller_kind kind, int domain_loaded, Role role)
{
    switch (kind) {
    case KMS_CALLER_HOST: return (allow & KMS_ALLOW_HOST) != 0 ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
    case KMS_CALLER_PRINCIPAL: break;
    default: return KMS_ERR_PERMISSION_DENIED; /* no caller is never "the host" */
    }
    if ((allow & SESSION_BITS) == 0) return KMS_ERR_PERMISSION_DENIED; /* the platform's plumbing */
    if (!domain_loaded) return (allow & KMS_ALLOW_NEWDOMAIN) != 0 ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
    if ((allow & SESSION_BITS) == KMS_ALLOW_NEWDOMAIN) return KMS_ERR_DOMAIN_ALREADY_LOADED;
    if ((allow & KMS_ALLOW_ANYONE) != 0) return KMS_OK;
    if (role == Role_ADMIN && (allow & KMS_ALLOW_ADMIN) != 0) return KMS_OK;
    if (role == Role_USER && (allow & KMS_ALLOW_USER) != 0) return KMS_OK;
    return KMS_ERR_PERMISSION_DENIED;
}

kms_err_t kms_authz_op(kms_ctx *ctx, unsigned int allow)
{
    uint8_t id[KMS_DOMAIN_ID_LEN];
    int loaded = kms_domain_id(id);
    ctx->role = Role_ROLE_UNSPECIFIED;
    /* Always: a removed principal is refused everything, even what anyone may do. */
    if (ctx->caller.kind == KMS_CALLER_PRINCIPAL && loaded)
        KMS_RETURN_IF_ERR(kms_principal_role(ctx->caller.principal, &ctx->role));
    return kms_authz_decide(allow, ctx->caller.kind, loaded, ctx->role);
}

int kms_ctx_is_admin(const kms_ctx *ctx)
{
    return ctx->caller.kind == KMS_CALLER_PRINCIPAL && ctx->role == Role_ADMIN;
}

kms_err_t kms_authz_hide_absence(const kms_ctx *ctx, kms_err_t err)
{
    if (err != KMS_ERR_KEY_NOT_FOUND && err != KMS_ERR_ALIAS_NOT_FOUND) return err;
    return kms_ctx_is_host(ctx) || kms_ctx_is_admin(ctx) ? err : KMS_ERR_PERMISSION_DENIED;
}

kms_err_t kms_authz_key(kms_ctx *ctx, const KeyRecord *rec)
{
    kms_policy_hash(rec, ctx->policy_hash);
    ctx->has_policy_hash = 1;
    switch (ctx->caller.kind) {
    case KMS_CALLER_HOST: return rec->host_owned ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
    case KMS_CALLER_PRINCIPAL: break;
    default: return KMS_ERR_PERMISSION_DENIED;
    }
    if (rec->host_owned) return KMS_ERR_PERMISSION_DENIED;
    if (kms_ctx_is_admin(ctx)) return KMS_OK;
    if (ctx->role != Role_USER) return KMS_ERR_PERMISSION_DENIED;
    return kms_policy_allows(ctx, rec, ctx->caller.principal) ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
}
