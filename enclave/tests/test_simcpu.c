/*
 * test_simcpu - the simulated SGX CPU (build/asan/libkms_simcpu.so, ASan + UBSan):
 *   make build/test/test_simcpu && build/test/test_simcpu
 * EINIT checks (SIGSTRUCT signature, image measurement, root secret file and mode), EGETKEY
 * semantics through the test-only stub enclave image (stub_enclave.h: policies, ISVSVN and
 * CPUSVN limits, key names, reserved bytes, signer, platform), EREPORT MACs, instructions
 * refused outside an enclave or during an OCALL, and sealing end to end through real
 * GenerateDomainKey / LoadDomainKey requests to the ASan enclave image. Prints
 * "N passed, M failed" last.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "stub_enclave.h"
#include "test_util.h"
#include "testhost.h"

static char g_tmp[PATH_MAX];
static int g_copies;

/* build/asan/<name> */
static const char *asan(const char *name)
{
    static char buf[8][PATH_MAX];
    static int next;
    char rel[256];
    char *out = buf[next++ % 8];
    snprintf(rel, sizeof rel, "../asan/%s", name);
    REQUIRE(th_exe_path(rel, out, PATH_MAX) != NULL);
    return out;
}

/* A fresh platform directory <tmp>/<name>. */
static const char *platform(const char *name, char *out)
{
    snprintf(out, PATH_MAX, "%.3000s/%.64s", g_tmp, name);
    REQUIRE(mkdir(out, 0700) == 0);
    return out;
}

static kms_sgx_status_t create(const char *dir, const char *image, const char *sig, uint64_t *eid)
{
    const char *why = "?";
    *eid = 0;
    return simcpu_create_enclave(dir, image, sig, 4, eid, &why);
}

static uint64_t must_create(const char *dir, const char *image, const char *sig)
{
    uint64_t eid = 0;
    REQUIRE(create(dir, image, sig, &eid) == SGX_SUCCESS);
    return eid;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL && fwrite(data, 1, len, f) == len && fclose(f) == 0);
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

/* ---- EINIT -------------------------------------------------------------------------------- */

static void test_create_and_root(void)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    uint64_t eid = 0;
    platform("root", dir);
    CHECK_EQ(create(dir, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"), &eid), SGX_SUCCESS);
    CHECK(eid != 0);
    snprintf(path, sizeof path, "%s/sgx-sim/root.secret", dir);
    CHECK_EQ(mode_of(path), 0600);
    snprintf(path, sizeof path, "%s/sgx-sim", dir);
    CHECK_EQ(mode_of(path), 0700);
    CHECK_EQ(simcpu_destroy_enclave(eid), SGX_SUCCESS);
    CHECK_EQ(simcpu_destroy_enclave(eid), SGX_ERROR_INVALID_ENCLAVE_ID);
    CHECK_EQ(simcpu_ecall(eid, 0, &th_ocalls, &eid), SGX_ERROR_INVALID_ENCLAVE_ID);
    snprintf(path, sizeof path, "%s/sgx-sim/root.secret", dir);
    const mode_t bad_modes[] = {0644, 0640, 0604, 0660};
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        REQUIRE(chmod(path, bad_modes[i]) == 0);
        CHECK_EQ(create(dir, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"), &eid),
                 SGX_ERROR_FILE_BAD_STATUS);
    }
    REQUIRE(chmod(path, 0600) == 0);
    eid = must_create(dir, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"));
    CHECK_EQ(simcpu_destroy_enclave(eid), SGX_SUCCESS);
    write_file(path, (const uint8_t *)"KMSSIMR1 too short", 18);
    CHECK_EQ(create(dir, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"), &eid),
             SGX_ERROR_FILE_BAD_STATUS);
    /* A malformed CPUSVN file on a fresh platform. */
    platform("cpusvn", dir);
    snprintf(path, sizeof path, "%s/sgx-sim", dir);
    REQUIRE(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/sgx-sim/cpusvn", dir);
    write_file(path, (const uint8_t *)"not hex at all, not hex at all!!", 32);
    CHECK_EQ(create(dir, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"), &eid),
             SGX_ERROR_FILE_BAD_STATUS);
}

static void test_bad_parameters(void)
{
    char dir[PATH_MAX];
    uint64_t eid = 0;
    const char *image = asan("stub_enclave.so"), *sig = asan("stub_enclave.sigstruct");
    platform("params", dir);
    CHECK_EQ(simcpu_create_enclave(dir, image, sig, 0, &eid, NULL), SGX_ERROR_INVALID_PARAMETER);
    CHECK_EQ(simcpu_create_enclave(dir, image, sig, 65, &eid, NULL), SGX_ERROR_INVALID_PARAMETER);
    CHECK_EQ(simcpu_create_enclave(NULL, image, sig, 1, &eid, NULL), SGX_ERROR_INVALID_PARAMETER);
    CHECK_EQ(simcpu_create_enclave(dir, image, sig, 1, NULL, NULL), SGX_ERROR_INVALID_PARAMETER);
    CHECK_EQ(simcpu_abi_version(), KMS_SIMCPU_ABI_VERSION);
}

/* Every byte the SIGSTRUCT signature covers (header, modulus, exponent, signature, body). */
static void test_sigstruct_flips(void)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    uint8_t good[KMS_SGX_SIGSTRUCT_SIZE + 1], bad[KMS_SGX_SIGSTRUCT_SIZE];
    uint64_t eid = 0;
    const char *image = asan("stub_enclave.so");
    platform("flips", dir);
    REQUIRE(read_file(asan("stub_enclave.sigstruct"), good, sizeof good) == KMS_SGX_SIGSTRUCT_SIZE);
    snprintf(path, sizeof path, "%s/flipped.sigstruct", dir);
    int refused = 0, tried = 0;
    for (size_t off = 0; off < 1028; off += (off < 128 || off >= 900) ? 1 : 7) {
        memcpy(bad, good, sizeof bad);
        bad[off] ^= 0x01;
        write_file(path, bad, sizeof bad);
        tried++;
        if (create(dir, image, path, &eid) == SGX_ERROR_INVALID_SIGNATURE) refused++;
        else fprintf(stderr, "SIGSTRUCT byte %zu flipped: not refused as INVALID_SIGNATURE\n", off);
    }
    CHECK(tried > 300);
    CHECK_EQ(refused, tried);
    write_file(path, good, 1000); /* short */
    CHECK_EQ(create(dir, image, path, &eid), SGX_ERROR_INVALID_SIGNATURE);
    snprintf(path, sizeof path, "%s/missing.sigstruct", dir);
    CHECK_EQ(create(dir, image, path, &eid), SGX_ERROR_INVALID_SIGNATURE);
}

/* The image must be the one the SIGSTRUCT measured. */
static void test_image_mismatch(void)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    uint64_t eid = 0;
    platform("image", dir);
    const char *sig = asan("stub_enclave.sigstruct");
    CHECK_EQ(create(dir, asan("stub_enclave_b.so"), sig, &eid), SGX_ERROR_INVALID_ENCLAVE);
    snprintf(path, sizeof path, "%s/appended.so", dir);
    REQUIRE(th_copy_file(asan("stub_enclave.so"), path) == 0);
    FILE *f = fopen(path, "ab");
    REQUIRE(f != NULL && fputc(0, f) == 0 && fclose(f) == 0);
    CHECK_EQ(create(dir, path, sig, &eid), SGX_ERROR_INVALID_ENCLAVE);
    snprintf(path, sizeof path, "%s/missing.so", dir);
    CHECK_EQ(create(dir, path, sig, &eid), SGX_ERROR_FILE_BAD_STATUS);
}

/* ---- EGETKEY / EREPORT through the stub enclave -------------------------------------------- */

enum { KR_POLICY_MRENCLAVE = 1, KR_POLICY_MRSIGNER = 2, KR_POLICY_NOISVPRODID = 4 };

static void key_request(uint8_t kr[512], uint16_t name, uint16_t policy, uint16_t isvsvn,
                        const uint8_t cpusvn[16], uint8_t keyid)
{
    memset(kr, 0, 512);
    kr[0] = (uint8_t)name;
    kr[2] = (uint8_t)policy;
    kr[4] = (uint8_t)isvsvn;
    kr[5] = (uint8_t)(isvsvn >> 8);
    memcpy(kr + 8, cpusvn, 16);
    kr[24] = 0x0b; /* attribute mask: INIT | DEBUG | MODE64BIT */
    kr[31] = 0xff;
    memset(kr + 40, keyid, 32);
    kr[75] = 0xf0; /* misc mask */
}

/* EGETKEY in enclave eid; returns its status, key in key[16]. */
static unsigned int egetkey(uint64_t eid, const uint8_t kr[512], uint8_t key[16])
{
    stub_ms_egetkey_t ms = {.status = 0xffff};
    memcpy(ms.key_request, kr, 512);
    CHECK_EQ(simcpu_ecall(eid, STUB_ECALL_EGETKEY, &th_ocalls, &ms), SGX_SUCCESS);
    memcpy(key, ms.key, 16);
    return ms.status;
}

static void self_report(uint64_t eid, const uint8_t *target_info, uint8_t report[432])
{
    stub_ms_ereport_t ms = {.status = 0xffff, .has_target = target_info != NULL};
    if (target_info != NULL) memcpy(ms.target_info, target_info, 512);
    memset(ms.report_data, 0x5a, sizeof ms.report_data);
    CHECK_EQ(simcpu_ecall(eid, STUB_ECALL_EREPORT, &th_ocalls, &ms), SGX_SUCCESS);
    CHECK_EQ(ms.status, SGX_SUCCESS);
    memcpy(report, ms.report, 432);
}

static int cmac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    char cipher[] = "AES-128-CBC";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                           OSSL_PARAM_construct_end()};
    size_t n = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, 16, params) == 1 && EVP_MAC_update(ctx, data, len) == 1 &&
             EVP_MAC_final(ctx, out, &n, 16) == 1 && n == 16;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/* The REPORT's MAC checks with the REPORT key that `verifier` gets from EGETKEY. */
static int report_verifies(uint64_t verifier, const uint8_t report[432])
{
    uint8_t kr[512], key[16], mac[16], zero[16] = {0};
    key_request(kr, 3, 0, 0, zero, 0);
    memset(kr + 8, 0, 64); /* a REPORT key request carries only the name and the KEYID */
    memcpy(kr + 40, report + 384, 32);
    return egetkey(verifier, kr, key) == SGX_SUCCESS && cmac(key, report, 384, mac) &&
           memcmp(mac, report + 416, 16) == 0;
}

struct stubs {
    uint64_t s1, s1b, s2, other, elsewhere;
    uint8_t cpusvn[16];
};

static void egetkey_identity(const struct stubs *s)
{
    uint8_t kr[512], k1[16], k[16];
    key_request(kr, 4, KR_POLICY_MRSIGNER, 1, s->cpusvn, 0xa1);
    CHECK_EQ(egetkey(s->s1, kr, k1), SGX_SUCCESS);
    CHECK(egetkey(s->s1, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) == 0);      /* deterministic */
    CHECK(egetkey(s->s1b, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) == 0);     /* same signer */
    CHECK(egetkey(s->s2, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) == 0);      /* newer ISVSVN */
    CHECK(egetkey(s->other, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) != 0);   /* other signer */
    CHECK(egetkey(s->elsewhere, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) != 0); /* other root */
    kr[40] ^= 1;
    CHECK(egetkey(s->s1, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) != 0);      /* other KEYID */
    kr[40] ^= 1;
    kr[2] = KR_POLICY_MRSIGNER | KR_POLICY_NOISVPRODID;
    CHECK(egetkey(s->s1, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) != 0);
    kr[2] = KR_POLICY_MRENCLAVE;
    CHECK(egetkey(s->s1, kr, k1) == SGX_SUCCESS && egetkey(s->s1b, kr, k) == SGX_SUCCESS &&
          memcmp(k, k1, 16) != 0);                                                /* other image */
    CHECK(egetkey(s->s2, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) == 0);      /* same image */
}

static void egetkey_limits(const struct stubs *s)
{
    uint8_t kr[512], k1[16], k[16];
    key_request(kr, 4, KR_POLICY_MRSIGNER, 2, s->cpusvn, 0xa2);
    CHECK_EQ(egetkey(s->s1, kr, k), SGX_ERROR_INVALID_ISVSVN);                 /* above own ISVSVN */
    CHECK_EQ(egetkey(s->s2, kr, k1), SGX_SUCCESS);
    kr[4] = 1;
    CHECK(egetkey(s->s2, kr, k) == SGX_SUCCESS && memcmp(k, k1, 16) != 0);
    int raised = -1, lowered = -1;
    for (int i = 0; i < 16 && (raised < 0 || lowered < 0); i++) {
        if (s->cpusvn[i] < 0xff && raised < 0) raised = i;
        if (s->cpusvn[i] > 0 && lowered < 0) lowered = i;
    }
    REQUIRE(raised >= 0 && lowered >= 0);
    kr[8 + raised]++;
    CHECK_EQ(egetkey(s->s1, kr, k), SGX_ERROR_INVALID_CPUSVN);
    kr[8 + raised]--;
    kr[8 + lowered]--;
    CHECK_EQ(egetkey(s->s1, kr, k), SGX_SUCCESS);
    kr[8 + lowered]++;
    const struct { size_t at; uint8_t value; unsigned int want; } bad[] = {
        {0, 0, SGX_ERROR_INVALID_KEYNAME}, {0, 5, SGX_ERROR_INVALID_KEYNAME},
        {2, 0, SGX_ERROR_INVALID_PARAMETER}, {2, 0x22, SGX_ERROR_INVALID_PARAMETER},
        {6, 1, SGX_ERROR_INVALID_PARAMETER}, {76, 1, SGX_ERROR_INVALID_PARAMETER},
        {78, 1, SGX_ERROR_INVALID_PARAMETER}, {511, 1, SGX_ERROR_INVALID_PARAMETER},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t save = kr[bad[i].at];
        kr[bad[i].at] = bad[i].value;
        CHECK_EQ(egetkey(s->s1, kr, k), bad[i].want);
        kr[bad[i].at] = save;
    }
}

static void ereport_macs(const struct stubs *s)
{
    uint8_t report[432], b_report[432], ti[512] = {0};
    self_report(s->s1, NULL, report);
    CHECK_EQ(report[258] | (report[259] << 8), 1);          /* ISVSVN from the SIGSTRUCT */
    CHECK_EQ(report[320], 0x5a);                             /* REPORTDATA as given */
    CHECK(report_verifies(s->s1, report));
    CHECK(!report_verifies(s->s1b, report));
    self_report(s->s1b, NULL, b_report);
    CHECK(memcmp(report + 64, b_report + 64, 32) != 0);     /* MRENCLAVE differs */
    CHECK(memcmp(report + 128, b_report + 128, 32) == 0);   /* MRSIGNER the same */
    /* Targeted at s1b: TARGETINFO = its MRENCLAVE, attributes and MISCSELECT. */
    memcpy(ti, b_report + 64, 32);
    memcpy(ti + 32, b_report + 48, 16);
    memcpy(ti + 52, b_report + 16, 4);
    self_report(s->s1, ti, report);
    CHECK(report_verifies(s->s1b, report));
    CHECK(!report_verifies(s->s1, report));
    report[100] ^= 1;
    CHECK(!report_verifies(s->s1b, report));
}

/* Instructions run only inside an enclave, and not while it is out in an OCALL. */
static unsigned int g_in_ocall[3];
static unsigned int ocall_probe(void *ms)
{
    uint8_t kr[512] = {0}, key[16], report[432], rd[64] = {0};
    uint64_t eid = *(uint64_t *)ms;
    g_in_ocall[0] = simcpu_egetkey(kr, key);
    g_in_ocall[1] = simcpu_ereport(NULL, rd, report);
    stub_ms_variant_t vms;
    g_in_ocall[2] = simcpu_ecall(eid, STUB_ECALL_VARIANT, &th_ocalls, &vms);
    return SGX_SUCCESS;
}

static void instruction_context(const struct stubs *s)
{
    uint8_t kr[512] = {0}, key[16], report[432], rd[64] = {0};
    CHECK_EQ(simcpu_egetkey(kr, key), SGX_ERROR_INVALID_STATE);
    CHECK_EQ(simcpu_ereport(NULL, rd, report), SGX_ERROR_INVALID_STATE);
    CHECK_EQ(simcpu_ocall(0, kr), SGX_ERROR_OCALL_NOT_ALLOWED);
    const kms_ocall_table_t table = {.nr_ocall = 1, .table = {ocall_probe}};
    uint64_t eid = s->s1;
    stub_ms_ocall_t ms = {.status = 0xffff, .index = 0, .ms = &eid};
    CHECK_EQ(simcpu_ecall(s->s1, STUB_ECALL_OCALL, &table, &ms), SGX_SUCCESS);
    CHECK_EQ(ms.status, SGX_SUCCESS);
    CHECK_EQ(g_in_ocall[0], SGX_ERROR_INVALID_STATE);
    CHECK_EQ(g_in_ocall[1], SGX_ERROR_INVALID_STATE);
    CHECK_EQ(g_in_ocall[2], SGX_ERROR_ECALL_NOT_ALLOWED);
    ms.index = 1; /* past nr_ocall */
    CHECK_EQ(simcpu_ecall(s->s1, STUB_ECALL_OCALL, &table, &ms), SGX_SUCCESS);
    CHECK_EQ(ms.status, SGX_ERROR_INVALID_FUNCTION);
    ms.index = -1;
    CHECK_EQ(simcpu_ecall(s->s1, STUB_ECALL_OCALL, &table, &ms), SGX_SUCCESS);
    CHECK_EQ(ms.status, SGX_ERROR_INVALID_FUNCTION);
    ms.index = 0;
    CHECK_EQ(simcpu_ecall(s->s1, STUB_ECALL_OCALL, NULL, &ms), SGX_SUCCESS);
    CHECK_EQ(ms.status, SGX_ERROR_OCALL_NOT_ALLOWED);
    stub_ms_variant_t v = {0};
    CHECK_EQ(simcpu_ecall(s->s1b, STUB_ECALL_VARIANT, &th_ocalls, &v), SGX_SUCCESS);
    CHECK_EQ(v.variant, 2);
}

static void test_egetkey(void)
{
    char p[PATH_MAX], q[PATH_MAX];
    struct stubs s;
    uint8_t report[432];
    platform("egetkey", p);
    platform("elsewhere", q);
    s.s1 = must_create(p, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"));
    s.s1b = must_create(p, asan("stub_enclave_b.so"), asan("stub_enclave_b.sigstruct"));
    s.s2 = must_create(p, asan("stub_enclave.so"), asan("stub_enclave.svn2.sigstruct"));
    s.other = must_create(p, asan("stub_enclave.so"), asan("stub_enclave.other.sigstruct"));
    s.elsewhere = must_create(q, asan("stub_enclave.so"), asan("stub_enclave.sigstruct"));
    self_report(s.s1, NULL, report);
    memcpy(s.cpusvn, report, 16);
    self_report(s.s2, NULL, report);
    CHECK_EQ(report[258] | (report[259] << 8), 2);
    egetkey_identity(&s);
    egetkey_limits(&s);
    ereport_macs(&s);
    instruction_context(&s);
    const uint64_t all[] = {s.s1, s.s1b, s.s2, s.other, s.elsewhere};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) CHECK_EQ(simcpu_destroy_enclave(all[i]), SGX_SUCCESS);
}

/* ---- sealing end to end through the production image --------------------------------------- */

/* A fresh copy of the ASan enclave image (fresh state), signed by `sig`, initialized. */
static uint64_t kms_enclave(const char *dir, const char *sig)
{
    char copy[PATH_MAX + 32];
    snprintf(copy, sizeof copy, "%s/kms-%d.so", g_tmp, g_copies++);
    REQUIRE(th_copy_file(asan("kms_enclave.so"), copy) == 0);
    uint64_t eid = must_create(dir, copy, asan(sig));
    int ret = -1;
    REQUIRE(th_ecall_init(eid, &ret) == SGX_SUCCESS && ret == KMS_OK);
    return eid;
}

/* GenerateDomainKey: the sealed blob into blob (cap 1024); returns its length. */
static size_t generate(uint64_t eid, uint8_t *blob)
{
    Request *req = th_new_request(Request_generate_domain_key_tag);
    Response *resp = th_new_response();
    REQUIRE(th_request(eid, req, resp, NULL) == KMS_OK);
    size_t len = resp->result.generate_domain_key.sealed_domain_key.size;
    memcpy(blob, resp->result.generate_domain_key.sealed_domain_key.bytes, len);
    free(req);
    free(resp);
    return len;
}

static int load(uint64_t eid, const uint8_t *blob, size_t len)
{
    Request *req = th_new_request(Request_load_domain_key_tag);
    memcpy(req->op.load_domain_key.sealed_domain_key.bytes, blob, len);
    req->op.load_domain_key.sealed_domain_key.size = (pb_size_t)len;
    int ret = th_request(eid, req, NULL, NULL);
    free(req);
    return ret;
}

static uint32_t le32(const uint8_t *p) { return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24); }

static void test_sealing(void)
{
    char p[PATH_MAX], q[PATH_MAX], cpusvn[PATH_MAX + 32];
    uint8_t blob1[1024], blob2[1024], bad[1024];
    platform("seal", p);
    platform("seal-elsewhere", q);
    size_t len1 = generate(kms_enclave(p, "kms_enclave.sigstruct"), blob1);
    /* sgx_sealed_data_t: MRSIGNER SEAL key request at 0, sizes at 512 and 528, payload at 560. */
    REQUIRE(len1 > KMS_SGX_SEALED_HEADER_SIZE);
    CHECK_EQ(blob1[0] | (blob1[1] << 8), 4);
    CHECK_EQ(blob1[2] | (blob1[3] << 8), KR_POLICY_MRSIGNER);
    CHECK_EQ(blob1[4] | (blob1[5] << 8), 1);
    CHECK_EQ(le32(blob1 + 528), len1 - KMS_SGX_SEALED_HEADER_SIZE);
    CHECK_EQ(le32(blob1 + 512), 32);
    uint64_t fresh = kms_enclave(p, "kms_enclave.sigstruct");
    const size_t flips[] = {0, 2, 4, 8, 40, 71, 512, 528, 540, 544, 559, 560, 591, 592, len1 - 1};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(bad, blob1, len1);
        bad[flips[i]] ^= 0x01;
        int ret = load(fresh, bad, len1);
        CHECK(ret >= KMS_ERR_SEAL_MALFORMED && ret <= KMS_ERR_SEAL_INVALID_POLICY);
    }
    CHECK_EQ(load(fresh, blob1, len1 - 1), KMS_ERR_SEAL_MALFORMED);
    CHECK_EQ(load(fresh, blob1, len1), KMS_OK);
    CHECK_EQ(load(fresh, blob1, len1), KMS_ERR_DOMAIN_ALREADY_LOADED);
    CHECK_EQ(load(kms_enclave(p, "kms_enclave.svn2.sigstruct"), blob1, len1), KMS_OK);  /* upgrade */
    size_t len2 = generate(kms_enclave(p, "kms_enclave.svn2.sigstruct"), blob2);
    CHECK_EQ(load(kms_enclave(p, "kms_enclave.sigstruct"), blob2, len2), KMS_ERR_SEAL_INVALID_ISVSVN);
    CHECK_EQ(load(kms_enclave(p, "kms_enclave.other.sigstruct"), blob1, len1), KMS_ERR_SEAL_MAC_MISMATCH);
    CHECK_EQ(load(kms_enclave(q, "kms_enclave.sigstruct"), blob1, len1), KMS_ERR_SEAL_MAC_MISMATCH);
    /* The same platform after a CPUSVN downgrade: sealed on a newer TCB. */
    snprintf(cpusvn, sizeof cpusvn, "%s/sgx-sim/cpusvn", p);
    write_file(cpusvn, (const uint8_t *)"00000000000000000000000000000000", 32);
    CHECK_EQ(load(kms_enclave(p, "kms_enclave.sigstruct"), blob1, len1), KMS_ERR_SEAL_INVALID_CPUSVN);
    REQUIRE(unlink(cpusvn) == 0);
}

int main(void)
{
    REQUIRE(th_mkdtemp("kms-test-simcpu", g_tmp, sizeof g_tmp) == 0);
    test_create_and_root();
    test_bad_parameters();
    test_sigstruct_flips();
    test_image_mismatch();
    test_egetkey();
    test_sealing();
    th_rmtree(g_tmp);
    return test_summary();
}
