/*
 * test_boundary - the enclave's ECALL boundary, driven only through simcpu_ecall with the
 * marshalling structs of kms/edge.h (as the bridge does), on the ASan + UBSan builds of the
 * simulated CPU and of the enclave image (build/asan/):
 *   make build/test/test_boundary && build/test/test_boundary
 * Covers the init state machine, malformed/truncated/oversized envelopes, response buffers
 * that are too small, NULL pointers in the ms struct, bad ECALL indices, nested ECALLs,
 * thread slots (TCS) and store OCALLs (get, put, list) that misbehave. Prints "N passed,
 * M failed" last.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "testhost.h"

static char g_dir[PATH_MAX];      /* platform directory */
static char g_image[PATH_MAX], g_sig[PATH_MAX];

/* A fresh enclave from the same image file: the loader maps its own copy of the measured
 * bytes (a sealed memfd), so every enclave starts with fresh static state. */
static uint64_t fresh_enclave(unsigned int tcs)
{
    uint64_t eid = 0;
    const char *why = "?";
    kms_sgx_status_t st = simcpu_create_enclave(g_dir, g_image, g_sig, tcs, &eid, &why);
    if (st != SGX_SUCCESS) fprintf(stderr, "simcpu_create_enclave: %s\n", why);
    REQUIRE(st == SGX_SUCCESS);
    return eid;
}

/* The call ECALL on raw bytes with a full-size response buffer; returns the enclave's code. */
static int call_bytes(uint64_t eid, const uint8_t *req, size_t len)
{
    static uint8_t resp[KMS_MAX_RESPONSE_SIZE];
    size_t resp_len = 0;
    int ret = -1;
    CHECK_EQ(th_ecall_call(eid, req, len, resp, sizeof resp, &resp_len, &ret), SGX_SUCCESS);
    CHECK(th_code_known(ret));
    return ret;
}

/* Version 1, get_identity (field 10, empty message). */
static const uint8_t k_get_identity[] = {0x08, 0x01, 0x52, 0x00};

/* A new domain on a new (empty) store: its state log starts from nothing. */
static void ready_with_domain(uint64_t eid)
{
    int ret = -1;
    th_store_clear();
    REQUIRE(th_ecall_init(eid, &ret) == SGX_SUCCESS && ret == KMS_OK);
    Request *req = th_new_request(Request_generate_domain_key_tag);
    REQUIRE(th_request(eid, req, NULL, NULL) == KMS_OK);
    free(req);
}

static void test_init_state_machine(void)
{
    uint64_t eid = fresh_enclave(4);
    uint8_t ti[KMS_SGX_TARGET_INFO_SIZE] = {0}, report[KMS_SGX_REPORT_SIZE];
    ms_kms_ecall_report_t rms = {.ms_retval = -1, .ms_target_info = ti, .ms_report = report};
    int ret = -1;
    CHECK_EQ(call_bytes(eid, k_get_identity, sizeof k_get_identity), KMS_ERR_NOT_INITIALIZED);
    CHECK_EQ(simcpu_ecall(eid, KMS_ECALL_REPORT, &th_ocalls, &rms), SGX_SUCCESS);
    CHECK_EQ(rms.ms_retval, KMS_ERR_NOT_INITIALIZED);
    unsigned long logs = th_log_count;
    CHECK_EQ(th_ecall_init(eid, &ret), SGX_SUCCESS);
    CHECK_EQ(ret, KMS_OK);
    CHECK(th_log_count > logs); /* the "simulated platform" warning went through the log OCALL */
    CHECK_EQ(th_ecall_init(eid, &ret), SGX_SUCCESS);
    CHECK_EQ(ret, KMS_ERR_ALREADY_INITIALIZED);
    CHECK_EQ(call_bytes(eid, k_get_identity, sizeof k_get_identity), KMS_OK);
    rms.ms_retval = -1;
    CHECK_EQ(simcpu_ecall(eid, KMS_ECALL_REPORT, &th_ocalls, &rms), SGX_SUCCESS);
    CHECK_EQ(rms.ms_retval, KMS_OK);
    /* Keys need a domain key first. */
    Request *req = th_new_request(Request_describe_key_tag);
    snprintf(req->op.describe_key.key_id, sizeof req->op.describe_key.key_id, "%s",
             "00000000-0000-4000-8000-000000000000");
    CHECK_EQ(th_request(eid, req, NULL, NULL), KMS_ERR_DOMAIN_NOT_LOADED);
    free(req);
    req = th_new_request(Request_generate_domain_key_tag);
    CHECK_EQ(th_request(eid, req, NULL, NULL), KMS_OK);
    memset(req, 0, sizeof *req);
    req->which_op = Request_generate_domain_key_tag;
    CHECK_EQ(th_request(eid, req, NULL, NULL), KMS_ERR_DOMAIN_ALREADY_LOADED);
    free(req);
}

static void test_envelopes(uint64_t eid)
{
    static const uint8_t garbage[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t version2[] = {0x08, 0x02, 0x52, 0x00};
    static const uint8_t no_op[] = {0x08, 0x01, 0x10, 0x07};
    static const uint8_t unknown_op[] = {0x08, 0x01, 0x9a, 0x06, 0x00}; /* field 99, empty */
    static const uint8_t short_len[] = {0x08, 0x01, 0x52, 0x05, 0x00};  /* 5 bytes promised */
    CHECK_EQ(call_bytes(eid, NULL, 0), KMS_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ(call_bytes(eid, garbage, 0), KMS_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ(call_bytes(eid, garbage, sizeof garbage), KMS_ERR_MALFORMED_REQUEST);
    CHECK_EQ(call_bytes(eid, version2, sizeof version2), KMS_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ(call_bytes(eid, k_get_identity + 2, 2), KMS_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ(call_bytes(eid, no_op, sizeof no_op), KMS_ERR_UNKNOWN_OPERATION);
    CHECK_EQ(call_bytes(eid, unknown_op, sizeof unknown_op), KMS_ERR_UNKNOWN_OPERATION);
    CHECK_EQ(call_bytes(eid, short_len, sizeof short_len), KMS_ERR_MALFORMED_REQUEST);
}

/* A valid DescribeKey cut at every length: never OK, never a crash, cut mid-field malformed. */
static void test_truncated(uint64_t eid)
{
    Request *req = th_new_request(Request_describe_key_tag);
    uint8_t buf[256];
    snprintf(req->op.describe_key.key_id, sizeof req->op.describe_key.key_id, "%s",
             "00000000-0000-4000-8000-000000000000");
    size_t len = th_encode(req, buf, sizeof buf);
    REQUIRE(len > 40);
    CHECK_EQ(call_bytes(eid, buf, len), KMS_ERR_KEY_NOT_FOUND);
    int bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        int ret = call_bytes(eid, buf, cut);
        if (ret != KMS_ERR_MALFORMED_REQUEST && ret != KMS_ERR_UNKNOWN_OPERATION &&
            ret != KMS_ERR_UNSUPPORTED_VERSION)
            bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(call_bytes(eid, buf, len - 5), KMS_ERR_MALFORMED_REQUEST);
    /* A string longer than its nanopb bound (key_id max_size 41). */
    uint8_t longid[7 + 60] = {0x08, 0x01, 0xb2, 0x01, 62, 0x0a, 60};
    memset(longid + 7, 'a', 60);
    CHECK_EQ(call_bytes(eid, longid, sizeof longid), KMS_ERR_MALFORMED_REQUEST);
    free(req);
}

static void test_sizes(uint64_t eid)
{
    uint8_t *big = calloc(1, KMS_MAX_REQUEST_SIZE + 1);
    REQUIRE(big != NULL);
    memcpy(big, k_get_identity, sizeof k_get_identity);
    CHECK_EQ(call_bytes(eid, big, KMS_MAX_REQUEST_SIZE + 1), KMS_ERR_REQUEST_TOO_LARGE);
    CHECK_EQ(call_bytes(eid, big, KMS_MAX_REQUEST_SIZE), KMS_ERR_MALFORMED_REQUEST);
    free(big);
    /* The response of GetIdentity: its exact size fits, one byte less does not. */
    uint8_t resp[KMS_MAX_RESPONSE_SIZE];
    size_t full = 0, resp_len = 0;
    int ret = -1;
    CHECK_EQ(th_ecall_call(eid, k_get_identity, sizeof k_get_identity, resp, sizeof resp, &full, &ret),
             SGX_SUCCESS);
    CHECK_EQ(ret, KMS_OK);
    REQUIRE(full > 64 && full < sizeof resp);
    CHECK_EQ(th_ecall_call(eid, k_get_identity, sizeof k_get_identity, resp, full, &resp_len, &ret),
             SGX_SUCCESS);
    CHECK_EQ(ret, KMS_OK);
    CHECK_EQ(resp_len, full);
    const size_t caps[] = {0, 1, 10, 64, full - 1};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        memset(resp, 0xa5, sizeof resp);
        resp_len = 12345;
        CHECK_EQ(th_ecall_call(eid, k_get_identity, sizeof k_get_identity, resp, caps[i], &resp_len, &ret),
                 SGX_SUCCESS);
        CHECK_EQ(ret, KMS_ERR_BUFFER_TOO_SMALL);
        CHECK_EQ(resp_len, 12345); /* nothing is written back on error */
        CHECK_EQ(resp[0], 0xa5);
    }
}

static void test_bad_parameters(uint64_t eid)
{
    uint8_t resp[64];
    size_t resp_len = 0;
    int ret = -1;
    CHECK_EQ(th_ecall_call(eid, k_get_identity, sizeof k_get_identity, NULL, sizeof resp, &resp_len, &ret),
             SGX_SUCCESS);
    CHECK_EQ(ret, KMS_ERR_BAD_PARAMETER);
    CHECK_EQ(th_ecall_call(eid, k_get_identity, sizeof k_get_identity, resp, sizeof resp, NULL, &ret),
             SGX_SUCCESS);
    CHECK_EQ(ret, KMS_ERR_BAD_PARAMETER);
    CHECK_EQ(th_ecall_call(eid, NULL, 4, resp, sizeof resp, &resp_len, &ret), SGX_SUCCESS);
    CHECK_EQ(ret, KMS_ERR_BAD_PARAMETER);
    ms_kms_ecall_report_t rms = {.ms_retval = -1};
    CHECK_EQ(simcpu_ecall(eid, KMS_ECALL_REPORT, &th_ocalls, &rms), SGX_SUCCESS);
    CHECK_EQ(rms.ms_retval, KMS_ERR_BAD_PARAMETER);
    /* The platform's own refusals: no ms struct, an index past the EDL, an unknown enclave. */
    CHECK_EQ(simcpu_ecall(eid, KMS_ECALL_CALL, &th_ocalls, NULL), SGX_ERROR_INVALID_PARAMETER);
    ms_kms_ecall_init_t ims = {.ms_retval = -1};
    CHECK_EQ(simcpu_ecall(eid, KMS_ECALL_COUNT, &th_ocalls, &ims), SGX_ERROR_INVALID_FUNCTION);
    CHECK_EQ(simcpu_ecall(eid, -1, &th_ocalls, &ims), SGX_ERROR_INVALID_FUNCTION);
    CHECK_EQ(simcpu_ecall(eid, 1000, &th_ocalls, &ims), SGX_ERROR_INVALID_FUNCTION);
    CHECK_EQ(ims.ms_retval, -1);
    CHECK_EQ(simcpu_ecall(eid + 1000, KMS_ECALL_INIT, &th_ocalls, &ims), SGX_ERROR_INVALID_ENCLAVE_ID);
}

/* ---- OCALL misbehaviour ------------------------------------------------------------------- */

static uint64_t g_nested_eid;
static kms_sgx_status_t g_nested_status[2];
static const char *g_other_id; /* for hook_other_record */
static size_t g_flip_at;

static unsigned int hook_nested(ms_kms_ocall_store_get_t *ms)
{
    ms_kms_ecall_init_t ims = {.ms_retval = -1};
    uint8_t resp[256];
    size_t resp_len = 0;
    int ret = -1;
    g_nested_status[0] = simcpu_ecall(g_nested_eid, KMS_ECALL_INIT, &th_ocalls, &ims);
    g_nested_status[1] = th_ecall_call(g_nested_eid, k_get_identity, sizeof k_get_identity, resp,
                                       sizeof resp, &resp_len, &ret);
    return th_store_get_default(ms);
}
static unsigned int hook_too_big(ms_kms_ocall_store_get_t *ms)
{
    ms->ms_retval = 0;
    *ms->ms_blob_len = ms->ms_blob_cap + 1;
    return SGX_SUCCESS;
}
static unsigned int hook_fails(ms_kms_ocall_store_get_t *ms)
{
    ms->ms_retval = -1;
    return SGX_SUCCESS;
}
static unsigned int hook_sgx_error(ms_kms_ocall_store_get_t *ms)
{
    (void)ms;
    return SGX_ERROR_UNEXPECTED;
}
static unsigned int hook_garbage(ms_kms_ocall_store_get_t *ms)
{
    size_t n = ms->ms_blob_cap < 300 ? ms->ms_blob_cap : 300;
    memset(ms->ms_blob, 'A', n);
    ms->ms_retval = 0;
    *ms->ms_blob_len = n;
    return SGX_SUCCESS;
}
static unsigned int hook_truncated(ms_kms_ocall_store_get_t *ms)
{
    unsigned int st = th_store_get_default(ms);
    if (*ms->ms_blob_len > 20) *ms->ms_blob_len -= 20;
    return st;
}
static unsigned int hook_flip(ms_kms_ocall_store_get_t *ms)
{
    unsigned int st = th_store_get_default(ms);
    if (g_flip_at < *ms->ms_blob_len) ms->ms_blob[g_flip_at] ^= 0x01;
    return st;
}
static unsigned int hook_other_record(ms_kms_ocall_store_get_t *ms)
{
    ms_kms_ocall_store_get_t other = *ms;
    other.ms_key_id = g_other_id;
    other.ms_key_id_len = strlen(g_other_id);
    unsigned int st = th_store_get_default(&other);
    ms->ms_retval = other.ms_retval;
    return st;
}
static unsigned int hook_empty(ms_kms_ocall_store_get_t *ms)
{
    ms->ms_retval = 0;
    *ms->ms_blob_len = 0;
    return SGX_SUCCESS;
}

static int describe(uint64_t eid, const char *key_id, th_store_hook hook)
{
    Request *req = th_new_request(Request_describe_key_tag);
    snprintf(req->op.describe_key.key_id, sizeof req->op.describe_key.key_id, "%s", key_id);
    th_store_get_hook = hook;
    int ret = th_request(eid, req, NULL, NULL);
    th_store_get_hook = NULL;
    free(req);
    return ret;
}

static void test_nested_ecall(uint64_t eid)
{
    g_nested_eid = eid;
    g_nested_status[0] = g_nested_status[1] = SGX_SUCCESS;
    CHECK_EQ(describe(eid, "00000000-0000-4000-8000-000000000001", hook_nested), KMS_ERR_KEY_NOT_FOUND);
    CHECK_EQ(g_nested_status[0], SGX_ERROR_ECALL_NOT_ALLOWED);
    CHECK_EQ(g_nested_status[1], SGX_ERROR_ECALL_NOT_ALLOWED);
}

static void test_store_faults(uint64_t eid)
{
    char k[37], other[37];
    REQUIRE(th_create_key(eid, KeySpec_SYMMETRIC_DEFAULT, KeyUsage_ENCRYPT_DECRYPT, k) == KMS_OK);
    REQUIRE(th_create_key(eid, KeySpec_HMAC_SHA_256, KeyUsage_GENERATE_VERIFY_MAC, other) == KMS_OK);
    g_other_id = other;
    CHECK_EQ(describe(eid, k, hook_too_big), KMS_ERR_STORE_UNAVAILABLE);
    CHECK_EQ(describe(eid, k, hook_fails), KMS_ERR_STORE_UNAVAILABLE);
    CHECK_EQ(describe(eid, k, hook_sgx_error), KMS_ERR_OCALL);
    CHECK_EQ(describe(eid, k, hook_garbage), KMS_ERR_RECORD_CORRUPT);
    CHECK_EQ(describe(eid, k, hook_truncated), KMS_ERR_RECORD_CORRUPT);
    CHECK_EQ(describe(eid, k, hook_other_record), KMS_ERR_RECORD_CORRUPT);
    CHECK_EQ(describe(eid, k, hook_empty), KMS_ERR_STALE_RECORD); /* the state log knows the key exists */
    /* Any flipped byte of the record: magic, revision, nonce, ciphertext, tag. */
    const size_t at[] = {0, 4, 5, 12, 13, 24, 25, 40, 60};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        g_flip_at = at[i];
        CHECK_EQ(describe(eid, k, hook_flip), KMS_ERR_RECORD_CORRUPT);
    }
    g_flip_at = (size_t)-1;
    CHECK_EQ(describe(eid, k, hook_flip), KMS_OK); /* the hook itself is harmless */
    CHECK_EQ(describe(eid, other, NULL), KMS_OK);
}

static unsigned int put_conflict(ms_kms_ocall_store_put_t *ms)
{
    ms->ms_retval = 1;
    return SGX_SUCCESS;
}
static unsigned int put_fails(ms_kms_ocall_store_put_t *ms)
{
    ms->ms_retval = -1;
    return SGX_SUCCESS;
}
static unsigned int put_sgx_error(ms_kms_ocall_store_put_t *ms)
{
    (void)ms;
    return SGX_ERROR_UNEXPECTED;
}

/* Rotate key_id with the given store_put hook; returns the code. */
static int rotate(uint64_t eid, const char *key_id, th_put_hook hook)
{
    Request *req = th_new_request(Request_rotate_key_tag);
    snprintf(req->op.rotate_key.key_id, sizeof req->op.rotate_key.key_id, "%s", key_id);
    th_store_put_hook = hook;
    int ret = th_request(eid, req, NULL, NULL);
    th_store_put_hook = NULL;
    free(req);
    return ret;
}

/* A change is answered only after the host kept it: every put failure is a typed error and
 * leaves the stored key as it was. */
static void test_store_put_faults(uint64_t eid)
{
    char k[37], unused[37];
    REQUIRE(th_create_key(eid, KeySpec_HMAC_SHA_256, KeyUsage_GENERATE_VERIFY_MAC, k) == KMS_OK);
    th_store_put_hook = put_conflict;
    CHECK_EQ(th_create_key(eid, KeySpec_SYMMETRIC_DEFAULT, KeyUsage_ENCRYPT_DECRYPT, unused), KMS_ERR_CONFLICT);
    th_store_put_hook = NULL;
    CHECK_EQ(rotate(eid, k, put_conflict), KMS_ERR_CONFLICT);
    CHECK_EQ(rotate(eid, k, put_fails), KMS_ERR_STORE_UNAVAILABLE);
    CHECK_EQ(rotate(eid, k, put_sgx_error), KMS_ERR_OCALL);
    Request *req = th_new_request(Request_describe_key_tag);
    Response *resp = th_new_response();
    memcpy(req->op.describe_key.key_id, k, 37);
    CHECK_EQ(th_request(eid, req, resp, NULL), KMS_OK);
    CHECK_EQ(resp->result.key_metadata.version_count, 1);
    CHECK_EQ(rotate(eid, k, NULL), KMS_OK);
    req->request_id = 0;
    CHECK_EQ(th_request(eid, req, resp, NULL), KMS_OK);
    CHECK_EQ(resp->result.key_metadata.version_count, 2);
    CHECK_EQ(resp->result.key_metadata.revision, 2);
    free(req);
    free(resp);
}

static const char *g_list_answer; /* what hook_list writes, including its NULs */
static size_t g_list_len, g_list_claim;
static unsigned int hook_list(ms_kms_ocall_store_list_t *ms)
{
    size_t n = g_list_len < ms->ms_cap ? g_list_len : ms->ms_cap;
    memcpy(ms->ms_ids, g_list_answer, n);
    *ms->ms_len = g_list_claim; /* may claim more than the buffer holds */
    ms->ms_retval = 0;
    return SGX_SUCCESS;
}

/* ListKeys over a host-written id list: every id is checked, every record authenticated. */
static int list(uint64_t eid, const char *answer, size_t len, size_t claim, pb_size_t *count)
{
    Request *req = th_new_request(Request_list_keys_tag);
    Response *resp = th_new_response();
    g_list_answer = answer;
    g_list_len = len;
    g_list_claim = claim;
    th_store_list_hook = answer != NULL ? hook_list : NULL;
    int ret = th_request(eid, req, resp, NULL);
    th_store_list_hook = NULL;
    *count = resp->result.list_keys.keys_count;
    free(req);
    free(resp);
    return ret;
}

static void test_list_keys(uint64_t eid)
{
    static const char unknown[] = "00000000-0000-4000-8000-00000000000a";
    char k[37], both[80];
    pb_size_t all = 0, n = 0;
    REQUIRE(th_create_key(eid, KeySpec_ED25519, KeyUsage_SIGN_VERIFY, k) == KMS_OK);
    CHECK_EQ(list(eid, NULL, 0, 0, &all), KMS_OK);
    CHECK(all >= 1);
    CHECK_EQ(list(eid, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 44, 44, &n), KMS_OK); /* no NUL */
    CHECK_EQ(n, 0);
    CHECK_EQ(list(eid, "../../etc/passwd\0%s%s%n\0", 24, 24, &n), KMS_OK);
    CHECK_EQ(n, 0);
    snprintf(both, sizeof both, "%s%c%s", unknown, 0, k);
    CHECK_EQ(list(eid, both, 2 * 37, 2 * 37, &n), KMS_OK); /* unknown ids are skipped */
    CHECK_EQ(n, 1);
    CHECK_EQ(list(eid, both, 2 * 37, 1u << 20, &n), KMS_ERR_STORE_UNAVAILABLE); /* claims > cap */
    Request *req = th_new_request(Request_list_keys_tag);
    req->op.list_keys.limit = 33;
    CHECK_EQ(th_request(eid, req, NULL, NULL), KMS_ERR_INVALID_ARGUMENT);
    req->op.list_keys.limit = 0;
    /* a page token is a store cursor: record-name characters only */
    snprintf(req->op.list_keys.page_token, sizeof req->op.list_keys.page_token, "../not a cursor");
    CHECK_EQ(th_request(eid, req, NULL, NULL), KMS_ERR_INVALID_ARGUMENT);
    free(req);
}

/* ---- thread slots ------------------------------------------------------------------------- */

static pthread_barrier_t g_arrived, g_release;

static unsigned int hook_block(ms_kms_ocall_store_get_t *ms)
{
    /* Only the key record's read: the state-log reads every request makes first hold the state lock, and a
       worker parked there would keep the other from ever reaching this OCALL. */
    static const char k_key[] = "00000000-0000-4000-8000-000000000002";
    if (ms->ms_key_id_len < sizeof k_key - 1 || memcmp(ms->ms_key_id, k_key, sizeof k_key - 1) != 0)
        return th_store_get_default(ms);
    pthread_barrier_wait(&g_arrived);
    pthread_barrier_wait(&g_release);
    return th_store_get_default(ms);
}

struct worker {
    uint64_t eid;
    int ret;
    kms_sgx_status_t status;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    Request *req = th_new_request(Request_describe_key_tag);
    snprintf(req->op.describe_key.key_id, sizeof req->op.describe_key.key_id, "%s",
             "00000000-0000-4000-8000-000000000002");
    w->ret = th_request(w->eid, req, NULL, &w->status);
    free(req);
    return NULL;
}

static void test_out_of_tcs(void)
{
    enum { TCS = 2 };
    uint64_t eid = fresh_enclave(TCS);
    ready_with_domain(eid);
    REQUIRE(pthread_barrier_init(&g_arrived, NULL, TCS + 1) == 0);
    REQUIRE(pthread_barrier_init(&g_release, NULL, TCS + 1) == 0);
    th_store_get_hook = hook_block;
    pthread_t threads[TCS];
    struct worker workers[TCS];
    for (int i = 0; i < TCS; i++) {
        workers[i] = (struct worker){.eid = eid, .ret = -1};
        REQUIRE(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0);
    }
    pthread_barrier_wait(&g_arrived); /* both slots are now busy inside an OCALL */
    uint8_t resp[512];
    size_t resp_len = 0;
    int ret = -1;
    CHECK_EQ(th_ecall_call(eid, k_get_identity, sizeof k_get_identity, resp, sizeof resp, &resp_len, &ret),
             SGX_ERROR_OUT_OF_TCS);
    pthread_barrier_wait(&g_release);
    for (int i = 0; i < TCS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_EQ(workers[i].status, SGX_SUCCESS);
        CHECK_EQ(workers[i].ret, KMS_ERR_KEY_NOT_FOUND);
    }
    th_store_get_hook = NULL;
    pthread_barrier_destroy(&g_arrived);
    pthread_barrier_destroy(&g_release);
    CHECK_EQ(call_bytes(eid, k_get_identity, sizeof k_get_identity), KMS_OK); /* slots are free again */
}

int main(void)
{
    REQUIRE(th_exe_path("../asan/kms_enclave.so", g_image, sizeof g_image) != NULL);
    REQUIRE(th_exe_path("../asan/kms_enclave.sigstruct", g_sig, sizeof g_sig) != NULL);
    REQUIRE(th_mkdtemp("kms-test-boundary", g_dir, sizeof g_dir) == 0);
    test_init_state_machine();
    uint64_t eid = fresh_enclave(4);
    ready_with_domain(eid);
    test_envelopes(eid);
    test_truncated(eid);
    test_sizes(eid);
    test_bad_parameters(eid);
    test_nested_ecall(eid);
    test_store_faults(eid);
    test_store_put_faults(eid);
    test_list_keys(eid);
    test_out_of_tcs();
    th_store_clear();
    th_rmtree(g_dir);
    return test_summary();
}
