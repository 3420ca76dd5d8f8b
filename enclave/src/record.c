/* record.c - named records: get, open and decode; encode, seal and conditional put. */
#include <stdlib.h>

#include <openssl/crypto.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "ocalls.h"
#include "domain.h"
#include "record.h"

kms_err_t kms_record_load(const char *id, const pb_msgdesc_t *fields, void *msg, size_t pt_max, int *found,
                          uint64_t *revision)
{
    size_t blob_cap = pt_max + KMS_RECORD_OVERHEAD, blob_len = 0, pt_len = 0;
    uint8_t *blob = malloc(blob_cap), *pt = malloc(pt_max);
    kms_err_t err = KMS_ERR_OUT_OF_MEMORY;
    *found = 0;
    if (blob == NULL || pt == NULL) goto done;
    KMS_GOTO_IF_ERR(err, kms_edge_store_get(id, blob, blob_cap, &blob_len), done);
    if (blob_len == 0) goto done; /* err is KMS_OK: nothing stored */
    KMS_GOTO_IF_ERR(err, kms_domain_open_record(id, blob, blob_len, pt, pt_max, &pt_len, revision), done);
    pb_istream_t in = pb_istream_from_buffer(pt, pt_len);
    err = pb_decode(&in, fields, msg) ? KMS_OK : KMS_ERR_RECORD_CORRUPT;
    *found = err == KMS_OK;
done:
    if (pt != NULL) OPENSSL_cleanse(pt, pt_max);
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
    err = kms_edge_store_put(id, expected_revision, revision, blob, blob_len);
done:
    if (pt != NULL) OPENSSL_cleanse(pt, pt_max);
    free(pt);
    free(blob);
    return err;
}
