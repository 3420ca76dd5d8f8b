/* policy.c - key policy statements, grants with expiry and context conditions, policy hashes. */
#include <string.h>

#include <openssl/crypto.h>
#include <pb_encode.h>

#include "crypto.h"
#include "policy.h"

/* Every condition must appear, exactly, in the request's encryption context. */
static int conditions_hold(const kms_ctx *ctx, const ContextCondition *conds, pb_size_t n)
{
    for (pb_size_t i = 0; i < n; i++) {
        int found = 0;
        for (pb_size_t j = 0; j < ctx->context_count && !found; j++)
            found = ctx->context[j].key.size == conds[i].key.size && ctx->context[j].value.size == conds[i].value.size &&
                    memcmp(ctx->context[j].key.bytes, conds[i].key.bytes, conds[i].key.size) == 0 &&
                    memcmp(ctx->context[j].value.bytes, conds[i].value.bytes, conds[i].value.size) == 0;
        if (!found) return 0;
    }
    return 1;
}

int kms_policy_allows(const kms_ctx *ctx, const KeyRecord *rec, const uint8_t principal[32])
{
    for (pb_size_t i = 0; i < rec->policy_count; i++) {
        const PolicyStatement *s = &rec->policy[i];
        if ((s->principal.size == 0 || (s->principal.size == 32 && CRYPTO_memcmp(s->principal.bytes, principal, 32) == 0)) &&
            (s->operations & ctx->op_class) != 0 && conditions_hold(ctx, s->conditions, s->conditions_count))
            return 1;
    }
    for (pb_size_t i = 0; i < rec->grants_count; i++) {
        const Grant *g = &rec->grants[i];
        if (g->grantee.size == 32 && CRYPTO_memcmp(g->grantee.bytes, principal, 32) == 0 &&
            (g->operations & ctx->op_class) != 0 && (g->expires_at == 0 || ctx->now < g->expires_at) &&
            conditions_hold(ctx, g->conditions, g->conditions_count))
            return 1;
    }
    return 0;
}

void kms_policy_hash(const KeyRecord *rec, uint8_t out[32])
{
    uint8_t buf[PolicyStatement_size + 1];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (pb_size_t i = 0; ok && i < rec->policy_count; i++) {
        pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
        ok = pb_encode_delimited(&os, PolicyStatement_fields, &rec->policy[i]) &&
             EVP_DigestUpdate(md, buf, os.bytes_written) == 1;
    }
    buf[0] = (uint8_t)rec->export_policy;
    ok = ok && EVP_DigestUpdate(md, buf, 1) == 1 && EVP_DigestFinal_ex(md, out, &len) == 1 && len == 32;
    if (!ok) memset(out, 0, 32);
    EVP_MD_CTX_free(md);
}
