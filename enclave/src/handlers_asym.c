/* handlers_asym.c - asymmetric operations: Sign / Verify, RSA-OAEP decrypt, key agreement. */
#include <string.h>

#include "crypto.h"
#include "handlers.h"
#include "keyspec.h"

static kms_sig_format sig_format(SignatureFormat f)
{
    return f == SignatureFormat_SIGNATURE_FORMAT_P1363 ? KMS_SIGFMT_P1363 : KMS_SIGFMT_DER;
}

/* A message type or signature format outside its enum is a bad argument, never read as the default. */
static kms_err_t sig_enums_check(MessageType type, SignatureFormat format)
{
    int ok = type >= _MessageType_MIN && type <= _MessageType_MAX && format >= _SignatureFormat_MIN &&
             format <= _SignatureFormat_MAX;
    return ok ? KMS_OK : KMS_ERR_INVALID_ARGUMENT;
}

kms_err_t kms_handle_sign(kms_ctx *ctx, const Request *req, Response *resp)
{
    const SignRequest *q = &req->op.sign;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(sig_enums_check(q->message_type, q->format));
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_SIGN_VERIFY, &key));
    kms_sig_alg alg = 0;
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL;
    SignResponse *r = &resp->result.sign;
    size_t len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_spec_sig_alg(kms_key_record(key)->spec, q->algorithm, &alg), done);
    KMS_GOTO_IF_ERR(err, kms_key_version(key, 0, &mat, &pkey), done);
    KMS_GOTO_IF_ERR(err, kms_sign(pkey, alg, q->message_type == MessageType_DIGEST, q->message.bytes,
                                  q->message.size, sig_format(q->format), r->signature.bytes,
                                  sizeof r->signature.bytes, &len), done);
    r->signature.size = (pb_size_t)len;
    memcpy(r->key_id, kms_key_record(key)->key_id, sizeof r->key_id);
    r->key_version = mat->version;
    resp->which_result = Response_sign_tag;
done:
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_verify(kms_ctx *ctx, const Request *req, Response *resp)
{
    const VerifyRequest *q = &req->op.verify;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(sig_enums_check(q->message_type, q->format));
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_SIGN_VERIFY, &key));
    kms_sig_alg alg = 0;
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_spec_sig_alg(kms_key_record(key)->spec, q->algorithm, &alg), done);
    KMS_GOTO_IF_ERR(err, kms_key_version(key, q->key_version, &mat, &pkey), done);
    KMS_GOTO_IF_ERR(err, kms_verify(pkey, alg, q->message_type == MessageType_DIGEST, q->message.bytes,
                                    q->message.size, sig_format(q->format), q->signature.bytes,
                                    q->signature.size), done);
    resp->result.verify.valid = true;
    resp->which_result = Response_verify_tag;
done:
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_asymmetric_decrypt(kms_ctx *ctx, const Request *req, Response *resp)
{
    const AsymmetricDecryptRequest *q = &req->op.asymmetric_decrypt;
    kms_md md = q->algorithm == EncryptionAlgorithm_RSAES_OAEP_SHA_1     ? KMS_MD_SHA1
                : q->algorithm == EncryptionAlgorithm_RSAES_OAEP_SHA_256 ? KMS_MD_SHA256
                                                                         : (kms_md)0;
    if (md == 0) return KMS_ERR_INVALID_ARGUMENT;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_ENCRYPT_DECRYPT, &key));
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL;
    AsymmetricDecryptResponse *r = &resp->result.asymmetric_decrypt;
    size_t len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, q->key_version, &mat, &pkey), done);
    err = KMS_ERR_INVALID_KEY_USAGE;
    if (pkey == NULL) goto done;
    KMS_GOTO_IF_ERR(err, kms_rsa_oaep_decrypt(pkey, md, md, NULL, 0, q->ciphertext.bytes, q->ciphertext.size,
                                              r->plaintext.bytes, sizeof r->plaintext.bytes, &len), done);
    r->plaintext.size = (pb_size_t)len;
    resp->which_result = Response_asymmetric_decrypt_tag;
done:
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_derive_shared_secret(kms_ctx *ctx, const Request *req, Response *resp)
{
    const DeriveSharedSecretRequest *q = &req->op.derive_shared_secret;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, q->key_id, KeyUsage_KEY_AGREEMENT, &key));
    kms_pkey_kind kind = kms_spec_pkey_kind(kms_key_record(key)->spec);
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL, *peer = NULL;
    DeriveSharedSecretResponse *r = &resp->result.derive_shared_secret;
    size_t len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, 0, &mat, &pkey), done);
    KMS_GOTO_IF_ERR(err, kms_pkey_from_public_der(kind, q->peer_public_key.bytes, q->peer_public_key.size,
                                                  &peer), done);
    KMS_GOTO_IF_ERR(err, kms_derive(pkey, peer, r->shared_secret.bytes, sizeof r->shared_secret.bytes, &len),
                    done);
    r->shared_secret.size = (pb_size_t)len;
    resp->which_result = Response_derive_shared_secret_tag;
done:
    EVP_PKEY_free(peer);
    kms_keystore_release(key);
    return err;
}
