/*
 * record.h - named records in the host's store: a nanopb message, encrypted under the domain
 * key with kms_domain_seal_record and committed with its state log entry (statelog.h). Key records,
 * aliases, the principals state and the validator guard state are all kept this way.
 * Trusted code. Thread-safe (no shared state; the store orders concurrent writers).
 */
#ifndef KMS_ENCLAVE_RECORD_H
#define KMS_ENCLAVE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <pb.h>

#include "kms/errors.h"

/*
 * Fetch the record stored under id, authenticate it and decode it into msg (of type fields).
 * pt_max: the largest plaintext accepted (at least the message's nanopb _size); the scratch
 * buffers (pt_max and pt_max + KMS_RECORD_OVERHEAD bytes) are allocated here and the
 * plaintext is wiped. *found 0 and msg untouched when the store holds nothing under id.
 * *revision: the revision the record's AAD proves; the caller checks it matches msg's own,
 * along with the name inside msg.
 * The record (or its absence) must be what the state index holds (statelog.h): anything else,
 * twice in a row, is KMS_ERR_STALE_RECORD.
 * Errors: store errors (KMS_ERR_STORE_UNAVAILABLE, ...), KMS_ERR_RECORD_CORRUPT (format, tag
 * or decode), KMS_ERR_STALE_RECORD, KMS_ERR_DOMAIN_NOT_LOADED, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t kms_record_load(const char *id, const pb_msgdesc_t *fields, void *msg, size_t pt_max, int *found,
                          uint64_t *revision);

/*
 * Encode msg (of type fields, at most pt_max bytes), seal it under the domain key at revision
 * and commit it under id with its state log entry (statelog.h) if the store still holds
 * expected_revision (0: no record yet). The plaintext is wiped. Errors: KMS_ERR_ENCODE, KMS_ERR_CONFLICT, KMS_ERR_STORE_UNAVAILABLE,
 * KMS_ERR_DOMAIN_NOT_LOADED, KMS_ERR_CRYPTO, KMS_ERR_RANDOM, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t kms_record_store(const char *id, const pb_msgdesc_t *fields, const void *msg, size_t pt_max,
                           uint64_t expected_revision, uint64_t revision);

/*
 * 1 when the store holds a record under id that authenticates under the loaded domain key (its
 * contents and revision are not checked against the state log): recovery's proof that a key
 * belongs to this store's domain. KMS_OK, KMS_ERR_RECORD_CORRUPT, KMS_ERR_KEY_NOT_FOUND, store
 * errors, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t kms_record_authenticates(const char *id);

#endif /* KMS_ENCLAVE_RECORD_H */
