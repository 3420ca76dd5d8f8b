/*
 * crypto.h - the enclave's only door to OpenSSL 3 (EVP). Trusted code.
 *
 * Every function here:
 *   - returns KMS_OK or a kms_err_t (never an OpenSSL code, never a partial result);
 *   - takes sizes in BYTES;
 *   - writes outputs only into caller-owned buffers of the stated capacity, and leaves
 *     *out_len untouched on failure;
 *   - clears OpenSSL's thread error queue before returning, and wipes every temporary
 *     secret it created (OPENSSL_cleanse) on every exit path;
 *   - is thread-safe (no global state beyond OpenSSL's own, which is thread-safe);
 *   - refuses a NULL pointer where data is required (a NULL data pointer is allowed only
 *     with a length of 0) with KMS_ERR_INVALID_ARGUMENT.
 * Decrypt/unwrap failures of any kind return KMS_ERR_INVALID_CIPHERTEXT; verification
 * failures of any kind return KMS_ERR_INVALID_SIGNATURE (one opaque code each).
 * EVP_PKEY pointers returned through `out` are owned by the caller (EVP_PKEY_free).
 */
#ifndef KMS_ENCLAVE_CRYPTO_H
#define KMS_ENCLAVE_CRYPTO_H

#ifdef KMS_UNTRUSTED_BUILD
#error "crypto.h is trusted-only"
#endif

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kms/errors.h"

#define KMS_GCM_TAG_LEN 16
#define KMS_GCM_IV_LEN 12
/* Longest GCM IV accepted: OpenSSL 3.0's provider refuses longer IVs (GCM_IV_MAX_SIZE). */
#define KMS_GCM_IV_MAX_LEN 128

/* Asymmetric key families the enclave generates (DESIGN.md §5). */
typedef enum {
    KMS_PKEY_EC_P256 = 1,
    KMS_PKEY_EC_P384 = 2,
    KMS_PKEY_EC_SECP256K1 = 3,
    KMS_PKEY_ED25519 = 4,
    KMS_PKEY_X25519 = 5,
    KMS_PKEY_RSA_2048 = 6,
    KMS_PKEY_RSA_3072 = 7,
    KMS_PKEY_RSA_4096 = 8,
} kms_pkey_kind;

/* Signature schemes. ECDSA on secp256k1 always signs low-s (BIP-62) and verifies both. */
typedef enum {
    KMS_SIG_ECDSA_SHA256 = 1,     /* P-256 or secp256k1 */
    KMS_SIG_ECDSA_SHA384 = 2,     /* P-384 */
    KMS_SIG_ED25519 = 3,          /* pure Ed25519 (RFC 8032), message only */
    KMS_SIG_RSA_PSS_SHA256 = 4,   /* salt length = digest length, MGF1 with the same digest */
    KMS_SIG_RSA_PSS_SHA384 = 5,
    KMS_SIG_RSA_PSS_SHA512 = 6,
    KMS_SIG_RSA_PKCS1_SHA256 = 7,
    KMS_SIG_RSA_PKCS1_SHA384 = 8,
    KMS_SIG_RSA_PKCS1_SHA512 = 9,
} kms_sig_alg;

/* ECDSA signature encodings. Ignored for Ed25519 and RSA. */
typedef enum {
    KMS_SIGFMT_DER = 0,    /* X9.62 ECDSA-Sig-Value, strict DER */
    KMS_SIGFMT_P1363 = 1,  /* r || s, each left-padded to the field size */
} kms_sig_format;

/*
 * Digests. SHA-1 and SHA-224 are accepted only where the enclave reads what others made:
 * kms_rsa_oaep_decrypt (legacy ciphertexts) and kms_verify_rsa_pss (interoperability);
 * everywhere else they are KMS_ERR_UNSUPPORTED.
 */
typedef enum {
    KMS_MD_SHA1 = 1,
    KMS_MD_SHA256 = 2,
    KMS_MD_SHA384 = 3,
    KMS_MD_SHA512 = 4,
    KMS_MD_SHA224 = 5,
} kms_md;

/* Wipe p[0..n): memset, then a compiler barrier that makes the stores observable, so no compiler drops
 * them as dead (BoringSSL's OPENSSL_cleanse). For the request path's large structs and buffers: OpenSSL 3's
 * OPENSSL_cleanse stores 8 bytes a loop, about 3x slower on 36-64 KiB (docs/performance.md). */
void kms_wipe(void *p, size_t n);

/* Fill buf[0..len) from OpenSSL's DRBG. Errors: KMS_ERR_RANDOM; buf NULL with len > 0:
 * KMS_ERR_INVALID_ARGUMENT. */
kms_err_t kms_random(uint8_t *buf, size_t len);

/*
 * AES-GCM with a 16-, 24- or 32-byte key, an IV of 1..KMS_GCM_IV_MAX_LEN bytes, a 16-byte
 * tag. Lengths above INT_MAX are refused. On an open failure pt is wiped (no unauthenticated
 * plaintext is released).
 * seal: ct has room for pt_len bytes; tag receives KMS_GCM_TAG_LEN bytes.
 * open: tag_len must be KMS_GCM_TAG_LEN; pt has room for ct_len bytes. Any failure,
 * including a wrong key length, IV length 0 or a bad tag, is KMS_ERR_INVALID_CIPHERTEXT
 * (open) or KMS_ERR_INVALID_ARGUMENT (seal). pt/ct may be NULL when the length is 0.
 */
kms_err_t kms_aes_gcm_seal(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                           const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
                           uint8_t *ct, uint8_t tag[KMS_GCM_TAG_LEN]);
/*
 * AES-GCM encryption of many messages under one key (a batch): the key schedule is set up once by
 * kms_aes_gcm_sealer_new (key as kms_aes_gcm_seal's, every IV iv_len bytes), each message is
 * kms_aes_gcm_seal_with (as kms_aes_gcm_seal, under the sealer's key: a fresh IV each), and
 * kms_aes_gcm_sealer_free wipes and frees it (NULL: nothing). kms_aes_gcm_seal is the three in one.
 */
kms_err_t kms_aes_gcm_sealer_new(const uint8_t *key, size_t key_len, size_t iv_len, EVP_CIPHER_CTX **out);
kms_err_t kms_aes_gcm_seal_with(EVP_CIPHER_CTX *ctx, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                                size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                                uint8_t tag[KMS_GCM_TAG_LEN]);
void kms_aes_gcm_sealer_free(EVP_CIPHER_CTX *ctx);
kms_err_t kms_aes_gcm_open(const uint8_t *key, size_t key_len, const uint8_t *iv, size_t iv_len,
                           const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
                           const uint8_t *tag, size_t tag_len, uint8_t *pt);

/* SHA-256 of data into out[32]. */
kms_err_t kms_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/*
 * HMAC with md (SHA-256/384/512). kms_hmac writes the full MAC (32/48/64 bytes) to mac
 * (capacity mac_cap) and its length to *mac_len. kms_hmac_verify compares in constant time
 * against the first tag_len bytes of the MAC; tag_len must be between 16 and the full
 * length, else KMS_ERR_INVALID_SIGNATURE. Key length may be 0..1024 bytes (else
 * KMS_ERR_INVALID_ARGUMENT); md other than SHA-256/384/512: KMS_ERR_UNSUPPORTED.
 * kms_hmac: mac_cap below the MAC length is KMS_ERR_BUFFER_TOO_SMALL.
 */
kms_err_t kms_hmac(kms_md md, const uint8_t *key, size_t key_len, const uint8_t *msg,
                   size_t msg_len, uint8_t *mac, size_t mac_cap, size_t *mac_len);
kms_err_t kms_hmac_verify(kms_md md, const uint8_t *key, size_t key_len, const uint8_t *msg,
                          size_t msg_len, const uint8_t *tag, size_t tag_len);

/* Generate a fresh key of the given kind. Errors: KMS_ERR_CRYPTO; unknown kind:
 * KMS_ERR_INVALID_ARGUMENT. */
kms_err_t kms_pkey_generate(kms_pkey_kind kind, EVP_PKEY **out);

/*
 * Serialisation. Private keys as PKCS#8 DER (unencrypted: the caller wraps them under the
 * domain key), public keys as SubjectPublicKeyInfo DER or PEM. Parsing checks that the key
 * is of `kind` (for EC: the named curve) and, for public keys, that the point is valid;
 * otherwise KMS_ERR_INVALID_KEY. EC keys must use a named curve (explicit parameters are
 * refused) and DER input must have no trailing bytes. Output too large for cap:
 * KMS_ERR_BUFFER_TOO_SMALL. kms_pkey_public_pem writes a NUL-terminated string; *len
 * excludes the NUL. A key of none of the kinds: KMS_ERR_INVALID_KEY.
 */
kms_err_t kms_pkey_private_der(const EVP_PKEY *key, uint8_t *buf, size_t cap, size_t *len);
kms_err_t kms_pkey_from_private_der(kms_pkey_kind kind, const uint8_t *der, size_t len,
                                    EVP_PKEY **out);
kms_err_t kms_pkey_public_der(const EVP_PKEY *key, uint8_t *buf, size_t cap, size_t *len);
kms_err_t kms_pkey_public_pem(const EVP_PKEY *key, uint8_t *buf, size_t cap, size_t *len);
kms_err_t kms_pkey_from_public_der(kms_pkey_kind kind, const uint8_t *der, size_t len,
                                   EVP_PKEY **out);

/*
 * Sign / verify. If is_digest, msg is a precomputed digest whose length must equal the
 * algorithm's digest length (else KMS_ERR_INVALID_ARGUMENT; Ed25519 refuses digests with
 * KMS_ERR_UNSUPPORTED). The algorithm must fit the key (else KMS_ERR_INVALID_KEY_USAGE).
 * kms_sign writes at most sig_cap bytes (else KMS_ERR_BUFFER_TOO_SMALL; 512 bytes always
 * suffice). kms_verify returns KMS_OK or KMS_ERR_INVALID_SIGNATURE (also for a malformed or
 * wrongly-sized signature); the argument errors above are reported as for kms_sign.
 */
kms_err_t kms_sign(EVP_PKEY *key, kms_sig_alg alg, int is_digest, const uint8_t *msg,
                   size_t msg_len, kms_sig_format fmt, uint8_t *sig, size_t sig_cap,
                   size_t *sig_len);
kms_err_t kms_verify(EVP_PKEY *key, kms_sig_alg alg, int is_digest, const uint8_t *msg,
                     size_t msg_len, kms_sig_format fmt, const uint8_t *sig, size_t sig_len);

/*
 * RSA-PSS verification with explicit parameters, for interoperability checks
 * (salt_len in bytes, exactly; mgf1_md may differ from md; every kms_md is accepted).
 * Returns KMS_OK or KMS_ERR_INVALID_SIGNATURE; a non-RSA key is KMS_ERR_INVALID_KEY_USAGE,
 * a negative salt_len or unknown md KMS_ERR_INVALID_ARGUMENT.
 */
kms_err_t kms_verify_rsa_pss(EVP_PKEY *key, kms_md md, kms_md mgf1_md, int salt_len,
                             const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                             size_t sig_len);

/*
 * RSA-OAEP. md is the OAEP digest and mgf1_md the MGF1 digest; label may be NULL/0.
 * decrypt: any failure is KMS_ERR_INVALID_CIPHERTEXT; pt has room for pt_cap bytes, which
 * must be at least the key's largest OAEP message (modulus bytes - 2 * digest bytes - 2),
 * else KMS_ERR_BUFFER_TOO_SMALL, checked before decrypting (no length oracle).
 * encrypt: for tests and for wrapping to a peer; ct has room for ct_cap bytes (at least the
 * modulus size, else KMS_ERR_BUFFER_TOO_SMALL); SHA-1/SHA-224 are KMS_ERR_UNSUPPORTED; a
 * message too long for the key is KMS_ERR_INVALID_ARGUMENT.
 * Both: a key that is not RSA is KMS_ERR_INVALID_KEY_USAGE.
 */
kms_err_t kms_rsa_oaep_decrypt(EVP_PKEY *key, kms_md md, kms_md mgf1_md, const uint8_t *label,
                               size_t label_len, const uint8_t *ct, size_t ct_len, uint8_t *pt,
                               size_t pt_cap, size_t *pt_len);
kms_err_t kms_rsa_oaep_encrypt(EVP_PKEY *key, kms_md md, kms_md mgf1_md, const uint8_t *label,
                               size_t label_len, const uint8_t *pt, size_t pt_len, uint8_t *ct,
                               size_t ct_cap, size_t *ct_len);

/*
 * Key agreement (ECDH on P-256/P-384, X25519): raw shared secret into secret (cap bytes).
 * The peer must be of the same kind/curve and a valid point (else KMS_ERR_INVALID_KEY);
 * an all-zero X25519 result is refused with KMS_ERR_INVALID_KEY. A priv that is not
 * P-256, P-384 or X25519 is KMS_ERR_INVALID_KEY_USAGE; cap too small: KMS_ERR_BUFFER_TOO_SMALL.
 */
kms_err_t kms_derive(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *secret, size_t cap,
                     size_t *secret_len);

/*
 * EIP-2335 keystore primitives. scrypt (RFC 7914; n a power of two, maxmem the most memory it may
 * take: KMS_ERR_OUT_OF_MEMORY beyond it or when the heap cannot hold it), PBKDF2-HMAC-SHA-256
 * (iter >= 1) and AES-128-CTR (in and out may be the same buffer). out is wiped on failure.
 */
kms_err_t kms_scrypt(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len, uint64_t n, uint32_t r,
                     uint32_t p, uint64_t maxmem, uint8_t *out, size_t out_len);
kms_err_t kms_pbkdf2_sha256(const uint8_t *pw, size_t pw_len, const uint8_t *salt, size_t salt_len, uint32_t iter,
                            uint8_t *out, size_t out_len);
kms_err_t kms_aes128_ctr(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, size_t len, uint8_t *out);

/*
 * HKDF-SHA-256 (RFC 5869): out_len (1..255*32) bytes from ikm with salt and info (either may
 * be empty). Errors: KMS_ERR_INVALID_ARGUMENT, KMS_ERR_CRYPTO.
 */
kms_err_t kms_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                          const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/*
 * Recovery id (0 or 1) of a low-s secp256k1 signature sig = r || s (32 + 32 bytes) over the
 * SHA-256 digest, for the key that made it (Ethereum/Cosmos-style r || s || v).
 * Errors: KMS_ERR_CRYPTO (not a secp256k1 key, or no candidate matches).
 */
kms_err_t kms_secp256k1_recovery_id(const EVP_PKEY *key, const uint8_t digest[32], const uint8_t sig[64], uint8_t *v);

/* A private key from its raw 32 bytes: an Ed25519 seed or a secp256k1 scalar (1..n-1), as
 * CometBFT's priv_validator_key.json holds them, or an X25519 private value (RFC 7748). KMS_ERR_INVALID_KEY, KMS_ERR_UNSUPPORTED. */
kms_err_t kms_pkey_from_raw_private(kms_pkey_kind kind, const uint8_t *priv, size_t len, EVP_PKEY **out);

/* AES key unwrap with padding (RFC 5649) under a 32-byte key encryption key; out has room for
 * at least in_len bytes. Any failure is KMS_ERR_INVALID_CIPHERTEXT. */
kms_err_t kms_aes_kwp_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len, uint8_t *out,
                             size_t cap, size_t *out_len);

/* AES-128-CMAC (the MAC of SGX reports) into out[16]. KMS_ERR_CRYPTO. */
kms_err_t kms_aes128_cmac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t out[16]);

/* X25519 keys as raw 32-byte public values (RFC 7748): import (KMS_ERR_INVALID_KEY) and export. */
kms_err_t kms_x25519_from_raw(const uint8_t pub[32], EVP_PKEY **out);
kms_err_t kms_x25519_raw_public(const EVP_PKEY *key, uint8_t pub[32]);

/*
 * HPKE (RFC 9180), base mode, single shot: SealBase(pkR, info, aad, pt) for the suite
 * DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (ids 0x0020, 0x0001, 0x0002), with a
 * fresh ephemeral key from OpenSSL's DRBG (crypto_hpke.c). pk_r is the recipient's raw X25519
 * public key (32 bytes); info is at most KMS_HPKE_MAX_INFO bytes; aad and pt any length (pt
 * NULL only with length 0). out (capacity cap) receives enc (32) || ciphertext || tag (16),
 * pt_len + KMS_HPKE_SEAL_OVERHEAD bytes, the layout pyca/cryptography's Suite.encrypt returns
 * (which fixes aad empty). Errors: KMS_ERR_INVALID_KEY (pk_r is not usable: a low-order point
 * gives an all-zero DH and is refused), KMS_ERR_BUFFER_TOO_SMALL, KMS_ERR_INVALID_ARGUMENT,
 * KMS_ERR_CRYPTO; out is wiped on failure. Every intermediate secret is wiped. Thread-safe.
 */
#define KMS_HPKE_PUBLIC_LEN 32
#define KMS_HPKE_ENC_LEN 32
#define KMS_HPKE_SEAL_OVERHEAD (KMS_HPKE_ENC_LEN + KMS_GCM_TAG_LEN)
#define KMS_HPKE_MAX_INFO 64
kms_err_t kms_hpke_seal(const uint8_t pk_r[KMS_HPKE_PUBLIC_LEN], const uint8_t *info, size_t info_len,
                        const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out,
                        size_t cap, size_t *out_len);
#ifdef KMS_TEST_BUILD
/* The same with the ephemeral private key given (raw X25519, 32 bytes): known-answer tests only,
 * never in the enclave image (a fixed ephemeral key would make every seal to pk_r share a key). */
kms_err_t kms_hpke_seal_with_ephemeral(const uint8_t sk_e[32], const uint8_t pk_r[KMS_HPKE_PUBLIC_LEN],
                                       const uint8_t *info, size_t info_len, const uint8_t *aad, size_t aad_len,
                                       const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap, size_t *out_len);
#endif

/* The kind of a key, or 0 if it is none of kms_pkey_kind (RSA: exactly 2048/3072/4096 bits;
 * EC: named curve only). Thread-safe; leaves OpenSSL's error queue as it found it. */
kms_pkey_kind kms_pkey_kind_of(const EVP_PKEY *key);

#endif /* KMS_ENCLAVE_CRYPTO_H */
