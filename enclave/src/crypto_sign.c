/*
 * crypto_sign.c - signatures: ECDSA (DER / P1363, low-s on secp256k1), Ed25519, RSA-PSS and
 * RSA PKCS#1 v1.5, message or digest mode. Trusted code; contract in crypto.h.
 *
 * ECDSA and RSA go through EVP_PKEY_sign/verify over a digest (computed here in message
 * mode), so both modes share one path. Ed25519 uses the one-shot EVP_DigestSign/Verify.
 */
#include <limits.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>

#include "crypto.h"
#include "crypto_internal.h"

/* r || s for P-384 is 96 bytes; its DER is at most 104. Leave room. */
#define KMS_ECDSA_MAX 128

static const uint8_t kms_empty[1] = {0};

/* ---- algorithm table ---------------------------------------------------------------------- */

static int alg_is_ecdsa(kms_sig_alg alg)
{
    return alg == KMS_SIG_ECDSA_SHA256 || alg == KMS_SIG_ECDSA_SHA384;
}

static int alg_is_pss(kms_sig_alg alg)
{
    return alg == KMS_SIG_RSA_PSS_SHA256 || alg == KMS_SIG_RSA_PSS_SHA384 ||
           alg == KMS_SIG_RSA_PSS_SHA512;
}

static int alg_is_rsa(kms_sig_alg alg)
{
    return alg_is_pss(alg) || alg == KMS_SIG_RSA_PKCS1_SHA256 ||
           alg == KMS_SIG_RSA_PKCS1_SHA384 || alg == KMS_SIG_RSA_PKCS1_SHA512;
}

/* The digest of alg, or NULL for Ed25519 / an unknown value. */
static const EVP_MD *alg_md(kms_sig_alg alg)
{
    switch (alg) {
    case KMS_SIG_ECDSA_SHA256:
    case KMS_SIG_RSA_PSS_SHA256:
    case KMS_SIG_RSA_PKCS1_SHA256:
        return EVP_sha256();
    case KMS_SIG_ECDSA_SHA384:
    case KMS_SIG_RSA_PSS_SHA384:
    case KMS_SIG_RSA_PKCS1_SHA384:
        return EVP_sha384();
    case KMS_SIG_RSA_PSS_SHA512:
    case KMS_SIG_RSA_PKCS1_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

static int alg_fits(kms_sig_alg alg, kms_pkey_kind kind)
{
    if (alg == KMS_SIG_ECDSA_SHA256)
        return kind == KMS_PKEY_EC_P256 || kind == KMS_PKEY_EC_SECP256K1;
    if (alg == KMS_SIG_ECDSA_SHA384) return kind == KMS_PKEY_EC_P384;
    if (alg == KMS_SIG_ED25519) return kind == KMS_PKEY_ED25519;
    return alg_is_rsa(alg) && kms_crypto_kind_is_rsa(kind);
}

/* Bytes of r (and of s) in a P1363 signature: the group order's size. */
static size_t ecdsa_field(kms_pkey_kind kind)
{
    return kind == KMS_PKEY_EC_P384 ? 48 : 32;
}

/* Argument checks shared by kms_sign and kms_verify (see crypto.h for the codes). */
static kms_err_t sig_check(EVP_PKEY *key, kms_sig_alg alg, int is_digest, const uint8_t *msg,
                           size_t msg_len, kms_sig_format fmt, kms_pkey_kind *kind)
{
    if (key == NULL || !KMS_CRYPTO_BUF_OK(msg, msg_len)) return KMS_ERR_INVALID_ARGUMENT;
    if (alg != KMS_SIG_ED25519 && alg_md(alg) == NULL) return KMS_ERR_INVALID_ARGUMENT;
    if (alg_is_ecdsa(alg) && fmt != KMS_SIGFMT_DER && fmt != KMS_SIGFMT_P1363)
        return KMS_ERR_INVALID_ARGUMENT;
    *kind = kms_pkey_kind_of(key);
    if (!alg_fits(alg, *kind)) return KMS_ERR_INVALID_KEY_USAGE;
    if (alg == KMS_SIG_ED25519) return is_digest ? KMS_ERR_UNSUPPORTED : KMS_OK;
    if (is_digest && msg_len != (size_t)EVP_MD_get_size(alg_md(alg)))
        return KMS_ERR_INVALID_ARGUMENT;
    return KMS_OK;
}

/* The digest to sign: msg itself in digest mode, else md(msg). out has KMS_CRYPTO_MAX_MD. */
static kms_err_t sig_digest(const EVP_MD *md, int is_digest, const uint8_t *msg,
                            size_t msg_len, uint8_t *out, size_t *out_len)
{
    unsigned int n = 0;

    if (is_digest) {
        memcpy(out, msg, msg_len); /* msg_len == digest size, checked by sig_check */
        *out_len = msg_len;
        return KMS_OK;
    }
    if (EVP_Digest(msg_len ? msg : kms_empty, msg_len, out, &n, md, NULL) != 1)
        return KMS_ERR_CRYPTO;
    *out_len = n;
    return KMS_OK;
}

/*
 * A sign/verify context: signature digest md and, for RSA, the padding (PSS with salt_len
 * and MGF1 mgf1, else PKCS#1 v1.5). Returns 1 on success; the caller frees *out always.
 */
static int sig_ctx(EVP_PKEY *key, int verify, const EVP_MD *md, int rsa, int pss,
                   int salt_len, const EVP_MD *mgf1, EVP_PKEY_CTX **out)
{
    *out = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (*out == NULL) return 0;
    if ((verify ? EVP_PKEY_verify_init(*out) : EVP_PKEY_sign_init(*out)) != 1) return 0;
    if (rsa && EVP_PKEY_CTX_set_rsa_padding(*out, pss ? RSA_PKCS1_PSS_PADDING
                                                      : RSA_PKCS1_PADDING) != 1)
        return 0;
    if (EVP_PKEY_CTX_set_signature_md(*out, md) != 1) return 0;
    if (pss && (EVP_PKEY_CTX_set_rsa_mgf1_md(*out, mgf1) != 1 ||
                EVP_PKEY_CTX_set_rsa_pss_saltlen(*out, salt_len) != 1))
        return 0;
    return 1;
}

/* ---- ECDSA encodings ---------------------------------------------------------------------- */

/* BIP-62 low-s: if s > n/2 then s = n - s (secp256k1). Returns 1 on success. */
static int ecdsa_low_s(ECDSA_SIG *es)
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name_ex(NULL, NULL, NID_secp256k1);
    const BIGNUM *order = group ? EC_GROUP_get0_order(group) : NULL, *r = NULL, *s = NULL;
    BIGNUM *half = BN_new(), *nr = NULL, *ns = NULL;
    int ok = 0;

    if (order == NULL || half == NULL || BN_rshift1(half, order) != 1) goto done;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_cmp(s, half) <= 0) {
        ok = 1;
        goto done;
    }
    if ((nr = BN_dup(r)) == NULL || (ns = BN_new()) == NULL || BN_sub(ns, order, s) != 1 ||
        ECDSA_SIG_set0(es, nr, ns) != 1)
        goto done;
    nr = ns = NULL; /* owned by es now */
    ok = 1;
done:
    BN_free(nr);
    BN_free(ns);
    BN_free(half);
    EC_GROUP_free(group);
    return ok;
}

/* OpenSSL's DER signature -> (low-s if asked) DER or P1363 into sig. */
static kms_err_t ecdsa_finish(const uint8_t *der, size_t der_len, size_t field, int low_s,
                              kms_sig_format fmt, uint8_t *sig, size_t cap, size_t *sig_len)
{
    kms_err_t err = KMS_ERR_CRYPTO;
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *r = NULL, *s = NULL;
    uint8_t out[KMS_ECDSA_MAX];
    unsigned char *q = out;
    int n;

    if (es == NULL || (low_s && !ecdsa_low_s(es))) goto done;
    if (fmt == KMS_SIGFMT_P1363) {
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, out, (int)field) < 0 || BN_bn2binpad(s, out + field, (int)field) < 0)
            goto done;
        err = kms_crypto_emit(out, 2 * field, sig, cap, sig_len);
        goto done;
    }
    n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || (size_t)n > sizeof out || i2d_ECDSA_SIG(es, &q) != n) goto done;
    err = kms_crypto_emit(out, (size_t)n, sig, cap, sig_len);
done:
    ECDSA_SIG_free(es);
    return err;
}

/* r || s (exactly 2 * field bytes) -> DER into der[KMS_ECDSA_MAX]. 1 on success. */
static int p1363_to_der(const uint8_t *sig, size_t sig_len, size_t field, uint8_t *der,
                        size_t *der_len)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *q = der;
    int n = 0, ok = 0;

    if (sig == NULL || sig_len != 2 * field) goto done;
    if ((r = BN_bin2bn(sig, (int)field, NULL)) == NULL ||
        (s = BN_bin2bn(sig + field, (int)field, NULL)) == NULL ||
        (es = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(es, r, s) != 1)
        goto done;
    r = s = NULL; /* owned by es now */
    n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || (size_t)n > KMS_ECDSA_MAX || i2d_ECDSA_SIG(es, &q) != n) goto done;
    *der_len = (size_t)n;
    ok = 1;
done:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return ok;
}

/* ---- Ed25519 ------------------------------------------------------------------------------ */

/* Sign (vsig == NULL: out/out_len receive the signature) or verify vsig. */
static kms_err_t ed25519_op(EVP_PKEY *key, const uint8_t *msg, size_t msg_len, uint8_t *out,
                            size_t *out_len, const uint8_t *vsig, size_t vsig_len)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    const uint8_t *m = msg_len ? msg : kms_empty;
    kms_err_t err = vsig ? KMS_ERR_INVALID_SIGNATURE : KMS_ERR_CRYPTO;

    if (mctx == NULL) {
        err = KMS_ERR_CRYPTO;
        goto done;
    }
    if (vsig == NULL) {
        if (EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, key, NULL) == 1 &&
            EVP_DigestSign(mctx, out, out_len, m, msg_len) == 1)
            err = KMS_OK;
    } else if (EVP_DigestVerifyInit_ex(mctx, NULL, NULL, NULL, NULL, key, NULL) == 1 &&
               EVP_DigestVerify(mctx, vsig, vsig_len, m, msg_len) == 1) {
        err = KMS_OK;
    }
done:
    EVP_MD_CTX_free(mctx);
    return err;
}

/* ---- public API ----------------------------------------------------------------------------- */

kms_err_t kms_sign(EVP_PKEY *key, kms_sig_alg alg, int is_digest, const uint8_t *msg,
                   size_t msg_len, kms_sig_format fmt, uint8_t *sig, size_t sig_cap,
                   size_t *sig_len)
{
    kms_err_t err;
    EVP_PKEY_CTX *ctx = NULL;
    kms_pkey_kind kind = 0;
    uint8_t dgst[KMS_CRYPTO_MAX_MD];
    uint8_t raw[KMS_CRYPTO_MAX_RSA];
    size_t dlen = 0, rlen = sizeof raw;

    if (sig_len == NULL || !KMS_CRYPTO_BUF_OK(sig, sig_cap)) {
        err = KMS_ERR_INVALID_ARGUMENT;
        goto done;
    }
    KMS_GOTO_IF_ERR(err, sig_check(key, alg, is_digest, msg, msg_len, fmt, &kind), done);
    if (alg == KMS_SIG_ED25519) {
        KMS_GOTO_IF_ERR(err, ed25519_op(key, msg, msg_len, raw, &rlen, NULL, 0), done);
        err = kms_crypto_emit(raw, rlen, sig, sig_cap, sig_len);
        goto done;
    }
    KMS_GOTO_IF_ERR(err, sig_digest(alg_md(alg), is_digest, msg, msg_len, dgst, &dlen), done);
    err = KMS_ERR_CRYPTO;
    if (!sig_ctx(key, 0, alg_md(alg), alg_is_rsa(alg), alg_is_pss(alg), RSA_PSS_SALTLEN_DIGEST,
                 alg_md(alg), &ctx) ||
        EVP_PKEY_sign(ctx, raw, &rlen, dgst, dlen) != 1)
        goto done;
    if (alg_is_ecdsa(alg))
        err = ecdsa_finish(raw, rlen, ecdsa_field(kind), kind == KMS_PKEY_EC_SECP256K1, fmt,
                           sig, sig_cap, sig_len);
    else
        err = kms_crypto_emit(raw, rlen, sig, sig_cap, sig_len);
done:
    OPENSSL_cleanse(dgst, sizeof dgst);
    OPENSSL_cleanse(raw, sizeof raw);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_verify(EVP_PKEY *key, kms_sig_alg alg, int is_digest, const uint8_t *msg,
                     size_t msg_len, kms_sig_format fmt, const uint8_t *sig, size_t sig_len)
{
    kms_err_t err;
    EVP_PKEY_CTX *ctx = NULL;
    kms_pkey_kind kind = 0;
    uint8_t dgst[KMS_CRYPTO_MAX_MD];
    uint8_t der[KMS_ECDSA_MAX];
    size_t dlen = 0, der_len = 0;

    KMS_GOTO_IF_ERR(err, sig_check(key, alg, is_digest, msg, msg_len, fmt, &kind), done);
    err = KMS_ERR_INVALID_SIGNATURE;
    if (sig == NULL || sig_len == 0 || sig_len > (size_t)INT_MAX) goto done;
    if (alg == KMS_SIG_ED25519) {
        err = ed25519_op(key, msg, msg_len, NULL, NULL, sig, sig_len);
        goto done;
    }
    if (alg_is_rsa(alg) && sig_len != (size_t)EVP_PKEY_get_size(key)) goto done;
    if (alg_is_ecdsa(alg) && fmt == KMS_SIGFMT_P1363) {
        if (!p1363_to_der(sig, sig_len, ecdsa_field(kind), der, &der_len)) goto done;
        sig = der;
        sig_len = der_len;
    }
    KMS_GOTO_IF_ERR(err, sig_digest(alg_md(alg), is_digest, msg, msg_len, dgst, &dlen), done);
    err = KMS_ERR_CRYPTO;
    if (!sig_ctx(key, 1, alg_md(alg), alg_is_rsa(alg), alg_is_pss(alg), RSA_PSS_SALTLEN_DIGEST,
                 alg_md(alg), &ctx))
        goto done;
    /* OpenSSL 3 re-encodes ECDSA DER and refuses anything not byte-identical (strict DER). */
    err = EVP_PKEY_verify(ctx, sig, sig_len, dgst, dlen) == 1 ? KMS_OK
                                                               : KMS_ERR_INVALID_SIGNATURE;
done:
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_verify_rsa_pss(EVP_PKEY *key, kms_md md, kms_md mgf1_md, int salt_len,
                             const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                             size_t sig_len)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY_CTX *ctx = NULL;
    const EVP_MD *h = kms_crypto_md(md, 1), *g = kms_crypto_md(mgf1_md, 1);
    uint8_t dgst[KMS_CRYPTO_MAX_MD];
    size_t dlen = 0;

    if (key == NULL || h == NULL || g == NULL || salt_len < 0 ||
        !KMS_CRYPTO_BUF_OK(msg, msg_len))
        goto done;
    err = KMS_ERR_INVALID_KEY_USAGE;
    if (!kms_crypto_kind_is_rsa(kms_pkey_kind_of(key))) goto done;
    err = KMS_ERR_INVALID_SIGNATURE;
    if (sig == NULL || sig_len != (size_t)EVP_PKEY_get_size(key)) goto done;
    KMS_GOTO_IF_ERR(err, sig_digest(h, 0, msg, msg_len, dgst, &dlen), done);
    err = KMS_ERR_CRYPTO;
    if (!sig_ctx(key, 1, h, 1, 1, salt_len, g, &ctx)) goto done;
    err = EVP_PKEY_verify(ctx, sig, sig_len, dgst, dlen) == 1 ? KMS_OK
                                                               : KMS_ERR_INVALID_SIGNATURE;
done:
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}
