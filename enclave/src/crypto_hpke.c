/*
 * crypto_hpke.c - RFC 9180 HPKE, base mode, single-shot SealBase, for one suite:
 * DHKEM(X25519, HKDF-SHA256) (KEM 0x0020), HKDF-SHA256 (KDF 0x0001), AES-256-GCM (AEAD 0x0002).
 * Composed from OpenSSL 3.0's X25519, HKDF (extract-only and expand-only modes) and AES-GCM,
 * because Debian 12's OpenSSL 3.0 has no HPKE API. Section numbers below are RFC 9180's.
 * Only the sender's side exists: the enclave seals to auditors, it never opens.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#include "crypto_internal.h"

#define NH 32       /* HKDF-SHA256 output (Nh), = Nsecret of the KEM */
#define NK 32       /* AES-256-GCM key (Nk) */
#define NN 12       /* AES-GCM nonce (Nn) */
#define LABEL_MAX 16 /* longest label below ("shared_secret") with room */

/* suite_id (§4.1 for the KEM, §5.1 for the whole suite). */
static const uint8_t k_kem_suite[] = {'K', 'E', 'M', 0x00, 0x20};
static const uint8_t k_hpke_suite[] = {'H', 'P', 'K', 'E', 0x00, 0x20, 0x00, 0x01, 0x00, 0x02};
static const uint8_t k_version[] = {'H', 'P', 'K', 'E', '-', 'v', '1'};

/* HKDF-SHA256 in one mode of OpenSSL's HKDF: EXTRACT_ONLY (key = ikm, out_len NH) or EXPAND_ONLY (key = prk). */
static kms_err_t hkdf(int mode, const uint8_t *salt, size_t salt_len, const uint8_t *key, size_t key_len,
                      const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    char digest[] = "SHA256";
    static const uint8_t empty[1];
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)(key_len ? key : empty), key_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)(salt_len ? salt : empty), salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)(info_len ? info : empty), info_len),
        OSSL_PARAM_construct_end(),
    };
    kms_err_t err = ctx != NULL && EVP_KDF_derive(ctx, out, out_len, params) == 1 ? KMS_OK : KMS_ERR_CRYPTO;
    if (err != KMS_OK) OPENSSL_cleanse(out, out_len);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return err;
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm) (§4). */
static kms_err_t labeled_extract(const uint8_t *suite, size_t suite_len, const uint8_t *salt, size_t salt_len,
                                 const char *label, const uint8_t *ikm, size_t ikm_len, uint8_t out[NH])
{
    uint8_t buf[sizeof k_version + sizeof k_hpke_suite + LABEL_MAX + KMS_HPKE_MAX_INFO];
    size_t label_len = strlen(label), n = 0;
    if (label_len > LABEL_MAX || ikm_len > KMS_HPKE_MAX_INFO) return KMS_ERR_INVALID_ARGUMENT;
    memcpy(buf + n, k_version, sizeof k_version), n += sizeof k_version;
    memcpy(buf + n, suite, suite_len), n += suite_len;
    memcpy(buf + n, label, label_len), n += label_len;
    if (ikm_len > 0) memcpy(buf + n, ikm, ikm_len), n += ikm_len;
    kms_err_t err = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, salt_len, buf, n, NULL, 0, out, NH);
    OPENSSL_cleanse(buf, sizeof buf);
    return err;
}

/* LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L). */
static kms_err_t labeled_expand(const uint8_t *suite, size_t suite_len, const uint8_t prk[NH], const char *label,
                                const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    uint8_t buf[2 + sizeof k_version + sizeof k_hpke_suite + LABEL_MAX + 2 * NH + 1];
    size_t label_len = strlen(label), n = 0;
    if (label_len > LABEL_MAX || info_len > 2 * NH + 1 || out_len > 255 * NH) return KMS_ERR_INVALID_ARGUMENT;
    buf[n++] = (uint8_t)(out_len >> 8);
    buf[n++] = (uint8_t)out_len;
    memcpy(buf + n, k_version, sizeof k_version), n += sizeof k_version;
    memcpy(buf + n, suite, suite_len), n += suite_len;
    memcpy(buf + n, label, label_len), n += label_len;
    memcpy(buf + n, info, info_len), n += info_len;
    return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk, NH, buf, n, out, out_len);
}

/* DHKEM Encap with the ephemeral key eph (§4.1): enc = pkE, shared_secret from DH(skE, pkR). */
static kms_err_t encap(EVP_PKEY *eph, const uint8_t pk_r[KMS_HPKE_PUBLIC_LEN], uint8_t enc[KMS_HPKE_ENC_LEN],
                       uint8_t shared[NH])
{
    EVP_PKEY *peer = NULL;
    uint8_t dh[32], prk[NH], kem_context[2 * 32];
    size_t dh_len = 0;
    kms_err_t err;
    KMS_GOTO_IF_ERR(err, kms_x25519_from_raw(pk_r, &peer), done);
    KMS_GOTO_IF_ERR(err, kms_x25519_raw_public(eph, enc), done);
    KMS_GOTO_IF_ERR(err, kms_derive(eph, peer, dh, sizeof dh, &dh_len), done); /* refuses an all-zero DH */
    memcpy(kem_context, enc, 32);
    memcpy(kem_context + 32, pk_r, 32);
    KMS_GOTO_IF_ERR(err, labeled_extract(k_kem_suite, sizeof k_kem_suite, NULL, 0, "eae_prk", dh, dh_len, prk), done);
    err = labeled_expand(k_kem_suite, sizeof k_kem_suite, prk, "shared_secret", kem_context, sizeof kem_context,
                         shared, NH);
done:
    OPENSSL_cleanse(dh, sizeof dh);
    OPENSSL_cleanse(prk, sizeof prk);
    EVP_PKEY_free(peer);
    return err;
}

/* KeySchedule for mode_base (§5.1): key and base_nonce from shared_secret and info (no PSK). */
static kms_err_t key_schedule(const uint8_t shared[NH], const uint8_t *info, size_t info_len, uint8_t key[NK],
                              uint8_t nonce[NN])
{
    uint8_t context[1 + 2 * NH], secret[NH];
    context[0] = 0x00; /* mode_base */
    kms_err_t err = labeled_extract(k_hpke_suite, sizeof k_hpke_suite, NULL, 0, "psk_id_hash", NULL, 0, context + 1);
    if (err == KMS_OK)
        err = labeled_extract(k_hpke_suite, sizeof k_hpke_suite, NULL, 0, "info_hash", info, info_len, context + 1 + NH);
    if (err == KMS_OK)
        err = labeled_extract(k_hpke_suite, sizeof k_hpke_suite, shared, NH, "secret", NULL, 0, secret);
    if (err == KMS_OK)
        err = labeled_expand(k_hpke_suite, sizeof k_hpke_suite, secret, "key", context, sizeof context, key, NK);
    if (err == KMS_OK)
        err = labeled_expand(k_hpke_suite, sizeof k_hpke_suite, secret, "base_nonce", context, sizeof context, nonce, NN);
    OPENSSL_cleanse(secret, sizeof secret);
    return err;
}

/* SealBase with a given ephemeral key: out = enc || ct || tag. The first message of the context,
 * so its nonce is base_nonce itself (sequence number 0, §5.2). */
static kms_err_t seal_with(EVP_PKEY *eph, const uint8_t pk_r[KMS_HPKE_PUBLIC_LEN], const uint8_t *info,
                           size_t info_len, const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                           uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t shared[NH], key[NK], nonce[NN];
    if (pk_r == NULL || !KMS_CRYPTO_BUF_OK(info, info_len) || info_len > KMS_HPKE_MAX_INFO ||
        !KMS_CRYPTO_BUF_OK(aad, aad_len) || !KMS_CRYPTO_BUF_OK(pt, pt_len) || out == NULL || out_len == NULL)
        return KMS_ERR_INVALID_ARGUMENT;
    if (cap < KMS_HPKE_SEAL_OVERHEAD || pt_len > cap - KMS_HPKE_SEAL_OVERHEAD) return KMS_ERR_BUFFER_TOO_SMALL;
    kms_err_t err = encap(eph, pk_r, out, shared);
    if (err == KMS_OK) err = key_schedule(shared, info, info_len, key, nonce);
    if (err == KMS_OK)
        err = kms_aes_gcm_seal(key, NK, nonce, NN, aad, aad_len, pt, pt_len, out + KMS_HPKE_ENC_LEN,
                               out + KMS_HPKE_ENC_LEN + pt_len);
    if (err == KMS_OK) *out_len = KMS_HPKE_SEAL_OVERHEAD + pt_len;
    else OPENSSL_cleanse(out, cap);
    OPENSSL_cleanse(shared, sizeof shared);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(nonce, sizeof nonce);
    ERR_clear_error();
    return err;
}

kms_err_t kms_hpke_seal(const uint8_t pk_r[KMS_HPKE_PUBLIC_LEN], const uint8_t *info, size_t info_len,
                        const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out,
                        size_t cap, size_t *out_len)
{
    EVP_PKEY *eph = NULL; /* GenerateKeyPair (§4.1): a fresh X25519 key from OpenSSL's DRBG */
    kms_err_t err = kms_pkey_generate(KMS_PKEY_X25519, &eph);
    if (err == KMS_OK) err = seal_with(eph, pk_r, info, info_len, aad, aad_len, pt, pt_len, out, cap, out_len);
    EVP_PKEY_free(eph);
    return err;
}

#ifdef KMS_TEST_BUILD
kms_err_t kms_hpke_seal_with_ephemeral(const uint8_t sk_e[32], const uint8_t pk_r[KMS_HPKE_PUBLIC_LEN],
                                       const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
                                       const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap, size_t *out_len)
{
    EVP_PKEY *eph = sk_e != NULL ? EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk_e, 32) : NULL;
    kms_err_t err = eph != NULL ? seal_with(eph, pk_r, info, info_len, aad, aad_len, pt, pt_len, out, cap, out_len)
                                : KMS_ERR_INVALID_KEY;
    EVP_PKEY_free(eph);
    ERR_clear_error();
    return err;
}
#endif
