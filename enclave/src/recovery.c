/* recovery.c - the domain key's recovery shares: libgfshare split, X25519/HKDF/AES-GCM wrap. */
#include <string.h>

#include <libgfshare.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "recovery.h"

#define SECRET_LEN 32u
static const char k_info[] = "enclave-kms recovery share v1";
static const uint8_t k_zero_nonce[KMS_GCM_IV_LEN];

static __thread int t_rand_failed;

/* libgfshare's coefficient source: OpenSSL's DRBG, never random(3). A failure is remembered
 * and fails the split (the callback cannot return an error). */
static void fill_rand(unsigned char *buf, unsigned int len)
{
    if (RAND_priv_bytes(buf, (int)len) != 1) t_rand_failed = 1;
}

/* Encrypt one share to a recovery public key. */
static kms_err_t wrap_share(const uint8_t share[SECRET_LEN], const uint8_t recipient[32],
                            const uint8_t domain_id[16], uint32_t index, RecoveryShare *out)
{
    EVP_PKEY *eph = NULL, *peer = NULL;
    uint8_t shared[32], salt[64], key[32], aad[20];
    size_t shared_len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_x25519_from_raw(recipient, &peer), done);
    KMS_GOTO_IF_ERR(err, kms_pkey_generate(KMS_PKEY_X25519, &eph), done);
    KMS_GOTO_IF_ERR(err, kms_derive(eph, peer, shared, sizeof shared, &shared_len), done);
    KMS_GOTO_IF_ERR(err, kms_x25519_raw_public(eph, out->ephemeral_public_key.bytes), done);
    out->ephemeral_public_key.size = 32;
    memcpy(salt, out->ephemeral_public_key.bytes, 32);
    memcpy(salt + 32, recipient, 32);
    KMS_GOTO_IF_ERR(err, kms_hkdf_sha256(salt, sizeof salt, shared, shared_len, (const uint8_t *)k_info,
                                         sizeof k_info - 1, key, sizeof key), done);
    memcpy(aad, domain_id, 16);
    for (int i = 0; i < 4; i++) aad[16 + i] = (uint8_t)(index >> (8 * (3 - i)));
    KMS_GOTO_IF_ERR(err, kms_aes_gcm_seal(key, sizeof key, k_zero_nonce, sizeof k_zero_nonce, aad, sizeof aad,
                                          share, SECRET_LEN, out->ciphertext.bytes,
                                          out->ciphertext.bytes + SECRET_LEN), done);
    out->ciphertext.size = SECRET_LEN + KMS_GCM_TAG_LEN;
    out->index = index;
done:
    OPENSSL_cleanse(shared, sizeof shared);
    OPENSSL_cleanse(key, sizeof key);
    EVP_PKEY_free(eph);
    EVP_PKEY_free(peer);
    return err;
}

kms_err_t kms_recovery_split(const uint8_t secret[32], const uint8_t domain_id[16], const InitRequest *req,
                             InitResponse *resp)
{
    pb_size_t n = req->recovery_public_keys_count;
    if (n < 1 || n > 10 || req->threshold < 1 || req->threshold > n) return KMS_ERR_INVALID_ARGUMENT;
    for (pb_size_t i = 0; i < n; i++)
        if (req->recovery_public_keys[i].size != 32) return KMS_ERR_INVALID_KEY;
    unsigned char xs[10], copy[SECRET_LEN], share[SECRET_LEN];
    for (pb_size_t i = 0; i < n; i++) xs[i] = (unsigned char)(i + 1);
    gfshare_fill_rand = fill_rand;
    t_rand_failed = 0;
    gfshare_ctx *ctx = gfshare_ctx_init_enc(xs, n, (unsigned char)req->threshold, SECRET_LEN);
    if (ctx == NULL) return KMS_ERR_OUT_OF_MEMORY;
    memcpy(copy, secret, SECRET_LEN);
    gfshare_ctx_enc_setsecret(ctx, copy);
    kms_err_t err = t_rand_failed ? KMS_ERR_RANDOM : KMS_OK;
    for (pb_size_t i = 0; i < n && err == KMS_OK; i++) {
        gfshare_ctx_enc_getshare(ctx, (unsigned char)i, share);
        resp->shares[i].share_x = xs[i];
        err = wrap_share(share, req->recovery_public_keys[i].bytes, domain_id, i, &resp->shares[i]);
    }
    if (err == KMS_OK && t_rand_failed) err = KMS_ERR_RANDOM;
    resp->shares_count = err == KMS_OK ? n : 0;
    gfshare_ctx_free(ctx);
    OPENSSL_cleanse(copy, sizeof copy);
    OPENSSL_cleanse(share, sizeof share);
    return err;
}

kms_err_t kms_recovery_combine(const RecoverRequest *req, uint8_t dk[32])
{
    pb_size_t n = req->shares_count;
    unsigned char xs[10];
    if (n < 1 || n > 10) return KMS_ERR_INVALID_ARGUMENT;
    for (pb_size_t i = 0; i < n; i++) {
        if (req->shares[i].share.size != SECRET_LEN || req->shares[i].share_x < 1 || req->shares[i].share_x > 255)
            return KMS_ERR_INVALID_ARGUMENT;
        xs[i] = (unsigned char)req->shares[i].share_x;
        for (pb_size_t j = 0; j < i; j++)
            if (xs[j] == xs[i]) return KMS_ERR_INVALID_ARGUMENT;
    }
    gfshare_fill_rand = fill_rand; /* libgfshare also scrubs with random bytes when freeing */
    gfshare_ctx *ctx = gfshare_ctx_init_dec(xs, n, SECRET_LEN);
    if (ctx == NULL) return KMS_ERR_OUT_OF_MEMORY;
    unsigned char share[SECRET_LEN];
    for (pb_size_t i = 0; i < n; i++) {
        memcpy(share, req->shares[i].share.bytes, SECRET_LEN);
        gfshare_ctx_dec_giveshare(ctx, (unsigned char)i, share);
    }
    gfshare_ctx_dec_extract(ctx, dk);
    gfshare_ctx_free(ctx);
    OPENSSL_cleanse(share, sizeof share);
    return KMS_OK;
}
