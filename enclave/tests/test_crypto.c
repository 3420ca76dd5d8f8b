/*
 * test_crypto - unit tests of the crypto module (crypto.h), built with ASan + UBSan:
 *   make build/test/test_crypto && build/test/test_crypto
 * Prints "N passed, M failed" last; exits non-zero on any failure. Test code may call
 * OpenSSL directly to build inputs or inspect outputs; the operations under test are kms_*.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "crypto.h"

static int g_pass, g_fail;

#define TEST_ASSERT(cond)                                                          \
    do {                                                                           \
        if (cond) {                                                                \
            g_pass++;                                                              \
        } else {                                                                   \
            g_fail++;                                                              \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                          \
    } while (0)

#define TEST_ERR(expr, want)                                                       \
    do {                                                                           \
        kms_err_t got_ = (expr);                                                   \
        if (got_ == (want)) {                                                      \
            g_pass++;                                                              \
        } else {                                                                   \
            g_fail++;                                                              \
            fprintf(stderr, "%s:%d: FAILED: %s = %d, want %d\n", __FILE__, __LINE__, \
                    #expr, (int)got_, (int)(want));                                \
        }                                                                          \
    } while (0)

#define TEST_OK(expr) TEST_ERR(expr, KMS_OK)

/* Every kms_* call must leave OpenSSL's error queue empty. */
#define TEST_QUEUE_CLEAR() TEST_ASSERT(ERR_peek_error() == 0)

static const kms_sig_alg ALL_ALGS[] = {
    KMS_SIG_ECDSA_SHA256,     KMS_SIG_ECDSA_SHA384,     KMS_SIG_ED25519,
    KMS_SIG_RSA_PSS_SHA256,   KMS_SIG_RSA_PSS_SHA384,   KMS_SIG_RSA_PSS_SHA512,
    KMS_SIG_RSA_PKCS1_SHA256, KMS_SIG_RSA_PKCS1_SHA384, KMS_SIG_RSA_PKCS1_SHA512,
};

/* secp256k1 order / 2, big-endian: the largest low-s value. */
static const uint8_t K1_HALF_ORDER[32] = {
        0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d,
        0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};

static const char *kind_name(kms_pkey_kind kind)
{
    static const char *names[] = {"?",      "P-256",    "P-384",    "secp256k1", "Ed25519",
                                  "X25519", "RSA-2048", "RSA-3072", "RSA-4096"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

static int fits(kms_sig_alg alg, kms_pkey_kind kind)
{
    switch (alg) {
    case KMS_SIG_ECDSA_SHA256: return kind == KMS_PKEY_EC_P256 || kind == KMS_PKEY_EC_SECP256K1;
    case KMS_SIG_ECDSA_SHA384: return kind == KMS_PKEY_EC_P384;
    case KMS_SIG_ED25519: return kind == KMS_PKEY_ED25519;
    default: return kind >= KMS_PKEY_RSA_2048 && kind <= KMS_PKEY_RSA_4096;
    }
}

static const EVP_MD *alg_md(kms_sig_alg alg)
{
    switch (alg) {
    case KMS_SIG_ECDSA_SHA384: case KMS_SIG_RSA_PSS_SHA384: case KMS_SIG_RSA_PKCS1_SHA384:
        return EVP_sha384();
    case KMS_SIG_RSA_PSS_SHA512: case KMS_SIG_RSA_PKCS1_SHA512:
        return EVP_sha512();
    default:
        return EVP_sha256();
    }
}

/* ---- serialisation -------------------------------------------------------------------- */

/* Private and public round trips; returns the public-only key (caller frees). */
static EVP_PKEY *check_serialisation(EVP_PKEY *key, kms_pkey_kind kind, EVP_PKEY **priv2)
{
    static uint8_t der[4096], der2[4096], pem[4096];
    size_t n = 0, n2 = 0, pn = 0, untouched = 12345;
    EVP_PKEY *pub = NULL;
    kms_pkey_kind other = kind == KMS_PKEY_EC_P256 ? KMS_PKEY_EC_P384 : KMS_PKEY_EC_P256;

    TEST_OK(kms_pkey_private_der(key, der, sizeof der, &n));
    TEST_ERR(kms_pkey_private_der(key, der, n - 1, &untouched), KMS_ERR_BUFFER_TOO_SMALL);
    TEST_ASSERT(untouched == 12345);
    TEST_OK(kms_pkey_from_private_der(kind, der, n, priv2));
    TEST_ASSERT(kms_pkey_kind_of(*priv2) == kind);
    TEST_OK(kms_pkey_private_der(*priv2, der2, sizeof der2, &n2));
    TEST_ASSERT(n == n2 && memcmp(der, der2, n) == 0);
    TEST_ERR(kms_pkey_from_private_der(other, der, n, &pub), KMS_ERR_INVALID_KEY);
    der[n] = 0;
    TEST_ERR(kms_pkey_from_private_der(kind, der, n + 1, &pub), KMS_ERR_INVALID_KEY);

    TEST_OK(kms_pkey_public_der(key, der, sizeof der, &n));
    TEST_OK(kms_pkey_public_der(*priv2, der2, sizeof der2, &n2));
    TEST_ASSERT(n == n2 && memcmp(der, der2, n) == 0);
    TEST_OK(kms_pkey_public_pem(key, pem, sizeof pem, &pn));
    TEST_ASSERT(strncmp((const char *)pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
    TEST_ASSERT(strlen((const char *)pem) == pn);
    TEST_ERR(kms_pkey_public_pem(key, pem, pn, &untouched), KMS_ERR_BUFFER_TOO_SMALL);
    TEST_ERR(kms_pkey_from_public_der(other, der, n, &pub), KMS_ERR_INVALID_KEY);
    der[n] = 0;
    TEST_ERR(kms_pkey_from_public_der(kind, der, n + 1, &pub), KMS_ERR_INVALID_KEY);
    TEST_OK(kms_pkey_from_public_der(kind, der, n, &pub));
    TEST_ASSERT(kms_pkey_kind_of(pub) == kind);
    /* A public key cannot be exported as a private one. */
    TEST_ERR(kms_pkey_private_der(pub, der2, sizeof der2, &n2), KMS_ERR_INVALID_KEY);
    TEST_QUEUE_CLEAR();
    return pub;
}

/* ---- signatures ------------------------------------------------------------------------- */

/* Sign with priv (message and digest mode), verify with pub, tamper, wrong sizes. */
static void check_sign_fmt(EVP_PKEY *priv, EVP_PKEY *pub, kms_pkey_kind kind, kms_sig_alg alg,
                           kms_sig_format fmt)
{
    static const uint8_t msg[] = "attack at dawn";
    uint8_t sig[600], dsig[600], dg[64];
    size_t n = 0, dn = 0, untouched = 777;
    unsigned int dl = 0;
    int is_ecdsa = alg == KMS_SIG_ECDSA_SHA256 || alg == KMS_SIG_ECDSA_SHA384;

    TEST_OK(kms_sign(priv, alg, 0, msg, sizeof msg, fmt, sig, sizeof sig, &n));
    TEST_OK(kms_verify(pub, alg, 0, msg, sizeof msg, fmt, sig, n));
    TEST_OK(kms_verify(priv, alg, 0, msg, sizeof msg, fmt, sig, n));
    if (is_ecdsa && fmt == KMS_SIGFMT_P1363)
        TEST_ASSERT(n == (kind == KMS_PKEY_EC_P384 ? 96u : 64u));
    if (alg == KMS_SIG_ED25519) TEST_ASSERT(n == 64);
    if (!is_ecdsa && alg != KMS_SIG_ED25519) TEST_ASSERT(n == (size_t)EVP_PKEY_get_size(pub));
    TEST_ERR(kms_sign(priv, alg, 0, msg, sizeof msg, fmt, sig, n - 1 - (is_ecdsa ? 9 : 0),
                      &untouched),
             KMS_ERR_BUFFER_TOO_SMALL);
    TEST_ASSERT(untouched == 777);
    TEST_ERR(kms_verify(pub, alg, 0, msg, sizeof msg - 1, fmt, sig, n), KMS_ERR_INVALID_SIGNATURE);
    TEST_ERR(kms_verify(pub, alg, 0, msg, sizeof msg, fmt, sig, n - 1), KMS_ERR_INVALID_SIGNATURE);
    TEST_ERR(kms_verify(pub, alg, 0, msg, sizeof msg, fmt, NULL, 0), KMS_ERR_INVALID_SIGNATURE);
    sig[n / 2] ^= 0x01;
    TEST_ERR(kms_verify(pub, alg, 0, msg, sizeof msg, fmt, sig, n), KMS_ERR_INVALID_SIGNATURE);
    sig[n / 2] ^= 0x01;
    sig[n - 1] ^= 0x80;
    TEST_ERR(kms_verify(pub, alg, 0, msg, sizeof msg, fmt, sig, n), KMS_ERR_INVALID_SIGNATURE);
    sig[n - 1] ^= 0x80;

    if (alg == KMS_SIG_ED25519) {
        TEST_ERR(kms_sign(priv, alg, 1, msg, 32, fmt, dsig, sizeof dsig, &dn), KMS_ERR_UNSUPPORTED);
        TEST_ERR(kms_verify(pub, alg, 1, msg, 32, fmt, sig, n), KMS_ERR_UNSUPPORTED);
        return;
    }
    /* Digest mode: a digest signature verifies as a message signature and vice versa. */
    TEST_ASSERT(EVP_Digest(msg, sizeof msg, dg, &dl, alg_md(alg), NULL) == 1);
    TEST_OK(kms_sign(priv, alg, 1, dg, dl, fmt, dsig, sizeof dsig, &dn));
    TEST_OK(kms_verify(pub, alg, 0, msg, sizeof msg, fmt, dsig, dn));
    TEST_OK(kms_verify(pub, alg, 1, dg, dl, fmt, sig, n));
    TEST_ERR(kms_sign(priv, alg, 1, dg, dl - 1, fmt, dsig, sizeof dsig, &dn),
             KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_verify(pub, alg, 1, dg, dl + 1, fmt, sig, n), KMS_ERR_INVALID_ARGUMENT);
    TEST_QUEUE_CLEAR();
}

static void check_signatures(EVP_PKEY *priv, EVP_PKEY *pub, kms_pkey_kind kind)
{
    uint8_t sig[600] = {0};
    size_t n = 0;

    for (size_t i = 0; i < sizeof ALL_ALGS / sizeof ALL_ALGS[0]; i++) {
        kms_sig_alg alg = ALL_ALGS[i];
        if (!fits(alg, kind)) {
            TEST_ERR(kms_sign(priv, alg, 0, sig, 4, KMS_SIGFMT_DER, sig, sizeof sig, &n),
                     KMS_ERR_INVALID_KEY_USAGE);
            TEST_ERR(kms_verify(pub, alg, 0, sig, 4, KMS_SIGFMT_DER, sig, 64),
                     KMS_ERR_INVALID_KEY_USAGE);
            continue;
        }
        check_sign_fmt(priv, pub, kind, alg, KMS_SIGFMT_DER);
        if (alg == KMS_SIG_ECDSA_SHA256 || alg == KMS_SIG_ECDSA_SHA384)
            check_sign_fmt(priv, pub, kind, alg, KMS_SIGFMT_P1363);
    }
    TEST_QUEUE_CLEAR();
}

/* ---- key agreement ---------------------------------------------------------------------- */

static void check_derive(EVP_PKEY *a, kms_pkey_kind kind)
{
    EVP_PKEY *b = NULL, *other = NULL;
    uint8_t s1[128], s2[128];
    size_t n1 = 0, n2 = 0;
    kms_pkey_kind wrong = kind == KMS_PKEY_EC_P256 ? KMS_PKEY_EC_P384 : KMS_PKEY_EC_P256;

    TEST_OK(kms_pkey_generate(kind == KMS_PKEY_EC_SECP256K1 ? KMS_PKEY_EC_P256 : kind, &b));
    TEST_OK(kms_pkey_generate(wrong, &other));
    if (kind != KMS_PKEY_EC_P256 && kind != KMS_PKEY_EC_P384 && kind != KMS_PKEY_X25519) {
        TEST_ERR(kms_derive(a, b, s1, sizeof s1, &n1), KMS_ERR_INVALID_KEY_USAGE);
        goto done;
    }
    TEST_OK(kms_derive(a, b, s1, sizeof s1, &n1));
    TEST_OK(kms_derive(b, a, s2, sizeof s2, &n2));
    TEST_ASSERT(n1 == n2 && n1 == (kind == KMS_PKEY_EC_P384 ? 48u : 32u));
    TEST_ASSERT(memcmp(s1, s2, n1) == 0);
    TEST_ERR(kms_derive(a, other, s1, sizeof s1, &n1), KMS_ERR_INVALID_KEY);
    TEST_ERR(kms_derive(a, b, s1, n2 - 1, &n1), KMS_ERR_BUFFER_TOO_SMALL);
done:
    EVP_PKEY_free(b);
    EVP_PKEY_free(other);
    TEST_QUEUE_CLEAR();
}

static void check_kind(kms_pkey_kind kind)
{
    EVP_PKEY *key = NULL, *priv2 = NULL, *pub = NULL;

    fprintf(stderr, "-- %s\n", kind_name(kind));
    TEST_OK(kms_pkey_generate(kind, &key));
    if (key == NULL) return;
    TEST_ASSERT(kms_pkey_kind_of(key) == kind);
    pub = check_serialisation(key, kind, &priv2);
    if (pub != NULL && priv2 != NULL) {
        check_signatures(key, pub, kind);
        check_signatures(priv2, pub, kind);
        check_derive(key, kind);
    }
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv2);
    EVP_PKEY_free(key);
}

/* ---- secp256k1 low-s ------------------------------------------------------------------------ */

static void check_low_s(void)
{
    EVP_PKEY *key = NULL;
    uint8_t msg[32], sig[80], s_bytes[32], hi[72], *q = hi;
    size_t n = 0;
    int all_low = 1, high_ok = 1;

    TEST_OK(kms_pkey_generate(KMS_PKEY_EC_SECP256K1, &key));
    for (int i = 0; i < 64 && key != NULL; i++) {
        const unsigned char *p = sig;
        ECDSA_SIG *es;
        const BIGNUM *r, *s;
        BIGNUM *order = NULL, *hs = BN_new();
        EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);

        TEST_OK(kms_random(msg, sizeof msg));
        TEST_OK(kms_sign(key, KMS_SIG_ECDSA_SHA256, 0, msg, sizeof msg, KMS_SIGFMT_P1363, sig,
                         sizeof sig, &n));
        all_low &= n == 64 && memcmp(sig + 32, K1_HALF_ORDER, 32) <= 0;
        TEST_OK(kms_sign(key, KMS_SIG_ECDSA_SHA256, 0, msg, sizeof msg, KMS_SIGFMT_DER, sig,
                         sizeof sig, &n));
        es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        ECDSA_SIG_get0(es, &r, &s);
        all_low &= BN_bn2binpad(s, s_bytes, 32) == 32 && memcmp(s_bytes, K1_HALF_ORDER, 32) <= 0;
        /* The high-s twin (n - s) must still verify: verification accepts both. */
        order = BN_dup(EC_GROUP_get0_order(g));
        BN_sub(hs, order, s);
        ECDSA_SIG_set0(es, BN_dup(r), hs);
        q = hi;
        n = (size_t)i2d_ECDSA_SIG(es, &q);
        high_ok &= kms_verify(key, KMS_SIG_ECDSA_SHA256, 0, msg, sizeof msg, KMS_SIGFMT_DER, hi,
                              n) == KMS_OK;
        ECDSA_SIG_free(es);
        BN_free(order);
        EC_GROUP_free(g);
    }
    TEST_ASSERT(all_low);
    TEST_ASSERT(high_ok);
    EVP_PKEY_free(key);
    TEST_QUEUE_CLEAR();
}

/* ---- AES-GCM ------------------------------------------------------------------------------ */

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void check_gcm(void)
{
    uint8_t key[32], iv[KMS_GCM_IV_MAX_LEN + 1], aad[] = "ctx", pt[100], ct[100], out[100], tag[16];
    size_t ivs[] = {1, KMS_GCM_IV_LEN, KMS_GCM_IV_MAX_LEN};

    TEST_OK(kms_random(key, sizeof key));
    TEST_OK(kms_random(iv, sizeof iv));
    TEST_OK(kms_random(pt, sizeof pt));
    for (size_t i = 0; i < 3; i++) {
        TEST_OK(kms_aes_gcm_seal(key, 32, iv, ivs[i], aad, sizeof aad, pt, sizeof pt, ct, tag));
        TEST_OK(kms_aes_gcm_open(key, 32, iv, ivs[i], aad, sizeof aad, ct, sizeof ct, tag, 16,
                                 out));
        TEST_ASSERT(memcmp(out, pt, sizeof pt) == 0);
    }
    TEST_OK(kms_aes_gcm_seal(key, 16, iv, 12, NULL, 0, pt, sizeof pt, ct, tag));
    TEST_OK(kms_aes_gcm_open(key, 16, iv, 12, NULL, 0, ct, sizeof ct, tag, 16, out));
    TEST_OK(kms_aes_gcm_seal(key, 24, iv, 12, aad, sizeof aad, NULL, 0, NULL, tag));
    TEST_OK(kms_aes_gcm_open(key, 24, iv, 12, aad, sizeof aad, NULL, 0, tag, 16, NULL));
    TEST_ERR(kms_aes_gcm_seal(key, 32, iv, KMS_GCM_IV_MAX_LEN + 1, NULL, 0, pt, 1, ct, tag),
             KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_aes_gcm_seal(key, 32, iv, 0, NULL, 0, pt, 1, ct, tag), KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_aes_gcm_seal(key, 17, iv, 12, NULL, 0, pt, 1, ct, tag), KMS_ERR_INVALID_ARGUMENT);

    TEST_OK(kms_aes_gcm_seal(key, 32, iv, 12, aad, sizeof aad, pt, sizeof pt, ct, tag));
    ct[5] ^= 1;
    memset(out, 0xaa, sizeof out);
    TEST_ERR(kms_aes_gcm_open(key, 32, iv, 12, aad, sizeof aad, ct, sizeof ct, tag, 16, out),
             KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ASSERT(all_zero(out, sizeof out)); /* no unauthenticated plaintext */
    ct[5] ^= 1;
    tag[15] ^= 1;
    TEST_ERR(kms_aes_gcm_open(key, 32, iv, 12, aad, sizeof aad, ct, sizeof ct, tag, 16, out),
             KMS_ERR_INVALID_CIPHERTEXT);
    tag[15] ^= 1;
    TEST_ERR(kms_aes_gcm_open(key, 32, iv, 12, aad, sizeof aad - 1, ct, sizeof ct, tag, 16, out),
             KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ERR(kms_aes_gcm_open(key, 32, iv + 1, 12, aad, sizeof aad, ct, sizeof ct, tag, 16, out),
             KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ERR(kms_aes_gcm_open(key, 32, iv, 12, aad, sizeof aad, ct, sizeof ct, tag, 12, out),
             KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ERR(kms_aes_gcm_open(key, 32, iv, 0, aad, sizeof aad, ct, sizeof ct, tag, 16, out),
             KMS_ERR_INVALID_CIPHERTEXT);
    TEST_OK(kms_aes_gcm_open(key, 32, iv, 12, aad, sizeof aad, ct, sizeof ct, tag, 16, out));
    TEST_ASSERT(memcmp(out, pt, sizeof pt) == 0);
    TEST_QUEUE_CLEAR();
}

/* ---- hashes, HMAC, random ------------------------------------------------------------------- */

static void check_hash_hmac_random(void)
{
    /* FIPS 180-2 "abc"; RFC 4231 test case 2; HMAC-SHA-256 with empty key and message. */
    static const uint8_t sha_abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
        0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
        0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t rfc4231_2[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
        0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
        0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    static const uint8_t empty_mac[32] = {
        0xb6, 0x13, 0x67, 0x9a, 0x08, 0x14, 0xd9, 0xec,
        0x77, 0x2f, 0x95, 0xd7, 0x78, 0xc3, 0x5f, 0xc5,
        0xff, 0x16, 0x97, 0xc4, 0x93, 0x71, 0x56, 0x53,
        0xc6, 0xc7, 0x12, 0x14, 0x42, 0x92, 0xc5, 0xad};
    static const uint8_t key[] = "Jefe", data[] = "what do ya want for nothing?";
    static uint8_t big_key[1025];
    uint8_t out[64], r1[32] = {0}, r2[32] = {0};
    size_t n = 0;

    TEST_OK(kms_sha256((const uint8_t *)"abc", 3, out));
    TEST_ASSERT(memcmp(out, sha_abc, 32) == 0);
    TEST_OK(kms_hmac(KMS_MD_SHA256, key, 4, data, 28, out, sizeof out, &n));
    TEST_ASSERT(n == 32 && memcmp(out, rfc4231_2, 32) == 0);
    TEST_OK(kms_hmac_verify(KMS_MD_SHA256, key, 4, data, 28, rfc4231_2, 32));
    TEST_OK(kms_hmac_verify(KMS_MD_SHA256, key, 4, data, 28, rfc4231_2, 16));
    TEST_ERR(kms_hmac_verify(KMS_MD_SHA256, key, 4, data, 28, rfc4231_2, 15),
             KMS_ERR_INVALID_SIGNATURE);
    TEST_ERR(kms_hmac_verify(KMS_MD_SHA256, key, 3, data, 28, rfc4231_2, 32),
             KMS_ERR_INVALID_SIGNATURE);
    memcpy(out, rfc4231_2, 32);
    out[31] ^= 1;
    TEST_ERR(kms_hmac_verify(KMS_MD_SHA256, key, 4, data, 28, out, 32), KMS_ERR_INVALID_SIGNATURE);
    TEST_ERR(kms_hmac_verify(KMS_MD_SHA256, key, 4, data, 28, rfc4231_2, 33),
             KMS_ERR_INVALID_SIGNATURE);
    TEST_OK(kms_hmac(KMS_MD_SHA256, NULL, 0, NULL, 0, out, sizeof out, &n));
    TEST_ASSERT(n == 32 && memcmp(out, empty_mac, 32) == 0);
    TEST_OK(kms_hmac(KMS_MD_SHA384, key, 4, data, 28, out, sizeof out, &n));
    TEST_ASSERT(n == 48);
    TEST_OK(kms_hmac(KMS_MD_SHA512, big_key, 1024, data, 28, out, sizeof out, &n));
    TEST_ASSERT(n == 64);
    TEST_ERR(kms_hmac(KMS_MD_SHA512, big_key, 1025, data, 28, out, sizeof out, &n),
             KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_hmac(KMS_MD_SHA1, key, 4, data, 28, out, sizeof out, &n), KMS_ERR_UNSUPPORTED);
    TEST_ERR(kms_hmac(KMS_MD_SHA256, key, 4, data, 28, out, 31, &n), KMS_ERR_BUFFER_TOO_SMALL);

    TEST_OK(kms_random(r1, sizeof r1));
    TEST_OK(kms_random(r2, sizeof r2));
    TEST_ASSERT(memcmp(r1, r2, sizeof r1) != 0);
    TEST_OK(kms_random(NULL, 0));
    TEST_ERR(kms_random(NULL, 1), KMS_ERR_INVALID_ARGUMENT);
    TEST_QUEUE_CLEAR();
}

/* ---- RSA-OAEP and explicit-parameter PSS ---------------------------------------------- */

/* A SHA-1 OAEP ciphertext made by OpenSSL directly (the enclave only decrypts those). */
static size_t legacy_oaep(EVP_PKEY *key, const uint8_t *pt, size_t pt_len, uint8_t *ct, size_t cap)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    size_t n = cap;
    int ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()) == 1 &&
             EVP_PKEY_encrypt(ctx, ct, &n, pt, pt_len) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? n : 0;
}

static void check_rsa_extras(void)
{
    static const uint8_t msg[] = "wrapped key bytes", label[] = "label";
    EVP_PKEY *key = NULL, *ec = NULL;
    uint8_t ct[512], pt[512], sig[512];
    size_t n = 0, pn = 0, sn = 0, untouched = 99;

    TEST_OK(kms_pkey_generate(KMS_PKEY_RSA_2048, &key));
    TEST_OK(kms_pkey_generate(KMS_PKEY_EC_P256, &ec));
    TEST_OK(kms_rsa_oaep_encrypt(key, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, msg, sizeof msg, ct,
                                 sizeof ct, &n));
    TEST_ASSERT(n == 256);
    TEST_OK(kms_rsa_oaep_decrypt(key, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, ct, n, pt, sizeof pt,
                                 &pn));
    TEST_ASSERT(pn == sizeof msg && memcmp(pt, msg, pn) == 0);
    TEST_OK(kms_rsa_oaep_encrypt(key, KMS_MD_SHA512, KMS_MD_SHA256, label, 5, msg, sizeof msg, ct,
                                 sizeof ct, &n));
    TEST_OK(kms_rsa_oaep_decrypt(key, KMS_MD_SHA512, KMS_MD_SHA256, label, 5, ct, n, pt, sizeof pt,
                                 &pn));
    TEST_ASSERT(pn == sizeof msg && memcmp(pt, msg, pn) == 0);
    TEST_ERR(kms_rsa_oaep_decrypt(key, KMS_MD_SHA512, KMS_MD_SHA256, label, 4, ct, n, pt,
                                  sizeof pt, &untouched), KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ERR(kms_rsa_oaep_decrypt(key, KMS_MD_SHA512, KMS_MD_SHA512, label, 5, ct, n, pt,
                                  sizeof pt, &untouched), KMS_ERR_INVALID_CIPHERTEXT);
    ct[100] ^= 1;
    TEST_ERR(kms_rsa_oaep_decrypt(key, KMS_MD_SHA512, KMS_MD_SHA256, label, 5, ct, n, pt,
                                  sizeof pt, &untouched), KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ERR(kms_rsa_oaep_decrypt(key, KMS_MD_SHA512, KMS_MD_SHA256, label, 5, ct, n - 1, pt,
                                  sizeof pt, &untouched), KMS_ERR_INVALID_CIPHERTEXT);
    TEST_ERR(kms_rsa_oaep_decrypt(key, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, ct, n, pt, 189,
                                  &untouched), KMS_ERR_BUFFER_TOO_SMALL);
    TEST_ASSERT(untouched == 99);
    TEST_ERR(kms_rsa_oaep_encrypt(key, KMS_MD_SHA1, KMS_MD_SHA256, NULL, 0, msg, sizeof msg, ct,
                                  sizeof ct, &n), KMS_ERR_UNSUPPORTED);
    TEST_ERR(kms_rsa_oaep_encrypt(key, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, pt, 191, ct,
                                  sizeof ct, &n), KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_rsa_oaep_encrypt(key, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, msg, sizeof msg, ct,
                                  255, &n), KMS_ERR_BUFFER_TOO_SMALL);
    TEST_ERR(kms_rsa_oaep_encrypt(ec, KMS_MD_SHA256, KMS_MD_SHA256, NULL, 0, msg, sizeof msg, ct,
                                  sizeof ct, &n), KMS_ERR_INVALID_KEY_USAGE);
    n = legacy_oaep(key, msg, sizeof msg, ct, sizeof ct);
    TEST_ASSERT(n == 256);
    TEST_OK(kms_rsa_oaep_decrypt(key, KMS_MD_SHA1, KMS_MD_SHA1, NULL, 0, ct, n, pt, sizeof pt,
                                 &pn));
    TEST_ASSERT(pn == sizeof msg && memcmp(pt, msg, pn) == 0);

    /* kms_sign's PSS is salt = digest length, MGF1 with the same digest. */
    TEST_OK(kms_sign(key, KMS_SIG_RSA_PSS_SHA256, 0, msg, sizeof msg, KMS_SIGFMT_DER, sig,
                     sizeof sig, &sn));
    TEST_OK(kms_verify_rsa_pss(key, KMS_MD_SHA256, KMS_MD_SHA256, 32, msg, sizeof msg, sig, sn));
    TEST_ERR(kms_verify_rsa_pss(key, KMS_MD_SHA256, KMS_MD_SHA256, 0, msg, sizeof msg, sig, sn),
             KMS_ERR_INVALID_SIGNATURE);
    TEST_ERR(kms_verify_rsa_pss(key, KMS_MD_SHA256, KMS_MD_SHA1, 32, msg, sizeof msg, sig, sn),
             KMS_ERR_INVALID_SIGNATURE);
    TEST_ERR(kms_verify_rsa_pss(key, KMS_MD_SHA256, KMS_MD_SHA256, -1, msg, sizeof msg, sig, sn),
             KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_verify_rsa_pss(ec, KMS_MD_SHA256, KMS_MD_SHA256, 32, msg, sizeof msg, sig, sn),
             KMS_ERR_INVALID_KEY_USAGE);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ec);
    TEST_QUEUE_CLEAR();
}

static void check_misc_arguments(void)
{
    EVP_PKEY *key = NULL;
    uint8_t buf[64];
    size_t n = 0;

    TEST_ERR(kms_pkey_generate((kms_pkey_kind)0, &key), KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_pkey_generate((kms_pkey_kind)99, &key), KMS_ERR_INVALID_ARGUMENT);
    TEST_ASSERT(kms_pkey_kind_of(NULL) == 0);
    TEST_ERR(kms_pkey_from_public_der(KMS_PKEY_EC_P256, buf, 0, &key), KMS_ERR_INVALID_KEY);
    memset(buf, 0x30, sizeof buf);
    TEST_ERR(kms_pkey_from_public_der(KMS_PKEY_EC_P256, buf, sizeof buf, &key),
             KMS_ERR_INVALID_KEY);
    TEST_ERR(kms_pkey_from_private_der(KMS_PKEY_EC_P256, buf, sizeof buf, &key),
             KMS_ERR_INVALID_KEY);
    TEST_ERR(kms_sign(NULL, KMS_SIG_ED25519, 0, buf, 1, KMS_SIGFMT_DER, buf, sizeof buf, &n),
             KMS_ERR_INVALID_ARGUMENT);
    TEST_OK(kms_pkey_generate(KMS_PKEY_EC_P256, &key));
    TEST_ERR(kms_sign(key, (kms_sig_alg)42, 0, buf, 1, KMS_SIGFMT_DER, buf, sizeof buf, &n),
             KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_sign(key, KMS_SIG_ECDSA_SHA256, 0, buf, 1, (kms_sig_format)7, buf, sizeof buf,
                      &n), KMS_ERR_INVALID_ARGUMENT);
    EVP_PKEY_free(key);
    TEST_QUEUE_CLEAR();
}

/* One sealer, many messages (a batch): each as the one-shot seal with its IV would write it, and each opens. */
static void check_gcm_sealer(void)
{
    uint8_t key[32], iv[3][KMS_GCM_IV_LEN], aad[] = "ctx", pt[3][40], ct[40], want[40], tag[16], want_tag[16], out[40];
    EVP_CIPHER_CTX *sealer = NULL;
    TEST_OK(kms_random(key, sizeof key));
    TEST_OK(kms_random(&iv[0][0], sizeof iv));
    TEST_OK(kms_random(&pt[0][0], sizeof pt));
    TEST_OK(kms_aes_gcm_sealer_new(key, 32, KMS_GCM_IV_LEN, &sealer));
    for (size_t i = 0; i < 3; i++) {
        size_t aad_len = i == 1 ? 0 : sizeof aad; /* with and without AAD in turn */
        TEST_OK(kms_aes_gcm_seal_with(sealer, iv[i], KMS_GCM_IV_LEN, aad, aad_len, pt[i], sizeof pt[i], ct, tag));
        TEST_OK(kms_aes_gcm_seal(key, 32, iv[i], KMS_GCM_IV_LEN, aad, aad_len, pt[i], sizeof pt[i], want, want_tag));
        TEST_ASSERT(memcmp(ct, want, sizeof ct) == 0 && memcmp(tag, want_tag, sizeof tag) == 0);
        TEST_OK(kms_aes_gcm_open(key, 32, iv[i], KMS_GCM_IV_LEN, aad, aad_len, ct, sizeof ct, tag, 16, out));
        TEST_ASSERT(memcmp(out, pt[i], sizeof out) == 0);
    }
    TEST_ERR(kms_aes_gcm_seal_with(sealer, iv[0], 16, NULL, 0, pt[0], 1, ct, tag), KMS_ERR_INVALID_ARGUMENT);
    TEST_ERR(kms_aes_gcm_seal_with(NULL, iv[0], KMS_GCM_IV_LEN, NULL, 0, pt[0], 1, ct, tag), KMS_ERR_INVALID_ARGUMENT);
    kms_aes_gcm_sealer_free(sealer);
    kms_aes_gcm_sealer_free(NULL);
    TEST_ERR(kms_aes_gcm_sealer_new(key, 17, KMS_GCM_IV_LEN, &sealer), KMS_ERR_INVALID_ARGUMENT);
    TEST_ASSERT(sealer == NULL);
}

int main(void)
{
    for (int k = KMS_PKEY_EC_P256; k <= KMS_PKEY_RSA_4096; k++) check_kind((kms_pkey_kind)k);
    check_low_s();
    check_gcm();
    check_gcm_sealer();
    check_hash_hmac_random();
    check_rsa_extras();
    check_misc_arguments();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
