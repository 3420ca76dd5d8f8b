/*
 * test_tcbinfo.c - the join's TCB evaluation (enclave/src/tcbinfo.c, pckext.c) on well-formed and
 * malformed input under ASan/UBSan: TCB Info v2/v3 and QE Identity bodies (level matching, validity
 * window, FMSPC/PCE-ID, masks, types, ranges, duplicates, every truncation), the dates, Intel's status
 * convergence, and the PCK certificate's SGX extension (DER built here, then broken in each way).
 */
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kms/proto/enclave/v1/boundary.pb.h"
#include "tcbinfo.h"
#include "test_util.h"

#define NOW 1747180800 /* 2025-05-14T00:00:00Z */
#define UP TcbStatusFlag_TCB_UP_TO_DATE
#define OOD TcbStatusFlag_TCB_OUT_OF_DATE

static char g_buf[32768];

/* One v3 level: 16 components all `svn`, its pcesvn and status. */
static size_t level3(char *out, size_t cap, int svn, int pcesvn, const char *status)
{
    size_t n = (size_t)snprintf(out, cap, "{\"tcb\":{\"sgxtcbcomponents\":[");
    for (int i = 0; i < 16; i++) n += (size_t)snprintf(out + n, cap - n, "%s{\"svn\":%d}", i ? "," : "", svn);
    return n + (size_t)snprintf(out + n, cap - n, "],\"pcesvn\":%d},\"tcbDate\":\"2025-05-14T00:00:00Z\","
                                "\"tcbStatus\":\"%s\",\"advisoryIDs\":[\"INTEL-SA-00615\"]}", pcesvn, status);
}

static const char *tcb_info(const char *head, const char *levels)
{
    snprintf(g_buf, sizeof g_buf, "{%s\"issueDate\":\"2025-05-01T00:00:00Z\",\"nextUpdate\":\"2025-05-31T00:00:00Z\","
             "\"fmspc\":\"53494D000000\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":19,"
             "\"tcbLevels\":[%s]}", head, levels);
    return g_buf;
}

static char g_levels[8192];

static const char *standard_levels(const char *last_status)
{
    size_t n = level3(g_levels, sizeof g_levels, 15, 13, "UpToDate");
    g_levels[n++] = ',';
    n += level3(g_levels + n, sizeof g_levels - n, 14, 13, "SWHardeningNeeded");
    g_levels[n++] = ',';
    level3(g_levels + n, sizeof g_levels - n, 10, 10, last_status);
    return g_levels;
}

static kms_pck_tcb pck(int svn, int pcesvn)
{
    kms_pck_tcb p = {.fmspc = {0x53, 0x49, 0x4d, 0, 0, 0}, .pce_id = {0, 0}, .pcesvn = (uint16_t)pcesvn};
    memset(p.components, svn, 16);
    return p;
}

static kms_err_t tcb(const char *body, kms_pck_tcb p, int64_t now, uint32_t *status)
{
    return kms_tcb_info_status((const uint8_t *)body, strlen(body), &p, now, status);
}

/* body with the first `from` replaced by `to` (in a copy). */
static const char *replaced(const char *body, const char *from, const char *to)
{
    static char out[32768];
    const char *at = strstr(body, from);
    REQUIRE(at != NULL && strlen(body) - strlen(from) + strlen(to) < sizeof out);
    size_t head = (size_t)(at - body);
    memcpy(out, body, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static void test_tcb_info(void)
{
    uint32_t s = 0;
    char good[32768];
    strcpy(good, tcb_info("\"id\":\"SGX\",\"version\":3,", standard_levels("OutOfDate")));
    CHECK_EQ(tcb(good, pck(15, 13), NOW, &s), KMS_OK);
    CHECK_EQ(s, UP);
    CHECK_EQ(tcb(good, pck(14, 13), NOW, &s), KMS_OK);
    CHECK_EQ(s, TcbStatusFlag_TCB_SW_HARDENING_NEEDED);
    CHECK_EQ(tcb(good, pck(15, 12), NOW, &s), KMS_OK); /* PCESVN below the first two levels' */
    CHECK_EQ(s, OOD);
    CHECK_EQ(tcb(good, pck(9, 13), NOW, &s), KMS_ERR_PEER_MISMATCH); /* below every level */
    CHECK_EQ(s, 0);
    kms_pck_tcb mixed = pck(15, 13);
    mixed.components[7] = 13; /* one component below the first two levels: the third, which all reach */
    CHECK_EQ(tcb(good, mixed, NOW, &s), KMS_OK);
    CHECK_EQ(s, OOD);
    mixed.components[7] = 14;
    CHECK_EQ(tcb(good, mixed, NOW, &s), KMS_OK);
    CHECK_EQ(s, TcbStatusFlag_TCB_SW_HARDENING_NEEDED);
    /* the validity window, against the caller's time */
    CHECK_EQ(tcb(good, pck(15, 13), 1748649600 + 1, &s), KMS_ERR_PEER_MISMATCH); /* after nextUpdate */
    CHECK_EQ(tcb(good, pck(15, 13), 1746057600 - 1, &s), KMS_ERR_PEER_MISMATCH); /* before issueDate */
    CHECK_EQ(tcb(good, pck(15, 13), 1748649600, &s), KMS_OK);
    /* another platform, another PCE */
    kms_pck_tcb other = pck(15, 13);
    other.fmspc[5] = 1;
    CHECK_EQ(tcb(good, other, NOW, &s), KMS_ERR_PEER_MISMATCH);
    other = pck(15, 13);
    other.pce_id[1] = 1;
    CHECK_EQ(tcb(good, other, NOW, &s), KMS_ERR_PEER_MISMATCH);
    /* one thing wrong at a time */
    static const char *const k_bad[][2] = {
        {"\"version\":3", "\"version\":4"},          {"\"version\":3", "\"version\":\"3\""},
        {"\"id\":\"SGX\"", "\"id\":\"TDX\""},        {"\"id\":\"SGX\",", ""},
        {"\"tcbType\":0", "\"tcbType\":1"},          {"\"tcbType\":0", "\"tcbType\":false"},
        {"{\"svn\":15}", "{\"svn\":256}"},           {"{\"svn\":15}", "{\"svn\":-1}"},
        {"{\"svn\":15}", "{\"svn\":true}"},          {"{\"svn\":15}", "{\"svn\":15.0}"},
        {"{\"svn\":15},", ""},                       {"\"pcesvn\":13", "\"pcesvn\":65536"},
        {"\"fmspc\":\"53494D000000\"", "\"fmspc\":\"53494D0000\""},
        {"\"fmspc\":\"53494D000000\"", "\"fmspc\":\"53494D00000G\""},
        {"\"issueDate\":\"2025-05-01T00:00:00Z\"", "\"issueDate\":\"2025-05-01T00:00:00+00:00\""},
        {"\"tcbDate\":\"2025-05-14T00:00:00Z\"", "\"tcbDate\":\"yesterday\""},
        {"\"tcbStatus\":\"UpToDate\"", "\"tcbStatus\":\"Fine\""},  /* unknown, on the level that matches */
        {"\"tcbStatus\":\"UpToDate\"", "\"tcbStatus\":1"},
        {"[\"INTEL-SA-00615\"]", "[7]"},            {"[\"INTEL-SA-00615\"]", "\"INTEL-SA-00615\""},
        {"\"tcbEvaluationDataNumber\":19", "\"tcbEvaluationDataNumber\":-19"},
        {"\"id\":\"SGX\",", "\"id\":\"SGX\",\"id\":\"SGX\","}, /* a duplicate key */
        {"\"tcbLevels\":[", "\"tcbLevels\":[1,"},    /* a level that is no object */
    };
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        kms_err_t err = tcb(replaced(good, k_bad[i][0], k_bad[i][1]), pck(15, 13), NOW, &s);
        if (err != KMS_ERR_PEER_MISMATCH) fprintf(stderr, "accepted: %s -> %s\n", k_bad[i][0], k_bad[i][1]);
        CHECK_EQ(err, KMS_ERR_PEER_MISMATCH);
    }
    /* an unknown status on a level that does not match is only carried; a malformed one after the match is not */
    CHECK_EQ(tcb(tcb_info("\"id\":\"SGX\",\"version\":3,", standard_levels("Unheard")), pck(15, 13), NOW, &s), KMS_OK);
    CHECK_EQ(tcb(replaced(good, "{\"svn\":10}", "{\"svn\":\"10\"}"), pck(15, 13), NOW, &s), KMS_ERR_PEER_MISMATCH);
    CHECK_EQ(tcb(tcb_info("\"id\":\"SGX\",\"version\":3,", ""), pck(15, 13), NOW, &s), KMS_ERR_PEER_MISMATCH);
    /* every truncation of a good body, and no JSON at all */
    size_t len = strlen(good);
    kms_pck_tcb p = pck(15, 13);
    int refused = 0;
    for (size_t n = 0; n < len; n++) refused += kms_tcb_info_status((const uint8_t *)good, n, &p, NOW, &s) != KMS_OK;
    CHECK_EQ(refused, (long long)len);
    CHECK_EQ(tcb("[1,2]", p, NOW, &s), KMS_ERR_PEER_MISMATCH);
    CHECK_EQ(tcb("\"SGX\"", p, NOW, &s), KMS_ERR_PEER_MISMATCH);
    CHECK_EQ(kms_tcb_info_status(NULL, 0, &p, NOW, &s), KMS_ERR_PEER_MISMATCH);
    static uint8_t big[KMS_TCB_BODY_MAX + 1];
    memcpy(big, good, len);
    memset(big + len, ' ', sizeof big - len);
    CHECK_EQ(kms_tcb_info_status(big, sizeof big, &p, NOW, &s), KMS_ERR_PEER_MISMATCH); /* too long, even if valid */
    CHECK_EQ(kms_tcb_info_status(big, sizeof big - 1, &p, NOW, &s), KMS_OK);
    uint8_t nul[4096];
    memcpy(nul, good, len);
    nul[len] = '\0';
    CHECK_EQ(kms_tcb_info_status(nul, len + 1, &p, NOW, &s), KMS_ERR_PEER_MISMATCH); /* bytes after the object */
}

static void test_tcb_info_v2(void)
{
    char levels[4096];
    size_t n = (size_t)snprintf(levels, sizeof levels, "{\"tcb\":{");
    for (int i = 1; i <= 16; i++) n += (size_t)snprintf(levels + n, sizeof levels - n, "\"sgxtcbcomp%02dsvn\":15,", i);
    snprintf(levels + n, sizeof levels - n, "\"pcesvn\":13},\"tcbDate\":\"2025-05-14T00:00:00Z\",\"tcbStatus\":\"OutOfDate\"}");
    uint32_t s = 0;
    CHECK_EQ(tcb(tcb_info("\"version\":2,", levels), pck(15, 13), NOW, &s), KMS_OK);
    CHECK_EQ(s, OOD);
    CHECK_EQ(tcb(replaced(tcb_info("\"version\":2,", levels), "\"sgxtcbcomp16svn\":15,", ""), pck(15, 13), NOW, &s),
             KMS_ERR_PEER_MISMATCH);
}

static const char k_qe_good[] =
    "{\"id\":\"QE\",\"version\":2,\"issueDate\":\"2025-05-01T00:00:00Z\",\"nextUpdate\":\"2025-05-31T00:00:00Z\","
    "\"tcbEvaluationDataNumber\":19,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\","
    "\"attributes\":\"11000000000000000000000000000000\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\","
    "\"mrsigner\":\"5674748" "2B1F4A223B824CD591592CCB4EED9C6EDD47220E580CCCD4A6C629D34\",\"isvprodid\":1,"
    "\"tcbLevels\":[{\"tcb\":{\"isvsvn\":8},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"UpToDate\"},"
    "{\"tcb\":{\"isvsvn\":6},\"tcbDate\":\"2021-11-10T00:00:00Z\",\"tcbStatus\":\"OutOfDate\"},"
    "{\"tcb\":{\"isvsvn\":2},\"tcbDate\":\"2019-05-15T00:00:00Z\",\"tcbStatus\":\"Revoked\"}]}";

/* A QE report body as the simulated QE makes it, with ISVSVN svn. */
static void qe_report(uint8_t r[384], int svn)
{
    static const uint8_t k_mrsigner[32] = {0x56, 0x74, 0x74, 0x82, 0xb1, 0xf4, 0xa2, 0x23, 0xb8, 0x24, 0xcd,
                                           0x59, 0x15, 0x92, 0xcc, 0xb4, 0xee, 0xd9, 0xc6, 0xed, 0xd4, 0x72,
                                           0x20, 0xe5, 0x80, 0xcc, 0xcd, 0x4a, 0x6c, 0x62, 0x9d, 0x34};
    memset(r, 0, 384);
    r[48] = 0x11, r[56] = 0xe7; /* FLAGS INIT|PROVISIONKEY, XFRM (masked out) */
    memcpy(r + 128, k_mrsigner, 32);
    r[256] = 1, r[258] = (uint8_t)svn;
}

static kms_err_t qe(const char *body, const uint8_t r[384], uint32_t *s)
{
    return kms_qe_identity_status((const uint8_t *)body, strlen(body), r, NOW, s);
}

static void test_qe_identity(void)
{
    uint8_t r[384];
    uint32_t s = 0;
    static const int k_svn[][2] = {{9, UP}, {8, UP}, {7, OOD}, {6, OOD}, {3, KMS_TCB_REVOKED}, {2, KMS_TCB_REVOKED}};
    for (size_t i = 0; i < sizeof k_svn / sizeof k_svn[0]; i++) {
        qe_report(r, k_svn[i][0]);
        CHECK_EQ(qe(k_qe_good, r, &s), KMS_OK);
        CHECK_EQ(s, (uint32_t)k_svn[i][1]);
    }
    qe_report(r, 1);
    CHECK_EQ(qe(k_qe_good, r, &s), KMS_ERR_PEER_MISMATCH); /* below every level */
    qe_report(r, 8);
    r[48] |= 0x02; /* DEBUG: inside the attributes mask */
    CHECK_EQ(qe(k_qe_good, r, &s), KMS_ERR_PEER_MISMATCH);
    qe_report(r, 8);
    r[48] |= 0x04; /* the one FLAGS bit the mask leaves out */
    CHECK_EQ(qe(k_qe_good, r, &s), KMS_OK);
    qe_report(r, 8);
    r[16] = 1; /* MISCSELECT */
    CHECK_EQ(qe(k_qe_good, r, &s), KMS_ERR_PEER_MISMATCH);
    qe_report(r, 8);
    r[159] ^= 1; /* MRSIGNER */
    CHECK_EQ(qe(k_qe_good, r, &s), KMS_ERR_PEER_MISMATCH);
    qe_report(r, 8);
    r[256] = 2; /* ISVPRODID */
    CHECK_EQ(qe(k_qe_good, r, &s), KMS_ERR_PEER_MISMATCH);
    qe_report(r, 8);
    static const char *const k_bad[][2] = {
        {"\"id\":\"QE\"", "\"id\":\"QVE\""},     {"\"version\":2", "\"version\":3"},
        {"\"isvprodid\":1", "\"isvprodid\":65536"}, {"\"isvsvn\":8", "\"isvsvn\":\"8\""},
        {"\"miscselectMask\":\"FFFFFFFF\"", "\"miscselectMask\":\"FFFFFF\""},
        {"\"nextUpdate\":\"2025-05-31T00:00:00Z\"", "\"nextUpdate\":\"2025-05-13T23:59:59Z\""},
        {"\"tcbStatus\":\"Revoked\"", "\"tcbStatus\":null"}, {"\"tcbLevels\":[", "\"tcbLevels\":[],\"x\":["},
    };
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        kms_err_t err = qe(replaced(k_qe_good, k_bad[i][0], k_bad[i][1]), r, &s);
        if (err != KMS_ERR_PEER_MISMATCH) fprintf(stderr, "accepted: %s -> %s\n", k_bad[i][0], k_bad[i][1]);
        CHECK_EQ(err, KMS_ERR_PEER_MISMATCH);
    }
    int refused = 0;
    for (size_t n = 0; n < sizeof k_qe_good - 1; n++)
        refused += kms_qe_identity_status((const uint8_t *)k_qe_good, n, r, NOW, &s) != KMS_OK;
    CHECK_EQ(refused, (long long)(sizeof k_qe_good - 1));
}

static void test_dates_and_convergence(void)
{
    CHECK_EQ(kms_tcb_parse_date("2025-05-14T00:00:00Z"), 1747180800);
    CHECK_EQ(kms_tcb_parse_date("2024-02-29T23:59:59Z"), 1709251199);
    CHECK_EQ(kms_tcb_parse_date("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ(kms_tcb_parse_date("2100-03-01T00:00:00Z"), 4107542400LL);
    static const char *const k_bad[] = {"2025-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2025-13-01T00:00:00Z",
                                        "2025-00-01T00:00:00Z", "2025-04-31T00:00:00Z", "2025-05-14T24:00:00Z",
                                        "2025-05-14T00:60:00Z", "2025-05-14T00:00:60Z", "2025-05-14 00:00:00Z",
                                        "2025-05-14T00:00:00", "2025-05-14T00:00:00.000Z", "2025-05-14T00:00:00+00:00",
                                        "+025-05-14T00:00:00Z", "", "2025-05-14T00:00:00Zx"};
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) CHECK_EQ(kms_tcb_parse_date(k_bad[i]), -1);
    CHECK_EQ(kms_tcb_parse_date(NULL), -1);
    /* QVL's convergeTcbStatusWithQeTcbStatus */
    const uint32_t sw = TcbStatusFlag_TCB_SW_HARDENING_NEEDED, cfg = TcbStatusFlag_TCB_CONFIGURATION_NEEDED,
                   cfgsw = TcbStatusFlag_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
                   oodcfg = TcbStatusFlag_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
    CHECK_EQ(kms_tcb_converge(UP, UP), UP);
    CHECK_EQ(kms_tcb_converge(sw, UP), sw);
    CHECK_EQ(kms_tcb_converge(UP, OOD), OOD);
    CHECK_EQ(kms_tcb_converge(sw, OOD), OOD);
    CHECK_EQ(kms_tcb_converge(cfg, OOD), oodcfg);
    CHECK_EQ(kms_tcb_converge(cfgsw, OOD), oodcfg);
    CHECK_EQ(kms_tcb_converge(oodcfg, OOD), oodcfg);
    CHECK_EQ(kms_tcb_converge(KMS_TCB_REVOKED, UP), KMS_TCB_REVOKED);
    CHECK_EQ(kms_tcb_converge(UP, KMS_TCB_REVOKED), KMS_TCB_REVOKED);
}

/* ---- the SGX extension: DER built by hand (TLVs under 128 bytes use the short length form) ---- */

static uint8_t g_der[1024];

static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *content, size_t len)
{
    size_t n = 0;
    out[n++] = tag;
    if (len >= 128) out[n++] = (uint8_t)(0x80 | (len >> 8 ? 2 : 1));
    if (len >= 256) out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
    memmove(out + n, content, len);
    return n + len;
}

/* SEQUENCE { OID 1.2.840.113741.1.13.1 . sub, value } */
static size_t entry(uint8_t *out, const uint8_t *sub, size_t sub_len, uint8_t tag, const uint8_t *v, size_t v_len)
{
    static const uint8_t k_base[] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
    uint8_t oid[16], body[512];
    memcpy(oid, k_base, sizeof k_base);
    memcpy(oid + sizeof k_base, sub, sub_len);
    size_t n = tlv(body, 0x06, oid, sizeof k_base + sub_len);
    n += tlv(body + n, tag, v, v_len);
    return tlv(out, 0x30, body, n);
}

/* The extension's DER; skip: which TCB entry (1..17) to leave out (0: none); svn: its components' value. */
static size_t sgx_ext(int skip, int svn, int repeat_fmspc)
{
    uint8_t tcb[1024], all[1024], sub[2], v[2];
    size_t t = 0, n = 0;
    for (int i = 1; i <= 17; i++) {
        if (i == skip) continue;
        sub[0] = 2, sub[1] = (uint8_t)i;
        size_t vlen = 0;
        if (i == 17) v[0] = 13, vlen = 1;
        else if (svn > 127) v[0] = 0, v[1] = (uint8_t)svn, vlen = 2;
        else v[0] = (uint8_t)svn, vlen = 1;
        t += entry(tcb + t, sub, 2, 0x02, v, vlen);
    }
    uint8_t seq[1024];
    size_t seq_len = tlv(seq, 0x30, tcb, t);
    static const uint8_t k_fmspc[6] = {0x53, 0x49, 0x4d, 0, 0, 0}, k_pce[2] = {0, 0};
    n += entry(all + n, (const uint8_t *)"\x04", 1, 0x04, k_fmspc, 6);
    if (repeat_fmspc) n += entry(all + n, (const uint8_t *)"\x04", 1, 0x04, k_fmspc, 6);
    n += entry(all + n, (const uint8_t *)"\x03", 1, 0x04, k_pce, 2);
    /* the TCB entry: OID .2 with the SEQUENCE as its value */
    uint8_t body[1200], oid[10] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01, 0x02};
    size_t b = tlv(body, 0x06, oid, sizeof oid);
    memcpy(body + b, seq, seq_len), b += seq_len;
    n += tlv(all + n, 0x30, body, b);
    return tlv(g_der, 0x30, all, n);
}

/* kms_pck_tcb_of on a certificate carrying der (len bytes) in `copies` SGX extensions. */
static kms_err_t pck_of(const uint8_t *der, size_t len, int copies, kms_pck_tcb *out)
{
    X509 *cert = X509_new();
    ASN1_OBJECT *oid = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
    ASN1_OCTET_STRING *data = ASN1_OCTET_STRING_new();
    REQUIRE(cert != NULL && oid != NULL && data != NULL && ASN1_OCTET_STRING_set(data, der, (int)len) == 1);
    for (int i = 0; i < copies; i++) {
        X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, data);
        REQUIRE(ext != NULL && X509_add_ext(cert, ext, -1) == 1);
        X509_EXTENSION_free(ext);
    }
    kms_err_t err = kms_pck_tcb_of(cert, out);
    ASN1_OCTET_STRING_free(data);
    ASN1_OBJECT_free(oid);
    X509_free(cert);
    return err;
}

static void test_sgx_extension(void)
{
    kms_pck_tcb p;
    size_t len = sgx_ext(0, 15, 0);
    CHECK_EQ(pck_of(g_der, len, 1, &p), KMS_OK);
    CHECK(p.fmspc[0] == 0x53 && p.fmspc[2] == 0x4d && p.components[0] == 15 && p.components[15] == 15 && p.pcesvn == 13);
    CHECK_EQ(pck_of(g_der, len, 0, &p), KMS_ERR_PEER_MISMATCH);   /* none */
    CHECK_EQ(pck_of(g_der, len, 2, &p), KMS_ERR_PEER_MISMATCH);   /* two */
    int refused = 0;
    for (size_t n = 0; n < len; n++) refused += pck_of(g_der, n, 1, &p) != KMS_OK; /* every truncation */
    CHECK_EQ(refused, (long long)len);
    uint8_t longer[1100];
    memcpy(longer, g_der, len);
    longer[len] = 0;
    CHECK_EQ(pck_of(longer, len + 1, 1, &p), KMS_ERR_PEER_MISMATCH); /* a byte after it */
    len = sgx_ext(7, 15, 0);
    CHECK_EQ(pck_of(g_der, len, 1, &p), KMS_ERR_PEER_MISMATCH);   /* a component missing */
    len = sgx_ext(17, 15, 0);
    CHECK_EQ(pck_of(g_der, len, 1, &p), KMS_ERR_PEER_MISMATCH);   /* PCESVN missing */
    len = sgx_ext(0, 200, 0);
    CHECK_EQ(pck_of(g_der, len, 1, &p), KMS_OK);
    CHECK_EQ(p.components[3], 200);
    len = sgx_ext(0, 15, 1);
    CHECK_EQ(pck_of(g_der, len, 1, &p), KMS_ERR_PEER_MISMATCH);   /* FMSPC twice */
    len = sgx_ext(0, 15, 0);
    uint8_t *fmspc_tag = memmem(g_der, len, "\x04\x06SIM", 5);    /* the FMSPC's OCTET STRING as an INTEGER */
    REQUIRE(fmspc_tag != NULL);
    *fmspc_tag = 0x02;
    CHECK_EQ(pck_of(g_der, len, 1, &p), KMS_ERR_PEER_MISMATCH);
}

int main(void)
{
    test_tcb_info();
    test_tcb_info_v2();
    test_qe_identity();
    test_dates_and_convergence();
    test_sgx_extension();
    return test_summary();
}
