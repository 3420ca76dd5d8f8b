/*
 * handlers_eth_keystore.c - EIP-2335 keystore import: the KDF (scrypt or PBKDF2-HMAC-SHA-256), the SHA-256
 * checksum and AES-128-CTR run here, on fields the SDK parsed; the decrypted secret becomes a BLS12_381
 * VALIDATOR key with an empty slashing guard. The KDF's cost is bounded (docs/ethereum-keys.md): scrypt at
 * most 256 MiB (128 * r * n) and p <= 16, PBKDF2 at most 2^22 iterations; beyond, KMS_ERR_UNSUPPORTED.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "eth_bls.h"
#include "eth_guard.h"
#include "handlers.h"

#define SCRYPT_MAX_MEMORY (256ull << 20)
#define SCRYPT_MAX_P 16u
#define PBKDF2_MAX_ITERATIONS (1u << 22)
#define DKLEN_MAX 64u

/* What EIP-2335 allows and this enclave's bounds: KMS_ERR_UNSUPPORTED (a function or cost beyond them) or
 * KMS_ERR_INVALID_ARGUMENT (a malformed value). */
static kms_err_t check_params(const EthImportKeystoreRequest *q)
{
    int scrypt = strcmp(q->kdf_function, "scrypt") == 0, pbkdf2 = strcmp(q->kdf_function, "pbkdf2") == 0;
    if ((!scrypt && !pbkdf2) || strcmp(q->checksum_function, "sha256") != 0 ||
        strcmp(q->cipher_function, "aes-128-ctr") != 0 || (pbkdf2 && strcmp(q->pbkdf2_prf, "hmac-sha256") != 0))
        return KMS_ERR_UNSUPPORTED;
    if (q->dklen < 32 || q->dklen > DKLEN_MAX || q->salt.size == 0 || q->checksum_message.size != 32 ||
        q->cipher_iv.size != 16 || q->cipher_message.size != KMS_BLS_SECRET_LEN ||
        (q->pubkey.size != 0 && q->pubkey.size != KMS_BLS_PUBLIC_LEN))
        return KMS_ERR_INVALID_ARGUMENT;
    if (pbkdf2 && q->pbkdf2_c == 0) return KMS_ERR_INVALID_ARGUMENT;
    if (pbkdf2) return q->pbkdf2_c > PBKDF2_MAX_ITERATIONS ? KMS_ERR_UNSUPPORTED : KMS_OK;
    if (q->scrypt_n < 2 || (q->scrypt_n & (q->scrypt_n - 1)) != 0 || q->scrypt_r == 0 || q->scrypt_p == 0)
        return KMS_ERR_INVALID_ARGUMENT;
    if (q->scrypt_p > SCRYPT_MAX_P || q->scrypt_n > SCRYPT_MAX_MEMORY / 128 / q->scrypt_r) return KMS_ERR_UNSUPPORTED;
    return KMS_OK;
}

/* The keystore's secret into sk: KMS_ERR_INVALID_SIGNATURE when the checksum does not match (a wrong password). */
static kms_err_t decrypt(const EthImportKeystoreRequest *q, uint8_t sk[KMS_BLS_SECRET_LEN])
{
    uint8_t dk[DKLEN_MAX], buf[16 + KMS_BLS_SECRET_LEN], digest[32];
    kms_err_t err = strcmp(q->kdf_function, "scrypt") == 0
                        ? kms_scrypt(q->password.bytes, q->password.size, q->salt.bytes, q->salt.size, q->scrypt_n,
                                     q->scrypt_r, q->scrypt_p, SCRYPT_MAX_MEMORY + (16u << 20), dk, q->dklen)
                        : kms_pbkdf2_sha256(q->password.bytes, q->password.size, q->salt.bytes, q->salt.size,
                                            q->pbkdf2_c, dk, q->dklen);
    if (err == KMS_OK) {
        memcpy(buf, dk + 16, 16);
        memcpy(buf + 16, q->cipher_message.bytes, KMS_BLS_SECRET_LEN);
        err = kms_sha256(buf, sizeof buf, digest);
    }
    if (err == KMS_OK && CRYPTO_memcmp(digest, q->checksum_message.bytes, 32) != 0) err = KMS_ERR_INVALID_SIGNATURE;
    if (err == KMS_OK) err = kms_aes128_ctr(dk, q->cipher_iv.bytes, q->cipher_message.bytes, KMS_BLS_SECRET_LEN, sk);
    OPENSSL_cleanse(dk, sizeof dk);
    OPENSSL_cleanse(buf, sizeof buf);
    return err;
}

kms_err_t kms_handle_eth_import_keystore(kms_ctx *ctx, const Request *req, Response *resp)
{
    const EthImportKeystoreRequest *q = &req->op.eth_import_keystore;
    uint8_t gvr[32], pk[KMS_BLS_PUBLIC_LEN];
    KMS_RETURN_IF_ERR(kms_eth_chain_root(q->chain_id, gvr));
    KMS_RETURN_IF_ERR(check_params(q));
    KeyRecord *rec = kms_record_new();
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    KeyVersionMaterial *v = &rec->versions[0];
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, decrypt(q, v->material.bytes), done);
    v->material.size = KMS_BLS_SECRET_LEN;
    KMS_GOTO_IF_ERR(err, kms_bls_public(v->material.bytes, pk), done);
    err = KMS_ERR_INVALID_KEY; /* the keystore's pubkey names another key */
    if (q->pubkey.size == KMS_BLS_PUBLIC_LEN && CRYPTO_memcmp(pk, q->pubkey.bytes, KMS_BLS_PUBLIC_LEN) != 0) goto done;
    KMS_GOTO_IF_ERR(err, kms_key_id_new(rec->key_id), done);
    v->version = 1, v->created_at = ctx->now;
    rec->versions_count = 1, rec->current_version = 1, rec->revision = 1;
    rec->spec = KeySpec_BLS12_381, rec->usage = KeyUsage_VALIDATOR, rec->state = KeyState_ENABLED;
    rec->origin = KeyOrigin_ORIGIN_IMPORTED;
    rec->created_at = ctx->now;
    rec->allow_voluntary_exit = q->allow_voluntary_exit;
    memcpy(rec->description, q->description, sizeof rec->description);
    memcpy(rec->chain_id, q->chain_id, sizeof rec->chain_id);
    /* The guard state first: a key without its state never signs. */
    KMS_GOTO_IF_ERR(err, kms_eth_guard_create(rec->key_id, gvr), done);
    err = kms_record_commit(rec, resp);
done:
    OPENSSL_cleanse(pk, sizeof pk);
    kms_record_free(rec);
    return err;
}
