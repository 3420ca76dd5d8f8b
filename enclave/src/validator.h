/*
 * validator.h - CometBFT validator signing with the double-sign guard inside the enclave
 * (rules in boundary.proto, "Validator signing"; docs/validators.md). Thread-safe: a guard
 * update is a conditional write, so two racing signers for one key cannot both win.
 */
#ifndef KMS_ENCLAVE_VALIDATOR_H
#define KMS_ENCLAVE_VALIDATOR_H

#include <stddef.h>
#include <stdint.h>

#include "cometbft.h"
#include "crypto.h"
#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

#define KMS_VSTATE_ID_LEN 64

/* The guard state of key_id. KMS_ERR_RECORD_CORRUPT when missing, altered or for another key;
 * KMS_ERR_STALE_RECORD when the store answers with another revision than the state log's. */
kms_err_t kms_vstate_load(const char *key_id, ValidatorGuardState *st);
/* The revision of key_id's state record the enclave's index holds (0: none), to replace a row
 * that no longer authenticates. KMS_ERR_DOMAIN_NOT_LOADED. */
kms_err_t kms_vstate_indexed_revision(const char *key_id, uint64_t *revision);
/* Persist st (its revision already bumped), conditional on the previous revision. */
kms_err_t kms_vstate_store(const ValidatorGuardState *st);
/* The first state of a new or imported validator key (revision 1). */
kms_err_t kms_vstate_create(const char *key_id, const char *chain_id, int64_t height, int32_t round, uint32_t step,
                            const uint8_t *sign_bytes, size_t sign_len, const uint8_t *sig, size_t sig_len);
/* HMAC-SHA-256 of an export (its mac field excluded) under a key derived from the domain key. */
kms_err_t kms_vstate_mac(const ValidatorStateExport *exp, uint8_t mac[32]);

#endif /* KMS_ENCLAVE_VALIDATOR_H */
