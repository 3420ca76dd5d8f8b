/* handlers_import.c - importing an existing CometBFT validator (key and last signed state). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "handlers.h"
#include "keyspec.h"
#include "validator.h"

static kms_err_t record_from_import(int64_t now, const Request *req, const char *key_id, KeyRecord *rec)
{
    const ImportValidatorRequest *q = &req->op.import_validator;
    EVP_PKEY *pkey = NULL;
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_pkey_from_raw_private(kms_spec_pkey_kind(q->spec), q->private_key.bytes,
                                                q->private_key.size, &pkey));
    KeyVersionMaterial *v = &rec->versions[0];
    kms_err_t err = kms_pkey_private_der(pkey, v->material.bytes, sizeof v->material.bytes, &len);
    EVP_PKEY_free(pkey);
    if (err != KMS_OK) return err;
    v->material.size = (pb_size_t)len;
    v->version = 1;
    v->created_at = now;
    memcpy(rec->key_id, key_id, 37);
    rec->spec = q->spec;
    rec->usage = KeyUsage_VALIDATOR;
    rec->state = KeyState_ENABLED;
    memcpy(rec->description, q->description, sizeof rec->description);
    memcpy(rec->chain_id, q->chain_id, sizeof rec->chain_id);
    rec->created_at = now;
    rec->revision = 1;
    rec->current_version = 1;
    rec->versions_count = 1;
    return KMS_OK;
}

kms_err_t kms_handle_import_validator(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ImportValidatorRequest *q = &req->op.import_validator;
    if ((q->spec != KeySpec_ED25519 && q->spec != KeySpec_ECC_SECG_P256K1) || q->chain_id[0] == '\0')
        return KMS_ERR_INVALID_ARGUMENT;
    char key_id[37];
    KeyRecord *rec = calloc(1, sizeof *rec);
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_id_new(key_id), done);
    KMS_GOTO_IF_ERR(err, record_from_import(ctx->now, req, key_id, rec), done);
    /* The guard state first: a key without its state never signs. */
    KMS_GOTO_IF_ERR(err, kms_vstate_create(key_id, q->chain_id, q->height, q->round, q->step, q->sign_bytes.bytes,
                                           q->sign_bytes.size, q->signature.bytes, q->signature.size), done);
    KMS_GOTO_IF_ERR(err, kms_keystore_write(rec, 0), done);
    kms_fill_metadata(rec, resp);
done:
    OPENSSL_cleanse(rec, sizeof *rec);
    free(rec);
    return err;
}
