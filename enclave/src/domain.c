/*
 * domain.c - the domain key: generation, sealing to MRSIGNER, loading, and the record
 * encryption that every stored key record goes through.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ocalls.h"
#include "crypto.h"
#include "domain.h"
#include "platform.h"
#include "seal.h"

#define DK_LEN 32u
/* Clear MAC text of the sealed DK: a label and the domain id. */
static const char k_dk_label[16] = "KMS-DOMAIN-KEY1";
static const uint8_t k_record_magic[5] = {'K', 'M', 'S', 'R', 1};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_loaded;
static uint8_t g_dk[DK_LEN];
static uint8_t g_id[KMS_DOMAIN_ID_LEN];

/* Copy the DK out under the lock (callers wipe their copy). */
static kms_err_t dk_copy(uint8_t dk[DK_LEN], uint8_t id[KMS_DOMAIN_ID_LEN])
{
    pthread_mutex_lock(&g_lock);
    int loaded = g_loaded;
    if (loaded) {
        memcpy(dk, g_dk, DK_LEN);
        memcpy(id, g_id, KMS_DOMAIN_ID_LEN);
    }
    pthread_mutex_unlock(&g_lock);
    return loaded ? KMS_OK : KMS_ERR_DOMAIN_NOT_LOADED;
}

static kms_err_t dk_install(const uint8_t dk[DK_LEN], const uint8_t id[KMS_DOMAIN_ID_LEN])
{
    kms_err_t err = KMS_ERR_DOMAIN_ALREADY_LOADED;
    pthread_mutex_lock(&g_lock);
    if (!g_loaded) {
        memcpy(g_dk, dk, DK_LEN);
        memcpy(g_id, id, KMS_DOMAIN_ID_LEN);
        g_loaded = 1;
        err = KMS_OK;
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_domain_install_recovered(const uint8_t dk[32], const uint8_t id[KMS_DOMAIN_ID_LEN], uint8_t *sealed,
                                       size_t cap, size_t *sealed_len)
{
    uint8_t aad[sizeof k_dk_label + KMS_DOMAIN_ID_LEN];
    memcpy(aad, k_dk_label, sizeof k_dk_label);
    memcpy(aad + sizeof k_dk_label, id, KMS_DOMAIN_ID_LEN);
    KMS_RETURN_IF_ERR(kms_seal(dk, DK_LEN, aad, sizeof aad, sealed, cap, sealed_len));
    return dk_install(dk, id);
}

void kms_domain_reset(void)
{
    pthread_mutex_lock(&g_lock);
    OPENSSL_cleanse(g_dk, sizeof g_dk);
    OPENSSL_cleanse(g_id, sizeof g_id);
    g_loaded = 0;
    pthread_mutex_unlock(&g_lock);
}

kms_err_t kms_domain_copy_key(uint8_t dk[32])
{
    uint8_t id[KMS_DOMAIN_ID_LEN];
    return dk_copy(dk, id);
}

int kms_domain_id(uint8_t id[KMS_DOMAIN_ID_LEN])
{
    uint8_t dk[DK_LEN];
    int loaded = dk_copy(dk, id) == KMS_OK;
    OPENSSL_cleanse(dk, sizeof dk);
    return loaded;
}

kms_err_t kms_domain_generate(uint8_t *sealed, size_t cap, size_t *sealed_len,
                              uint8_t id[KMS_DOMAIN_ID_LEN])
{
    uint8_t dk[DK_LEN], aad[sizeof k_dk_label + KMS_DOMAIN_ID_LEN], cur[KMS_DOMAIN_ID_LEN];
    kms_err_t err = KMS_ERR_DOMAIN_ALREADY_LOADED;
    if (kms_domain_id(cur)) goto done;
    KMS_GOTO_IF_ERR(err, kms_random(dk, sizeof dk), done);
    KMS_GOTO_IF_ERR(err, kms_random(id, KMS_DOMAIN_ID_LEN), done);
    memcpy(aad, k_dk_label, sizeof k_dk_label);
    memcpy(aad + sizeof k_dk_label, id, KMS_DOMAIN_ID_LEN);
    KMS_GOTO_IF_ERR(err, kms_seal(dk, sizeof dk, aad, sizeof aad, sealed, cap, sealed_len), done);
    /* Install only after the sealed copy exists, so the host always gets what it must keep. */
    err = dk_install(dk, id);
done:
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}

/*
 * An upgraded enclave (higher ISVSVN) re-seals the domain key under its own ISVSVN and hands it to
 * the host, so an older (possibly vulnerable) build can no longer unseal what the host keeps from
 * now on. Best effort: a host that declines keeps the older blob (documented limit).
 */
static void reseal_if_older(const uint8_t *sealed, const uint8_t *dk, const uint8_t *aad, size_t aad_len)
{
    kms_identity self;
    uint8_t fresh[KMS_SEALED_SIZE(DK_LEN, sizeof k_dk_label + KMS_DOMAIN_ID_LEN)];
    size_t fresh_len = 0;
    uint16_t sealed_svn = (uint16_t)(sealed[4] | (sealed[5] << 8)); /* KEYREQUEST.ISVSVN */
    if (platform_self_identity(&self) != KMS_OK || sealed_svn >= self.isvsvn) return;
    if (kms_seal(dk, DK_LEN, aad, aad_len, fresh, sizeof fresh, &fresh_len) == KMS_OK)
        (void)kms_edge_store_put(KMS_SEALED_DOMAIN_KEY_ID, 1, 2, fresh, fresh_len);
    OPENSSL_cleanse(fresh, sizeof fresh);
}

kms_err_t kms_domain_load(const uint8_t *sealed, size_t len, uint8_t id[KMS_DOMAIN_ID_LEN])
{
    uint8_t dk[DK_LEN + 1], aad[sizeof k_dk_label + KMS_DOMAIN_ID_LEN + 1];
    size_t dk_len = 0, aad_len = 0;
    kms_err_t err;
    err = kms_unseal(sealed, len, dk, sizeof dk, &dk_len, aad, sizeof aad, &aad_len);
    if (err == KMS_ERR_BUFFER_TOO_SMALL) err = KMS_ERR_SEAL_MALFORMED; /* sized for another secret */
    if (err != KMS_OK) goto done;
    if (dk_len != DK_LEN || aad_len != sizeof k_dk_label + KMS_DOMAIN_ID_LEN ||
        memcmp(aad, k_dk_label, sizeof k_dk_label) != 0) {
        err = KMS_ERR_SEAL_MALFORMED;
        goto done;
    }
    memcpy(id, aad + sizeof k_dk_label, KMS_DOMAIN_ID_LEN);
    err = dk_install(dk, id);
    if (err == KMS_OK) reseal_if_older(sealed, dk, aad, aad_len);
done:
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}

/* AAD = magic | domain id | key id length u8 | key id | revision u64 BE. */
static size_t record_aad(uint8_t *aad, const uint8_t id[KMS_DOMAIN_ID_LEN], const char *key_id,
                         size_t key_id_len, uint64_t revision)
{
    size_t n = 0;
    memcpy(aad, k_record_magic, sizeof k_record_magic);
    n += sizeof k_record_magic;
    memcpy(aad + n, id, KMS_DOMAIN_ID_LEN);
    n += KMS_DOMAIN_ID_LEN;
    aad[n++] = (uint8_t)key_id_len;
    memcpy(aad + n, key_id, key_id_len);
    n += key_id_len;
    for (int i = 7; i >= 0; i--) aad[n++] = (uint8_t)(revision >> (8 * i));
    return n;
}

kms_err_t kms_domain_seal_record(const char *key_id, uint64_t revision, const uint8_t *pt,
                                 size_t pt_len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t key_id_len = strlen(key_id);
    if (key_id_len == 0 || key_id_len > 64) return KMS_ERR_INVALID_ARGUMENT;
    if (cap < pt_len + KMS_RECORD_OVERHEAD) return KMS_ERR_BUFFER_TOO_SMALL;
    uint8_t dk[DK_LEN], id[KMS_DOMAIN_ID_LEN], aad[5 + KMS_DOMAIN_ID_LEN + 1 + 64 + 8];
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, dk_copy(dk, id), done);
    size_t aad_len = record_aad(aad, id, key_id, key_id_len, revision);
    memcpy(out, k_record_magic, 5);
    for (int i = 0; i < 8; i++) out[5 + i] = (uint8_t)(revision >> (8 * (7 - i)));
    KMS_GOTO_IF_ERR(err, kms_random(out + 13, KMS_GCM_IV_LEN), done);
    KMS_GOTO_IF_ERR(err, kms_aes_gcm_seal(dk, DK_LEN, out + 13, KMS_GCM_IV_LEN, aad, aad_len, pt,
                                          pt_len, out + 25, out + 25 + pt_len), done);
    *out_len = pt_len + KMS_RECORD_OVERHEAD;
done:
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}

kms_err_t kms_domain_open_record(const char *key_id, const uint8_t *blob, size_t len,
                                 uint8_t *pt, size_t cap, size_t *pt_len, uint64_t *revision)
{
    size_t key_id_len = strlen(key_id);
    if (key_id_len == 0 || key_id_len > 64) return KMS_ERR_INVALID_ARGUMENT;
    if (len < KMS_RECORD_OVERHEAD || memcmp(blob, k_record_magic, 5) != 0) return KMS_ERR_RECORD_CORRUPT;
    size_t ct_len = len - KMS_RECORD_OVERHEAD;
    if (ct_len > cap) return KMS_ERR_RECORD_TOO_LARGE;
    uint64_t rev = 0;
    for (int i = 0; i < 8; i++) rev = (rev << 8) | blob[5 + i];
    uint8_t dk[DK_LEN], id[KMS_DOMAIN_ID_LEN], aad[5 + KMS_DOMAIN_ID_LEN + 1 + 64 + 8];
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, dk_copy(dk, id), done);
    size_t aad_len = record_aad(aad, id, key_id, key_id_len, rev);
    if (kms_aes_gcm_open(dk, DK_LEN, blob + 13, KMS_GCM_IV_LEN, aad, aad_len, blob + 25, ct_len,
                         blob + 25 + ct_len, KMS_GCM_TAG_LEN, pt) != KMS_OK) {
        err = KMS_ERR_RECORD_CORRUPT;
        goto done;
    }
    *pt_len = ct_len;
    *revision = rev;
done:
    OPENSSL_cleanse(dk, sizeof dk);
    return err;
}
