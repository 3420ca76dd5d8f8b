/*
 * test_statelog.c - state integrity (enclave/src/statelog*.c, index.c) against a hostile store:
 *  - live: after a change, an older authentic revision, another copy of the same revision, a
 *    record the log never had, or a hidden record is KMS_ERR_STALE_RECORD, however the cache was
 *    flushed; the host cannot make the enclave forget;
 *  - restart: a store whose records match the log's head starts; one record older than the log
 *    (or missing) is refused and named; a consistent older copy of the whole store starts, with
 *    an older head (what clients detect); a log that does not authenticate is refused;
 *  - a host that writes a commit and reports a failure is caught up with, not diverged from;
 *  - heads: known, ahead (rolled back), forked; the clock never moves back, across restarts.
 */
#include <stdio.h>
#include <string.h>

#include "domain.h"
#include "handlers.h"
#include "index.h"
#include "statelog.h"
#include "keystore.h"
#include "statelog.h"
#include "test_util.h"
#include "unit_host.h"

static char g_detail[256];

static void id_of(int n, char out[37]) { snprintf(out, 37, "00000000-0000-4000-8000-%012d", n); }

static kms_err_t put_key(int n, uint64_t rev)
{
    KeyRecord *rec = calloc(1, sizeof *rec);
    REQUIRE(rec != NULL);
    id_of(n, rec->key_id);
    rec->spec = KeySpec_SYMMETRIC_DEFAULT, rec->usage = KeyUsage_ENCRYPT_DECRYPT, rec->state = KeyState_ENABLED;
    rec->revision = rev, rec->versions_count = 1, rec->current_version = 1, rec->versions[0].version = 1;
    rec->versions[0].material.size = 32;
    memset(rec->versions[0].material.bytes, (int)(n + rev), 32);
    kms_err_t err = kms_keystore_write(rec, rev - 1);
    free(rec);
    return err;
}

static kms_err_t read_key(int n, uint64_t *rev)
{
    char id[37];
    kms_key *k = NULL;
    id_of(n, id);
    kms_keystore_clear(); /* whatever the host did to flush the cache */
    kms_err_t err = kms_keystore_acquire(id, &k);
    if (err == KMS_OK) *rev = kms_key_record(k)->revision;
    kms_keystore_release(k);
    return err;
}

/* A copy of the stored blob of key n. */
static uint8_t *save(int n, size_t *len, uint64_t *rev)
{
    char id[37];
    id_of(n, id);
    uh_record *r = uh_record_get(id);
    REQUIRE(r != NULL);
    uint8_t *copy = malloc(r->len);
    REQUIRE(copy != NULL);
    memcpy(copy, r->blob, r->len);
    *len = r->len, *rev = r->revision;
    return copy;
}

static void put_back(int n, const uint8_t *blob, size_t len, uint64_t rev)
{
    char id[37];
    id_of(n, id);
    uh_record_set(id, rev, blob, len);
}

static size_t g_damaged;

static kms_err_t restart(void)
{
    kms_state_close();
    kms_keystore_clear();
    return kms_state_open(0, g_detail, sizeof g_detail, &g_damaged);
}

static void test_live_replay(void)
{
    uint64_t rev = 0, old_rev = 0;
    size_t old_len = 0;
    REQUIRE(put_key(1, 1) == KMS_OK);
    uint8_t *v1 = save(1, &old_len, &old_rev);
    REQUIRE(put_key(1, 2) == KMS_OK && put_key(1, 3) == KMS_OK);
    CHECK_EQ(read_key(1, &rev), KMS_OK);
    CHECK_EQ(rev, 3);
    put_back(1, v1, old_len, old_rev); /* an older, authentic revision */
    CHECK_EQ(read_key(1, &rev), KMS_ERR_STALE_RECORD);
    /* Another copy of the current revision (say, of a commit the host claimed failed). */
    uint8_t other[1024];
    size_t other_len = 0;
    char id[37];
    id_of(1, id);
    static const uint8_t pt[] = {0x0a, 0x01, 0x78};
    REQUIRE(kms_domain_seal_record(id, 3, pt, sizeof pt, other, sizeof other, &other_len) == KMS_OK);
    put_back(1, other, other_len, 3);
    CHECK_EQ(read_key(1, &rev), KMS_ERR_STALE_RECORD);
    /* A record the log never had, and a record the host hides. */
    char ghost[37];
    id_of(9, ghost);
    REQUIRE(kms_domain_seal_record(ghost, 1, pt, sizeof pt, other, sizeof other, &other_len) == KMS_OK);
    uh_record_set(ghost, 1, other, other_len);
    CHECK_EQ(read_key(9, &rev), KMS_ERR_STALE_RECORD);
    REQUIRE(put_key(2, 1) == KMS_OK);
    char two[37];
    id_of(2, two);
    uh_record *r2 = uh_record_get(two);
    size_t keep = r2->len;
    r2->len = 0; /* the store now answers "no such record" */
    CHECK_EQ(read_key(2, &rev), KMS_ERR_STALE_RECORD);
    r2->len = keep;
    CHECK_EQ(read_key(2, &rev), KMS_OK);
    free(v1);
}

static void test_restart(void)
{
    uint64_t rev = 0, seq = 0, old_rev = 0;
    uint8_t head[32];
    size_t len = 0;
    uh_enclave_with_domain();
    for (int n = 1; n <= 5; n++) REQUIRE(put_key(n, 1) == KMS_OK);
    uh_snapshot(0); /* a consistent store at seq 5 */
    REQUIRE(put_key(3, 2) == KMS_OK);
    uint8_t *v2 = save(3, &len, &old_rev);
    REQUIRE(put_key(3, 3) == KMS_OK);
    CHECK_EQ(restart(), KMS_OK); /* what the log says: starts */
    CHECK_EQ(kms_state_head(&seq, head), KMS_OK);
    CHECK_EQ(seq, 7);
    CHECK_EQ(read_key(3, &rev), KMS_OK);
    put_back(3, v2, len, old_rev); /* one record older than the log */
    CHECK_EQ(restart(), KMS_ERR_STALE_RECORD);
    CHECK(strstr(g_detail, "00000000-0000-4000-8000-000000000003 is at revision 2") != NULL);
    CHECK_EQ(read_key(1, &rev), KMS_ERR_DOMAIN_NOT_LOADED); /* nothing is served */
    uh_restore(0); /* a consistent older prefix: starts, at the older head */
    CHECK_EQ(restart(), KMS_OK);
    CHECK_EQ(kms_state_head(&seq, head), KMS_OK);
    CHECK_EQ(seq, 5);
    size_t n = 0;
    uint8_t *entry = uh_log_entry(uh_log_count() - 1, &n);
    entry[n - 1] ^= 1; /* a head that does not authenticate */
    CHECK_EQ(restart(), KMS_ERR_RECORD_CORRUPT);
    CHECK(strstr(g_detail, "head") != NULL);
    entry[n - 1] ^= 1;
    REQUIRE(restart() == KMS_OK && put_key(3, 2) == KMS_OK && put_key(3, 3) == KMS_OK); /* back to seq 7 */
    uh_log_drop(1); /* the log loses its last entry: the store is ahead of it */
    CHECK_EQ(restart(), KMS_ERR_STALE_RECORD);
    CHECK(strstr(g_detail, "000000000003 is at revision 3, the state log says revision 2") != NULL);
    uh_restore(0);
    CHECK_EQ(restart(), KMS_OK);
    CHECK_EQ(kms_state_open(1, g_detail, sizeof g_detail, NULL), KMS_ERR_STALE_RECORD); /* not a new domain */
    CHECK_EQ(restart(), KMS_OK);
    free(v2);
}

/* Damage is not a rollback: a record that does not authenticate is refused alone; a record the
 * store lacks, or one the log never had, refuses the start. */
static void test_damage_and_strangers(void)
{
    uint64_t rev = 0;
    char id[37];
    uh_enclave_with_domain();
    for (int n = 1; n <= 3; n++) REQUIRE(put_key(n, 1) == KMS_OK);
    id_of(2, id);
    uh_record *r = uh_record_get(id);
    r->blob[r->len - 1] ^= 1;
    CHECK_EQ(restart(), KMS_OK);
    CHECK_EQ(g_damaged, 1);
    CHECK(strstr(g_detail, id) != NULL);
    CHECK_EQ(read_key(2, &rev), KMS_ERR_RECORD_CORRUPT);
    CHECK_EQ(read_key(3, &rev), KMS_OK);
    r->blob[r->len - 1] ^= 1;
    size_t keep = r->len;
    r->len = 0; /* hidden */
    CHECK_EQ(restart(), KMS_ERR_STALE_RECORD);
    CHECK(strstr(g_detail, "is missing") != NULL && strstr(g_detail, id) != NULL);
    r->len = keep;
    uint8_t blob[512];
    size_t len = 0;
    static const uint8_t pt[] = {0x0a, 0x01, 0x78};
    id_of(8, id);
    REQUIRE(kms_domain_seal_record(id, 1, pt, sizeof pt, blob, sizeof blob, &len) == KMS_OK);
    uh_record_set(id, 1, blob, len); /* authentic, but never logged */
    CHECK_EQ(restart(), KMS_ERR_STALE_RECORD);
    CHECK(strstr(g_detail, "not in the state log") != NULL);
}

static void test_hidden_outcome(void)
{
    uint64_t seq = 0, rev = 0;
    uint8_t head[32];
    uh_enclave_with_domain();
    uh_commit_lie = KMS_ERR_STORE_UNAVAILABLE; /* written, then reported as failed */
    CHECK_EQ(put_key(1, 1), KMS_OK);             /* the enclave reads the head back and adopts it */
    uh_commit_lie = KMS_OK;
    CHECK_EQ(kms_state_head(&seq, head), KMS_OK);
    CHECK_EQ(seq, 1);
    CHECK_EQ(read_key(1, &rev), KMS_OK);
    CHECK_EQ(put_key(1, 2), KMS_OK);
    uh_fail_put = KMS_ERR_STORE_UNAVAILABLE; /* really not written */
    CHECK_EQ(put_key(1, 3), KMS_ERR_STORE_UNAVAILABLE);
    uh_fail_put = KMS_OK;
    CHECK_EQ(read_key(1, &rev), KMS_OK);
    CHECK_EQ(rev, 2);
    CHECK_EQ(put_key(1, 3), KMS_OK);
    CHECK_EQ(restart(), KMS_OK);
}

static void test_heads_and_clock(void)
{
    uint64_t seq = 0;
    uint8_t head[32], three[32];
    int r = 0;
    uh_enclave_with_domain();
    for (int n = 1; n <= 3; n++) REQUIRE(put_key(n, 1) == KMS_OK);
    REQUIRE(kms_state_head(&seq, three) == KMS_OK && seq == 3);
    uh_snapshot(1);
    REQUIRE(put_key(4, 1) == KMS_OK && put_key(5, 1) == KMS_OK);
    CHECK_EQ(kms_state_check_head(3, three, &r), KMS_OK);
    CHECK_EQ(r, 1); /* known */
    REQUIRE(kms_state_head(&seq, head) == KMS_OK && seq == 5);
    uh_restore(1);
    REQUIRE(restart() == KMS_OK);
    CHECK_EQ(kms_state_check_head(5, head, &r), KMS_OK);
    CHECK_EQ(r, 2); /* ahead: this store was rolled back */
    REQUIRE(put_key(6, 1) == KMS_OK && put_key(7, 1) == KMS_OK); /* and goes on from there: a fork */
    CHECK_EQ(kms_state_check_head(5, head, &r), KMS_OK);
    CHECK_EQ(r, 3);
    CHECK_EQ(kms_state_check_head(3, three, &r), KMS_OK);
    CHECK_EQ(r, 1);
    /* The clock: never back, and not back after a restart either. */
    CHECK_EQ(kms_state_now(5000), 5000);
    CHECK_EQ(kms_state_now(4000), 5000);
    REQUIRE(put_key(8, 1) == KMS_OK); /* the log entry carries 5000 */
    REQUIRE(restart() == KMS_OK);
    CHECK(kms_state_now(100) >= 5000);
    size_t records = 0, bytes = 0;
    kms_state_index_size(&records, &bytes);
    CHECK_EQ(records, 6); /* keys 1-3 and 6-8: 4 and 5 were on the branch the restore dropped */
    CHECK(bytes >= records * sizeof(kms_index_slot));
}

/* Checkpoints: a start reads the log after the latest one only; a checkpoint the host altered
 * (a page, or its pointer) is ignored and the whole log is replayed, with the same result. */
static void test_checkpoints(void)
{
    uint64_t rev = 0;
    uh_enclave_with_domain();
    for (int n = 1; n <= (int)KMS_STATE_CHECKPOINT_MIN + 20; n++) REQUIRE(put_key(n, 1) == KMS_OK);
    uh_record *ptr = uh_record_get(KMS_STATE_CHECKPOINT_ID);
    REQUIRE(ptr != NULL);
    uh_log_gets = 0;
    CHECK_EQ(restart(), KMS_OK);
    CHECK(uh_log_gets < 40); /* the head and the 20 entries after the checkpoint */
    size_t records = 0, bytes = 0;
    kms_state_index_size(&records, &bytes);
    CHECK_EQ(records, KMS_STATE_CHECKPOINT_MIN + 20);
    CHECK_EQ(read_key(7, &rev), KMS_OK);
    char page[64];
    snprintf(page, sizeof page, "%s-%u-0", KMS_STATE_CHECKPOINT_ID, KMS_STATE_CHECKPOINT_MIN);
    uh_record *p0 = uh_record_get(page);
    REQUIRE(p0 != NULL);
    p0->blob[30] ^= 1; /* a slot's revision or hash altered */
    uh_log_gets = 0;
    CHECK_EQ(restart(), KMS_OK);
    CHECK(uh_log_gets > KMS_STATE_CHECKPOINT_MIN); /* ignored: everything replayed */
    p0->blob[30] ^= 1;
    ptr->blob[40] ^= 1; /* the pointer's head hash */
    uh_log_gets = 0;
    CHECK_EQ(restart(), KMS_OK);
    CHECK(uh_log_gets > KMS_STATE_CHECKPOINT_MIN);
    ptr->blob[40] ^= 1;
    size_t len = 0; /* with a valid checkpoint, a rollback is still refused */
    uint64_t old_rev = 0;
    uint8_t *v1 = save(4100, &len, &old_rev);
    REQUIRE(put_key(4100, 2) == KMS_OK);
    put_back(4100, v1, len, old_rev);
    CHECK_EQ(restart(), KMS_ERR_STALE_RECORD);
    free(v1);
}

int main(void)
{
    uh_enclave_with_domain();
    test_live_replay();
    test_restart();
    test_damage_and_strangers();
    test_checkpoints();
    test_hidden_outcome();
    test_heads_and_clock();
    kms_keystore_clear();
    return test_summary();
}
