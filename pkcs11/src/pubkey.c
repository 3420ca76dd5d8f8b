/*
 * pubkey.c - public-key attributes from the KMS's SubjectPublicKeyInfo (OpenSSL parses it; the
 * module holds no private key), EC parameters as DER OIDs, and a peer's EC point as an SPKI for
 * DeriveSharedSecret.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "p11.h"

static const uint8_t OID_P256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t OID_P384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t OID_K256[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
static const uint8_t OID_ED25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t NAME_ED25519[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

static const struct {
    KeySpec spec;
    const uint8_t *der;
    size_t len;
    const char *group;   /* OpenSSL group name, NULL for Ed25519 */
    size_t field;        /* field size in bytes */
} CURVES[] = {
    {KeySpec_ECC_NIST_P256, OID_P256, sizeof OID_P256, "prime256v1", 32},
    {KeySpec_ECC_NIST_P384, OID_P384, sizeof OID_P384, "secp384r1", 48},
    {KeySpec_ECC_SECG_P256K1, OID_K256, sizeof OID_K256, "secp256k1", 32},
    {KeySpec_ED25519, OID_ED25519, sizeof OID_ED25519, NULL, 32},
};
#define NCURVES (sizeof CURVES / sizeof CURVES[0])

size_t p11_ec_params(KeySpec spec, uint8_t *buf, size_t cap)
{
    for (size_t i = 0; i < NCURVES; i++) {
        if (CURVES[i].spec != spec) continue;
        if (CURVES[i].len > cap) return 0;
        memcpy(buf, CURVES[i].der, CURVES[i].len);
        return CURVES[i].len;
    }
    return 0;
}

KeySpec p11_spec_from_ec_params(const uint8_t *der, size_t len)
{
    if (der == NULL) return KeySpec_KEY_SPEC_UNSPECIFIED;
    for (size_t i = 0; i < NCURVES; i++)
        if (CURVES[i].len == len && memcmp(CURVES[i].der, der, len) == 0) return CURVES[i].spec;
    if (len == sizeof NAME_ED25519 && memcmp(NAME_ED25519, der, len) == 0) return KeySpec_ED25519;
    return KeySpec_KEY_SPEC_UNSPECIFIED;
}

/* Copies n bytes to buf when it fits (buf NULL: length only). */
static CK_RV put(const uint8_t *src, size_t n, uint8_t *buf, size_t cap, size_t *len)
{
    *len = n;
    if (buf == NULL) return CKR_OK;
    if (n > cap) return CKR_BUFFER_TOO_SMALL;
    memcpy(buf, src, n);
    return CKR_OK;
}

/* The public key bytes inside the SPKI's BIT STRING (EC point, Ed25519 key) as a DER OCTET
 * STRING (CKA_EC_POINT). */
static CK_RV ec_point(X509_PUBKEY *xpk, uint8_t *buf, size_t cap, size_t *len)
{
    const unsigned char *pk = NULL;
    int pklen = 0;
    if (!X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, xpk) || pklen <= 0 || pklen > 127)
        return CKR_GENERAL_ERROR;
    uint8_t der[2 + 127];
    der[0] = 0x04;
    der[1] = (uint8_t)pklen;
    memcpy(der + 2, pk, (size_t)pklen);
    return put(der, (size_t)pklen + 2, buf, cap, len);
}

static CK_RV rsa_part(EVP_PKEY *pkey, CK_ATTRIBUTE_TYPE part, uint8_t *buf, size_t cap, size_t *len)
{
    BIGNUM *bn = NULL;
    const char *name = part == CKA_MODULUS ? OSSL_PKEY_PARAM_RSA_N : OSSL_PKEY_PARAM_RSA_E;
    if (!EVP_PKEY_get_bn_param(pkey, name, &bn)) return CKR_GENERAL_ERROR;
    uint8_t tmp[1024];
    int n = BN_num_bytes(bn);
    CK_RV rv = CKR_GENERAL_ERROR;
    if (n > 0 && (size_t)n <= sizeof tmp && BN_bn2bin(bn, tmp) == n) rv = put(tmp, (size_t)n, buf, cap, len);
    BN_free(bn);
    return rv;
}

CK_RV p11_spki_part(const uint8_t *spki, size_t spki_len, CK_ATTRIBUTE_TYPE part, uint8_t *buf,
                    size_t cap, size_t *len)
{
    if (part == CKA_PUBLIC_KEY_INFO) return put(spki, spki_len, buf, cap, len);
    const unsigned char *p = spki;
    X509_PUBKEY *xpk = d2i_X509_PUBKEY(NULL, &p, (long)spki_len);
    if (xpk == NULL) return CKR_GENERAL_ERROR;
    EVP_PKEY *pkey = X509_PUBKEY_get0(xpk);
    CK_RV rv = CKR_ATTRIBUTE_TYPE_INVALID;
    bool is_rsa = pkey != NULL && EVP_PKEY_is_a(pkey, "RSA");
    if (pkey == NULL) rv = CKR_GENERAL_ERROR;
    else if (part == CKA_EC_POINT && !is_rsa) rv = ec_point(xpk, buf, cap, len);
    else if ((part == CKA_MODULUS || part == CKA_PUBLIC_EXPONENT) && is_rsa) rv = rsa_part(pkey, part, buf, cap, len);
    X509_PUBKEY_free(xpk);
    return rv;
}

/* The raw point inside data: data itself, or the content of a DER OCTET STRING around it. */
static bool raw_point(size_t field, const uint8_t *data, size_t len, const uint8_t **pt, size_t *pt_len)
{
    bool raw = (len == 1 + 2 * field && data[0] == 0x04) || (len == 1 + field && (data[0] == 2 || data[0] == 3));
    if (!raw && len > 2 && data[0] == 0x04 && data[1] == len - 2 && len - 2 < 128)
        return raw_point(field, data + 2, len - 2, pt, pt_len);
    *pt = data;
    *pt_len = len;
    return raw;
}

CK_RV p11_spki_from_point(KeySpec spec, const uint8_t *point, size_t len, uint8_t **out, size_t *out_len)
{
    size_t i = 0;
    while (i < NCURVES && (CURVES[i].spec != spec || CURVES[i].group == NULL)) i++;
    const uint8_t *pt = NULL;
    size_t pt_len = 0;
    if (i == NCURVES || point == NULL || !raw_point(CURVES[i].field, point, len, &pt, &pt_len))
        return CKR_MECHANISM_PARAM_INVALID;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)(uintptr_t)CURVES[i].group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)pt, pt_len),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    CK_RV rv = CKR_MECHANISM_PARAM_INVALID;
    if (ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(pkey, &der);
        if (n > 0) {
            *out = der; /* OpenSSL-allocated: free with OPENSSL_free */
            *out_len = (size_t)n;
            rv = CKR_OK;
        }
    }
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return rv;
}
