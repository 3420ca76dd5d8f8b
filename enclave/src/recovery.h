/*
 * recovery.h - recovery shares of the domain key: threshold-of-n Shamir shares over GF(256)
 * (Debian's libgfshare, fed by OpenSSL's DRBG), each encrypted to one recovery public key
 * (X25519 + HKDF-SHA-256 + AES-256-GCM, see boundary.proto InitRequest). Thread-safe.
 */
#ifndef KMS_ENCLAVE_RECOVERY_H
#define KMS_ENCLAVE_RECOVERY_H

#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/*
 * Split secret (32 bytes) into shares for the n recovery keys of req (1..10, 32-byte X25519
 * values; 1 <= threshold <= n) and encrypt each into resp->shares. Errors:
 * KMS_ERR_INVALID_ARGUMENT, KMS_ERR_INVALID_KEY, KMS_ERR_CRYPTO, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t kms_recovery_split(const uint8_t secret[32], const uint8_t domain_id[16], const InitRequest *req,
                             InitResponse *resp);

/*
 * Recombine plain shares (2..10 distinct x in 1..255, 32 bytes each) into a candidate domain
 * key in dk[32]. Any set of shares yields some key: the caller proves it by opening the
 * domain's stored state. Errors: KMS_ERR_INVALID_ARGUMENT, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t kms_recovery_combine(const RecoverRequest *req, uint8_t dk[32]);

#endif /* KMS_ENCLAVE_RECOVERY_H */
