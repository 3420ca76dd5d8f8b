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

/* Use this PKCS#8 Ed25519 key (from the domain state) for the chain; NULL forgets it. */
kms_err_t kms_audit_set_key(const uint8_t *pkcs8, size_t len);
/* The audit public key (32 bytes). KMS_ERR_NOT_INITIALIZED_DOMAIN when there is none. */
kms_err_t kms_audit_public_key(uint8_t pub[32]);
/* Record req's outcome (resp carries resolved key ids). A no-op without an audit key. */
kms_err_t kms_audit_record(const Request *req, const Response *resp, kms_err_t outcome);

/* The audit OCALLs (trusted edge). */
kms_err_t kms_edge_audit_append(uint64_t seq, const uint8_t *entry, size_t len);
kms_err_t kms_edge_audit_head(uint8_t *entry, size_t cap, size_t *len);

#endif /* KMS_ENCLAVE_AUDIT_H */
