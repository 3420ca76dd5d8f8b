/*
 * testhost.c - the untrusted test host of testhost.h: OCALL table, record store,
 * temporary platforms, and Request/Response helpers over simcpu_ecall.
 */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "testhost.h"

#define TH_STORE_MAX 64

struct th_record {
    char key_id[48];
    uint64_t revision;
    uint8_t *blob;
    size_t len;
};

static pthread_mutex_t g_store_lock = PTHREAD_MUTEX_INITIALIZER;
static struct th_record g_store[TH_STORE_MAX];
static atomic_ulong g_next_request_id = 1;

th_store_hook th_store_get_hook;
th_put_hook th_store_put_hook;
th_list_hook th_store_list_hook;
th_commit_hook th_store_commit_hook;
th_log_get_hook th_state_log_hook;

#define TH_LOG_MAX 4096
static struct {
    uint8_t *entry;
    size_t len;
} g_log[TH_LOG_MAX];
static size_t g_nlog; /* guarded by g_store_lock */
th_log_hook th_log_hook_fn;
unsigned long th_log_count;

/* ---- OCALLs ----------------------------------------------------------------------------- */

static unsigned int ocall_log(void *pms)
{
    const ms_kms_ocall_log_t *ms = pms;
    __atomic_add_fetch(&th_log_count, 1, __ATOMIC_RELAXED);
    if (ms->ms_msg == NULL) abort(); /* the enclave always sends a fixed string */
    if (th_log_hook_fn != NULL) th_log_hook_fn(ms->ms_level, ms->ms_code, ms->ms_msg);
    return SGX_SUCCESS;
}

unsigned int th_store_get_default(ms_kms_ocall_store_get_t *ms)
{
    char id[48];
    if (ms->ms_key_id == NULL || ms->ms_blob_len == NULL || ms->ms_key_id_len >= sizeof id) {
        ms->ms_retval = -1;
        return SGX_SUCCESS;
    }
    memcpy(id, ms->ms_key_id, ms->ms_key_id_len);
    id[ms->ms_key_id_len] = '\0';
    ms->ms_retval = 0;
    *ms->ms_blob_len = 0;
    pthread_mutex_lock(&g_store_lock);
    for (size_t i = 0; i < TH_STORE_MAX; i++) {
        if (g_store[i].blob == NULL || strcmp(g_store[i].key_id, id) != 0) continue;
        if (g_store[i].len > ms->ms_blob_cap || ms->ms_blob == NULL) {
            ms->ms_retval = -1;
        } else {
            memcpy(ms->ms_blob, g_store[i].blob, g_store[i].len);
            *ms->ms_blob_len = g_store[i].len;
        }
        break;
    }
    pthread_mutex_unlock(&g_store_lock);
    return SGX_SUCCESS;
}

static unsigned int ocall_store_get(void *pms)
{
    ms_kms_ocall_store_get_t *ms = pms;
    return th_store_get_hook != NULL ? th_store_get_hook(ms) : th_store_get_default(ms);
}

/* Slot of key_id, or the first free slot (*found = 0), or TH_STORE_MAX. Lock held. */
static size_t store_slot(const char *key_id, int *found)
{
    size_t free_slot = TH_STORE_MAX;
    *found = 0;
    for (size_t i = 0; i < TH_STORE_MAX; i++) {
        if (g_store[i].blob != NULL && strcmp(g_store[i].key_id, key_id) == 0) {
            *found = 1;
            return i;
        }
        if (g_store[i].blob == NULL && free_slot == TH_STORE_MAX) free_slot = i;
    }
    return free_slot;
}

unsigned int th_store_put_default(ms_kms_ocall_store_put_t *ms)
{
    char id[48];
    ms->ms_retval = -1;
    if (ms->ms_key_id == NULL || ms->ms_key_id_len >= sizeof id || ms->ms_blob == NULL) return SGX_SUCCESS;
    memcpy(id, ms->ms_key_id, ms->ms_key_id_len);
    id[ms->ms_key_id_len] = '\0';
    uint8_t *copy = malloc(ms->ms_blob_len > 0 ? ms->ms_blob_len : 1);
    if (copy == NULL) return SGX_SUCCESS;
    memcpy(copy, ms->ms_blob, ms->ms_blob_len);
    pthread_mutex_lock(&g_store_lock);
    int found = 0;
    size_t slot = store_slot(id, &found);
    uint64_t current = found ? g_store[slot].revision : 0;
    if (slot == TH_STORE_MAX) {
        ms->ms_retval = -1;
    } else if (current != ms->ms_expected_revision) {
        ms->ms_retval = 1;
    } else {
        free(g_store[slot].blob);
        snprintf(g_store[slot].key_id, sizeof g_store[slot].key_id, "%s", id);
        g_store[slot].revision = ms->ms_revision;
        g_store[slot].blob = copy;
        g_store[slot].len = ms->ms_blob_len;
        copy = NULL;
        ms->ms_retval = 0;
    }
    pthread_mutex_unlock(&g_store_lock);
    free(copy);
    return SGX_SUCCESS;
}

static unsigned int ocall_store_put(void *pms)
{
    ms_kms_ocall_store_put_t *ms = pms;
    return th_store_put_hook != NULL ? th_store_put_hook(ms) : th_store_put_default(ms);
}

/* The smallest stored id above `after` (NULL: none). Lock held. */
static const char *store_next(const char *after)
{
    const char *best = NULL;
    for (size_t i = 0; i < TH_STORE_MAX; i++) {
        const char *id = g_store[i].blob != NULL ? g_store[i].key_id : NULL;
        if (id != NULL && strcmp(id, after) > 0 && (best == NULL || strcmp(id, best) < 0)) best = id;
    }
    return best;
}

unsigned int th_store_list_default(ms_kms_ocall_store_list_t *ms)
{
    char after[48] = "";
    ms->ms_retval = -1;
    if ((ms->ms_after == NULL && ms->ms_after_len > 0) || ms->ms_after_len >= sizeof after ||
        ms->ms_ids == NULL || ms->ms_len == NULL)
        return SGX_SUCCESS;
    if (ms->ms_after_len > 0) memcpy(after, ms->ms_after, ms->ms_after_len);
    size_t len = 0;
    pthread_mutex_lock(&g_store_lock);
    for (uint32_t n = 0; n < ms->ms_limit; n++) {
        const char *id = store_next(after);
        if (id == NULL || len + strlen(id) + 1 > ms->ms_cap) break;
        memcpy(ms->ms_ids + len, id, strlen(id) + 1);
        len += strlen(id) + 1;
        snprintf(after, sizeof after, "%s", id);
    }
    pthread_mutex_unlock(&g_store_lock);
    *ms->ms_len = len;
    ms->ms_retval = 0;
    return SGX_SUCCESS;
}

static unsigned int ocall_store_list(void *pms)
{
    ms_kms_ocall_store_list_t *ms = pms;
    return th_store_list_hook != NULL ? th_store_list_hook(ms) : th_store_list_default(ms);
}

static unsigned int commit_default(ms_kms_ocall_store_commit_t *ms)
{
    ms->ms_retval = -1;
    if (ms->ms_entry == NULL || ms->ms_entry_len == 0) return SGX_SUCCESS;
    uint8_t *copy = malloc(ms->ms_entry_len);
    if (copy == NULL) return SGX_SUCCESS;
    memcpy(copy, ms->ms_entry, ms->ms_entry_len);
    pthread_mutex_lock(&g_store_lock);
    size_t nlog = g_nlog;
    pthread_mutex_unlock(&g_store_lock);
    if (ms->ms_seq != nlog + 1 || nlog >= TH_LOG_MAX) { /* the enclave serializes commits */
        ms->ms_retval = 1;
        free(copy);
        return SGX_SUCCESS;
    }
    ms_kms_ocall_store_put_t put = {.ms_retval = -1, .ms_key_id = ms->ms_key_id, .ms_key_id_len = ms->ms_key_id_len,
                                    .ms_expected_revision = ms->ms_expected_revision, .ms_revision = ms->ms_revision,
                                    .ms_blob = ms->ms_blob, .ms_blob_len = ms->ms_blob_len};
    unsigned int rc = th_store_put_hook != NULL ? th_store_put_hook(&put) : th_store_put_default(&put);
    ms->ms_retval = put.ms_retval;
    if (rc == SGX_SUCCESS && put.ms_retval == 0) {
        pthread_mutex_lock(&g_store_lock);
        g_log[g_nlog].entry = copy, g_log[g_nlog++].len = ms->ms_entry_len;
        pthread_mutex_unlock(&g_store_lock);
        copy = NULL;
    }
    free(copy);
    return rc;
}

static unsigned int ocall_store_commit(void *pms)
{
    ms_kms_ocall_store_commit_t *ms = pms;
    return th_store_commit_hook != NULL ? th_store_commit_hook(ms) : commit_default(ms);
}

static unsigned int ocall_state_log_get(void *pms)
{
    ms_kms_ocall_state_log_get_t *ms = pms;
    if (th_state_log_hook != NULL) return th_state_log_hook(ms);
    ms->ms_retval = -1;
    if (ms->ms_len == NULL || ms->ms_entry == NULL) return SGX_SUCCESS;
    pthread_mutex_lock(&g_store_lock);
    size_t i = ms->ms_seq == 0 ? g_nlog : (size_t)ms->ms_seq;
    *ms->ms_len = 0;
    ms->ms_retval = 0;
    if (i >= 1 && i <= g_nlog) {
        if (g_log[i - 1].len > ms->ms_cap) ms->ms_retval = -1;
        else memcpy(ms->ms_entry, g_log[i - 1].entry, g_log[i - 1].len), *ms->ms_len = g_log[i - 1].len;
    }
    pthread_mutex_unlock(&g_store_lock);
    return SGX_SUCCESS;
}

size_t th_state_log_count(void)
{
    pthread_mutex_lock(&g_store_lock);
    size_t n = g_nlog;
    pthread_mutex_unlock(&g_store_lock);
    return n;
}

const kms_ocall_table_t th_ocalls = {
    .nr_ocall = KMS_OCALL_COUNT,
    .table = {[KMS_OCALL_LOG] = ocall_log, [KMS_OCALL_STORE_GET] = ocall_store_get,
              [KMS_OCALL_STORE_PUT] = ocall_store_put, [KMS_OCALL_STORE_LIST] = ocall_store_list,
              [KMS_OCALL_STORE_COMMIT] = ocall_store_commit, [KMS_OCALL_STATE_LOG_GET] = ocall_state_log_get},
};

/* ---- record store ----------------------------------------------------------------------- */

void th_store_clear(void)
{
    pthread_mutex_lock(&g_store_lock);
    for (size_t i = 0; i < TH_STORE_MAX; i++) {
        free(g_store[i].blob);
        memset(&g_store[i], 0, sizeof g_store[i]);
    }
    while (g_nlog > 0) free(g_log[--g_nlog].entry);
    pthread_mutex_unlock(&g_store_lock);
}

/* ---- files -------------------------------------------------------------------------------- */

char *th_exe_path(const char *rel, char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL) *slash = '\0';
    int w = snprintf(out, cap, "%s/%s", exe, rel);
    return w > 0 && (size_t)w < cap ? out : NULL;
}

int th_mkdtemp(const char *prefix, char *out, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0') tmp = "/tmp";
    int w = snprintf(out, cap, "%s/%s.XXXXXX", tmp, prefix);
    if (w <= 0 || (size_t)w >= cap) return -1;
    return mkdtemp(out) != NULL ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

void th_rmtree(const char *dir)
{
    if (dir != NULL && dir[0] != '\0') (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int th_copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    char buf[65536];
    ssize_t n;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 || write(out, buf, (size_t)n) != n) rc = -1;
    }
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0) rc = -1;
    return rc;
}

int th_code_known(int code)
{
    switch (code) {
#define KMS_ERROR_CODE(name) case name:
#include "kms_error_codes.inc"
#undef KMS_ERROR_CODE
        return 1;
    default:
        return 0;
    }
}

/* ---- ECALLs and requests ------------------------------------------------------------------ */

kms_sgx_status_t th_ecall_init(uint64_t eid, int *ret)
{
    ms_kms_ecall_init_t ms = {.ms_retval = -1};
    kms_sgx_status_t rc = simcpu_ecall(eid, KMS_ECALL_INIT, &th_ocalls, &ms);
    *ret = ms.ms_retval;
    return rc;
}

kms_sgx_status_t th_ecall_call(uint64_t eid, const uint8_t *req, size_t req_len, uint8_t *resp,
                               size_t resp_cap, size_t *resp_len, int *ret)
{
    ms_kms_ecall_call_t ms = {.ms_retval = -1, .ms_req = req, .ms_req_len = req_len, .ms_resp = resp,
                              .ms_resp_cap = resp_cap, .ms_resp_len = resp_len};
    kms_sgx_status_t rc = simcpu_ecall(eid, KMS_ECALL_CALL, &th_ocalls, &ms);
    *ret = ms.ms_retval;
    return rc;
}

size_t th_encode(Request *req, uint8_t *buf, size_t cap)
{
    if (req->version == 0) req->version = BoundaryVersion_BOUNDARY_VERSION_1;
    if (req->request_id == 0) req->request_id = atomic_fetch_add(&g_next_request_id, 1);
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    return pb_encode(&os, Request_fields, req) ? os.bytes_written : 0;
}

int th_request(uint64_t eid, Request *req, Response *resp, kms_sgx_status_t *status)
{
    uint8_t *in = malloc(KMS_MAX_REQUEST_SIZE), *out = malloc(KMS_MAX_RESPONSE_SIZE);
    Response *local = resp != NULL ? resp : th_new_response();
    size_t in_len = in != NULL ? th_encode(req, in, KMS_MAX_REQUEST_SIZE) : 0, out_len = 0;
    int ret = -1;
    if (in == NULL || out == NULL || local == NULL || in_len == 0) abort();
    kms_sgx_status_t rc = th_ecall_call(eid, in, in_len, out, KMS_MAX_RESPONSE_SIZE, &out_len, &ret);
    if (status != NULL) *status = rc;
    if (rc != SGX_SUCCESS) ret = TH_ECALL_FAILED;
    memset(local, 0, sizeof *local);
    if (rc == SGX_SUCCESS && ret == KMS_OK) {
        pb_istream_t is = pb_istream_from_buffer(out, out_len);
        if (out_len > KMS_MAX_RESPONSE_SIZE || !pb_decode(&is, Response_fields, local) ||
            local->request_id != req->request_id || local->version != BoundaryVersion_BOUNDARY_VERSION_1)
            abort(); /* the enclave answered OK with something that is not our Response */
    }
    if (local != resp) free(local);
    free(in);
    free(out);
    return ret;
}

Request *th_new_request(pb_size_t which_op)
{
    Request *r = calloc(1, sizeof *r);
    if (r == NULL) abort();
    r->which_op = which_op;
    r->host_time = 1700000000;
    return r;
}

Response *th_new_response(void)
{
    Response *r = calloc(1, sizeof *r);
    if (r == NULL) abort();
    return r;
}

int th_create_key(uint64_t eid, KeySpec spec, KeyUsage usage, char key_id[37])
{
    Request *req = th_new_request(Request_create_key_tag);
    Response *resp = th_new_response();
    req->op.create_key.spec = spec;
    req->op.create_key.usage = usage;
    snprintf(req->op.create_key.description, sizeof req->op.create_key.description, "test key");
    int ret = th_request(eid, req, resp, NULL);
    key_id[0] = '\0';
    if (ret == KMS_OK) {
        memcpy(key_id, resp->result.key_metadata.key_id, 36);
        key_id[36] = '\0';
    }
    free(req);
    free(resp);
    return ret;
}

kms_sgx_status_t th_ecall_report(uint64_t eid, const uint8_t ti[512], uint8_t report[432], int *ret)
{
    ms_kms_ecall_report_t ms = {.ms_retval = -1, .ms_target_info = ti, .ms_report = report};
    kms_sgx_status_t rc = simcpu_ecall(eid, KMS_ECALL_REPORT, &th_ocalls, &ms);
    *ret = ms.ms_retval;
    return rc;
}

kms_sgx_status_t th_ecall_session_open(uint64_t eid, uint64_t *sid, int *ret)
{
    ms_kms_ecall_session_open_t ms = {.ms_retval = -1, .ms_host_time = 1700000000, .ms_session_id = sid};
    kms_sgx_status_t rc = simcpu_ecall(eid, KMS_ECALL_SESSION_OPEN, &th_ocalls, &ms);
    *ret = ms.ms_retval;
    return rc;
}

kms_sgx_status_t th_ecall_session_feed(uint64_t eid, uint64_t sid, const uint8_t *in, size_t in_len, uint8_t *out,
                                       size_t out_cap, size_t *out_len, size_t *pending, int *closed, int *ret)
{
    ms_kms_ecall_session_feed_t ms = {.ms_retval = -1, .ms_session_id = sid, .ms_host_time = 1700000000,
                                      .ms_in = in, .ms_in_len = in_len, .ms_out = out, .ms_out_cap = out_cap,
                                      .ms_out_len = out_len, .ms_pending = pending, .ms_closed = closed};
    kms_sgx_status_t rc = simcpu_ecall(eid, KMS_ECALL_SESSION_FEED, &th_ocalls, &ms);
    *ret = ms.ms_retval;
    return rc;
}

kms_sgx_status_t th_ecall_session_close(uint64_t eid, uint64_t sid, int *ret)
{
    ms_kms_ecall_session_close_t ms = {.ms_retval = -1, .ms_session_id = sid};
    kms_sgx_status_t rc = simcpu_ecall(eid, KMS_ECALL_SESSION_CLOSE, &th_ocalls, &ms);
    *ret = ms.ms_retval;
    return rc;
}

int th_install_self_quote(uint64_t eid)
{
    uint8_t ti[KMS_SGX_TARGET_INFO_SIZE] = {0}, report[KMS_SGX_REPORT_SIZE];
    int ret = -1;
    if (th_ecall_report(eid, ti, report, &ret) != SGX_SUCCESS) return TH_ECALL_FAILED;
    if (ret != KMS_OK) return ret;
    Request *req = th_new_request(Request_install_quote_tag);
    uint8_t *q = req->op.install_quote.quote.bytes;
    q[0] = 3; /* quote v3: the 48-byte header, the 384-byte report body, padding */
    memcpy(q + 48, report, 384);
    req->op.install_quote.quote.size = 1020;
    ret = th_request(eid, req, NULL, NULL);
    free(req);
    return ret;
}

static int digest_range(EVP_MD_CTX *ctx, const kms_simcpu_range *r)
{
    return r->size == 0 || EVP_DigestUpdate(ctx, (const void *)r->base, r->size) == 1 ? 0 : -1;
}

int th_elrange_digest(uint64_t eid, int skip_tcs, uint8_t out[32])
{
    kms_simcpu_layout *l = calloc(1, sizeof *l);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = l != NULL && ctx != NULL && simcpu_enclave_layout(eid, l) == SGX_SUCCESS &&
                     EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < l->segment_count; i++) rc = digest_range(ctx, &l->segments[i]);
    if (rc == 0) rc = digest_range(ctx, &l->heap);
    for (uint32_t i = 0; rc == 0 && i < l->tcs_num; i++)
        if ((int)i != skip_tcs) rc = digest_range(ctx, &l->stacks[i]);
    if (rc == 0 && EVP_DigestFinal_ex(ctx, out, NULL) != 1) rc = -1;
    EVP_MD_CTX_free(ctx);
    free(l);
    return rc;
}
