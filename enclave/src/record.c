/*
 * record.c - named records: get, authenticate, check against the state index, decode; encode,
 * seal and commit with the state log entry.
 */
#include <stdlib.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "domain.h"
#include "kms/limits.h"
#include "ocalls.h"
#include "record.h"
#include "statelog.h"

/* One read: fetch, authenticate, and check against the index. */
static kms_err_t load_once(const char *id, uint8_t *blob, size_t blob_cap, uint8_t *pt, size_t pt_max,
                           size_t *pt_len, int *found, uint64_t *revision)
{
    size_t blob_len = 0;
    *found = 0;
    *revision = 0;
    KMS_RETURN_IF_ERR(kms_edge_store_get(id, blob, blob_cap, &blob_len));
    if (blob_len > 0) KMS_RETURN_IF_ERR(kms_domain_open_record(id, blob, blob_len, pt, pt_max, pt_len, revision));
    KMS_RETURN_IF_ERR(kms_state_check(id, blob_len > 0, *revision, blob, blob_len));
    *found = blob_len > 0;
    return KMS_OK;
}

kms_err_t kms_record_load(const char *id, const pb_msgdesc_t *fields, void *msg, size_t pt_max, int *found,
                          uint64_t *revision)
{
    size_t blob_cap = pt_max + KMS_RECORD_OVERHEAD, pt_len = 0;
    uint8_t *blob = malloc(blob_cap), *pt = malloc(pt_max);
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    *found = 0;
    if (blob == NULL || pt == NULL) goto done;
    err = load_once(id, blob, blob_cap, pt, pt_max, &pt_len, found, revision);
    /* A change committed between our read and our check makes what we read look stale: read
     * again once; a store that still answers with another revision is refused. */
    if (err == KMS_ERR_STALE_RECORD) err = load_once(id, blob, blob_cap, pt, pt_max, &pt_len, found, revision);
    if (err != KMS_OK || !*found) goto done;
    pb_istream_t in = pb_istream_from_buffer(pt, pt_len);
    err = pb_decode(&in, fields, msg) ? KMS_OK : KMS_ERR_RECORD_CORRUPT;
    *found = err == KMS_OK;
done:
    if (pt != NULL) OPENSSL_cleanse(pt, pt_max);
    free(pt);
    free(blob);
    return err;
}

kms_err_t kms_record_authenticates(const char *id)
{
    uint8_t *blob = malloc(KMS_MAX_RECORD_BLOB), *pt = malloc(KMS_MAX_RECORD_BLOB);
    size_t len = 0, pt_len = 0;
    uint64_t revision = 0;
    kms_err_t err = blob != NULL && pt != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    if (err == KMS_OK) err = kms_edge_store_get(id, blob, KMS_MAX_RECORD_BLOB, &len);
    if (err == KMS_OK && len == 0) err = KMS_ERR_KEY_NOT_FOUND;
    if (err == KMS_OK) err = kms_domain_open_record(id, blob, len, pt, KMS_MAX_RECORD_BLOB, &pt_len, &revision);
    if (pt != NULL) OPENSSL_cleanse(pt, KMS_MAX_RECORD_BLOB);
    free(pt);
    free(blob);
    return err;
}

kms_err_t kms_record_store(const char *id, const pb_msgdesc_t *fields, const void *msg, size_t pt_max,
                           uint64_t expected_revision, uint64_t revision)
{
    size_t blob_cap = pt_max + KMS_RECORD_OVERHEAD, blob_len = 0;
    uint8_t *pt = malloc(pt_max), *blob = malloc(blob_cap);
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    if (pt == NULL || blob == NULL) goto done;
    pb_ostream_t os = pb_ostream_from_buffer(pt, pt_max);
    err = KMS_ERR_ENCODE;
    if (!pb_encode(&os, fields, msg)) goto done;
    KMS_GOTO_IF_ERR(err, kms_domain_seal_record(id, revision, pt, os.bytes_written, blob, blob_cap, &blob_len), done);
    err = kms_state_commit(id, expected_revision, revision, blob, blob_len);
done:
    if (pt != NULL) OPENSSL_cleanse(pt, pt_max);
    free(pt);
    free(blob);
    return err;
}
