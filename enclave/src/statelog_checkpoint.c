/*
 * statelog_checkpoint.c - checkpoints of the record index, so that a start replays the state log
 * only after the latest one (statelog.h). A checkpoint at sequence S is the index's slots (keyed
 * name hash, revision, blob hash: nothing secret) in pages of up to CP_PAGE_SLOTS, stored under
 * "state-checkpoint-<S>-<page>", and a pointer "state-checkpoint" naming S, the page count and the
 * head (hash and commitment) at S. Nothing in them is trusted: at start the pointer must name an
 * authentic log entry S with the same hash and commitment, and the pages must sum to that
 * commitment; anything else and the whole log is replayed instead (the log is never pruned).
 * Checkpoints are written after every max(KMS_STATE_CHECKPOINT_MIN, records) changes, best effort.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "kms/limits.h"
#include "ocalls.h"
#include "statelog_internal.h"

#define CP_PAGE_SLOTS 800u                                  /* 32000 bytes of slots: one record */
#define CP_SLOT_BYTES (KMS_INDEX_ID_LEN + 8u + KMS_INDEX_HASH_LEN)
#define CP_PAGE_HEADER 20u                                  /* magic 4 | S u64 | page u32 | n u32 */
/* magic | S | pages | records | its own store revision | head | commitment */
#define CP_POINTER_BYTES (4u + 8u + 4u + 8u + 8u + 32u + 32u)
static const uint8_t k_page_magic[4] = {'K', 'C', 'P', 'P'}, k_pointer_magic[4] = {'K', 'C', 'P', '1'};

_Static_assert(CP_PAGE_HEADER + CP_PAGE_SLOTS * CP_SLOT_BYTES <= KMS_MAX_RECORD_BLOB, "a page is one record");

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * (7 - i)));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

int kms_state_is_checkpoint_name(const char *name)
{
    return strncmp(name, KMS_STATE_CHECKPOINT_ID, sizeof KMS_STATE_CHECKPOINT_ID - 1) == 0;
}

/* Page i of a snapshot (slots) into buf; its length. */
static size_t page_encode(const kms_index_slot *slots, size_t count, uint64_t seq, uint32_t page, uint8_t *buf)
{
    size_t first = (size_t)page * CP_PAGE_SLOTS, n = count - first < CP_PAGE_SLOTS ? count - first : CP_PAGE_SLOTS;
    memcpy(buf, k_page_magic, 4);
    put64(buf + 4, seq);
    for (int i = 0; i < 4; i++) buf[12 + i] = (uint8_t)(page >> (8 * (3 - i))), buf[16 + i] = (uint8_t)(n >> (8 * (3 - i)));
    uint8_t *p = buf + CP_PAGE_HEADER;
    for (size_t i = 0; i < n; i++, p += CP_SLOT_BYTES) {
        const kms_index_slot *s = &slots[first + i];
        memcpy(p, s->id, KMS_INDEX_ID_LEN);
        put64(p + KMS_INDEX_ID_LEN, s->revision);
        memcpy(p + KMS_INDEX_ID_LEN + 8, s->blob_hash, KMS_INDEX_HASH_LEN);
    }
    return CP_PAGE_HEADER + n * CP_SLOT_BYTES;
}

/* Write a snapshot taken at seq (pages, then the pointer over revision `pointer_rev` - 1). */
static void write_snapshot(const kms_index_slot *slots, size_t count, uint64_t seq, const uint8_t head[32],
                           const uint8_t commitment[32], uint64_t pointer_rev)
{
    uint8_t *buf = malloc(KMS_MAX_RECORD_BLOB), ptr[CP_POINTER_BYTES];
    char name[64];
    uint32_t pages = (uint32_t)((count + CP_PAGE_SLOTS - 1) / CP_PAGE_SLOTS);
    for (uint32_t i = 0; buf != NULL && i < pages; i++) {
        size_t len = page_encode(slots, count, seq, i, buf);
        snprintf(name, sizeof name, "%s-%llu-%u", KMS_STATE_CHECKPOINT_ID, (unsigned long long)seq, i);
        if (kms_edge_store_put(name, 0, 1, buf, len) != KMS_OK) goto done; /* best effort */
    }
    memcpy(ptr, k_pointer_magic, 4);
    put64(ptr + 4, seq);
    for (int i = 0; i < 4; i++) ptr[12 + i] = (uint8_t)(pages >> (8 * (3 - i)));
    put64(ptr + 16, count);
    put64(ptr + 24, pointer_rev);
    memcpy(ptr + 32, head, 32);
    memcpy(ptr + 64, commitment, 32);
    (void)kms_edge_store_put(KMS_STATE_CHECKPOINT_ID, pointer_rev - 1, pointer_rev, ptr, sizeof ptr);
done:
    free(buf);
}

void kms_state_checkpoint_after_commit(void)
{
    pthread_mutex_lock(&g_state.lock);
    size_t due = g_state.index.count > KMS_STATE_CHECKPOINT_MIN ? g_state.index.count : KMS_STATE_CHECKPOINT_MIN;
    kms_index_slot *snap = NULL;
    size_t count = 0;
    uint64_t seq = g_state.seq, rev = g_state.checkpoint_rev + 1;
    uint8_t head[32], commitment[32];
    if (g_state.open && seq - g_state.checkpoint_seq >= due && (snap = malloc(g_state.index.count * sizeof *snap + 1))) {
        for (size_t i = 0; i < g_state.index.capacity; i++)
            if (g_state.index.slots[i].revision != 0) snap[count++] = g_state.index.slots[i];
        memcpy(head, g_state.head, 32), memcpy(commitment, g_state.commitment, 32);
        g_state.checkpoint_seq = seq, g_state.checkpoint_rev = rev; /* one writer per checkpoint */
    }
    pthread_mutex_unlock(&g_state.lock);
    if (snap == NULL) return;
    write_snapshot(snap, count, seq, head, commitment, rev); /* outside the lock: requests go on */
    free(snap);
}

/* Load the pages of a checkpoint into the index, summing acc; 0 when anything is off (lock held). */
static int load_pages(uint64_t seq, uint32_t pages, uint64_t records, uint8_t acc[32], uint8_t *buf)
{
    char name[64];
    uint64_t loaded = 0;
    for (uint32_t i = 0; i < pages; i++) {
        size_t len = 0;
        snprintf(name, sizeof name, "%s-%llu-%u", KMS_STATE_CHECKPOINT_ID, (unsigned long long)seq, i);
        if (kms_edge_store_get(name, buf, KMS_MAX_RECORD_BLOB, &len) != KMS_OK || len < CP_PAGE_HEADER ||
            memcmp(buf, k_page_magic, 4) != 0 || get64(buf + 4) != seq)
            return 0;
        uint32_t page = 0, n = 0;
        for (int b = 0; b < 4; b++) page = (page << 8) | buf[12 + b], n = (n << 8) | buf[16 + b];
        if (page != i || n > CP_PAGE_SLOTS || len != CP_PAGE_HEADER + (size_t)n * CP_SLOT_BYTES) return 0;
        for (const uint8_t *p = buf + CP_PAGE_HEADER; n > 0; n--, p += CP_SLOT_BYTES) {
            uint64_t rev = get64(p + KMS_INDEX_ID_LEN);
            if (rev == 0 || kms_index_get(&g_state.index, p, NULL) ||
                kms_index_put(&g_state.index, p, rev, p + KMS_INDEX_ID_LEN + 8) != KMS_OK ||
                kms_state_commitment_update(acc, p, rev, p + KMS_INDEX_ID_LEN + 8, 1) != KMS_OK)
                return 0;
            loaded++;
        }
    }
    return loaded == records;
}

int kms_state_checkpoint_load(uint64_t head_seq, uint64_t *seq, uint8_t hash[32], uint8_t commitment[32],
                              const kms_state_entry_reader read_entry)
{
    uint8_t *buf = malloc(KMS_MAX_RECORD_BLOB), acc[32] = {0}, entry_hash[32];
    size_t len = 0;
    StateLogEntry *e = malloc(sizeof *e);
    int ok = buf != NULL && e != NULL && kms_edge_store_get(KMS_STATE_CHECKPOINT_ID, buf, KMS_MAX_RECORD_BLOB, &len) == KMS_OK &&
             len == CP_POINTER_BYTES && memcmp(buf, k_pointer_magic, 4) == 0;
    uint64_t at = ok ? get64(buf + 4) : 0, records = ok ? get64(buf + 16) : 0, rev = ok ? get64(buf + 24) : 0;
    uint32_t pages = 0;
    for (int i = 0; ok && i < 4; i++) pages = (pages << 8) | buf[12 + i];
    ok = ok && at >= 1 && at <= head_seq && read_entry(at, e, entry_hash) &&
         CRYPTO_memcmp(entry_hash, buf + 32, 32) == 0 && CRYPTO_memcmp(e->commitment.bytes, buf + 64, 32) == 0 &&
         pages == (records + CP_PAGE_SLOTS - 1) / CP_PAGE_SLOTS;
    ok = ok && load_pages(at, pages, records, acc, buf) && CRYPTO_memcmp(acc, e->commitment.bytes, 32) == 0;
    if (ok) { /* outputs only for a checkpoint that holds */
        memcpy(hash, entry_hash, 32);
        memcpy(commitment, e->commitment.bytes, 32);
        kms_state_set_time(e->time);
    }
    g_state.checkpoint_rev = rev; /* the pointer's own revision in the store, for the next (conditional) put */
    if (ok) *seq = at, g_state.checkpoint_seq = at;
    else kms_index_clear(&g_state.index); /* replay from the first entry instead */
    free(e);
    free(buf);
    return ok;
}
