/* eth_bls.c - BLS12-381 signatures (Ethereum's POP ciphersuite) with blst. */
#include <string.h>

#include <openssl/crypto.h>

/* blst.h declares a few functions as f() (no prototype): its own style, not ours. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include "blst.h"
#pragma GCC diagnostic pop
#include "crypto.h"
#include "eth_bls.h"

static const uint8_t DST[] = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
#define DST_LEN (sizeof DST - 1)

kms_err_t kms_bls_generate(uint8_t sk[KMS_BLS_SECRET_LEN])
{
    uint8_t ikm[32];
    blst_scalar s;
    KMS_RETURN_IF_ERR(kms_random(ikm, sizeof ikm));
    blst_keygen(&s, ikm, sizeof ikm, NULL, 0);
    blst_bendian_from_scalar(sk, &s);
    OPENSSL_cleanse(ikm, sizeof ikm);
    OPENSSL_cleanse(&s, sizeof s);
    return KMS_OK;
}

/* sk as a checked scalar (wiped by the caller). */
static kms_err_t scalar_of(const uint8_t *sk, size_t len, blst_scalar *s)
{
    if (len != KMS_BLS_SECRET_LEN) return KMS_ERR_INVALID_KEY;
    blst_scalar_from_bendian(s, sk);
    return blst_sk_check(s) ? KMS_OK : KMS_ERR_INVALID_KEY;
}

kms_err_t kms_bls_check_secret(const uint8_t *sk, size_t len)
{
    blst_scalar s;
    kms_err_t err = scalar_of(sk, len, &s);
    OPENSSL_cleanse(&s, sizeof s);
    return err;
}

kms_err_t kms_bls_public(const uint8_t sk[KMS_BLS_SECRET_LEN], uint8_t pk[KMS_BLS_PUBLIC_LEN])
{
    blst_scalar s;
    blst_p1 p;
    kms_err_t err = scalar_of(sk, KMS_BLS_SECRET_LEN, &s);
    if (err == KMS_OK) {
        blst_sk_to_pk_in_g1(&p, &s);
        blst_p1_compress(pk, &p);
    }
    OPENSSL_cleanse(&s, sizeof s);
    return err;
}

kms_err_t kms_bls_sign(const uint8_t sk[KMS_BLS_SECRET_LEN], const uint8_t *msg, size_t len,
                       uint8_t sig[KMS_BLS_SIGNATURE_LEN])
{
    blst_scalar s;
    blst_p2 h, out;
    kms_err_t err = scalar_of(sk, KMS_BLS_SECRET_LEN, &s);
    if (err == KMS_OK) {
        blst_hash_to_g2(&h, msg, len, DST, DST_LEN, NULL, 0);
        blst_sign_pk_in_g1(&out, &h, &s);
        blst_p2_compress(sig, &out);
    }
    OPENSSL_cleanse(&s, sizeof s);
    return err;
}

int kms_bls_verify(const uint8_t pk[KMS_BLS_PUBLIC_LEN], const uint8_t *msg, size_t len,
                   const uint8_t sig[KMS_BLS_SIGNATURE_LEN])
{
    blst_p1_affine p;
    blst_p2_affine s;
    if (blst_p1_uncompress(&p, pk) != BLST_SUCCESS || blst_p1_affine_is_inf(&p) || !blst_p1_affine_in_g1(&p))
        return 0;
    if (blst_p2_uncompress(&s, sig) != BLST_SUCCESS || !blst_p2_affine_in_g2(&s)) return 0;
    return blst_core_verify_pk_in_g1(&p, &s, 1, msg, len, DST, DST_LEN, NULL, 0) == BLST_SUCCESS;
}

int kms_bls_g1_decodes(const uint8_t *in, size_t len)
{
    blst_p1_affine p;
    return len == KMS_BLS_PUBLIC_LEN && blst_p1_uncompress(&p, in) == BLST_SUCCESS && blst_p1_affine_in_g1(&p);
}

int kms_bls_g2_decodes(const uint8_t *in, size_t len)
{
    blst_p2_affine p;
    return len == KMS_BLS_SIGNATURE_LEN && blst_p2_uncompress(&p, in) == BLST_SUCCESS && blst_p2_affine_in_g2(&p);
}
