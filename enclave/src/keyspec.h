/*
 * keyspec.h - what each KeySpec is: its OpenSSL key kind, the usages and algorithms it
 * allows, and how its material is generated. Pure functions; thread-safe.
 */
#ifndef KMS_ENCLAVE_KEYSPEC_H
#define KMS_ENCLAVE_KEYSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/* The asymmetric kind of spec, or 0 for symmetric specs (AES, HMAC). */
kms_pkey_kind kms_spec_pkey_kind(KeySpec spec);
/* 1 if keys of spec may be created with usage. */
int kms_spec_allows_usage(KeySpec spec, KeyUsage usage);
/* HMAC digest of an HMAC spec (0 otherwise). */
kms_md kms_spec_hmac_md(KeySpec spec);
/* Map a signing algorithm to the crypto layer's: KMS_ERR_INVALID_ARGUMENT for UNSPECIFIED or a value
 * not in the enum (a missing argument, whatever the key), KMS_ERR_INVALID_KEY_USAGE when spec does not
 * allow it (docs/api.md §3a). */
kms_err_t kms_spec_sig_alg(KeySpec spec, SigningAlgorithm alg, kms_sig_alg *out);
/*
 * New key material for spec: a random secret (AES-256: 32 bytes; HMAC: the digest length),
 * a BLS12_381 secret (32 bytes, big-endian) or a PKCS#8 DER private key. buf has room for cap bytes. The caller wipes buf.
 * Errors: KMS_ERR_UNSUPPORTED, KMS_ERR_BUFFER_TOO_SMALL, KMS_ERR_CRYPTO, KMS_ERR_RANDOM.
 */
kms_err_t kms_spec_generate(KeySpec spec, uint8_t *buf, size_t cap, size_t *len);

#endif /* KMS_ENCLAVE_KEYSPEC_H */
