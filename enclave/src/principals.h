/*
 * principals.h - the domain state (principals and their roles), stored by the host encrypted
 * under the domain key under the reserved id "domain-state", cached here, and changed only
 * with a conditional write (persist, then answer). The state carries the domain's audit
 * private key: it never leaves this file except into the audit module. Thread-safe.
 */
#ifndef KMS_ENCLAVE_PRINCIPALS_H
#define KMS_ENCLAVE_PRINCIPALS_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/limits.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

#define KMS_DOMAIN_STATE_ID "domain-state"

/* The domain's auditors as its state holds them: raw X25519 public keys, and init's insecure
 * choice of clear audit bodies. Plain data (public keys only). */
typedef struct {
    uint8_t keys[KMS_MAX_AUDITORS_COUNT][32];
    size_t count;
    int clear_bodies; /* audit_bodies_in_clear_insecure: only with count 0 */
} kms_auditors;

/* Role of principal (ROLE_UNSPECIFIED when unknown or when the domain has no state);
 * KMS_ERR_PERMISSION_DENIED for a removed principal. */
kms_err_t kms_principal_role(const uint8_t principal[32], Role *role);

/* Create the first domain state (init): one admin, a new audit key and the auditors (checked by
 * the caller: kms_audit_check_auditors). Conditional on no state existing. */
kms_err_t kms_principals_create(const uint8_t admin[32], const char *admin_name, uint32_t threshold,
                                uint32_t share_count, const kms_auditors *auditors);

/* Replace the auditors (checked by the caller; at least one): ends clear bodies for good.
 * A conditional write, like every change. KMS_ERR_NOT_INITIALIZED_DOMAIN without a state. */
kms_err_t kms_principals_set_auditors(const kms_auditors *auditors);

/* The auditors of the stored state into out (count 0 for a state from before auditors existed).
 * KMS_ERR_NOT_INITIALIZED_DOMAIN when there is no domain state. */
kms_err_t kms_principals_auditors(kms_auditors *out);

/* Remove a principal for good (a tombstone). KMS_ERR_INVALID_ARGUMENT when it is unknown or the
 * last admin; KMS_ERR_RECORD_TOO_LARGE when the domain has no room for another tombstone. */
kms_err_t kms_principals_remove(const uint8_t id[32]);

/* Add or update a principal; KMS_ERR_INVALID_ARGUMENT for a bad role or id,
 * KMS_ERR_PERMISSION_DENIED for a removed one (its key can never come back). */
kms_err_t kms_principals_put(const uint8_t id[32], const char *name, Role role);

/* The principals into out (no secret of the domain state is copied).
 * KMS_ERR_NOT_INITIALIZED_DOMAIN when there is no domain state. */
kms_err_t kms_principals_list(PrincipalList *out);

/* The domain's audit private key (PKCS#8 DER) into der (cap bytes), *len 0 when the state has
 * none. The caller wipes it. KMS_ERR_NOT_INITIALIZED_DOMAIN when there is no domain state. */
kms_err_t kms_principals_audit_key(uint8_t *der, size_t cap, size_t *len);

/* Forget the cached state, wiped (after a domain reset or a change). */
void kms_principals_clear(void);

/* A change of the domain state by another module (replicas.c): fn edits a private copy; when it
 * returns KMS_OK the copy is persisted (conditional, state-logged) at the next revision.
 * KMS_ERR_NOT_INITIALIZED_DOMAIN, fn's error, or the write's. */
typedef kms_err_t (*kms_domain_state_edit_fn)(DomainState *st, void *arg);
kms_err_t kms_domain_state_edit(kms_domain_state_edit_fn fn, void *arg);
/* fn reads the cached state under its lock (it must not call back into this module). */
typedef void (*kms_domain_state_view_fn)(const DomainState *st, void *arg);
kms_err_t kms_domain_state_view(kms_domain_state_view_fn fn, void *arg);

#endif /* KMS_ENCLAVE_PRINCIPALS_H */
