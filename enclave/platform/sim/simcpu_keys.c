/*
 * simcpu_keys.c - the simulated CPU's cryptographic instructions: SIGSTRUCT check at EINIT,
 * EGETKEY and EREPORT. Untrusted code playing the hardware; all derivations are
 * AES-128-CMAC under the platform's fuse key over a documented layout (docs/simulation.md),
 * so the simulated quoting enclave can recompute report keys.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "simcpu_internal.h"

/* SIGSTRUCT layout (Intel SDM 38.13; Linux struct sgx_sigstruct). */
enum {
    SS_HEADER = 0, SS_VENDOR = 16, SS_HEADER2 = 24, SS_MODULUS = 128, SS_EXPONENT = 512,
    SS_SIGNATURE = 516, SS_BODY = 900, SS_MISCSELECT = 900, SS_ATTRIBUTES = 928,
    SS_XFRM = 936, SS_ENCLAVEHASH = 960, SS_ISVPRODID = 1024, SS_ISVSVN = 1026, SS_Q1 = 1040, SS_Q2 = 1424,
};
static const uint8_t k_header1[16] = {6, 0, 0, 0, 0xE1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
static const uint8_t k_header2[16] = {1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0};

/* KEYREQUEST offsets (sgx_key_request_t) and key names. */
enum { KR_NAME = 0, KR_POLICY = 2, KR_ISVSVN = 4, KR_RESERVED1 = 6, KR_CPUSVN = 8,
       KR_ATTRMASK = 24, KR_KEYID = 40, KR_MISCMASK = 72, KR_CONFIGSVN = 76, KR_RESERVED2 = 78 };
enum { KEYNAME_REPORT = 3, KEYNAME_SEAL = 4 };
enum { POLICY_MRENCLAVE = 0x1, POLICY_MRSIGNER = 0x2, POLICY_NOISVPRODID = 0x4 };

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void reverse(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = src[n - 1 - i];
}

/* RSA-3072, e = 3, PKCS#1 v1.5 SHA-256 over header || body; numbers little-endian. */
static int rsa_verify(const uint8_t ss[1808])
{
    uint8_t n_be[384], sig_be[384], msg[256];
    reverse(n_be, ss + SS_MODULUS, 384);
    reverse(sig_be, ss + SS_SIGNATURE, 384);
    memcpy(msg, ss + SS_HEADER, 128);
    memcpy(msg + 128, ss + SS_BODY, 128);
    int ok = 0;
    BIGNUM *n = BN_bin2bn(n_be, sizeof n_be, NULL), *e = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (n == NULL || e == NULL || bld == NULL || kctx == NULL || md == NULL ||
        BN_num_bits(n) != 3072 || BN_set_word(e, 3) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(kctx) != 1 ||
        EVP_PKEY_fromdata(kctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto done;
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
         EVP_DigestVerify(md, sig_be, sizeof sig_be, msg, sizeof msg) == 1;
done:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(kctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return ok;
}

/* Q1 = floor(s^2 / n), Q2 = floor((s^3 - Q1 * s * n) / n), as EINIT requires (little-endian). */
static int q1q2_ok(const uint8_t ss[1808])
{
    uint8_t buf[384];
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *n = BN_new(), *s = BN_new(), *q1 = BN_new(), *q2 = BN_new(), *t = BN_new(), *u = BN_new();
    int ok = 0;
    if (ctx == NULL || n == NULL || s == NULL || q1 == NULL || q2 == NULL || t == NULL || u == NULL) goto done;
    reverse(buf, ss + SS_MODULUS, 384);
    BN_bin2bn(buf, 384, n);
    reverse(buf, ss + SS_SIGNATURE, 384);
    BN_bin2bn(buf, 384, s);
    if (BN_sqr(t, s, ctx) != 1 || BN_div(q1, NULL, t, n, ctx) != 1) goto done; /* q1 */
    if (BN_mul(t, t, s, ctx) != 1 || BN_mul(u, q1, s, ctx) != 1 || BN_mul(u, u, n, ctx) != 1 ||
        BN_sub(t, t, u) != 1 || BN_div(q2, NULL, t, n, ctx) != 1)
        goto done;
    reverse(buf, ss + SS_Q1, 384);
    BN_bin2bn(buf, 384, t);
    reverse(buf, ss + SS_Q2, 384);
    BN_bin2bn(buf, 384, u);
    ok = BN_cmp(t, q1) == 0 && BN_cmp(u, q2) == 0;
done:
    BN_free(n), BN_free(s), BN_free(q1), BN_free(q2), BN_free(t), BN_free(u);
    BN_CTX_free(ctx);
    return ok;
}

kms_sgx_status_t simcpu_verify_sigstruct(const uint8_t ss[1808], const uint8_t mrenclave[32],
                                         struct sim_identity *out, const char **why)
{
    if (memcmp(ss + SS_HEADER, k_header1, 16) != 0 || memcmp(ss + SS_HEADER2, k_header2, 16) != 0) {
        *why = "SIGSTRUCT header constants are wrong";
        return SGX_ERROR_INVALID_SIGNATURE;
    }
    if (le32(ss + SS_EXPONENT) != 3) {
        *why = "SIGSTRUCT exponent must be 3";
        return SGX_ERROR_INVALID_SIGNATURE;
    }
    if (!rsa_verify(ss)) {
        *why = "SIGSTRUCT signature does not verify";
        return SGX_ERROR_INVALID_SIGNATURE;
    }
    if (!q1q2_ok(ss)) {
        *why = "SIGSTRUCT Q1/Q2 do not match the signature";
        return SGX_ERROR_INVALID_SIGNATURE;
    }
    if (CRYPTO_memcmp(ss + SS_ENCLAVEHASH, mrenclave, 32) != 0) {
        *why = "image does not match SIGSTRUCT ENCLAVEHASH (MRENCLAVE)";
        return SGX_ERROR_INVALID_ENCLAVE;
    }
    uint64_t attributes = le64(ss + SS_ATTRIBUTES);
    if ((attributes & SIM_ATTR_MODE64BIT) == 0 || (attributes & (SIM_ATTR_INIT | SIM_ATTR_KSS)) != 0) {
        *why = "SIGSTRUCT attributes must set MODE64BIT and clear INIT and KSS";
        return SGX_ERROR_INVALID_ATTRIBUTE;
    }
    memcpy(out->mrenclave, mrenclave, 32);
    if (EVP_Digest(ss + SS_MODULUS, 384, out->mrsigner, NULL, EVP_sha256(), NULL) != 1)
        return SGX_ERROR_UNEXPECTED;
    out->attributes = attributes | SIM_ATTR_INIT;
    out->xfrm = le64(ss + SS_XFRM);
    out->miscselect = le32(ss + SS_MISCSELECT);
    out->isvprodid = le16(ss + SS_ISVPRODID);
    out->isvsvn = le16(ss + SS_ISVSVN);
    return SGX_SUCCESS;
}

int simcpu_cmac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    char cipher[] = "AES-128-CBC";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    int rc = ctx != NULL && EVP_MAC_init(ctx, key, 16, params) == 1 &&
                     EVP_MAC_update(ctx, data, len) == 1 && EVP_MAC_final(ctx, out, &outl, 16) == 1 &&
                     outl == 16
                 ? 0
                 : -1;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

/*
 * Key derivation data (our layout, documented in docs/simulation.md; the fields are those
 * of the SDM's EGETKEY): name u16 | policy u16 | isvsvn u16 | cpusvn[16] | attributes
 * masked (flags u64, xfrm u64) | attribute mask[16] | miscselect masked u32 | miscmask u32 |
 * mrenclave[32] or 0 | mrsigner[32] or 0 | isvprodid u16 or 0 | owner_epoch[16] | keyid[32].
 */
enum { DD_SIZE = 2 + 2 + 2 + 16 + 16 + 16 + 4 + 4 + 32 + 32 + 2 + 16 + 32 };

static kms_sgx_status_t derive_seal(const struct sim_enclave *e, const uint8_t *kr, uint8_t key[16])
{
    uint16_t policy = le16(kr + KR_POLICY);
    uint8_t dd[DD_SIZE] = {0};
    uint8_t *p = dd;
    uint64_t flag_mask = le64(kr + KR_ATTRMASK) | SIM_ATTR_INIT | SIM_ATTR_DEBUG;
    uint32_t misc_mask = le32(kr + KR_MISCMASK);
    put_le16(p, KEYNAME_SEAL); p += 2;
    put_le16(p, policy); p += 2;
    memcpy(p, kr + KR_ISVSVN, 2); p += 2;
    memcpy(p, kr + KR_CPUSVN, 16); p += 16;
    put_le64(p, e->id.attributes & flag_mask); p += 8;
    put_le64(p, e->id.xfrm & le64(kr + KR_ATTRMASK + 8)); p += 8;
    memcpy(p, kr + KR_ATTRMASK, 16); p += 16; /* the requested mask itself, as the SDM says */
    put_le32(p, e->id.miscselect & misc_mask); p += 4;
    put_le32(p, ~misc_mask); p += 4;
    if (policy & POLICY_MRENCLAVE) memcpy(p, e->id.mrenclave, 32);
    p += 32;
    if (policy & POLICY_MRSIGNER) memcpy(p, e->id.mrsigner, 32);
    p += 32;
    if (!(policy & POLICY_NOISVPRODID)) put_le16(p, e->id.isvprodid);
    p += 2;
    memcpy(p, e->platform.owner_epoch, 16); p += 16;
    memcpy(p, kr + KR_KEYID, 32);
    int rc = simcpu_cmac(e->platform.fuse_key, dd, sizeof dd, key);
    OPENSSL_cleanse(dd, sizeof dd);
    return rc == 0 ? SGX_SUCCESS : SGX_ERROR_UNEXPECTED;
}

/* REPORT key of a target: name | target attributes | target miscselect | target mrenclave |
 * owner epoch | platform cpusvn | keyid, in the same DD layout with the other fields zero. */
static kms_sgx_status_t derive_report(const struct sim_platform *pf, const uint8_t *tgt_mrenclave,
                                      uint64_t tgt_flags, uint64_t tgt_xfrm, uint32_t tgt_misc,
                                      const uint8_t keyid[32], uint8_t key[16])
{
    uint8_t dd[DD_SIZE] = {0};
    put_le16(dd, KEYNAME_REPORT);
    memcpy(dd + 6, pf->cpusvn, 16);
    put_le64(dd + 22, tgt_flags);
    put_le64(dd + 30, tgt_xfrm);
    put_le32(dd + 54, tgt_misc);
    memcpy(dd + 62, tgt_mrenclave, 32);
    memcpy(dd + 128, pf->owner_epoch, 16);
    memcpy(dd + 144, keyid, 32);
    int rc = simcpu_cmac(pf->fuse_key, dd, sizeof dd, key);
    OPENSSL_cleanse(dd, sizeof dd);
    return rc == 0 ? SGX_SUCCESS : SGX_ERROR_UNEXPECTED;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

kms_sgx_status_t simcpu_egetkey(const uint8_t kr[512], uint8_t key[16])
{
    const struct sim_enclave *e = simcpu_current();
    if (e == NULL) return SGX_ERROR_INVALID_STATE;
    uint16_t name = le16(kr + KR_NAME), policy = le16(kr + KR_POLICY);
    if (!all_zero(kr + KR_RESERVED1, 2) || !all_zero(kr + KR_RESERVED2, 512 - KR_RESERVED2) ||
        le16(kr + KR_CONFIGSVN) != 0 || (policy & ~0x7u) != 0)
        return SGX_ERROR_INVALID_PARAMETER;
    if (name == KEYNAME_REPORT) {
        /* The REPORT key for reports targeted at this enclave, as a QE uses it. */
        return derive_report(&e->platform, e->id.mrenclave, e->id.attributes, e->id.xfrm,
                             e->id.miscselect, kr + KR_KEYID, key);
    }
    if (name != KEYNAME_SEAL) return SGX_ERROR_INVALID_KEYNAME;
    if ((policy & (POLICY_MRENCLAVE | POLICY_MRSIGNER)) == 0) return SGX_ERROR_INVALID_PARAMETER;
    if (le16(kr + KR_ISVSVN) > e->id.isvsvn) return SGX_ERROR_INVALID_ISVSVN;
    for (int i = 0; i < 16; i++)
        if (kr[KR_CPUSVN + i] > e->platform.cpusvn[i]) return SGX_ERROR_INVALID_CPUSVN;
    return derive_seal(e, kr, key);
}

/* sgx_report_body_t offsets; REPORT = body(384) | keyid(32) | mac(16). */
enum { RB_CPUSVN = 0, RB_MISCSELECT = 16, RB_ATTRIBUTES = 48, RB_MRENCLAVE = 64, RB_MRSIGNER = 128,
       RB_ISVPRODID = 256, RB_ISVSVN = 258, RB_REPORTDATA = 320, R_KEYID = 384, R_MAC = 416 };
/* sgx_target_info_t offsets. */
enum { TI_MRENCLAVE = 0, TI_ATTRIBUTES = 32, TI_MISCSELECT = 52 };

kms_sgx_status_t simcpu_ereport(const uint8_t *ti, const uint8_t report_data[64], uint8_t report[432])
{
    const struct sim_enclave *e = simcpu_current();
    if (e == NULL) return SGX_ERROR_INVALID_STATE;
    memset(report, 0, 432);
    memcpy(report + RB_CPUSVN, e->platform.cpusvn, 16);
    put_le32(report + RB_MISCSELECT, e->id.miscselect);
    put_le64(report + RB_ATTRIBUTES, e->id.attributes);
    put_le64(report + RB_ATTRIBUTES + 8, e->id.xfrm);
    memcpy(report + RB_MRENCLAVE, e->id.mrenclave, 32);
    memcpy(report + RB_MRSIGNER, e->id.mrsigner, 32);
    put_le16(report + RB_ISVPRODID, e->id.isvprodid);
    put_le16(report + RB_ISVSVN, e->id.isvsvn);
    memcpy(report + RB_REPORTDATA, report_data, 64);
    if (RAND_bytes(report + R_KEYID, 32) != 1) return SGX_ERROR_UNEXPECTED;
    uint8_t key[16];
    kms_sgx_status_t rc =
        ti == NULL ? derive_report(&e->platform, e->id.mrenclave, e->id.attributes, e->id.xfrm,
                                   e->id.miscselect, report + R_KEYID, key)
                   : derive_report(&e->platform, ti + TI_MRENCLAVE, le64(ti + TI_ATTRIBUTES),
                                   le64(ti + TI_ATTRIBUTES + 8), le32(ti + TI_MISCSELECT),
                                   report + R_KEYID, key);
    if (rc == SGX_SUCCESS && simcpu_cmac(key, report, 384, report + R_MAC) != 0)
        rc = SGX_ERROR_UNEXPECTED;
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}
