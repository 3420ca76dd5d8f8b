/* audit.c - the audit chain: one signed, hash-chained record per operation, durable before answering;
 * each body sealed to the domain's auditors (audit_epoch.c). A record is queued under the lock (which
 * fixes its place in the chain) and waited for outside it, so concurrent requests share the host's
 * flushes (group commit); a failed wait makes the head unknown, so the next record re-reads it. A record
 * that lost the race to another replica follows the verified head and is queued again (follow_head). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "audit.h"
#include "audit_epoch.h"
#include "crypto.h"
#include "ocalls.h"
#include "domain.h"
#include "ratls.h"

_Static_assert(sizeof(((AuditEntry *)0)->record.bytes) >= AuditRecord_size, "an audit record fits its entry");

/* Attempts of one record that may lose the race to other replicas before it is answered as
 * KMS_ERR_AUDIT_UNAVAILABLE (each loss means the chain moved: another replica's record went in). */
#define AUDIT_ATTEMPTS 16

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *g_key;          /* the domain's audit key, or NULL */
static int g_head_known;         /* the chain head was read from the host */
static uint64_t g_seq;           /* last queued sequence number */
static uint8_t g_prev[32];       /* SHA-256 of the last queued record */
static uint64_t g_gen;           /* bumped at every head read: one generation's entries chain on each other */
static uint64_t g_base;          /* the seq of the head read last (0: an empty chain) */
static int g_follows;            /* the next entry follows one this generation queued (not the head read) */
static kms_auditors g_auditors;  /* who reads the bodies (public keys) */
static kms_audit_epoch g_epoch;  /* the epoch sealing bodies now (its key is secret) */

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
    kms_audit_epoch_close(&g_epoch);
    memset(&g_auditors, 0, sizeof g_auditors); /* until kms_audit_set_auditors: sealed to no one, never clear */
    pthread_mutex_unlock(&g_lock);
    return kms_ratls_set_audit_key(key != NULL ? pub : NULL); /* bind it into the attestation claims */
}

void kms_audit_set_auditors(const kms_auditors *auditors)
{
    pthread_mutex_lock(&g_lock);
    g_auditors = *auditors;
    kms_audit_epoch_close(&g_epoch); /* the next record opens an epoch for exactly these auditors */
    pthread_mutex_unlock(&g_lock);
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
    uint8_t *buf = malloc(AuditEntry_size);
    AuditEntry *entry = calloc(1, sizeof *entry);
    AuditRecord *rec = calloc(1, sizeof *rec);
    size_t len = 0;
    kms_err_t err = buf != NULL && entry != NULL && rec != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    if (err == KMS_OK) err = kms_edge_audit_head(buf, AuditEntry_size, &len);
    if (err == KMS_OK && len == 0) {
        g_seq = 0;
        memset(g_prev, 0, sizeof g_prev);
    } else if (err == KMS_OK) {
        pb_istream_t is = pb_istream_from_buffer(buf, len);
        err = pb_decode(&is, AuditEntry_fields, entry) &&
                      kms_verify(g_key, KMS_SIG_ED25519, 0, entry->record.bytes, entry->record.size, KMS_SIGFMT_DER,
                                 entry->signature.bytes, entry->signature.size) == KMS_OK
                  ? KMS_OK
                  : KMS_ERR_AUDIT_CORRUPT;
        pb_istream_t rs = pb_istream_from_buffer(entry->record.bytes, entry->record.size);
        if (err == KMS_OK && !pb_decode(&rs, AuditRecord_fields, rec)) err = KMS_ERR_AUDIT_CORRUPT;
        if (err == KMS_OK) err = kms_sha256(entry->record.bytes, entry->record.size, g_prev);
        if (err == KMS_OK) g_seq = rec->seq;
    }
    g_head_known = err == KMS_OK;
    g_base = g_seq;
    g_gen++;
    g_follows = 0;
    free(buf);
    free(entry);
    free(rec);
    return err;
}

/* The body, in clear (a domain that chose so at init) or sealed under the epoch, opening a new
 * one when it is due (lock held). */
static kms_err_t put_body(const AuditBody *body, AuditRecord *rec)
{
    if (g_auditors.clear_bodies) {
        rec->has_clear_body = true;
        rec->clear_body = *body;
        return KMS_OK;
    }
    if (kms_audit_epoch_due(&g_epoch, rec->seq)) KMS_RETURN_IF_ERR(kms_audit_epoch_open(&g_epoch, &g_auditors, rec));
    return kms_audit_epoch_seal(&g_epoch, body, rec);
}

/* Encode rec, sign it and queue the entry (lock held); on success the chain advances. */
static kms_err_t sign_and_queue(const AuditRecord *rec, AuditEntry *entry, uint8_t *buf, uint64_t *ticket)
{
    size_t sig_len = 0;
    uint8_t hash[32];
    pb_ostream_t rs = pb_ostream_from_buffer(entry->record.bytes, sizeof entry->record.bytes);
    if (!pb_encode(&rs, AuditRecord_fields, rec)) return KMS_ERR_ENCODE;
    entry->record.size = (pb_size_t)rs.bytes_written;
    KMS_RETURN_IF_ERR(kms_sign(g_key, KMS_SIG_ED25519, 0, entry->record.bytes, entry->record.size, KMS_SIGFMT_DER,
                               entry->signature.bytes, sizeof entry->signature.bytes, &sig_len));
    entry->signature.size = (pb_size_t)sig_len;
    KMS_RETURN_IF_ERR(kms_sha256(entry->record.bytes, entry->record.size, hash));
    pb_ostream_t es = pb_ostream_from_buffer(buf, AuditEntry_size);
    if (!pb_encode(&es, AuditEntry_fields, entry)) return KMS_ERR_ENCODE;
    KMS_RETURN_IF_ERR(kms_edge_audit_enqueue(rec->seq, g_follows, buf, es.bytes_written, ticket));
    g_seq = rec->seq;
    g_follows = 1;
    memcpy(g_prev, hash, sizeof hash);
    return KMS_OK;
}

/* One record for body after the head (read first when unknown), signed and queued (lock held). */
static kms_err_t chain_one(const AuditBody *body, int64_t time, AuditRecord *rec, AuditEntry *entry, uint8_t *buf,
                           uint64_t *ticket)
{
    if (!g_head_known) {
        kms_audit_epoch_close(&g_epoch); /* an epoch never spans a re-read of the head */
        KMS_RETURN_IF_ERR(load_head());
    }
    memset(rec, 0, sizeof *rec);
    memset(entry, 0, sizeof *entry);
    rec->seq = g_seq + 1;
    memcpy(rec->prev_hash.bytes, g_prev, 32);
    rec->prev_hash.size = 32;
    rec->time = time;
    rec->domain_id.size = kms_domain_id(rec->domain_id.bytes) ? KMS_DOMAIN_ID_LEN : 0;
    KMS_RETURN_IF_ERR(put_body(body, rec));
    return sign_and_queue(rec, entry, buf, ticket);
}

/* A record of generation gen failed: unless the head was re-read since, read it before the next one. */
static void head_unknown(uint64_t gen)
{
    pthread_mutex_lock(&g_lock);
    if (gen == g_gen) g_head_known = 0;
    pthread_mutex_unlock(&g_lock);
}

kms_err_t kms_audit_queue(const AuditBody *body, int64_t time, kms_audit_ticket *t)
{
    AuditRecord *rec = calloc(1, sizeof *rec);
    AuditEntry *entry = calloc(1, sizeof *entry);
    uint8_t *buf = malloc(AuditEntry_size);
    kms_err_t err = rec != NULL && entry != NULL && buf != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    memset(t, 0, sizeof *t);
    pthread_mutex_lock(&g_lock);
    if (err == KMS_OK && g_key != NULL) { /* no domain audit key (host-only embedding): nothing to chain */
        err = chain_one(body, time, rec, entry, buf, &t->ticket);
        t->queued = err == KMS_OK;
        t->gen = g_gen;
        t->base = g_base;
        if (err != KMS_OK) g_head_known = 0; /* re-read the head (and open a new epoch) before the next record */
    }
    pthread_mutex_unlock(&g_lock);
    if (rec != NULL) kms_wipe(rec, sizeof *rec); /* a clear body, in the insecure mode */
    if (entry != NULL) kms_wipe(entry, sizeof *entry);
    if (buf != NULL) kms_wipe(buf, AuditEntry_size);
    free(rec);
    free(entry);
    free(buf);
    return err;
}

kms_err_t kms_audit_wait(const kms_audit_ticket *t)
{
    if (!t->queued) return KMS_OK;
    kms_err_t err = kms_edge_audit_wait(t->ticket);
    if (err != KMS_OK) head_unknown(t->gen);
    return err;
}

/*
 * Replicas share the chain: a record the host refused (KMS_ERR_CONFLICT: another replica took its
 * seq, or the entry it follows) reads the head again, verifying its signature, unless it was re-read
 * since t was queued, and is built again after it (a new epoch). Only a head that moved past the one
 * t's chain started from counts: a host that claims a race the head does not show gets no second
 * record, and each retry needs the chain to have moved again.
 */
static kms_err_t follow_head(const kms_audit_ticket *t)
{
    kms_err_t err = KMS_OK;
    pthread_mutex_lock(&g_lock);
    if (t->gen == g_gen || !g_head_known) {
        kms_audit_epoch_close(&g_epoch); /* an epoch never spans a re-read of the head */
        err = load_head();
    }
    if (err == KMS_OK && g_base <= t->base) err = KMS_ERR_AUDIT_UNAVAILABLE;
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_audit_record(const AuditBody *body, int64_t time)
{
    kms_audit_ticket t;
    kms_err_t err = KMS_OK;
    for (int attempt = 1;; attempt++) {
        err = kms_audit_queue(body, time, &t);
        if (err == KMS_OK) err = kms_audit_wait(&t);
        if (err == KMS_OK) break;
        if (err == KMS_ERR_CONFLICT ? attempt >= AUDIT_ATTEMPTS : attempt > 1) break; /* a failing store: 2 tries */
        if (err == KMS_ERR_CONFLICT && (err = follow_head(&t)) != KMS_OK) break;
    }
    return err == KMS_ERR_CONFLICT ? KMS_ERR_AUDIT_UNAVAILABLE : err; /* lost the race every time */
}
