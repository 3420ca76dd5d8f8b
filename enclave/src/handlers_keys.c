/* handlers_keys.c - key management: create, rotate, describe, enable/disable, public key. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ocalls.h"
#include "crypto.h"
#include "handlers.h"
#include "eth_bls.h"
#include "eth_guard.h"
#include "keyspec.h"
#include "validator.h"
#include "kms/limits.h"

/* A zeroed heap KeyRecord (42 KiB: too big for an enclave stack). */
KeyRecord *kms_record_new(void) { return calloc(1, sizeof(KeyRecord)); }

void kms_record_free(KeyRecord *rec)
{
    if (rec == NULL) return;
    OPENSSL_cleanse(rec, sizeof *rec);
    free(rec);
}

/* Append a freshly generated version to rec and make it current. */
kms_err_t kms_record_add_version(KeyRecord *rec, int64_t now)
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
    rec->last_rotated_at = now;
    return KMS_OK;
}

/* Have the host persist rec (conditional on the revision it replaces), then answer. */
kms_err_t kms_record_commit(const KeyRecord *rec, Response *resp)
{
    KMS_RETURN_IF_ERR(kms_keystore_write(rec, rec->revision - 1));
    kms_fill_metadata(rec, resp);
    return KMS_OK;
}

kms_err_t kms_handle_create_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    const CreateKeyRequest *q = &req->op.create_key;
    uint8_t gvr[32];
    int bls = q->spec == KeySpec_BLS12_381;
    if (!kms_spec_allows_usage(q->spec, q->usage) || ((q->usage == KeyUsage_VALIDATOR) != (q->chain_id[0] != '\0')) ||
        (bls && kms_eth_chain_root(q->chain_id, gvr) != KMS_OK) ||
        (!bls && (q->allow_voluntary_exit || strlen(q->chain_id) > KMS_CMT_CHAIN_ID_MAX)))
        return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = kms_record_new();
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_id_new(rec->key_id), done);
    rec->spec = q->spec;
    rec->usage = q->usage;
    rec->state = KeyState_ENABLED;
    rec->host_owned = kms_ctx_is_host(ctx);
    memcpy(rec->description, q->description, sizeof rec->description);
    rec->created_at = ctx->now;
    rec->origin = KeyOrigin_ORIGIN_GENERATED;
    rec->revision = 1;
    memcpy(rec->chain_id, q->chain_id, sizeof rec->chain_id);
    rec->allow_voluntary_exit = q->allow_voluntary_exit;
    KMS_GOTO_IF_ERR(err, kms_record_add_version(rec, ctx->now), done);
    if (bls) /* the guard state exists before the key can sign */
        KMS_GOTO_IF_ERR(err, kms_eth_guard_create(rec->key_id, gvr), done);
    else if (q->usage == KeyUsage_VALIDATOR)
        KMS_GOTO_IF_ERR(err, kms_vstate_create(rec->key_id, q->chain_id, 0, 0, 0, NULL, 0, NULL, 0), done);
    err = kms_record_commit(rec, resp);
done:
    kms_record_free(rec);
    return err;
}

/* Copy of key_id's current record, for a change. */
kms_err_t kms_record_for_change(kms_ctx *ctx, const char *key_id, KeyRecord **out)
{
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, key_id, &key));
    KeyRecord *rec = kms_record_new();
    if (rec != NULL) memcpy(rec, kms_key_record(key), sizeof *rec);
    kms_keystore_release(key);
    if (rec == NULL) return KMS_ERR_OUT_OF_MEMORY;
    rec->revision++;
    *out = rec;
    return KMS_OK;
}

kms_err_t kms_handle_rotate_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, req->op.rotate_key.key_id, &rec));
    /* A validator signs with one key for its whole life (its consensus identity, with the guard
     * state bound to it): a new validator key is a new key, never a rotation. */
    kms_err_t err = rec->usage == KeyUsage_VALIDATOR ? KMS_ERR_INVALID_KEY_USAGE
                    : rec->state == KeyState_ENABLED  ? KMS_OK
                                                      : KMS_ERR_KEY_DISABLED;
    if (err == KMS_OK) err = kms_record_add_version(rec, ctx->now);
    if (err == KMS_OK) err = kms_record_commit(rec, resp);
    kms_record_free(rec);
    return err;
}

kms_err_t kms_handle_set_key_state(kms_ctx *ctx, const Request *req, Response *resp)
{
    KeyState state = req->op.set_key_state.state;
    if (state != KeyState_ENABLED && state != KeyState_DISABLED) return KMS_ERR_INVALID_ARGUMENT;
    KeyRecord *rec = NULL;
    KMS_RETURN_IF_ERR(kms_record_for_change(ctx, req->op.set_key_state.key_id, &rec));
    kms_err_t err = rec->state == KeyState_PENDING_DELETION ? KMS_ERR_KEY_PENDING_DELETION
                    : rec->state == KeyState_DESTROYED      ? KMS_ERR_KEY_DESTROYED
                                                            : KMS_OK;
    rec->state = state;
    if (err == KMS_OK) err = kms_record_commit(rec, resp);
    kms_record_free(rec);
    return err;
}

kms_err_t kms_handle_describe_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, req->op.describe_key.key_id, &key));
    kms_fill_metadata(kms_key_record(key), resp);
    kms_keystore_release(key);
    return KMS_OK;
}

kms_err_t kms_handle_get_public_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    const GetPublicKeyRequest *q = &req->op.get_public_key;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(kms_acquire_authorized(ctx, q->key_id, &key));
    const KeyRecord *rec = kms_key_record(key);
    GetPublicKeyResponse *r = &resp->result.get_public_key;
    const KeyVersionMaterial *mat = NULL;
    EVP_PKEY *pkey = NULL;
    size_t len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_key_version(key, 0, &mat, &pkey), done);
    err = KMS_ERR_UNSUPPORTED; /* BLS12_381 keys have one form, the compressed point; the others only DER/PEM */
    if ((rec->spec == KeySpec_BLS12_381) != (q->format == PublicKeyFormat_PUBLIC_KEY_RAW)) goto done;
    if (rec->spec == KeySpec_BLS12_381) {
        err = mat->material.size == KMS_BLS_SECRET_LEN ? kms_bls_public(mat->material.bytes, r->public_key.bytes)
                                                       : KMS_ERR_RECORD_CORRUPT;
        len = KMS_BLS_PUBLIC_LEN;
    } else if (pkey == NULL) {
        err = KMS_ERR_INVALID_KEY_USAGE;
    } else {
        err = q->format == PublicKeyFormat_PUBLIC_KEY_PEM
              ? kms_pkey_public_pem(pkey, r->public_key.bytes, sizeof r->public_key.bytes, &len)
              : kms_pkey_public_der(pkey, r->public_key.bytes, sizeof r->public_key.bytes, &len);
    }
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

/* Append key_id's metadata to the page if the caller may see it; unreadable records are skipped. */
static void list_one(kms_ctx *ctx, const char *key_id, ListKeysResponse *r)
{
    kms_key *key = NULL;
    if (!kms_key_id_valid(key_id) || kms_acquire_authorized(ctx, key_id, &key) != KMS_OK) return;
    kms_metadata_from(kms_key_record(key), &r->keys[r->keys_count++]);
    kms_keystore_release(key);
}

/* A page token is a store cursor: the last record name the host listed (key ids, but also alias
 * and validator-state names, which the listing skips). Only its characters are checked: a host
 * that lies about the cursor can only hide keys, which it can anyway. */
static int cursor_valid(const char *c)
{
    size_t n = strlen(c);
    for (size_t i = 0; i < n; i++)
        if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= '0' && c[i] <= '9') ||
              c[i] == '-' || c[i] == '/' || c[i] == '_'))
            return 0;
    return n <= 64;
}

kms_err_t kms_handle_list_keys(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const ListKeysRequest *q = &req->op.list_keys;
    ListKeysResponse *r = &resp->result.list_keys;
    uint32_t limit = q->limit == 0 ? 32 : q->limit;
    if (limit > sizeof r->keys / sizeof r->keys[0] || !cursor_valid(q->page_token)) return KMS_ERR_INVALID_ARGUMENT;
    char ids[32 * 65];
    size_t len = 0, count = 0;
    KMS_RETURN_IF_ERR(kms_edge_store_list(q->page_token, limit, ids, sizeof ids, &len));
    const char *last = NULL;
    for (size_t off = 0; off < len && count < limit; count++) {
        const char *id = ids + off;
        size_t n = strnlen(id, len - off);
        if (n == len - off) break; /* not NUL-terminated: ignore the rest */
        list_one(ctx, id, r);
        last = id;
        off += n + 1;
    }
    if (count == limit && last != NULL && strlen(last) < sizeof r->next_page_token && cursor_valid(last))
        memcpy(r->next_page_token, last, strlen(last) + 1);
    resp->which_result = Response_list_keys_tag;
    return KMS_OK;
}
