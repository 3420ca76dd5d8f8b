/* policy.c - key policy statements, grants with expiry and context conditions, policy hashes. */
#include <string.h>

#include <openssl/crypto.h>
#include <pb_encode.h>

#include "crypto.h"
#include "policy.h"

static __thread uint32_t t_class;
static __thread const ContextEntry *t_ctx;
static __thread pb_size_t t_ctx_count;
static __thread int64_t t_now;
static __thread int t_has_hash;
static __thread uint8_t t_hash[32];

static uint32_t class_of(const Request *req)
{
    switch (req->which_op) {
    case Request_encrypt_tag: case Request_generate_data_key_tag: case Request_generate_data_key_pair_tag:
        return OperationClass_OP_ENCRYPT;
    case Request_decrypt_tag: case Request_asymmetric_decrypt_tag: case Request_re_encrypt_tag:
        return OperationClass_OP_DECRYPT;
    case Request_sign_tag: case Request_validator_sign_tag: return OperationClass_OP_SIGN;
    case Request_verify_tag: case Request_get_public_key_tag: return OperationClass_OP_VERIFY;
    case Request_generate_mac_tag: case Request_verify_mac_tag: return OperationClass_OP_MAC;
    case Request_derive_shared_secret_tag: return OperationClass_OP_DERIVE;
    case Request_batch_tag:
        return req->op.batch.operation == BatchOperation_BATCH_ENCRYPT   ? OperationClass_OP_ENCRYPT
               : req->op.batch.operation == BatchOperation_BATCH_DECRYPT ? OperationClass_OP_DECRYPT
                                                                         : OperationClass_OP_SIGN;
    default: return OperationClass_OP_DESCRIBE;
    }
}

void kms_policy_begin(const Request *req)
{
    t_class = class_of(req);
    t_now = req->host_time;
    t_has_hash = 0;
    t_ctx = NULL, t_ctx_count = 0;
    if (req->which_op == Request_encrypt_tag) t_ctx = req->op.encrypt.context, t_ctx_count = req->op.encrypt.context_count;
    if (req->which_op == Request_decrypt_tag) t_ctx = req->op.decrypt.context, t_ctx_count = req->op.decrypt.context_count;
    if (req->which_op == Request_generate_data_key_tag)
        t_ctx = req->op.generate_data_key.context, t_ctx_count = req->op.generate_data_key.context_count;
    if (req->which_op == Request_generate_data_key_pair_tag)
        t_ctx = req->op.generate_data_key_pair.context, t_ctx_count = req->op.generate_data_key_pair.context_count;
    if (req->which_op == Request_re_encrypt_tag)
        t_ctx = req->op.re_encrypt.source_context, t_ctx_count = req->op.re_encrypt.source_context_count;
}

void kms_policy_step(uint32_t op_class, const ContextEntry *ctx, pb_size_t ctx_count)
{
    t_class = op_class;
    t_ctx = ctx;
    t_ctx_count = ctx_count;
}

/* Every condition must appear, exactly, in the request's encryption context. */
static int conditions_hold(const ContextCondition *conds, pb_size_t n)
{
    for (pb_size_t i = 0; i < n; i++) {
        int found = 0;
        for (pb_size_t j = 0; j < t_ctx_count && !found; j++)
            found = t_ctx[j].key.size == conds[i].key.size && t_ctx[j].value.size == conds[i].value.size &&
                    memcmp(t_ctx[j].key.bytes, conds[i].key.bytes, conds[i].key.size) == 0 &&
                    memcmp(t_ctx[j].value.bytes, conds[i].value.bytes, conds[i].value.size) == 0;
        if (!found) return 0;
    }
    return 1;
}

int kms_policy_allows(const KeyRecord *rec, const uint8_t principal[32])
{
    for (pb_size_t i = 0; i < rec->policy_count; i++) {
        const PolicyStatement *s = &rec->policy[i];
        if ((s->principal.size == 0 || (s->principal.size == 32 && CRYPTO_memcmp(s->principal.bytes, principal, 32) == 0)) &&
            (s->operations & t_class) != 0 && conditions_hold(s->conditions, s->conditions_count))
            return 1;
    }
    for (pb_size_t i = 0; i < rec->grants_count; i++) {
        const Grant *g = &rec->grants[i];
        if (g->grantee.size == 32 && CRYPTO_memcmp(g->grantee.bytes, principal, 32) == 0 &&
            (g->operations & t_class) != 0 && (g->expires_at == 0 || t_now < g->expires_at) &&
            conditions_hold(g->conditions, g->conditions_count))
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

void kms_policy_note_key(const KeyRecord *rec)
{
    kms_policy_hash(rec, t_hash);
    t_has_hash = 1;
}

int kms_policy_last_hash(uint8_t out[32])
{
    if (t_has_hash) memcpy(out, t_hash, 32);
    return t_has_hash;
}
