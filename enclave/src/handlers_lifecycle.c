/*
 * handlers_lifecycle.c - deletion with a pending window, destruction, key settings
 * (minimum decryption version, rotation period), scheduled rotation, aliases.
 * Time is the host's (ctx->now) and is not trusted for security: see
 * docs/key-lifecycle.md for what a host that lies about time can and cannot do.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "aliases.h"
#include "handlers.h"
#include "keystore.h"

#define DAY_SECONDS 86400
#define DEFAULT_WINDOW_DAYS 30u
#define MAX_ROTATION_DAYS 3650u

kms_err_t kms_handle_schedule_key_deletion(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ScheduleKeyDeletionRequest *q = &req->op.schedule_key_deletion;
    uint32_t days = q->pending_window_days == 0 ? DEFAULT_WINDOW_DAYS : q->pending_window_days;
    if (days < 7 || days > 30) return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, q->key_id, &rec));
    kms_err_t err = rec->state == KeyState_DESTROYED ? KMS_ERR_KEY_DESTROYED
                    : rec->state == KeyState_PENDING_DELETION ? KMS_ERR_KEY_PENDING_DELETION : KMS_OK;
    if (err == KMS_OK) {
        rec->state = KeyState_PENDING_DELETION;
        rec->deletion_date = ctx->now + (int64_t)days * DAY_SECONDS;
        err = kms_record_commit(rec, resp);
    }
    kms_record_free(rec);
    return err;
}

kms_err_t kms_handle_cancel_key_deletion(kms_ctx *ctx, const Request *req, Response *resp)
{
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, req->op.cancel_key_deletion.key_id, &rec));
    kms_err_t err = rec->state == KeyState_PENDING_DELETION ? KMS_OK
                    : rec->state == KeyState_DESTROYED      ? KMS_ERR_KEY_DESTROYED
                                                            : KMS_ERR_INVALID_ARGUMENT;
    if (err == KMS_OK) { /* as AWS KMS: a cancelled key comes back disabled */
        rec->state = KeyState_DISABLED;
        rec->deletion_date = 0;
        err = kms_record_commit(rec, resp);
    }
    kms_record_free(rec);
    return err;
}

/* Housekeeping may run on the host path for any key: it only does what the key's own
 * schedule already decided. */
static kms_err_t housekeeping_record(kms_ctx *ctx, const char *key_id, KeyRecord **out)
{
    if (!kms_ctx_is_host(ctx)) return kms_record_for_change(ctx, key_id, out);
    if (!kms_key_id_valid(key_id)) return KMS_ERR_INVALID_ARGUMENT;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_keystore_acquire(key_id, &key));
    KeyRecord *rec = kms_record_new();
    if (rec != NULL) memcpy(rec, kms_key_record(key), sizeof *rec);
    kms_keystore_release(key);
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    rec->revision++;
    *out = rec;
    return KMS_OK;
}

kms_err_t kms_handle_destroy_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(housekeeping_record(ctx, req->op.destroy_key.key_id, &rec));
    kms_err_t err = rec->state != KeyState_PENDING_DELETION ? KMS_ERR_INVALID_ARGUMENT
                    : ctx->now < rec->deletion_date   ? KMS_ERR_NOT_DUE
                                                            : KMS_OK;
    if (err == KMS_OK) { /* wipe every version: the record stays as a tombstone */
        OPENSSL_cleanse(rec->versions, sizeof rec->versions);
        rec->versions_count = 0;
        rec->current_version = 0;
        rec->state = KeyState_DESTROYED;
        err = kms_record_commit(rec, resp);
    }
    kms_record_free(rec);
    return err;
}

kms_err_t kms_handle_rotate_if_due(kms_ctx *ctx, const Request *req, Response *resp)
{
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(housekeeping_record(ctx, req->op.rotate_if_due.key_id, &rec));
    int64_t due = rec->last_rotated_at + (int64_t)rec->rotation_period_days * DAY_SECONDS;
    kms_err_t err = rec->usage == KeyUsage_VALIDATOR                                 ? KMS_ERR_INVALID_KEY_USAGE
                    : rec->state != KeyState_ENABLED                                 ? KMS_ERR_KEY_DISABLED
                    : rec->rotation_period_days == 0 || ctx->now < due ? KMS_ERR_NOT_DUE
                                                                                     : KMS_OK;
    if (err == KMS_OK) err = kms_record_add_version(rec, ctx->now);
    if (err == KMS_OK) err = kms_record_commit(rec, resp);
    kms_record_free(rec);
    return err;
}

kms_err_t kms_handle_update_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    const UpdateKeyRequest *q = &req->op.update_key;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, q->key_id, &rec));
    kms_err_t err = rec->state == KeyState_DESTROYED ? KMS_ERR_KEY_DESTROYED : KMS_OK;
    if (err == KMS_OK && q->set_min_decrypt_version) {
        if (q->min_decrypt_version > rec->current_version) err = KMS_ERR_INVALID_ARGUMENT; /* never retire the current */
        else rec->min_decrypt_version = q->min_decrypt_version;
    }
    if (err == KMS_OK && q->set_rotation_period) {
        if (q->rotation_period_days > MAX_ROTATION_DAYS || rec->spec != KeySpec_SYMMETRIC_DEFAULT)
            err = KMS_ERR_INVALID_ARGUMENT;
        else rec->rotation_period_days = q->rotation_period_days;
    }
    if (err == KMS_OK && q->set_description) memcpy(rec->description, q->description, sizeof rec->description);
    if (err == KMS_OK) err = kms_record_commit(rec, resp);
    kms_record_free(rec);
    return err;
}

static kms_err_t alias_answer(Response *resp)
{
    resp->which_result = Response_aliases_tag;
    return kms_alias_list(&resp->result.aliases, sizeof resp->result.aliases.aliases /
                                                     sizeof resp->result.aliases.aliases[0]);
}

kms_err_t kms_handle_create_alias(kms_ctx *ctx, const Request *req, Response *resp)
{
    const AliasRequest *q = &req->op.create_alias;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, q->key_id, &key)); /* the target exists and is ours */
    kms_err_t err = kms_alias_write(q->alias, kms_key_record(key)->key_id, 1);
    kms_keystore_release(key);
    return err == KMS_OK ? alias_answer(resp) : err;
}

kms_err_t kms_handle_update_alias(kms_ctx *ctx, const Request *req, Response *resp)
{
    const AliasRequest *q = &req->op.update_alias;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, q->key_id, &key));
    kms_err_t err = kms_alias_write(q->alias, kms_key_record(key)->key_id, 0);
    kms_keystore_release(key);
    return err == KMS_OK ? alias_answer(resp) : err;
}

kms_err_t kms_handle_delete_alias(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    KMS_RETURN_IF_ERR(kms_alias_delete(req->op.delete_alias.alias));
    return alias_answer(resp);
}

kms_err_t kms_handle_list_aliases(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    (void)req;
    return alias_answer(resp);
}
