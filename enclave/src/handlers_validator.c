/* handlers_validator.c - ValidatorSign through the double-sign guard (with the signer's watermark),
 * state export/import, key import. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "handlers.h"
#include "keyspec.h"
#include "validator.h"

/* Chain-ready signature: Ed25519 over the bytes; secp256k1 r || s (low-s) over SHA-256 [|| v]. */
static kms_err_t chain_sign(EVP_PKEY *pkey, KeySpec spec, const uint8_t *msg, size_t len, int recoverable,
                            uint8_t *sig, size_t cap, size_t *sig_len)
{
    if (spec == KeySpec_ED25519)
        return kms_sign(pkey, KMS_SIG_ED25519, 0, msg, len, KMS_SIGFMT_DER, sig, cap, sig_len);
    uint8_t digest[32];
    KMS_RETURN_IF_ERR(kms_sha256(msg, len, digest));
    KMS_RETURN_IF_ERR(kms_sign(pkey, KMS_SIG_ECDSA_SHA256, 1, digest, sizeof digest, KMS_SIGFMT_P1363, sig, cap,
                               sig_len));
    if (!recoverable) return KMS_OK;
    if (*sig_len != 64 || cap < 65) return KMS_ERR_BUFFER_TOO_SMALL;
    KMS_RETURN_IF_ERR(kms_secp256k1_recovery_id(pkey, digest, sig, &sig[64]));
    *sig_len = 65;
    return KMS_OK;
}

/* <0, 0, >0 as position (h, r, s) is below, at or above (h2, r2, s2). */
static int pos_cmp(int64_t h, int32_t r, uint32_t s, int64_t h2, int32_t r2, uint32_t s2)
{
    if (h != h2) return h < h2 ? -1 : 1;
    if (r != r2) return r < r2 ? -1 : 1;
    if (s != s2) return s < s2 ? -1 : 1;
    return 0;
}

/* The request's position m against the stored state's. */
static int hrs_cmp(const ValidatorGuardState *st, const kms_cmt_msg *m)
{
    return pos_cmp(m->height, m->round, m->step, st->height, st->round, st->step);
}

/* Move st up to the watermark and persist it: its position, with no sign bytes and no signature,
 * so that nothing at or below it is signed again (by any client). */
static kms_err_t adopt_watermark(ValidatorGuardState *st, const ValidatorWatermark *w)
{
    st->height = w->height, st->round = w->round, st->step = w->step;
    OPENSSL_cleanse(&st->block_id_hash, sizeof st->block_id_hash);
    OPENSSL_cleanse(&st->sign_bytes, sizeof st->sign_bytes);
    OPENSSL_cleanse(&st->signature, sizeof st->signature);
    st->revision++;
    return kms_vstate_store(st);
}

/*
 * Two-sided guard (docs/validators.md): the signer's watermark w is a second lower bound, and
 * guard() then decides against st as raised here. Stored state above w: unchanged. At w: the
 * stored signature stays usable only if its sign bytes hash to w's hash (when w has one), else it
 * is withdrawn for this request (not persisted). Below w (the store was rolled back relative to
 * the validator): a request above w is signed as usual (its state lies above w); for one at or
 * below w, st becomes w, persisted, and guard() refuses it (no stored signature to return).
 */
static kms_err_t apply_watermark(ValidatorGuardState *st, const ValidatorWatermark *w, const kms_cmt_msg *m)
{
    uint8_t digest[32];
    if (w->height < 0 || w->round < 0 || w->step > KMS_STEP_PRECOMMIT ||
        (w->sign_bytes_hash.size != 0 && w->sign_bytes_hash.size != 32))
        return KMS_ERR_INVALID_ARGUMENT;
    int c = pos_cmp(st->height, st->round, st->step, w->height, w->round, w->step);
    if (c > 0) return KMS_OK;
    if (c == 0) {
        if (w->sign_bytes_hash.size == 0 || st->signature.size == 0) return KMS_OK;
        KMS_RETURN_IF_ERR(kms_sha256(st->sign_bytes.bytes, st->sign_bytes.size, digest));
        if (CRYPTO_memcmp(digest, w->sign_bytes_hash.bytes, 32) != 0) st->signature.size = 0;
        return KMS_OK;
    }
    if (pos_cmp(m->height, m->round, m->step, w->height, w->round, w->step) > 0) return KMS_OK;
    return adopt_watermark(st, w);
}

/* FilePV's rules. KMS_OK with *reuse when the stored signature answers this request. */
static kms_err_t guard(const ValidatorGuardState *st, const kms_cmt_msg *m, const uint8_t *bytes, size_t len,
                       int *reuse)
{
    int c = hrs_cmp(st, m);
    *reuse = 0;
    if (c > 0) return KMS_OK;
    if (c < 0 || st->signature.size == 0) return KMS_ERR_DOUBLE_SIGN;
    if (len == st->sign_bytes.size && memcmp(bytes, st->sign_bytes.bytes, len) == 0) {
        *reuse = 1;
        return KMS_OK;
    }
    kms_cmt_msg stored; /* same height/round/step: only a different timestamp may be answered */
    uint8_t again[sizeof st->sign_bytes.bytes];
    size_t again_len = 0;
    if (kms_cmt_parse(m->is_proposal, st->sign_bytes.bytes, st->sign_bytes.size, &stored) != KMS_OK ||
        kms_cmt_encode_with_timestamp(m, &stored, again, sizeof again, &again_len) != KMS_OK ||
        again_len != st->sign_bytes.size || memcmp(again, st->sign_bytes.bytes, again_len) != 0)
        return KMS_ERR_DOUBLE_SIGN;
    *reuse = 1;
    return KMS_OK;
}

/* Sign anew and persist the guard state before the signature is returned. */
static kms_err_t sign_new(ValidatorGuardState *st, const kms_cmt_msg *m, const ValidatorSignRequest *q, EVP_PKEY *pkey,
                          KeySpec spec, ValidatorSignResponse *r)
{
    size_t len = 0;
    KMS_RETURN_IF_ERR(chain_sign(pkey, spec, q->sign_bytes.bytes, q->sign_bytes.size, q->recoverable,
                                 r->signature.bytes, sizeof r->signature.bytes, &len));
    r->signature.size = (pb_size_t)len;
    st->height = m->height;
    st->round = m->round;
    st->step = m->step;
    memcpy(st->block_id_hash.bytes, m->block_id_hash, 32);
    st->block_id_hash.size = m->block_id_nil ? 0 : 32;
    memcpy(st->sign_bytes.bytes, q->sign_bytes.bytes, q->sign_bytes.size);
    st->sign_bytes.size = q->sign_bytes.size;
    memcpy(st->signature.bytes, r->signature.bytes, len);
    st->signature.size = (pb_size_t)len;
    st->revision++;
    kms_err_t err = kms_vstate_store(st); /* persist, then release */
    if (err != KMS_OK) OPENSSL_cleanse(r->signature.bytes, sizeof r->signature.bytes), r->signature.size = 0;
    return err;
}

static kms_err_t sign_extension(const ValidatorSignRequest *q, const kms_cmt_msg *m, EVP_PKEY *pkey, KeySpec spec,
                                ValidatorSignResponse *r)
{
    if (q->extension_sign_bytes.size == 0) return KMS_OK;
    if (m->is_proposal || m->step != KMS_STEP_PRECOMMIT || m->block_id_nil) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_cmt_parse_extension(q->extension_sign_bytes.bytes, q->extension_sign_bytes.size, m->height,
                                              m->round, m->chain_id));
    size_t len = 0;
    KMS_RETURN_IF_ERR(chain_sign(pkey, spec, q->extension_sign_bytes.bytes, q->extension_sign_bytes.size, 0,
                                 r->extension_signature.bytes, sizeof r->extension_signature.bytes, &len));
    r->extension_signature.size = (pb_size_t)len;
    return KMS_OK;
}

kms_err_t kms_handle_validator_sign(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ValidatorSignRequest *q = &req->op.validator_sign;
    ValidatorSignResponse *r = &resp->result.validator_sign;
    kms_cmt_msg *m = calloc(1, sizeof *m);
    ValidatorGuardState *st = calloc(1, sizeof *st);
    kms_key *key = NULL;
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL;
    int reuse = 0;
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    if (m == NULL || st == NULL) goto done;
    KMS_GOTO_IF_ERR(err, kms_acquire_for(ctx, q->key_id, KeyUsage_VALIDATOR, &key), done);
    const KeyRecord *rec = kms_key_record(key);
    err = KMS_ERR_INVALID_KEY_USAGE; /* Ethereum keys sign through eth_sign */
    if (rec->spec == KeySpec_BLS12_381) goto done;
    err = KMS_ERR_INVALID_ARGUMENT;
    if (strcmp(rec->chain_id, q->chain_id) != 0 || (q->kind != ValidatorMessage_VOTE && q->kind != ValidatorMessage_PROPOSAL))
        goto done;
    KMS_GOTO_IF_ERR(err, kms_cmt_parse(q->kind == ValidatorMessage_PROPOSAL, q->sign_bytes.bytes, q->sign_bytes.size, m),
                    done);
    err = KMS_ERR_INVALID_ARGUMENT;
    if (strcmp(m->chain_id, q->chain_id) != 0) goto done;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, 0, &mat, &pkey), done);
    KMS_GOTO_IF_ERR(err, kms_vstate_load(q->key_id, st), done);
    if (q->has_watermark) KMS_GOTO_IF_ERR(err, apply_watermark(st, &q->watermark, m), done);
    KMS_GOTO_IF_ERR(err, guard(st, m, q->sign_bytes.bytes, q->sign_bytes.size, &reuse), done);
    if (reuse) {
        memcpy(r->signature.bytes, st->signature.bytes, st->signature.size);
        r->signature.size = st->signature.size;
    } else {
        KMS_GOTO_IF_ERR(err, sign_new(st, m, q, pkey, rec->spec, r), done);
    }
    KMS_GOTO_IF_ERR(err, sign_extension(q, m, pkey, rec->spec, r), done);
    memcpy(r->sign_bytes.bytes, st->sign_bytes.bytes, st->sign_bytes.size);
    r->sign_bytes.size = st->sign_bytes.size;
    r->reused = reuse != 0;
    r->height = m->height, r->round = m->round, r->step = m->step;
    resp->which_result = Response_validator_sign_tag;
done:
    kms_keystore_release(key);
    free(m);
    if (st != NULL) OPENSSL_cleanse(st, sizeof *st);
    free(st);
    return err;
}

static void export_from(const ValidatorGuardState *st, ValidatorStateExport *e)
{
    memset(e, 0, sizeof *e);
    memcpy(e->key_id, st->key_id, sizeof e->key_id);
    memcpy(e->chain_id, st->chain_id, sizeof e->chain_id);
    e->height = st->height, e->round = st->round, e->step = st->step, e->revision = st->revision;
    memcpy(e->block_id_hash.bytes, st->block_id_hash.bytes, st->block_id_hash.size);
    e->block_id_hash.size = st->block_id_hash.size;
    memcpy(e->sign_bytes.bytes, st->sign_bytes.bytes, st->sign_bytes.size);
    e->sign_bytes.size = st->sign_bytes.size;
    memcpy(e->signature.bytes, st->signature.bytes, st->signature.size);
    e->signature.size = st->signature.size;
}

kms_err_t kms_handle_validator_state(kms_ctx *ctx, const Request *req, Response *resp)
{
    kms_key *key = NULL;
    ValidatorGuardState st;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, req->op.validator_state.key_id, KeyUsage_VALIDATOR, &key));
    kms_err_t err = kms_key_record(key)->spec == KeySpec_BLS12_381 ? KMS_ERR_INVALID_KEY_USAGE
                                                                   : kms_vstate_load(req->op.validator_state.key_id, &st);
    kms_keystore_release(key);
    if (err != KMS_OK) return err;
    ValidatorStateExport *e = &resp->result.validator_state;
    export_from(&st, e);
    KMS_RETURN_IF_ERR(kms_vstate_mac(e, e->mac.bytes));
    e->mac.size = 32;
    resp->which_result = Response_validator_state_tag;
    return KMS_OK;
}

/* Import a signed export: authentic (MAC), for this key, and never behind the current state. */
kms_err_t kms_handle_validator_state_import(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ValidatorStateExport *in = &req->op.validator_state_import.state;
    uint8_t mac[32];
    kms_key *key = NULL;
    ValidatorGuardState st;
    KMS_RETURN_IF_ERR(kms_vstate_mac(in, mac));
    if (in->mac.size != 32 || CRYPTO_memcmp(mac, in->mac.bytes, 32) != 0) return KMS_ERR_INVALID_SIGNATURE;
    KMS_RETURN_IF_ERR(kms_acquire_for(ctx, in->key_id, KeyUsage_VALIDATOR, &key));
    if (kms_key_record(key)->spec == KeySpec_BLS12_381) {
        kms_keystore_release(key);
        return KMS_ERR_INVALID_KEY_USAGE;
    }
    kms_err_t err = kms_vstate_load(in->key_id, &st);
    int damaged = err == KMS_ERR_RECORD_CORRUPT;
    if (strcmp(in->chain_id, kms_key_record(key)->chain_id) != 0) err = KMS_ERR_INVALID_ARGUMENT;
    kms_keystore_release(key);
    if (damaged) { /* the row no longer authenticates: the admin's signed export replaces it */
        memset(&st, 0, sizeof st);
        memcpy(st.chain_id, in->chain_id, sizeof st.chain_id);
        st.height = -1;
        err = kms_vstate_indexed_revision(in->key_id, &st.revision);
    }
    if (err != KMS_OK) return err;
    int c = pos_cmp(in->height, in->round, in->step, st.height, st.round, st.step);
    if (c < 0 || strcmp(in->chain_id, st.chain_id) != 0) return KMS_ERR_DOUBLE_SIGN;
    if (c > 0 || damaged) { /* a damaged row is always replaced, even by an export at its position */
        uint64_t revision = st.revision + 1;
        memset(&st, 0, sizeof st);
        memcpy(st.key_id, in->key_id, sizeof st.key_id);
        memcpy(st.chain_id, in->chain_id, sizeof st.chain_id);
        st.revision = revision, st.height = in->height, st.round = in->round, st.step = in->step;
        memcpy(st.block_id_hash.bytes, in->block_id_hash.bytes, in->block_id_hash.size);
        st.block_id_hash.size = in->block_id_hash.size;
        memcpy(st.sign_bytes.bytes, in->sign_bytes.bytes, in->sign_bytes.size);
        st.sign_bytes.size = in->sign_bytes.size;
        memcpy(st.signature.bytes, in->signature.bytes, in->signature.size);
        st.signature.size = in->signature.size;
        KMS_RETURN_IF_ERR(kms_vstate_store(&st));
    }
    export_from(&st, &resp->result.validator_state);
    KMS_RETURN_IF_ERR(kms_vstate_mac(&resp->result.validator_state, resp->result.validator_state.mac.bytes));
    resp->result.validator_state.mac.size = 32;
    resp->which_result = Response_validator_state_tag;
    return KMS_OK;
}
