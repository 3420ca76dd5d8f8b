/*
 * statelog_internal.h - what statelog.c and statelog_open.c share: the state (guarded by its
 * lock), keys derived from the domain key, and the entry and commitment helpers. Trusted,
 * not an interface for other modules. Functions marked "lock held" need g_state.lock.
 */
#ifndef KMS_ENCLAVE_STATELOG_INTERNAL_H
#define KMS_ENCLAVE_STATELOG_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "statelog.h"

struct kms_state {
    pthread_mutex_t lock;
    int open;
    struct {
        uint8_t mac[32];    /* HMAC key of log entries */
        uint8_t name[32];   /* keyed hash of record names (index ids) */
        uint8_t commit[32]; /* PRF key of commitment terms */
    } keys;
    kms_index index;        /* every record's revision and blob hash */
    uint64_t seq;           /* the head's sequence number (0: no change yet) */
    uint8_t head[32];       /* SHA-256 of the head entry */
    uint8_t commitment[32]; /* sum of every indexed record's term, mod 2^256 */
    uint64_t checkpoint_seq; /* the latest checkpoint written or loaded (0: none) */
    uint64_t checkpoint_rev; /* the store revision of its pointer record */
};
extern struct kms_state g_state;

/* Forget index, keys and head (lock held). */
void kms_state_reset_locked(void);
/* Raise the clock to at least t (at start: the head's time). */
void kms_state_set_time(int64_t t);
/* The index id of a record name (lock held: uses the name key). */
kms_err_t kms_state_name_id(const char *name, uint8_t id[KMS_INDEX_ID_LEN]);
/* First 16 bytes of SHA-256(blob). */
kms_err_t kms_state_blob_hash(const uint8_t *blob, size_t len, uint8_t out[KMS_INDEX_HASH_LEN]);
/* acc += (sign > 0 ? 1 : -1) * term(id, revision, hash) mod 2^256 (lock held). */
kms_err_t kms_state_commitment_update(uint8_t acc[32], const uint8_t id[KMS_INDEX_ID_LEN], uint64_t revision,
                                      const uint8_t hash[KMS_INDEX_HASH_LEN], int sign);
/* Encode e with its MAC (lock held). */
kms_err_t kms_state_entry_seal(StateLogEntry *e, uint8_t *out, size_t cap, size_t *len);
/* Decode and authenticate an entry; hash = SHA-256(buf). KMS_ERR_RECORD_CORRUPT. (lock held) */
kms_err_t kms_state_entry_open(const uint8_t *buf, size_t len, StateLogEntry *e, uint8_t hash[32]);

/* Read and authenticate log entry seq into *e, hash = its SHA-256; 1 on success. (lock held) */
typedef int (*kms_state_entry_reader)(uint64_t seq, StateLogEntry *e, uint8_t hash[32]);

/* 1 for the names of checkpoint records (never indexed, skipped by the start-up check). */
int kms_state_is_checkpoint_name(const char *name);

/*
 * Load the latest checkpoint at or below head_seq into the (empty) index: *seq, the hash and the
 * commitment of its log entry. 1 when the pointer names an authentic entry with that hash and
 * commitment and the pages sum to it; else 0 and the index is left empty (replay everything).
 * (lock held)
 */
int kms_state_checkpoint_load(uint64_t head_seq, uint64_t *seq, uint8_t hash[32], uint8_t commitment[32],
                              kms_state_entry_reader read_entry);

/* After a commit: write a checkpoint when max(KMS_STATE_CHECKPOINT_MIN, records) changes passed
 * since the last one. Takes the lock for a snapshot; writes outside it; best effort. */
void kms_state_checkpoint_after_commit(void);

/* kms_state_refresh with the lock held; *applied: the entries of other replicas it applied. */
kms_err_t kms_state_refresh_locked(uint64_t *applied);
/* The same whether or not the state is open yet: the start-up check follows the log with it while
 * other replicas write (statelog_open.c). Needs the keys, the index, seq, head and commitment. */
kms_err_t kms_state_follow_locked(uint64_t *applied);

#endif /* KMS_ENCLAVE_STATELOG_INTERNAL_H */
