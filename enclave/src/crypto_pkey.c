/*
 * crypto_pkey.c - asymmetric keys: kinds, generation, PKCS#8 / SubjectPublicKeyInfo
 * serialisation and strict parsing. Trusted code; contract in crypto.h.
 */
#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto.h"
#include "crypto_internal.h"

/* ---- kinds -------------------------------------------------------------------------------- */

static kms_pkey_kind ec_kind(const EVP_PKEY *key)
{
    char name[64] = {0};
    char enc[32] = {0};
    size_t n = 0;
    int nid;

    if (EVP_PKEY_get_group_name(key, name, sizeof name, &n) != 1 || n == 0) return 0;
    /* Keys decoded with explicit curve parameters are refused, even for a known curve. */
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof enc,
                                       NULL) != 1 ||
        strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
        return 0;
    nid = OBJ_sn2nid(name);
    if (nid == NID_undef) nid = EC_curve_nist2nid(name);
    switch (nid) {
    case NID_X9_62_prime256v1:
        return KMS_PKEY_EC_P256;
    case NID_secp384r1:
        return KMS_PKEY_EC_P384;
    case NID_secp256k1:
        return KMS_PKEY_EC_SECP256K1;
    default:
        return 0;
    }
}

static kms_pkey_kind rsa_kind(const EVP_PKEY *key)
{
    switch (EVP_PKEY_get_bits(key)) {
    case 2048:
        return KMS_PKEY_RSA_2048;
    case 3072:
        return KMS_PKEY_RSA_3072;
    case 4096:
        return KMS_PKEY_RSA_4096;
    default:
        return 0;
    }
}

kms_pkey_kind kms_pkey_kind_of(const EVP_PKEY *key)
{
    kms_pkey_kind kind = 0;

    if (key == NULL) return 0;
    ERR_set_mark();
    if (EVP_PKEY_is_a(key, "EC"))
        kind = ec_kind(key);
    else if (EVP_PKEY_is_a(key, "RSA"))
        kind = rsa_kind(key);
    else if (EVP_PKEY_is_a(key, "ED25519"))
        kind = KMS_PKEY_ED25519;
    else if (EVP_PKEY_is_a(key, "X25519"))
        kind = KMS_PKEY_X25519;
    ERR_pop_to_mark();
    return kind;
}

/* ---- generation --------------------------------------------------------------------------- */

kms_err_t kms_pkey_generate(kms_pkey_kind kind, EVP_PKEY **out)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    const char *alg = "EC", *group = NULL;
    int bits = 0;

    switch (kind) {
    case KMS_PKEY_EC_P256: group = "P-256"; break;
    case KMS_PKEY_EC_P384: group = "P-384"; break;
    case KMS_PKEY_EC_SECP256K1: group = "secp256k1"; break;
    case KMS_PKEY_ED25519: alg = "ED25519"; break;
    case KMS_PKEY_X25519: alg = "X25519"; break;
    case KMS_PKEY_RSA_2048: alg = "RSA"; bits = 2048; break;
    case KMS_PKEY_RSA_3072: alg = "RSA"; bits = 3072; break;
    case KMS_PKEY_RSA_4096: alg = "RSA"; bits = 4096; break;
    default: goto done;
    }
    if (out == NULL) goto done;
    err = KMS_ERR_CRYPTO;
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL)) == NULL ||
        EVP_PKEY_keygen_init(ctx) != 1)
        goto done;
    if (group != NULL && EVP_PKEY_CTX_set_group_name(ctx, group) != 1) goto done;
    if (bits != 0 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) != 1) goto done;
    if (EVP_PKEY_generate(ctx, &key) != 1 || kms_pkey_kind_of(key) != kind) goto done;
    *out = key;
    key = NULL;
    err = KMS_OK;
done:
    EVP_PKEY_free(key); /* frees (and wipes) private material */
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

/* ---- serialisation ------------------------------------------------------------------------ */

/*
 * Encode key with an OpenSSL encoder (output type "DER"/"PEM", structure
 * "PrivateKeyInfo"/"SubjectPublicKeyInfo") into buf. With nul, a NUL byte follows the
 * output (not counted in *len). Secret output is wiped from OpenSSL's buffer.
 */
static kms_err_t encode_key(const EVP_PKEY *key, int selection, const char *type,
                            const char *structure, int nul, uint8_t *buf, size_t cap,
                            size_t *len)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    OSSL_ENCODER_CTX *ectx = NULL;
    unsigned char *data = NULL;
    size_t n = 0;

    if (key == NULL || len == NULL || !KMS_CRYPTO_BUF_OK(buf, cap)) goto done;
    err = KMS_ERR_INVALID_KEY;
    if (kms_pkey_kind_of(key) == 0) goto done;
    ectx = OSSL_ENCODER_CTX_new_for_pkey(key, selection, type, structure, NULL);
    /* No encoder or a failed encoding: the key lacks the part asked for (a public key). */
    if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 ||
        OSSL_ENCODER_to_data(ectx, &data, &n) != 1 || data == NULL)
        goto done;
    err = KMS_ERR_BUFFER_TOO_SMALL;
    if (n > cap || (nul && n == cap)) goto done;
    memcpy(buf, data, n);
    if (nul) buf[n] = 0;
    *len = n;
    err = KMS_OK;
done:
    if (data != NULL) OPENSSL_clear_free(data, n);
    OSSL_ENCODER_CTX_free(ectx);
    ERR_clear_error();
    return err;
}

kms_err_t kms_pkey_private_der(const EVP_PKEY *key, uint8_t *buf, size_t cap, size_t *len)
{
    return encode_key(key, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", 0, buf, cap, len);
}

kms_err_t kms_pkey_public_der(const EVP_PKEY *key, uint8_t *buf, size_t cap, size_t *len)
{
    return encode_key(key, EVP_PKEY_PUBLIC_KEY, "DER", "SubjectPublicKeyInfo", 0, buf, cap,
                      len);
}

kms_err_t kms_pkey_public_pem(const EVP_PKEY *key, uint8_t *buf, size_t cap, size_t *len)
{
    return encode_key(key, EVP_PKEY_PUBLIC_KEY, "PEM", "SubjectPublicKeyInfo", 1, buf, cap,
                      len);
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* EVP_PKEY_check (is_private) or EVP_PKEY_public_check; 1 when the key passes. */
static int key_check(EVP_PKEY *key, int is_private)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok;

    if (ctx == NULL) return 0;
    ok = is_private ? EVP_PKEY_check(ctx) : EVP_PKEY_public_check(ctx);
    EVP_PKEY_CTX_free(ctx);
    return ok == 1;
}

static int kind_is_ec(kms_pkey_kind kind)
{
    return kind == KMS_PKEY_EC_P256 || kind == KMS_PKEY_EC_P384 ||
           kind == KMS_PKEY_EC_SECP256K1;
}

kms_err_t kms_pkey_from_private_der(kms_pkey_kind kind, const uint8_t *der, size_t len,
                                    EVP_PKEY **out)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    EVP_PKEY *key = NULL;
    const unsigned char *p = der;

    if (der == NULL || out == NULL) goto done;
    err = KMS_ERR_INVALID_KEY;
    if (len == 0 || len > (size_t)LONG_MAX) goto done;
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8 == NULL || p != der + len) goto done; /* no trailing bytes */
    if ((key = EVP_PKCS82PKEY_ex(p8, NULL, NULL)) == NULL) goto done;
    if (kms_pkey_kind_of(key) != kind) goto done;
    /* EC: scalar in range and consistent with the public point (cheap). RSA is not
     * re-validated here: primality checks would cost milliseconds per load. */
    if (kind_is_ec(kind) && !key_check(key, 1)) goto done;
    *out = key;
    key = NULL;
    err = KMS_OK;
done:
    EVP_PKEY_free(key);
    PKCS8_PRIV_KEY_INFO_free(p8); /* its free callback wipes the key octets */
    ERR_clear_error();
    return err;
}

kms_err_t kms_pkey_from_public_der(kms_pkey_kind kind, const uint8_t *der, size_t len,
                                   EVP_PKEY **out)
{
    kms_err_t err = KMS_ERR_INVALID_ARGUMENT;
    EVP_PKEY *key = NULL;
    const unsigned char *p = der;

    if (der == NULL || out == NULL) goto done;
    err = KMS_ERR_INVALID_KEY;
    if (len == 0 || len > (size_t)LONG_MAX) goto done;
    key = d2i_PUBKEY_ex(NULL, &p, (long)len, NULL, NULL);
    if (key == NULL || p != der + len) goto done;
    if (kms_pkey_kind_of(key) != kind || !key_check(key, 0)) goto done;
    *out = key;
    key = NULL;
    err = KMS_OK;
done:
    EVP_PKEY_free(key);
    ERR_clear_error();
    return err;
}
