/* audit.c - the audit chain: one signed, hash-chained record per operation, appended before answering. */
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "audit.h"
#include "crypto.h"
#include "ocalls.h"
#include "domain.h"
#include "ratls.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *g_key;          /* the domain's audit key, or NULL */
static int g_head_known;         /* the chain head was read from the host */
static uint64_t g_seq;           /* last appended sequence number */
static uint8_t g_prev[32];       /* SHA-256 of the last appended record */

kms_err_t kms_audit_set_key(const uint8_t *pkcs8, size_t len)
{
    EVP_PKEY *key = NULL;
    uint8_t pub[32];
    size_t pub_len = sizeof pub;
    if (pkcs8 != NULL) {
        KMS_RETURN_IF_ERR(kms_pkey_from_private_der(KMS_PKEY_ED25519, pkcs8, len, &key));
        if (EVP_PKEY_get_raw_public_key(key, pub, &pub_len) != 1 || pub_len != 32) {
            EVP_PKEY_free(key);
            return KMS_ERR_CRYPTO;
        }
    }
    pthread_mutex_lock(&g_lock);
    EVP_PKEY_free(g_key);
    g_key = key;
    g_head_known = 0;
    pthread_mutex_unlock(&g_lock);
    return kms_ratls_set_audit_key(key != NULL ? pub : NULL); /* bind it into the attestation claims */
}

kms_err_t kms_audit_public_key(uint8_t pub[32])
{
    size_t len = 32;
    pthread_mutex_lock(&g_lock);
    int ok = g_key != NULL && EVP_PKEY_get_raw_public_key(g_key, pub, &len) == 1 && len == 32;
    pthread_mutex_unlock(&g_lock);
    return ok ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
}

/* Read and check the host's last entry (lock held): it must carry our signature. */
static kms_err_t load_head(void)
{
    uint8_t buf[AuditEntry_size];
    size_t len = 0;
    AuditEntry entry = AuditEntry_init_zero;
    AuditRecord rec = AuditRecord_init_zero;
    KMS_RETURN_IF_ERR(kms_edge_audit_head(buf, sizeof buf, &len));
    if (len == 0) {
        g_seq = 0;
        memset(g_prev, 0, sizeof g_prev);
        g_head_known = 1;
        return KMS_OK;
    }
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, AuditEntry_fields, &entry) ||
        kms_verify(g_key, KMS_SIG_ED25519, 0, entry.record.bytes, entry.record.size, KMS_SIGFMT_DER,
                   entry.signature.bytes, entry.signature.size) != KMS_OK)
        return KMS_ERR_AUDIT_CORRUPT;
    pb_istream_t rs = pb_istream_from_buffer(entry.record.bytes, entry.record.size);
    if (!pb_decode(&rs, AuditRecord_fields, &rec)) return KMS_ERR_AUDIT_CORRUPT;
    g_seq = rec.seq;
    KMS_RETURN_IF_ERR(kms_sha256(entry.record.bytes, entry.record.size, g_prev));
    g_head_known = 1;
    return KMS_OK;
}

kms_err_t kms_audit_record(AuditRecord *rec)
{
    AuditEntry entry = AuditEntry_init_zero;
    uint8_t buf[AuditEntry_size];
    size_t sig_len = 0;
    kms_err_t err = KMS_OK;
    pthread_mutex_lock(&g_lock);
    if (g_key == NULL) goto done; /* no domain audit key (host-only embedding): nothing to chain */
    if (!g_head_known) KMS_GOTO_IF_ERR(err, load_head(), done);
    rec->seq = g_seq + 1;
    memcpy(rec->prev_hash.bytes, g_prev, 32);
    rec->prev_hash.size = 32;
    rec->domain_id.size = kms_domain_id(rec->domain_id.bytes) ? 16 : 0;
    pb_ostream_t rs = pb_ostream_from_buffer(entry.record.bytes, sizeof entry.record.bytes);
    err = KMS_ERR_ENCODE;
    if (!pb_encode(&rs, AuditRecord_fields, rec)) goto done;
    entry.record.size = (pb_size_t)rs.bytes_written;
    KMS_GOTO_IF_ERR(err, kms_sign(g_key, KMS_SIG_ED25519, 0, entry.record.bytes, entry.record.size, KMS_SIGFMT_DER,
                                  entry.signature.bytes, sizeof entry.signature.bytes, &sig_len), done);
    entry.signature.size = (pb_size_t)sig_len;
    pb_ostream_t es = pb_ostream_from_buffer(buf, sizeof buf);
    err = KMS_ERR_ENCODE;
    if (!pb_encode(&es, AuditEntry_fields, &entry)) goto done;
    KMS_GOTO_IF_ERR(err, kms_edge_audit_append(rec->seq, buf, es.bytes_written), done);
    g_seq = rec->seq;
    err = kms_sha256(entry.record.bytes, entry.record.size, g_prev);
done:
    if (err != KMS_OK) g_head_known = 0; /* re-read the head before the next record */
    pthread_mutex_unlock(&g_lock);
    return err;
}
