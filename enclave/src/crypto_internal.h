/*
 * crypto_internal.h - helpers shared by crypto*.c only (not part of the enclave's API).
 * Trusted code. Every helper is thread-safe and keeps no state.
 */
#ifndef KMS_ENCLAVE_CRYPTO_INTERNAL_H
#define KMS_ENCLAVE_CRYPTO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "crypto.h"

/* Largest digest (SHA-512) and largest RSA modulus (4096 bits) we handle, in bytes. */
#define KMS_CRYPTO_MAX_MD 64
#define KMS_CRYPTO_MAX_RSA 512

/* True when a (pointer, length) pair is usable: non-NULL, or NULL with length 0. */
#define KMS_CRYPTO_BUF_OK(p, n) ((p) != NULL || (n) == 0)

/*
 * The EVP_MD of md (static, never freed), or NULL for an unknown value. With
 * legacy_ok == 0, SHA-1 and SHA-224 also give NULL.
 */
const EVP_MD *kms_crypto_md(kms_md md, int legacy_ok);

/* True for the RSA kinds. */
int kms_crypto_kind_is_rsa(kms_pkey_kind kind);

/*
 * Copy src[0..n) into dst (capacity cap) and set *len, or return KMS_ERR_BUFFER_TOO_SMALL
 * and touch neither. dst may be NULL only when cap is 0.
 */
kms_err_t kms_crypto_emit(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *len);

#endif /* KMS_ENCLAVE_CRYPTO_INTERNAL_H */
