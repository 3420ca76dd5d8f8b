/*
 * crypto.c - random, SHA-256, AES-GCM, HMAC, RSA-OAEP and key agreement over OpenSSL 3 EVP.
 * Trusted code. The contract (ownership, sizes, errors, thread-safety) is in crypto.h;
 * key handling is in crypto_pkey.c, signatures in crypto_sign.c.
 *
 * Pattern in every function: one `done:` label that wipes temporaries, frees OpenSSL
 * objects and clears the thread's OpenSSL error queue.
 */
#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "crypto.h"
#include "crypto_internal.h"

#define KMS_HMAC_MAX_KEY 1024
#define KMS_HMAC_MIN_TAG 16

/* A readable byte for OpenSSL calls that dislike NULL with length 0. */
static const uint8_t kms_empty[1] = {0};

/* ---- helpers shared with crypto_pkey.c and crypto_sign.c ------------------------------ */

const EVP_MD *kms_crypto_md(kms_md md, int legacy_ok)
{
    switch (md) {
    case KMS_MD_SHA256:
        return EVP_sha256();
    case KMS_MD_SHA384:
        return EVP_sha384();
    case KMS_MD_SHA512:
        return EVP_sha512();
    case KMS_MD_SHA1:
        return legacy_ok ? EVP_sha1() : NULL;
    case KMS_MD_SHA224:
        return legacy_ok ? EVP_sha224() : NULL;
    default:
        return NULL;
    }
}

int kms_crypto_kind_is_rsa(kms_pkey_kind kind)
{
    return kind == KMS_PKEY_RSA_2048 || kind == KMS_PKEY_RSA_3072 || kind == KMS_PKEY_RSA_4096;
}

kms_err_t kms_crypto_emit(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *len)
{
    if (n > cap || (n > 0 && dst == NULL)) return KMS_ERR_BUFFER_TOO_SMALL;
    if (n > 0) memcpy(dst, src, n);
    *len = n;
    return KMS_OK;
}

/* ---- random and hashing ---------------------------------------------------------------- */

void kms_wipe(void *p, size_t n)
{
    if (p == NULL || n == 0) return;
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

kms_err_t kms_random(uint8_t *buf, size_t len)
{
    kms_err_t err = KMS_OK;
    size_t done_len = 0;

    if (!KMS_CRYPTO_BUF_OK(buf, len)) {
        err = KMS_ERR_INVALID_ARGUMENT;
        goto done;
    }
    while (done_len < len) {
        size_t chunk = len - done_len;
        if (chunk > (size_t)INT_MAX) chunk = (size_t)INT_MAX;
        if (RAND_bytes(buf + done_len, (int)chunk) != 1) {
            err = KMS_ERR_RANDOM;
            goto done;
        }
        done_len += chunk;
    }
done:
    ERR_clear_error();
    return err;
}

kms_err_t kms_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    kms_err_t err = KMS_OK;
    unsigned int n = 0;

    if (!KMS_CRYPTO_BUF_OK(data, len) || out == NULL) {
        err = KMS_ERR_INVALID_ARGUMENT;
        goto done;
    }
    if (EVP_Digest(len ? data : kms_empty, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        err = KMS_ERR_CRYPTO;
done:
    ERR_clear_error();
    return err;
}

/* ---- AES-GCM ----------------------------------------------------------------------------- */

static const EVP_CIPHER *gcm_cipher(size_t key_len)
{
    switch (key_len) {
    case 16:
        return EVP_aes_128_gcm();
    case 24:
        return EVP_aes_192_gcm();
    case 32:
        return EVP_aes_256_gcm();
    default:
        return NULL;
    }
}

/* The IV, AAD and data arguments of one AES-GCM message; `in`/`out` are the plaintext/ciphertext buffers. */
static int gcm_data_ok(const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                       size_t in_len, const uint8_t *out)
{
    return iv != NULL && iv_len >= 1 && iv_len <= KMS_GCM_IV_MAX_LEN && KMS_CRYPTO_BUF_OK(aad, aad_len) &&
           aad_len <= (size_t)INT_MAX && KMS_CRYPTO_BUF_OK(in, in_len) && KMS_CRYPTO_BUF_OK(out, in_len) &&
           in_len <= (size_t)INT_MAX;
}

/* The checks shared by seal and open. */
static int gcm_args_ok(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                       const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                       const uint8_t *out)
{
    return key != NULL && gcm_cipher(key_len) != NULL && gcm_data_ok(iv, iv_len, aad, aad_len, in, in_len, out);
}

/* Cipher, IV length, key, IV, then the AAD. Returns 1 on success. */
static int gcm_init(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *key, size_t key_len,
                    const uint8_t *iv, size_t iv_len, const uint8_t *aad, size_t aad_len)
{
    size_t ivl = iv_len;
    int outl = 0;
    OSSL_PARAM params[2];

    params[0] = OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &ivl);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_CipherInit_ex2(ctx, gcm_cipher(key_len), NULL, NULL, enc, params) != 1) return 0;
    if (EVP_CipherInit_ex2(ctx, NULL, key, iv, enc, NULL) != 1) return 0;
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) return 0;
    return 1;
}

kms_err_t kms_aes_gcm_sealer_new(const uint8_t *key, size_t key_len, size_t iv_len, EVP_CIPHER_CTX **out)
{
    size_t ivl = iv_len;
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &ivl), OSSL_PARAM_construct_end()};
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_CIPHER_CTX *ctx = NULL;
    *out = NULL;
    if (key == NULL || gcm_cipher(key_len) == NULL || iv_len < 1 || iv_len > KMS_GCM_IV_MAX_LEN) goto done;
    err = KMS_ERR_CRYPTO;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL) goto done;
    if (EVP_CipherInit_ex2(ctx, gcm_cipher(key_len), key, NULL, 1, params) != 1) goto done;
    *out = ctx, ctx = NULL;
    err = KMS_OK;
done:
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_aes_gcm_seal_with(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                                size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                                uint8_t tag[KMS_GCM_TAG_LEN])
{
    uint8_t tail[KMS_GCM_TAG_LEN];
    int outl = 0;
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    if (ctx == NULL || !gcm_data_ok(iv, iv_len, aad, aad_len, pt, pt_len, ct) || tag == NULL ||
        (size_t)EVP_CIPHER_CTX_get_iv_length(ctx) != iv_len)
        goto done;
    err = KMS_ERR_CRYPTO;
    /* A new IV restarts GCM under the key schedule the sealer holds. */
    if (EVP_CipherInit_ex2(ctx, NULL, NULL, iv, 1, NULL) != 1) goto done;
    if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) goto done;
    if (pt_len > 0 && (EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)pt_len) != 1 || (size_t)outl != pt_len)) goto done;
    /* GCM's final step emits no bytes; `tail` keeps pointer arithmetic off a NULL ct. */
    if (EVP_EncryptFinal_ex(ctx, tail, &outl) != 1 || outl != 0) goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, KMS_GCM_TAG_LEN, tail) != 1) goto done;
    memcpy(tag, tail, KMS_GCM_TAG_LEN);
    err = KMS_OK;
done:
    OPENSSL_cleanse(tail, sizeof tail);
    ERR_clear_error();
    return err;
}

void kms_aes_gcm_sealer_free(EVP_CIPHER_CTX *ctx) { EVP_CIPHER_CTX_free(ctx); /* wipes the key schedule */ }

kms_err_t kms_aes_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                           const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                           uint8_t *ct, uint8_t tag[KMS_GCM_TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = NULL;
    if (!gcm_args_ok(key, key_len, iv, iv_len, aad, aad_len, pt, pt_len, ct) || tag == NULL)
        return KMS_ERR_INVALID_ARGUMENT;
    kms_err_t err = kms_aes_gcm_sealer_new(key, key_len, iv_len, &ctx);
    if (err == KMS_OK) err = kms_aes_gcm_seal_with(ctx, iv, iv_len, aad, aad_len, pt, pt_len, ct, tag);
    kms_aes_gcm_sealer_free(ctx);
    return err;
}

kms_err_t kms_aes_gcm_open(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                           const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                           const uint8_t *tag, size_t tag_len, uint8_t *pt)
{
    kms_err_t err = KMS_ERR_INVALID_CIPHERTEXT;
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t tagbuf[KMS_GCM_TAG_LEN];
    uint8_t tail[KMS_GCM_TAG_LEN];
    int outl = 0, wrote = 0;

    if (!gcm_args_ok(key, key_len, iv, iv_len, aad, aad_len, ct, ct_len, pt) || tag == NULL ||
        tag_len != KMS_GCM_TAG_LEN)
        goto done;
    memcpy(tagbuf, tag, KMS_GCM_TAG_LEN); /* OpenSSL's ctrl wants a writable pointer */
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL) goto done;
    if (!gcm_init(ctx, 0, key, key_len, iv, iv_len, aad, aad_len)) goto done;
    if (ct_len > 0) {
        wrote = 1;
        if (EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)ct_len) != 1 || (size_t)outl != ct_len)
            goto done;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, KMS_GCM_TAG_LEN, tagbuf) != 1) goto done;
    if (EVP_DecryptFinal_ex(ctx, tail, &outl) != 1 || outl != 0) goto done;
    err = KMS_OK;
done:
    if (err != KMS_OK && wrote) OPENSSL_cleanse(pt, ct_len); /* no unauthenticated output */
    OPENSSL_cleanse(tail, sizeof tail);
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

/* ---- HMAC --------------------------------------------------------------------------------- */

/* The full HMAC into out[KMS_CRYPTO_MAX_MD]; errors as documented for kms_hmac. */
static kms_err_t hmac_full(kms_md md, const uint8_t *key, size_t key_len, const uint8_t *msg,
                           size_t msg_len, uint8_t *out, size_t *out_len)
{
    const EVP_MD *evp = kms_crypto_md(md, 0);

    if (evp == NULL) return KMS_ERR_UNSUPPORTED;
    if (!KMS_CRYPTO_BUF_OK(key, key_len) || key_len > KMS_HMAC_MAX_KEY ||
        !KMS_CRYPTO_BUF_OK(msg, msg_len))
        return KMS_ERR_INVALID_ARGUMENT;
    /* A non-NULL key pointer even for an empty key: OpenSSL 3.0 treats NULL as "keep". */
    if (EVP_Q_mac(NULL, "HMAC", NULL, EVP_MD_get0_name(evp), NULL, key_len ? key : kms_empty,
                  key_len, msg_len ? msg : kms_empty, msg_len, out, KMS_CRYPTO_MAX_MD,
                  out_len) == NULL)
        return KMS_ERR_CRYPTO;
    return KMS_OK;
}

kms_err_t kms_hmac(kms_md md, const uint8_t *key, size_t key_len, const uint8_t *msg,
                   size_t msg_len, uint8_t *mac, size_t mac_cap, size_t *mac_len)
{
    kms_err_t err;
    uint8_t full[KMS_CRYPTO_MAX_MD];
    size_t n = 0;

    if (mac_len == NULL || !KMS_CRYPTO_BUF_OK(mac, mac_cap)) {
        err = KMS_ERR_INVALID_ARGUMENT;
        goto done;
    }
    KMS_GOTO_IF_ERR(err, hmac_full(md, key, key_len, msg, msg_len, full, &n), done);
    err = kms_crypto_emit(full, n, mac, mac_cap, mac_len);
done:
    OPENSSL_cleanse(full, sizeof full);
    ERR_clear_error();
    return err;
}

kms_err_t kms_hmac_verify(kms_md md, const uint8_t *key, size_t key_len, const uint8_t *msg,
                          size_t msg_len, const uint8_t *tag, size_t tag_len)
{
    kms_err_t err;
    uint8_t full[KMS_CRYPTO_MAX_MD];
    size_t n = 0;

    KMS_GOTO_IF_ERR(err, hmac_full(md, key, key_len, msg, msg_len, full, &n), done);
    err = KMS_ERR_INVALID_SIGNATURE;
    if (tag == NULL || tag_len < KMS_HMAC_MIN_TAG || tag_len > n) goto done;
    if (CRYPTO_memcmp(full, tag, tag_len) == 0) err = KMS_OK;
done:
    OPENSSL_cleanse(full, sizeof full);
    ERR_clear_error();
    return err;
}

/* ---- RSA-OAEP ----------------------------------------------------------------------------- */

/*
 * A decrypt/encrypt context with OAEP padding, digest, MGF1 digest and label.
 * Returns 1 on success; the caller frees *out in every case.
 */
static int oaep_ctx(EVP_PKEY *key, int decrypt, const EVP_MD *md, const EVP_MD *mgf1,
                    const uint8_t *label, size_t label_len, EVP_PKEY_CTX **out)
{
    void *copy = NULL;

    *out = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (*out == NULL) return 0;
    if ((decrypt ? EVP_PKEY_decrypt_init(*out) : EVP_PKEY_encrypt_init(*out)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(*out, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(*out, md) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(*out, mgf1) != 1)
        return 0;
    if (label_len == 0) return 1;
    if (label_len > (size_t)INT_MAX || (copy = OPENSSL_memdup(label, label_len)) == NULL)
        return 0;
    if (EVP_PKEY_CTX_set0_rsa_oaep_label(*out, copy, (int)label_len) != 1) {
        OPENSSL_free(copy); /* ownership passes to OpenSSL only on success */
        return 0;
    }
    return 1;
}

/* Largest OAEP message for key and md, or 0 when the key is too small for md. */
static size_t oaep_max_msg(EVP_PKEY *key, const EVP_MD *md)
{
    size_t k = (size_t)EVP_PKEY_get_size(key), h = (size_t)EVP_MD_get_size(md);

    return k > 2 * h + 2 ? k - 2 * h - 2 : 0;
}

kms_err_t kms_rsa_oaep_decrypt(EVP_PKEY *key, kms_md md, kms_md mgf1_md, const uint8_t *label,
                               size_t label_len, const uint8_t *ct, size_t ct_len, uint8_t *pt,
                               size_t pt_cap, size_t *pt_len)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY_CTX *ctx = NULL;
    const EVP_MD *omd = kms_crypto_md(md, 1), *gmd = kms_crypto_md(mgf1_md, 1);
    uint8_t tmp[KMS_CRYPTO_MAX_RSA];
    size_t n = sizeof tmp;

    if (key == NULL || omd == NULL || gmd == NULL || !KMS_CRYPTO_BUF_OK(label, label_len) ||
        !KMS_CRYPTO_BUF_OK(ct, ct_len) || !KMS_CRYPTO_BUF_OK(pt, pt_cap) || pt_len == NULL)
        goto done;
    err = KMS_ERR_INVALID_KEY_USAGE;
    if (!kms_crypto_kind_is_rsa(kms_pkey_kind_of(key))) goto done;
    /* Checked before touching the ciphertext, so the answer says nothing about it. */
    err = KMS_ERR_BUFFER_TOO_SMALL;
    if (pt_cap < oaep_max_msg(key, omd)) goto done;
    err = KMS_ERR_INVALID_CIPHERTEXT;
    if (ct_len != (size_t)EVP_PKEY_get_size(key) || ct_len > sizeof tmp) goto done;
    if (!oaep_ctx(key, 1, omd, gmd, label, label_len, &ctx)) goto done;
    if (EVP_PKEY_decrypt(ctx, tmp, &n, ct, ct_len) != 1 || n > pt_cap) goto done;
    err = kms_crypto_emit(tmp, n, pt, pt_cap, pt_len);
done:
    OPENSSL_cleanse(tmp, sizeof tmp);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_rsa_oaep_encrypt(EVP_PKEY *key, kms_md md, kms_md mgf1_md, const uint8_t *label,
                               size_t label_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                               size_t ct_cap, size_t *ct_len)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY_CTX *ctx = NULL;
    const EVP_MD *omd = kms_crypto_md(md, 0), *gmd = kms_crypto_md(mgf1_md, 0);
    size_t n = ct_cap;

    if (key == NULL || !KMS_CRYPTO_BUF_OK(label, label_len) || !KMS_CRYPTO_BUF_OK(pt, pt_len) ||
        !KMS_CRYPTO_BUF_OK(ct, ct_cap) || ct_len == NULL)
        goto done;
    err = KMS_ERR_UNSUPPORTED;
    if (omd == NULL || gmd == NULL) goto done;
    err = KMS_ERR_INVALID_KEY_USAGE;
    if (!kms_crypto_kind_is_rsa(kms_pkey_kind_of(key))) goto done;
    err = KMS_ERR_BUFFER_TOO_SMALL;
    if (ct_cap < (size_t)EVP_PKEY_get_size(key)) goto done;
    err = KMS_ERR_INVALID_ARGUMENT;
    if (pt_len > oaep_max_msg(key, omd)) goto done;
    err = KMS_ERR_CRYPTO;
    if (!oaep_ctx(key, 0, omd, gmd, label, label_len, &ctx)) goto done;
    if (EVP_PKEY_encrypt(ctx, ct, &n, pt_len ? pt : kms_empty, pt_len) != 1) goto done;
    *ct_len = n;
    err = KMS_OK;
done:
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

/* ---- key agreement ------------------------------------------------------------------------ */

/* 1 when buf[0..n) is all zero; reads every byte whatever the contents. */
static int all_zero(const uint8_t *buf, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++) acc |= buf[i];
    return acc == 0;
}

kms_err_t kms_derive(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *secret, size_t cap,
                     size_t *secret_len)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t tmp[KMS_CRYPTO_MAX_MD];
    size_t n = sizeof tmp;
    kms_pkey_kind kind;

    if (priv == NULL || peer == NULL || !KMS_CRYPTO_BUF_OK(secret, cap) || secret_len == NULL)
        goto done;
    kind = kms_pkey_kind_of(priv);
    err = KMS_ERR_INVALID_KEY_USAGE;
    if (kind != KMS_PKEY_EC_P256 && kind != KMS_PKEY_EC_P384 && kind != KMS_PKEY_X25519)
        goto done;
    err = KMS_ERR_INVALID_KEY;
    if (kms_pkey_kind_of(peer) != kind) goto done;
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL) {
        err = KMS_ERR_CRYPTO;
        goto done;
    }
    /* validate_peer = 1: OpenSSL runs the full public-key check on the peer. */
    if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) != 1 ||
        EVP_PKEY_derive(ctx, tmp, &n) != 1 || n == 0 || n > sizeof tmp)
        goto done;
    if (kind == KMS_PKEY_X25519 && all_zero(tmp, n)) goto done;
    err = kms_crypto_emit(tmp, n, secret, cap, secret_len);
done:
    OPENSSL_cleanse(tmp, sizeof tmp);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}
