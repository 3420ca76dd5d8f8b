/*
 * aliases.h - "alias/<name>" names for keys, usable wherever a key id is. Each alias is a
 * record (id = the alias itself) encrypted under the domain key; changes are conditional
 * writes. Thread-safe. Names: "alias/" then 1..34 of [A-Za-z0-9/_-].
 */
#ifndef KMS_ENCLAVE_ALIASES_H
#define KMS_ENCLAVE_ALIASES_H

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

#define KMS_ALIAS_PREFIX "alias/"

int kms_alias_name_valid(const char *name);
/* key_id of an alias. KMS_ERR_ALIAS_NOT_FOUND, KMS_ERR_RECORD_CORRUPT, KMS_ERR_INVALID_ARGUMENT. */
kms_err_t kms_alias_resolve(const char *name, char key_id[37]);
/* Create (must not exist), update (must exist) or delete (key_id NULL) an alias. */
kms_err_t kms_alias_write(const char *name, const char *key_id, int create);
kms_err_t kms_alias_delete(const char *name);
/* Up to max aliases, in name order. */
kms_err_t kms_alias_list(AliasList *out, pb_size_t max);

#endif /* KMS_ENCLAVE_ALIASES_H */
