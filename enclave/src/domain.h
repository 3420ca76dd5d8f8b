/*
 * domain.h - the domain key (DK): one AES-256 key per deployment, generated in the enclave,
 * kept sealed to MRSIGNER by the host, and used to encrypt every key record.
 * Trusted code. Thread-safe (the DK is set once, then read under a lock). Sizes in bytes.
 */
#ifndef KMS_ENCLAVE_DOMAIN_H
#define KMS_ENCLAVE_DOMAIN_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

#define KMS_DOMAIN_ID_LEN 16u
/* The host's name for the node-local sealed domain key (store_put). */
#define KMS_SEALED_DOMAIN_KEY_ID "sealed-domain-key"
/* Encrypted record = header(5) | revision u64 | nonce(12) | ciphertext | tag(16). */
#define KMS_RECORD_OVERHEAD (5u + 8u + 12u + 16u)

/* Generate a DK (refused once one is loaded) and seal it; *sealed_len bytes into sealed. */
kms_err_t kms_domain_generate(uint8_t *sealed, size_t cap, size_t *sealed_len,
                              uint8_t id[KMS_DOMAIN_ID_LEN]);
/* Unseal a DK sealed by an enclave with our MRSIGNER and an ISVSVN <= ours. Seal errors
 * pass through (KMS_ERR_SEAL_*); a blob of the wrong kind is KMS_ERR_SEAL_MALFORMED. */
kms_err_t kms_domain_load(const uint8_t *sealed, size_t len, uint8_t id[KMS_DOMAIN_ID_LEN]);
/* Install a recovered DK under its domain id and seal it to this platform into sealed (cap
 * bytes). KMS_ERR_DOMAIN_ALREADY_LOADED. */
kms_err_t kms_domain_install_recovered(const uint8_t dk[32], const uint8_t id[KMS_DOMAIN_ID_LEN], uint8_t *sealed,
                                       size_t cap, size_t *sealed_len);

/* Forget the DK (wiped): used when initialization could not persist what it created. */
void kms_domain_reset(void);
/* A copy of the DK, for the two places that derive from it: recovery shares at init and the
 * validator-state export MAC key. The caller wipes it. KMS_ERR_DOMAIN_NOT_LOADED. */
kms_err_t kms_domain_copy_key(uint8_t dk[32]);

/* 1 and the id when a DK is loaded, else 0. */
int kms_domain_id(uint8_t id[KMS_DOMAIN_ID_LEN]);

/*
 * Encrypt a key record's plaintext under the DK; the AAD binds the domain id, the key id and
 * the revision. out cap must be >= pt_len + KMS_RECORD_OVERHEAD.
 * Errors: KMS_ERR_DOMAIN_NOT_LOADED, KMS_ERR_BUFFER_TOO_SMALL, KMS_ERR_CRYPTO, KMS_ERR_RANDOM.
 */
kms_err_t kms_domain_seal_record(const char *key_id, uint64_t revision, const uint8_t *pt,
                                 size_t pt_len, uint8_t *out, size_t cap, size_t *out_len);
/*
 * Authenticate and decrypt a record stored for key_id. *revision gets the revision the blob
 * claims (and the AAD proves). Any failure of format or tag: KMS_ERR_RECORD_CORRUPT.
 */
kms_err_t kms_domain_open_record(const char *key_id, const uint8_t *blob, size_t len,
                                 uint8_t *pt, size_t cap, size_t *pt_len, uint64_t *revision);

#endif /* KMS_ENCLAVE_DOMAIN_H */
