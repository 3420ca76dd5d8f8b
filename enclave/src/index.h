/*
 * index.h - a table of stored records keyed by the 16-byte keyed hash of their names
 * (statelog.c computes it), holding the revision and blob hash the enclave last wrote or
 * verified. Open addressing with linear probing, doubling at 3/4 load; memory is
 * capacity * sizeof(kms_index_slot) (docs/security-model.md gives the figures).
 * Not thread-safe: the caller serializes every call on one table. Sizes in bytes.
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

typedef struct {
    kms_index_slot *slots;
    size_t capacity, count; /* capacity: a power of two, or 0 */
} kms_index;

/* Insert or replace id's entry (revision >= 1). KMS_ERR_OUT_OF_MEMORY when the table cannot
 * grow (it is left as it was); KMS_ERR_INVALID_ARGUMENT for revision 0. */
kms_err_t kms_index_put(kms_index *ix, const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision,
                        const uint8_t blob_hash[KMS_INDEX_HASH_LEN]);

/* id's entry into *out (may be NULL): 1 when present, else 0. */
int kms_index_get(const kms_index *ix, const uint8_t id[KMS_INDEX_ID_LEN], kms_index_slot *out);

/* Forget everything; the table's memory is freed (wiped first). */
void kms_index_clear(kms_index *ix);

/* Bytes of table memory. */
size_t kms_index_bytes(const kms_index *ix);

#endif /* KMS_ENCLAVE_INDEX_H */
