/*
 * test_elrange - the emulated ELRANGE and the edge's pointer checks, on the ASan + UBSan
 * builds of the simulated CPU and the enclave image (build/asan/), through simcpu_ecall only:
 *   make build/test/test_elrange && build/test/test_elrange
 *
 * - The layout: image, guard pages, per-TCS stacks and the heap in one reservation; the
 *   enclave's own heap pointers (found in its writable data) lie in the heap range.
 * - For every ECALL, its marshalling struct and every pointer parameter: a pointer into the
 *   image, into a live heap object, into another TCS's stack, straddling each edge of each
 *   range and wrapping around the address space is refused with SGX_ERROR_INVALID_PARAMETER,
 *   ms_retval is not written, and a SHA-256 of the whole range (image, heap, every stack but
 *   the one of the TCS that ran the refused call) is unchanged.
 * - The attack that motivated this: session_open with session_id pointing at enclave memory.
 * - OCALLs: every pointer the enclave hands the host lies outside ELRANGE; results that claim
 *   sizes beyond their buffers, or a host that rewrites the marshalling struct's pointers,
 *   give typed errors and no write into the enclave.
 * - A heap smaller than a request needs gives KMS_ERR_OUT_OF_MEMORY, not a crash; after the
 *   CPU's uninit command every ECALL fails.
 * Prints "N passed, M failed" last.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "testhost.h"

#define HEAP (8u * 1024u * 1024u)

static char g_dir[PATH_MAX], g_image[PATH_MAX], g_sig[PATH_MAX];
static uint64_t g_eid;
static kms_simcpu_layout g_l;
static uintptr_t g_live; /* a heap object the enclave holds a pointer to */

static const uint8_t k_get_identity[] = {0x08, 0x01, 0x52, 0x00};

static uint64_t make_enclave(uint64_t heap, unsigned int tcs)
{
    kms_simcpu_config c = {.struct_size = sizeof c, .tcs_num = tcs, .heap_size = heap};
    uint64_t eid = 0;
    const char *why = "?";
    kms_sgx_status_t st = simcpu_create_enclave_ex(g_dir, g_image, g_sig, &c, &eid, &why);
    if (st != SGX_SUCCESS) fprintf(stderr, "simcpu_create_enclave_ex: %s\n", why);
    REQUIRE(st == SGX_SUCCESS);
    return eid;
}

static int inside(const kms_simcpu_range *r, uintptr_t a) { return a >= r->base && a - r->base < r->size; }

/* One word of enclave memory, read past ASan (its globals carry redzones; heap blocks are
 * poisoned by hand). */
__attribute__((no_sanitize_address)) static uintptr_t peek(uintptr_t a)
{
    return *(const volatile uintptr_t *)a;
}

/* A pointer stored in the image's writable data that points into the heap, past the arena's
 * first page: an object the enclave is using. */
static uintptr_t find_live_heap_object(void)
{
    for (uint32_t s = 0; s < g_l.segment_count; s++) {
        const kms_simcpu_range *seg = &g_l.segments[s];
        for (uintptr_t a = seg->base; a + 8 <= seg->base + seg->size; a += 8) {
            uintptr_t v = peek(a);
            if (inside(&g_l.heap, v) && v >= g_l.heap.base + 4096) return v;
        }
    }
    return 0;
}

static void test_layout(void)
{
    CHECK(g_l.image.size > 0 && g_l.segment_count >= 2);
    CHECK(g_l.heap.size == HEAP && inside(&g_l.reserved, g_l.heap.base) &&
          inside(&g_l.reserved, g_l.heap.base + g_l.heap.size - 1));
    CHECK_EQ(g_l.heap.base % (2u * 1024u * 1024u), 0);
    for (uint32_t i = 0; i < g_l.tcs_num; i++) {
        CHECK(inside(&g_l.reserved, g_l.stacks[i].base - KMS_SIMCPU_PAGE)); /* its guard page */
        CHECK(g_l.stacks[i].base + g_l.stacks[i].size <= g_l.heap.base);
        if (i > 0) CHECK(g_l.stacks[i].base >= g_l.stacks[i - 1].base + g_l.stacks[i - 1].size + KMS_SIMCPU_PAGE);
    }
    CHECK(g_l.image.base + g_l.image.size <= g_l.reserved.base ||
          g_l.reserved.base + g_l.reserved.size <= g_l.image.base);
    g_live = find_live_heap_object();
    CHECK(g_live != 0); /* the enclave's pointers point into its heap */
}

/* Enclave addresses for a parameter of n bytes (n >= 2). */
struct bad {
    const char *what;
    uintptr_t addr;
};

static size_t bad_addresses(size_t n, struct bad out[12])
{
    const kms_simcpu_range *data = &g_l.segments[g_l.segment_count - 1];
    size_t k = 0;
    out[k++] = (struct bad){"image code", g_l.segments[1].base + 64};
    out[k++] = (struct bad){"image data", data->base + 64};
    out[k++] = (struct bad){"live heap object", g_live};
    out[k++] = (struct bad){"heap arena metadata", g_l.heap.base};
    out[k++] = (struct bad){"another TCS's stack", g_l.stacks[1].base + g_l.stacks[1].size / 2};
    out[k++] = (struct bad){"straddles the image's start", g_l.image.base - n / 2};
    out[k++] = (struct bad){"straddles the image's end", g_l.image.base + g_l.image.size - n / 2};
    out[k++] = (struct bad){"straddles the reservation's start", g_l.reserved.base - n / 2};
    out[k++] = (struct bad){"straddles the reservation's end", g_l.reserved.base + g_l.reserved.size - n / 2};
    out[k++] = (struct bad){"straddles the heap's end", g_l.heap.base + g_l.heap.size - n / 2};
    out[k++] = (struct bad){"wraps around", UINTPTR_MAX - n / 2};
    return k;
}

/* Host buffers of valid ECALL arguments. */
static uint8_t g_resp[KMS_MAX_RESPONSE_SIZE], g_out[4096], g_ti[KMS_SGX_TARGET_INFO_SIZE], g_report[KMS_SGX_REPORT_SIZE];
static size_t g_resp_len, g_out_len, g_pending;
static uint64_t g_sid;
static int g_closed;

union any_ms {
    ms_kms_ecall_init_t init;
    ms_kms_ecall_call_t call;
    ms_kms_ecall_report_t report;
    ms_kms_ecall_session_open_t open;
    ms_kms_ecall_session_feed_t feed;
    ms_kms_ecall_session_close_t close;
};

static size_t fill_valid(int ecall, union any_ms *ms)
{
    memset(ms, 0, sizeof *ms);
    switch (ecall) {
    case KMS_ECALL_INIT: ms->init.ms_retval = -1; return sizeof ms->init;
    case KMS_ECALL_CALL:
        ms->call = (ms_kms_ecall_call_t){-1, k_get_identity, sizeof k_get_identity, g_resp, sizeof g_resp, &g_resp_len};
        return sizeof ms->call;
    case KMS_ECALL_REPORT: ms->report = (ms_kms_ecall_report_t){-1, g_ti, g_report}; return sizeof ms->report;
    case KMS_ECALL_SESSION_OPEN: ms->open = (ms_kms_ecall_session_open_t){-1, 1700000000, &g_sid}; return sizeof ms->open;
    case KMS_ECALL_SESSION_FEED:
        ms->feed = (ms_kms_ecall_session_feed_t){-1, 99, 1700000000, k_get_identity, sizeof k_get_identity, g_out,
                                                 sizeof g_out, &g_out_len, &g_pending, &g_closed};
        return sizeof ms->feed;
    default: ms->close = (ms_kms_ecall_session_close_t){-1, 99}; return sizeof ms->close;
    }
}

/* A pointer parameter: where it sits in the ms struct, and its length field or fixed size. */
struct param {
    int ecall;
    const char *name;
    size_t ptr_off;
    size_t len_off; /* SIZE_MAX: fixed size */
    size_t size;
};

#define P(e, type, f, lenf, n) {e, #type "." #f, offsetof(type, f), lenf, n}
static const struct param k_params[] = {
    P(KMS_ECALL_CALL, ms_kms_ecall_call_t, ms_req, offsetof(ms_kms_ecall_call_t, ms_req_len), 64),
    P(KMS_ECALL_CALL, ms_kms_ecall_call_t, ms_resp, offsetof(ms_kms_ecall_call_t, ms_resp_cap), 64),
    P(KMS_ECALL_CALL, ms_kms_ecall_call_t, ms_resp_len, SIZE_MAX, sizeof(size_t)),
    P(KMS_ECALL_REPORT, ms_kms_ecall_report_t, ms_target_info, SIZE_MAX, KMS_SGX_TARGET_INFO_SIZE),
    P(KMS_ECALL_REPORT, ms_kms_ecall_report_t, ms_report, SIZE_MAX, KMS_SGX_REPORT_SIZE),
    P(KMS_ECALL_SESSION_OPEN, ms_kms_ecall_session_open_t, ms_session_id, SIZE_MAX, sizeof(uint64_t)),
    P(KMS_ECALL_SESSION_FEED, ms_kms_ecall_session_feed_t, ms_in, offsetof(ms_kms_ecall_session_feed_t, ms_in_len), 64),
    P(KMS_ECALL_SESSION_FEED, ms_kms_ecall_session_feed_t, ms_out, offsetof(ms_kms_ecall_session_feed_t, ms_out_cap), 64),
    P(KMS_ECALL_SESSION_FEED, ms_kms_ecall_session_feed_t, ms_out_len, SIZE_MAX, sizeof(size_t)),
    P(KMS_ECALL_SESSION_FEED, ms_kms_ecall_session_feed_t, ms_pending, SIZE_MAX, sizeof(size_t)),
    P(KMS_ECALL_SESSION_FEED, ms_kms_ecall_session_feed_t, ms_closed, SIZE_MAX, sizeof(int)),
};

/* The refused call: INVALID_PARAMETER, no retval, the range's digest unchanged. */
static void expect_refused(int ecall, void *pms, const union any_ms *host_ms, const char *what, const char *where)
{
    uint8_t before[32], after[32];
    REQUIRE(th_elrange_digest(g_eid, 0, before) == 0);
    kms_sgx_status_t st = simcpu_ecall(g_eid, ecall, &th_ocalls, pms);
    REQUIRE(th_elrange_digest(g_eid, 0, after) == 0);
    int ok = st == SGX_ERROR_INVALID_PARAMETER && memcmp(before, after, 32) == 0 &&
             (host_ms == NULL || host_ms->init.ms_retval == -1);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  ECALL %d, %s: %s (status 0x%x)\n", ecall, what, where, st);
}

static void test_ecall_pointers(void)
{
    union any_ms ms;
    struct bad bad[12];
    for (int e = 0; e < KMS_ECALL_COUNT; e++) { /* every ECALL runs with valid host pointers */
        fill_valid(e, &ms);
        CHECK_EQ(simcpu_ecall(g_eid, e, &th_ocalls, &ms), SGX_SUCCESS);
        CHECK(ms.init.ms_retval != -1 && th_code_known(ms.init.ms_retval));
    }
    for (int e = 0; e < KMS_ECALL_COUNT; e++) { /* the marshalling struct itself */
        size_t n = fill_valid(e, &ms), k = bad_addresses(n, bad);
        for (size_t i = 0; i < k; i++) expect_refused(e, (void *)bad[i].addr, NULL, "the ms struct", bad[i].what);
    }
    for (size_t p = 0; p < sizeof k_params / sizeof k_params[0]; p++) {
        const struct param *pr = &k_params[p];
        size_t k = bad_addresses(pr->size, bad);
        for (size_t i = 0; i < k; i++) {
            fill_valid(pr->ecall, &ms);
            memcpy((uint8_t *)&ms + pr->ptr_off, &bad[i].addr, sizeof bad[i].addr);
            if (pr->len_off != SIZE_MAX) memcpy((uint8_t *)&ms + pr->len_off, &pr->size, sizeof pr->size);
            expect_refused(pr->ecall, &ms, &ms, pr->name, bad[i].what);
        }
    }
}

/* The attack: session_open writing the session id over a pointer the enclave keeps. */
static void test_session_open_attack(void)
{
    int ret = -1;
    uint64_t sid = 0;
    CHECK_EQ(th_install_self_quote(g_eid), KMS_OK);
    CHECK_EQ(th_ecall_session_open(g_eid, &sid, &ret), SGX_SUCCESS);
    CHECK_EQ(ret, KMS_OK);
    CHECK(sid != 0);
    uintptr_t saved = peek(g_live);
    uint8_t before[32], after[32];
    REQUIRE(th_elrange_digest(g_eid, 0, before) == 0);
    ret = -1;
    CHECK_EQ(th_ecall_session_open(g_eid, (uint64_t *)g_live, &ret), SGX_ERROR_INVALID_PARAMETER);
    CHECK_EQ(ret, -1);
    REQUIRE(th_elrange_digest(g_eid, 0, after) == 0);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK(peek(g_live) == saved);
    CHECK_EQ(th_ecall_session_close(g_eid, sid, &ret), SGX_SUCCESS);
    CHECK_EQ(ret, KMS_OK);
}

/* ---- OCALLs ------------------------------------------------------------------------------ */

static int g_claim;        /* 1: claim one byte more than the buffer; 2: SIZE_MAX; 3: rewrite pointers */
static int g_ptrs_outside; /* every pointer the enclave handed out lay outside ELRANGE */

static int host_mem(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, last = a + (n ? n - 1 : 0);
    const kms_simcpu_range *r[2] = {&g_l.image, &g_l.reserved};
    for (int i = 0; i < 2; i++)
        if (last >= r[i]->base && a < r[i]->base + r[i]->size) return 0;
    return p != NULL && last >= a;
}

static unsigned int hook_get(ms_kms_ocall_store_get_t *ms)
{
    g_ptrs_outside &= host_mem(ms, sizeof *ms) && host_mem(ms->ms_key_id, ms->ms_key_id_len) &&
                      host_mem(ms->ms_blob, ms->ms_blob_cap) && host_mem(ms->ms_blob_len, sizeof(size_t));
    ms->ms_retval = 0;
    if (g_claim == 3) { /* point the struct at enclave memory: the enclave must not follow it */
        ms->ms_blob = (uint8_t *)g_live;
        ms->ms_blob_len = (size_t *)g_live;
        return SGX_SUCCESS;
    }
    *ms->ms_blob_len = g_claim == 1 ? ms->ms_blob_cap + 1 : SIZE_MAX;
    return SGX_SUCCESS;
}

static unsigned int hook_list(ms_kms_ocall_store_list_t *ms)
{
    g_ptrs_outside &= host_mem(ms, sizeof *ms) && host_mem(ms->ms_ids, ms->ms_cap) &&
                      host_mem(ms->ms_len, sizeof(size_t)) && (ms->ms_after_len == 0 || host_mem(ms->ms_after, ms->ms_after_len));
    ms->ms_retval = 0;
    *ms->ms_len = g_claim == 1 ? ms->ms_cap + 1 : SIZE_MAX;
    return SGX_SUCCESS;
}

static unsigned int hook_put(ms_kms_ocall_store_put_t *ms)
{
    g_ptrs_outside &= host_mem(ms, sizeof *ms) && host_mem(ms->ms_key_id, ms->ms_key_id_len) &&
                      host_mem(ms->ms_blob, ms->ms_blob_len);
    return th_store_put_default(ms);
}

static void log_hook(int level, int code, const char *msg)
{
    (void)level;
    (void)code;
    g_ptrs_outside &= host_mem(msg, strlen(msg) + 1);
}

/* A commit the host says failed, then a state log head that claims more than its buffer (or points
 * the enclave at its own memory): the enclave must not take the head, nor follow the pointers. */
static unsigned int hook_commit_fails(ms_kms_ocall_store_commit_t *ms)
{
    g_ptrs_outside &= host_mem(ms, sizeof *ms) && host_mem(ms->ms_key_id, ms->ms_key_id_len) &&
                      host_mem(ms->ms_blob, ms->ms_blob_len) && host_mem(ms->ms_entry, ms->ms_entry_len);
    ms->ms_retval = -1;
    return SGX_SUCCESS;
}

static unsigned int hook_log_get(ms_kms_ocall_state_log_get_t *ms)
{
    g_ptrs_outside &= host_mem(ms, sizeof *ms) && host_mem(ms->ms_entry, ms->ms_cap) &&
                      host_mem(ms->ms_len, sizeof(size_t));
    ms->ms_retval = 0;
    if (g_claim == 3) {
        ms->ms_entry = (uint8_t *)g_live;
        ms->ms_len = (size_t *)g_live;
        return SGX_SUCCESS;
    }
    *ms->ms_len = g_claim == 1 ? ms->ms_cap + 1 : SIZE_MAX;
    return SGX_SUCCESS;
}

static void test_state_log_ocalls(void)
{
    char k[37];
    uintptr_t saved = peek(g_live);
    g_ptrs_outside = 1;
    th_store_commit_hook = hook_commit_fails;
    th_state_log_hook = hook_log_get;
    /* Refused either way: the read-back after the failed commit (STORE_UNAVAILABLE), or, since requests follow the
       shared log first, the follow that meets the over-claimed entry (STALE_RECORD: the log cannot be read). */
    for (g_claim = 1; g_claim <= 3; g_claim++) {
        kms_err_t got = th_create_key(g_eid, KeySpec_ED25519, KeyUsage_SIGN_VERIFY, k);
        CHECK(got == KMS_ERR_STORE_UNAVAILABLE || got == KMS_ERR_STALE_RECORD);
    }
    th_store_commit_hook = NULL;
    th_state_log_hook = NULL;
    CHECK(g_ptrs_outside);
    CHECK(peek(g_live) == saved);
    CHECK_EQ(th_create_key(g_eid, KeySpec_ED25519, KeyUsage_SIGN_VERIFY, k), KMS_OK); /* the log goes on */
}

static int describe_unknown(void)
{
    Request *req = th_new_request(Request_describe_key_tag);
    snprintf(req->op.describe_key.key_id, sizeof req->op.describe_key.key_id, "00000000-0000-4000-8000-0000000000ee");
    int ret = th_request(g_eid, req, NULL, NULL);
    free(req);
    return ret;
}

static void test_ocalls(void)
{
    char k[37];
    g_ptrs_outside = 1;
    th_store_put_hook = hook_put;
    th_log_hook_fn = log_hook;
    CHECK_EQ(th_create_key(g_eid, KeySpec_ED25519, KeyUsage_SIGN_VERIFY, k), KMS_OK);
    th_store_get_hook = hook_get;
    uintptr_t saved = peek(g_live);
    for (g_claim = 1; g_claim <= 2; g_claim++) CHECK_EQ(describe_unknown(), KMS_ERR_STORE_UNAVAILABLE);
    g_claim = 3;
    CHECK_EQ(describe_unknown(), KMS_ERR_KEY_NOT_FOUND); /* its own length (0) counted, not the host's */
    CHECK(peek(g_live) == saved);
    th_store_get_hook = NULL;
    th_store_list_hook = hook_list;
    for (g_claim = 1; g_claim <= 2; g_claim++) {
        Request *req = th_new_request(Request_list_keys_tag);
        CHECK_EQ(th_request(g_eid, req, NULL, NULL), KMS_ERR_STORE_UNAVAILABLE);
        free(req);
    }
    th_store_list_hook = NULL;
    th_store_put_hook = NULL;
    th_log_hook_fn = NULL;
    CHECK(g_ptrs_outside);
    CHECK_EQ(describe_unknown(), KMS_ERR_KEY_NOT_FOUND); /* the enclave still answers */
}

/* A heap too small for one request's buffers: a typed error, and the enclave keeps working. */
static void test_out_of_memory(void)
{
    uint64_t eid = make_enclave(KMS_SIMCPU_HEAP_MIN, 1);
    int ret = -1;
    kms_sgx_status_t st = th_ecall_init(eid, &ret);
    CHECK(st == SGX_SUCCESS);
    /* Sessions each hold a TLS server; open them until the heap is exhausted. */
    int oom = 0;
    if (ret == KMS_OK && th_install_self_quote(eid) == KMS_OK) {
        for (int i = 0; i < 128 && !oom; i++) {
            uint64_t sid = 0;
            CHECK_EQ(th_ecall_session_open(eid, &sid, &ret), SGX_SUCCESS);
            oom = ret == KMS_ERR_OUT_OF_MEMORY;
            if (ret != KMS_OK && !oom) break;
        }
    } else {
        oom = ret == KMS_ERR_OUT_OF_MEMORY || st == SGX_ERROR_OUT_OF_MEMORY;
    }
    CHECK(oom);
    /* The CPU's uninit command (what destroy sends first): the enclave stops for good. */
    CHECK_EQ(simcpu_ecall(eid, KMS_ECALL_UNINIT, &th_ocalls, NULL), SGX_SUCCESS);
    CHECK_EQ(th_ecall_init(eid, &ret), SGX_ERROR_UNEXPECTED);
    CHECK_EQ(simcpu_destroy_enclave(eid), SGX_SUCCESS);
}

int main(void)
{
    REQUIRE(th_exe_path("../asan/kms_enclave.so", g_image, sizeof g_image) != NULL);
    REQUIRE(th_exe_path("../asan/kms_enclave.sigstruct", g_sig, sizeof g_sig) != NULL);
    REQUIRE(th_mkdtemp("kms-test-elrange", g_dir, sizeof g_dir) == 0);
    g_eid = make_enclave(HEAP, 2);
    int ret = -1;
    REQUIRE(th_ecall_init(g_eid, &ret) == SGX_SUCCESS && ret == KMS_OK);
    Request *req = th_new_request(Request_generate_domain_key_tag);
    REQUIRE(th_request(g_eid, req, NULL, NULL) == KMS_OK);
    free(req);
    REQUIRE(simcpu_enclave_layout(g_eid, &g_l) == SGX_SUCCESS);
    test_layout();
    REQUIRE(g_live != 0);
    test_ecall_pointers();
    test_session_open_attack();
    test_ocalls();
    test_state_log_ocalls();
    test_out_of_memory();
    CHECK_EQ(simcpu_destroy_enclave(g_eid), SGX_SUCCESS);
    th_rmtree(g_dir);
    return test_summary();
}
