/*
 * seal.h - SGX sealing in the SDK's sgx_sealed_data_t layout, always to MRSIGNER.
 * Trusted code. Thread-safe. Sizes in bytes.
 */
#ifndef KMS_ENCLAVE_SEAL_H
#define KMS_ENCLAVE_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/limits.h"

/* Size of a sealed blob for pt_len bytes of secret and aad_len bytes of clear MAC text. */
#define KMS_SEALED_SIZE(pt_len, aad_len) (KMS_SGX_SEALED_HEADER_SIZE + (pt_len) + (aad_len))

/*
 * Seal pt under a fresh SEAL key (policy MRSIGNER, this enclave's ISVSVN and CPUSVN, a
 * random KEYID), AES-128-GCM with the SDK's all-zero 12-byte IV; aad is stored in clear
 * after the ciphertext and covered by the tag. out has room for cap bytes; *out_len gets
 * KMS_SEALED_SIZE(pt_len, aad_len). Errors: KMS_ERR_BUFFER_TOO_SMALL, KMS_ERR_PLATFORM,
 * KMS_ERR_RANDOM, KMS_ERR_CRYPTO.
 */
kms_err_t kms_seal(const uint8_t *pt, size_t pt_len, const uint8_t *aad, size_t aad_len,
                   uint8_t *out, size_t cap, size_t *out_len);

/*
 * Check and open a sealed blob. Writes the secret to pt (cap pt_cap) and the clear MAC text
 * to aad (cap aad_cap). Errors: KMS_ERR_SEAL_MALFORMED (sizes/offsets/reserved bytes),
 * KMS_ERR_SEAL_INVALID_POLICY (not a MRSIGNER seal key request), KMS_ERR_SEAL_INVALID_ISVSVN
 * (sealed by a newer enclave), KMS_ERR_SEAL_INVALID_CPUSVN, KMS_ERR_SEAL_MAC_MISMATCH (other
 * signer, other platform, other product, or any altered byte).
 */
kms_err_t kms_unseal(const uint8_t *blob, size_t len, uint8_t *pt, size_t pt_cap, size_t *pt_len,
                     uint8_t *aad, size_t aad_cap, size_t *aad_len);

#endif /* KMS_ENCLAVE_SEAL_H */
