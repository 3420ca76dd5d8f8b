/* index.c - the record index (index.h): open addressing, linear probing, doubling at 3/4. */
#include <stdlib.h>
#include <string.h>

#include "index.h"

#define INITIAL_CAPACITY 1024u

static kms_index_slot *g_slots;
static size_t g_capacity, g_count; /* g_capacity is a power of two (or 0) */

/* The id is a keyed hash: its first 8 bytes are a uniform position. */
static size_t home(const uint8_t id[KMS_INDEX_ID_LEN], size_t capacity)
{
    uint64_t h = 0;
    memcpy(&h, id, sizeof h);
    return (size_t)h & (capacity - 1);
}

/* The slot holding id, or the empty slot where it belongs. */
static kms_index_slot *find(kms_index_slot *slots, size_t capacity, const uint8_t id[KMS_INDEX_ID_LEN])
{
    for (size_t i = home(id, capacity);; i = (i + 1) & (capacity - 1))
        if (slots[i].revision == 0 || memcmp(slots[i].id, id, KMS_INDEX_ID_LEN) == 0) return &slots[i];
}

static kms_err_t grow(void)
{
    size_t capacity = g_capacity == 0 ? INITIAL_CAPACITY : g_capacity * 2;
    if (capacity < g_capacity || capacity > SIZE_MAX / sizeof(kms_index_slot)) return KMS_ERR_OUT_OF_MEMORY;
    kms_index_slot *slots = calloc(capacity, sizeof *slots);
    if (slots == NULL) return KMS_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < g_capacity; i++)
        if (g_slots[i].revision != 0) *find(slots, capacity, g_slots[i].id) = g_slots[i];
    free(g_slots);
    g_slots = slots;
    g_capacity = capacity;
    return KMS_OK;
}

kms_err_t kms_index_put(const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision,
                        const uint8_t blob_hash[KMS_INDEX_HASH_LEN])
{
    if (revision == 0) return KMS_ERR_INVALID_ARGUMENT;
    if ((g_count + 1) * 4 > g_capacity * 3) KMS_RETURN_IF_ERR(grow());
    kms_index_slot *s = find(g_slots, g_capacity, id);
    if (s->revision == 0) g_count++;
    memcpy(s->id, id, KMS_INDEX_ID_LEN);
    s->revision = revision;
    memcpy(s->blob_hash, blob_hash, KMS_INDEX_HASH_LEN);
    return KMS_OK;
}

int kms_index_get(const uint8_t id[KMS_INDEX_ID_LEN], kms_index_slot *out)
{
    if (g_capacity == 0) return 0;
    const kms_index_slot *s = find(g_slots, g_capacity, id);
    if (s->revision == 0) return 0;
    if (out != NULL) *out = *s;
    return 1;
}

void kms_index_clear(void)
{
    free(g_slots);
    g_slots = NULL;
    g_capacity = g_count = 0;
}

size_t kms_index_count(void) { return g_count; }

size_t kms_index_bytes(void) { return g_capacity * sizeof(kms_index_slot); }
