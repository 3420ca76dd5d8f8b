/*
 * bench_state.c - what state integrity costs, measured in one run (make bench-state; ./dev bench
 * runs it through tests/bench/bench_state.py). Built with the production flags (no sanitizers)
 * from the enclave sources and the unit host (in-memory store and log), so the figures are the
 * enclave's own work:
 *  - a record write through the state log (seal + log entry + commit) next to the same sealed
 *    blob written with a plain put;
 *  - a record read with the index check next to the same read without it;
 *  - the index's memory per record and for 1 M records, and its insert/lookup times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <pb_encode.h>

#include "domain.h"
#include "index.h"
#include "kms/limits.h"
#include "ocalls.h"
#include "record.h"
#include "statelog.h"
#include "unit_host.h"

#define N 2000
#define MILLION 1000000u

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *t, size_t n)
{
    qsort(t, n, sizeof *t, cmp);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += t[i];
    printf("%-52s %9.2f %9.2f %9.2f\n", what, t[n / 2], t[n * 99 / 100], sum / (double)n);
}

static void names(char (*out)[37], size_t n)
{
    for (size_t i = 0; i < n; i++) snprintf(out[i], 37, "00000000-0000-4000-8000-%012zu", i);
}

/* One plain put of rec's sealed encoding under name (the write as it was without the log). */
static void plain_put(const char *name, KeyRecord *rec, uint8_t *blob)
{
    uint8_t pt[512];
    size_t len = 0;
    pb_ostream_t os = pb_ostream_from_buffer(pt, sizeof pt);
    if (!pb_encode(&os, KeyRecord_fields, rec) ||
        kms_domain_seal_record(name, 1, pt, os.bytes_written, blob, KMS_MAX_RECORD_BLOB, &len) != KMS_OK ||
        kms_edge_store_put(name, 0, 1, blob, len) != KMS_OK)
        abort();
}

/* N records written through the state log, interleaved with the same write as a plain put under
 * another name (so both see a store of the same size). */
static void bench_writes(double *logged, double *plain, char (*id)[37])
{
    KeyRecord *rec = calloc(1, sizeof *rec);
    uint8_t *blob = malloc(KMS_MAX_RECORD_BLOB);
    rec->spec = KeySpec_SYMMETRIC_DEFAULT, rec->state = KeyState_ENABLED, rec->versions_count = 1;
    rec->versions[0].material.size = 32;
    for (size_t i = 0; i < N; i++) {
        char other[48];
        snprintf(other, sizeof other, "x%s", id[i]);
        memcpy(rec->key_id, id[i], 37), rec->revision = 1;
        double a = now_us();
        if (kms_record_store(id[i], KeyRecord_fields, rec, KeyRecord_size, 0, 1) != KMS_OK) abort();
        double b = now_us();
        plain_put(other, rec, blob);
        plain[i] = now_us() - b, logged[i] = b - a;
    }
    report("write through the state log (us)", logged, N);
    report("same write, plain put (no log) (us)", plain, N);
    free(rec);
    free(blob);
}

/* Reads interleaved: with the index check, and authenticated only (as reads were without it). */
static void bench_reads(double *checked, double *plain, char (*id)[37])
{
    KeyRecord *rec = calloc(1, sizeof *rec);
    for (size_t i = 0; i < N; i++) {
        int found = 0;
        uint64_t rev = 0;
        double a = now_us();
        if (kms_record_load(id[i], KeyRecord_fields, rec, KeyRecord_size, &found, &rev) != KMS_OK || !found) abort();
        double b = now_us();
        if (kms_record_authenticates(id[i]) != KMS_OK) abort();
        plain[i] = now_us() - b, checked[i] = b - a;
    }
    report("read with the index check (us)", checked, N);
    report("same read, authenticated only (us)", plain, N);
    free(rec);
}

static void bench_index(void)
{
    kms_index ix = {0};
    uint8_t (*ids)[KMS_INDEX_ID_LEN] = malloc((size_t)MILLION * KMS_INDEX_ID_LEN), hash[KMS_INDEX_HASH_LEN] = {1};
    if (ids == NULL || RAND_bytes(&ids[0][0], (int)(MILLION * KMS_INDEX_ID_LEN)) != 1) abort();
    double a = now_us();
    for (size_t i = 0; i < MILLION; i++)
        if (kms_index_put(&ix, ids[i], 1, hash) != KMS_OK) abort();
    double ins = (now_us() - a) * 1e3 / MILLION;
    a = now_us();
    size_t hits = 0;
    for (size_t i = 0; i < MILLION; i++) hits += (size_t)kms_index_get(&ix, ids[(i * 7919) % MILLION], NULL);
    double look = (now_us() - a) * 1e3 / MILLION;
    if (hits != MILLION) abort();
    printf("index: %zu records, %zu bytes (%.1f bytes/record, slot %zu bytes), insert %.0f ns, lookup %.0f ns\n",
           ix.count, kms_index_bytes(&ix), (double)kms_index_bytes(&ix) / (double)ix.count, sizeof(kms_index_slot),
           ins, look);
    kms_index_clear(&ix);
    free(ids);
}

int main(void)
{
    double *t = malloc(N * sizeof *t), *u = malloc(N * sizeof *u);
    char (*id)[37] = malloc(N * sizeof *id);
    if (t == NULL || u == NULL || id == NULL) abort();
    names(id, N);
    uh_enclave_with_domain();
    printf("%-52s %9s %9s %9s\n", "state integrity, per record, N = 2000", "p50", "p99", "mean");
    bench_writes(t, u, id);
    bench_reads(t, u, id);
    size_t records = 0, bytes = 0;
    kms_state_index_size(&records, &bytes);
    printf("the index after the run: %zu records in %zu bytes\n", records, bytes);
    bench_index();
    free(t);
    free(u);
    free(id);
    return 0;
}
