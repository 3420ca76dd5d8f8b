/*
 * statelog_open.c - starting the state of a loaded domain (statelog.h): keys from the domain
 * key; the index rebuilt by replaying the state log from its first entry, each entry
 * authenticated, numbered and chained, the commitments checked along the way; then every record
 * of the store read and compared with the index, following the log further (as a running replica
 * does) when other replicas wrote after it was read. Also the check of a head a client saw.
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
#define FOLLOW_ROUNDS 16u /* reads of one record that another replica keeps changing */

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

/* Entry seq (0: the head) authenticated into *e; hash = its SHA-256. */
static kms_err_t read_entry(uint64_t seq, StateLogEntry *e, uint8_t hash[32], char *detail, size_t cap)
{
    uint8_t buf[StateLogEntry_size];
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_edge_state_log_get(seq, buf, sizeof buf, &len));
    if (len > 0 && kms_state_entry_open(buf, len, e, hash) == KMS_OK && (seq == 0 || e->seq == seq)) return KMS_OK;
    if (seq == 0) snprintf(detail, cap, "the state log's head does not authenticate (altered, or another domain's)");
    else snprintf(detail, cap, "state log entry %llu is missing or altered", (unsigned long long)seq);
    return KMS_ERR_RECORD_CORRUPT;
}

/* Apply entry e to the index and the running commitment (lock held). */
static kms_err_t apply(const StateLogEntry *e, uint8_t acc[32])
{
    uint8_t id[KMS_INDEX_ID_LEN];
    kms_index_slot old;
    KMS_RETURN_IF_ERR(kms_state_name_id(e->name, id));
    if (kms_index_get(&g_state.index, id, &old))
        KMS_RETURN_IF_ERR(kms_state_commitment_update(acc, id, old.revision, old.blob_hash, -1));
    KMS_RETURN_IF_ERR(kms_state_commitment_update(acc, id, e->revision, e->blob_hash.bytes, 1));
    return kms_index_put(&g_state.index, id, e->revision, e->blob_hash.bytes);
}

/* The checkpoint loader's view of read_entry (lock held). */
static int entry_for_checkpoint(uint64_t seq, StateLogEntry *e, uint8_t hash[32])
{
    char ignored[8];
    return read_entry(seq, e, hash, ignored, sizeof ignored) == KMS_OK;
}

/* Replay the entries after the latest valid checkpoint (or from the first) up to head->seq into
 * the index (lock held): each numbered, chained to the one before and carrying the commitment of
 * the index it makes; the last one is the head. */
static kms_err_t replay(const StateLogEntry *head, const uint8_t head_hash[32], char *detail, size_t cap)
{
    StateLogEntry *e = malloc(sizeof *e);
    uint8_t prev[32] = {0}, hash[32], acc[32] = {0};
    uint64_t from = 0;
    kms_err_t err = e != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    if (err == KMS_OK && !kms_state_checkpoint_load(head->seq, &from, prev, acc, entry_for_checkpoint)) from = 0;
    for (uint64_t seq = from + 1; err == KMS_OK && seq <= head->seq; seq++) {
        err = read_entry(seq, e, hash, detail, cap);
        if (err == KMS_OK && memcmp(e->prev.bytes, prev, 32) != 0) {
            snprintf(detail, cap, "state log entry %llu does not follow entry %llu", (unsigned long long)seq,
                     (unsigned long long)(seq - 1));
            err = KMS_ERR_RECORD_CORRUPT;
        }
        if (err == KMS_OK) err = apply(e, acc);
        if (err == KMS_OK && CRYPTO_memcmp(acc, e->commitment.bytes, 32) != 0) {
            snprintf(detail, cap, "state log entry %llu commits to another index", (unsigned long long)seq);
            err = KMS_ERR_RECORD_CORRUPT;
        }
        if (err == KMS_OK) kms_state_set_time(e->time), memcpy(prev, hash, 32);
    }
    if (err == KMS_OK && memcmp(prev, head_hash, 32) != 0) {
        snprintf(detail, cap, "the state log's head is not its last entry");
        err = KMS_ERR_RECORD_CORRUPT;
    }
    if (err == KMS_OK) memcpy(g_state.commitment, acc, 32);
    free(e);
    return err;
}

/* The name of an indexed record that `seen` lacks, found by walking the log (a failure path). */
static void name_missing(const kms_index *seen, char *detail, size_t cap)
{
    StateLogEntry *e = malloc(sizeof *e);
    uint8_t hash[32], id[KMS_INDEX_ID_LEN];
    char ignored[8];
    snprintf(detail, cap, "a record of the state log is missing from the store");
    for (uint64_t seq = g_state.seq; e != NULL && seq >= 1; seq--) {
        if (read_entry(seq, e, hash, ignored, sizeof ignored) != KMS_OK || kms_state_name_id(e->name, id) != KMS_OK)
            break;
        if (!kms_index_get(seen, id, NULL)) {
            snprintf(detail, cap, "record %s is missing (the state log has it since entry %llu)", e->name,
                     (unsigned long long)seq);
            break;
        }
    }
    free(e);
}

typedef struct {
    kms_index seen;         /* every record the store listed */
    size_t damaged;         /* records that do not authenticate (each refused when used) */
    char first_damaged[NAME_MAX_LEN + 1];
    uint8_t *blob, *pt;
} scan_state;

/* One read of a record: found, and when it authenticates (not damaged) its revision and blob hash. */
typedef struct {
    int found, damaged;
    uint64_t revision;
    uint8_t hash[KMS_INDEX_HASH_LEN];
} record_read;

enum { MATCH, AHEAD, BEHIND, OTHER }; /* a read against the index: AHEAD also when the index lacks it */

static kms_err_t read_record(const char *name, scan_state *sc, record_read *r)
{
    size_t len = 0, pt_len = 0;
    memset(r, 0, sizeof *r);
    KMS_RETURN_IF_ERR(kms_edge_store_get(name, sc->blob, KMS_MAX_RECORD_BLOB, &len));
    if (len == 0) return KMS_OK;
    r->found = 1;
    if (kms_domain_open_record(name, sc->blob, len, sc->pt, KMS_MAX_RECORD_BLOB, &pt_len, &r->revision) != KMS_OK) {
        r->damaged = 1; /* damage is not a rollback: that record alone is refused when used */
        return KMS_OK;
    }
    return kms_state_blob_hash(sc->blob, len, r->hash);
}

/* Where a read stands against the index (lock held); detail says why when it does not match. */
static int compare(const char *name, const uint8_t id[KMS_INDEX_ID_LEN], const record_read *r, char *detail,
                   size_t cap)
{
    kms_index_slot slot;
    if (!kms_index_get(&g_state.index, id, &slot)) {
        snprintf(detail, cap, "record %s is not in the state log (it is ahead of the log, or foreign)", name);
        return AHEAD;
    }
    if (!r->found) {
        snprintf(detail, cap, "record %s is missing (listed, but the store has nothing under it)", name);
        return OTHER;
    }
    if (r->damaged || (slot.revision == r->revision && CRYPTO_memcmp(slot.blob_hash, r->hash, sizeof r->hash) == 0))
        return MATCH;
    snprintf(detail, cap, "record %s is at revision %llu, the state log says revision %llu%s", name,
             (unsigned long long)r->revision, (unsigned long long)slot.revision,
             slot.revision == r->revision ? " (another copy of it)" : "");
    return r->revision > slot.revision ? AHEAD : r->revision < slot.revision ? BEHIND : OTHER;
}

/* Follow the log to its head (other replicas write while we check): *applied entries (lock held). */
static kms_err_t follow_log(uint64_t *applied, char *detail, size_t cap)
{
    uint64_t from = g_state.seq;
    kms_err_t err = kms_state_follow_locked(applied);
    if (err == KMS_ERR_STALE_RECORD)
        snprintf(detail, cap, "the state log moved during the start-up check and does not follow entry %llu",
                 (unsigned long long)from);
    return err;
}

/*
 * One record against the index (lock held). A record is written in one transaction with its log
 * entry and every read here comes after the index last moved, so a record behind the index, another
 * copy of its revision or a missing one is refused at once. One ahead of the index (or not in it)
 * was written by another replica after the log was read: the index follows the log to its head
 * (authenticated, chained, committing) and must then hold exactly that read; if the index has since
 * moved past it, the record changed again and is read again. A record the log does not reach at its
 * head is refused.
 */
static kms_err_t check_one(const char *name, scan_state *sc, char *detail, size_t cap)
{
    uint8_t id[KMS_INDEX_ID_LEN], zero[KMS_INDEX_HASH_LEN] = {0};
    record_read r;
    KMS_RETURN_IF_ERR(kms_state_name_id(name, id));
    KMS_RETURN_IF_ERR(kms_index_put(&sc->seen, id, 1, zero));
    for (unsigned round = 0; round < FOLLOW_ROUNDS; round++) {
        uint64_t applied = 0;
        KMS_RETURN_IF_ERR(read_record(name, sc, &r));
        int v = compare(name, id, &r, detail, cap);
        if (v == AHEAD) {
            KMS_RETURN_IF_ERR(follow_log(&applied, detail, cap));
            if (applied > 0) v = compare(name, id, &r, detail, cap);
        }
        if (v == MATCH) {
            if (r.damaged && sc->damaged++ == 0) snprintf(sc->first_damaged, sizeof sc->first_damaged, "%s", name);
            return KMS_OK;
        }
        if (v != BEHIND || applied == 0) return KMS_ERR_STALE_RECORD;
    }
    snprintf(detail, cap, "record %s kept changing while the start-up check read it (%u times)", name, FOLLOW_ROUNDS);
    return KMS_ERR_STALE_RECORD;
}

/* The records of the entries followed during the check (after entry `from`) that the listing did
 * not show: created after the listing had passed their names (lock held). May follow further. */
static kms_err_t check_followed(uint64_t from, scan_state *sc, char *detail, size_t cap)
{
    StateLogEntry *e = malloc(sizeof *e);
    uint8_t hash[32], id[KMS_INDEX_ID_LEN];
    kms_err_t err = e != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    for (uint64_t seq = from + 1; err == KMS_OK && seq <= g_state.seq; seq++) {
        err = read_entry(seq, e, hash, detail, cap);
        if (err == KMS_OK) err = kms_state_name_id(e->name, id);
        if (err == KMS_OK && !kms_index_get(&sc->seen, id, NULL)) err = check_one(e->name, sc, detail, cap);
    }
    free(e);
    return err;
}

/* Every record the store lists (but the node-local sealed key), in byte order (lock held). */
static kms_err_t check_store(scan_state *sc, char *detail, size_t cap)
{
    uint64_t from = g_state.seq; /* the head replayed; check_one may follow the log past it */
    char *names = malloc(LIST_BATCH * (NAME_MAX_LEN + 1)), after[NAME_MAX_LEN + 1] = "";
    kms_err_t err = names != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    size_t got = LIST_BATCH;
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
            if (strcmp(name, KMS_SEALED_DOMAIN_KEY_ID) != 0 && !kms_state_is_checkpoint_name(name))
                err = check_one(name, sc, detail, cap);
            memcpy(after, name, n + 1);
            off += n + 1, got++;
        }
    }
    free(names);
    /* every record checked is in the index: equal counts are equal sets */
    if (err == KMS_OK && sc->seen.count < g_state.index.count) err = check_followed(from, sc, detail, cap);
    if (err == KMS_OK && sc->seen.count < g_state.index.count) {
        name_missing(&sc->seen, detail, cap);
        err = KMS_ERR_STALE_RECORD;
    }
    return err;
}

/* Rebuild the index from the log and hold the store against it (lock held). */
static kms_err_t verify(char *detail, size_t cap, size_t *damaged)
{
    StateLogEntry *head = calloc(1, sizeof *head);
    scan_state sc = {.blob = malloc(KMS_MAX_RECORD_BLOB), .pt = malloc(KMS_MAX_RECORD_BLOB)};
    uint8_t head_hash[32];
    size_t len = 0;
    kms_err_t err = head != NULL && sc.blob != NULL && sc.pt != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    uint8_t probe[StateLogEntry_size];
    if (err == KMS_OK) err = kms_edge_state_log_get(0, probe, sizeof probe, &len);
    if (err == KMS_OK && len > 0) err = read_entry(0, head, head_hash, detail, cap);
    if (err == KMS_OK && len > 0) err = replay(head, head_hash, detail, cap);
    if (err == KMS_OK && len > 0) g_state.seq = head->seq, memcpy(g_state.head, head_hash, 32);
    if (err == KMS_OK) err = check_store(&sc, detail, cap);
    *damaged = sc.damaged;
    if (err == KMS_OK && sc.damaged > 0)
        snprintf(detail, cap, "%zu record(s) do not authenticate and will be refused, the first: %s", sc.damaged,
                 sc.first_damaged);
    else if (err == KMS_OK && cap > 0) detail[0] = '\0'; /* nothing of a record matched after following the log */
    kms_index_clear(&sc.seen);
    if (sc.pt != NULL) OPENSSL_cleanse(sc.pt, KMS_MAX_RECORD_BLOB);
    free(sc.pt), free(sc.blob), free(head);
    return err;
}

kms_err_t kms_state_open(int fresh, char *detail, size_t cap, size_t *damaged)
{
    uint8_t probe[StateLogEntry_size];
    size_t len = 0, none = 0;
    if (damaged == NULL) damaged = &none;
    *damaged = 0;
    if (cap > 0) detail[0] = '\0';
    pthread_mutex_lock(&g_state.lock);
    kms_state_reset_locked();
    kms_err_t err = derive_keys();
    if (err == KMS_OK && fresh) { /* a new domain: its log starts here */
        err = kms_edge_state_log_get(0, probe, sizeof probe, &len);
        if (err == KMS_OK && len > 0) {
            snprintf(detail, cap, "the store already holds a state log: a new domain needs an empty store");
            err = KMS_ERR_STALE_RECORD;
        }
    } else if (err == KMS_OK) {
        err = verify(detail, cap, damaged);
    }
    if (err == KMS_OK) g_state.open = 1;
    else kms_state_reset_locked();
    pthread_mutex_unlock(&g_state.lock);
    return err;
}

kms_err_t kms_state_check_head(uint64_t seq, const uint8_t hash[32], int *result)
{
    uint8_t got[32];
    char ignored[8];
    StateLogEntry *e = malloc(sizeof *e);
    if (e == NULL) return KMS_ERR_OUT_OF_MEMORY;
    pthread_mutex_lock(&g_state.lock);
    kms_err_t err = g_state.open ? KMS_OK : KMS_ERR_DOMAIN_NOT_LOADED;
    if (err == KMS_OK && seq > g_state.seq) *result = 2;
    else if (err == KMS_OK && seq == g_state.seq) *result = CRYPTO_memcmp(hash, g_state.head, 32) == 0 ? 1 : 3;
    else if (err == KMS_OK && seq == 0) *result = 1;
    else if (err == KMS_OK) /* an entry the host cannot produce, or another one: not the log the client saw */
        *result = read_entry(seq, e, got, ignored, sizeof ignored) == KMS_OK && CRYPTO_memcmp(got, hash, 32) == 0 ? 1 : 3;
    pthread_mutex_unlock(&g_state.lock);
    free(e);
    return err;
}
