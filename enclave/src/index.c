/* index.c - the record index table (index.h): open addressing, linear probing, doubling at 3/4. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "index.h"

#define INITIAL_CAPACITY 1024u

/* The id is a keyed hash: its first 8 bytes are a uniform position. */
static size_t home(const uint8_t id[KMS_INDEX_ID_LEN], size_t capacity)
{
    uint64_t h = 0;
    memcpy(&h, id, sizeof h);
    return (size_t)h & (capacity - 1);
}

/* The slot holding id, or the empty slot where it belongs (the table is never full). */
static kms_index_slot *find(kms_index_slot *slots, size_t capacity, const uint8_t id[KMS_INDEX_ID_LEN])
{
    for (size_t i = home(id, capacity);; i = (i + 1) & (capacity - 1))
        if (slots[i].revision == 0 || memcmp(slots[i].id, id, KMS_INDEX_ID_LEN) == 0) return &slots[i];
}

static kms_err_t grow(kms_index *ix)
{
    size_t capacity = ix->capacity == 0 ? INITIAL_CAPACITY : ix->capacity * 2;
    if (capacity < ix->capacity || capacity > SIZE_MAX / sizeof(kms_index_slot)) return KMS_ERR_OUT_OF_MEMORY;
    kms_index_slot *slots = calloc(capacity, sizeof *slots);
    if (slots == NULL) return KMS_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < ix->capacity; i++)
        if (ix->slots[i].revision != 0) *find(slots, capacity, ix->slots[i].id) = ix->slots[i];
    if (ix->slots != NULL) OPENSSL_cleanse(ix->slots, ix->capacity * sizeof *ix->slots);
    free(ix->slots);
    ix->slots = slots;
    ix->capacity = capacity;
    return KMS_OK;
}

kms_err_t kms_index_put(kms_index *ix, const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision,
                        const uint8_t blob_hash[KMS_INDEX_HASH_LEN])
{
    if (revision == 0) return KMS_ERR_INVALID_ARGUMENT;
    if ((ix->count + 1) * 4 > ix->capacity * 3) KMS_RETURN_IF_ERR(grow(ix));
    kms_index_slot *s = find(ix->slots, ix->capacity, id);
    if (s->revision == 0) ix->count++;
    memcpy(s->id, id, KMS_INDEX_ID_LEN);
    s->revision = revision;
    memcpy(s->blob_hash, blob_hash, KMS_INDEX_HASH_LEN);
    return KMS_OK;
}

int kms_index_get(const kms_index *ix, const uint8_t id[KMS_INDEX_ID_LEN], kms_index_slot *out)
{
    if (ix->capacity == 0) return 0;
    const kms_index_slot *s = find(ix->slots, ix->capacity, id);
    if (s->revision == 0) return 0;
    if (out != NULL) *out = *s;
    return 1;
}

void kms_index_clear(kms_index *ix)
{
    if (ix->slots != NULL) OPENSSL_cleanse(ix->slots, ix->capacity * sizeof *ix->slots);
    free(ix->slots);
    ix->slots = NULL;
    ix->capacity = ix->count = 0;
}

size_t kms_index_bytes(const kms_index *ix) { return ix->capacity * sizeof(kms_index_slot); }
