/* crypto_kdf.c - HKDF-SHA-256 and raw X25519 keys, over OpenSSL 3 EVP (EVP_KDF, raw keys). */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

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
