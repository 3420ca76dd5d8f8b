/*
 * collateral.c - CRLs, the TCB signing chain and the signed TCB Info / QE Identity of a quote, verified
 * with OpenSSL against the quote's own PCK chain (collateral.h); the JSON rules are tcbinfo.c's.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "collateral.h"
#include "crypto.h"
#include "tcbinfo.h"

#define MAX_PEM 8192
#define MAX_CRL 8192
#define TCB_SIGNING_CN "TCB Signing"

kms_err_t kms_pem_certs(const uint8_t *pem, size_t len, X509 **out, int n)
{
    BIO *bio = len > 0 && len <= MAX_PEM ? BIO_new_mem_buf(pem, (int)len) : NULL;
    kms_err_t err = KMS_ERR_PEER_MISMATCH;
    char rest[2];
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (bio == NULL) goto done;
    for (int i = 0; i < n; i++)
        if ((out[i] = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) goto done;
    int got = BIO_read(bio, rest, sizeof rest); /* nothing after the last one but a NUL or a newline */
    if (got <= 0 || (got == 1 && (rest[0] == '\0' || rest[0] == '\n'))) err = KMS_OK;
done:
    for (int i = 0; err != KMS_OK && i < n; i++) X509_free(out[i]), out[i] = NULL;
    BIO_free(bio);
    ERR_clear_error();
    return err;
}

/* A DER CRL that is the whole of its len bytes, or NULL. */
static X509_CRL *crl_of(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509_CRL *crl = len > 0 && len <= MAX_CRL ? d2i_X509_CRL(NULL, &p, (long)len) : NULL;
    if (crl != NULL && p != der + len) X509_CRL_free(crl), crl = NULL;
    return crl;
}

/* t <= now (sign -1) or t >= now (sign 1); a malformed time is neither. */
static int time_vs(const ASN1_TIME *t, int64_t now, int sign)
{
    int c = t != NULL ? ASN1_TIME_cmp_time_t(t, (time_t)now) : -2;
    return c == 0 || c == sign;
}

/* Issued by issuer (name and signature) and current at now. */
static int crl_current(X509_CRL *crl, X509 *issuer, int64_t now)
{
    EVP_PKEY *key = X509_get0_pubkey(issuer);
    return crl != NULL && key != NULL && X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) == 0 &&
           X509_CRL_verify(crl, key) == 1 && time_vs(X509_CRL_get0_lastUpdate(crl), now, -1) &&
           time_vs(X509_CRL_get0_nextUpdate(crl), now, 1);
}

static int revoked(X509_CRL *crl, X509 *cert)
{
    X509_REVOKED *entry = NULL;
    return X509_CRL_get0_by_cert(crl, &entry, cert) != 0;
}

/* The PCK CRL issuer chain: the quote's CA (subject and key) and the quote's root (byte for byte). */
static int crl_issuers_match(const QuoteCollateral *c, const kms_pck_chain *chain)
{
    X509 *certs[2];
    if (kms_pem_certs(c->pck_crl_issuer_chain.bytes, c->pck_crl_issuer_chain.size, certs, 2) != KMS_OK) return 0;
    int ok = X509_NAME_cmp(X509_get_subject_name(certs[0]), X509_get_subject_name(chain->ca)) == 0 &&
             EVP_PKEY_eq(X509_get0_pubkey(certs[0]), X509_get0_pubkey(chain->ca)) == 1 && X509_cmp(certs[1], chain->root) == 0;
    X509_free(certs[0]);
    X509_free(certs[1]);
    return ok;
}

static int cn_contains(X509 *cert, const char *want)
{
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    return n > 0 && n < (int)sizeof cn && strstr(cn, want) != NULL;
}

/* signer, issued by root and valid at now, as a chain of exactly two. */
static int chains_to(X509 *signer, X509 *root, int64_t now)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = store != NULL && ctx != NULL && X509_STORE_add_cert(store, root) == 1 &&
             X509_STORE_CTX_init(ctx, store, signer, NULL) == 1;
    if (ok) X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now);
    ok = ok && X509_verify_cert(ctx) == 1 && sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) == 2;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

/* A signed JSON body: its issuer chain (PEM) is a TCB signing certificate of the quote's root, not
 * revoked, and its r || s signature verifies over the exact body bytes. */
static kms_err_t signed_body(const uint8_t *pem, size_t pem_len, const uint8_t *body, size_t body_len,
                             const uint8_t *sig, size_t sig_len, const kms_pck_chain *chain, X509_CRL *root_crl,
                             int64_t now)
{
    X509 *certs[2];
    if (sig_len != 64 || body_len == 0 || body_len > KMS_TCB_BODY_MAX) return KMS_ERR_PEER_MISMATCH;
    KMS_RETURN_IF_ERR(kms_pem_certs(pem, pem_len, certs, 2));
    int ok = X509_cmp(certs[1], chain->root) == 0 && cn_contains(certs[0], TCB_SIGNING_CN) &&
             chains_to(certs[0], chain->root, now) && !revoked(root_crl, certs[0]) &&
             kms_verify(X509_get0_pubkey(certs[0]), KMS_SIG_ECDSA_SHA256, 0, body, body_len, KMS_SIGFMT_P1363, sig,
                        sig_len) == KMS_OK;
    X509_free(certs[0]);
    X509_free(certs[1]);
    ERR_clear_error();
    return ok ? KMS_OK : KMS_ERR_PEER_MISMATCH;
}

/* The CRLs: both current and from the right issuer; neither the CA nor the leaf revoked. */
static kms_err_t check_crls(const QuoteCollateral *c, const kms_pck_chain *chain, int64_t now, X509_CRL **root_crl)
{
    X509_CRL *pck_crl = crl_of(c->pck_crl.bytes, c->pck_crl.size);
    *root_crl = crl_of(c->root_ca_crl.bytes, c->root_ca_crl.size);
    int ok = crl_current(*root_crl, chain->root, now) && crl_current(pck_crl, chain->ca, now) &&
             !revoked(*root_crl, chain->ca) && !revoked(pck_crl, chain->leaf) && crl_issuers_match(c, chain);
    X509_CRL_free(pck_crl);
    ERR_clear_error();
    return ok ? KMS_OK : KMS_ERR_PEER_MISMATCH;
}

kms_err_t kms_collateral_check(const kms_pck_chain *chain, const uint8_t qe_report[384], const QuoteCollateral *c,
                               int64_t now, uint32_t *status)
{
    X509_CRL *root_crl = NULL;
    kms_pck_tcb pck;
    uint32_t platform = 0, qe = 0;
    kms_err_t err = KMS_ERR_PEER_MISMATCH;
    *status = 0;
    if (c == NULL) return err;
    KMS_GOTO_IF_ERR(err, check_crls(c, chain, now, &root_crl), done);
    KMS_GOTO_IF_ERR(err, kms_pck_tcb_of(chain->leaf, &pck), done);
    KMS_GOTO_IF_ERR(err, signed_body(c->tcb_info_issuer_chain.bytes, c->tcb_info_issuer_chain.size, c->tcb_info.bytes,
                                     c->tcb_info.size, c->tcb_info_signature.bytes, c->tcb_info_signature.size, chain,
                                     root_crl, now), done);
    KMS_GOTO_IF_ERR(err, kms_tcb_info_status(c->tcb_info.bytes, c->tcb_info.size, &pck, now, &platform), done);
    KMS_GOTO_IF_ERR(err, signed_body(c->qe_identity_issuer_chain.bytes, c->qe_identity_issuer_chain.size,
                                     c->qe_identity.bytes, c->qe_identity.size, c->qe_identity_signature.bytes,
                                     c->qe_identity_signature.size, chain, root_crl, now), done);
    KMS_GOTO_IF_ERR(err, kms_qe_identity_status(c->qe_identity.bytes, c->qe_identity.size, qe_report, now, &qe), done);
    *status = kms_tcb_converge(platform, qe);
    err = *status == KMS_TCB_REVOKED ? KMS_ERR_PEER_MISMATCH : KMS_OK;
done:
    X509_CRL_free(root_crl);
    ERR_clear_error();
    return err;
}
