/*
 * handlers_transfer.c - export of a key to another enclave proven by SGX local attestation
 * (boundary.proto, "Export of a key"). The importer's ephemeral keys live only in enclave
 * memory (a small table); the exporter checks the peer's REPORT with its own REPORT key.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "crypto.h"
#include "domain.h"
#include "handlers.h"
#include "platform.h"

#define TRANSFER_SLOTS 8
/* The wrap (HKDF info, AAD) keeps the v1 label; the REPORTDATA binding is v2 (it binds the domain). */
static const char k_label[] = "enclave-kms key transfer v1";
static const char k_bind_label[] = "enclave-kms key transfer v2";
static const uint8_t k_zero_nonce[KMS_GCM_IV_LEN];

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *g_slots[TRANSFER_SLOTS];
static uint32_t g_next_id = 1;
static uint32_t g_ids[TRANSFER_SLOTS];

/* REPORTDATA binding an X25519 public key to a domain: SHA-256(v2 label || pub || domain id) || 0^32. */
static kms_err_t binding(const uint8_t pub[32], const uint8_t domain_id[KMS_DOMAIN_ID_LEN], uint8_t out[64])
{
    uint8_t buf[sizeof k_bind_label - 1 + 32 + KMS_DOMAIN_ID_LEN];
    memcpy(buf, k_bind_label, sizeof k_bind_label - 1);
    memcpy(buf + sizeof k_bind_label - 1, pub, 32);
    memcpy(buf + sizeof k_bind_label - 1 + 32, domain_id, KMS_DOMAIN_ID_LEN);
    memset(out, 0, 64);
    return kms_sha256(buf, sizeof buf, out);
}

/* AES-256-GCM key from X25519(priv, peer) with HKDF(salt = first || second). */
static kms_err_t transfer_key(EVP_PKEY *priv, const uint8_t peer_pub[32], const uint8_t first[32],
                              const uint8_t second[32], uint8_t key[32])
{
    EVP_PKEY *peer = NULL;
    uint8_t shared[32], salt[64];
    size_t len = 0;
    kms_err_t err = kms_x25519_from_raw(peer_pub, &peer);
    if (err == KMS_OK) err = kms_derive(priv, peer, shared, sizeof shared, &len);
    memcpy(salt, first, 32);
    memcpy(salt + 32, second, 32);
    if (err == KMS_OK)
        err = kms_hkdf_sha256(salt, sizeof salt, shared, len, (const uint8_t *)k_label, sizeof k_label - 1, key, 32);
    OPENSSL_cleanse(shared, sizeof shared);
    EVP_PKEY_free(peer);
    return err;
}

kms_err_t kms_handle_prepare_key_import(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const PrepareKeyImportRequest *q = &req->op.prepare_key_import;
    PrepareKeyImportResponse *r = &resp->result.prepare_key_import;
    uint8_t rd[64], domain_id[KMS_DOMAIN_ID_LEN];
    EVP_PKEY *eph = NULL;
    if (q->exporter_target_info.size != 512) return KMS_ERR_INVALID_ARGUMENT;
    if (!kms_domain_id(domain_id)) return KMS_ERR_DOMAIN_NOT_LOADED; /* the binding names our domain */
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_pkey_generate(KMS_PKEY_X25519, &eph), done);
    KMS_GOTO_IF_ERR(err, kms_x25519_raw_public(eph, r->public_key.bytes), done);
    r->public_key.size = 32;
    KMS_GOTO_IF_ERR(err, binding(r->public_key.bytes, domain_id, rd), done);
    KMS_GOTO_IF_ERR(err, platform_report(q->exporter_target_info.bytes, rd, r->report.bytes), done);
    r->report.size = 432;
    pthread_mutex_lock(&g_lock);
    int slot = (int)(g_next_id % TRANSFER_SLOTS); /* the oldest pending transfer gives way */
    EVP_PKEY_free(g_slots[slot]);
    g_slots[slot] = eph, g_ids[slot] = r->transfer_id = g_next_id++;
    eph = NULL;
    pthread_mutex_unlock(&g_lock);
    resp->which_result = Response_prepare_key_import_tag;
done:
    EVP_PKEY_free(eph);
    return err;
}

/* The destination the caller must name: a domain id, and an MRENCLAVE or a minimum ISVSVN. */
static kms_err_t check_request(const ExportKeyRequest *q)
{
    if (q->peer_report.size != 432 || q->peer_public_key.size != 32 || q->peer_domain_id.size != KMS_DOMAIN_ID_LEN)
        return KMS_ERR_INVALID_ARGUMENT;
    if (q->peer_mrenclave.size != 0 && q->peer_mrenclave.size != 32) return KMS_ERR_INVALID_ARGUMENT;
    if (q->peer_min_isvsvn > 0xFFFFu || (q->peer_mrenclave.size == 0 && q->peer_min_isvsvn == 0))
        return KMS_ERR_INVALID_ARGUMENT;
    return KMS_OK;
}

/* The peer's REPORT: our REPORT key's MAC, our signer and product, our debug flag (else
 * PERMISSION_DENIED); then the enclave the caller named: the binding of its public key to the
 * named domain, the named MRENCLAVE, ISVSVN >= the named minimum (else PEER_MISMATCH). */
static kms_err_t check_peer(const uint8_t report[432], const ExportKeyRequest *q)
{
    uint8_t kr[512] = {0}, key[16], mac[16], rd[64];
    kms_identity self;
    kr[0] = 3; /* KEYNAME REPORT */
    memcpy(kr + 40, report + 384, 32); /* the report's KEYID */
    KMS_RETURN_IF_ERR(platform_self_identity(&self));
    kms_err_t err = platform_get_key(kr, key);
    if (err == KMS_OK) err = kms_aes128_cmac(key, report, 384, mac);
    OPENSSL_cleanse(key, sizeof key);
    if (err != KMS_OK) return KMS_ERR_REPORT;
    uint64_t flags = 0;
    for (int i = 7; i >= 0; i--) flags = (flags << 8) | report[48 + i];
    if (CRYPTO_memcmp(mac, report + 416, 16) != 0 || memcmp(report + 128, self.mrsigner, 32) != 0 ||
        (uint16_t)(report[256] | (report[257] << 8)) != self.isvprodid || (flags & 0x2u) != (self.attributes & 0x2u))
        return KMS_ERR_PERMISSION_DENIED;
    uint16_t isvsvn = (uint16_t)(report[258] | (report[259] << 8));
    if (binding(q->peer_public_key.bytes, q->peer_domain_id.bytes, rd) != KMS_OK ||
        CRYPTO_memcmp(report + 320, rd, 64) != 0 ||
        (q->peer_mrenclave.size == 32 && memcmp(report + 64, q->peer_mrenclave.bytes, 32) != 0) ||
        isvsvn < q->peer_min_isvsvn)
        return KMS_ERR_PEER_MISMATCH;
    return KMS_OK;
}

/* The record as it travels: material and metadata, never the source domain's policy or grants. */
static kms_err_t encode_transfer(const KeyRecord *src, uint8_t *out, size_t cap, size_t *len)
{
    KeyRecord *t = kms_record_new();
    if (t == NULL) return KMS_ERR_OUT_OF_MEMORY;
    memcpy(t, src, sizeof *t);
    t->policy_count = 0, t->grants_count = 0, t->host_owned = false;
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    kms_err_t err = pb_encode(&os, KeyRecord_fields, t) ? KMS_OK : KMS_ERR_BUFFER_TOO_SMALL;
    *len = os.bytes_written;
    kms_record_free(t);
    return err;
}

kms_err_t kms_handle_export_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ExportKeyRequest *q = &req->op.export_key;
    ExportKeyResponse *r = &resp->result.export_key;
    kms_key *key = NULL;
    EVP_PKEY *eph = NULL;
    uint8_t tkey[32], *pt = malloc(KeyRecord_size);
    size_t len = 0;
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    if (pt == NULL) goto done;
    KMS_GOTO_IF_ERR(err, check_request(q), done);
    KMS_GOTO_IF_ERR(err, kms_acquire_authorized(ctx, q->key_id, &key), done);
    err = KMS_ERR_PERMISSION_DENIED;
    if (kms_key_record(key)->export_policy != ExportPolicy_EXPORT_TO_ATTESTED_ENCLAVE) goto done;
    KMS_GOTO_IF_ERR(err, check_peer(q->peer_report.bytes, q), done);
    KMS_GOTO_IF_ERR(err, encode_transfer(kms_key_record(key), pt, KeyRecord_size, &len), done);
    err = len + KMS_GCM_TAG_LEN > sizeof r->wrapped_key.bytes ? KMS_ERR_RECORD_TOO_LARGE : KMS_OK;
    if (err == KMS_OK) err = kms_pkey_generate(KMS_PKEY_X25519, &eph);
    if (err == KMS_OK) err = kms_x25519_raw_public(eph, r->ephemeral_public_key.bytes);
    if (err == KMS_OK)
        err = transfer_key(eph, q->peer_public_key.bytes, r->ephemeral_public_key.bytes, q->peer_public_key.bytes, tkey);
    if (err == KMS_OK)
        err = kms_aes_gcm_seal(tkey, 32, k_zero_nonce, sizeof k_zero_nonce, (const uint8_t *)k_label,
                               sizeof k_label - 1, pt, len, r->wrapped_key.bytes, r->wrapped_key.bytes + len);
    if (err == KMS_OK) {
        r->ephemeral_public_key.size = 32;
        r->wrapped_key.size = (pb_size_t)(len + KMS_GCM_TAG_LEN);
        resp->which_result = Response_export_key_tag;
    }
done:
    OPENSSL_cleanse(tkey, sizeof tkey);
    if (pt != NULL) OPENSSL_cleanse(pt, KeyRecord_size);
    free(pt);
    EVP_PKEY_free(eph);
    kms_keystore_release(key);
    return err;
}

/* The pending transfer's ephemeral key (removed from the table: one use). */
static EVP_PKEY *take_slot(uint32_t id)
{
    EVP_PKEY *eph = NULL;
    pthread_mutex_lock(&g_lock);
    int slot = (int)(id % TRANSFER_SLOTS);
    if (id != 0 && g_ids[slot] == id) eph = g_slots[slot], g_slots[slot] = NULL, g_ids[slot] = 0;
    pthread_mutex_unlock(&g_lock);
    return eph;
}

kms_err_t kms_handle_import_transferred_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ImportTransferredKeyRequest *q = &req->op.import_transferred_key;
    EVP_PKEY *eph = take_slot(q->transfer_id);
    KeyRecord *rec = kms_record_new();
    uint8_t tkey[32], own[32], *pt = malloc(KeyRecord_size);
    size_t len = q->wrapped_key.size > KMS_GCM_TAG_LEN ? q->wrapped_key.size - KMS_GCM_TAG_LEN : 0;
    kms_err_t err = eph == NULL ? KMS_ERR_IMPORT_TOKEN : rec == NULL || pt == NULL ? KMS_ERR_OUT_OF_MEMORY : KMS_OK;
    if (err == KMS_OK && (q->ephemeral_public_key.size != 32 || len == 0 || len > KeyRecord_size))
        err = KMS_ERR_INVALID_CIPHERTEXT;
    if (err == KMS_OK) err = kms_x25519_raw_public(eph, own);
    if (err == KMS_OK) err = transfer_key(eph, q->ephemeral_public_key.bytes, q->ephemeral_public_key.bytes, own, tkey);
    if (err == KMS_OK)
        err = kms_aes_gcm_open(tkey, 32, k_zero_nonce, sizeof k_zero_nonce, (const uint8_t *)k_label, sizeof k_label - 1,
                               q->wrapped_key.bytes, len, q->wrapped_key.bytes + len, KMS_GCM_TAG_LEN, pt);
    if (err == KMS_OK) {
        pb_istream_t is = pb_istream_from_buffer(pt, len);
        err = pb_decode(&is, KeyRecord_fields, rec) && kms_key_id_valid(rec->key_id) ? KMS_OK : KMS_ERR_INVALID_CIPHERTEXT;
    }
    if (err == KMS_OK) { /* a new record in this domain, under the same key id */
        rec->revision = 1, rec->origin = KeyOrigin_ORIGIN_IMPORTED;
        rec->host_owned = kms_ctx_is_host(ctx);
        err = kms_keystore_write(rec, 0);
    }
    if (err == KMS_OK) kms_fill_metadata(rec, resp);
    OPENSSL_cleanse(tkey, sizeof tkey);
    if (pt != NULL) OPENSSL_cleanse(pt, KeyRecord_size);
    free(pt);
    kms_record_free(rec);
    EVP_PKEY_free(eph);
    return err;
}
