/*
 * audit.h - the signed, hash-chained audit log. Every operation run through kms_request_run on a
 * domain with an audit key produces one AuditRecord: public sequence number, previous record
 * hash, time and domain id, and a body (operation, key, version, principal, outcome, policy and
 * context hashes) sealed to the domain's auditors (audit_epoch.h; docs/formats.md). Each record
 * is signed with the domain's Ed25519 audit key over everything, ciphertext included, and
 * made durable by the host before the enclave answers: if that fails, the request fails
 * (KMS_ERR_AUDIT_UNAVAILABLE). Group commit: a record is chained, signed and queued with the
 * host (audit_enqueue OCALL) under one mutex, so sequence numbers are gap-free in queue order,
 * and waited for (audit_wait OCALL) outside it, so concurrent requests share one flush. Each
 * queued entry after the first of a head read "follows" the one queued before it: the host must
 * refuse it unless that one is stored (kms.edl). A failed wait makes the head unknown: the next
 * record re-reads the host's head (the last durable entry) and chains on it, so the stored chain
 * has no gap or fork; records queued after the failed one fail too. Replicas share the chain: a
 * record the host refuses as out of sequence (another replica's entry took its place, at enqueue
 * or at wait) re-reads the verified head and is chained and queued again after it, up to 16 times
 * and only while that head moved past the one the record chained from; a refusal the head does not
 * show is KMS_ERR_AUDIT_UNAVAILABLE with no further record. A failing store gets one more try.
 * Thread-safe.
 */
#ifndef KMS_ENCLAVE_AUDIT_H
#define KMS_ENCLAVE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "principals.h"

/* Use this PKCS#8 Ed25519 key (from the domain state) for the chain; NULL forgets it. Either way
 * the auditors are forgotten (records seal to no one until kms_audit_set_auditors), the head is
 * read again and a new epoch opens at the next record. */
kms_err_t kms_audit_set_key(const uint8_t *pkcs8, size_t len);

/* Seal bodies to these auditors from the next record on (it opens a new epoch naming them); a
 * copy is kept (public keys only). Checked before (kms_audit_check_auditors, audit_epoch.h). */
void kms_audit_set_auditors(const kms_auditors *auditors);

/* The audit public key (32 bytes). KMS_ERR_NOT_INITIALIZED_DOMAIN when there is none. */
kms_err_t kms_audit_public_key(uint8_t pub[32]);

/*
 * Chain, seal, sign and append the record of body (request.c fills it; the caller wipes it) at
 * the enclave's time: sets the sequence number, previous hash and domain id. A no-op without an
 * audit key. Serialized. Every copy of the body and the record is wiped before returning.
 * Errors: KMS_ERR_AUDIT_UNAVAILABLE (the append failed), KMS_ERR_AUDIT_CORRUPT (the host's head
 * does not verify), KMS_ERR_INVALID_KEY (an auditor key cannot be sealed to), KMS_ERR_ENCODE,
 * KMS_ERR_CRYPTO, KMS_ERR_RANDOM, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t kms_audit_record(const AuditBody *body, int64_t time);

/* A queued record: the host's ticket and the head generation it chained on (plain data). */
typedef struct {
    uint64_t ticket;
    uint64_t gen;
    uint64_t base; /* the seq of the head that generation read */
    int queued; /* 0: nothing was queued (no audit key): waiting is a no-op */
} kms_audit_ticket;

/* kms_audit_record in two steps, without its retries: queue the record (chained, sealed, signed and
 * handed to the host under the lock; errors as kms_audit_record; *t is set either way), then wait
 * outside the lock until the host says it is durable (KMS_ERR_AUDIT_UNAVAILABLE otherwise, and the
 * head becomes unknown unless it was re-read since t was queued). Wait exactly once per queue.
 * Either step answers KMS_ERR_CONFLICT when the host refused the entry as out of sequence. */
kms_err_t kms_audit_queue(const AuditBody *body, int64_t time, kms_audit_ticket *t);
kms_err_t kms_audit_wait(const kms_audit_ticket *t);

#endif /* KMS_ENCLAVE_AUDIT_H */
