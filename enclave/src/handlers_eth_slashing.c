/* handlers_eth_slashing.c - slashing-protection export and import (EIP-3076, structured: the SDK writes and
 * reads the JSON). Import only raises watermarks, for keys of the interchange's chain whose public key it names. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "eth_bls.h"
#include "eth_guard.h"
#include "handlers.h"

/* key_id's resolved id, public key and chain root, checked to be a BLS12_381 validator key the caller may use. */
static kms_err_t key_facts(kms_ctx *ctx, const char *key_id, char id[37], uint8_t pk[KMS_BLS_PUBLIC_LEN],
                           uint8_t gvr[32])
{
    kms_key *key = NULL;
    const KeyVersionMaterial *mat = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, key_id, KeyUsage_VALIDATOR, &key));
    const KeyRecord *rec = kms_key_record(key);
    kms_err_t err = rec->spec == KeySpec_BLS12_381 ? kms_key_version(key, 0, &mat, NULL) : KMS_ERR_INVALID_KEY_USAGE;
    if (err == KMS_OK) err = mat->material.size == KMS_BLS_SECRET_LEN ? kms_bls_public(mat->material.bytes, pk)
                                                                      : KMS_ERR_RECORD_CORRUPT;
    if (err == KMS_OK) err = kms_eth_chain_root(rec->chain_id, gvr);
    memcpy(id, rec->key_id, 37);
    kms_keystore_release(key);
    return err;
}

static void record_of(const EthGuardState *st, const uint8_t pk[KMS_BLS_PUBLIC_LEN], EthSlashingRecord *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->key_id, st->key_id, sizeof out->key_id);
    memcpy(out->pubkey.bytes, pk, KMS_BLS_PUBLIC_LEN);
    out->pubkey.size = KMS_BLS_PUBLIC_LEN;
    out->has_watermark = true;
    out->watermark = st->watermark;
    memcpy(out->blocks, st->blocks, sizeof out->blocks);
    out->blocks_count = st->blocks_count;
    memcpy(out->attestations, st->attestations, sizeof out->attestations);
    out->attestations_count = st->attestations_count;
}

kms_err_t kms_handle_eth_slashing_export(kms_ctx *ctx, const Request *req, Response *resp)
{
    const EthSlashingExportRequest *q = &req->op.eth_slashing_export;
    EthSlashingData *r = &resp->result.eth_slashing;
    EthGuardState *st = calloc(1, sizeof *st);
    uint8_t pk[KMS_BLS_PUBLIC_LEN], gvr[32];
    char id[37];
    kms_err_t err = st == NULL ? KMS_ERR_OUT_OF_MEMORY : KMS_OK;
    for (pb_size_t i = 0; err == KMS_OK && i < q->key_ids_count; i++) {
        err = key_facts(ctx, q->key_ids[i], id, pk, gvr);
        if (err == KMS_OK) err = kms_eth_guard_load(id, st);
        if (err != KMS_OK) break;
        if (i > 0 && memcmp(gvr, r->genesis_validators_root.bytes, 32) != 0) err = KMS_ERR_INVALID_ARGUMENT;
        memcpy(r->genesis_validators_root.bytes, gvr, 32);
        r->genesis_validators_root.size = 32;
        record_of(st, pk, &r->records[r->records_count++]);
    }
    free(st);
    if (err == KMS_OK) resp->which_result = Response_eth_slashing_tag;
    return err;
}

/* The watermark an imported record asks for: above its highest block, source and target. */
static kms_err_t wanted(const EthSlashingRecord *in, EthWatermark *w)
{
    *w = in->has_watermark ? in->watermark : (EthWatermark)EthWatermark_init_zero;
    for (pb_size_t i = 0; i < in->blocks_count; i++) {
        if (in->blocks[i].slot == UINT64_MAX) return KMS_ERR_INVALID_ARGUMENT;
        if (in->blocks[i].slot + 1 > w->min_block_slot) w->min_block_slot = in->blocks[i].slot + 1;
    }
    for (pb_size_t i = 0; i < in->attestations_count; i++) {
        const EthSignedAttestation *a = &in->attestations[i];
        if (a->target_epoch == UINT64_MAX) return KMS_ERR_INVALID_ARGUMENT;
        if (a->source_epoch > w->min_source_epoch) w->min_source_epoch = a->source_epoch;
        if (a->target_epoch + 1 > w->min_target_epoch) w->min_target_epoch = a->target_epoch + 1;
    }
    return KMS_OK;
}

/* Every record first checked (key, pubkey, chain), then each key's watermark raised and persisted. */
kms_err_t kms_handle_eth_slashing_import(kms_ctx *ctx, const Request *req, Response *resp)
{
    const EthSlashingImportRequest *q = &req->op.eth_slashing_import;
    EthSlashingData *r = &resp->result.eth_slashing;
    EthGuardState *st = calloc(1, sizeof *st);
    uint8_t pk[KMS_BLS_PUBLIC_LEN], gvr[32];
    char ids[sizeof q->records / sizeof q->records[0]][37];
    EthWatermark w;
    kms_err_t err = st == NULL ? KMS_ERR_OUT_OF_MEMORY : KMS_OK;
    if (q->genesis_validators_root.size != 32) err = KMS_ERR_INVALID_ARGUMENT;
    for (pb_size_t i = 0; err == KMS_OK && i < q->records_count; i++) {
        const EthSlashingRecord *in = &q->records[i];
        err = key_facts(ctx, in->key_id, ids[i], pk, gvr);
        if (err == KMS_OK && (in->pubkey.size != KMS_BLS_PUBLIC_LEN || memcmp(in->pubkey.bytes, pk, 48) != 0 ||
                              memcmp(gvr, q->genesis_validators_root.bytes, 32) != 0))
            err = KMS_ERR_INVALID_ARGUMENT;
        if (err == KMS_OK) err = wanted(in, &w);
    }
    for (pb_size_t i = 0; err == KMS_OK && i < q->records_count; i++) {
        const EthSlashingRecord *in = &q->records[i];
        err = wanted(in, &w);
        if (err == KMS_OK) err = kms_eth_guard_load(ids[i], st);
        if (err == KMS_OK && kms_eth_guard_raise(st, &w)) err = kms_eth_guard_store(st);
        if (err == KMS_OK) record_of(st, in->pubkey.bytes, &r->records[r->records_count++]);
    }
    free(st);
    if (err != KMS_OK) return err;
    memcpy(r->genesis_validators_root.bytes, q->genesis_validators_root.bytes, 32);
    r->genesis_validators_root.size = 32;
    resp->which_result = Response_eth_slashing_tag;
    return KMS_OK;
}
