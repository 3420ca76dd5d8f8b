/*
 * fuzz_ecall.c - libFuzzer harness on the ECALLs of the real stack: the ASan + UBSan +
 * coverage-instrumented enclave image (build/fuzz/kms_enclave.so, signed) loaded by the
 * instrumented simulated CPU (build/fuzz/libkms_simcpu.so), entered through simcpu_ecall with
 * the marshalling struct and OCALL table exactly as enclave/bridge/bridge.c does.
 *
 * Setup (LLVMFuzzerInitialize): a fresh platform directory (build/fuzz/run/), the init ECALL,
 * a domain key, and one key per entry of k_keys, created with real encoded Requests; their
 * records are kept by the harness's in-memory store (testhost.c, store_get/put/list OCALLs). While
 * fuzzing, the store never changes, and the input length mod 3 picks the host's behaviour:
 * 0: store_put (the node-local sealed key) answers "durable" without keeping it, store_commit (every
 * record change) answers "conflict", store_list lists the store;
 * 1: store_put answers "conflict", store_list answers with the input's own bytes (hostile ids)
 * and store_get answers every id it does not hold with the input's own bytes (a hostile record
 * blob); 2: put and list fail. So the enclave's state is the same for every input (reproducible crashes) and
 * every answer the host can give is exercised.
 *
 * Key ids: inputs name keys with placeholder UUIDs PH_PREFIX + two hex digits (index into
 * k_keys, see enclave/fuzz/make_seeds.py); every occurrence is replaced by the real id before
 * the call, so seeds and mutations reach the handlers with keys that exist.
 *
 * Per input: the call with a full-size response buffer must be SGX_SUCCESS with a code of
 * ErrorCode; KMS_OK must carry a decodable Response that echoes version and request id in at
 * most resp_cap bytes. The last input byte selects one extra variant: a truncated request, a
 * small response buffer, the request padded past KMS_MAX_REQUEST_SIZE (exactly
 * KMS_ERR_REQUEST_TOO_LARGE), NULL pointers in the ms struct (exactly KMS_ERR_BAD_PARAMETER),
 * or one pointer of the ms struct (or the struct itself) replaced by an address the input picks
 * from enclave addresses (image, heap, stacks, every range edge: exactly
 * SGX_ERROR_INVALID_PARAMETER, ms_retval untouched) and host addresses (answered as usual).
 *
 * Session mode: an input whose first byte is a TLS record type (0x14-0x18) is fed, as a
 * hostile client's TLS bytes, to a fresh session (a self-made quote is installed at setup), in
 * pieces the last byte chooses, then drained and closed; every status must be SGX_SUCCESS and
 * every code one of ErrorCode. Any violation aborts. Environment: KMS_FUZZ_IMAGE / KMS_FUZZ_SIGSTRUCT override the image;
 * KMS_FUZZ_TRACE prints each input's operation tag and code (for triage, e.g. with -runs=0).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <pb_decode.h>

#include "testhost.h"

#define PH_PREFIX "f0220000-0000-4000-8000-0000000000"
#define PH_PREFIX_LEN 34u

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The keys of the fuzzed enclave; placeholder index = position + 1 ("...01" is AES). */
static const struct {
    KeySpec spec;
    KeyUsage usage;
    KeyState state;
} k_keys[] = {
    {KeySpec_SYMMETRIC_DEFAULT, KeyUsage_ENCRYPT_DECRYPT, KeyState_ENABLED},   /* 01 */
    {KeySpec_ED25519, KeyUsage_SIGN_VERIFY, KeyState_ENABLED},                 /* 02 */
    {KeySpec_ECC_NIST_P256, KeyUsage_SIGN_VERIFY, KeyState_ENABLED},           /* 03 */
    {KeySpec_HMAC_SHA_256, KeyUsage_GENERATE_VERIFY_MAC, KeyState_ENABLED},    /* 04 */
    {KeySpec_ECC_NIST_P256, KeyUsage_KEY_AGREEMENT, KeyState_ENABLED},         /* 05 */
    {KeySpec_X25519, KeyUsage_KEY_AGREEMENT, KeyState_ENABLED},                /* 06 */
    {KeySpec_RSA_2048, KeyUsage_ENCRYPT_DECRYPT, KeyState_ENABLED},            /* 07 */
    {KeySpec_SYMMETRIC_DEFAULT, KeyUsage_ENCRYPT_DECRYPT, KeyState_DISABLED},  /* 08 */
    {KeySpec_ECC_SECG_P256K1, KeyUsage_SIGN_VERIFY, KeyState_ENABLED},         /* 09 */
};
#define KEY_COUNT (sizeof k_keys / sizeof k_keys[0])

static char g_ids[KEY_COUNT][37];
static uint64_t g_eid;
static char g_platform[PATH_MAX];
static Request *g_req;   /* the harness's own decode of the input */
static Response *g_resp; /* decode of an OK response */
static int g_trace;      /* KMS_FUZZ_TRACE set: print "op=<tag> code=<code>" per input */
static kms_simcpu_layout g_layout;
static uint8_t *g_session_out; /* KMS_SESSION_OUT_MAX bytes */

static void die(const char *what, int code)
{
    fprintf(stderr, "fuzz_ecall: %s (code %d)\n", what, code);
    abort();
}

/* How the host answers store_put / store_list while fuzzing (the store itself never changes). */
enum { HOST_OBLIGING = 0, HOST_HOSTILE = 1, HOST_FAILING = 2 };
static int g_host_mode;
static const uint8_t *g_input; /* the current (substituted) input, for hostile list answers */
static size_t g_input_len;

static unsigned int put_while_fuzzing(ms_kms_ocall_store_put_t *ms)
{
    if (ms->ms_key_id == NULL || (ms->ms_blob == NULL && ms->ms_blob_len > 0)) die("store_put: NULL pointer", 0);
    ms->ms_retval = g_host_mode == HOST_OBLIGING ? 0 : g_host_mode == HOST_HOSTILE ? 1 : -1;
    return SGX_SUCCESS;
}

/* A record change while fuzzing: never kept (the store and its state log stay as set up); an
 * obliging or hostile host answers "conflict", a failing one fails. Nothing the enclave's index
 * holds moves, so every input sees the same state. */
static unsigned int commit_while_fuzzing(ms_kms_ocall_store_commit_t *ms)
{
    if (ms->ms_key_id == NULL || ms->ms_entry == NULL || (ms->ms_blob == NULL && ms->ms_blob_len > 0))
        die("store_commit: NULL pointer", 0);
    ms->ms_retval = g_host_mode == HOST_FAILING ? -1 : 1;
    return SGX_SUCCESS;
}

static unsigned int get_while_fuzzing(ms_kms_ocall_store_get_t *ms)
{
    if (ms->ms_key_id == NULL || ms->ms_blob == NULL || ms->ms_blob_len == NULL) die("store_get: NULL pointer", 0);
    unsigned int rc = th_store_get_default(ms);
    if (g_host_mode == HOST_HOSTILE && ms->ms_retval == 0 && *ms->ms_blob_len == 0 && g_input_len > 0) {
        size_t n = g_input_len < ms->ms_blob_cap ? g_input_len : ms->ms_blob_cap;
        memcpy(ms->ms_blob, g_input, n); /* a "record" for an id the store does not hold */
        *ms->ms_blob_len = n;
    }
    return rc;
}

static unsigned int list_while_fuzzing(ms_kms_ocall_store_list_t *ms)
{
    if (ms->ms_ids == NULL || ms->ms_len == NULL) die("store_list: NULL pointer", 0);
    if (g_host_mode == HOST_OBLIGING) return th_store_list_default(ms);
    ms->ms_retval = g_host_mode == HOST_HOSTILE ? 0 : -1;
    if (g_host_mode == HOST_HOSTILE) {
        size_t n = g_input_len < ms->ms_cap ? g_input_len : ms->ms_cap;
        memcpy(ms->ms_ids, g_input, n);
        *ms->ms_len = n;
    }
    return SGX_SUCCESS;
}

/*
 * Codes that mean an internal failure or a host-side fault this harness never causes (its
 * store_get always answers, put and list fail only in HOST_FAILING mode, its buffers are
 * full-size and non-NULL): a request must not be able to produce them.
 */
static int code_internal(int code)
{
    if (code == KMS_ERR_STORE_UNAVAILABLE) return g_host_mode != HOST_FAILING;
    if (code == KMS_ERR_RECORD_CORRUPT) return g_host_mode != HOST_HOSTILE; /* hostile store blobs */
    if (code == KMS_ERR_STALE_RECORD) return 1; /* the state log and the store never disagree here */
    switch (code) {
    case KMS_ERR_NOT_INITIALIZED: case KMS_ERR_BUFFER_TOO_SMALL: case KMS_ERR_ENCODE:
    case KMS_ERR_BAD_PARAMETER: case KMS_ERR_OUT_OF_MEMORY:
    case KMS_ERR_RECORD_CORRUPT: case KMS_ERR_CRYPTO: case KMS_ERR_RANDOM: case KMS_ERR_PLATFORM:
    case KMS_ERR_REPORT: case KMS_ERR_OCALL:
        return 1;
    default:
        return 0;
    }
}

static int spec_is_rsa(KeySpec s)
{
    return s == KeySpec_RSA_2048 || s == KeySpec_RSA_3072 || s == KeySpec_RSA_4096;
}

static void cleanup(void) { th_rmtree(g_platform); }

/* A fresh platform directory under <exe dir>/run/ (make fuzz-smoke empties it: a run that
 * crashed cannot remove its own), else under $TMPDIR. */
static void make_platform_dir(void)
{
    char base[PATH_MAX];
    if (th_exe_path("run", base, sizeof base) != NULL && (mkdir(base, 0700) == 0 || errno == EEXIST) &&
        snprintf(g_platform, sizeof g_platform, "%s/platform.XXXXXX", base) < (int)sizeof g_platform &&
        mkdtemp(g_platform) != NULL)
        return;
    if (th_mkdtemp("kms-fuzz-platform", g_platform, sizeof g_platform) != 0) die("mkdtemp", 0);
}

/* One encoded request through the enclave during setup; aborts unless it answers KMS_OK. */
static void setup_request(Request *req, Response *resp, const char *what)
{
    int ret = th_request(g_eid, req, resp, NULL);
    if (ret != KMS_OK) die(what, ret);
}

static void create_keys(void)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        int ret = th_create_key(g_eid, k_keys[i].spec, k_keys[i].usage, g_ids[i]);
        if (ret != KMS_OK) die("CreateKey during setup", ret);
        if (k_keys[i].state == KeyState_ENABLED) continue;
        Request *req = th_new_request(Request_set_key_state_tag);
        memcpy(req->op.set_key_state.key_id, g_ids[i], 37);
        req->op.set_key_state.state = k_keys[i].state;
        setup_request(req, NULL, "SetKeyState during setup");
        free(req);
    }
}

/* Encrypt then decrypt with the AES key: the stack works before fuzzing starts. */
static void self_check(void)
{
    Request *req = th_new_request(Request_encrypt_tag);
    Response *resp = th_new_response();
    memcpy(req->op.encrypt.key_id, g_ids[0], 37);
    req->op.encrypt.plaintext.size = 5;
    memcpy(req->op.encrypt.plaintext.bytes, "hello", 5);
    setup_request(req, resp, "Encrypt during setup");
    memset(req, 0, sizeof *req);
    req->which_op = Request_decrypt_tag;
    req->op.decrypt.ciphertext.size = resp->result.encrypt.ciphertext.size;
    memcpy(req->op.decrypt.ciphertext.bytes, resp->result.encrypt.ciphertext.bytes,
           resp->result.encrypt.ciphertext.size);
    setup_request(req, resp, "Decrypt during setup");
    if (resp->result.decrypt.plaintext.size != 5 || memcmp(resp->result.decrypt.plaintext.bytes, "hello", 5) != 0)
        die("Decrypt during setup returned other bytes", 0);
    free(req);
    free(resp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char image[PATH_MAX], sig[PATH_MAX];
    const char *env_image = getenv("KMS_FUZZ_IMAGE"), *env_sig = getenv("KMS_FUZZ_SIGSTRUCT");
    if (env_image != NULL) snprintf(image, sizeof image, "%s", env_image);
    else if (th_exe_path("kms_enclave.so", image, sizeof image) == NULL) die("image path", 0);
    if (env_sig != NULL) snprintf(sig, sizeof sig, "%s", env_sig);
    else if (th_exe_path("kms_enclave.sigstruct", sig, sizeof sig) == NULL) die("sigstruct path", 0);
    make_platform_dir();
    atexit(cleanup);
    const char *why = "?";
    kms_sgx_status_t st = simcpu_create_enclave(g_platform, image, sig, 4, &g_eid, &why);
    if (st != SGX_SUCCESS) {
        fprintf(stderr, "fuzz_ecall: cannot load %s: %s\n", image, why);
        die("simcpu_create_enclave", (int)st);
    }
    int ret = -1;
    st = th_ecall_init(g_eid, &ret);
    if (st != SGX_SUCCESS || ret != KMS_OK) die("init ECALL", st != SGX_SUCCESS ? (int)st : ret);
    Request *req = th_new_request(Request_generate_domain_key_tag);
    setup_request(req, NULL, "GenerateDomainKey during setup");
    free(req);
    create_keys();
    self_check();
    int q = th_install_self_quote(g_eid);
    if (q != KMS_OK) die("installing the self-made quote", q);
    if (simcpu_enclave_layout(g_eid, &g_layout) != SGX_SUCCESS) die("simcpu_enclave_layout", 0);
    g_session_out = malloc(KMS_SESSION_OUT_MAX);
    if (g_session_out == NULL) die("out of memory in the harness", 0);
    g_req = th_new_request(0);
    g_resp = th_new_response();
    g_trace = getenv("KMS_FUZZ_TRACE") != NULL;
    th_store_put_hook = put_while_fuzzing;
    th_store_commit_hook = commit_while_fuzzing;
    th_store_get_hook = get_while_fuzzing;
    th_store_list_hook = list_while_fuzzing;
    return 0;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Replace every placeholder key id by the real id of that key. */
static void substitute_ids(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i + 36 <= len; i++) {
        if (buf[i] != 'f' || memcmp(buf + i, PH_PREFIX, PH_PREFIX_LEN) != 0) continue;
        int hi = hex_value(buf[i + PH_PREFIX_LEN]), lo = hex_value(buf[i + PH_PREFIX_LEN + 1]);
        int idx = hi < 0 || lo < 0 ? 0 : hi * 16 + lo;
        if (idx >= 1 && (size_t)idx <= KEY_COUNT) memcpy(buf + i, g_ids[idx - 1], 36);
    }
}

/* Decode with the harness's copy of nanopb and the same descriptors; 1 on success. */
static int harness_decode(const uint8_t *req, size_t len)
{
    memset(g_req, 0, sizeof *g_req);
    pb_istream_t is = pb_istream_from_buffer(req, len);
    return pb_decode(&is, Request_fields, g_req) ? 1 : 0;
}

/* Requests not worth fuzz time: RSA key generation takes a second or more under ASan (a
 * corpus that keeps such inputs falls from thousands of executions per second to about 100). */
static int too_slow(int decoded)
{
    if (!decoded) return 0;
    if (g_req->which_op == Request_create_key_tag) return spec_is_rsa(g_req->op.create_key.spec);
    if (g_req->which_op == Request_get_parameters_for_import_tag) return 1; /* an RSA-3072 wrapping key */
    if (g_req->which_op == Request_generate_data_key_pair_tag) return spec_is_rsa(g_req->op.generate_data_key_pair.pair_spec);
    if (g_req->which_op != Request_rotate_key_tag) return 0;
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (spec_is_rsa(k_keys[i].spec) && strcmp(g_req->op.rotate_key.key_id, g_ids[i]) == 0) return 1;
    return 0;
}

/*
 * One call ECALL with an exact-size copy of req and an exact-size response buffer (so ASan
 * sees any access past either), checked as described at the top. Returns the code.
 */
static int call_checked(const uint8_t *req, size_t len, size_t cap, int decoded)
{
    uint8_t *in = malloc(len > 0 ? len : 1), *out = malloc(cap > 0 ? cap : 1);
    if (in == NULL || out == NULL) die("out of memory in the harness", 0);
    if (len > 0) memcpy(in, req, len);
    size_t out_len = 0;
    int ret = -1;
    kms_sgx_status_t st = th_ecall_call(g_eid, in, len, out, cap, &out_len, &ret);
    if (st != SGX_SUCCESS) die("call ECALL failed", (int)st);
    if (!th_code_known(ret)) die("enclave returned a code outside ErrorCode", ret);
    if (ret == KMS_OK) {
        if (out_len > cap) die("resp_len exceeds the response buffer", (int)out_len);
        if (!decoded) die("enclave accepted a request nanopb refuses", 0);
        memset(g_resp, 0, sizeof *g_resp);
        pb_istream_t is = pb_istream_from_buffer(out, out_len);
        if (!pb_decode(&is, Response_fields, g_resp)) die("OK response does not decode", 0);
        if (g_resp->version != BoundaryVersion_BOUNDARY_VERSION_1 || g_resp->request_id != g_req->request_id)
            die("OK response does not echo version and request id", 0);
    }
    free(in);
    free(out);
    return ret;
}

/* The request padded (with its own bytes) to more than KMS_MAX_REQUEST_SIZE. */
static void oversized(const uint8_t *req, size_t len, size_t extra)
{
    size_t big = KMS_MAX_REQUEST_SIZE + 1 + extra;
    uint8_t *buf = malloc(big);
    if (buf == NULL) die("out of memory in the harness", 0);
    for (size_t i = 0; i < big; i++) buf[i] = len > 0 ? req[i % len] : 0;
    int ret = call_checked(buf, big, KMS_MAX_RESPONSE_SIZE, 0);
    if (ret != KMS_ERR_REQUEST_TOO_LARGE) die("oversized request not refused as too large", ret);
    free(buf);
}

/* NULL pointers in the ms struct: the trusted edge refuses them, never dereferences them. */
static void null_pointers(const uint8_t *req, size_t len)
{
    uint8_t out[16];
    size_t out_len = 0;
    int ret = -1;
    if (th_ecall_call(g_eid, req, len, NULL, sizeof out, &out_len, &ret) != SGX_SUCCESS ||
        ret != KMS_ERR_BAD_PARAMETER)
        die("NULL response buffer not refused", ret);
    if (th_ecall_call(g_eid, req, len, out, sizeof out, NULL, &ret) != SGX_SUCCESS ||
        ret != KMS_ERR_BAD_PARAMETER)
        die("NULL resp_len not refused", ret);
    if (len > 0 && (th_ecall_call(g_eid, NULL, len, out, sizeof out, &out_len, &ret) != SGX_SUCCESS ||
                    ret != KMS_ERR_BAD_PARAMETER))
        die("NULL request with a length not refused", ret);
}

/* An address drawn by pick: enclave memory (refused) or a host buffer (answered as usual). */
static uintptr_t draw_address(uint8_t pick, size_t n, int *enclave)
{
    static uint8_t host[KMS_MAX_RESPONSE_SIZE + 64];
    const kms_simcpu_layout *l = &g_layout;
    const kms_simcpu_range *seg = &l->segments[l->segment_count - 1];
    const uintptr_t a[] = {
        seg->base + (pick % 64) * 8, l->image.base + (size_t)pick * 4096 % l->image.size, l->heap.base + (size_t)pick * 64,
        l->stacks[pick % l->tcs_num].base + l->stacks[0].size / 2, l->image.base - n / 2,
        l->image.base + l->image.size - (n + 1) / 2, l->reserved.base - n / 2,
        l->reserved.base + l->reserved.size - (n + 1) / 2,
        n > 1 ? UINTPTR_MAX - n / 2 + 1 : l->image.base, (uintptr_t)host, (uintptr_t)host + 8,
    };
    size_t i = (size_t)(pick >> 3) % (sizeof a / sizeof a[0]);
    *enclave = a[i] < (uintptr_t)host || a[i] > (uintptr_t)host + 8;
    return a[i];
}

/* One pointer of the call's ms struct (or the struct) replaced by a drawn address. */
static void drawn_pointer(const uint8_t *req, size_t len, uint8_t pick, uint8_t sel)
{
    static uint8_t resp[KMS_MAX_RESPONSE_SIZE];
    size_t resp_len = 0, field = (size_t)(sel >> 4) % 4;
    size_t sizes[] = {sizeof(ms_kms_ecall_call_t), len > 0 ? len : 1, sizeof resp, sizeof(size_t)};
    int enclave = 0;
    uintptr_t a = draw_address(pick, sizes[field], &enclave);
    ms_kms_ecall_call_t ms = {.ms_retval = -1, .ms_req = req, .ms_req_len = len, .ms_resp = resp,
                              .ms_resp_cap = sizeof resp, .ms_resp_len = &resp_len};
    void *pms = &ms;
    if (field == 0 && enclave) pms = (void *)a;
    if (field == 1) memcpy(&ms.ms_req, &a, sizeof a);
    if (field == 2) memcpy(&ms.ms_resp, &a, sizeof a);
    if (field == 3) memcpy(&ms.ms_resp_len, &a, sizeof a);
    if (!enclave) return; /* host addresses: the main call already covers them */
    kms_sgx_status_t st = simcpu_ecall(g_eid, KMS_ECALL_CALL, &th_ocalls, pms);
    if (st != SGX_ERROR_INVALID_PARAMETER || ms.ms_retval != -1) die("an enclave address was not refused", (int)st);
}

/* Session mode: the input as a hostile client's TLS bytes, fed in two pieces. */
static void session_input(const uint8_t *data, size_t size)
{
    uint64_t sid = 0;
    int ret = -1, closed = 0;
    if (th_ecall_session_open(g_eid, &sid, &ret) != SGX_SUCCESS) die("session_open ECALL failed", 0);
    if (ret != KMS_OK) die("session_open refused", ret);
    size_t cut = size * data[size - 1] / 256, pending = 0, out_len = 0;
    const uint8_t *piece[3] = {data, data + cut, NULL};
    size_t piece_len[3] = {cut, size - cut, 0};
    for (int i = 0; i < 3 && !closed && ret != -2; i++) {
        do {
            uint8_t *in = malloc(piece_len[i] > 0 ? piece_len[i] : 1); /* exact size for ASan */
            if (in == NULL) die("out of memory in the harness", 0);
            if (piece_len[i] > 0) memcpy(in, piece[i], piece_len[i]);
            kms_sgx_status_t st = th_ecall_session_feed(g_eid, sid, in, piece_len[i], g_session_out,
                                                        KMS_SESSION_OUT_MAX, &out_len, &pending, &closed, &ret);
            free(in);
            if (st != SGX_SUCCESS) die("session_feed ECALL failed", (int)st);
            if (!th_code_known(ret)) die("session_feed returned a code outside ErrorCode", ret);
            if (ret == KMS_OK && out_len > KMS_SESSION_OUT_MAX) die("out_len exceeds the buffer", (int)out_len);
            if (ret != KMS_OK) ret = -2; /* the enclave ended the session */
            piece_len[i] = 0;
        } while (ret == KMS_OK && pending > 0 && !closed);
    }
    if (th_ecall_session_close(g_eid, sid, &ret) != SGX_SUCCESS) die("session_close ECALL failed", 0);
    if (ret != KMS_OK && ret != KMS_ERR_SESSION_NOT_FOUND) die("session_close refused", ret);
}

/* One extra variant chosen by the last byte (deterministic per input); first = the code of
 * the full call. */
static void variant(const uint8_t *req, size_t len, uint8_t sel, int first)
{
    switch (sel & 0x0f) {
    case 1: { /* truncated: a prefix of (sel >> 4)/16 of the request */
        size_t cut = len * (size_t)(sel >> 4) / 16;
        int decoded = harness_decode(req, cut);
        if (!too_slow(decoded)) (void)call_checked(req, cut, KMS_MAX_RESPONSE_SIZE, decoded);
        break;
    }
    case 2: { /* a response buffer of req[0] bytes: what answered OK must fit or be too small */
        int ret = call_checked(req, len, req[0], harness_decode(req, len));
        if (first == KMS_OK && ret != KMS_OK && ret != KMS_ERR_BUFFER_TOO_SMALL)
            die("a small response buffer is not KMS_ERR_BUFFER_TOO_SMALL", ret);
        break;
    }
    case 3: oversized(req, len, len > 0 ? req[0] : 0); break;
    case 4: null_pointers(req, len); break;
    case 5: drawn_pointer(req, len, len > 0 ? req[0] : 0, sel); break;
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > KMS_MAX_REQUEST_SIZE) {
        int ret = call_checked(data, size, KMS_MAX_RESPONSE_SIZE, 0);
        if (ret != KMS_ERR_REQUEST_TOO_LARGE) die("oversized input not refused as too large", ret);
        return 0;
    }
    if (size > 0 && data[0] >= 0x14 && data[0] <= 0x18) {
        session_input(data, size);
        return 0;
    }
    uint8_t *req = malloc(size > 0 ? size : 1);
    if (req == NULL) die("out of memory in the harness", 0);
    if (size > 0) memcpy(req, data, size);
    substitute_ids(req, size);
    g_host_mode = (int)(size % 3);
    g_input = req;
    g_input_len = size;
    int decoded = harness_decode(req, size);
    if (too_slow(decoded)) {
        free(req);
        return -1; /* not added to the corpus */
    }
    int ret = call_checked(req, size, KMS_MAX_RESPONSE_SIZE, decoded);
    if (g_trace) fprintf(stderr, "op=%d code=%d\n", decoded ? (int)g_req->which_op : -1, ret);
    if (code_internal(ret)) die("a request produced an internal/host-fault code", ret);
    if (size > 0) variant(req, size, data[size - 1], ret);
    free(req);
    return 0;
}
