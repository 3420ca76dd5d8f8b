/*
 * handlers.h - the handlers (one per operation of operations.def, kms_handle_<name>) and the
 * helpers they share. A handler runs after kms_request_run authorized its caller for the
 * operation; it authorizes keys itself (kms_acquire_*), fills resp and returns its outcome;
 * changes are persisted through the store before it answers. Trusted, thread-safe.
 */
#ifndef KMS_ENCLAVE_HANDLERS_H
#define KMS_ENCLAVE_HANDLERS_H

#include <stdint.h>

#include "crypto.h"
#include "keystore.h"
#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "context.h"

/* kms_err_t kms_handle_<name>(kms_ctx *ctx, const Request *req, Response *resp), every operation. */
#define KMS_OP(name, allow, audit, cls, key, source, context) \
    kms_err_t kms_handle_##name(kms_ctx *ctx, const Request *req, Response *resp);
#include "operations.def"
#undef KMS_OP

/*
 * Acquire key_id (or "alias/<name>") for an operation of `usage`: the caller must be
 * authorized for the key (KMS_ERR_PERMISSION_DENIED, also for a key or alias that does not
 * exist when the caller is neither the host nor an admin), the key ENABLED (KMS_ERR_KEY_DISABLED,
 * _PENDING_DELETION, _DESTROYED) and made for that usage (KMS_ERR_INVALID_KEY_USAGE).
 * Authorization comes first: a caller without rights learns nothing of the key's state.
 * The caller releases *out.
 */
kms_err_t kms_acquire_for(kms_ctx *ctx, const char *key_id, KeyUsage usage, kms_key **out);

/* Acquire key_id (or an alias) if ctx's caller may see or manage it (as above, without the
 * state and usage checks). */
kms_err_t kms_acquire_authorized(kms_ctx *ctx, const char *key_id, kms_key **out);

/* The key id a self-describing ciphertext's header claims (docs/formats.md) into key_id[37].
 * KMS_ERR_INVALID_CIPHERTEXT when the header is not well formed. */
kms_err_t kms_ciphertext_key_id(const uint8_t *ct, size_t len, char key_id[37]);

/* Fill resp's KeyMetadata from rec and select it as the result. */
void kms_fill_metadata(const KeyRecord *rec, Response *resp);
/*
 * AES-256-GCM under a SYMMETRIC_DEFAULT key (id or alias) into the self-describing ciphertext
 * format (docs/formats.md); resolved receives the key id, version the key version. The caller
 * must be authorized (kms_acquire_for is applied). Decrypt collapses format, key and tag
 * failures to KMS_ERR_INVALID_CIPHERTEXT; retired versions are KMS_ERR_KEY_VERSION_RETIRED.
 */
kms_err_t kms_sym_encrypt(kms_ctx *ctx, const char *key_id, const uint8_t *pt, size_t pt_len, const ContextEntry *ec,
                          pb_size_t ec_count, uint8_t *ct, size_t cap, size_t *ct_len, char resolved[37],
                          uint32_t *version);

/*
 * The same in steps, for many messages under one key (a batch): kms_sym_sealer_open acquires key_id
 * for encryption (as kms_sym_encrypt: authorized, ENABLED, SYMMETRIC_DEFAULT) with its current version
 * and that version's AES-GCM key schedule; kms_sym_seal writes one self-describing ciphertext with the
 * given random IV (never reused: the caller draws a fresh one per message); kms_sym_sealer_close
 * releases the key and wipes the schedule (also after a failed open).
 */
typedef struct {
    kms_key *key;
    const KeyVersionMaterial *mat;
    EVP_CIPHER_CTX *gcm;
} kms_sym_sealer;
kms_err_t kms_sym_sealer_open(kms_ctx *ctx, const char *key_id, kms_sym_sealer *s);
kms_err_t kms_sym_seal(const kms_sym_sealer *s, const uint8_t iv[KMS_GCM_IV_LEN], const uint8_t *pt, size_t pt_len,
                       const ContextEntry *ec, pb_size_t ec_count, uint8_t *ct, size_t cap, size_t *ct_len);
void kms_sym_sealer_close(kms_sym_sealer *s);

kms_err_t kms_sym_decrypt(kms_ctx *ctx, const uint8_t *ct, size_t ct_len, const ContextEntry *ec, pb_size_t ec_count, uint8_t *pt,
                          size_t cap, size_t *pt_len, char key_id[37], uint32_t *version);

/* Key record changes (handlers_keys.c): a zeroed heap record and its wiping free; a new
 * version made current; a copy of the current record with the revision bumped (authorized);
 * persisting a changed record and answering with its metadata. */
KeyRecord *kms_record_new(void);
void kms_record_free(KeyRecord *rec);
kms_err_t kms_record_add_version(KeyRecord *rec, int64_t now);
kms_err_t kms_record_for_change(kms_ctx *ctx, const char *key_id, KeyRecord **out);
kms_err_t kms_record_commit(const KeyRecord *rec, Response *resp);

/* Check and open the state of the domain whose key was just installed (fresh: a new domain),
 * and bind its id into the RA-TLS claims. detail names a mismatch, or the first damaged record
 * (*damaged counts them; may be NULL) (statelog.h). */
kms_err_t kms_domain_open_state(int fresh, char *detail, size_t cap, size_t *damaged);

/* Forget the loaded domain entirely (key, state, caches, audit key): a domain that could not be
 * set up or checked is not served. */
void kms_domain_forget(void);

/* Start auditing with the audit key of the stored domain state (handlers_domain.c): after
 * init, recovery and loading a domain key. KMS_ERR_NOT_INITIALIZED_DOMAIN without a state. */
kms_err_t kms_activate_audit(void);

/* Before a request that depends on the domain's state (docs/cluster.md): follow the shared state log
 * (other replicas' changes), drop what they changed from the caches, and refuse when this replica is
 * not approved (KMS_ERR_REPLICA_NOT_APPROVED). */
kms_err_t kms_cluster_gate(void);

/*
 * The canonical encoding of an encryption context (handlers_data.c): what a ciphertext's AAD ends
 * with, and what an audit body's context hash covers (docs/formats.md): count u8, then per pair
 * sorted by key (bytewise, a prefix first): key length u16 BE | key | value length u16 BE | value.
 * count is at most 16 and every entry within its nanopb bounds (as decoded). Writes into out
 * (KMS_CONTEXT_MAX_LEN bytes) and returns the length; *duplicates is 1 when two entries share a
 * key (whoever binds a context refuses that), else 0. Pure; thread-safe.
 */
#define KMS_CONTEXT_MAX_LEN (1u + 16u * (2u + 128u + 2u + 256u))
size_t kms_context_encode(const ContextEntry *ctx, pb_size_t count, uint8_t *out, int *duplicates);

/* KeyMetadata of rec into m. */
void kms_metadata_from(const KeyRecord *rec, KeyMetadata *m);

#endif /* KMS_ENCLAVE_HANDLERS_H */
