/*
 * quote.c - DCAP quote v3 verification (reference/dcap-ratls.md §1.3, §2.3 steps 1, 3, 7, 8, 10) with
 * OpenSSL's X509 chain verification and the project's ECDSA verify, then the quote's collateral
 * (collateral.c: steps 4-6, 9, 11, 12); the policy is the caller's.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "collateral.h"
#include "crypto.h"
#include "quote.h"

enum { Q_HEADER = 48, Q_SIGNED = 432, Q_SIGLEN = 432, Q_ISV_SIG = 436, Q_ATT_KEY = 500, Q_QE_REPORT = 564,
       Q_QE_SIG = 948, Q_AUTH_LEN = 1012, Q_MIN = 1020, MAX_CERT_DATA = 8192 };
static const uint8_t k_vendor_intel[16] = {0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9,
                                           0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07};
/* SubjectPublicKeyInfo prefix of an uncompressed P-256 point (id-ecPublicKey, prime256v1). */
static const uint8_t k_p256_spki[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

const uint8_t kms_intel_sgx_root[KMS_QUOTE_ROOT_LEN] = {
    0x04, 0x0B, 0xA9, 0xC4, 0xC0, 0xC0, 0xC8, 0x61, 0x93, 0xA3, 0xFE, 0x23, 0xD6, 0xB0, 0x2C, 0xDA, 0x10,
    0xA8, 0xBB, 0xD4, 0xE8, 0x8E, 0x48, 0xB4, 0x45, 0x85, 0x61, 0xA3, 0x6E, 0x70, 0x55, 0x25, 0xF5, 0x67,
    0x91, 0x8E, 0x2E, 0xDC, 0x88, 0xE4, 0x0D, 0x86, 0x0B, 0xD0, 0xCC, 0x4E, 0xE2, 0x6A, 0xAC, 0xC9, 0x88,
    0xE5, 0x05, 0xA9, 0x53, 0x55, 0x8C, 0x45, 0x3F, 0x6B, 0x09, 0x04, 0xAE, 0x73, 0x94};

static uint32_t le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A P-256 public key from an uncompressed point without its 0x04 (x || y). */
static kms_err_t p256_key(const uint8_t xy[64], EVP_PKEY **out)
{
    uint8_t der[sizeof k_p256_spki + 65];
    memcpy(der, k_p256_spki, sizeof k_p256_spki);
    der[sizeof k_p256_spki] = 0x04;
    memcpy(der + sizeof k_p256_spki + 1, xy, 64);
    return kms_pkey_from_public_der(KMS_PKEY_EC_P256, der, sizeof der, out);
}

static kms_err_t verify_p1363(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t sig[64])
{
    return kms_verify(key, KMS_SIG_ECDSA_SHA256, 0, msg, len, KMS_SIGFMT_P1363, sig, 64) == KMS_OK
               ? KMS_OK : KMS_ERR_PEER_MISMATCH;
}

/* The raw uncompressed point of an EC certificate's key. */
static kms_err_t cert_point(X509 *cert, uint8_t out[KMS_QUOTE_ROOT_LEN])
{
    uint8_t der[128];
    size_t len = 0;
    EVP_PKEY *key = X509_get0_pubkey(cert);
    if (key == NULL || kms_pkey_public_der(key, der, sizeof der, &len) != KMS_OK ||
        len != sizeof k_p256_spki + KMS_QUOTE_ROOT_LEN || memcmp(der, k_p256_spki, sizeof k_p256_spki) != 0)
        return KMS_ERR_PEER_MISMATCH;
    memcpy(out, der + sizeof k_p256_spki, KMS_QUOTE_ROOT_LEN);
    return KMS_OK;
}

/* Leaf, intermediate and root (PEM, in that order) verified as a chain to the root at time now; certs
 * (the caller frees them, also on failure) and the root's point out. */
static kms_err_t verify_chain(const uint8_t *pem, size_t len, int64_t now, X509 *certs[3],
                              uint8_t root_point[KMS_QUOTE_ROOT_LEN])
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    kms_err_t err = KMS_ERR_PEER_MISMATCH;
    if (store == NULL || ctx == NULL || untrusted == NULL || len > MAX_CERT_DATA) goto done;
    KMS_GOTO_IF_ERR(err, kms_pem_certs(pem, len, certs, 3), done);
    err = KMS_ERR_PEER_MISMATCH;
    if (X509_STORE_add_cert(store, certs[2]) != 1 || sk_X509_push(untrusted, certs[1]) <= 0) goto done;
    if (X509_STORE_CTX_init(ctx, store, certs[0], untrusted) != 1) goto done;
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now);
    if (X509_verify_cert(ctx) != 1 || sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) != 3) goto done;
    if (X509_check_issued(certs[2], certs[2]) != X509_V_OK) goto done; /* the root is self-issued */
    err = cert_point(certs[2], root_point);
done:
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return err;
}

/* The header and the layout: version 3, ECDSA P-256, Intel's QE vendor id, type-5 certification
 * data that ends the quote exactly. *auth_len and the cert data's offset and length out. */
static kms_err_t check_layout(const uint8_t *q, size_t len, size_t *auth_len, size_t *cert_off, size_t *cert_len)
{
    if (len < Q_MIN || le(q, 2) != 3 || le(q + 2, 2) != 2 || memcmp(q + 12, k_vendor_intel, 16) != 0)
        return KMS_ERR_PEER_MISMATCH;
    if ((size_t)Q_ISV_SIG + le(q + Q_SIGLEN, 4) != len) return KMS_ERR_PEER_MISMATCH;
    size_t n = le(q + Q_AUTH_LEN, 2);
    if (n > 64 || (size_t)Q_MIN + n > len || le(q + Q_AUTH_LEN + 2 + n, 2) != 5) return KMS_ERR_PEER_MISMATCH;
    size_t m = le(q + Q_AUTH_LEN + 4 + n, 4);
    if ((size_t)Q_MIN + n + m != len) return KMS_ERR_PEER_MISMATCH;
    *auth_len = n, *cert_off = Q_MIN + n, *cert_len = m;
    return KMS_OK;
}

kms_err_t kms_quote_verify(const uint8_t *quote, size_t len, const QuoteCollateral *collateral, int64_t now,
                           kms_quote_info *out)
{
    size_t auth_len = 0, cert_off = 0, cert_len = 0;
    X509 *certs[3] = {NULL, NULL, NULL};
    EVP_PKEY *att = NULL;
    uint8_t hashed[64 + 64], digest[32];
    KMS_RETURN_IF_ERR(check_layout(quote, len, &auth_len, &cert_off, &cert_len));
    kms_err_t err = verify_chain(quote + cert_off, cert_len, now, certs, out->root);
    EVP_PKEY *pck = err == KMS_OK ? X509_get0_pubkey(certs[0]) : NULL;
    if (err == KMS_OK) err = pck != NULL ? verify_p1363(pck, quote + Q_QE_REPORT, KMS_QUOTE_BODY_LEN, quote + Q_QE_SIG)
                                         : KMS_ERR_PEER_MISMATCH;
    memcpy(hashed, quote + Q_ATT_KEY, 64); /* QE REPORTDATA = SHA-256(attestation key || QE auth data) || ... */
    memcpy(hashed + 64, quote + Q_AUTH_LEN + 2, auth_len);
    if (err == KMS_OK) err = kms_sha256(hashed, 64 + auth_len, digest);
    if (err == KMS_OK && memcmp(digest, quote + Q_QE_REPORT + 320, 32) != 0) err = KMS_ERR_PEER_MISMATCH;
    if (err == KMS_OK) err = p256_key(quote + Q_ATT_KEY, &att) == KMS_OK ? KMS_OK : KMS_ERR_PEER_MISMATCH;
    if (err == KMS_OK) err = verify_p1363(att, quote, Q_SIGNED, quote + Q_ISV_SIG);
    kms_pck_chain chain = {certs[0], certs[1], certs[2]};
    if (err == KMS_OK) err = kms_collateral_check(&chain, quote + Q_QE_REPORT, collateral, now, &out->tcb_status);
    if (err == KMS_OK) {
        memcpy(out->body, quote + Q_HEADER, KMS_QUOTE_BODY_LEN);
        memcpy(out->qe_mrsigner, quote + Q_QE_REPORT + 128, 32);
    }
    for (int i = 0; i < 3; i++) X509_free(certs[i]);
    EVP_PKEY_free(att);
    return err;
}
