/*
 * authz.h - who may do what. Every decision about who may use which key is taken here,
 * inside the enclave, against the caller its transport authenticated (request.h):
 *  - the HOST (the call ECALL) runs the operations the table allows it, on keys it created
 *    itself (host_owned: they protect nothing from the host and exist for embedding and
 *    benchmarks) and on no other key;
 *  - a session PRINCIPAL gets its role from the domain state: ADMIN manages keys and
 *    principals and may use every key; USER uses the keys granted to it or allowed by a key's
 *    policy; a principal without a role may only read the enclave's identity;
 *  - nobody (KMS_CALLER_NONE) may do anything.
 * Authorization comes before any key state: a principal without rights on a key learns
 * neither its state nor whether it exists. Thread-safe.
 */
#ifndef KMS_ENCLAVE_AUTHZ_H
#define KMS_ENCLAVE_AUTHZ_H

#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "context.h"

/*
 * The rule of the operation table, as a pure function: may a caller of `kind` with `role`
 * (ROLE_UNSPECIFIED when it has none) run an operation whose allow bits are `allow`, when the
 * enclave has (domain_loaded 1) or has not a domain? KMS_OK, KMS_ERR_PERMISSION_DENIED,
 * KMS_ERR_NOT_INITIALIZED_DOMAIN (a session before init may only init, recover, read the
 * identity) or KMS_ERR_DOMAIN_ALREADY_LOADED (init or recover on a domain).
 */
kms_err_t kms_authz_decide(unsigned int allow, kms_caller_kind kind, int domain_loaded, Role role);

/*
 * May ctx's caller run an operation whose allow bits are `allow`? Resolves the principal's
 * role from the domain state into ctx->role (when the operation needs one). Errors: as
 * kms_authz_decide, and the domain state's (KMS_ERR_STORE_UNAVAILABLE, KMS_ERR_RECORD_CORRUPT).
 */
kms_err_t kms_authz_op(kms_ctx *ctx, unsigned int allow);

/*
 * May ctx's caller use (or manage) the key of rec for ctx->op_class in ctx->context? Notes
 * the key's policy hash in ctx for the audit record. KMS_OK or KMS_ERR_PERMISSION_DENIED.
 */
kms_err_t kms_authz_key(kms_ctx *ctx, const KeyRecord *rec);

/* 1 if ctx's caller is a session principal with role ADMIN (after kms_authz_op). */
int kms_ctx_is_admin(const kms_ctx *ctx);

/*
 * What a caller without rights sees for a key or alias that does not exist: the host and
 * admins learn KMS_ERR_KEY_NOT_FOUND / KMS_ERR_ALIAS_NOT_FOUND, anyone else
 * KMS_ERR_PERMISSION_DENIED (no existence oracle). Other codes pass through.
 */
kms_err_t kms_authz_hide_absence(const kms_ctx *ctx, kms_err_t err);

#endif /* KMS_ENCLAVE_AUTHZ_H */
