/*
 * handlers.h - helpers shared by the handlers_*.c files. Trusted, thread-safe.
 */
#ifndef KMS_ENCLAVE_HANDLERS_H
#define KMS_ENCLAVE_HANDLERS_H

#include <stdint.h>

#include "keystore.h"
#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/* 1 if s is a canonical lower-case UUID (the only key id form the enclave issues). */
int kms_key_id_valid(const char *s);

/* A fresh random UUID v4 into out[37]. Errors: KMS_ERR_RANDOM. */
kms_err_t kms_key_id_new(char out[37]);

/*
 * Acquire key_id for an operation of `usage`: the id must be valid, the caller authorized
 * (KMS_ERR_PERMISSION_DENIED), the key ENABLED
 * (KMS_ERR_KEY_DISABLED) and made for that usage (KMS_ERR_INVALID_KEY_USAGE).
 * The caller releases *out.
 */
kms_err_t kms_acquire_for(const char *key_id, KeyUsage usage, kms_key **out);

/* Acquire key_id if the current caller may see or manage it (KMS_ERR_PERMISSION_DENIED). */
kms_err_t kms_acquire_authorized(const char *key_id, kms_key **out);

/* Fill resp's KeyMetadata from rec and select it as the result. */
void kms_fill_metadata(const KeyRecord *rec, Response *resp);
/*
 * AES-256-GCM under a SYMMETRIC_DEFAULT key (id or alias) into the self-describing ciphertext
 * format (docs/formats.md); resolved receives the key id, version the key version. The caller
 * must be authorized (kms_acquire_for is applied). Decrypt collapses format, key and tag
 * failures to KMS_ERR_INVALID_CIPHERTEXT; retired versions are KMS_ERR_KEY_VERSION_RETIRED.
 */
kms_err_t kms_sym_encrypt(const char *key_id, const uint8_t *pt, size_t pt_len, const ContextEntry *ctx,
                          pb_size_t ctx_count, uint8_t *ct, size_t cap, size_t *ct_len, char resolved[37],
                          uint32_t *version);
kms_err_t kms_sym_decrypt(const uint8_t *ct, size_t ct_len, const ContextEntry *ctx, pb_size_t ctx_count, uint8_t *pt,
                          size_t cap, size_t *pt_len, char key_id[37], uint32_t *version);

/* Key record changes (handlers_keys.c): a zeroed heap record and its wiping free; a new
 * version made current; a copy of the current record with the revision bumped (authorized);
 * persisting a changed record and answering with its metadata. */
KeyRecord *kms_record_new(void);
void kms_record_free(KeyRecord *rec);
kms_err_t kms_record_add_version(KeyRecord *rec, int64_t now);
kms_err_t kms_record_for_change(const char *key_id, KeyRecord **out);
kms_err_t kms_record_commit(const KeyRecord *rec, Response *resp);

/* KeyMetadata of rec into m. */
void kms_metadata_from(const KeyRecord *rec, KeyMetadata *m);

#endif /* KMS_ENCLAVE_HANDLERS_H */
