/*
 * statelog.h - state integrity (DESIGN.md §8): the state log, the in-enclave index and the
 * enclave's clock.
 *
 * Every change of a stored record (key records, aliases, the domain state, validator guard
 * state) gets the next domain-wide sequence number and a StateLogEntry (name, revision, blob
 * hash, time, the index commitment after the change, the previous entry's hash, a MAC under a
 * key derived from the domain key) that the host writes in the same transaction as the record
 * (the store_commit OCALL). The index remembers, for every record, the revision and blob the
 * enclave last wrote or verified; a read that returns anything else (an older revision, a
 * sibling blob of the same revision, a record the log never had, or nothing for a record it
 * has) is KMS_ERR_STALE_RECORD. When a domain key is loaded, the index is rebuilt from the
 * store and checked against the log's head: a store that does not match is refused.
 *
 * The clock: host time only moves forward inside the enclave. kms_state_now returns the
 * high-water mark of every time the host has given; log entries carry it, so it survives a
 * restart. The host can stall time (or jump it forward), never rewind it.
 *
 * Thread-safe: one lock serializes changes (the commit OCALL runs under it) and index reads.
 * Group commit (docs/performance.md): unlike audit records (audit.h), a commit stays under the
 * lock until durable, so the index only ever holds durable state and no other request can read,
 * or chain a change on, one that may still fail. Commits still share a flush with concurrent
 * requests' audit records; only changes of one enclave are one at a time.
 */
#ifndef KMS_ENCLAVE_STATELOG_H
#define KMS_ENCLAVE_STATELOG_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

/* The pointer to the latest index checkpoint; its pages are named "<this>-<seq>-<page>". */
#define KMS_STATE_CHECKPOINT_ID "state-checkpoint"
/* A checkpoint is written after max(this, the number of records) changes. */
#define KMS_STATE_CHECKPOINT_MIN 4096u

/*
 * Start the state of the domain whose key is loaded. fresh: a new domain (generate or init):
 * the host's log must be empty. Otherwise (a restart or a recovery): replay the log from its
 * latest checkpoint (or first entry) into the index (each entry authenticated, numbered, chained, and committing to
 * the index it makes), then read every record the store lists and hold it against the index. Other
 * replicas may write meanwhile: a record ahead of the index makes it follow the log to its current
 * head (kms_state_refresh) and the record is held against that. A record older than the log,
 * another copy of its revision, a record the log lacks at its head, or one the store lacks refuses
 * the start (KMS_ERR_STALE_RECORD), and detail (cap bytes) names it with the revisions (never
 * contents). A record that does not authenticate (damage) does not: it is
 * refused when used, *damaged counts such records (may be NULL) and detail names the first.
 * Errors: KMS_ERR_STALE_RECORD, KMS_ERR_RECORD_CORRUPT (a log entry does not authenticate or
 * chain), KMS_ERR_DOMAIN_NOT_LOADED, store errors, KMS_ERR_OUT_OF_MEMORY. On any error the
 * state stays closed. Cost: one log entry and one record read per change and per record.
 */
kms_err_t kms_state_open(int fresh, char *detail, size_t cap, size_t *damaged);

/*
 * Follow the shared log (other replicas append to it; docs/cluster.md): read its head and, when it is
 * not ours, read, authenticate, chain and apply every entry after ours to the index. An entry that
 * is missing, altered, does not follow ours or commits to another index, or a head behind ours, is
 * KMS_ERR_STALE_RECORD (the index stays at the last entry that followed). No domain: nothing to do.
 */
kms_err_t kms_state_refresh(void);
/* The names of the records whose entries refresh applied since the last call, for the caches to
 * drop; fn(NULL) once when more changed than were kept (drop everything). fn runs without locks. */
typedef void (*kms_state_changed_fn)(const char *name, void *arg);
void kms_state_take_changes(kms_state_changed_fn fn, void *arg);

/* Forget the index and the head (the domain key was forgotten). */
void kms_state_close(void);

/* 1 when the state is open (a domain is loaded and its state checked). */
int kms_state_is_open(void);

/* The enclave's time for a request: the high-water mark of host_time and every earlier one. */
int64_t kms_state_now(int64_t host_time);

/* The head: seq (0 before the first change) and hash (zeros then). KMS_ERR_DOMAIN_NOT_LOADED. */
kms_err_t kms_state_head(uint64_t *seq, uint8_t hash[32]);

/*
 * Where a head a client saw stands in this log: 1 known (the log has that entry), 2 ahead (the
 * log does not reach its seq: rolled back), 3 forked (the log has another entry there).
 * KMS_ERR_DOMAIN_NOT_LOADED, store errors.
 */
kms_err_t kms_state_check_head(uint64_t seq, const uint8_t hash[32], int *result);

/*
 * Check a record just read (record.c): found 0 means the store has nothing under name; else
 * revision is what the record's AAD proves and blob its stored bytes (len). KMS_OK when it is
 * exactly what the index holds (or an unindexed absent record), else KMS_ERR_STALE_RECORD.
 * Names the log does not cover (the node-local sealed domain key) are never passed here.
 */
kms_err_t kms_state_check(const char *name, int found, uint64_t revision, const uint8_t *blob, size_t len);

/*
 * Persist a changed record: the store keeps blob under name (revision, replacing
 * expected_revision; 0: none) and appends this change's log entry in one transaction; only
 * then does the index change. Errors: KMS_ERR_CONFLICT (someone else changed it), the
 * store's, KMS_ERR_DOMAIN_NOT_LOADED, KMS_ERR_CRYPTO, KMS_ERR_ENCODE. After an error whose
 * outcome the host reports as unknown, the head is re-read: a change the host did make is
 * adopted, so the index never falls behind the store.
 */
kms_err_t kms_state_commit(const char *name, uint64_t expected_revision, uint64_t revision, const uint8_t *blob,
                           size_t len);

/* The revision the index holds for name (0: none). KMS_ERR_DOMAIN_NOT_LOADED. Used to replace a
 * record that no longer authenticates (damage) with a newer one. */
kms_err_t kms_state_revision(const char *name, uint64_t *revision);

/* Memory of the index (bytes) and records it holds, for benchmarks and docs. */
void kms_state_index_size(size_t *records, size_t *bytes);

#endif /* KMS_ENCLAVE_STATELOG_H */
