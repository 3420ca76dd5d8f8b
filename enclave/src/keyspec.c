/* keyspec.c - the table of key specs (DESIGN.md §5) and material generation. */
#include <openssl/evp.h>

#include "eth_bls.h"
#include "keyspec.h"

kms_pkey_kind kms_spec_pkey_kind(KeySpec spec)
{
    switch (spec) {
    case KeySpec_ECC_NIST_P256: return KMS_PKEY_EC_P256;
    case KeySpec_ECC_NIST_P384: return KMS_PKEY_EC_P384;
    case KeySpec_ECC_SECG_P256K1: return KMS_PKEY_EC_SECP256K1;
    case KeySpec_ED25519: return KMS_PKEY_ED25519;
    case KeySpec_X25519: return KMS_PKEY_X25519;
    case KeySpec_RSA_2048: return KMS_PKEY_RSA_2048;
    case KeySpec_RSA_3072: return KMS_PKEY_RSA_3072;
    case KeySpec_RSA_4096: return KMS_PKEY_RSA_4096;
    default: return (kms_pkey_kind)0;
    }
}

int kms_spec_allows_usage(KeySpec spec, KeyUsage usage)
{
    switch (spec) {
    case KeySpec_SYMMETRIC_DEFAULT: return usage == KeyUsage_ENCRYPT_DECRYPT;
    case KeySpec_HMAC_SHA_256:
    case KeySpec_HMAC_SHA_384:
    case KeySpec_HMAC_SHA_512: return usage == KeyUsage_GENERATE_VERIFY_MAC;
    case KeySpec_ECC_NIST_P256:
    case KeySpec_ECC_NIST_P384: return usage == KeyUsage_SIGN_VERIFY || usage == KeyUsage_KEY_AGREEMENT;
    case KeySpec_ECC_SECG_P256K1:
    case KeySpec_ED25519: return usage == KeyUsage_SIGN_VERIFY || usage == KeyUsage_VALIDATOR;
    case KeySpec_X25519: return usage == KeyUsage_KEY_AGREEMENT;
    case KeySpec_BLS12_381: return usage == KeyUsage_VALIDATOR;
    case KeySpec_RSA_2048:
    case KeySpec_RSA_3072:
    case KeySpec_RSA_4096: return usage == KeyUsage_SIGN_VERIFY || usage == KeyUsage_ENCRYPT_DECRYPT;
    default: return 0;
    }
}

kms_md kms_spec_hmac_md(KeySpec spec)
{
    switch (spec) {
    case KeySpec_HMAC_SHA_256: return KMS_MD_SHA256;
    case KeySpec_HMAC_SHA_384: return KMS_MD_SHA384;
    case KeySpec_HMAC_SHA_512: return KMS_MD_SHA512;
    default: return (kms_md)0;
    }
}

static int is_rsa(KeySpec spec)
{
    return spec == KeySpec_RSA_2048 || spec == KeySpec_RSA_3072 || spec == KeySpec_RSA_4096;
}

static kms_sig_alg sig_alg_for(KeySpec spec, SigningAlgorithm alg)
{
    switch (alg) {
    case SigningAlgorithm_ECDSA_SHA_256:
        return spec == KeySpec_ECC_NIST_P256 || spec == KeySpec_ECC_SECG_P256K1 ? KMS_SIG_ECDSA_SHA256 : 0;
    case SigningAlgorithm_ECDSA_SHA_384: return spec == KeySpec_ECC_NIST_P384 ? KMS_SIG_ECDSA_SHA384 : 0;
    case SigningAlgorithm_ED25519_PURE: return spec == KeySpec_ED25519 ? KMS_SIG_ED25519 : 0;
    case SigningAlgorithm_RSASSA_PSS_SHA_256: return is_rsa(spec) ? KMS_SIG_RSA_PSS_SHA256 : 0;
    case SigningAlgorithm_RSASSA_PSS_SHA_384: return is_rsa(spec) ? KMS_SIG_RSA_PSS_SHA384 : 0;
    case SigningAlgorithm_RSASSA_PSS_SHA_512: return is_rsa(spec) ? KMS_SIG_RSA_PSS_SHA512 : 0;
    case SigningAlgorithm_RSASSA_PKCS1_V1_5_SHA_256: return is_rsa(spec) ? KMS_SIG_RSA_PKCS1_SHA256 : 0;
    case SigningAlgorithm_RSASSA_PKCS1_V1_5_SHA_384: return is_rsa(spec) ? KMS_SIG_RSA_PKCS1_SHA384 : 0;
    case SigningAlgorithm_RSASSA_PKCS1_V1_5_SHA_512: return is_rsa(spec) ? KMS_SIG_RSA_PKCS1_SHA512 : 0;
    default: return (kms_sig_alg)0;
    }
}

kms_err_t kms_spec_sig_alg(KeySpec spec, SigningAlgorithm alg, kms_sig_alg *out)
{
    if (alg <= SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED || alg > _SigningAlgorithm_MAX)
        return KMS_ERR_INVALID_ARGUMENT;
    *out = sig_alg_for(spec, alg);
    return *out != 0 ? KMS_OK : KMS_ERR_INVALID_KEY_USAGE;
}

kms_err_t kms_spec_generate(KeySpec spec, uint8_t *buf, size_t cap, size_t *len)
{
    size_t secret = 0;
    switch (spec) {
    case KeySpec_SYMMETRIC_DEFAULT:
    case KeySpec_HMAC_SHA_256: secret = 32; break;
    case KeySpec_HMAC_SHA_384: secret = 48; break;
    case KeySpec_HMAC_SHA_512: secret = 64; break;
    default: break;
    }
    if (spec == KeySpec_BLS12_381) { /* a 32-byte big-endian scalar (eth_bls.h) */
        if (cap < KMS_BLS_SECRET_LEN) return KMS_ERR_BUFFER_TOO_SMALL;
        KMS_RETURN_IF_ERR(kms_bls_generate(buf));
        *len = KMS_BLS_SECRET_LEN;
        return KMS_OK;
    }
    if (secret != 0) {
        if (cap < secret) return KMS_ERR_BUFFER_TOO_SMALL;
        KMS_RETURN_IF_ERR(kms_random(buf, secret));
        *len = secret;
        return KMS_OK;
    }
    kms_pkey_kind kind = kms_spec_pkey_kind(spec);
    if (kind == 0) return KMS_ERR_UNSUPPORTED;
    EVP_PKEY *key = NULL;
    KMS_RETURN_IF_ERR(kms_pkey_generate(kind, &key));
    kms_err_t err = kms_pkey_private_der(key, buf, cap, len);
    EVP_PKEY_free(key);
    return err;
}
