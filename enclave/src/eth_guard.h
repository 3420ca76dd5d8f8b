/*
 * eth_guard.h - Ethereum slashing protection inside the enclave (consensus specs' slashing
 * conditions, EIP-3076's minimal strategy; docs/ethereum-keys.md). Per key, a record
 * "ethstate-<key id>" (EthGuardState, encrypted under the domain key and committed with the state
 * log like the CometBFT guard's) holds the watermark (the lowest block slot, source and target
 * epoch still signable) and the last EthGuardState blocks/attestations signed, for repeats.
 *
 * Rules (kms_eth_guard_admit): a block at a slot already stored is answered again only with the
 * same signing root; any other block needs slot >= min_block_slot. An attestation at a target
 * already stored is answered again only with the same source and signing root; any other needs
 * source >= min_source_epoch and target >= min_target_epoch (and source <= target). Signing moves
 * the watermark to slot + 1, or to (source, target + 1): every later request must lie above every
 * earlier one, so no two blocks share a slot, no two votes share a target, and none surrounds
 * another. The record is written before a signature that depends on it leaves the enclave.
 * Thread-safe as the record store is: a write is conditional on the revision read.
 */
#ifndef KMS_ENCLAVE_ETH_GUARD_H
#define KMS_ENCLAVE_ETH_GUARD_H

#include <stdint.h>

#include "eth_ssz.h"
#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

#define KMS_ETHSTATE_ID_LEN 64

/* The first state of a new BLS12_381 key (revision 1, no watermark). */
kms_err_t kms_eth_guard_create(const char *key_id, const uint8_t gvr[32]);
/* key_id's state. KMS_ERR_RECORD_CORRUPT when missing, altered or for another key; store errors. */
kms_err_t kms_eth_guard_load(const char *key_id, EthGuardState *st);
/* Persist st with its revision bumped, conditional on the revision read. */
kms_err_t kms_eth_guard_store(EthGuardState *st);
/* Raise st's watermark to at least w, field by field (the signer's watermark, an import). 1 if it rose. */
int kms_eth_guard_raise(EthGuardState *st, const EthWatermark *w);
/*
 * Decide a slashable object o with signing root `root` against st. KMS_OK with *repeat when it is a
 * stored request again (st unchanged), KMS_OK with st updated (not persisted) when new,
 * KMS_ERR_SLASHING_PROTECTION when refused.
 */
kms_err_t kms_eth_guard_admit(EthGuardState *st, const kms_eth_object *o, const uint8_t root[32], int *repeat);

#endif /* KMS_ENCLAVE_ETH_GUARD_H */
