/*
 * handlers_data.c - symmetric data operations: Encrypt / Decrypt (AES-256-GCM with a
 * self-describing ciphertext and the encryption context as AAD) and HMAC.
 *
 * Ciphertext = 0x01 | key id length u8 | key id | key version u32 BE | nonce[12] | ct | tag[16].
 * AAD = everything before ct || canonical context (count u8, then per pair sorted by key:
 * key length u16 BE | key | value length u16 BE | value). Duplicate context keys are refused.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "handlers.h"
#include "keyspec.h"
#include "kms/limits.h"

#define CT_FORMAT 0x01u
#define CT_HEADER_LEN (1u + 1u + KMS_KEY_ID_LEN + 4u + KMS_GCM_IV_LEN)
#define CTX_MAX_LEN KMS_CONTEXT_MAX_LEN

_Static_assert(sizeof(((EncryptResponse *)0)->ciphertext.bytes) >=
                   CT_HEADER_LEN + KMS_MAX_DATA_SIZE + KMS_GCM_TAG_LEN, "ciphertext bound");

_Static_assert(sizeof(((ContextEntry *)0)->key.bytes) <= 128 && sizeof(((ContextEntry *)0)->value.bytes) <= 256,
               "KMS_CONTEXT_MAX_LEN below the context bounds");
_Static_assert(sizeof(((EncryptRequest *)0)->context) / sizeof(ContextEntry) <= 16, "KMS_CONTEXT_MAX_LEN count");

static int entry_cmp(const ContextEntry *a, const ContextEntry *b)
{
    size_t n = a->key.size < b->key.size ? a->key.size : b->key.size;
    int c = memcmp(a->key.bytes, b->key.bytes, n);
    if (c != 0) return c;
    return (a->key.size > b->key.size) - (a->key.size < b->key.size);
}

size_t kms_context_encode(const ContextEntry *ctx, pb_size_t count, uint8_t *out, int *duplicates)
{
    const ContextEntry *sorted[16];
    size_t n = 0;
    *duplicates = 0;
    if (count > 16) count = 16; /* never more as decoded (asserted above) */
    for (pb_size_t i = 0; i < count; i++) { /* insertion sort: at most 16 entries */
        pb_size_t j = i;
        while (j > 0 && entry_cmp(sorted[j - 1], &ctx[i]) > 0) { sorted[j] = sorted[j - 1]; j--; }
        sorted[j] = &ctx[i];
    }
    out[n++] = (uint8_t)count;
    for (pb_size_t i = 0; i < count; i++) {
        const ContextEntry *e = sorted[i];
        if (i > 0 && entry_cmp(sorted[i - 1], e) == 0) *duplicates = 1;
        out[n++] = (uint8_t)(e->key.size >> 8), out[n++] = (uint8_t)e->key.size;
        memcpy(out + n, e->key.bytes, e->key.size), n += e->key.size;
        out[n++] = (uint8_t)(e->value.size >> 8), out[n++] = (uint8_t)e->value.size;
        memcpy(out + n, e->value.bytes, e->value.size), n += e->value.size;
    }
    return n;
}

/* aad = header(hdr_len) || canonical context. */
static kms_err_t build_aad(const uint8_t *hdr, size_t hdr_len, const ContextEntry *ctx, pb_size_t count,
                           uint8_t *aad, size_t *aad_len)
{
    int duplicates = 0;
    memcpy(aad, hdr, hdr_len);
    *aad_len = hdr_len + kms_context_encode(ctx, count, aad + hdr_len, &duplicates);
    return duplicates ? KMS_ERR_INVALID_ARGUMENT : KMS_OK;
}

/* Parse the self-describing header. Every failure is the opaque KMS_ERR_INVALID_CIPHERTEXT. */
static kms_err_t parse_header(const uint8_t *c, size_t len, char key_id[37], uint32_t *version)
{
    if (len < CT_HEADER_LEN + KMS_GCM_TAG_LEN || c[0] != CT_FORMAT || c[1] != KMS_KEY_ID_LEN)
        return KMS_ERR_INVALID_CIPHERTEXT;
    memcpy(key_id, c + 2, KMS_KEY_ID_LEN);
    key_id[KMS_KEY_ID_LEN] = '\0';
    if (!kms_key_id_valid(key_id)) return KMS_ERR_INVALID_CIPHERTEXT;
    const uint8_t *v = c + 2 + KMS_KEY_ID_LEN;
    *version = ((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) | ((uint32_t)v[2] << 8) | v[3];
    return *version == 0 ? KMS_ERR_INVALID_CIPHERTEXT : KMS_OK;
}

kms_err_t kms_sym_sealer_open(kms_ctx *ctx, const char *key_id, kms_sym_sealer *s)
{
    memset(s, 0, sizeof *s);
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, key_id, KeyUsage_ENCRYPT_DECRYPT, &s->key));
    kms_err_t err = kms_key_record(s->key)->spec != KeySpec_SYMMETRIC_DEFAULT ? KMS_ERR_INVALID_KEY_USAGE
                                                                             : kms_key_version(s->key, 0, &s->mat, NULL);
    if (err == KMS_OK) err = kms_aes_gcm_sealer_new(s->mat->material.bytes, s->mat->material.size, KMS_GCM_IV_LEN, &s->gcm);
    if (err != KMS_OK) kms_sym_sealer_close(s);
    return err;
}

void kms_sym_sealer_close(kms_sym_sealer *s)
{
    kms_aes_gcm_sealer_free(s->gcm);
    kms_keystore_release(s->key);
    memset(s, 0, sizeof *s);
}

kms_err_t kms_sym_seal(const kms_sym_sealer *s, const uint8_t iv[KMS_GCM_IV_LEN], const uint8_t *pt, size_t pt_len,
                       const ContextEntry *ec, pb_size_t ec_count, uint8_t *ct, size_t cap, size_t *ct_len)
{
    if (cap < CT_HEADER_LEN + pt_len + KMS_GCM_TAG_LEN) return KMS_ERR_BUFFER_TOO_SMALL;
    const KeyRecord *rec = kms_key_record(s->key);
    uint8_t aad[CT_HEADER_LEN + CTX_MAX_LEN];
    size_t aad_len = 0;
    ct[0] = CT_FORMAT;
    ct[1] = KMS_KEY_ID_LEN;
    memcpy(ct + 2, rec->key_id, KMS_KEY_ID_LEN); /* the resolved id, never an alias */
    for (int i = 0; i < 4; i++) ct[2 + KMS_KEY_ID_LEN + i] = (uint8_t)(s->mat->version >> (8 * (3 - i)));
    memcpy(ct + CT_HEADER_LEN - KMS_GCM_IV_LEN, iv, KMS_GCM_IV_LEN);
    KMS_RETURN_IF_ERR(build_aad(ct, CT_HEADER_LEN, ec, ec_count, aad, &aad_len));
    KMS_RETURN_IF_ERR(kms_aes_gcm_seal_with(s->gcm, ct + CT_HEADER_LEN - KMS_GCM_IV_LEN, KMS_GCM_IV_LEN, aad, aad_len,
                                            pt, pt_len, ct + CT_HEADER_LEN, ct + CT_HEADER_LEN + pt_len));
    *ct_len = CT_HEADER_LEN + pt_len + KMS_GCM_TAG_LEN;
    return KMS_OK;
}

kms_err_t kms_sym_encrypt(kms_ctx *ctx, const char *key_id, const uint8_t *pt, size_t pt_len, const ContextEntry *ec,
                          pb_size_t ec_count, uint8_t *ct, size_t cap, size_t *ct_len, char resolved[37],
                          uint32_t *version)
{
    if (cap < CT_HEADER_LEN + pt_len + KMS_GCM_TAG_LEN) return KMS_ERR_BUFFER_TOO_SMALL;
    kms_sym_sealer s;
    uint8_t iv[KMS_GCM_IV_LEN];
    KMS_RETURN_IF_ERR(kms_sym_sealer_open(ctx, key_id, &s));
    kms_err_t err = kms_random(iv, sizeof iv);
    if (err == KMS_OK) err = kms_sym_seal(&s, iv, pt, pt_len, ec, ec_count, ct, cap, ct_len);
    if (err == KMS_OK) {
        memcpy(resolved, kms_key_record(s.key)->key_id, 37);
        *version = s.mat->version;
    }
    kms_sym_sealer_close(&s);
    return err;
}

kms_err_t kms_handle_encrypt(kms_ctx *ctx, const Request *req, Response *resp)
{
    const EncryptRequest *q = &req->op.encrypt;
    EncryptResponse *r = &resp->result.encrypt;
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_sym_encrypt(ctx, q->key_id, q->plaintext.bytes, q->plaintext.size, q->context, q->context_count,
                                      r->ciphertext.bytes, sizeof r->ciphertext.bytes, &len, r->key_id,
                                      &r->key_version));
    r->ciphertext.size = (pb_size_t)len;
    resp->which_result = Response_encrypt_tag;
    return KMS_OK;
}

kms_err_t kms_ciphertext_key_id(const uint8_t *ct, size_t len, char key_id[37])
{
    uint32_t version = 0;
    return parse_header(ct, len, key_id, &version);
}

kms_err_t kms_sym_decrypt(kms_ctx *ctx, const uint8_t *ct, size_t ct_len, const ContextEntry *ec, pb_size_t ec_count, uint8_t *pt,
                          size_t cap, size_t *pt_len, char key_id[37], uint32_t *version)
{
    KMS_RETURN_IF_ERR(parse_header(ct, ct_len, key_id, version));
    kms_key *key = NULL;
    kms_err_t err = kms_acquire_for(ctx, key_id, KeyUsage_ENCRYPT_DECRYPT, &key);
    /* Unknown key or version look like any other bad ciphertext: no oracle. */
    if (err == KMS_ERR_KEY_NOT_FOUND || err == KMS_ERR_INVALID_ARGUMENT) return KMS_ERR_INVALID_CIPHERTEXT;
    if (err != KMS_OK) return err;
    const KeyRecord *rec = kms_key_record(key);
    const KeyVersionMaterial *mat = NULL;
    uint8_t aad[CT_HEADER_LEN + CTX_MAX_LEN];
    size_t aad_len = 0, body = ct_len - CT_HEADER_LEN - KMS_GCM_TAG_LEN;
    err = KMS_ERR_INVALID_CIPHERTEXT;
    if (rec->spec != KeySpec_SYMMETRIC_DEFAULT || body > cap || kms_key_version(key, *version, &mat, NULL) != KMS_OK)
        goto done;
    err = KMS_ERR_KEY_VERSION_RETIRED;
    if (*version < rec->min_decrypt_version) goto done;
    KMS_GOTO_IF_ERR(err, build_aad(ct, CT_HEADER_LEN, ec, ec_count, aad, &aad_len), done);
    KMS_GOTO_IF_ERR(err, kms_aes_gcm_open(mat->material.bytes, mat->material.size, ct + CT_HEADER_LEN - KMS_GCM_IV_LEN,
                                          KMS_GCM_IV_LEN, aad, aad_len, ct + CT_HEADER_LEN, body,
                                          ct + CT_HEADER_LEN + body, KMS_GCM_TAG_LEN, pt), done);
    *pt_len = body;
done:
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_decrypt(kms_ctx *ctx, const Request *req, Response *resp)
{
    const DecryptRequest *q = &req->op.decrypt;
    DecryptResponse *r = &resp->result.decrypt;
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_sym_decrypt(ctx, q->ciphertext.bytes, q->ciphertext.size, q->context, q->context_count,
                                      r->plaintext.bytes, sizeof r->plaintext.bytes, &len, r->key_id,
                                      &r->key_version));
    r->plaintext.size = (pb_size_t)len;
    resp->which_result = Response_decrypt_tag;
    return KMS_OK;
}

kms_err_t kms_handle_generate_mac(kms_ctx *ctx, const Request *req, Response *resp)
{
    const GenerateMacRequest *q = &req->op.generate_mac;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_GENERATE_VERIFY_MAC, &key));
    const KeyVersionMaterial *mat = NULL;
    GenerateMacResponse *r = &resp->result.generate_mac;
    size_t len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, 0, &mat, NULL), done);
    KMS_GOTO_IF_ERR(err, kms_hmac(kms_spec_hmac_md(kms_key_record(key)->spec), mat->material.bytes,
                                  mat->material.size, q->message.bytes, q->message.size, r->mac.bytes,
                                  sizeof r->mac.bytes, &len), done);
    r->mac.size = (pb_size_t)len;
    memcpy(r->key_id, kms_key_record(key)->key_id, sizeof r->key_id);
    r->key_version = mat->version;
    resp->which_result = Response_generate_mac_tag;
done:
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_verify_mac(kms_ctx *ctx, const Request *req, Response *resp)
{
    const VerifyMacRequest *q = &req->op.verify_mac;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_GENERATE_VERIFY_MAC, &key));
    const KeyVersionMaterial *mat = NULL;
    kms_md md = kms_spec_hmac_md(kms_key_record(key)->spec);
    size_t full = md == KMS_MD_SHA256 ? 32 : md == KMS_MD_SHA384 ? 48 : 64;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, q->key_version, &mat, NULL), done);
    err = KMS_ERR_INVALID_SIGNATURE;
    if (q->mac.size != full) goto done; /* full-length MACs only: no truncation games */
    KMS_GOTO_IF_ERR(err, kms_hmac_verify(md, mat->material.bytes, mat->material.size, q->message.bytes,
                                         q->message.size, q->mac.bytes, q->mac.size), done);
    resp->result.verify_mac.valid = true;
    resp->which_result = Response_verify_mac_tag;
done:
    kms_keystore_release(key);
    return err;
}
