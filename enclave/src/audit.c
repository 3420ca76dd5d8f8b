/* audit.c - the audit chain: one signed, hash-chained record per operation, appended before answering. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "audit.h"
#include "authz.h"
#include "crypto.h"
#include "dispatch.h"
#include "domain.h"
#include "policy.h"
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

/* The key id a request names (or the resolved one its response carries). */
static const char *request_key(const Request *req, const Response *resp)
{
    switch (req->which_op) {
    case Request_create_key_tag: case Request_rotate_key_tag: case Request_set_key_state_tag:
    case Request_describe_key_tag: case Request_schedule_key_deletion_tag: case Request_cancel_key_deletion_tag:
    case Request_destroy_key_tag: case Request_update_key_tag: case Request_rotate_if_due_tag:
    case Request_grant_key_tag: case Request_import_validator_tag: case Request_import_key_material_tag:
    case Request_put_key_policy_tag: case Request_export_key_tag: case Request_import_transferred_key_tag: case Request_create_grant_tag: case Request_revoke_grant_tag: case Request_list_grants_tag:
        return resp->which_result == Response_key_metadata_tag ? resp->result.key_metadata.key_id
               : req->which_op == Request_create_key_tag        ? ""
                                                                : req->op.describe_key.key_id;
    case Request_encrypt_tag: return resp->which_result == Response_encrypt_tag ? resp->result.encrypt.key_id : req->op.encrypt.key_id;
    case Request_decrypt_tag: return resp->which_result == Response_decrypt_tag ? resp->result.decrypt.key_id : "?";
    case Request_sign_tag: return req->op.sign.key_id;
    case Request_verify_tag: return req->op.verify.key_id;
    case Request_generate_mac_tag: return req->op.generate_mac.key_id;
    case Request_verify_mac_tag: return req->op.verify_mac.key_id;
    case Request_get_public_key_tag: return req->op.get_public_key.key_id;
    case Request_validator_sign_tag: return req->op.validator_sign.key_id;
    case Request_generate_data_key_tag: return req->op.generate_data_key.key_id;
    default: return "";
    }
}

static void fill_record(const Request *req, const Response *resp, kms_err_t outcome, AuditRecord *rec)
{
    const kms_caller *caller = kms_caller_get();
    rec->seq = g_seq + 1;
    memcpy(rec->prev_hash.bytes, g_prev, 32);
    rec->prev_hash.size = 32;
    rec->time = req->host_time;
    snprintf(rec->operation, sizeof rec->operation, "%s", kms_op_name(req->which_op));
    snprintf(rec->key_id, sizeof rec->key_id, "%s", request_key(req, resp));
    const pb_bytes_array_t *ct = (const pb_bytes_array_t *)(const void *)&req->op.decrypt.ciphertext;
    if (strcmp(rec->key_id, "?") == 0) { /* a failed decrypt: name the key its ciphertext claims, if any */
        rec->key_id[0] = '\0';
        if (ct->size > 38 && ct->bytes[0] == 0x01 && ct->bytes[1] == 36) {
            memcpy(rec->key_id, ct->bytes + 2, 36);
            rec->key_id[36] = '\0';
        }
    }
    if (!caller->host) {
        memcpy(rec->principal.bytes, caller->principal, 32);
        rec->principal.size = 32;
    }
    rec->outcome = outcome;
    rec->key_version = resp->which_result == Response_encrypt_tag ? resp->result.encrypt.key_version
                       : resp->which_result == Response_decrypt_tag ? resp->result.decrypt.key_version
                       : resp->which_result == Response_sign_tag    ? resp->result.sign.key_version
                                                                    : 0;
    rec->domain_id.size = kms_domain_id(rec->domain_id.bytes) ? 16 : 0;
    rec->policy_hash.size = kms_policy_last_hash(rec->policy_hash.bytes) ? 32 : 0;
}

kms_err_t kms_audit_record(const Request *req, const Response *resp, kms_err_t outcome)
{
    AuditRecord rec = AuditRecord_init_zero;
    AuditEntry entry = AuditEntry_init_zero;
    uint8_t buf[AuditEntry_size];
    size_t sig_len = 0;
    kms_err_t err = KMS_OK;
    pthread_mutex_lock(&g_lock);
    if (g_key == NULL) goto done; /* no domain audit key (host-only embedding): nothing to chain */
    if (!g_head_known) KMS_GOTO_IF_ERR(err, load_head(), done);
    fill_record(req, resp, outcome, &rec);
    pb_ostream_t rs = pb_ostream_from_buffer(entry.record.bytes, sizeof entry.record.bytes);
    err = KMS_ERR_ENCODE;
    if (!pb_encode(&rs, AuditRecord_fields, &rec)) goto done;
    entry.record.size = (pb_size_t)rs.bytes_written;
    KMS_GOTO_IF_ERR(err, kms_sign(g_key, KMS_SIG_ED25519, 0, entry.record.bytes, entry.record.size, KMS_SIGFMT_DER,
                                  entry.signature.bytes, sizeof entry.signature.bytes, &sig_len), done);
    entry.signature.size = (pb_size_t)sig_len;
    pb_ostream_t es = pb_ostream_from_buffer(buf, sizeof buf);
    err = KMS_ERR_ENCODE;
    if (!pb_encode(&es, AuditEntry_fields, &entry)) goto done;
    KMS_GOTO_IF_ERR(err, kms_edge_audit_append(rec.seq, buf, es.bytes_written), done);
    g_seq = rec.seq;
    err = kms_sha256(entry.record.bytes, entry.record.size, g_prev);
done:
    if (err != KMS_OK) g_head_known = 0; /* re-read the head before the next record */
    pthread_mutex_unlock(&g_lock);
    return err;
}
