/*
 * eth_ssz.h - what an Ethereum validator signs: the SSZ object of each message type parsed with exact
 * lengths (the aggregate's attestation: the one variable layout, bounded and checked), its
 * hash_tree_root (SSZ merkleization with SHA-256 from OpenSSL), compute_domain and
 * compute_signing_root (consensus specs, mainnet preset). Pure functions; thread-safe.
 */
#ifndef KMS_ENCLAVE_ETH_SSZ_H
#define KMS_ENCLAVE_ETH_SSZ_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/* What the slashing guard reads from a parsed object. */
typedef enum { KMS_ETH_NOT_SLASHABLE = 0, KMS_ETH_BLOCK = 1, KMS_ETH_ATTESTATION = 2 } kms_eth_slashable;

typedef struct {
    kms_eth_slashable slashable;
    uint64_t slot;          /* KMS_ETH_BLOCK */
    uint64_t source_epoch;  /* KMS_ETH_ATTESTATION */
    uint64_t target_epoch;
    uint8_t root[32];       /* hash_tree_root of the object */
} kms_eth_object;

/* Parse ssz as type's object and compute its root. KMS_ERR_INVALID_ARGUMENT for a wrong length, a bad
 * offset or bitlist, or an unknown type. */
kms_err_t kms_eth_object_parse(EthMessageType type, const uint8_t *ssz, size_t len, kms_eth_object *out);

/* compute_domain(type's DomainType, fork_version, genesis_validators_root). */
kms_err_t kms_eth_domain(EthMessageType type, const uint8_t fork_version[4], const uint8_t gvr[32], uint8_t domain[32]);

/* compute_signing_root: hash_tree_root(SigningData(object_root, domain)). */
kms_err_t kms_eth_signing_root(const uint8_t object_root[32], const uint8_t domain[32], uint8_t out[32]);

/* A BLS12_381 key's chain id ("0x" + 64 lower-case hex digits) as its genesis_validators_root.
 * KMS_ERR_INVALID_ARGUMENT for anything else. */
kms_err_t kms_eth_chain_root(const char *chain_id, uint8_t gvr[32]);

/* 1 for the types whose domain uses the genesis fork version and a zero genesis_validators_root. */
int kms_eth_type_is_genesis_domain(EthMessageType type);

#endif /* KMS_ENCLAVE_ETH_SSZ_H */
