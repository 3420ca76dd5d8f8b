/*
 * policy.h - per-key policy statements and grants (checked by authz.c against the request's
 * context: its operation class, encryption context and time), and the key policy hash that
 * DescribeKey and audit records carry. Pure functions of their arguments; thread-safe.
 */
#ifndef KMS_ENCLAVE_POLICY_H
#define KMS_ENCLAVE_POLICY_H

#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "context.h"

/*
 * Does a policy statement or a live grant of rec allow `principal` ctx->op_class, given
 * ctx->context (every condition must appear exactly) and ctx->now (a grant with expires_at
 * is live strictly before it)? 1 or 0.
 */
int kms_policy_allows(const kms_ctx *ctx, const KeyRecord *rec, const uint8_t principal[32]);

/* SHA-256 over the key's policy statements and export setting (all zeros on an encoding error). */
void kms_policy_hash(const KeyRecord *rec, uint8_t out[32]);

#endif /* KMS_ENCLAVE_POLICY_H */
