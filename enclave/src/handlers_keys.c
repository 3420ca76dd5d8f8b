/* handlers_keys.c - key management: create, rotate, describe, enable/disable, public key. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "dispatch.h"
#include "handlers.h"
#include "keyspec.h"
#include "kms/limits.h"

/* A zeroed heap KeyRecord (42 KiB: too big for an enclave stack). */
static KeyRecord *record_new(void) { return calloc(1, sizeof(KeyRecord)); }

static void record_free(KeyRecord *rec)
{
    if (rec == NULL) return;
    OPENSSL_cleanse(rec, sizeof *rec);
    free(rec);
}

/* Append a freshly generated version to rec and make it current. */
static kms_err_t add_version(KeyRecord *rec, int64_t now)
{
    if (rec->versions_count >= KMS_MAX_KEY_VERSIONS_COUNT) return KMS_ERR_TOO_MANY_VERSIONS;
    uint32_t next = 0;
    for (pb_size_t i = 0; i < rec->versions_count; i++)
        if (rec->versions[i].version > next) next = rec->versions[i].version;
    KeyVersionMaterial *v = &rec->versions[rec->versions_count];
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_spec_generate(rec->spec, v->material.bytes, sizeof v->material.bytes, &len));
    v->material.size = (pb_size_t)len;
    v->version = next + 1;
    v->created_at = now;
    rec->versions_count++;
    rec->current_version = v->version;
    return KMS_OK;
}

/* Have the host persist rec (conditional on the revision it replaces), then answer. */
static kms_err_t commit(const KeyRecord *rec, Response *resp)
{
    KMS_RETURN_IF_ERR(kms_keystore_write(rec, rec->revision - 1));
    kms_fill_metadata(rec, resp);
    return KMS_OK;
}

kms_err_t kms_handle_create_key(const Request *req, Response *resp)
{
    const CreateKeyRequest *q = &req->op.create_key;
    if (!kms_spec_allows_usage(q->spec, q->usage)) return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = record_new();
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_id_new(rec->key_id), done);
    rec->spec = q->spec;
    rec->usage = q->usage;
    rec->state = KeyState_ENABLED;
    memcpy(rec->description, q->description, sizeof rec->description);
    rec->created_at = req->host_time;
    rec->revision = 1;
    KMS_GOTO_IF_ERR(err, add_version(rec, req->host_time), done);
    err = commit(rec, resp);
done:
    record_free(rec);
    return err;
}

/* Copy of key_id's current record, for a change. */
static kms_err_t record_for_change(const char *key_id, KeyRecord **out)
{
    if (!kms_key_id_valid(key_id)) return KMS_ERR_INVALID_ARGUMENT;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_keystore_acquire(key_id, &key));
    KeyRecord *rec = record_new();
    if (rec != NULL) memcpy(rec, kms_key_record(key), sizeof *rec);
    kms_keystore_release(key);
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    rec->revision++;
    *out = rec;
    return KMS_OK;
}

kms_err_t kms_handle_rotate_key(const Request *req, Response *resp)
{
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(record_for_change(req->op.rotate_key.key_id, &rec));
    kms_err_t err = rec->state == KeyState_ENABLED ? KMS_OK : KMS_ERR_KEY_DISABLED;
    if (err == KMS_OK) err = add_version(rec, req->host_time);
    if (err == KMS_OK) err = commit(rec, resp);
    record_free(rec);
    return err;
}

kms_err_t kms_handle_set_key_state(const Request *req, Response *resp)
{
    KeyState state = req->op.set_key_state.state;
    if (state != KeyState_ENABLED && state != KeyState_DISABLED) return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(record_for_change(req->op.set_key_state.key_id, &rec));
    rec->state = state;
    kms_err_t err = commit(rec, resp);
    record_free(rec);
    return err;
}

kms_err_t kms_handle_describe_key(const Request *req, Response *resp)
{
    const char *key_id = req->op.describe_key.key_id;
    if (!kms_key_id_valid(key_id)) return KMS_ERR_INVALID_ARGUMENT;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_keystore_acquire(key_id, &key));
    kms_fill_metadata(kms_key_record(key), resp);
    kms_keystore_release(key);
    return KMS_OK;
}

kms_err_t kms_handle_get_public_key(const Request *req, Response *resp)
{
    const GetPublicKeyRequest *q = &req->op.get_public_key;
    if (!kms_key_id_valid(q->key_id)) return KMS_ERR_INVALID_ARGUMENT;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_keystore_acquire(q->key_id, &key));
    const KeyRecord *rec = kms_key_record(key);
    GetPublicKeyResponse *r = &resp->result.get_public_key;
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL;
    size_t len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, 0, &mat, &pkey), done);
    err = KMS_ERR_INVALID_KEY_USAGE;
    if (pkey == NULL) goto done;
    err = q->format == PublicKeyFormat_PUBLIC_KEY_PEM
              ? kms_pkey_public_pem(pkey, r->public_key.bytes, sizeof r->public_key.bytes, &len)
              : kms_pkey_public_der(pkey, r->public_key.bytes, sizeof r->public_key.bytes, &len);
    if (err != KMS_OK) goto done;
    r->public_key.size = (pb_size_t)len;
    memcpy(r->key_id, rec->key_id, sizeof r->key_id);
    r->key_version = mat->version;
    r->spec = rec->spec;
    resp->which_result = Response_get_public_key_tag;
done:
    kms_keystore_release(key);
    return err;
}
