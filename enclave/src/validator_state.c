/*
 * validator_state.c - the double-sign guard's state record ("vstate-<key id>"), encrypted under
 * the domain key like a key record and written with a conditional store_put before any
 * signature that depends on it leaves the enclave. A missing or corrupt state stops signing.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <pb_encode.h>

#include "ocalls.h"
#include "domain.h"
#include "keystore.h"
#include "record.h"
#include "statelog.h"
#include "validator.h"

#define STATE_BLOB_MAX (ValidatorGuardState_size + KMS_RECORD_OVERHEAD)

static void state_id(const char *key_id, char out[KMS_VSTATE_ID_LEN])
{
    snprintf(out, KMS_VSTATE_ID_LEN, "vstate-%s", key_id);
}

kms_err_t kms_vstate_load(const char *key_id, ValidatorGuardState *st)
{
    char id[KMS_VSTATE_ID_LEN];
    uint64_t revision = 0;
    int found = 0;
    state_id(key_id, id);
    memset(st, 0, sizeof *st);
    KMS_RETURN_IF_ERR(kms_record_load(id, ValidatorGuardState_fields, st, ValidatorGuardState_size, &found, &revision));
    /* Created with the key: a missing state means a tampered store. */
    if (!found || st->revision != revision || strcmp(st->key_id, key_id) != 0) return KMS_ERR_RECORD_CORRUPT;
    return KMS_OK;
}

kms_err_t kms_vstate_indexed_revision(const char *key_id, uint64_t *revision)
{
    char id[KMS_VSTATE_ID_LEN];
    state_id(key_id, id);
    return kms_state_revision(id, revision);
}

kms_err_t kms_vstate_store(const ValidatorGuardState *st)
{
    char id[KMS_VSTATE_ID_LEN];
    state_id(st->key_id, id);
    return kms_record_store(id, ValidatorGuardState_fields, st, ValidatorGuardState_size, st->revision - 1,
                            st->revision);
}

kms_err_t kms_vstate_create(const char *key_id, const char *chain_id, int64_t height, int32_t round, uint32_t step,
                            const uint8_t *sign_bytes, size_t sign_len, const uint8_t *sig, size_t sig_len)
{
    ValidatorGuardState st;
    memset(&st, 0, sizeof st);
    if (sign_len > sizeof st.sign_bytes.bytes || sig_len > sizeof st.signature.bytes || height < 0 || round < 0 ||
        step > KMS_STEP_PRECOMMIT)
        return KMS_ERR_INVALID_ARGUMENT;
    snprintf(st.key_id, sizeof st.key_id, "%s", key_id);
    snprintf(st.chain_id, sizeof st.chain_id, "%s", chain_id);
    st.revision = 1;
    st.height = height;
    st.round = round;
    st.step = step;
    if (sign_len > 0) memcpy(st.sign_bytes.bytes, sign_bytes, sign_len);
    st.sign_bytes.size = (pb_size_t)sign_len;
    if (sig_len > 0) memcpy(st.signature.bytes, sig, sig_len);
    st.signature.size = (pb_size_t)sig_len;
    return kms_vstate_store(&st);
}

kms_err_t kms_vstate_mac(const ValidatorStateExport *exp, uint8_t mac[32])
{
    static const char info[] = "enclave-kms validator state export v1";
    uint8_t dk[32], key[32], buf[ValidatorStateExport_size];
    ValidatorStateExport unsigned_copy = *exp;
    unsigned_copy.mac.size = 0;
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    size_t len = 0;
    kms_err_t err = pb_encode(&os, ValidatorStateExport_fields, &unsigned_copy) ? KMS_OK : KMS_ERR_ENCODE;
    if (err == KMS_OK) err = kms_domain_copy_key(dk);
    if (err == KMS_OK) err = kms_hkdf_sha256(NULL, 0, dk, sizeof dk, (const uint8_t *)info, sizeof info - 1, key, 32);
    if (err == KMS_OK) err = kms_hmac(KMS_MD_SHA256, key, sizeof key, buf, os.bytes_written, mac, 32, &len);
    OPENSSL_cleanse(dk, sizeof dk);
    OPENSSL_cleanse(key, sizeof key);
    return err;
}
