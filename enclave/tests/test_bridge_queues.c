/*
 * test_bridge_queues.c - the two OCALLs the untrusted bridge answers in C (enclave/bridge/): the audit
 * queue (entries taken in queue order, each waiting thread woken with its own outcome, close fails what
 * is unsettled) and the state log reader (the rows a SQLite store holds, each read seeing what another
 * connection committed since). Host code only: no enclave is loaded.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_queue.h"
#include "state_reader.h"
#include "test_util.h"

#define TAKE_CAP (KMS_AUDIT_QUEUE_HEADER + KMS_AUDIT_QUEUE_ENTRY_MAX)
#define WAITERS 6

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

typedef struct {
    kms_audit_queue *q;
    uint64_t ticket;
    int outcome;
} waiter;

static void *wait_one(void *arg)
{
    waiter *w = arg;
    w->outcome = kms_audit_queue_wait(w->q, w->ticket);
    return NULL;
}

static void test_order_and_outcomes(void)
{
    kms_audit_queue *q = kms_audit_queue_new();
    REQUIRE(q != NULL);
    uint8_t *buf = malloc(TAKE_CAP);
    REQUIRE(buf != NULL);
    waiter w[WAITERS];
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        uint8_t entry[3] = {'e', (uint8_t)i, 0};
        w[i].q = q;
        CHECK_EQ(kms_audit_queue_put(q, 100 + (uint64_t)i, i > 0, entry, sizeof entry, &w[i].ticket), 0);
        REQUIRE(pthread_create(&t[i], NULL, wait_one, &w[i]) == 0);
    }
    size_t used = 0;
    CHECK_EQ(kms_audit_queue_take(q, buf, TAKE_CAP, &used), WAITERS);
    CHECK_EQ(used, WAITERS * (KMS_AUDIT_QUEUE_HEADER + 3));
    uint64_t tickets[WAITERS];
    int outcomes[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        const uint8_t *h = buf + (size_t)i * (KMS_AUDIT_QUEUE_HEADER + 3);
        tickets[i] = get_u64(h);
        CHECK_EQ(tickets[i], w[i].ticket);
        CHECK_EQ(get_u64(h + 8), 100 + i);                           /* seq, in queue order */
        CHECK_EQ(h[16], i > 0);                                      /* follows */
        CHECK_EQ(h[20], 3);                                          /* length */
        CHECK(h[KMS_AUDIT_QUEUE_HEADER] == 'e' && h[KMS_AUDIT_QUEUE_HEADER + 1] == i);
        outcomes[i] = i % 3 == 2 ? -1 : i % 3;                       /* durable, out of sequence, failed */
    }
    kms_audit_queue_settle(q, tickets, outcomes, WAITERS);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].outcome, outcomes[i]);
    }
    CHECK_EQ(kms_audit_queue_wait(q, tickets[0]), -1); /* once per ticket: collected */
    uint64_t ticket = 0;
    CHECK_EQ(kms_audit_queue_put(q, 1, 0, buf, KMS_AUDIT_QUEUE_ENTRY_MAX + 1, &ticket), -1);
    CHECK_EQ(kms_audit_queue_take(q, buf, TAKE_CAP - 1, &used), -1); /* a buffer the largest entry cannot fit */
    free(buf);
    kms_audit_queue_free(q);
}

static void test_close_fails_what_is_unsettled(void)
{
    kms_audit_queue *q = kms_audit_queue_new();
    REQUIRE(q != NULL);
    uint8_t *buf = malloc(TAKE_CAP);
    REQUIRE(buf != NULL);
    waiter w = {.q = q};
    pthread_t t;
    CHECK_EQ(kms_audit_queue_put(q, 1, 0, (const uint8_t *)"x", 1, &w.ticket), 0);
    REQUIRE(pthread_create(&t, NULL, wait_one, &w) == 0);
    size_t used = 0;
    CHECK_EQ(kms_audit_queue_take(q, buf, TAKE_CAP, &used), 1);
    kms_audit_queue_close(q); /* taken, never settled: its thread wakes with a failure */
    pthread_join(t, NULL);
    CHECK_EQ(w.outcome, -1);
    CHECK_EQ(kms_audit_queue_take(q, buf, TAKE_CAP, &used), -1);
    uint64_t ticket = 0;
    CHECK_EQ(kms_audit_queue_put(q, 2, 0, (const uint8_t *)"y", 1, &ticket), -1);
    int ok = 0;
    kms_audit_queue_settle(q, &w.ticket, &ok, 1); /* late: ignored */
    free(buf);
    kms_audit_queue_free(q);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    REQUIRE(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
}

static void test_state_reader(void)
{
    char dir[] = "/tmp/kms-bridge-test-XXXXXX", path[64];
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/kms.sqlite3", dir);
    sqlite3 *db = NULL;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    exec_sql(db, "PRAGMA journal_mode=WAL; CREATE TABLE state_log (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL);");
    kms_state_reader *r = kms_state_reader_open(path);
    REQUIRE(r != NULL);
    uint8_t out[8];
    size_t len = 99;
    CHECK_EQ(kms_state_reader_get(r, 0, out, sizeof out, &len), 0);
    CHECK_EQ(len, 0); /* an empty log */
    exec_sql(db, "INSERT INTO state_log VALUES (1, x'0102'), (2, x'030405')");
    CHECK_EQ(kms_state_reader_get(r, 0, out, sizeof out, &len), 0); /* committed by another connection since */
    CHECK(len == 3 && memcmp(out, "\x03\x04\x05", 3) == 0);
    CHECK_EQ(kms_state_reader_get(r, 1, out, sizeof out, &len), 0);
    CHECK(len == 2 && memcmp(out, "\x01\x02", 2) == 0);
    CHECK_EQ(kms_state_reader_get(r, 7, out, sizeof out, &len), 0);
    CHECK_EQ(len, 0);
    CHECK_EQ(kms_state_reader_get(r, 0, out, 2, &len), -1); /* larger than the buffer */
    CHECK_EQ(kms_state_reader_get(r, UINT64_MAX, out, sizeof out, &len), -1);
    exec_sql(db, "INSERT INTO state_log VALUES (3, 'text, not a blob')");
    CHECK_EQ(kms_state_reader_get(r, 0, out, sizeof out, &len), -1);
    kms_state_reader_close(r);
    sqlite3_close(db);
    CHECK(kms_state_reader_open("/nonexistent/kms.sqlite3") == NULL);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    CHECK_EQ(system(path), 0);
}

int main(void)
{
    test_order_and_outcomes();
    test_close_fails_what_is_unsettled();
    test_state_reader();
    return test_summary();
}
