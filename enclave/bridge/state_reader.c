/*
 * state_reader.c - the state_log_get OCALL answered in C, from the store's own SQLite file, without
 * entering Python (no GIL, no thread crossing): the enclave reads the log's head before every audited
 * request (docs/cluster.md, "Keeping current: the bound"), and through Python that read cost a GIL
 * acquisition and waited behind the store's lock while a group commit was in its fsync.
 *
 * It answers exactly what SqliteStore.state_log_get does (kms/service/store/sqlite.py), from the same
 * database, each read in its own read transaction (WAL: it sees every committed transaction, this
 * process's and other replicas', and never waits for a writer). What it returns is untrusted host data
 * to the enclave, exactly as before: statelog_refresh.c authenticates it. Connections are pooled, one per
 * concurrent reader, opened read-only; a connection that failed is closed, not reused.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "state_reader.h"

#define BUSY_TIMEOUT_MS 30000 /* as SqliteStore's connection (timeout=30) */

typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *last, *at;
    struct conn *next;
} conn;

struct kms_state_reader {
    char *path;
    pthread_mutex_t lock;
    conn *idle;
};

static void conn_close(conn *c)
{
    if (c == NULL) return;
    sqlite3_finalize(c->last);
    sqlite3_finalize(c->at);
    sqlite3_close(c->db);
    free(c);
}

static conn *conn_open(const char *path)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    int ok = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK &&
             sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS) == SQLITE_OK &&
             sqlite3_prepare_v2(c->db, "SELECT entry FROM state_log ORDER BY seq DESC LIMIT 1", -1, &c->last,
                                NULL) == SQLITE_OK &&
             sqlite3_prepare_v2(c->db, "SELECT entry FROM state_log WHERE seq = ?", -1, &c->at, NULL) == SQLITE_OK;
    if (!ok) {
        conn_close(c);
        return NULL;
    }
    return c;
}

const void *kms_state_reader_sqlite_entry(void) { return (const void *)sqlite3_libversion; }

kms_state_reader *kms_state_reader_open(const char *path)
{
    kms_state_reader *r = calloc(1, sizeof *r);
    if (r == NULL || (r->path = strdup(path)) == NULL || pthread_mutex_init(&r->lock, NULL) != 0) {
        if (r != NULL) free(r->path);
        free(r);
        return NULL;
    }
    r->idle = conn_open(path); /* fail now, not at the first request, when the file cannot be read */
    if (r->idle == NULL) {
        kms_state_reader_close(r);
        return NULL;
    }
    return r;
}

void kms_state_reader_close(kms_state_reader *r)
{
    if (r == NULL) return;
    while (r->idle != NULL) {
        conn *c = r->idle;
        r->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&r->lock);
    free(r->path);
    free(r);
}

/* One statement's row into entry: 0 (len 0 when there is none) or -1. The reset ends the read transaction. */
static int read_one(sqlite3_stmt *stmt, uint8_t *entry, size_t cap, size_t *len)
{
    int rc = sqlite3_step(stmt), ret = -1;
    if (rc == SQLITE_DONE) {
        *len = 0;
        ret = 0;
    } else if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) == SQLITE_BLOB) {
        const void *blob = sqlite3_column_blob(stmt, 0);
        int n = sqlite3_column_bytes(stmt, 0);
        if (n >= 0 && (size_t)n <= cap && (n == 0 || blob != NULL)) {
            if (n > 0) memcpy(entry, blob, (size_t)n);
            *len = (size_t)n;
            ret = 0;
        }
    }
    if (sqlite3_reset(stmt) != SQLITE_OK) ret = -1;
    return ret;
}

int kms_state_reader_get(kms_state_reader *r, uint64_t seq, uint8_t *entry, size_t cap, size_t *len)
{
    if (seq > (uint64_t)INT64_MAX) return -1;
    pthread_mutex_lock(&r->lock);
    conn *c = r->idle;
    if (c != NULL) r->idle = c->next;
    pthread_mutex_unlock(&r->lock);
    if (c == NULL && (c = conn_open(r->path)) == NULL) return -1;
    int ret = -1;
    if (seq == 0) {
        ret = read_one(c->last, entry, cap, len);
    } else if (sqlite3_bind_int64(c->at, 1, (sqlite3_int64)seq) == SQLITE_OK) {
        ret = read_one(c->at, entry, cap, len);
    }
    if (ret != 0) { /* a failed connection is not reused */
        conn_close(c);
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    c->next = r->idle;
    r->idle = c;
    pthread_mutex_unlock(&r->lock);
    return 0;
}
