/*
 * index.h - the in-enclave index of stored records: for every record, by the 16-byte keyed
 * hash of its name (statelog.c computes it), the revision and blob hash the enclave last wrote
 * or verified. An open-addressing table with linear probing that doubles at 3/4 load; memory is
 * capacity * sizeof(kms_index_slot) (docs/security-model.md gives the figures).
 * Not thread-safe: statelog.c serializes every call. Sizes in bytes.
 */
#ifndef KMS_ENCLAVE_INDEX_H
#define KMS_ENCLAVE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

#define KMS_INDEX_ID_LEN 16u
#define KMS_INDEX_HASH_LEN 16u

typedef struct {
    uint8_t id[KMS_INDEX_ID_LEN];       /* keyed hash of the record name */
    uint64_t revision;                  /* 0: an empty slot (stored revisions start at 1) */
    uint8_t blob_hash[KMS_INDEX_HASH_LEN];
} kms_index_slot;

/* Insert or replace id's entry (revision >= 1). KMS_ERR_OUT_OF_MEMORY when the table cannot
 * grow (the table is left as it was). */
kms_err_t kms_index_put(const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision,
                        const uint8_t blob_hash[KMS_INDEX_HASH_LEN]);

/* id's entry into *out (may be NULL): 1 when present, else 0. */
int kms_index_get(const uint8_t id[KMS_INDEX_ID_LEN], kms_index_slot *out);

/* Forget everything (the table's memory is freed). */
void kms_index_clear(void);

/* Entries held, and bytes of table memory. */
size_t kms_index_count(void);
size_t kms_index_bytes(void);

#endif /* KMS_ENCLAVE_INDEX_H */
