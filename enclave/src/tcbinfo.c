/*
 * tcbinfo.c - TCB Info and QE Identity bodies (Intel's PCS API v3/v4 JSON) parsed with jansson and
 * matched against the PCK certificate and the QE report; the rules are those of tcbinfo.h (the same as
 * the untrusted verifier's, kms/attestation/tcb.py). Every field that is read is typed and ranged; every
 * TCB level is validated, not only the one that matches.
 */
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "tcbinfo.h"

static const struct {
    const char *name;
    uint32_t flag;
} k_statuses[] = {
    {"UpToDate", TcbStatusFlag_TCB_UP_TO_DATE},
    {"SWHardeningNeeded", TcbStatusFlag_TCB_SW_HARDENING_NEEDED},
    {"ConfigurationNeeded", TcbStatusFlag_TCB_CONFIGURATION_NEEDED},
    {"ConfigurationAndSWHardeningNeeded", TcbStatusFlag_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED},
    {"OutOfDate", TcbStatusFlag_TCB_OUT_OF_DATE},
    {"OutOfDateConfigurationNeeded", TcbStatusFlag_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED},
    {"Revoked", KMS_TCB_REVOKED},
};

/* The body as a JSON object (duplicate keys refused), or NULL. jansson's hash seed comes from the
 * enclave's RNG (set once; jansson would otherwise read /dev/urandom itself). */
static json_t *load(const uint8_t *body, size_t len)
{
    size_t seed = 0;
    json_error_t e;
    if (body == NULL || len == 0 || len > KMS_TCB_BODY_MAX) return NULL;
    while ((uint32_t)seed == 0) /* jansson keeps 32 bits, and takes 0 as "read /dev/urandom yourself" */
        if (kms_random((uint8_t *)&seed, sizeof seed) != KMS_OK) return NULL;
    json_object_seed(seed);
    json_t *doc = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &e);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

static int get_uint(const json_t *o, const char *key, json_int_t limit, json_int_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return 0;
    *out = json_integer_value(v);
    return *out >= 0 && *out <= limit;
}

static const char *get_text(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key)); /* NULL unless a string */
}

static int text_is(const json_t *o, const char *key, const char *want)
{
    const char *s = get_text(o, key);
    return s != NULL && strcmp(s, want) == 0;
}

static int nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Exactly 2 * n hex digits. */
static int get_hex(const json_t *o, const char *key, uint8_t *out, size_t n)
{
    const char *s = get_text(o, key);
    if (s == NULL || strlen(s) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

int64_t kms_tcb_parse_date(const char *t)
{
    static const char k_form[] = "dddd-dd-ddTdd:dd:ddZ";
    int64_t f[6] = {0};
    static const int k_at[6] = {0, 5, 8, 11, 14, 17}, k_len[6] = {4, 2, 2, 2, 2, 2};
    if (t == NULL || strlen(t) != sizeof k_form - 1) return -1;
    for (size_t i = 0; i < sizeof k_form - 1; i++)
        if (k_form[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != k_form[i]) return -1;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < k_len[i]; j++) f[i] = f[i] * 10 + (t[k_at[i] + j] - '0');
    static const int k_mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (f[0] % 4 == 0 && f[0] % 100 != 0) || f[0] % 400 == 0;
    if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > k_mdays[f[1] - 1] || (f[1] == 2 && f[2] == 29 && !leap) ||
        f[3] > 23 || f[4] > 59 || f[5] > 59)
        return -1;
    return days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 + f[5];
}

/* issueDate <= now <= nextUpdate (and both well-formed). */
static int current(const json_t *doc, int64_t now)
{
    int64_t issued = kms_tcb_parse_date(get_text(doc, "issueDate"));
    int64_t next = kms_tcb_parse_date(get_text(doc, "nextUpdate"));
    return issued >= 0 && next >= 0 && issued <= now && now <= next;
}

/* tcbDate, tcbStatus (known or not: only a matching level's must be) and the optional advisoryIDs. */
static int level_common(const json_t *level, uint32_t *status)
{
    const json_t *ids = json_object_get(level, "advisoryIDs");
    const char *s = get_text(level, "tcbStatus");
    if (kms_tcb_parse_date(get_text(level, "tcbDate")) < 0 || s == NULL) return 0;
    if (ids != NULL && !json_is_array(ids)) return 0;
    for (size_t i = 0; ids != NULL && i < json_array_size(ids); i++)
        if (!json_is_string(json_array_get(ids, i))) return 0;
    *status = 0;
    for (size_t i = 0; i < sizeof k_statuses / sizeof k_statuses[0]; i++)
        if (strcmp(s, k_statuses[i].name) == 0) *status = k_statuses[i].flag;
    return 1;
}

/* The level's 16 components: v3 sgxtcbcomponents[16].svn, v2 sgxtcbcompNNsvn. */
static int components(const json_t *tcb, json_int_t version, uint8_t out[16])
{
    const json_t *list = json_object_get(tcb, "sgxtcbcomponents");
    json_int_t v = 0;
    char key[32];
    if (version == 3 && (!json_is_array(list) || json_array_size(list) != 16)) return 0;
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "sgxtcbcomp%02dsvn", i + 1);
        if (!(version == 3 ? get_uint(json_array_get(list, (size_t)i), "svn", 255, &v) : get_uint(tcb, key, 255, &v)))
            return 0;
        out[i] = (uint8_t)v;
    }
    return 1;
}

/* Every level well-formed; *status: the first one the PCK reaches (0 if none, or an unknown status). */
static int match_platform(const json_t *levels, json_int_t version, const kms_pck_tcb *pck, uint32_t *status)
{
    size_t n = json_array_size(levels);
    int matched = 0;
    if (!json_is_array(levels) || n == 0 || n > KMS_TCB_LEVELS_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *level = json_array_get(levels, i), *tcb = json_object_get(level, "tcb");
        uint8_t comps[16];
        json_int_t pcesvn = 0;
        uint32_t s = 0;
        if (!components(tcb, version, comps) || !get_uint(tcb, "pcesvn", 0xFFFF, &pcesvn) || !level_common(level, &s))
            return 0;
        int reached = pck->pcesvn >= pcesvn;
        for (int c = 0; c < 16; c++) reached = reached && pck->components[c] >= comps[c];
        if (reached && !matched) *status = s, matched = 1;
    }
    return 1;
}

kms_err_t kms_tcb_info_status(const uint8_t *body, size_t len, const kms_pck_tcb *pck, int64_t now, uint32_t *status)
{
    json_t *doc = load(body, len);
    json_int_t version = 0, type = 0, number = 0;
    uint8_t fmspc[6], pce_id[2];
    *status = 0;
    int ok = doc != NULL && get_uint(doc, "version", 3, &version) && (version == 2 || version == 3) &&
             (version == 2 || text_is(doc, "id", "SGX")) && get_uint(doc, "tcbType", 0, &type) &&
             get_uint(doc, "tcbEvaluationDataNumber", UINT32_MAX, &number) && current(doc, now) &&
             get_hex(doc, "fmspc", fmspc, 6) && get_hex(doc, "pceId", pce_id, 2) &&
             memcmp(fmspc, pck->fmspc, 6) == 0 && memcmp(pce_id, pck->pce_id, 2) == 0 &&
             match_platform(json_object_get(doc, "tcbLevels"), version, pck, status);
    json_decref(doc);
    return ok && *status != 0 ? KMS_OK : KMS_ERR_PEER_MISMATCH;
}

/* Every level well-formed; *status: the first whose isvsvn the QE's reaches (0 if none). */
static int match_qe(const json_t *levels, uint16_t isvsvn, uint32_t *status)
{
    size_t n = json_array_size(levels);
    int matched = 0;
    if (!json_is_array(levels) || n == 0 || n > KMS_TCB_LEVELS_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *level = json_array_get(levels, i);
        json_int_t svn = 0;
        uint32_t s = 0;
        if (!get_uint(json_object_get(level, "tcb"), "isvsvn", 0xFFFF, &svn) || !level_common(level, &s)) return 0;
        if (isvsvn >= svn && !matched) *status = s, matched = 1;
    }
    return 1;
}

/* (value & mask) == want, bytewise. */
static int masked_equal(const uint8_t *value, const uint8_t *mask, const uint8_t *want, size_t n)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (uint8_t)((value[i] & mask[i]) ^ want[i]);
    return diff == 0;
}

kms_err_t kms_qe_identity_status(const uint8_t *body, size_t len, const uint8_t qe[384], int64_t now, uint32_t *status)
{
    json_t *doc = load(body, len);
    json_int_t version = 0, number = 0, prodid = 0;
    uint8_t misc[4], misc_mask[4], attr[16], attr_mask[16], mrsigner[32];
    *status = 0;
    int ok = doc != NULL && get_uint(doc, "version", 2, &version) && version == 2 && text_is(doc, "id", "QE") &&
             get_uint(doc, "tcbEvaluationDataNumber", UINT32_MAX, &number) && current(doc, now) &&
             get_hex(doc, "miscselect", misc, 4) && get_hex(doc, "miscselectMask", misc_mask, 4) &&
             get_hex(doc, "attributes", attr, 16) && get_hex(doc, "attributesMask", attr_mask, 16) &&
             get_hex(doc, "mrsigner", mrsigner, 32) && get_uint(doc, "isvprodid", 0xFFFF, &prodid);
    /* QE report body: MISCSELECT at 16, ATTRIBUTES at 48, MRSIGNER at 128, ISVPRODID at 256, ISVSVN at 258. */
    ok = ok && masked_equal(qe + 16, misc_mask, misc, 4) && masked_equal(qe + 48, attr_mask, attr, 16) &&
         memcmp(qe + 128, mrsigner, 32) == 0 && (qe[256] | qe[257] << 8) == prodid &&
         match_qe(json_object_get(doc, "tcbLevels"), (uint16_t)(qe[258] | qe[259] << 8), status);
    json_decref(doc);
    return ok && *status != 0 ? KMS_OK : KMS_ERR_PEER_MISMATCH;
}

uint32_t kms_tcb_converge(uint32_t platform, uint32_t qe)
{
    if (qe == KMS_TCB_REVOKED) return KMS_TCB_REVOKED;
    if (qe != TcbStatusFlag_TCB_OUT_OF_DATE) return platform;
    switch (platform) {
    case TcbStatusFlag_TCB_UP_TO_DATE:
    case TcbStatusFlag_TCB_SW_HARDENING_NEEDED: return TcbStatusFlag_TCB_OUT_OF_DATE;
    case TcbStatusFlag_TCB_CONFIGURATION_NEEDED:
    case TcbStatusFlag_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED: return TcbStatusFlag_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
    default: return platform;
    }
}
