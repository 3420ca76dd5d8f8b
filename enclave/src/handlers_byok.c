/*
 * handlers_byok.c - bring your own key: per-import RSA-3072 wrapping keys held only in enclave
 * memory, tokens that bind a wrapping key, a spec and an expiry (HMAC under a per-boot key),
 * and the unwrap (RSA-OAEP-SHA-256, or RSA + AES key wrap with padding as AWS KMS does).
 */
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "handlers.h"
#include "keyspec.h"

#define PENDING_IMPORTS 16
#define TOKEN_VALID_SECONDS (24 * 3600)
#define TOKEN_LEN (16 + 8 + 32)
#define RSA3072_LEN 384
#define MATERIAL_MAX 2400

struct pending {
    int used;
    uint8_t id[16];
    int64_t valid_to;
    KeySpec spec;
    KeyUsage usage;
    WrappingAlgorithm algorithm;
    EVP_PKEY *wrapping;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pending g_pending[PENDING_IMPORTS];
static uint8_t g_token_key[32];
static int g_token_key_ready;

/* token = id | valid_to (BE) | HMAC-SHA-256(per-boot key, id | valid_to | spec | usage | algorithm). */
static kms_err_t token_mac(const struct pending *p, uint8_t mac[32])
{
    uint8_t msg[16 + 8 + 3];
    size_t len = 0;
    memcpy(msg, p->id, 16);
    for (int i = 0; i < 8; i++) msg[16 + i] = (uint8_t)((uint64_t)p->valid_to >> (8 * (7 - i)));
    msg[24] = (uint8_t)p->spec, msg[25] = (uint8_t)p->usage, msg[26] = (uint8_t)p->algorithm;
    if (!g_token_key_ready) {
        KMS_RETURN_IF_ERR(kms_random(g_token_key, sizeof g_token_key));
        g_token_key_ready = 1;
    }
    return kms_hmac(KMS_MD_SHA256, g_token_key, sizeof g_token_key, msg, sizeof msg, mac, 32, &len);
}

/* A free (or expired) slot, under the lock. */
static struct pending *slot_for(int64_t now)
{
    for (int i = 0; i < PENDING_IMPORTS; i++) {
        struct pending *p = &g_pending[i];
        if (p->used && p->valid_to < now) {
            EVP_PKEY_free(p->wrapping);
            memset(p, 0, sizeof *p);
        }
        if (!p->used) return p;
    }
    return NULL;
}

kms_err_t kms_handle_get_parameters_for_import(kms_ctx *ctx, const Request *req, Response *resp)
{
    const GetParametersForImportRequest *q = &req->op.get_parameters_for_import;
    GetParametersForImportResponse *r = &resp->result.get_parameters_for_import;
    if (!kms_spec_allows_usage(q->spec, q->usage) || q->usage == KeyUsage_VALIDATOR ||
        (q->algorithm != WrappingAlgorithm_RSAES_OAEP_SHA_256_WRAP &&
         q->algorithm != WrappingAlgorithm_RSA_AES_KEY_WRAP_SHA_256))
        return KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY *wrapping = NULL;
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_pkey_generate(KMS_PKEY_RSA_3072, &wrapping));
    pthread_mutex_lock(&g_lock);
    struct pending *p = slot_for(ctx->now);
    kms_err_t err = p == NULL ? KMS_ERR_SESSION_LIMIT : kms_random(p->id, sizeof p->id);
    if (err == KMS_OK) {
        p->used = 1, p->valid_to = ctx->now + TOKEN_VALID_SECONDS;
        p->spec = q->spec, p->usage = q->usage, p->algorithm = q->algorithm;
        p->wrapping = wrapping;
        wrapping = NULL;
        memcpy(r->import_token.bytes, p->id, 16);
        for (int i = 0; i < 8; i++) r->import_token.bytes[16 + i] = (uint8_t)((uint64_t)p->valid_to >> (8 * (7 - i)));
        err = token_mac(p, r->import_token.bytes + 24);
        r->import_token.size = TOKEN_LEN;
        r->valid_to = p->valid_to;
        if (err == KMS_OK)
            err = kms_pkey_public_der(p->wrapping, r->wrapping_public_key.bytes, sizeof r->wrapping_public_key.bytes,
                                      &len);
    }
    pthread_mutex_unlock(&g_lock);
    EVP_PKEY_free(wrapping);
    r->wrapping_public_key.size = (pb_size_t)len;
    if (err == KMS_OK) resp->which_result = Response_get_parameters_for_import_tag;
    return err;
}

/* Take the pending import a token names (one use), checking its MAC and expiry. */
static kms_err_t take_pending(const ImportKeyMaterialRequest *q, int64_t now, struct pending *out)
{
    kms_err_t err = KMS_ERR_IMPORT_TOKEN;
    uint8_t mac[32];
    if (q->import_token.size != TOKEN_LEN) return err;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < PENDING_IMPORTS; i++) {
        struct pending *p = &g_pending[i];
        if (!p->used || CRYPTO_memcmp(p->id, q->import_token.bytes, 16) != 0) continue;
        uint8_t expiry[8];
        for (int b = 0; b < 8; b++) expiry[b] = (uint8_t)((uint64_t)p->valid_to >> (8 * (7 - b)));
        if (token_mac(p, mac) == KMS_OK && CRYPTO_memcmp(expiry, q->import_token.bytes + 16, 8) == 0 &&
            CRYPTO_memcmp(mac, q->import_token.bytes + 24, 32) == 0 && now <= p->valid_to) {
            *out = *p;
            memset(p, 0, sizeof *p); /* the caller owns the wrapping key now */
            err = KMS_OK;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

static kms_err_t unwrap(const struct pending *p, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                        size_t *out_len)
{
    if (p->algorithm == WrappingAlgorithm_RSAES_OAEP_SHA_256_WRAP)
        return kms_rsa_oaep_decrypt(p->wrapping, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, in, in_len, out, cap, out_len);
    uint8_t kek[RSA3072_LEN];
    size_t kek_len = 0;
    if (in_len <= RSA3072_LEN) return KMS_ERR_INVALID_CIPHERTEXT;
    kms_err_t err = kms_rsa_oaep_decrypt(p->wrapping, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, in, RSA3072_LEN, kek,
                                         sizeof kek, &kek_len);
    if (err == KMS_OK) err = kms_aes_kwp_unwrap(kek, kek_len, in + RSA3072_LEN, in_len - RSA3072_LEN, out, cap, out_len);
    OPENSSL_cleanse(kek, sizeof kek);
    return err;
}

/* The material must be what the spec expects: a raw secret of the right size or a PKCS#8 key of its kind. */
static kms_err_t check_material(KeySpec spec, const uint8_t *m, size_t len)
{
    kms_pkey_kind kind = kms_spec_pkey_kind(spec);
    if (kind == 0) {
        size_t want = spec == KeySpec_HMAC_SHA_384 ? 48 : spec == KeySpec_HMAC_SHA_512 ? 64 : 32;
        return len == want ? KMS_OK : KMS_ERR_INVALID_KEY;
    }
    EVP_PKEY *key = NULL;
    kms_err_t err = kms_pkey_from_private_der(kind, m, len, &key);
    EVP_PKEY_free(key);
    return err;
}

kms_err_t kms_handle_import_key_material(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ImportKeyMaterialRequest *q = &req->op.import_key_material;
    struct pending p = {0};
    uint8_t material[MATERIAL_MAX + 16];
    size_t len = 0;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(take_pending(q, ctx->now, &p));
    kms_err_t err = unwrap(&p, q->encrypted_key_material.bytes, q->encrypted_key_material.size, material,
                           sizeof material, &len);
    if (err == KMS_OK) err = check_material(p.spec, material, len);
    if (err == KMS_OK && (rec = kms_record_new()) == NULL) err = KMS_ERR_OUT_OF_MEMORY;
    if (err == KMS_OK) err = kms_key_id_new(rec->key_id);
    if (err == KMS_OK) {
        rec->spec = p.spec, rec->usage = p.usage, rec->state = KeyState_ENABLED, rec->origin = KeyOrigin_ORIGIN_IMPORTED;
        rec->host_owned = kms_ctx_is_host(ctx);
        memcpy(rec->description, q->description, sizeof rec->description);
        rec->created_at = rec->last_rotated_at = ctx->now;
        rec->revision = 1, rec->current_version = 1, rec->versions_count = 1;
        rec->versions[0].version = 1, rec->versions[0].created_at = ctx->now;
        memcpy(rec->versions[0].material.bytes, material, len);
        rec->versions[0].material.size = (pb_size_t)len;
        err = kms_keystore_write(rec, 0);
    }
    if (err == KMS_OK) kms_fill_metadata(rec, resp);
    OPENSSL_cleanse(material, sizeof material);
    kms_record_free(rec);
    EVP_PKEY_free(p.wrapping);
    return err;
}
