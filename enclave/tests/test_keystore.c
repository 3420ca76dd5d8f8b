/*
 * test_keystore.c - authenticated key records behind the bounded LRU cache
 * (enclave/src/keystore.c, record.c, domain.c) against a store the test controls:
 * writes are conditional on the revision they replace; reads are authenticated under the
 * domain key with the key id and revision in the AAD (a flipped byte, a record moved to
 * another name, a damaged blob: KMS_ERR_RECORD_CORRUPT); a change evicts the cached copy so the
 * next use reads what the store holds; the cache is bounded and least-recently-used; a
 * reference outlives eviction; nothing works without a domain key.
 */
#include <stdio.h>
#include <string.h>

#include "domain.h"
#include "handlers.h"
#include "keystore.h"
#include "kms/limits.h"
#include "test_util.h"
#include "unit_host.h"

static void id_of(int n, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-%012d", n);
}

/* Store a fresh AES key record n at revision rev (conditional on expected). */
static kms_err_t put_key(int n, uint64_t rev, uint64_t expected)
{
    KeyRecord *rec = calloc(1, sizeof *rec);
    REQUIRE(rec != NULL);
    id_of(n, rec->key_id);
    rec->spec = KeySpec_SYMMETRIC_DEFAULT;
    rec->usage = KeyUsage_ENCRYPT_DECRYPT;
    rec->state = KeyState_ENABLED;
    rec->revision = rev;
    rec->versions_count = 1;
    rec->current_version = 1;
    rec->versions[0].version = 1;
    rec->versions[0].material.size = 32;
    memset(rec->versions[0].material.bytes, n, 32);
    snprintf(rec->description, sizeof rec->description, "rev %llu", (unsigned long long)rev);
    kms_err_t err = kms_keystore_write(rec, expected);
    free(rec);
    return err;
}

static kms_err_t acquire(int n, kms_key **key)
{
    char id[37];
    id_of(n, id);
    return kms_keystore_acquire(id, key);
}

static void test_write_read(void)
{
    kms_key *k = NULL, *k2 = NULL;
    CHECK_EQ(put_key(1, 1, 0), KMS_OK);
    CHECK_EQ(put_key(1, 1, 0), KMS_ERR_CONFLICT); /* exists already */
    unsigned long gets = uh_gets;
    CHECK_EQ(acquire(1, &k), KMS_OK);
    REQUIRE(k != NULL);
    CHECK_EQ(kms_key_record(k)->revision, 1);
    CHECK_EQ(kms_key_record(k)->versions[0].material.bytes[0], 1);
    CHECK_EQ(acquire(1, &k2), KMS_OK); /* cached: no second read */
    CHECK(k2 == k);
    CHECK_EQ(uh_gets, gets + 1);
    kms_keystore_release(k2);
    const KeyVersionMaterial *mat = NULL;
    CHECK_EQ(kms_key_version(k, 0, &mat, NULL), KMS_OK);
    CHECK_EQ(kms_key_version(k, 2, &mat, NULL), KMS_ERR_KEY_VERSION_NOT_FOUND);
    /* A change: conditional on the revision it replaces, then the cache forgets the old copy. */
    CHECK_EQ(put_key(1, 3, 2), KMS_ERR_CONFLICT);
    CHECK_EQ(put_key(1, 2, 1), KMS_OK);
    CHECK_EQ(kms_key_record(k)->revision, 1); /* the old reference stays valid until released */
    CHECK_EQ(acquire(1, &k2), KMS_OK);
    CHECK_EQ(kms_key_record(k2)->revision, 2);
    CHECK(k2 != k);
    kms_keystore_release(k);
    kms_keystore_release(k2);
}

static void test_hostile_store(void)
{
    kms_key *k = NULL;
    char id1[37], id2[37];
    id_of(1, id1), id_of(2, id2);
    CHECK_EQ(put_key(2, 1, 0), KMS_OK);
    uh_record *r1 = uh_record_get(id1), *r2 = uh_record_get(id2);
    REQUIRE(r1 != NULL && r2 != NULL);
    uint8_t *saved = malloc(r1->len);
    size_t saved_len = r1->len;
    REQUIRE(saved != NULL);
    memcpy(saved, r1->blob, saved_len);
    for (size_t at = 0; at < saved_len; at += 97) { /* any flipped byte */
        r1->blob[at] ^= 0x40;
        kms_keystore_clear();
        CHECK_EQ(acquire(1, &k), KMS_ERR_RECORD_CORRUPT);
        r1->blob[at] ^= 0x40;
    }
    uh_record_set(id1, 2, r2->blob, r2->len); /* key 2's record under key 1's name */
    kms_keystore_clear();
    CHECK_EQ(acquire(1, &k), KMS_ERR_RECORD_CORRUPT);
    uh_record_set(id1, 2, saved, saved_len / 2); /* truncated */
    kms_keystore_clear();
    CHECK_EQ(acquire(1, &k), KMS_ERR_RECORD_CORRUPT);
    uh_record_set(id1, 2, saved, saved_len);
    kms_keystore_clear();
    CHECK_EQ(acquire(1, &k), KMS_OK);
    kms_keystore_release(k);
    free(saved);
    CHECK_EQ(acquire(77, &k), KMS_ERR_KEY_NOT_FOUND);
    uh_fail_get = KMS_ERR_STORE_UNAVAILABLE;
    kms_keystore_clear();
    CHECK_EQ(acquire(1, &k), KMS_ERR_STORE_UNAVAILABLE);
    uh_fail_get = KMS_OK;
    uh_fail_put = KMS_ERR_STORE_UNAVAILABLE;
    CHECK_EQ(put_key(3, 1, 0), KMS_ERR_STORE_UNAVAILABLE);
    uh_fail_put = KMS_OK;
    CHECK_EQ(kms_keystore_acquire("", &k), KMS_ERR_INVALID_ARGUMENT);
}

static void test_lru(void)
{
    kms_key *k = NULL;
    kms_keystore_clear();
    for (int n = 100; n < 100 + (int)KMS_RECORD_CACHE_COUNT + 1; n++) {
        REQUIRE(put_key(n, 1, 0) == KMS_OK);
        REQUIRE(acquire(n, &k) == KMS_OK);
        kms_keystore_release(k);
    }
    unsigned long gets = uh_gets;
    CHECK_EQ(acquire(100 + (int)KMS_RECORD_CACHE_COUNT, &k), KMS_OK); /* the newest is cached */
    kms_keystore_release(k);
    CHECK_EQ(uh_gets, gets);
    CHECK_EQ(acquire(100, &k), KMS_OK); /* the oldest was evicted */
    kms_keystore_release(k);
    CHECK_EQ(uh_gets, gets + 1);
}

static void test_no_domain(void)
{
    kms_key *k = NULL;
    kms_domain_reset();
    kms_keystore_clear();
    CHECK_EQ(acquire(1, &k), KMS_ERR_DOMAIN_NOT_LOADED);
    CHECK_EQ(put_key(9, 1, 0), KMS_ERR_DOMAIN_NOT_LOADED);
}

int main(void)
{
    uh_enclave_with_domain();
    test_write_read();
    test_hostile_store();
    test_lru();
    test_no_domain();
    kms_keystore_clear();
    return test_summary();
}
