/* keystore.c - authenticated key records behind a bounded, reference-counted LRU cache. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include "crypto.h"
#include "domain.h"
#include "keyspec.h"
#include "keystore.h"
#include "kms/limits.h"
#include "record.h"

struct kms_key {
    atomic_int refs;
    uint64_t last_use;
    KeyRecord rec;
    EVP_PKEY *pkeys[KMS_MAX_KEY_VERSIONS_COUNT];
};

_Static_assert(KMS_MAX_KEY_VERSIONS_COUNT == sizeof(((KeyRecord *)0)->versions) /
                                             sizeof(((KeyRecord *)0)->versions[0]),
               "limits.h and boundary.options disagree on versions");
_Static_assert(KeyRecord_size + KMS_RECORD_OVERHEAD <= KMS_MAX_RECORD_BLOB, "record blob bound");

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static kms_key *g_cache[KMS_RECORD_CACHE_COUNT];
static uint64_t g_clock;

static void key_free(kms_key *key)
{
    for (size_t i = 0; i < KMS_MAX_KEY_VERSIONS_COUNT; i++) EVP_PKEY_free(key->pkeys[i]);
    OPENSSL_cleanse(key, sizeof *key);
    free(key);
}

void kms_keystore_release(kms_key *key)
{
    if (key != NULL && atomic_fetch_sub(&key->refs, 1) == 1) key_free(key);
}

const KeyRecord *kms_key_record(const kms_key *key) { return &key->rec; }

kms_err_t kms_key_version(const kms_key *key, uint32_t version, const KeyVersionMaterial **mat,
                          EVP_PKEY **pkey)
{
    if (version == 0) version = key->rec.current_version;
    for (pb_size_t i = 0; i < key->rec.versions_count; i++) {
        if (key->rec.versions[i].version == version) {
            *mat = &key->rec.versions[i];
            if (pkey != NULL) *pkey = key->pkeys[i];
            return KMS_OK;
        }
    }
    return KMS_ERR_KEY_VERSION_NOT_FOUND;
}

int kms_key_id_valid(const char *s)
{
    if (strlen(s) != 36) return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return 1;
}

kms_err_t kms_key_id_new(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[16];
    KMS_RETURN_IF_ERR(kms_random(r, sizeof r));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 0xf];
    }
    out[o] = '\0';
    return KMS_OK;
}

/* Check a decoded, authenticated record and parse its asymmetric keys. */
static kms_err_t key_check(const char *key_id, uint64_t revision, kms_key *key)
{
    if (strcmp(key->rec.key_id, key_id) != 0 || key->rec.revision != revision ||
        (key->rec.versions_count == 0) != (key->rec.state == KeyState_DESTROYED)) /* only tombstones are empty */
        return KMS_ERR_RECORD_CORRUPT;
    kms_pkey_kind kind = kms_spec_pkey_kind(key->rec.spec);
    for (pb_size_t i = 0; kind != 0 && i < key->rec.versions_count; i++) {
        const KeyVersionMaterial *m = &key->rec.versions[i];
        if (kms_pkey_from_private_der(kind, m->material.bytes, m->material.size, &key->pkeys[i]) != KMS_OK)
            return KMS_ERR_RECORD_CORRUPT;
    }
    return KMS_OK;
}

/* Fetch, authenticate and decode key_id from the host's store (no lock held). */
static kms_err_t key_load(const char *key_id, kms_key **out)
{
    kms_key *key = calloc(1, sizeof *key);
    uint64_t revision = 0;
    int found = 0;
    if (key == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err = kms_record_load(key_id, KeyRecord_fields, &key->rec, KMS_MAX_RECORD_BLOB - KMS_RECORD_OVERHEAD,
                                    &found, &revision);
    if (err == KMS_OK) err = found ? key_check(key_id, revision, key) : KMS_ERR_KEY_NOT_FOUND;
    if (err != KMS_OK) {
        key_free(key);
        return err;
    }
    atomic_init(&key->refs, 1);
    *out = key;
    return KMS_OK;
}

/* Index of key_id in the cache, or -1. Lock held. */
static int cache_find(const char *key_id)
{
    for (int i = 0; i < (int)KMS_RECORD_CACHE_COUNT; i++)
        if (g_cache[i] != NULL && strcmp(g_cache[i]->rec.key_id, key_id) == 0) return i;
    return -1;
}

/* Put key in the cache (taking one reference), evicting the least recently used. Lock held. */
static void cache_insert(kms_key *key)
{
    int slot = 0;
    for (int i = 0; i < (int)KMS_RECORD_CACHE_COUNT; i++) {
        if (g_cache[i] == NULL) { slot = i; break; }
        if (g_cache[i]->last_use < g_cache[slot]->last_use) slot = i;
    }
    if (g_cache[slot] != NULL) kms_keystore_release(g_cache[slot]);
    atomic_fetch_add(&key->refs, 1);
    key->last_use = ++g_clock;
    g_cache[slot] = key;
}

kms_err_t kms_keystore_acquire(const char *key_id, kms_key **out)
{
    uint8_t id[KMS_DOMAIN_ID_LEN];
    if (!kms_domain_id(id)) return KMS_ERR_DOMAIN_NOT_LOADED;
    if (key_id == NULL || key_id[0] == '\0') return KMS_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&g_lock);
    int i = cache_find(key_id);
    if (i >= 0) {
        atomic_fetch_add(&g_cache[i]->refs, 1);
        g_cache[i]->last_use = ++g_clock;
        *out = g_cache[i];
    }
    pthread_mutex_unlock(&g_lock);
    if (i >= 0) return KMS_OK;
    kms_key *key = NULL;
    KMS_RETURN_IF_ERR(key_load(key_id, &key));
    pthread_mutex_lock(&g_lock);
    i = cache_find(key_id);
    if (i >= 0) { /* another thread loaded it meanwhile: use the cached one */
        kms_keystore_release(key);
        key = g_cache[i];
        atomic_fetch_add(&key->refs, 1);
    } else {
        cache_insert(key);
    }
    pthread_mutex_unlock(&g_lock);
    *out = key;
    return KMS_OK;
}

static void cache_evict(const char *key_id)
{
    pthread_mutex_lock(&g_lock);
    int i = cache_find(key_id);
    if (i >= 0) {
        kms_keystore_release(g_cache[i]);
        g_cache[i] = NULL;
    }
    pthread_mutex_unlock(&g_lock);
}

void kms_keystore_evict(const char *key_id) { cache_evict(key_id); }

void kms_keystore_clear(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < KMS_RECORD_CACHE_COUNT; i++) {
        kms_keystore_release(g_cache[i]);
        g_cache[i] = NULL;
    }
    pthread_mutex_unlock(&g_lock);
}

kms_err_t kms_keystore_write(const KeyRecord *rec, uint64_t expected_revision)
{
    KMS_RETURN_IF_ERR(
        kms_record_store(rec->key_id, KeyRecord_fields, rec, KeyRecord_size, expected_revision, rec->revision));
    cache_evict(rec->key_id);
    return KMS_OK;
}
