/*
 * ocalls.h - the OCALLs trusted code makes (enclave/kms.edl "untrusted"), as the trusted edge
 * (edge.c) implements them: every buffer is marshalled through host memory and every result
 * is copied in and size-checked there. Unit tests link their own implementations instead.
 * Everything the host returns is untrusted: callers authenticate records and audit entries.
 * Thread-safe (each call marshals its own buffers). Sizes in bytes.
 */
#ifndef KMS_ENCLAVE_OCALLS_H
#define KMS_ENCLAVE_OCALLS_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

/* The record stored under key_id into blob (cap bytes): *len = 0 when there is none.
 * KMS_ERR_STORE_UNAVAILABLE when the OCALL fails or claims more than cap. */
kms_err_t kms_edge_store_get(const char *key_id, uint8_t *blob, size_t cap, size_t *len);

/* Persist blob under key_id if the stored revision is still expected_revision (0: none):
 * KMS_OK once durable, KMS_ERR_CONFLICT, or KMS_ERR_STORE_UNAVAILABLE. */
kms_err_t kms_edge_store_put(const char *key_id, uint64_t expected_revision, uint64_t revision,
                             const uint8_t *blob, size_t len);

/* Persist blob under key_id (as store_put) and append the state log entry (entry_len bytes)
 * with sequence number seq, in ONE transaction: both or neither. The host refuses a seq that is
 * not its last + 1. KMS_OK once durable, KMS_ERR_CONFLICT (revision or seq), or
 * KMS_ERR_STORE_UNAVAILABLE (the outcome is then unknown: statelog.c re-reads the head). */
kms_err_t kms_edge_store_commit(const char *key_id, uint64_t expected_revision, uint64_t revision,
                                const uint8_t *blob, size_t len, uint64_t seq, const uint8_t *entry,
                                size_t entry_len);

/* State log entry seq (0: the last one) into entry (cap bytes); *len 0 when there is none.
 * KMS_ERR_STORE_UNAVAILABLE when the OCALL fails or claims more than cap. */
kms_err_t kms_edge_state_log_get(uint64_t seq, uint8_t *entry, size_t cap, size_t *len);

/* Up to limit record names above `after`, NUL-terminated one after another into ids (cap
 * bytes), *len bytes used. KMS_ERR_STORE_UNAVAILABLE. */
kms_err_t kms_edge_store_list(const char *after, uint32_t limit, char *ids, size_t cap, size_t *len);

/* Queue audit entry seq (len bytes) for the host's next flush; *ticket names it for
 * kms_edge_audit_wait. follows: 1 when the entry chains on the entry this enclave queued just
 * before (the host must then refuse it unless that one is stored), 0 when it chains on the head
 * the enclave read. Returns at once: KMS_OK, KMS_ERR_CONFLICT (refused as out of sequence already)
 * or KMS_ERR_AUDIT_UNAVAILABLE. */
kms_err_t kms_edge_audit_enqueue(uint64_t seq, int follows, const uint8_t *entry, size_t len, uint64_t *ticket);

/* Wait until the queued entry is durable: KMS_OK, KMS_ERR_CONFLICT (refused as out of sequence: the
 * host has an entry seq already, another replica's, or the entry it follows is not stored) or
 * KMS_ERR_AUDIT_UNAVAILABLE (the store failed). Once per ticket. */
kms_err_t kms_edge_audit_wait(uint64_t ticket);

/* The last appended audit entry into entry (cap bytes), *len = 0 when there is none.
 * KMS_ERR_AUDIT_UNAVAILABLE. */
kms_err_t kms_edge_audit_head(uint8_t *entry, size_t cap, size_t *len);

#endif /* KMS_ENCLAVE_OCALLS_H */
