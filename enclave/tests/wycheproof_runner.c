/*
 * wycheproof_runner - feeds Wycheproof cases to the enclave's crypto module (crypto.h).
 * Test code, built with ASan + UBSan (make build/test/wycheproof_runner). Driven by
 * tests/integration/test_wycheproof.py, which converts the JSON files to this format.
 *
 * Input: one case per line, fields separated by single spaces; byte strings in hex, "-" for
 * an empty one. Keys arrive as PKCS#8 / SubjectPublicKeyInfo DER and are loaded through
 * kms_pkey_from_*_der; every operation goes through a kms_* function.
 *
 *   gcm        ID KEY IV AAD MSG CT TAG
 *   ecdsa      ID CURVE FMT SPKI MSG SIG          CURVE p256|k1|p384, FMT der|p1363
 *   eddsa      ID SPKI MSG SIG
 *   eddsa_sign ID PKCS8 MSG SIG                   sign, compare exactly, verify
 *   pss        ID RSA MD MGF1MD SALTLEN SPKI MSG SIG   RSA rsa2048|rsa3072|rsa4096
 *   pkcs1      ID RSA SPKI MSG SIG                (SHA-256)
 *   hmac       ID MD KEY MSG TAG                  MD sha1|sha224|sha256|sha384|sha512
 *   xdh        ID PKCS8 SPKI SHARED               X25519
 *   ecdh       ID CURVE PKCS8 SPKI SHARED
 *   oaep       ID RSA MD MGF1MD PKCS8 LABEL CT MSG
 *
 * Output: one line per case, "ID VERDICT [detail]". VERDICT is
 *   valid        the operation succeeded (and produced the expected bytes)
 *   invalid      refused with the contract's error for that failure
 *   unsupported  refused up front as outside the documented parameter range
 *   mismatch     succeeded but produced other bytes, or two API paths disagreed
 *   error        an unexpected error code (detail: the code) or a malformed line
 * Exit status: 0 when every line was read (verdicts are judged by the driver).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

#define MAX_FIELDS 12

typedef struct {
    uint8_t *p;
    size_t n;
} bytes;

typedef struct {
    const char *id;
    char *f[MAX_FIELDS];
    int nf;
    bytes b[MAX_FIELDS]; /* hex decode of f[i], filled on demand */
} kase;

static void emit(const kase *c, const char *verdict, long detail)
{
    if (detail)
        printf("%s %s %ld\n", c->id, verdict, detail);
    else
        printf("%s %s\n", c->id, verdict);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decode field i ("-" = empty) into c->b[i]. 0 on success. The buffer always exists. */
static int hex_field(kase *c, int i)
{
    const char *s = c->f[i];
    size_t len = strcmp(s, "-") == 0 ? 0 : strlen(s);

    if (len % 2) return -1;
    c->b[i].p = malloc(len / 2 + 1);
    if (c->b[i].p == NULL) return -1;
    c->b[i].n = len / 2;
    for (size_t k = 0; k < len / 2; k++) {
        int hi = hexval(s[2 * k]), lo = hexval(s[2 * k + 1]);
        if (hi < 0 || lo < 0) return -1;
        c->b[i].p[k] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int decode_all(kase *c, int first)
{
    for (int i = first; i < c->nf; i++)
        if (hex_field(c, i) != 0) return -1;
    return 0;
}

static int name_kind(const char *s, kms_pkey_kind *kind)
{
    static const struct {
        const char *name;
        kms_pkey_kind kind;
    } t[] = {{"p256", KMS_PKEY_EC_P256},   {"p384", KMS_PKEY_EC_P384},
             {"k1", KMS_PKEY_EC_SECP256K1}, {"rsa2048", KMS_PKEY_RSA_2048},
             {"rsa3072", KMS_PKEY_RSA_3072}, {"rsa4096", KMS_PKEY_RSA_4096}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].name) == 0) {
            *kind = t[i].kind;
            return 0;
        }
    return -1;
}

static int name_md(const char *s, kms_md *md)
{
    static const struct {
        const char *name;
        kms_md md;
    } t[] = {{"sha1", KMS_MD_SHA1},     {"sha224", KMS_MD_SHA224}, {"sha256", KMS_MD_SHA256},
             {"sha384", KMS_MD_SHA384}, {"sha512", KMS_MD_SHA512}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].name) == 0) {
            *md = t[i].md;
            return 0;
        }
    return -1;
}

static int same(const uint8_t *a, size_t an, const bytes *b)
{
    return an == b->n && (an == 0 || memcmp(a, b->p, an) == 0);
}

/* Map a verify-style result: KMS_OK valid, `refusal` invalid, anything else error. */
static void verdict_of(const kase *c, kms_err_t r, kms_err_t refusal)
{
    if (r == KMS_OK)
        emit(c, "valid", 0);
    else if (r == refusal)
        emit(c, "invalid", 0);
    else
        emit(c, "error", (long)r);
}

/* ---- one handler per operation; f[0] is the op name, f[1] the id ------------------------- */

static void run_gcm(kase *c)
{
    bytes *key = &c->b[2], *iv = &c->b[3], *aad = &c->b[4], *msg = &c->b[5], *ct = &c->b[6],
          *tag = &c->b[7];
    uint8_t *pt = malloc(ct->n + 1), *ct2 = malloc(msg->n + 1), tag2[KMS_GCM_TAG_LEN];
    kms_err_t ro, rs;

    if (pt == NULL || ct2 == NULL) abort();
    ro = kms_aes_gcm_open(key->p, key->n, iv->p, iv->n, aad->p, aad->n, ct->p, ct->n, tag->p,
                          tag->n, pt);
    rs = kms_aes_gcm_seal(key->p, key->n, iv->p, iv->n, aad->p, aad->n, msg->p, msg->n, ct2,
                          tag2);
    if (ro == KMS_OK && !same(pt, ct->n, msg))
        emit(c, "mismatch", 0);
    else if (ro == KMS_OK && (rs != KMS_OK || !same(ct2, msg->n, ct) || !same(tag2, 16, tag)))
        emit(c, "mismatch", 0); /* open accepted, but seal does not reproduce ct || tag */
    else if (ro != KMS_OK && ro != KMS_ERR_INVALID_CIPHERTEXT)
        emit(c, "error", (long)ro);
    else if (ro != KMS_OK && rs == KMS_ERR_INVALID_ARGUMENT)
        emit(c, "unsupported", 0); /* key/IV length outside the documented range */
    else
        verdict_of(c, ro, KMS_ERR_INVALID_CIPHERTEXT);
    free(pt);
    free(ct2);
}

static kms_err_t load_pub(kms_pkey_kind kind, const bytes *der, EVP_PKEY **key)
{
    return kms_pkey_from_public_der(kind, der->p, der->n, key);
}

static void run_ecdsa(kase *c)
{
    kms_pkey_kind kind;
    kms_sig_format fmt = strcmp(c->f[3], "p1363") == 0 ? KMS_SIGFMT_P1363 : KMS_SIGFMT_DER;
    kms_sig_alg alg;
    EVP_PKEY *key = NULL;
    uint8_t dg[64];
    unsigned int dl = 0;
    kms_err_t r, rd;

    if (name_kind(c->f[2], &kind) != 0){
        emit(c, "error", 0);
        return;
    }
    alg = kind == KMS_PKEY_EC_P384 ? KMS_SIG_ECDSA_SHA384 : KMS_SIG_ECDSA_SHA256;
    if ((r = load_pub(kind, &c->b[4], &key)) != KMS_OK) {
        emit(c, "error", (long)r);
        return;
    }
    r = kms_verify(key, alg, 0, c->b[5].p, c->b[5].n, fmt, c->b[6].p, c->b[6].n);
    /* Digest mode must agree with message mode (the digest made by OpenSSL directly). */
    EVP_Digest(c->b[5].n ? c->b[5].p : (const uint8_t *)"", c->b[5].n, dg, &dl,
               alg == KMS_SIG_ECDSA_SHA384 ? EVP_sha384() : EVP_sha256(), NULL);
    rd = kms_verify(key, alg, 1, dg, dl, fmt, c->b[6].p, c->b[6].n);
    if (r != rd)
        emit(c, "mismatch", (long)rd);
    else
        verdict_of(c, r, KMS_ERR_INVALID_SIGNATURE);
    EVP_PKEY_free(key);
}

static void run_eddsa(kase *c)
{
    EVP_PKEY *key = NULL;
    kms_err_t r;

    if ((r = load_pub(KMS_PKEY_ED25519, &c->b[2], &key)) != KMS_OK) {
        emit(c, "error", (long)r);
        return;
    }
    r = kms_verify(key, KMS_SIG_ED25519, 0, c->b[3].p, c->b[3].n, KMS_SIGFMT_DER, c->b[4].p,
                   c->b[4].n);
    verdict_of(c, r, KMS_ERR_INVALID_SIGNATURE);
    EVP_PKEY_free(key);
}

static void run_eddsa_sign(kase *c)
{
    EVP_PKEY *key = NULL;
    uint8_t sig[128];
    size_t n = 0;
    kms_err_t r;

    r = kms_pkey_from_private_der(KMS_PKEY_ED25519, c->b[2].p, c->b[2].n, &key);
    if (r == KMS_OK)
        r = kms_sign(key, KMS_SIG_ED25519, 0, c->b[3].p, c->b[3].n, KMS_SIGFMT_DER, sig,
                     sizeof sig, &n);
    if (r != KMS_OK)
        emit(c, "error", (long)r);
    else if (!same(sig, n, &c->b[4]))
        emit(c, "mismatch", 0);
    else
        verdict_of(c, kms_verify(key, KMS_SIG_ED25519, 0, c->b[3].p, c->b[3].n,
                                 KMS_SIGFMT_DER, sig, n),
                   KMS_ERR_INVALID_SIGNATURE);
    EVP_PKEY_free(key);
}

static void run_pss(kase *c)
{
    kms_pkey_kind kind;
    kms_md md, mgf;
    EVP_PKEY *key = NULL;
    kms_err_t r;

    if (name_kind(c->f[2], &kind) != 0 || name_md(c->f[3], &md) != 0 ||
        name_md(c->f[4], &mgf) != 0) {
        emit(c, "error", 0);
        return;
    }
    if ((r = load_pub(kind, &c->b[6], &key)) != KMS_OK) {
        emit(c, "error", (long)r);
        return;
    }
    r = kms_verify_rsa_pss(key, md, mgf, atoi(c->f[5]), c->b[7].p, c->b[7].n, c->b[8].p,
                           c->b[8].n);
    verdict_of(c, r, KMS_ERR_INVALID_SIGNATURE);
    EVP_PKEY_free(key);
}

static void run_pkcs1(kase *c)
{
    kms_pkey_kind kind;
    EVP_PKEY *key = NULL;
    uint8_t dg[32];
    kms_err_t r, rd;

    if (name_kind(c->f[2], &kind) != 0) {
        emit(c, "error", 0);
        return;
    }
    if ((r = load_pub(kind, &c->b[3], &key)) != KMS_OK) {
        emit(c, "error", (long)r);
        return;
    }
    r = kms_verify(key, KMS_SIG_RSA_PKCS1_SHA256, 0, c->b[4].p, c->b[4].n, KMS_SIGFMT_DER,
                   c->b[5].p, c->b[5].n);
    rd = kms_sha256(c->b[4].p, c->b[4].n, dg);
    if (rd == KMS_OK)
        rd = kms_verify(key, KMS_SIG_RSA_PKCS1_SHA256, 1, dg, sizeof dg, KMS_SIGFMT_DER,
                        c->b[5].p, c->b[5].n);
    if (r != rd)
        emit(c, "mismatch", (long)rd);
    else
        verdict_of(c, r, KMS_ERR_INVALID_SIGNATURE);
    EVP_PKEY_free(key);
}

static void run_hmac(kase *c)
{
    kms_md md;
    uint8_t mac[64];
    size_t n = 0;
    kms_err_t r, rm;

    if (name_md(c->f[2], &md) != 0) {
        emit(c, "error", 0);
        return;
    }
    r = kms_hmac_verify(md, c->b[3].p, c->b[3].n, c->b[4].p, c->b[4].n, c->b[5].p, c->b[5].n);
    rm = kms_hmac(md, c->b[3].p, c->b[3].n, c->b[4].p, c->b[4].n, mac, sizeof mac, &n);
    /* The full MAC must agree with the verdict on its prefix. */
    if (rm != KMS_OK || (c->b[5].n <= n && (memcmp(mac, c->b[5].p, c->b[5].n) == 0) !=
                                               (r == KMS_OK)))
        emit(c, "mismatch", (long)rm);
    else
        verdict_of(c, r, KMS_ERR_INVALID_SIGNATURE);
}

/* xdh / ecdh: kind, then fields PKCS8 SPKI SHARED starting at `first`. */
static void run_agree(kase *c, kms_pkey_kind kind, int first)
{
    EVP_PKEY *priv = NULL, *peer = NULL;
    uint8_t secret[128];
    size_t n = 0;
    kms_err_t r;

    r = kms_pkey_from_private_der(kind, c->b[first].p, c->b[first].n, &priv);
    if (r != KMS_OK) {
        emit(c, "error", (long)r);
        return;
    }
    r = load_pub(kind, &c->b[first + 1], &peer);
    if (r == KMS_OK) r = kms_derive(priv, peer, secret, sizeof secret, &n);
    if (r == KMS_OK && !same(secret, n, &c->b[first + 2]))
        emit(c, "mismatch", 0);
    else
        verdict_of(c, r, KMS_ERR_INVALID_KEY);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(peer);
}

static void run_oaep(kase *c)
{
    kms_pkey_kind kind;
    kms_md md, mgf;
    EVP_PKEY *key = NULL;
    uint8_t pt[512], ct2[512];
    size_t n = 0, n2 = 0;
    kms_err_t r, r2;
    bytes *label = &c->b[6], *msg = &c->b[8];

    if (name_kind(c->f[2], &kind) != 0 || name_md(c->f[3], &md) != 0 ||
        name_md(c->f[4], &mgf) != 0) {
        emit(c, "error", 0);
        return;
    }
    if ((r = kms_pkey_from_private_der(kind, c->b[5].p, c->b[5].n, &key)) != KMS_OK) {
        emit(c, "error", (long)r);
        return;
    }
    r = kms_rsa_oaep_decrypt(key, md, mgf, label->p, label->n, c->b[7].p, c->b[7].n, pt,
                             sizeof pt, &n);
    if (r == KMS_OK && !same(pt, n, msg)) {
        emit(c, "mismatch", 0);
    } else if (r == KMS_OK) { /* round trip the expected message through encrypt too */
        r2 = kms_rsa_oaep_encrypt(key, md, mgf, label->p, label->n, msg->p, msg->n, ct2,
                                  sizeof ct2, &n2);
        if (r2 == KMS_OK)
            r2 = kms_rsa_oaep_decrypt(key, md, mgf, label->p, label->n, ct2, n2, pt,
                                      sizeof pt, &n);
        if (r2 != KMS_OK || !same(pt, n, msg))
            emit(c, "mismatch", (long)r2);
        else
            emit(c, "valid", 0);
    } else {
        verdict_of(c, r, KMS_ERR_INVALID_CIPHERTEXT);
    }
    EVP_PKEY_free(key);
}

/* ---- driver ---------------------------------------------------------------------------- */

static void run_xdh(kase *c)
{
    run_agree(c, KMS_PKEY_X25519, 2);
}

static void run_ecdh(kase *c)
{
    kms_pkey_kind kind;

    if (name_kind(c->f[2], &kind) != 0)
        emit(c, "error", 0);
    else
        run_agree(c, kind, 3);
}

static void dispatch(kase *c)
{
    static const struct {
        const char *op;
        int nf;        /* fields on the line, op and id included */
        int first_hex; /* fields from here on are hex */
        void (*run)(kase *c);
    } ops[] = {{"gcm", 8, 2, run_gcm},         {"ecdsa", 7, 4, run_ecdsa},
               {"eddsa", 5, 2, run_eddsa},     {"eddsa_sign", 5, 2, run_eddsa_sign},
               {"pss", 9, 6, run_pss},         {"pkcs1", 6, 3, run_pkcs1},
               {"hmac", 6, 3, run_hmac},       {"xdh", 5, 2, run_xdh},
               {"ecdh", 6, 3, run_ecdh},       {"oaep", 9, 5, run_oaep}};

    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(c->f[0], ops[i].op) != 0) continue;
        if (c->nf != ops[i].nf || decode_all(c, ops[i].first_hex) != 0)
            emit(c, "error", 0);
        else
            ops[i].run(c);
        return;
    }
    emit(c, "error", 0);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;

    while ((got = getline(&line, &cap, stdin)) > 0) {
        kase c;
        char *save = NULL, *tok;

        memset(&c, 0, sizeof c);
        if (line[got - 1] == '\n') line[got - 1] = 0;
        for (tok = strtok_r(line, " ", &save); tok != NULL && c.nf < MAX_FIELDS;
             tok = strtok_r(NULL, " ", &save))
            c.f[c.nf++] = tok;
        if (c.nf == 0) continue;
        c.id = c.nf > 1 ? c.f[1] : "?";
        dispatch(&c);
        for (int i = 0; i < MAX_FIELDS; i++) free(c.b[i].p);
        fflush(stdout);
    }
    free(line);
    return 0;
}
