/*
 * mechs.c - the mechanism table: what C_GetMechanismList/Info report, the one list that
 * docs/pkcs11.md's table is tested against (tests/integration/test_pkcs11_module.py).
 *
 * Key sizes: bits for RSA and EC (as PKCS#11 says), bytes for AES and the HMAC/generic secrets.
 * A mechanism is here only when the enclave does exactly what PKCS#11 specifies for it (or the
 * documented KMS envelope, for CKM_AES_GCM): what the enclave lacks is absent, and its
 * functions answer CKR_MECHANISM_INVALID.
 */
#include "p11.h"

#define EC_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)
#define SIGN_VERIFY (CKF_SIGN | CKF_VERIFY)

static const struct p11_mech MECHS[] = {
    {CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", 32, 32, CKF_GENERATE},
    {CKM_AES_GCM, "CKM_AES_GCM", 32, 32, CKF_ENCRYPT | CKF_DECRYPT},
    {CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN", 32, 64, CKF_GENERATE},
    {CKM_SHA256_HMAC, "CKM_SHA256_HMAC", 32, 32, SIGN_VERIFY},
    {CKM_SHA384_HMAC, "CKM_SHA384_HMAC", 48, 48, SIGN_VERIFY},
    {CKM_SHA512_HMAC, "CKM_SHA512_HMAC", 64, 64, SIGN_VERIFY},
    {CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN", 256, 384, CKF_GENERATE_KEY_PAIR | EC_FLAGS},
    {CKM_ECDSA, "CKM_ECDSA", 256, 384, SIGN_VERIFY | EC_FLAGS},
    {CKM_ECDSA_SHA256, "CKM_ECDSA_SHA256", 256, 384, SIGN_VERIFY | EC_FLAGS},
    {CKM_ECDSA_SHA384, "CKM_ECDSA_SHA384", 256, 384, SIGN_VERIFY | EC_FLAGS},
    {CKM_ECDSA_SHA512, "CKM_ECDSA_SHA512", 256, 384, SIGN_VERIFY | EC_FLAGS},
    {CKM_ECDH1_DERIVE, "CKM_ECDH1_DERIVE", 256, 384, CKF_DERIVE | EC_FLAGS},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN", 255, 255, CKF_GENERATE_KEY_PAIR},
    {CKM_EDDSA, "CKM_EDDSA", 255, 255, SIGN_VERIFY},
    {CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN", 2048, 4096, CKF_GENERATE_KEY_PAIR},
    {CKM_RSA_PKCS, "CKM_RSA_PKCS", 2048, 4096, SIGN_VERIFY},
    {CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS", 2048, 4096, SIGN_VERIFY},
    {CKM_SHA384_RSA_PKCS, "CKM_SHA384_RSA_PKCS", 2048, 4096, SIGN_VERIFY},
    {CKM_SHA512_RSA_PKCS, "CKM_SHA512_RSA_PKCS", 2048, 4096, SIGN_VERIFY},
    {CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS", 2048, 4096, SIGN_VERIFY},
    {CKM_SHA256_RSA_PKCS_PSS, "CKM_SHA256_RSA_PKCS_PSS", 2048, 4096, SIGN_VERIFY},
    {CKM_SHA384_RSA_PKCS_PSS, "CKM_SHA384_RSA_PKCS_PSS", 2048, 4096, SIGN_VERIFY},
    {CKM_SHA512_RSA_PKCS_PSS, "CKM_SHA512_RSA_PKCS_PSS", 2048, 4096, SIGN_VERIFY},
    {CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP", 2048, 4096, CKF_DECRYPT},
};

const struct p11_mech *p11_mech_find(CK_MECHANISM_TYPE type)
{
    for (size_t i = 0; i < sizeof MECHS / sizeof MECHS[0]; i++)
        if (MECHS[i].type == type) return &MECHS[i];
    return NULL;
}

size_t p11_mech_count(void)
{
    return sizeof MECHS / sizeof MECHS[0];
}

const struct p11_mech *p11_mech_at(size_t i)
{
    return i < p11_mech_count() ? &MECHS[i] : NULL;
}

CK_RV p11_mech_check(CK_MECHANISM_TYPE type, CK_FLAGS use)
{
    const struct p11_mech *m = p11_mech_find(type);
    return m != NULL && (m->flags & use) == use ? CKR_OK : CKR_MECHANISM_INVALID;
}
