/*
 * statelog_open.c - starting the state of a loaded domain (statelog.h): keys from the domain
 * key, the head and the chain back to the latest checkpoint, every record of the store read,
 * authenticated and indexed, and the index checked against the head's commitment. Also the
 * check of a head a client saw.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "domain.h"
#include "kms/limits.h"
#include "ocalls.h"
#include "statelog_internal.h"

#define LIST_BATCH 64u
#define NAME_MAX_LEN 64u

static const char k_salt[] = "enclave-kms state log v1";

static kms_err_t derive_keys(void)
{
    uint8_t dk[32];
    static const char *labels[3] = {"entry mac", "record name", "commitment"};
    uint8_t *out[3] = {g_state.keys.mac, g_state.keys.name, g_state.keys.commit};
    kms_err_t err = kms_domain_copy_key(dk);
    for (int i = 0; i < 3 && err == KMS_OK; i++)
        err = kms_hkdf_sha256((const uint8_t *)k_salt, sizeof k_salt - 1, dk, sizeof dk, (const uint8_t *)labels[i],
                              strlen(labels[i]), out[i], 32);
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}

/* The entries from the head back to the latest checkpoint (or seq 1), verified as a chain.
 * tail[0] is the head; *n entries (at most KMS_STATE_CHECKPOINT_EVERY). */
static kms_err_t read_tail(StateLogEntry *tail, size_t *n, uint8_t head_hash[32], char *detail, size_t cap)
{
    uint8_t buf[StateLogEntry_size], hash[32], want_prev[32];
    size_t len = 0;
    *n = 0;
    KMS_RETURN_IF_ERR(kms_edge_state_log_get(0, buf, sizeof buf, &len));
    if (len == 0) return KMS_OK; /* no log */
    for (uint64_t seq = 0;; seq = tail[*n - 1].seq - 1) {
        if (seq != 0) KMS_RETURN_IF_ERR(kms_edge_state_log_get(seq, buf, sizeof buf, &len));
        StateLogEntry *e = &tail[*n];
        if (len == 0 || kms_state_entry_open(buf, len, e, hash) != KMS_OK || (seq != 0 && e->seq != seq) ||
            (*n > 0 && memcmp(hash, want_prev, 32) != 0)) {
            if (seq == 0) snprintf(detail, cap, "the state log's head does not authenticate (altered, or another domain's)");
            else snprintf(detail, cap, "state log entry %llu is missing, altered or out of its chain", (unsigned long long)seq);
            return KMS_ERR_RECORD_CORRUPT;
        }
        if (*n == 0) memcpy(head_hash, hash, 32);
        memcpy(want_prev, e->prev.bytes, 32);
        (*n)++;
        if (e->checkpoint || e->seq == 1 || *n == KMS_STATE_CHECKPOINT_EVERY) return KMS_OK;
    }
}

/* Read, authenticate and index one record; add its term to acc. */
static kms_err_t scan_one(const char *name, uint8_t *blob, uint8_t *pt, uint8_t acc[32], char *detail, size_t cap)
{
    size_t len = 0, pt_len = 0;
    uint64_t revision = 0;
    uint8_t id[KMS_INDEX_ID_LEN], hash[KMS_INDEX_HASH_LEN];
    KMS_RETURN_IF_ERR(kms_edge_store_get(name, blob, KMS_MAX_RECORD_BLOB, &len));
    if (len == 0) return KMS_OK; /* listed, then gone: the commitment will tell */
    if (kms_domain_open_record(name, blob, len, pt, KMS_MAX_RECORD_BLOB, &pt_len, &revision) != KMS_OK) {
        snprintf(detail, cap, "record %s does not authenticate under this domain's key", name);
        return KMS_ERR_RECORD_CORRUPT;
    }
    KMS_RETURN_IF_ERR(kms_state_blob_hash(blob, len, hash));
    KMS_RETURN_IF_ERR(kms_state_name_id(name, id));
    KMS_RETURN_IF_ERR(kms_index_put(id, revision, hash));
    return kms_state_commitment_update(acc, id, revision, hash, 1);
}

/* Every record the store lists (but the node-local sealed key), into the index and acc. */
static kms_err_t scan_store(uint8_t acc[32], size_t *count, char *detail, size_t cap)
{
    char *names = malloc(LIST_BATCH * (NAME_MAX_LEN + 1)), after[NAME_MAX_LEN + 1] = "";
    uint8_t *blob = malloc(KMS_MAX_RECORD_BLOB), *pt = malloc(KMS_MAX_RECORD_BLOB);
    kms_err_t err = names && blob && pt ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    size_t got = LIST_BATCH;
    *count = 0;
    while (err == KMS_OK && got == LIST_BATCH) {
        size_t len = 0, off = 0;
        got = 0;
        err = kms_edge_store_list(after, LIST_BATCH, names, LIST_BATCH * (NAME_MAX_LEN + 1), &len);
        while (err == KMS_OK && off < len) {
            const char *name = names + off;
            size_t n = strnlen(name, len - off);
            if (n == len - off || n > NAME_MAX_LEN || n == 0 || strcmp(name, after) <= 0) {
                snprintf(detail, cap, "the store's listing of record names is malformed or out of order");
                err = KMS_ERR_STORE_UNAVAILABLE;
                break;
            }
            if (strcmp(name, KMS_SEALED_DOMAIN_KEY_ID) != 0 && (err = scan_one(name, blob, pt, acc, detail, cap)) == KMS_OK)
                (*count)++;
            memcpy(after, name, n + 1);
            off += n + 1, got++;
        }
    }
    if (pt != NULL) OPENSSL_cleanse(pt, KMS_MAX_RECORD_BLOB);
    free(pt), free(blob), free(names);
    return err;
}

/* After a commitment mismatch: name what differs from the log's recent entries. */
static void name_mismatch(const StateLogEntry *tail, size_t n, char *detail, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        int newer = 0; /* only the latest entry of a name counts */
        for (size_t j = 0; j < i; j++) newer |= strcmp(tail[j].name, tail[i].name) == 0;
        uint8_t id[KMS_INDEX_ID_LEN];
        kms_index_slot slot;
        if (newer || kms_state_name_id(tail[i].name, id) != KMS_OK) continue;
        if (!kms_index_get(id, &slot)) {
            snprintf(detail, cap, "record %s is missing (state log entry %llu has revision %llu)", tail[i].name,
                     (unsigned long long)tail[i].seq, (unsigned long long)tail[i].revision);
            return;
        }
        if (slot.revision != tail[i].revision || memcmp(slot.blob_hash, tail[i].blob_hash.bytes, 16) != 0) {
            snprintf(detail, cap, "record %s is at revision %llu, state log entry %llu says revision %llu%s",
                     tail[i].name, (unsigned long long)slot.revision, (unsigned long long)tail[i].seq,
                     (unsigned long long)tail[i].revision, slot.revision == tail[i].revision ? " (another copy)" : "");
            return;
        }
    }
    snprintf(detail, cap, "a record unchanged since state log entry %llu differs from the log (an older or foreign copy)",
             (unsigned long long)(n > 0 ? tail[n - 1].seq : 0));
}

/* Rebuild the index from the store and check it against the tail's head (lock held). */
static kms_err_t verify_store(const StateLogEntry *tail, size_t n, char *detail, size_t cap)
{
    uint8_t acc[32] = {0};
    size_t count = 0;
    KMS_RETURN_IF_ERR(scan_store(acc, &count, detail, cap));
    if (n == 0 && count > 0) {
        snprintf(detail, cap, "the store holds %zu records but no state log", count);
        return KMS_ERR_STALE_RECORD;
    }
    if (n > 0 && CRYPTO_memcmp(acc, tail[0].commitment.bytes, 32) != 0) {
        name_mismatch(tail, n, detail, cap);
        return KMS_ERR_STALE_RECORD;
    }
    return KMS_OK;
}

kms_err_t kms_state_open(int fresh, char *detail, size_t cap)
{
    StateLogEntry *tail = calloc(KMS_STATE_CHECKPOINT_EVERY, sizeof *tail);
    uint8_t head_hash[32] = {0};
    size_t n = 0;
    if (tail == NULL) return KMS_ERR_OUT_OF_MEMORY;
    if (cap > 0) detail[0] = '\0';
    pthread_mutex_lock(&g_state.lock);
    kms_state_reset_locked();
    kms_err_t err = derive_keys();
    if (err == KMS_OK) err = read_tail(tail, &n, head_hash, detail, cap);
    if (err == KMS_ERR_RECORD_CORRUPT && fresh) snprintf(detail, cap, "the store already holds another state log");
    if (err == KMS_OK && fresh && n > 0) {
        snprintf(detail, cap, "the store already holds a state log: a new domain needs an empty store");
        err = KMS_ERR_STALE_RECORD;
    }
    if (err == KMS_OK && !fresh) err = verify_store(tail, n, detail, cap);
    if (err == KMS_OK && n > 0) {
        g_state.seq = tail[0].seq;
        memcpy(g_state.head, head_hash, 32);
        memcpy(g_state.commitment, tail[0].commitment.bytes, 32);
        kms_state_set_time(tail[0].time);
    }
    if (err == KMS_OK) g_state.open = 1;
    else kms_state_reset_locked();
    pthread_mutex_unlock(&g_state.lock);
    free(tail);
    return err;
}

kms_err_t kms_state_check_head(uint64_t seq, const uint8_t hash[32], int *result)
{
    uint8_t buf[StateLogEntry_size], got[32];
    size_t len = 0;
    StateLogEntry e;
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = g_state.open ? KMS_OK : KMS_ERR_DOMAIN_NOT_LOADED;
    if (err == KMS_OK && seq > g_state.seq) *result = 2;
    else if (err == KMS_OK && seq == g_state.seq) *result = CRYPTO_memcmp(hash, g_state.head, 32) == 0 ? 1 : 3;
    else if (err == KMS_OK && seq == 0) *result = 1;
    else if (err == KMS_OK) {
        err = kms_edge_state_log_get(seq, buf, sizeof buf, &len);
        /* An entry the host cannot produce, or another one: this log is not the one the client saw. */
        *result = err == KMS_OK && len > 0 && kms_state_entry_open(buf, len, &e, got) == KMS_OK && e.seq == seq &&
                          CRYPTO_memcmp(got, hash, 32) == 0
                      ? 1
                      : 3;
    }
    pthread_mutex_unlock(&g_state.lock);
    return err;
}
