/*
 * audit.h - the signed, hash-chained audit log. Every operation run through kms_request_run on a
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
/*
 * Chain, sign and append the record whose body rec carries (request.c fills it): sets its
 * sequence number, previous hash and domain id. A no-op without an audit key. Serialized.
 * Errors: KMS_ERR_AUDIT_UNAVAILABLE (the append failed), KMS_ERR_AUDIT_CORRUPT (the host's
 * head does not verify), KMS_ERR_ENCODE, KMS_ERR_CRYPTO.
 */
kms_err_t kms_audit_record(AuditRecord *rec);

#endif /* KMS_ENCLAVE_AUDIT_H */
