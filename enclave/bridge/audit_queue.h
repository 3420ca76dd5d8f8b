/*
 * audit_queue.h - the audit_enqueue and audit_wait OCALLs answered in C (audit_queue.c), for the bridge
 * (bridge.c): an ECALL thread queues its audit entry and sleeps until it is settled, without entering
 * Python; one host thread (kms.enclave.bridge, the audit flusher) takes what is queued, in order, appends
 * it through the store's group commit, and settles each entry with its outcome.
 *
 * Outcomes are the OCALLs' own: 0 durable, 1 refused as out of sequence, -1 failed. Thread-safe; close
 * wakes the flusher (take returns -1) and fails every entry still queued or unsettled. Sizes in bytes.
 */
#ifndef KMS_BRIDGE_AUDIT_QUEUE_H
#define KMS_BRIDGE_AUDIT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* The largest entry the queue accepts (an AuditEntry is at most a few KiB). */
#define KMS_AUDIT_QUEUE_ENTRY_MAX 65536u
/* What take writes before each entry: ticket, seq (uint64, little-endian), follows, length (uint32). */
#define KMS_AUDIT_QUEUE_HEADER 24u

typedef struct kms_audit_queue kms_audit_queue;

kms_audit_queue *kms_audit_queue_new(void);
/* Free the queue and every entry in it. Nothing may use it any more. */
void kms_audit_queue_free(kms_audit_queue *q);

/* Queue entry (len bytes, copied) and name it *ticket: 0, or -1 (closed, too large, out of memory). */
int kms_audit_queue_put(kms_audit_queue *q, uint64_t seq, int follows, const uint8_t *entry, size_t len,
                        uint64_t *ticket);
/* Sleep until ticket is settled; its outcome (-1 also for an unknown ticket, or once closed). Once per ticket. */
int kms_audit_queue_wait(kms_audit_queue *q, uint64_t ticket);

/* The flusher: sleep until entries are queued, then move as many as fit (at least one) into buf (cap
 * bytes, at least KMS_AUDIT_QUEUE_HEADER + KMS_AUDIT_QUEUE_ENTRY_MAX), each a header and its bytes, in
 * queue order; *used bytes written. Returns how many, or -1 once closed. */
int kms_audit_queue_take(kms_audit_queue *q, uint8_t *buf, size_t cap, size_t *used);
/* Settle n taken entries: tickets[i] gets outcomes[i] and its thread wakes. */
void kms_audit_queue_settle(kms_audit_queue *q, const uint64_t *tickets, const int *outcomes, size_t n);
/* Stop: take returns -1 from now on, waiting and later puts fail. */
void kms_audit_queue_close(kms_audit_queue *q);

#endif /* KMS_BRIDGE_AUDIT_QUEUE_H */
