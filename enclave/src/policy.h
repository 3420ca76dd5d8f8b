/*
 * policy.h - per-key policy statements and grants (checked by authz.c), the operation class and
 * encryption context of the request running on this thread, and the key policy hash that
 * DescribeKey and audit records carry. Thread-safe (per-thread state only).
 */
#ifndef KMS_ENCLAVE_POLICY_H
#define KMS_ENCLAVE_POLICY_H

#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/* Set the operation class and context from the request (kms_process), or override them for one
 * step of a request that touches two keys (ReEncrypt). */
void kms_policy_begin(const Request *req);
void kms_policy_step(uint32_t op_class, const ContextEntry *ctx, pb_size_t ctx_count);

/* Does a policy statement or a live grant of rec allow `principal` the current operation? */
int kms_policy_allows(const KeyRecord *rec, const uint8_t principal[32]);

/* SHA-256 over the key's policy statements and export setting (all zeros on an encoding error). */
void kms_policy_hash(const KeyRecord *rec, uint8_t out[32]);

/* The policy hash of the last key authorized on this thread (for its audit record); 0 if none. */
int kms_policy_last_hash(uint8_t out[32]);
void kms_policy_note_key(const KeyRecord *rec);

#endif /* KMS_ENCLAVE_POLICY_H */
