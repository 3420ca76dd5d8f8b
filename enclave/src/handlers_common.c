/* handlers_common.c - key ids, key acquisition for an operation, metadata. */
#include <string.h>

#include "aliases.h"
#include "authz.h"
#include "crypto.h"
#include "policy.h"
#include "handlers.h"

kms_err_t kms_acquire_authorized(kms_ctx *ctx, const char *key_id, kms_key **out)
{
    char resolved[37];
    if (strncmp(key_id, KMS_ALIAS_PREFIX, sizeof KMS_ALIAS_PREFIX - 1) == 0) {
        KMS_RETURN_IF_ERR(kms_authz_hide_absence(ctx, kms_alias_resolve(key_id, resolved)));
        key_id = resolved;
    }
    if (!kms_key_id_valid(key_id)) return KMS_ERR_INVALID_ARGUMENT;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_authz_hide_absence(ctx, kms_keystore_acquire(key_id, &key)));
    kms_err_t err = kms_authz_key(ctx, kms_key_record(key)); /* before anything about the key's state */
    if (err != KMS_OK) {
        kms_keystore_release(key);
        return err;
    }
    *out = key;
    return KMS_OK;
}

kms_err_t kms_acquire_for(kms_ctx *ctx, const char *key_id, KeyUsage usage, kms_key **out)
{
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, key_id, &key));
    const KeyRecord *rec = kms_key_record(key);
    kms_err_t err = KMS_OK;
    if (rec->state == KeyState_PENDING_DELETION) err = KMS_ERR_KEY_PENDING_DELETION;
    else if (rec->state == KeyState_DESTROYED) err = KMS_ERR_KEY_DESTROYED;
    else if (rec->state != KeyState_ENABLED) err = KMS_ERR_KEY_DISABLED;
    else if (rec->usage != usage) err = KMS_ERR_INVALID_KEY_USAGE;
    if (err != KMS_OK) {
        kms_keystore_release(key);
        return err;
    }
    *out = key;
    return KMS_OK;
}

void kms_fill_metadata(const KeyRecord *rec, Response *resp)
{
    resp->which_result = Response_key_metadata_tag;
    kms_metadata_from(rec, &resp->result.key_metadata);
}

void kms_metadata_from(const KeyRecord *rec, KeyMetadata *m)
{
    memcpy(m->key_id, rec->key_id, sizeof m->key_id);
    m->spec = rec->spec;
    m->usage = rec->usage;
    m->state = rec->state;
    memcpy(m->description, rec->description, sizeof m->description);
    m->created_at = rec->created_at;
    m->current_version = rec->current_version;
    m->version_count = rec->versions_count;
    m->revision = rec->revision;
    m->deletion_date = rec->deletion_date;
    m->min_decrypt_version = rec->min_decrypt_version;
    m->rotation_period_days = rec->rotation_period_days;
    m->last_rotated_at = rec->last_rotated_at;
    m->origin = rec->origin;
    m->export_policy = rec->export_policy;
    kms_policy_hash(rec, m->policy_hash.bytes);
    m->policy_hash.size = 32;
    memcpy(m->chain_id, rec->chain_id, sizeof m->chain_id);
}
