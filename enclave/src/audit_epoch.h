/*
 * audit_epoch.h - the confidential half of the audit chain, for audit.c: epoch keys and record
 * bodies (docs/formats.md, "Audit records").
 *
 * An epoch key (32 random bytes) seals the bodies of consecutive records with AES-256-GCM (nonce
 * 0^4 || seq u64 BE, AAD = the record's public part); the record that opens an epoch carries the
 * key HPKE-sealed to each auditor. Nonces stay unique because an epoch seals only strictly
 * increasing sequence numbers (checked) and is closed whenever audit.c re-reads the host's head.
 *
 * Not thread-safe: audit.c calls every function under its lock. An epoch holds a secret key:
 * kms_audit_epoch_close wipes it.
 */
#ifndef KMS_ENCLAVE_AUDIT_EPOCH_H
#define KMS_ENCLAVE_AUDIT_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "principals.h"

/* Bodies an epoch seals before the next record opens a new one (so an export of any window of
 * the chain needs at most this many records before it to find its epoch key). */
#define KMS_AUDIT_EPOCH_RECORDS 1024u

typedef struct {
    uint8_t key[32];
    uint64_t seq;     /* the record that opened it; 0: no epoch is open */
    uint64_t last;    /* the last sequence number sealed under it */
    uint32_t records; /* bodies sealed under it */
} kms_audit_epoch;

/* 1 when the record numbered seq must open a new epoch: none is open, it sealed its share of
 * records, or seq does not follow the last one it sealed. */
int kms_audit_epoch_due(const kms_audit_epoch *ep, uint64_t seq);

/*
 * Open a new epoch at rec->seq (rec->domain_id set, 16 bytes): a fresh key, HPKE-sealed to each
 * of auditors (0..KMS_MAX_AUDITORS_COUNT keys; with none, no one can read the epoch) into
 * rec->epoch_keys. Sets rec->epoch = rec->seq. The previous epoch is wiped first; on failure none
 * is open. Errors: KMS_ERR_RANDOM, KMS_ERR_INVALID_KEY (an auditor key is not usable),
 * KMS_ERR_NOT_INITIALIZED_DOMAIN (no domain id), KMS_ERR_CRYPTO.
 */
kms_err_t kms_audit_epoch_open(kms_audit_epoch *ep, const kms_auditors *auditors, AuditRecord *rec);

/*
 * Seal body into rec->sealed_body under the open epoch; rec's public part (seq, prev_hash, time,
 * domain_id) must be final. Sets rec->epoch. The encoded body is wiped. Errors: KMS_ERR_ENCODE,
 * KMS_ERR_CRYPTO (also when no epoch is open or seq is not after its last: never reuse a nonce).
 */
kms_err_t kms_audit_epoch_seal(kms_audit_epoch *ep, const AuditBody *body, AuditRecord *rec);

/* Wipe the epoch key and forget the epoch. Idempotent. */
void kms_audit_epoch_close(kms_audit_epoch *ep);

/*
 * Check a set of auditor keys before a domain adopts it: 1..KMS_MAX_AUDITORS_COUNT distinct keys
 * (or none with clear_bodies, init's insecure choice), each one an X25519 point HPKE can seal to
 * (a trial seal: a low-order point gives an all-zero DH). KMS_ERR_INVALID_ARGUMENT for the count,
 * a duplicate or clear bodies with keys; KMS_ERR_INVALID_KEY for an unusable key.
 */
kms_err_t kms_audit_check_auditors(const kms_auditors *auditors);

#endif /* KMS_ENCLAVE_AUDIT_EPOCH_H */
