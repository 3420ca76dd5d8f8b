/*
 * keystore.h - key records: loading from the host's store (through the store OCALL),
 * authenticating them under the domain key, caching them decoded, and producing the
 * encrypted record the host must persist after a change.
 *
 * A cached kms_key is immutable. A change builds a new KeyRecord, encrypts it
 * (kms_keystore_write) and evicts the old entry, so the next use reads what the host
 * actually persisted: the enclave never acts on a change the store does not hold.
 * Thread-safe; references are counted, so an evicted entry lives until its last user
 * releases it. Everything freed is wiped first.
 */
#ifndef KMS_ENCLAVE_KEYSTORE_H
#define KMS_ENCLAVE_KEYSTORE_H

#include <stdint.h>

#include <openssl/evp.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

typedef struct kms_key kms_key;

/* 1 if s is a canonical lower-case UUID (the only key id form the enclave issues). */
int kms_key_id_valid(const char *s);

/* A fresh random UUID v4 into out[37]. Errors: KMS_ERR_RANDOM. */
kms_err_t kms_key_id_new(char out[37]);

/*
 * A reference to key_id's record. Errors: KMS_ERR_DOMAIN_NOT_LOADED, KMS_ERR_KEY_NOT_FOUND,
 * KMS_ERR_STORE_UNAVAILABLE, KMS_ERR_RECORD_CORRUPT (tag, format, or a record whose key id
 * or revision differ from what its AAD proves), KMS_ERR_OUT_OF_MEMORY.
 * The caller releases it with kms_keystore_release.
 */
kms_err_t kms_keystore_acquire(const char *key_id, kms_key **out);
void kms_keystore_release(kms_key *key);

/* The decoded record (borrowed; valid until release). */
const KeyRecord *kms_key_record(const kms_key *key);

/*
 * One version's material (borrowed) and, for asymmetric specs, its parsed EVP_PKEY
 * (borrowed; NULL for symmetric). version 0 means the current version.
 * Errors: KMS_ERR_KEY_VERSION_NOT_FOUND.
 */
kms_err_t kms_key_version(const kms_key *key, uint32_t version, const KeyVersionMaterial **mat,
                          EVP_PKEY **pkey);

/*
 * Encrypt rec under the domain key and have the host persist it (store_put OCALL) on the
 * condition that the stored revision is still expected_revision (0: a new key); only then
 * evict rec->key_id from the cache and return KMS_OK. Errors: KMS_ERR_CONFLICT (someone else
 * changed the key first: retry), KMS_ERR_STORE_UNAVAILABLE, KMS_ERR_ENCODE,
 * KMS_ERR_DOMAIN_NOT_LOADED, KMS_ERR_CRYPTO.
 */
kms_err_t kms_keystore_write(const KeyRecord *rec, uint64_t expected_revision);

/* Drop every cached record (wiped). */
/* Drop key_id's cached record, if any (another replica changed it: docs/cluster.md). */
void kms_keystore_evict(const char *key_id);
void kms_keystore_clear(void);

#endif /* KMS_ENCLAVE_KEYSTORE_H */
