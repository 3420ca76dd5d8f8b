/*
 * audit_epoch.c - epoch keys sealed to the auditors (HPKE) and audit bodies sealed under them
 * (AES-256-GCM); the layouts are docs/formats.md's "Audit records". Called under audit.c's lock.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <pb_encode.h>

#include "audit_epoch.h"
#include "crypto.h"
#include "domain.h"

static const char k_epoch_label[] = "enclave-kms audit epoch v1";
static const char k_body_label[] = "enclave-kms audit body v1";

#define EPOCH_INFO_LEN (sizeof k_epoch_label - 1 + KMS_DOMAIN_ID_LEN + 8)
#define BODY_AAD_LEN (sizeof k_body_label - 1 + KMS_DOMAIN_ID_LEN + 8 + 32 + 8 + 8)

_Static_assert(EPOCH_INFO_LEN <= KMS_HPKE_MAX_INFO, "epoch info fits HPKE's info bound");
_Static_assert(sizeof(((AuditRecord *)0)->sealed_body.bytes) >= AuditBody_size + KMS_GCM_TAG_LEN, "sealed body bound");
_Static_assert(sizeof(((AuditEpochKey *)0)->sealed_key.bytes) == KMS_HPKE_SEAL_OVERHEAD + 32, "sealed epoch key");
_Static_assert(sizeof(((AuditRecord *)0)->epoch_keys) / sizeof(AuditEpochKey) == KMS_MAX_AUDITORS_COUNT,
               "one sealed epoch key per auditor");

static size_t put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
    return 8;
}

int kms_audit_epoch_due(const kms_audit_epoch *ep, uint64_t seq)
{
    return ep->seq == 0 || ep->records >= KMS_AUDIT_EPOCH_RECORDS || seq <= ep->last;
}

void kms_audit_epoch_close(kms_audit_epoch *ep)
{
    OPENSSL_cleanse(ep, sizeof *ep);
}

kms_err_t kms_audit_epoch_open(kms_audit_epoch *ep, const kms_auditors *auditors, AuditRecord *rec)
{
    uint8_t info[EPOCH_INFO_LEN];
    size_t n = 0;
    kms_audit_epoch_close(ep);
    if (rec->domain_id.size != KMS_DOMAIN_ID_LEN) return KMS_ERR_NOT_INITIALIZED_DOMAIN;
    if (auditors->count > KMS_MAX_AUDITORS_COUNT) return KMS_ERR_INVALID_ARGUMENT;
    memcpy(info, k_epoch_label, sizeof k_epoch_label - 1), n += sizeof k_epoch_label - 1;
    memcpy(info + n, rec->domain_id.bytes, KMS_DOMAIN_ID_LEN), n += KMS_DOMAIN_ID_LEN;
    n += put_u64(info + n, rec->seq);
    kms_err_t err = kms_random(ep->key, sizeof ep->key);
    rec->epoch_keys_count = 0;
    for (size_t i = 0; err == KMS_OK && i < auditors->count; i++) {
        AuditEpochKey *k = &rec->epoch_keys[i];
        size_t len = 0;
        memcpy(k->auditor.bytes, auditors->keys[i], 32);
        k->auditor.size = 32;
        err = kms_hpke_seal(auditors->keys[i], info, n, NULL, 0, ep->key, sizeof ep->key, k->sealed_key.bytes,
                            sizeof k->sealed_key.bytes, &len);
        k->sealed_key.size = (pb_size_t)len;
        rec->epoch_keys_count++;
    }
    if (err != KMS_OK) {
        kms_audit_epoch_close(ep);
        memset(rec->epoch_keys, 0, sizeof rec->epoch_keys);
        rec->epoch_keys_count = 0;
        return err;
    }
    ep->seq = rec->seq;
    rec->epoch = rec->seq;
    return KMS_OK;
}

/* AAD = label || domain id || seq || prev hash || time || epoch (fixed widths, big-endian). */
static size_t body_aad(const AuditRecord *rec, uint8_t aad[BODY_AAD_LEN])
{
    size_t n = 0;
    memcpy(aad, k_body_label, sizeof k_body_label - 1), n += sizeof k_body_label - 1;
    memcpy(aad + n, rec->domain_id.bytes, KMS_DOMAIN_ID_LEN), n += KMS_DOMAIN_ID_LEN;
    n += put_u64(aad + n, rec->seq);
    memcpy(aad + n, rec->prev_hash.bytes, 32), n += 32;
    n += put_u64(aad + n, (uint64_t)rec->time);
    n += put_u64(aad + n, rec->epoch);
    return n;
}

kms_err_t kms_audit_epoch_seal(kms_audit_epoch *ep, const AuditBody *body, AuditRecord *rec)
{
    uint8_t plain[AuditBody_size], aad[BODY_AAD_LEN], nonce[KMS_GCM_IV_LEN] = {0};
    if (ep->seq == 0 || rec->seq <= ep->last || rec->domain_id.size != KMS_DOMAIN_ID_LEN || rec->prev_hash.size != 32)
        return KMS_ERR_CRYPTO; /* audit.c opens an epoch first: a nonce is never used twice */
    rec->epoch = ep->seq;
    pb_ostream_t os = pb_ostream_from_buffer(plain, sizeof plain);
    kms_err_t err = pb_encode(&os, AuditBody_fields, body) ? KMS_OK : KMS_ERR_ENCODE;
    put_u64(nonce + 4, rec->seq);
    size_t aad_len = body_aad(rec, aad);
    if (err == KMS_OK)
        err = kms_aes_gcm_seal(ep->key, sizeof ep->key, nonce, sizeof nonce, aad, aad_len, plain, os.bytes_written,
                               rec->sealed_body.bytes, rec->sealed_body.bytes + os.bytes_written);
    rec->sealed_body.size = err == KMS_OK ? (pb_size_t)(os.bytes_written + KMS_GCM_TAG_LEN) : 0;
    if (err == KMS_OK) {
        ep->last = rec->seq;
        ep->records++;
    }
    OPENSSL_cleanse(plain, sizeof plain);
    return err;
}

kms_err_t kms_audit_check_auditors(const kms_auditors *auditors)
{
    if (auditors->count > KMS_MAX_AUDITORS_COUNT || (auditors->count == 0) != (auditors->clear_bodies != 0))
        return KMS_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < auditors->count; i++) {
        for (size_t j = 0; j < i; j++)
            if (memcmp(auditors->keys[i], auditors->keys[j], 32) == 0) return KMS_ERR_INVALID_ARGUMENT;
        uint8_t probe[KMS_HPKE_SEAL_OVERHEAD];
        size_t len = 0;
        KMS_RETURN_IF_ERR(kms_hpke_seal(auditors->keys[i], NULL, 0, NULL, 0, NULL, 0, probe, sizeof probe, &len));
    }
    return KMS_OK;
}
