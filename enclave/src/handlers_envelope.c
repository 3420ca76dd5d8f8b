/* handlers_envelope.c - data keys, data key pairs, ReEncrypt, and batches with a status per item. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "handlers.h"
#include "keyspec.h"
#include "kms/limits.h"

#define BATCH_PLAINTEXT_MAX 64u

kms_err_t kms_handle_generate_data_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    const GenerateDataKeyRequest *q = &req->op.generate_data_key;
    GenerateDataKeyResponse *r = &resp->result.generate_data_key;
    uint32_t n = q->number_of_bytes == 0 ? 32 : q->number_of_bytes;
    uint8_t dk[64];
    size_t len = 0;
    if (n < 16 || n > sizeof dk) return KMS_ERR_INVALID_ARGUMENT;
    kms_err_t err = kms_random(dk, n);
    if (err == KMS_OK)
        err = kms_sym_encrypt(ctx, q->key_id, dk, n, q->context, q->context_count, r->ciphertext.bytes,
                              sizeof r->ciphertext.bytes, &len, r->key_id, &r->key_version);
    if (err == KMS_OK) {
        r->ciphertext.size = (pb_size_t)len;
        if (!q->without_plaintext) memcpy(r->plaintext.bytes, dk, n), r->plaintext.size = (pb_size_t)n;
        resp->which_result = Response_generate_data_key_tag;
    }
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}

kms_err_t kms_handle_generate_data_key_pair(kms_ctx *ctx, const Request *req, Response *resp)
{
    const GenerateDataKeyPairRequest *q = &req->op.generate_data_key_pair;
    GenerateDataKeyPairResponse *r = &resp->result.generate_data_key_pair;
    kms_pkey_kind kind = kms_spec_pkey_kind(q->pair_spec);
    uint8_t der[sizeof r->private_key_plaintext.bytes];
    size_t der_len = 0, len = 0;
    EVP_PKEY *pair = NULL;
    if (q->pair_spec <= KeySpec_KEY_SPEC_UNSPECIFIED || q->pair_spec > _KeySpec_MAX) return KMS_ERR_INVALID_ARGUMENT;
    if (kind == 0 || kind == KMS_PKEY_RSA_3072 || kind == KMS_PKEY_RSA_4096) return KMS_ERR_UNSUPPORTED;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_pkey_generate(kind, &pair), done);
    KMS_GOTO_IF_ERR(err, kms_pkey_private_der(pair, der, sizeof der, &der_len), done);
    KMS_GOTO_IF_ERR(err, kms_pkey_public_der(pair, r->public_key.bytes, sizeof r->public_key.bytes, &len), done);
    r->public_key.size = (pb_size_t)len;
    KMS_GOTO_IF_ERR(err, kms_sym_encrypt(ctx, q->key_id, der, der_len, q->context, q->context_count,
                                         r->private_key_ciphertext.bytes, sizeof r->private_key_ciphertext.bytes,
                                         &len, r->key_id, &r->key_version), done);
    r->private_key_ciphertext.size = (pb_size_t)len;
    if (!q->without_plaintext) {
        memcpy(r->private_key_plaintext.bytes, der, der_len);
        r->private_key_plaintext.size = (pb_size_t)der_len;
    }
    resp->which_result = Response_generate_data_key_pair_tag;
done:
    OPENSSL_cleanse(der, sizeof der);
    EVP_PKEY_free(pair);
    return err;
}

kms_err_t kms_handle_re_encrypt(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ReEncryptRequest *q = &req->op.re_encrypt;
    ReEncryptResponse *r = &resp->result.re_encrypt;
    uint8_t *pt = malloc(KMS_MAX_DATA_SIZE); /* the plaintext never leaves the enclave */
    size_t pt_len = 0, len = 0;
    if (pt == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err = kms_sym_decrypt(ctx, q->ciphertext.bytes, q->ciphertext.size, q->source_context,
                                    q->source_context_count, pt, KMS_MAX_DATA_SIZE, &pt_len, r->source_key_id,
                                    &r->source_key_version);
    kms_ctx_step(ctx, OperationClass_OP_ENCRYPT, q->destination_context, q->destination_context_count);
    if (err == KMS_OK)
        err = kms_sym_encrypt(ctx, q->destination_key_id, pt, pt_len, q->destination_context, q->destination_context_count,
                              r->ciphertext.bytes, sizeof r->ciphertext.bytes, &len, r->key_id, &r->key_version);
    if (err == KMS_OK) {
        r->ciphertext.size = (pb_size_t)len;
        resp->which_result = Response_re_encrypt_tag;
    }
    OPENSSL_cleanse(pt, KMS_MAX_DATA_SIZE);
    free(pt);
    return err;
}

/* What a batch's items share: its encryption key (opened once: an Encrypt batch authorizes and schedules its key
 * once, not per item) and one IV per item, drawn at once; or its signing key. */
typedef struct {
    kms_sym_sealer sealer;
    kms_err_t sealer_err; /* why the batch's encryption key could not be opened: every item's status */
    uint8_t ivs[256 * KMS_GCM_IV_LEN];
    kms_key *signer;
} batch_keys;

_Static_assert(sizeof(((BatchRequest *)0)->items) / sizeof(((BatchRequest *)0)->items[0]) <= 256, "batch IVs");

/* One batch item; its status goes into the result, never into the batch's own code. */
static void batch_item(kms_ctx *ctx, const BatchRequest *q, const batch_keys *k, size_t i, BatchItemResult *out)
{
    const pb_bytes_array_t *in = (const pb_bytes_array_t *)(const void *)&q->items[i];
    size_t len = 0;
    char key_id[37];
    uint32_t version = 0;
    kms_err_t err;
    if (q->operation == BatchOperation_BATCH_ENCRYPT)
        err = in->size > BATCH_PLAINTEXT_MAX ? KMS_ERR_INVALID_ARGUMENT
              : k->sealer_err != KMS_OK     ? k->sealer_err
                                            : kms_sym_seal(&k->sealer, k->ivs + i * KMS_GCM_IV_LEN, in->bytes, in->size,
                                                           NULL, 0, out->data.bytes, sizeof out->data.bytes, &len);
    else if (q->operation == BatchOperation_BATCH_DECRYPT)
        err = kms_sym_decrypt(ctx, in->bytes, in->size, NULL, 0, out->data.bytes, sizeof out->data.bytes, &len, key_id,
                              &version);
    else {
        const KeyVersionMaterial *mat = NULL;
        EVP_PKEY *pkey = NULL;
        kms_sig_alg alg = 0;
        err = kms_spec_sig_alg(kms_key_record(k->signer)->spec, q->algorithm, &alg);
        if (err == KMS_OK)
            err = kms_spec_pkey_kind(kms_key_record(k->signer)->spec) >= KMS_PKEY_RSA_2048
                      ? KMS_ERR_INVALID_KEY_USAGE
                      : kms_key_version(k->signer, 0, &mat, &pkey);
        if (err == KMS_OK)
            err = kms_sign(pkey, alg, q->message_type == MessageType_DIGEST, in->bytes, in->size, KMS_SIGFMT_DER,
                           out->data.bytes, sizeof out->data.bytes, &len);
    }
    out->error = err;
    out->data.size = err == KMS_OK ? (pb_size_t)len : 0;
    /* A failed item's operation may have written part of its output (an encryption its header): the
     * request succeeds, so only what data.size covers would be wiped with the slot (request_slot.h). */
    if (err != KMS_OK) kms_wipe(out->data.bytes, sizeof out->data.bytes);
}

kms_err_t kms_handle_batch(kms_ctx *ctx, const Request *req, Response *resp)
{
    const BatchRequest *q = &req->op.batch;
    BatchResponse *r = &resp->result.batch;
    batch_keys k = {.sealer_err = KMS_OK};
    if (q->operation < BatchOperation_BATCH_ENCRYPT || q->operation > BatchOperation_BATCH_SIGN || q->items_count == 0)
        return KMS_ERR_INVALID_ARGUMENT;
    if (q->operation == BatchOperation_BATCH_SIGN) {
        KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_SIGN_VERIFY, &k.signer));
        kms_sig_alg alg = 0;
        if (kms_spec_sig_alg(kms_key_record(k.signer)->spec, q->algorithm, &alg) == KMS_ERR_INVALID_ARGUMENT ||
            q->message_type < _MessageType_MIN || q->message_type > _MessageType_MAX) {
            kms_keystore_release(k.signer); /* the request's own arguments, not an item's */
            return KMS_ERR_INVALID_ARGUMENT;
        }
    }
    if (q->operation == BatchOperation_BATCH_ENCRYPT) {
        k.sealer_err = kms_sym_sealer_open(ctx, q->key_id, &k.sealer);
        if (k.sealer_err == KMS_OK) k.sealer_err = kms_random(k.ivs, (size_t)q->items_count * KMS_GCM_IV_LEN);
    }
    for (pb_size_t i = 0; i < q->items_count; i++) batch_item(ctx, q, &k, i, &r->results[i]);
    r->results_count = q->items_count;
    kms_sym_sealer_close(&k.sealer);
    kms_keystore_release(k.signer);
    resp->which_result = Response_batch_tag;
    return KMS_OK;
}
