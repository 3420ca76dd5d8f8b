/* handlers_import.c - importing an existing validator: CometBFT (key and last signed state) or Ethereum (a raw
 * BLS12_381 secret; its slashing protection follows with eth_slashing_import). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "handlers.h"
#include "eth_bls.h"
#include "eth_guard.h"
#include "keyspec.h"
#include "validator.h"

static kms_err_t record_from_import(int64_t now, const Request *req, const char *key_id, KeyRecord *rec)
{
    const ImportValidatorRequest *q = &req->op.import_validator;
    EVP_PKEY *pkey = NULL;
    size_t len = 0;
    KeyVersionMaterial *v = &rec->versions[0];
    if (q->spec == KeySpec_BLS12_381) { /* stored as it is: the 32-byte big-endian scalar */
        KMS_RETURN_IF_ERR(kms_bls_check_secret(q->private_key.bytes, q->private_key.size));
        memcpy(v->material.bytes, q->private_key.bytes, KMS_BLS_SECRET_LEN);
        v->material.size = KMS_BLS_SECRET_LEN;
    } else {
        KMS_RETURN_IF_ERR(kms_pkey_from_raw_private(kms_spec_pkey_kind(q->spec), q->private_key.bytes,
                                                    q->private_key.size, &pkey));
        kms_err_t err = kms_pkey_private_der(pkey, v->material.bytes, sizeof v->material.bytes, &len);
        EVP_PKEY_free(pkey);
        if (err != KMS_OK) return err;
        v->material.size = (pb_size_t)len;
    }
    v->version = 1;
    v->created_at = now;
    memcpy(rec->key_id, key_id, 37);
    rec->spec = q->spec;
    rec->usage = KeyUsage_VALIDATOR;
    rec->state = KeyState_ENABLED;
    memcpy(rec->description, q->description, sizeof rec->description);
    memcpy(rec->chain_id, q->chain_id, sizeof rec->chain_id);
    rec->allow_voluntary_exit = q->allow_voluntary_exit;
    rec->created_at = now;
    rec->revision = 1;
    rec->current_version = 1;
    rec->versions_count = 1;
    return KMS_OK;
}

kms_err_t kms_handle_import_validator(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ImportValidatorRequest *q = &req->op.import_validator;
    uint8_t gvr[32];
    int bls = q->spec == KeySpec_BLS12_381;
    if ((q->spec != KeySpec_ED25519 && q->spec != KeySpec_ECC_SECG_P256K1 && !bls) || q->chain_id[0] == '\0')
        return KMS_ERR_INVALID_ARGUMENT;
    /* An Ethereum key comes with no CometBFT state (its slashing protection: eth_slashing_import). */
    if (bls && (kms_eth_chain_root(q->chain_id, gvr) != KMS_OK || q->height != 0 || q->round != 0 || q->step != 0 ||
                q->sign_bytes.size != 0 || q->signature.size != 0))
        return KMS_ERR_INVALID_ARGUMENT;
    if (!bls && (q->allow_voluntary_exit || strlen(q->chain_id) > KMS_CMT_CHAIN_ID_MAX)) return KMS_ERR_INVALID_ARGUMENT;
    char key_id[37];
    KeyRecord *rec = calloc(1, sizeof *rec);
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_id_new(key_id), done);
    KMS_GOTO_IF_ERR(err, record_from_import(ctx->now, req, key_id, rec), done);
    /* The guard state first: a key without its state never signs. */
    if (bls) KMS_GOTO_IF_ERR(err, kms_eth_guard_create(key_id, gvr), done);
    else KMS_GOTO_IF_ERR(err, kms_vstate_create(key_id, q->chain_id, q->height, q->round, q->step,
                                                q->sign_bytes.bytes, q->sign_bytes.size, q->signature.bytes,
                                                q->signature.size), done);
    KMS_GOTO_IF_ERR(err, kms_keystore_write(rec, 0), done);
    kms_fill_metadata(rec, resp);
done:
    OPENSSL_cleanse(rec, sizeof *rec);
    free(rec);
    return err;
}
