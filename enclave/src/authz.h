/*
 * authz.h - who is calling, and what they may do. Every decision about who may use which key
 * is taken here, inside the enclave, against identities the enclave authenticated itself:
 *  - the HOST (the call ECALL): host-level operations, and keys it created itself
 *    (host_owned), which protect nothing from the host and exist for embedding and benchmarks;
 *  - a session PRINCIPAL (SHA-256 of the client certificate's SubjectPublicKeyInfo, proven in
 *    the TLS handshake), whose role comes from the domain state: ADMIN manages keys and
 *    principals and may use every key; USER uses the keys granted to it.
 * The caller is per thread, set by the ECALL that runs the request. Thread-safe.
 */
#ifndef KMS_ENCLAVE_AUTHZ_H
#define KMS_ENCLAVE_AUTHZ_H

#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

typedef struct {
    int host;                 /* 1: the host's call ECALL; 0: an authenticated session */
    uint8_t principal[32];    /* session callers only */
} kms_caller;

/* Set (or clear with NULL) the caller of the request running on this thread. */
void kms_caller_set(const kms_caller *caller);
/* The current caller; never NULL while a request runs. */
const kms_caller *kms_caller_get(void);

/*
 * May the current caller run operation `op_tag` (a Request_*_tag)? Session callers get their
 * role from the domain state. Errors: KMS_ERR_PERMISSION_DENIED, KMS_ERR_NOT_INITIALIZED_DOMAIN
 * (a session before init may only init), KMS_ERR_STORE_UNAVAILABLE, KMS_ERR_RECORD_CORRUPT.
 */
kms_err_t kms_authz_op(pb_size_t op_tag);

/* May the current caller use (or manage) this key? KMS_ERR_PERMISSION_DENIED. */
kms_err_t kms_authz_key(const KeyRecord *rec);

/* 1 if the current caller is a session admin. */
int kms_caller_is_admin(void);

#endif /* KMS_ENCLAVE_AUTHZ_H */
