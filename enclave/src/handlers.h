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
/* KeyMetadata of rec into m. */
void kms_metadata_from(const KeyRecord *rec, KeyMetadata *m);

#endif /* KMS_ENCLAVE_HANDLERS_H */
