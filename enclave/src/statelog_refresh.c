/*
 * statelog_refresh.c - following the shared state log (docs/cluster.md, "Keeping current"): other
 * replicas append entries to the same log; before a request that depends on the domain's state the
 * enclave reads the log's head and, when it moved, reads, authenticates and chains every entry after
 * its own head and applies it to its index, exactly as start-up replays the log. The names of the
 * records that changed are queued for the caches above (keystore, domain state) to drop.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "index.h"
#include "ocalls.h"
#include "statelog_internal.h"

#define CHANGED_MAX 32u

static char g_changed[CHANGED_MAX][sizeof(((StateLogEntry *)0)->name)]; /* guarded by g_state.lock */
static size_t g_changed_count;
static int g_changed_overflow;

/* Entry seq authenticated into *e (hash: its SHA-256). KMS_ERR_STALE_RECORD when it is missing or
 * altered: the log another replica extends cannot lose entries. (lock held) */
static kms_err_t read_entry(uint64_t seq, StateLogEntry *e, uint8_t hash[32])
{
    uint8_t buf[StateLogEntry_size];
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_edge_state_log_get(seq, buf, sizeof buf, &len));
    if (len == 0 || kms_state_entry_open(buf, len, e, hash) != KMS_OK || (seq != 0 && e->seq != seq))
        return KMS_ERR_STALE_RECORD;
    return KMS_OK;
}

/* Apply the entry that follows our head (lock held): chained, committing to the index it makes. */
static kms_err_t follow(const StateLogEntry *e, const uint8_t hash[32])
{
    uint8_t id[KMS_INDEX_ID_LEN], acc[32];
    kms_index_slot old;
    if (e->seq != g_state.seq + 1 || memcmp(e->prev.bytes, g_state.head, 32) != 0) return KMS_ERR_STALE_RECORD;
    KMS_RETURN_IF_ERR(kms_state_name_id(e->name, id));
    memcpy(acc, g_state.commitment, 32);
    if (kms_index_get(&g_state.index, id, &old))
        KMS_RETURN_IF_ERR(kms_state_commitment_update(acc, id, old.revision, old.blob_hash, -1));
    KMS_RETURN_IF_ERR(kms_state_commitment_update(acc, id, e->revision, e->blob_hash.bytes, 1));
    if (CRYPTO_memcmp(acc, e->commitment.bytes, 32) != 0) return KMS_ERR_STALE_RECORD;
    KMS_RETURN_IF_ERR(kms_index_put(&g_state.index, id, e->revision, e->blob_hash.bytes));
    g_state.seq = e->seq;
    memcpy(g_state.head, hash, 32);
    memcpy(g_state.commitment, acc, 32);
    kms_state_set_time(e->time);
    if (g_changed_count < CHANGED_MAX) memcpy(g_changed[g_changed_count++], e->name, sizeof e->name);
    else g_changed_overflow = 1;
    return KMS_OK;
}

kms_err_t kms_state_follow_locked(uint64_t *applied)
{
    uint8_t hash[32], buf[StateLogEntry_size];
    size_t len = 0;
    StateLogEntry e;
    *applied = 0;
    KMS_RETURN_IF_ERR(kms_edge_state_log_get(0, buf, sizeof buf, &len));
    /* Unchanged, the usual case: the bytes of the entry this enclave authenticated or wrote last (its
     * SHA-256 is our head), so they need no second authentication. */
    if (len > 0 && g_state.seq > 0 && kms_sha256(buf, len, hash) == KMS_OK && memcmp(hash, g_state.head, 32) == 0)
        return KMS_OK;
    kms_err_t err = len == 0 || kms_state_entry_open(buf, len, &e, hash) != KMS_OK ? KMS_ERR_STALE_RECORD : KMS_OK;
    if (err == KMS_ERR_STALE_RECORD && g_state.seq == 0) return KMS_OK; /* an empty log, and we know none */
    KMS_RETURN_IF_ERR(err);
    if (memcmp(hash, g_state.head, 32) == 0) return KMS_OK;
    if (e.seq <= g_state.seq) return KMS_ERR_STALE_RECORD;  /* behind us, or another history */
    uint64_t head = e.seq;
    uint8_t head_hash[32];
    memcpy(head_hash, hash, 32);
    for (uint64_t seq = g_state.seq + 1; seq <= head; seq++) {
        KMS_RETURN_IF_ERR(read_entry(seq, &e, hash));
        if (seq == head && memcmp(hash, head_hash, 32) != 0) return KMS_ERR_STALE_RECORD; /* not the head it showed */
        KMS_RETURN_IF_ERR(follow(&e, hash));
        (*applied)++;
    }
    return KMS_OK;
}

kms_err_t kms_state_refresh_locked(uint64_t *applied)
{
    *applied = 0;
    return g_state.open ? kms_state_follow_locked(applied) : KMS_OK;
}

kms_err_t kms_state_refresh(void)
{
    uint64_t applied = 0;
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = kms_state_refresh_locked(&applied);
    pthread_mutex_unlock(&g_state.lock);
    return err;
}

void kms_state_take_changes(kms_state_changed_fn fn, void *arg)
{
    char names[CHANGED_MAX][sizeof g_changed[0]];
    pthread_mutex_lock(&g_state.lock);
    size_t count = g_changed_count;
    int overflow = g_changed_overflow;
    memcpy(names, g_changed, count * sizeof names[0]);
    g_changed_count = 0, g_changed_overflow = 0;
    pthread_mutex_unlock(&g_state.lock);
    for (size_t i = 0; i < count; i++) fn(names[i], arg);
    if (overflow) fn(NULL, arg); /* more changed than we kept: drop everything */
    OPENSSL_cleanse(names, count * sizeof names[0]);
}
