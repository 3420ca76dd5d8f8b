/* unit_host.c - the fake platform and OCALLs of the C unit tests (unit_host.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "audit.h"
#include "domain.h"
#include "ecall.h"
#include "keystore.h"
#include "kms/limits.h"
#include "log.h"
#include "ocalls.h"
#include "platform.h"
#include "principals.h"
#include "unit_host.h"

#define MAX_RECORDS 8192
#define MAX_AUDIT 8192

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[80];
    uh_record rec;
} g_records[MAX_RECORDS];
static size_t g_nrecords;
static struct {
    uint8_t *entry;
    size_t len;
} g_audit[MAX_AUDIT];
static size_t g_naudit;
static struct {
    uint8_t *entry;
    size_t len;
} g_log[MAX_AUDIT];
static size_t g_nlog;
kms_err_t uh_commit_lie;

kms_err_t uh_fail_get, uh_fail_put, uh_fail_append;
unsigned long uh_puts, uh_gets, uh_appends, uh_log_gets, uh_audit_race;

/* ---- platform.h: a fixed identity and deterministic keys ------------------------------ */

static const uint8_t k_secret[32] = "unit-host fixed platform secret";

kms_err_t platform_self_identity(kms_identity *out)
{
    memset(out, 0, sizeof *out);
    memset(out->mrenclave, 0xe1, 32);
    memset(out->mrsigner, 0x51, 32);
    out->attributes = 0x5; /* INIT | MODE64BIT */
    out->xfrm = 0x3;
    out->isvprodid = 1;
    out->isvsvn = 1;
    return KMS_OK;
}

kms_err_t platform_get_key(const uint8_t key_request[512], uint8_t key[16])
{
    uint8_t md[32];
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(c, k_secret, 32) == 1 &&
             EVP_DigestUpdate(c, key_request, 512) == 1 && EVP_DigestFinal_ex(c, md, &len) == 1;
    EVP_MD_CTX_free(c);
    memcpy(key, md, 16);
    return ok ? KMS_OK : KMS_ERR_PLATFORM;
}

kms_err_t platform_report(const uint8_t target_info[512], const uint8_t report_data[64], uint8_t report[432])
{
    (void)target_info;
    kms_identity self;
    platform_self_identity(&self);
    memset(report, 0, 432);
    memcpy(report + 64, self.mrenclave, 32);
    memcpy(report + 128, self.mrsigner, 32);
    for (int i = 0; i < 8; i++) report[48 + i] = (uint8_t)(self.attributes >> (8 * i));
    report[256] = (uint8_t)self.isvprodid;
    report[258] = (uint8_t)self.isvsvn;
    memcpy(report + 320, report_data, 64);
    return KMS_OK;
}

kms_err_t platform_ocall(int index, void *ms)
{
    (void)index, (void)ms; /* only the log OCALL goes through here: nothing to do */
    return KMS_OK;
}

int platform_is_simulated(void) { return 1; }

void kms_log(int level, kms_err_t code, const char *msg)
{
    (void)level, (void)code, (void)msg; /* the trusted edge's log OCALL: unit tests need no log */
}

/* ---- ocalls.h: an in-memory store and audit log --------------------------------------- */

static uh_record *find(const char *name)
{
    for (size_t i = 0; i < g_nrecords; i++)
        if (strcmp(g_records[i].name, name) == 0) return &g_records[i].rec;
    return NULL;
}

uh_record *uh_record_get(const char *name)
{
    pthread_mutex_lock(&g_lock);
    uh_record *r = find(name);
    pthread_mutex_unlock(&g_lock);
    return r;
}

static void record_set_locked(const char *name, uint64_t revision, const uint8_t *blob, size_t len)
{
    uh_record *r = find(name);
    if (r == NULL) {
        if (g_nrecords >= MAX_RECORDS || strlen(name) >= sizeof g_records[0].name) abort();
        snprintf(g_records[g_nrecords].name, sizeof g_records[0].name, "%s", name);
        r = &g_records[g_nrecords++].rec;
    }
    free(r->blob);
    r->blob = malloc(len > 0 ? len : 1);
    if (r->blob == NULL) abort();
    memcpy(r->blob, blob, len);
    r->len = len;
    r->revision = revision;
}

void uh_record_set(const char *name, uint64_t revision, const uint8_t *blob, size_t len)
{
    pthread_mutex_lock(&g_lock);
    record_set_locked(name, revision, blob, len);
    pthread_mutex_unlock(&g_lock);
}

kms_err_t kms_edge_store_get(const char *key_id, uint8_t *blob, size_t cap, size_t *len)
{
    if (uh_fail_get != KMS_OK) return uh_fail_get;
    pthread_mutex_lock(&g_lock);
    uh_gets++;
    uh_record *r = find(key_id);
    kms_err_t err = KMS_OK;
    *len = 0;
    if (r != NULL && r->len > cap) err = KMS_ERR_STORE_UNAVAILABLE;
    else if (r != NULL) memcpy(blob, r->blob, r->len), *len = r->len;
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_edge_store_put(const char *key_id, uint64_t expected_revision, uint64_t revision, const uint8_t *blob,
                             size_t len)
{
    if (uh_fail_put != KMS_OK) return uh_fail_put;
    pthread_mutex_lock(&g_lock);
    uh_puts++;
    uh_record *r = find(key_id);
    uint64_t stored = r != NULL ? r->revision : 0;
    kms_err_t err = stored != expected_revision ? KMS_ERR_CONFLICT : KMS_OK;
    if (err == KMS_OK) record_set_locked(key_id, revision, blob, len);
    pthread_mutex_unlock(&g_lock);
    return err;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

kms_err_t kms_edge_store_list(const char *after, uint32_t limit, char *ids, size_t cap, size_t *len)
{
    const char *names[MAX_RECORDS];
    size_t n = 0, used = 0;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nrecords; i++)
        if (strcmp(g_records[i].name, after) > 0) names[n++] = g_records[i].name;
    qsort(names, n, sizeof names[0], name_cmp);
    for (size_t i = 0; i < n && i < limit && used + strlen(names[i]) + 1 <= cap; i++) {
        memcpy(ids + used, names[i], strlen(names[i]) + 1);
        used += strlen(names[i]) + 1;
    }
    pthread_mutex_unlock(&g_lock);
    *len = used;
    return KMS_OK;
}

kms_err_t kms_edge_store_commit(const char *key_id, uint64_t expected_revision, uint64_t revision,
                                const uint8_t *blob, size_t len, uint64_t seq, const uint8_t *entry, size_t entry_len)
{
    if (uh_fail_put != KMS_OK) return uh_fail_put;
    pthread_mutex_lock(&g_lock);
    uh_puts++;
    uh_record *r = find(key_id);
    uint64_t stored = r != NULL ? r->revision : 0;
    kms_err_t err = stored != expected_revision || seq != g_nlog + 1 || g_nlog >= MAX_AUDIT ? KMS_ERR_CONFLICT : KMS_OK;
    if (err == KMS_OK) { /* one transaction: the record and its log entry */
        record_set_locked(key_id, revision, blob, len);
        g_log[g_nlog].entry = malloc(entry_len);
        if (g_log[g_nlog].entry == NULL) abort();
        memcpy(g_log[g_nlog].entry, entry, entry_len);
        g_log[g_nlog++].len = entry_len;
    }
    pthread_mutex_unlock(&g_lock);
    return err == KMS_OK && uh_commit_lie != KMS_OK ? uh_commit_lie : err;
}

kms_err_t kms_edge_state_log_get(uint64_t seq, uint8_t *entry, size_t cap, size_t *len)
{
    pthread_mutex_lock(&g_lock);
    uh_log_gets++;
    size_t i = seq == 0 ? g_nlog : (size_t)seq;
    kms_err_t err = KMS_OK;
    *len = 0;
    if (i >= 1 && i <= g_nlog && g_log[i - 1].len > cap) err = KMS_ERR_STORE_UNAVAILABLE;
    else if (i >= 1 && i <= g_nlog) memcpy(entry, g_log[i - 1].entry, g_log[i - 1].len), *len = g_log[i - 1].len;
    pthread_mutex_unlock(&g_lock);
    return err;
}

size_t uh_log_count(void) { return g_nlog; }

uint8_t *uh_log_entry(size_t i, size_t *len)
{
    if (i >= g_nlog) return NULL;
    *len = g_log[i].len;
    return g_log[i].entry;
}

void uh_log_drop(size_t n)
{
    pthread_mutex_lock(&g_lock);
    while (n-- > 0 && g_nlog > 0) free(g_log[--g_nlog].entry);
    pthread_mutex_unlock(&g_lock);
}

/* The host's audit queue: entries wait here until kms_edge_audit_wait flushes them in order. */
static struct {
    uint64_t seq, ticket;
    int follows, done, waited;
    kms_err_t err;
    uint8_t *entry, *prev; /* prev: the entry queued before (follows) */
    size_t len, prev_len;
} g_queue[64];
static size_t g_nqueue;
static uint64_t g_tickets;
uint64_t uh_fail_audit_seq;

kms_err_t kms_edge_audit_enqueue(uint64_t seq, int follows, const uint8_t *entry, size_t len, uint64_t *ticket)
{
    if (uh_fail_append != KMS_OK) return uh_fail_append;
    pthread_mutex_lock(&g_lock);
    kms_err_t err = g_nqueue < 64 ? KMS_OK : KMS_ERR_AUDIT_UNAVAILABLE;
    if (err == KMS_OK) {
        g_queue[g_nqueue].entry = malloc(len);
        if (g_queue[g_nqueue].entry == NULL) abort();
        memcpy(g_queue[g_nqueue].entry, entry, len);
        g_queue[g_nqueue].len = len, g_queue[g_nqueue].seq = seq, g_queue[g_nqueue].follows = follows;
        g_queue[g_nqueue].done = g_queue[g_nqueue].waited = 0, g_queue[g_nqueue].ticket = *ticket = ++g_tickets;
        g_nqueue++;
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

/* Apply one queued entry as a store would (lock held): last + 1, after the entry it follows, else
 * KMS_ERR_CONFLICT (the host's out of sequence answer). */
static kms_err_t apply_queued(size_t i)
{
    int follows_ok = !g_queue[i].follows || (i > 0 && g_naudit > 0 && g_audit[g_naudit - 1].len == g_queue[i - 1].len &&
                                             memcmp(g_audit[g_naudit - 1].entry, g_queue[i - 1].entry, g_queue[i - 1].len) == 0);
    if (g_queue[i].seq == uh_fail_audit_seq) {
        uh_fail_audit_seq = 0;
        return KMS_ERR_AUDIT_UNAVAILABLE; /* an injected store failure */
    }
    if (g_naudit >= MAX_AUDIT) return KMS_ERR_AUDIT_UNAVAILABLE;
    if (g_queue[i].seq != g_naudit + 1 || !follows_ok) return KMS_ERR_CONFLICT; /* refused: out of sequence */
    if ((g_audit[g_naudit].entry = malloc(g_queue[i].len)) == NULL) abort();
    memcpy(g_audit[g_naudit].entry, g_queue[i].entry, g_queue[i].len);
    g_audit[g_naudit++].len = g_queue[i].len;
    if (uh_audit_race > 0) return uh_audit_race--, KMS_ERR_CONFLICT; /* another replica appended it first */
    uh_appends++;
    return KMS_OK;
}

kms_err_t kms_edge_audit_wait(uint64_t ticket)
{
    pthread_mutex_lock(&g_lock);
    kms_err_t err = KMS_ERR_AUDIT_UNAVAILABLE;
    for (size_t i = 0; i < g_nqueue; i++) { /* flush everything up to the ticket, in queue order */
        if (!g_queue[i].done) g_queue[i].err = apply_queued(i), g_queue[i].done = 1;
        if (g_queue[i].ticket == ticket && !g_queue[i].waited) {
            err = g_queue[i].err;
            g_queue[i].waited = 1;
            break;
        }
    }
    size_t keep = 0; /* drop waited entries once the next one (which may follow it) is applied */
    while (keep + 1 < g_nqueue && g_queue[keep].waited && g_queue[keep + 1].done) free(g_queue[keep++].entry);
    memmove(g_queue, g_queue + keep, (g_nqueue - keep) * sizeof g_queue[0]);
    g_nqueue -= keep;
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_edge_audit_head(uint8_t *entry, size_t cap, size_t *len)
{
    pthread_mutex_lock(&g_lock);
    kms_err_t err = KMS_OK;
    *len = 0;
    if (g_naudit > 0 && g_audit[g_naudit - 1].len > cap) err = KMS_ERR_AUDIT_UNAVAILABLE;
    else if (g_naudit > 0) memcpy(entry, g_audit[g_naudit - 1].entry, g_audit[g_naudit - 1].len), *len = g_audit[g_naudit - 1].len;
    pthread_mutex_unlock(&g_lock);
    return err;
}

size_t uh_audit_count(void) { return g_naudit; }

uint8_t *uh_audit_entry(size_t i, size_t *len)
{
    if (i >= g_naudit) return NULL;
    *len = g_audit[i].len;
    return g_audit[i].entry;
}

void uh_audit_drop(size_t n)
{
    pthread_mutex_lock(&g_lock);
    while (n-- > 0 && g_naudit > 0) free(g_audit[--g_naudit].entry);
    pthread_mutex_unlock(&g_lock);
}

static struct {
    size_t nrecords, nlog;
    struct { char name[80]; uint64_t revision; uint8_t *blob; size_t len; } records[MAX_RECORDS];
    struct { uint8_t *entry; size_t len; } log[MAX_AUDIT];
} *g_snap[4];

static uint8_t *dup(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n > 0 ? n : 1);
    if (q == NULL) abort();
    memcpy(q, p, n);
    return q;
}

static void snap_free(int slot)
{
    if (g_snap[slot] == NULL) return;
    for (size_t i = 0; i < g_snap[slot]->nrecords; i++) free(g_snap[slot]->records[i].blob);
    for (size_t i = 0; i < g_snap[slot]->nlog; i++) free(g_snap[slot]->log[i].entry);
    free(g_snap[slot]);
    g_snap[slot] = NULL;
}

void uh_snapshot(int slot)
{
    snap_free(slot);
    g_snap[slot] = calloc(1, sizeof *g_snap[slot]);
    if (g_snap[slot] == NULL) abort();
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nrecords; i++) {
        memcpy(g_snap[slot]->records[i].name, g_records[i].name, sizeof g_records[i].name);
        g_snap[slot]->records[i].revision = g_records[i].rec.revision;
        g_snap[slot]->records[i].blob = dup(g_records[i].rec.blob, g_records[i].rec.len);
        g_snap[slot]->records[i].len = g_records[i].rec.len;
    }
    for (size_t i = 0; i < g_nlog; i++) {
        g_snap[slot]->log[i].entry = dup(g_log[i].entry, g_log[i].len);
        g_snap[slot]->log[i].len = g_log[i].len;
    }
    g_snap[slot]->nrecords = g_nrecords, g_snap[slot]->nlog = g_nlog;
    pthread_mutex_unlock(&g_lock);
}

void uh_restore(int slot)
{
    if (g_snap[slot] == NULL) abort();
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nrecords; i++) free(g_records[i].rec.blob);
    memset(g_records, 0, sizeof g_records);
    g_nrecords = 0;
    for (size_t i = 0; i < g_snap[slot]->nrecords; i++)
        record_set_locked(g_snap[slot]->records[i].name, g_snap[slot]->records[i].revision,
                          g_snap[slot]->records[i].blob, g_snap[slot]->records[i].len);
    while (g_nlog > 0) free(g_log[--g_nlog].entry);
    for (size_t i = 0; i < g_snap[slot]->nlog; i++) {
        g_log[i].entry = dup(g_snap[slot]->log[i].entry, g_snap[slot]->log[i].len);
        g_log[i].len = g_snap[slot]->log[i].len;
    }
    g_nlog = g_snap[slot]->nlog;
    pthread_mutex_unlock(&g_lock);
}

void uh_reset(void)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nrecords; i++) free(g_records[i].rec.blob);
    memset(g_records, 0, sizeof g_records);
    g_nrecords = 0;
    pthread_mutex_unlock(&g_lock);
    uh_audit_drop(MAX_AUDIT);
    uh_log_drop(MAX_AUDIT);
    while (g_nqueue > 0) free(g_queue[--g_nqueue].entry);
    uh_fail_audit_seq = 0;
    uh_commit_lie = KMS_OK;
    uh_fail_get = uh_fail_put = uh_fail_append = KMS_OK;
    uh_puts = uh_gets = uh_appends = uh_log_gets = uh_audit_race = 0;
}

/* ---- requests ------------------------------------------------------------------------- */

Request *uh_request(pb_size_t tag)
{
    Request *req = calloc(1, sizeof *req);
    if (req == NULL) abort();
    req->version = BoundaryVersion_BOUNDARY_VERSION_1;
    req->request_id = 7;
    req->which_op = tag;
    return req;
}

kms_caller uh_principal(uint8_t byte)
{
    kms_caller c = {.kind = KMS_CALLER_PRINCIPAL};
    memset(c.principal, byte, sizeof c.principal);
    return c;
}

kms_err_t uh_run(const kms_caller *caller, int64_t now, Request *req, Response *resp)
{
    uint8_t *buf = malloc(KMS_MAX_REQUEST_SIZE);
    if (buf == NULL) abort();
    pb_ostream_t os = pb_ostream_from_buffer(buf, KMS_MAX_REQUEST_SIZE);
    if (!pb_encode(&os, Request_fields, req)) abort();
    uint8_t *out = malloc(KMS_MAX_RESPONSE_SIZE);
    if (out == NULL) abort();
    kms_answer a = {.out = out, .cap = KMS_MAX_RESPONSE_SIZE, .refusals = 1};
    kms_err_t err = kms_request_run(caller, &now, buf, os.bytes_written, &a);
    memset(resp, 0, sizeof *resp);
    pb_istream_t is = pb_istream_from_buffer(out, a.len);
    if (a.encoded != KMS_OK || !pb_decode(&is, Response_fields, resp)) abort();
    free(buf);
    free(out);
    return err;
}

void uh_enclave_fresh(void)
{
    static int initialized;
    if (!initialized && kms_ecall_init_impl() != KMS_OK) abort();
    initialized = 1;
    kms_domain_reset(); /* a new domain: forget everything of the last one */
    kms_principals_clear();
    kms_keystore_clear();
    kms_audit_set_key(NULL, 0);
    uh_reset();
}

void uh_enclave_with_domain(void)
{
    uh_enclave_fresh();
    Request *req = uh_request(Request_generate_domain_key_tag);
    Response *resp = calloc(1, sizeof *resp);
    static const kms_caller host = {.kind = KMS_CALLER_HOST};
    if (resp == NULL || uh_run(&host, 1000, req, resp) != KMS_OK) abort();
    free(req);
    free(resp);
}
