/*
 * ratls.c - RA-TLS key, claims and certificate. The claims buffer and the evidence are
 * definite-length CBOR written here directly (a fixed shape: a map of one to three entries and a
 * two-element tagged array), the certificate is built and signed with OpenSSL's X509 API.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto.h"
#include "kms/limits.h"
#include "platform.h"
#include "ratls.h"

#define CLAIMS_LEN 51u            /* a1 6b "pubkey-hash" 58 24 82 01 58 20 <32> */
/* + 69 "audit-key" 58 20 <32>, + 69 "domain-id" 50 <16> */
#define CLAIMS_MAX (CLAIMS_LEN + 1u + 9u + 2u + 32u + 1u + 9u + 1u + 16u)
#define QUOTE_MAX 8192u
#define QUOTE_BODY_OFF 48u        /* SGX report body in quote v3 and SGX v4 */
#define QUOTE_MIN_LEN 1020u

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *g_key;
static uint8_t g_claims[CLAIMS_MAX];
static size_t g_claims_len;
static uint8_t g_pubkey_hash[32];
static uint8_t g_audit_pub[32];
static int g_has_audit;
static uint8_t g_domain_id[16];
static int g_has_domain;
static uint64_t g_claims_gen, g_cert_gen; /* the claims' version, and the one the certificate binds */
static uint8_t *g_cert, *g_quote;
static size_t g_cert_len, g_quote_len;

/* CBOR major-type header for a byte string of len bytes; returns the header length. */
static size_t cbor_bstr_header(uint8_t *out, size_t len)
{
    if (len < 24) { out[0] = (uint8_t)(0x40 | len); return 1; }
    if (len < 256) { out[0] = 0x58; out[1] = (uint8_t)len; return 2; }
    out[0] = 0x59; out[1] = (uint8_t)(len >> 8); out[2] = (uint8_t)len;
    return 3; /* callers bound len below 65536 */
}

/* SHA-256 of the key's SubjectPublicKeyInfo. */
static kms_err_t spki_hash(EVP_PKEY *key, uint8_t hash[32])
{
    uint8_t spki[256];
    size_t spki_len = 0;
    KMS_RETURN_IF_ERR(kms_pkey_public_der(key, spki, sizeof spki, &spki_len));
    return kms_sha256(spki, spki_len, hash);
}

/* The claims map (lock held), keys in canonical CBOR order (shorter first, then bytewise):
 * {"audit-key": h'<32>'?, "domain-id": h'<16>'?, "pubkey-hash": h'82 01 58 20 <32>'}. */
static size_t claims_encode(uint8_t out[CLAIMS_MAX])
{
    static const uint8_t audit[] = {0x69, 'a', 'u', 'd', 'i', 't', '-', 'k', 'e', 'y', 0x58, 0x20};
    static const uint8_t domain[] = {0x69, 'd', 'o', 'm', 'a', 'i', 'n', '-', 'i', 'd', 0x50};
    static const uint8_t pubkey[] = {0x6b, 'p', 'u', 'b', 'k', 'e', 'y', '-', 'h', 'a', 's', 'h',
                                     0x58, 0x24, 0x82, 0x01, 0x58, 0x20};
    size_t n = 0;
    out[n++] = (uint8_t)(0xa1 + (g_has_audit ? 1 : 0) + (g_has_domain ? 1 : 0));
    if (g_has_audit) {
        memcpy(out + n, audit, sizeof audit), n += sizeof audit;
        memcpy(out + n, g_audit_pub, 32), n += 32;
    }
    if (g_has_domain) {
        memcpy(out + n, domain, sizeof domain), n += sizeof domain;
        memcpy(out + n, g_domain_id, 16), n += 16;
    }
    memcpy(out + n, pubkey, sizeof pubkey), n += sizeof pubkey;
    memcpy(out + n, g_pubkey_hash, 32), n += 32;
    return n;
}

kms_err_t kms_ratls_init(void)
{
    EVP_PKEY *key = NULL;
    uint8_t hash[32];
    KMS_RETURN_IF_ERR(kms_pkey_generate(KMS_PKEY_EC_P256, &key));
    kms_err_t err = spki_hash(key, hash);
    pthread_mutex_lock(&g_lock);
    if (err == KMS_OK && g_key == NULL) {
        g_key = key;
        memcpy(g_pubkey_hash, hash, 32);
        g_claims_len = claims_encode(g_claims);
        key = NULL;
    }
    pthread_mutex_unlock(&g_lock);
    EVP_PKEY_free(key);
    return err;
}

/* Set or clear one optional claim (lock taken here); a change makes the certificate stale. */
static void set_claim(int *has, uint8_t *value, const uint8_t *from, size_t len)
{
    pthread_mutex_lock(&g_lock);
    int changed = *has != (from != NULL) || (from != NULL && memcmp(value, from, len) != 0);
    *has = from != NULL;
    if (from != NULL) memcpy(value, from, len);
    if (changed) g_claims_gen++;
    if (g_key != NULL) g_claims_len = claims_encode(g_claims);
    pthread_mutex_unlock(&g_lock);
}

kms_err_t kms_ratls_set_audit_key(const uint8_t pub[32])
{
    set_claim(&g_has_audit, g_audit_pub, pub, 32);
    return KMS_OK;
}

void kms_ratls_set_domain(const uint8_t id[16]) { set_claim(&g_has_domain, g_domain_id, id, 16); }

/* A copy of the current claims, and their version. */
static size_t claims_copy(uint8_t out[CLAIMS_MAX], uint64_t *gen)
{
    pthread_mutex_lock(&g_lock);
    size_t n = g_key != NULL ? g_claims_len : 0;
    memcpy(out, g_claims, n);
    if (gen != NULL) *gen = g_claims_gen;
    pthread_mutex_unlock(&g_lock);
    return n;
}

kms_err_t kms_ratls_report_data(uint8_t out[64])
{
    uint8_t claims[CLAIMS_MAX];
    size_t n = claims_copy(claims, NULL);
    if (n == 0) return KMS_ERR_NOT_INITIALIZED;
    memset(out, 0, 64);
    return kms_sha256(claims, n, out);
}

/* The quote must carry our own report body: identity from the CPU, binding from our claims. */
static kms_err_t check_quote(const uint8_t *quote, size_t len)
{
    if (len < QUOTE_MIN_LEN || len > QUOTE_MAX) return KMS_ERR_QUOTE_MISMATCH;
    uint16_t version = (uint16_t)(quote[0] | (quote[1] << 8));
    if (version != 3 && version != 4) return KMS_ERR_QUOTE_MISMATCH;
    kms_identity self;
    uint8_t rd[64];
    KMS_RETURN_IF_ERR(platform_self_identity(&self));
    KMS_RETURN_IF_ERR(kms_ratls_report_data(rd));
    const uint8_t *body = quote + QUOTE_BODY_OFF;
    uint64_t attributes = 0;
    for (int i = 7; i >= 0; i--) attributes = (attributes << 8) | body[48 + i];
    if (memcmp(body + 64, self.mrenclave, 32) != 0 || memcmp(body + 128, self.mrsigner, 32) != 0 ||
        (uint16_t)(body[256] | (body[257] << 8)) != self.isvprodid ||
        (uint16_t)(body[258] | (body[259] << 8)) != self.isvsvn || attributes != self.attributes ||
        memcmp(body + 320, rd, 64) != 0)
        return KMS_ERR_QUOTE_MISMATCH;
    return KMS_OK;
}

/* evidence = tag 60000 [ bstr quote, bstr claims ]; caller frees *out. */
static kms_err_t build_evidence(const uint8_t *quote, size_t quote_len, const uint8_t *claims, size_t claims_len,
                                uint8_t **out, size_t *out_len)
{
    uint8_t *ev = malloc(quote_len + claims_len + 16);
    if (ev == NULL) return KMS_ERR_OUT_OF_MEMORY;
    size_t n = 0;
    ev[n++] = 0xd9; ev[n++] = 0xea; ev[n++] = 0x60; /* tag 60000 */
    ev[n++] = 0x82;
    n += cbor_bstr_header(ev + n, quote_len);
    memcpy(ev + n, quote, quote_len);
    n += quote_len;
    n += cbor_bstr_header(ev + n, claims_len);
    memcpy(ev + n, claims, claims_len);
    n += claims_len;
    *out = ev;
    *out_len = n;
    return KMS_OK;
}

static int add_name(X509_NAME *name)
{
    return X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Enclave KMS", -1, -1, 0) &&
           X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Enclave KMS RA-TLS", -1,
                                      -1, 0);
}

/* Add the evidence extension (non-critical, as the interoperable spec says). */
static int add_evidence(X509 *x, const uint8_t *ev, size_t ev_len)
{
    ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.9", 1);
    ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    int ok = oid != NULL && value != NULL && ASN1_OCTET_STRING_set(value, ev, (int)ev_len) &&
             (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, value)) != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(value);
    ASN1_OBJECT_free(oid);
    return ok;
}

/* A self-signed certificate over key carrying ev. Validity is fixed (as Gramine's): the
 * evidence, not the certificate dates, carries freshness, and host time is not trusted. */
static kms_err_t issue(EVP_PKEY *key, const uint8_t *ev, size_t ev_len, uint8_t *cert, size_t cap,
                       size_t *cert_len)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *bc = NULL, *ski = NULL;
    uint8_t serial[16];
    ASN1_INTEGER *sn = NULL;
    BIGNUM *bn = NULL;
    kms_err_t err = KMS_ERR_CRYPTO;
    if (x == NULL || kms_random(serial, sizeof serial) != KMS_OK) goto done;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    if (bn == NULL || (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL || !X509_set_serialNumber(x, sn) ||
        !X509_set_version(x, X509_VERSION_3) || !add_name(X509_get_subject_name(x)) ||
        !X509_set_issuer_name(x, X509_get_subject_name(x)) ||
        !ASN1_TIME_set_string_X509(X509_getm_notBefore(x), "20250101000000Z") ||
        !ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "20491231235959Z") || !X509_set_pubkey(x, key))
        goto done;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if ((bc = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:FALSE")) == NULL ||
        (ski = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash")) == NULL ||
        !X509_add_ext(x, bc, -1) || !X509_add_ext(x, ski, -1) || !add_evidence(x, ev, ev_len) ||
        X509_sign(x, key, EVP_sha256()) <= 0)
        goto done;
    int len = i2d_X509(x, NULL);
    err = KMS_ERR_BUFFER_TOO_SMALL;
    if (len <= 0 || (size_t)len > cap) goto done;
    unsigned char *p = cert;
    i2d_X509(x, &p);
    *cert_len = (size_t)len;
    err = KMS_OK;
done:
    X509_EXTENSION_free(bc);
    X509_EXTENSION_free(ski);
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    X509_free(x);
    return err;
}

/* Replace the current evidence with copies of cert and quote. */
static kms_err_t keep(const uint8_t *cert, size_t cert_len, const uint8_t *quote, size_t quote_len, uint64_t gen)
{
    uint8_t *c = malloc(cert_len), *q = malloc(quote_len);
    if (c == NULL || q == NULL) {
        free(c);
        free(q);
        return KMS_ERR_OUT_OF_MEMORY;
    }
    memcpy(c, cert, cert_len);
    memcpy(q, quote, quote_len);
    pthread_mutex_lock(&g_lock);
    uint8_t *old_c = g_cert, *old_q = g_quote;
    g_cert = c, g_cert_len = cert_len, g_quote = q, g_quote_len = quote_len, g_cert_gen = gen;
    pthread_mutex_unlock(&g_lock);
    free(old_c);
    free(old_q);
    return KMS_OK;
}

kms_err_t kms_ratls_install_quote(const uint8_t *quote, size_t quote_len, uint8_t *cert, size_t cap,
                                  size_t *cert_len)
{
    uint8_t claims[CLAIMS_MAX];
    uint64_t gen = 0;
    size_t claims_len = claims_copy(claims, &gen); /* before the check: the quote must bind exactly these */
    KMS_RETURN_IF_ERR(check_quote(quote, quote_len));
    pthread_mutex_lock(&g_lock);
    EVP_PKEY *key = g_key;
    if (key != NULL) EVP_PKEY_up_ref(key);
    pthread_mutex_unlock(&g_lock);
    if (key == NULL || claims_len == 0) {
        EVP_PKEY_free(key);
        return KMS_ERR_NOT_INITIALIZED;
    }
    uint8_t *ev = NULL;
    size_t ev_len = 0;
    kms_err_t err = build_evidence(quote, quote_len, claims, claims_len, &ev, &ev_len);
    if (err == KMS_OK) err = issue(key, ev, ev_len, cert, cap, cert_len);
    if (err == KMS_OK) err = keep(cert, *cert_len, quote, quote_len, gen);
    free(ev);
    EVP_PKEY_free(key);
    return err;
}

kms_err_t kms_ratls_evidence(uint8_t *cert, size_t cert_cap, size_t *cert_len, uint8_t *quote,
                             size_t quote_cap, size_t *quote_len)
{
    kms_err_t err = KMS_ERR_EVIDENCE_NOT_READY;
    pthread_mutex_lock(&g_lock);
    if (g_cert != NULL && g_cert_gen == g_claims_gen) { /* stale after a claim changed: re-quote */
        err = KMS_ERR_BUFFER_TOO_SMALL;
        if (g_cert_len <= cert_cap && g_quote_len <= quote_cap) {
            memcpy(cert, g_cert, g_cert_len);
            memcpy(quote, g_quote, g_quote_len);
            *cert_len = g_cert_len;
            *quote_len = g_quote_len;
            err = KMS_OK;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_ratls_use(SSL *ssl)
{
    kms_err_t err = KMS_ERR_EVIDENCE_NOT_READY;
    pthread_mutex_lock(&g_lock);
    if (g_cert != NULL && g_key != NULL) {
        const unsigned char *p = g_cert;
        X509 *x = d2i_X509(NULL, &p, (long)g_cert_len);
        err = x != NULL && SSL_use_certificate(ssl, x) == 1 && SSL_use_PrivateKey(ssl, g_key) == 1 &&
                      SSL_check_private_key(ssl) == 1
                  ? KMS_OK
                  : KMS_ERR_CRYPTO;
        X509_free(x);
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}
