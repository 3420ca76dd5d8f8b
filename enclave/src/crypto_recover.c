/*
 * crypto_recover.c - the recovery id of a secp256k1 ECDSA signature (which of the two
 * candidate points R with x = r reproduces the public key), computed with OpenSSL's EC
 * arithmetic: Q = r^-1 (s R - e G). Used for chain-ready "r || s || v" signatures.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#include "crypto_internal.h"

/* Does the candidate with y parity `v` recover `pub`? 1 yes, 0 no, -1 error. */
static int candidate(const EC_GROUP *g, const EC_POINT *pub, const BIGNUM *r, const BIGNUM *s, const BIGNUM *e,
                     int v, BN_CTX *ctx)
{
    EC_POINT *R = EC_POINT_new(g), *Q = EC_POINT_new(g);
    BIGNUM *n = BN_CTX_get(ctx), *rinv = BN_CTX_get(ctx), *u1 = BN_CTX_get(ctx), *u2 = BN_CTX_get(ctx);
    int rc = -1;
    if (R == NULL || Q == NULL || u2 == NULL || EC_GROUP_get_order(g, n, ctx) != 1) goto done;
    if (EC_POINT_set_compressed_coordinates(g, R, r, v, ctx) != 1) { /* no point with x = r and this parity */
        rc = 0;
        goto done;
    }
    if (BN_mod_inverse(rinv, r, n, ctx) == NULL || BN_mod_mul(u2, s, rinv, n, ctx) != 1 ||
        BN_mod_mul(u1, e, rinv, n, ctx) != 1 || BN_mod_sub(u1, n, u1, n, ctx) != 1 ||
        EC_POINT_mul(g, Q, u1, R, u2, ctx) != 1)
        goto done;
    rc = EC_POINT_cmp(g, Q, pub, ctx) == 0 ? 1 : 0;
done:
    EC_POINT_free(R);
    EC_POINT_free(Q);
    return rc;
}

kms_err_t kms_secp256k1_recovery_id(const EVP_PKEY *key, const uint8_t digest[32], const uint8_t sig[64], uint8_t *v)
{
    uint8_t pub_oct[65];
    size_t pub_len = 0;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);
    EC_POINT *pub = g != NULL ? EC_POINT_new(g) : NULL;
    BN_CTX *ctx = BN_CTX_new();
    kms_err_t err = KMS_ERR_CRYPTO;
    if (pub == NULL || ctx == NULL || kms_pkey_kind_of(key) != KMS_PKEY_EC_SECP256K1 ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub_oct, sizeof pub_oct, &pub_len) != 1 ||
        EC_POINT_oct2point(g, pub, pub_oct, pub_len, ctx) != 1)
        goto done;
    BN_CTX_start(ctx);
    BIGNUM *r = BN_CTX_get(ctx), *s = BN_CTX_get(ctx), *e = BN_CTX_get(ctx);
    if (e != NULL && BN_bin2bn(sig, 32, r) != NULL && BN_bin2bn(sig + 32, 32, s) != NULL &&
        BN_bin2bn(digest, 32, e) != NULL) {
        for (int parity = 0; parity < 2 && err == KMS_ERR_CRYPTO; parity++) {
            BN_CTX_start(ctx);
            int rc = candidate(g, pub, r, s, e, parity, ctx);
            BN_CTX_end(ctx);
            if (rc == 1) {
                *v = (uint8_t)parity;
                err = KMS_OK;
            } else if (rc < 0) {
                break;
            }
        }
    }
    BN_CTX_end(ctx);
done:
    BN_CTX_free(ctx);
    EC_POINT_free(pub);
    EC_GROUP_free(g);
    ERR_clear_error();
    return err;
}
