/*
 * statelog.c - the state log, the record index and the clock at run time (statelog.h):
 * commits, checks of what is read, the head. Start-up checking is in statelog_open.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "crypto.h"
#include "index.h"
#include "ocalls.h"
#include "statelog_internal.h"

/* Commits that lose the race for the next sequence number to other replicas before CONFLICT: three
 * replicas writing at once lost four in a row often enough to be seen (tests/e2e/test_cluster_audit_race.py). */
#define COMMIT_RETRIES 16

struct kms_state g_state = {.lock = PTHREAD_MUTEX_INITIALIZER};
static _Atomic int64_t g_time;

int64_t kms_state_now(int64_t host_time)
{
    int64_t seen = atomic_load(&g_time);
    while (host_time > seen && !atomic_compare_exchange_weak(&g_time, &seen, host_time)) {
    }
    return host_time > seen ? host_time : seen;
}

void kms_state_set_time(int64_t t) { (void)kms_state_now(t); }

void kms_state_reset_locked(void)
{
    kms_index_clear(&g_state.index);
    OPENSSL_cleanse(&g_state.keys, sizeof g_state.keys);
    g_state.open = 0;
    g_state.seq = 0;
    g_state.checkpoint_seq = g_state.checkpoint_rev = 0;
    memset(g_state.head, 0, sizeof g_state.head);
    memset(g_state.commitment, 0, sizeof g_state.commitment);
}

void kms_state_close(void)
{
    pthread_mutex_lock(&g_state.lock);
    kms_state_reset_locked();
    pthread_mutex_unlock(&g_state.lock);
}

int kms_state_is_open(void)
{
    pthread_mutex_lock(&g_state.lock);
    int open = g_state.open;
    pthread_mutex_unlock(&g_state.lock);
    return open;
}

kms_err_t kms_state_name_id(const char *name, uint8_t id[KMS_INDEX_ID_LEN])
{
    uint8_t mac[32];
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_hmac(KMS_MD_SHA256, g_state.keys.name, sizeof g_state.keys.name, (const uint8_t *)name,
                               strlen(name), mac, sizeof mac, &len));
    memcpy(id, mac, KMS_INDEX_ID_LEN);
    return KMS_OK;
}

kms_err_t kms_state_blob_hash(const uint8_t *blob, size_t len, uint8_t out[KMS_INDEX_HASH_LEN])
{
    uint8_t h[32];
    KMS_RETURN_IF_ERR(kms_sha256(blob, len, h));
    memcpy(out, h, KMS_INDEX_HASH_LEN);
    return KMS_OK;
}

/* The commitment term of one record: a PRF of (id, revision, blob hash) under the commit key. */
static kms_err_t term(const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision, const uint8_t hash[KMS_INDEX_HASH_LEN],
                      uint8_t out[32])
{
    uint8_t msg[KMS_INDEX_ID_LEN + 8 + KMS_INDEX_HASH_LEN];
    size_t len = 0;
    memcpy(msg, id, KMS_INDEX_ID_LEN);
    for (int i = 0; i < 8; i++) msg[KMS_INDEX_ID_LEN + i] = (uint8_t)(revision >> (8 * (7 - i)));
    memcpy(msg + KMS_INDEX_ID_LEN + 8, hash, KMS_INDEX_HASH_LEN);
    return kms_hmac(KMS_MD_SHA256, g_state.keys.commit, sizeof g_state.keys.commit, msg, sizeof msg, out, 32, &len);
}

/* acc += sign * t, modulo 2^256 (little-endian): the commitment is a sum of PRF terms. */
static void accumulate(uint8_t acc[32], const uint8_t t[32], int sign)
{
    unsigned int carry = sign > 0 ? 0u : 1u; /* subtraction adds the two's complement */
    for (int i = 0; i < 32; i++) {
        unsigned int v = acc[i] + (sign > 0 ? t[i] : (uint8_t)~t[i]) + carry;
        acc[i] = (uint8_t)v;
        carry = v >> 8;
    }
}

kms_err_t kms_state_commitment_update(uint8_t acc[32], const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision,
                                      const uint8_t hash[KMS_INDEX_HASH_LEN], int sign)
{
    uint8_t t[32];
    KMS_RETURN_IF_ERR(term(id, revision, hash, t));
    accumulate(acc, t, sign);
    return KMS_OK;
}

/* Encode e with its MAC into out (cap bytes); sets e->mac. */
kms_err_t kms_state_entry_seal(StateLogEntry *e, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t body[StateLogEntry_size];
    size_t mac_len = 0;
    e->mac.size = 0;
    pb_ostream_t bs = pb_ostream_from_buffer(body, sizeof body);
    if (!pb_encode(&bs, StateLogEntry_fields, e)) return KMS_ERR_ENCODE;
    KMS_RETURN_IF_ERR(kms_hmac(KMS_MD_SHA256, g_state.keys.mac, sizeof g_state.keys.mac, body, bs.bytes_written,
                               e->mac.bytes, sizeof e->mac.bytes, &mac_len));
    e->mac.size = (pb_size_t)mac_len;
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    if (!pb_encode(&os, StateLogEntry_fields, e)) return KMS_ERR_ENCODE;
    *len = os.bytes_written;
    return KMS_OK;
}

kms_err_t kms_state_entry_open(const uint8_t *buf, size_t len, StateLogEntry *e, uint8_t hash[32])
{
    uint8_t mac[32], again[StateLogEntry_size];
    size_t again_len = 0;
    memset(e, 0, sizeof *e);
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, StateLogEntry_fields, e) || e->mac.size != 32 || e->prev.size != 32 ||
        e->commitment.size != 32 || e->blob_hash.size != KMS_INDEX_HASH_LEN || e->seq == 0)
        return KMS_ERR_RECORD_CORRUPT;
    memcpy(mac, e->mac.bytes, 32);
    StateLogEntry copy = *e;
    if (kms_state_entry_seal(&copy, again, sizeof again, &again_len) != KMS_OK ||
        CRYPTO_memcmp(copy.mac.bytes, mac, 32) != 0 || again_len != len || memcmp(again, buf, len) != 0)
        return KMS_ERR_RECORD_CORRUPT;
    return kms_sha256(buf, len, hash);
}

kms_err_t kms_state_head(uint64_t *seq, uint8_t hash[32])
{
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = g_state.open ? KMS_OK : KMS_ERR_DOMAIN_NOT_LOADED;
    *seq = g_state.seq;
    memcpy(hash, g_state.head, 32);
    pthread_mutex_unlock(&g_state.lock);
    return err;
}

kms_err_t kms_state_check(const char *name, int found, uint64_t revision, const uint8_t *blob, size_t len)
{
    uint8_t id[KMS_INDEX_ID_LEN], hash[KMS_INDEX_HASH_LEN];
    kms_index_slot slot;
    if (found) KMS_RETURN_IF_ERR(kms_state_blob_hash(blob, len, hash));
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = g_state.open ? kms_state_name_id(name, id) : KMS_ERR_DOMAIN_NOT_LOADED;
    if (err == KMS_OK) {
        int known = kms_index_get(&g_state.index, id, &slot);
        if (!found) err = known ? KMS_ERR_STALE_RECORD : KMS_OK; /* the host hides a record */
        else if (!known || slot.revision != revision || CRYPTO_memcmp(slot.blob_hash, hash, sizeof hash) != 0)
            err = KMS_ERR_STALE_RECORD;
    }
    pthread_mutex_unlock(&g_state.lock);
    return err;
}

/* The entry for a change of name (lock held): next seq, chained to the head. */
static kms_err_t next_entry(const char *name, uint64_t expected, uint64_t revision, const uint8_t *blob, size_t len,
                            StateLogEntry *e, uint8_t id[KMS_INDEX_ID_LEN])
{
    kms_index_slot old;
    memset(e, 0, sizeof *e);
    if (strlen(name) >= sizeof e->name) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_state_name_id(name, id));
    int known = kms_index_get(&g_state.index, id, &old);
    if ((known ? old.revision : 0) != expected) return KMS_ERR_CONFLICT; /* not the revision we hold */
    e->seq = g_state.seq + 1;
    memcpy(e->prev.bytes, g_state.head, 32), e->prev.size = 32;
    e->time = atomic_load(&g_time);
    memcpy(e->name, name, strlen(name) + 1);
    e->revision = revision;
    KMS_RETURN_IF_ERR(kms_state_blob_hash(blob, len, e->blob_hash.bytes));
    e->blob_hash.size = KMS_INDEX_HASH_LEN;
    memcpy(e->commitment.bytes, g_state.commitment, 32), e->commitment.size = 32;
    if (known) KMS_RETURN_IF_ERR(kms_state_commitment_update(e->commitment.bytes, id, old.revision, old.blob_hash, -1));
    KMS_RETURN_IF_ERR(kms_state_commitment_update(e->commitment.bytes, id, revision, e->blob_hash.bytes, 1));
    return KMS_OK;
}

/* The change described by e is in the store: make it ours (lock held). */
static kms_err_t adopt(const StateLogEntry *e, const uint8_t id[KMS_INDEX_ID_LEN], const uint8_t hash[32])
{
    KMS_RETURN_IF_ERR(kms_index_put(&g_state.index, id, e->revision, e->blob_hash.bytes));
    g_state.seq = e->seq;
    memcpy(g_state.head, hash, 32);
    memcpy(g_state.commitment, e->commitment.bytes, 32);
    return KMS_OK;
}

/* After a failed commit: if the host's head is exactly the entry we tried, it was written. */
static int written_anyway(const uint8_t *entry, size_t len)
{
    uint8_t buf[StateLogEntry_size];
    size_t got = 0;
    return kms_edge_state_log_get(0, buf, sizeof buf, &got) == KMS_OK && got == len && memcmp(buf, entry, len) == 0;
}

/* Build, seal and commit the entry for this change (lock held); on success the index adopts it. */
static kms_err_t commit_once(const char *name, uint64_t expected, uint64_t revision, const uint8_t *blob, size_t len,
                             StateLogEntry *e)
{
    uint8_t buf[StateLogEntry_size], id[KMS_INDEX_ID_LEN], hash[32];
    size_t buf_len = 0;
    kms_err_t err = g_state.open ? KMS_OK : KMS_ERR_DOMAIN_NOT_LOADED;
    if (err == KMS_OK) err = next_entry(name, expected, revision, blob, len, e, id);
    if (err == KMS_OK) err = kms_state_entry_seal(e, buf, sizeof buf, &buf_len);
    if (err == KMS_OK) err = kms_sha256(buf, buf_len, hash);
    if (err != KMS_OK) return err;
    err = kms_edge_store_commit(name, expected, revision, blob, len, e->seq, buf, buf_len);
    if (err != KMS_OK && written_anyway(buf, buf_len)) err = KMS_OK; /* an outcome the host hid */
    if (err == KMS_OK && adopt(e, id, hash) != KMS_OK) {
        kms_state_reset_locked(); /* the store moved and the index cannot follow: serve nothing */
        err = KMS_ERR_OUT_OF_MEMORY;
    }
    return err;
}

kms_err_t kms_state_commit(const char *name, uint64_t expected, uint64_t revision, const uint8_t *blob, size_t len)
{
    StateLogEntry *e = calloc(1, sizeof *e);
    if (e == NULL) return KMS_ERR_OUT_OF_MEMORY;
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = commit_once(name, expected, revision, blob, len, e);
    /* Another replica may have appended to the shared log since our head: follow it and try again
     * (the record itself must still be at `expected`, else next_entry answers CONFLICT), as long as
     * each lost try shows another replica's entries (progress), within a bound. */
    for (int attempt = 0; err != KMS_OK && err != KMS_ERR_DOMAIN_NOT_LOADED && attempt < COMMIT_RETRIES; attempt++) {
        uint64_t applied = 0;
        if (kms_state_refresh_locked(&applied) != KMS_OK || applied == 0) break;
        err = commit_once(name, expected, revision, blob, len, e);
    }
    pthread_mutex_unlock(&g_state.lock);
    free(e);
    if (err == KMS_OK) kms_state_checkpoint_after_commit();
    return err;
}

kms_err_t kms_state_revision(const char *name, uint64_t *revision)
{
    uint8_t id[KMS_INDEX_ID_LEN];
    kms_index_slot slot;
    *revision = 0;
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = g_state.open ? kms_state_name_id(name, id) : KMS_ERR_DOMAIN_NOT_LOADED;
    if (err == KMS_OK && kms_index_get(&g_state.index, id, &slot)) *revision = slot.revision;
    pthread_mutex_unlock(&g_state.lock);
    return err;
}

void kms_state_index_size(size_t *records, size_t *bytes)
{
    pthread_mutex_lock(&g_state.lock);
    *records = g_state.index.count;
    *bytes = kms_index_bytes(&g_state.index);
    pthread_mutex_unlock(&g_state.lock);
}
