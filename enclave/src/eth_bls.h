/*
 * eth_bls.h - BLS12-381 for Ethereum validators through blst (supranational; linked statically and
 * hidden: Makefile, docs/ethereum-keys.md). Ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_:
 * secret keys are 32-byte big-endian scalars in [1, r), public keys compressed G1 (48), signatures
 * compressed G2 (96). Pure functions over caller buffers; thread-safe; every secret is wiped.
 */
#ifndef KMS_ENCLAVE_ETH_BLS_H
#define KMS_ENCLAVE_ETH_BLS_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

#define KMS_BLS_SECRET_LEN 32
#define KMS_BLS_PUBLIC_LEN 48
#define KMS_BLS_SIGNATURE_LEN 96

/* A new secret key: blst_keygen (the spec's KeyGen) over 32 bytes of enclave randomness. KMS_ERR_RANDOM. */
kms_err_t kms_bls_generate(uint8_t sk[KMS_BLS_SECRET_LEN]);
/* KMS_OK if sk is a valid secret key (1 <= sk < r); else KMS_ERR_INVALID_KEY. */
kms_err_t kms_bls_check_secret(const uint8_t *sk, size_t len);
/* The public key of sk. KMS_ERR_INVALID_KEY when sk is not a valid secret key. */
kms_err_t kms_bls_public(const uint8_t sk[KMS_BLS_SECRET_LEN], uint8_t pk[KMS_BLS_PUBLIC_LEN]);
/* Sign msg (the POP ciphersuite's Sign). KMS_ERR_INVALID_KEY when sk is not a valid secret key. */
kms_err_t kms_bls_sign(const uint8_t sk[KMS_BLS_SECRET_LEN], const uint8_t *msg, size_t len,
                       uint8_t sig[KMS_BLS_SIGNATURE_LEN]);
/* Verify (KeyValidate on pk included: the identity and points outside G1 are refused). 1 valid, 0 not. */
int kms_bls_verify(const uint8_t pk[KMS_BLS_PUBLIC_LEN], const uint8_t *msg, size_t len,
                   const uint8_t sig[KMS_BLS_SIGNATURE_LEN]);
/* 1 if the bytes decode to a point of G1 (48) / G2 (96), the point at infinity included; else 0. */
int kms_bls_g1_decodes(const uint8_t *in, size_t len);
int kms_bls_g2_decodes(const uint8_t *in, size_t len);

#endif /* KMS_ENCLAVE_ETH_BLS_H */
