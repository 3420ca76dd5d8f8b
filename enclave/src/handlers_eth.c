/* handlers_eth.c - Ethereum validator signing (eth_sign) through the slashing guard, the interchange tests'
 * guard check, and slashing-protection export/import (docs/ethereum-keys.md). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "eth_bls.h"
#include "eth_guard.h"
#include "handlers.h"

/* An ENABLED BLS12_381 VALIDATOR key the caller may use, and its secret (borrowed, valid until release). */
static kms_err_t acquire_bls(kms_ctx *ctx, const char *key_id, kms_key **key, const uint8_t **sk)
{
    const KeyVersionMaterial *mat = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, key_id, KeyUsage_VALIDATOR, key));
    kms_err_t err = kms_key_record(*key)->spec == KeySpec_BLS12_381 ? kms_key_version(*key, 0, &mat, NULL)
                                                                     : KMS_ERR_INVALID_KEY_USAGE;
    if (err == KMS_OK && mat->material.size != KMS_BLS_SECRET_LEN) err = KMS_ERR_RECORD_CORRUPT;
    if (err != KMS_OK) {
        kms_keystore_release(*key);
        *key = NULL;
        return err;
    }
    *sk = mat->material.bytes;
    return KMS_OK;
}

/*
 * The guard's decision for o (signing root `root`) on key_id's state, raised first to the signer's watermark w
 * (may be NULL). With sk, sign `root` into r. The state is persisted (when it changed) before r holds the
 * signature; a refusal still persists a raised watermark.
 */
static kms_err_t guarded(const char *key_id, const kms_eth_object *o, const uint8_t root[32], const EthWatermark *w,
                         const uint8_t *sk, EthSignResponse *r)
{
    EthGuardState *st = calloc(1, sizeof *st);
    uint8_t sig[KMS_BLS_SIGNATURE_LEN];
    int repeat = 0, rose = 0;
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    if (st == NULL) return err;
    KMS_GOTO_IF_ERR(err, kms_eth_guard_load(key_id, st), done);
    if (w != NULL) rose = kms_eth_guard_raise(st, w);
    err = kms_eth_guard_admit(st, o, root, &repeat);
    if (err == KMS_OK && sk != NULL) err = kms_bls_sign(sk, root, 32, sig);
    if ((err == KMS_OK && !repeat) || (err == KMS_ERR_SLASHING_PROTECTION && rose)) {
        kms_err_t stored = kms_eth_guard_store(st); /* persist, then release */
        if (stored != KMS_OK) err = stored;
    }
    if (err != KMS_OK) goto done;
    if (sk != NULL) memcpy(r->signature.bytes, sig, sizeof sig), r->signature.size = sizeof sig;
    r->has_watermark = true;
    r->watermark = st->watermark;
    r->repeated = repeat != 0;
done:
    OPENSSL_cleanse(sig, sizeof sig);
    free(st);
    return err;
}

/* The signing root of q's object under q's fork (the key's chain, or the genesis domain). */
static kms_err_t signing_root(const EthSignRequest *q, const KeyRecord *rec, kms_eth_object *o, uint8_t root[32])
{
    static const uint8_t zero[32];
    uint8_t gvr[32], domain[32];
    KMS_RETURN_IF_ERR(kms_eth_object_parse(q->type, q->ssz.bytes, q->ssz.size, o));
    if (q->fork_version.size != 4 || (q->signing_root.size != 0 && q->signing_root.size != 32))
        return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_eth_chain_root(rec->chain_id, gvr));
    if (kms_eth_type_is_genesis_domain(q->type)) {
        if (q->genesis_validators_root.size != 0 &&
            (q->genesis_validators_root.size != 32 || memcmp(q->genesis_validators_root.bytes, zero, 32) != 0))
            return KMS_ERR_INVALID_ARGUMENT;
        memset(gvr, 0, sizeof gvr);
    } else if (q->genesis_validators_root.size != 32 || memcmp(q->genesis_validators_root.bytes, gvr, 32) != 0) {
        return KMS_ERR_INVALID_ARGUMENT; /* another chain than the key's */
    }
    KMS_RETURN_IF_ERR(kms_eth_domain(q->type, q->fork_version.bytes, gvr, domain));
    KMS_RETURN_IF_ERR(kms_eth_signing_root(o->root, domain, root));
    if (q->signing_root.size == 32 && CRYPTO_memcmp(q->signing_root.bytes, root, 32) != 0)
        return KMS_ERR_INVALID_ARGUMENT;
    return KMS_OK;
}

kms_err_t kms_handle_eth_sign(kms_ctx *ctx, const Request *req, Response *resp)
{
    const EthSignRequest *q = &req->op.eth_sign;
    EthSignResponse *r = &resp->result.eth_sign;
    kms_key *key = NULL;
    const uint8_t *sk = NULL;
    kms_eth_object o;
    uint8_t root[32];
    kms_err_t err;
    KMS_RETURN_IF_ERR(acquire_bls(ctx, q->key_id, &key, &sk));
    const KeyRecord *rec = kms_key_record(key);
    KMS_GOTO_IF_ERR(err, signing_root(q, rec, &o, root), done);
    err = KMS_ERR_PERMISSION_DENIED; /* exits need the key's consent (docs/ethereum-keys.md) */
    if (q->type == EthMessageType_ETH_VOLUNTARY_EXIT && !rec->allow_voluntary_exit) goto done;
    if (o.slashable != KMS_ETH_NOT_SLASHABLE) {
        KMS_GOTO_IF_ERR(err, guarded(rec->key_id, &o, root, q->has_watermark ? &q->watermark : NULL, sk, r), done);
    } else {
        KMS_GOTO_IF_ERR(err, kms_bls_sign(sk, root, 32, r->signature.bytes), done);
        r->signature.size = KMS_BLS_SIGNATURE_LEN;
    }
    memcpy(r->signing_root.bytes, root, 32);
    r->signing_root.size = 32;
    resp->which_result = Response_eth_sign_tag;
done:
    kms_keystore_release(key);
    return err;
}

kms_err_t kms_handle_eth_slashing_check(kms_ctx *ctx, const Request *req, Response *resp)
{
    const EthSlashingCheckRequest *q = &req->op.eth_slashing_check;
    kms_key *key = NULL;
    const uint8_t *sk = NULL;
    kms_eth_object o = {0};
    if (q->signing_root.size != 32) return KMS_ERR_INVALID_ARGUMENT;
    if (q->type == EthMessageType_ETH_BLOCK_V2) o.slashable = KMS_ETH_BLOCK, o.slot = q->slot;
    else if (q->type == EthMessageType_ETH_ATTESTATION)
        o.slashable = KMS_ETH_ATTESTATION, o.source_epoch = q->source_epoch, o.target_epoch = q->target_epoch;
    else return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(acquire_bls(ctx, q->key_id, &key, &sk));
    kms_err_t err = guarded(kms_key_record(key)->key_id, &o, q->signing_root.bytes, NULL, NULL,
                            &resp->result.eth_sign);
    kms_keystore_release(key);
    if (err != KMS_OK) return err;
    memcpy(resp->result.eth_sign.signing_root.bytes, q->signing_root.bytes, 32);
    resp->result.eth_sign.signing_root.size = 32;
    resp->which_result = Response_eth_sign_tag;
    return KMS_OK;
}
