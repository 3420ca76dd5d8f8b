/* crypto_kdf.c - HKDF-SHA-256, the EIP-2335 keystore primitives (scrypt, PBKDF2-HMAC-SHA-256, AES-128-CTR) and raw keys (X25519 public, Ed25519/secp256k1 private) over OpenSSL 3. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "crypto_internal.h"

kms_err_t kms_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                          const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    if (!KMS_CRYPTO_BUF_OK(salt, salt_len) || !KMS_CRYPTO_BUF_OK(ikm, ikm_len) ||
        !KMS_CRYPTO_BUF_OK(info, info_len) || out == NULL || out_len == 0 || out_len > 255 * 32)
        return KMS_ERR_INVALID_ARGUMENT;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    char digest[] = "SHA256";
    static const uint8_t empty[1];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)(ikm_len ? ikm : empty), ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)(salt_len ? salt : empty), salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)(info_len ? info : empty), info_len),
        OSSL_PARAM_construct_end(),
    };
    kms_err_t err = ctx != NULL && EVP_KDF_derive(ctx, out, out_len, params) == 1 ? KMS_OK : KMS_ERR_CRYPTO;
    if (err != KMS_OK) OPENSSL_cleanse(out, out_len);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    ERR_clear_error();
    return err;
}

/* One EVP_KDF derivation (name, params) into out, `failed` when the derivation fails; wiped on failure. */
static kms_err_t kdf_derive(const char *name, const OSSL_PARAM *params, uint8_t *out, size_t out_len,
                            kms_err_t failed)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, name, NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    kms_err_t err = ctx == NULL ? KMS_ERR_CRYPTO : EVP_KDF_derive(ctx, out, out_len, params) == 1 ? KMS_OK : failed;
    if (err != KMS_OK) OPENSSL_cleanse(out, out_len);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    ERR_clear_error();
    return err;
}

kms_err_t kms_scrypt(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len, uint64_t n, uint32_t r,
                     uint32_t p, uint64_t maxmem, uint8_t *out, size_t out_len)
{
    static const uint8_t empty[1];
    if (!KMS_CRYPTO_BUF_OK(pw, pw_len) || !KMS_CRYPTO_BUF_OK(salt, salt_len) || out == NULL || out_len == 0)
        return KMS_ERR_INVALID_ARGUMENT;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(uintptr_t)(pw_len ? pw : empty), pw_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)(salt_len ? salt : empty), salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    return kdf_derive("SCRYPT", params, out, out_len, KMS_ERR_OUT_OF_MEMORY); /* its only run-time failure */
}

kms_err_t kms_pbkdf2_sha256(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len, uint32_t iter,
                            uint8_t *out, size_t out_len)
{
    static const uint8_t empty[1];
    char digest[] = "SHA256";
    uint64_t iterations = iter;
    int no_checks = 1; /* EIP-2335 passwords and salts may be short: SP 800-132's lower bounds do not apply */
    if (!KMS_CRYPTO_BUF_OK(pw, pw_len) || !KMS_CRYPTO_BUF_OK(salt, salt_len) || out == NULL || out_len == 0 ||
        iter == 0)
        return KMS_ERR_INVALID_ARGUMENT;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(uintptr_t)(pw_len ? pw : empty), pw_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)(salt_len ? salt : empty), salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iterations),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &no_checks),
        OSSL_PARAM_construct_end(),
    };
    return kdf_derive("PBKDF2", params, out, out_len, KMS_ERR_CRYPTO);
}

kms_err_t kms_aes128_ctr(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    kms_err_t err = ctx != NULL && len <= INT32_MAX && EVP_DecryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, key, iv) == 1 &&
                            EVP_DecryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
                            EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1 && (size_t)(n + fin) == len
                        ? KMS_OK
                        : KMS_ERR_CRYPTO;
    if (err != KMS_OK) OPENSSL_cleanse(out, len);
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_x25519_from_raw(const uint8_t pub[32], EVP_PKEY **out)
{
    EVP_PKEY *key = pub != NULL ? EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32) : NULL;
    ERR_clear_error();
    if (key == NULL) return KMS_ERR_INVALID_KEY;
    *out = key;
    return KMS_OK;
}

kms_err_t kms_x25519_raw_public(const EVP_PKEY *key, uint8_t pub[32])
{
    size_t len = 32;
    int ok = key != NULL && EVP_PKEY_get_raw_public_key(key, pub, &len) == 1 && len == 32;
    ERR_clear_error();
    return ok ? KMS_OK : KMS_ERR_INVALID_KEY;
}

/* secp256k1 key from a 32-byte scalar: the public point is computed here (fromdata needs it). */
static kms_err_t secp256k1_from_scalar(const uint8_t priv[32], EVP_PKEY **out)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);
    EC_POINT *pub = g != NULL ? EC_POINT_new(g) : NULL;
    BIGNUM *d = BN_secure_new();
    BN_CTX *ctx = BN_CTX_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    uint8_t pub_oct[65];
    char group[] = "secp256k1";
    kms_err_t err = KMS_ERR_INVALID_KEY;
    if (pub == NULL || d == NULL || ctx == NULL || bld == NULL || pctx == NULL || BN_bin2bn(priv, 32, d) == NULL ||
        BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(g)) >= 0 || EC_POINT_mul(g, pub, d, NULL, NULL, ctx) != 1 ||
        EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pub_oct, sizeof pub_oct, ctx) != sizeof pub_oct ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub_oct, sizeof pub_oct) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, out, EVP_PKEY_KEYPAIR, params) != 1)
        goto done;
    err = KMS_OK;
done:
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_CTX_free(ctx);
    BN_clear_free(d);
    EC_POINT_free(pub);
    EC_GROUP_free(g);
    ERR_clear_error();
    return err;
}

kms_err_t kms_pkey_from_raw_private(kms_pkey_kind kind, const uint8_t *priv, size_t len, EVP_PKEY **out)
{
    if (priv == NULL || len != 32) return KMS_ERR_INVALID_KEY;
    if (kind == KMS_PKEY_EC_SECP256K1) return secp256k1_from_scalar(priv, out);
    if (kind != KMS_PKEY_ED25519 && kind != KMS_PKEY_X25519) return KMS_ERR_UNSUPPORTED;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(kind == KMS_PKEY_X25519 ? EVP_PKEY_X25519 : EVP_PKEY_ED25519, NULL,
                                                 priv, len);
    ERR_clear_error();
    if (key == NULL) return KMS_ERR_INVALID_KEY;
    *out = key;
    return KMS_OK;
}

kms_err_t kms_aes_kwp_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len, uint8_t *out,
                             size_t cap, size_t *out_len)
{
    if (kek == NULL || kek_len != 32 || in == NULL || in_len < 16 || in_len % 8 != 0 || cap < in_len)
        return KMS_ERR_INVALID_CIPHERTEXT;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    kms_err_t err = KMS_ERR_INVALID_CIPHERTEXT;
    if (ctx != NULL) {
        EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, kek, NULL) == 1 &&
            EVP_DecryptUpdate(ctx, out, &n, in, (int)in_len) == 1 && EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1) {
            *out_len = (size_t)(n + fin);
            err = KMS_OK;
        } else {
            OPENSSL_cleanse(out, cap);
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_aes128_cmac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    char cipher[] = "AES-128-CBC";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    kms_err_t err = ctx != NULL && EVP_MAC_init(ctx, key, 16, params) == 1 && EVP_MAC_update(ctx, data, len) == 1 &&
                            EVP_MAC_final(ctx, out, &outl, 16) == 1 && outl == 16
                        ? KMS_OK
                        : KMS_ERR_CRYPTO;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    ERR_clear_error();
    return err;
}
