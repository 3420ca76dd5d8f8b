/*
 * audit.h - the signed, hash-chained audit log. Every operation run through kms_process on a
 * domain with an audit key produces one AuditRecord (operation, key, version, principal,
 * outcome, sequence number, previous record hash), signed with the domain's Ed25519 audit key,
 * and appended by the host (audit_append OCALL) before the enclave answers: if the append
 * fails, the request fails (KMS_ERR_AUDIT_UNAVAILABLE). Serialized by one mutex, so sequence
 * numbers are gap-free in append order. Thread-safe.
 */
#ifndef KMS_ENCLAVE_AUDIT_H
#define KMS_ENCLAVE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "request.h"

/* Use this PKCS#8 Ed25519 key (from the domain state) for the chain; NULL forgets it. */
kms_err_t kms_audit_set_key(const uint8_t *pkcs8, size_t len);
/* The audit public key (32 bytes). KMS_ERR_NOT_INITIALIZED_DOMAIN when there is none. */
kms_err_t kms_audit_public_key(uint8_t pub[32]);
/*
 * Record the outcome of req run in ctx: operation, the key ids the operation table names
 * (resp carries the resolved ones), the key version, the caller, the key's policy hash, the
 * time. A no-op without an audit key. Errors: KMS_ERR_AUDIT_UNAVAILABLE (the append failed),
 * KMS_ERR_AUDIT_CORRUPT (the host's head does not verify), KMS_ERR_ENCODE, KMS_ERR_CRYPTO.
 */
kms_err_t kms_audit_record(const kms_ctx *ctx, const Request *req, const Response *resp, kms_err_t outcome);

/* The record kms_audit_record would sign for seq and prev (32 bytes), without the chain. */
void kms_audit_fill(const kms_ctx *ctx, const Request *req, const Response *resp, kms_err_t outcome,
                    AuditRecord *rec);

#endif /* KMS_ENCLAVE_AUDIT_H */
