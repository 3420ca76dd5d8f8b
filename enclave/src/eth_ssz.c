/* eth_ssz.c - SSZ parsing and hash_tree_root of the objects validators sign (consensus specs, mainnet). */
#include <string.h>

#include "crypto.h"
#include "eth_ssz.h"

#define CHUNK 32
/* Bitlist limits (mainnet): MAX_VALIDATORS_PER_COMMITTEE; Electra: times MAX_COMMITTEES_PER_SLOT. */
#define PHASE0_AGG_BITS 2048u
#define ELECTRA_AGG_BITS (2048u * 64u)
#define MAX_DEPTH 10 /* ELECTRA_AGG_BITS / 256 = 512 chunks: depth 9 */

typedef uint8_t chunk_t[CHUNK];

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static kms_err_t hash_pair(const uint8_t *a, const uint8_t *b, uint8_t out[CHUNK])
{
    uint8_t buf[2 * CHUNK];
    memcpy(buf, a, CHUNK);
    memcpy(buf + CHUNK, b, CHUNK);
    return kms_sha256(buf, sizeof buf, out);
}

/* The root of n chunks padded with zero chunks to 2^depth leaves (n <= 2^depth); chunks is overwritten. */
static kms_err_t merkleize(chunk_t *chunks, size_t n, unsigned depth, uint8_t out[CHUNK])
{
    chunk_t zero[MAX_DEPTH + 1];
    memset(zero[0], 0, CHUNK);
    for (unsigned d = 0; d < depth; d++) KMS_RETURN_IF_ERR(hash_pair(zero[d], zero[d], zero[d + 1]));
    if (n == 0) {
        memcpy(out, zero[depth], CHUNK);
        return KMS_OK;
    }
    for (unsigned d = 0; d < depth; d++) {
        size_t half = (n + 1) / 2;
        for (size_t i = 0; i < half; i++)
            KMS_RETURN_IF_ERR(hash_pair(chunks[2 * i], 2 * i + 1 < n ? chunks[2 * i + 1] : zero[d], chunks[i]));
        n = half;
    }
    memcpy(out, chunks[0], CHUNK);
    return KMS_OK;
}

static void chunk_u64(const uint8_t *p, uint8_t out[CHUNK])
{
    memset(out, 0, CHUNK);
    memcpy(out, p, 8);
}

/* Bytes of len <= 32 as one chunk; longer (48, 96) as the root of their chunks. */
static kms_err_t bytes_root(const uint8_t *p, size_t len, uint8_t out[CHUNK])
{
    chunk_t c[4];
    size_t n = (len + CHUNK - 1) / CHUNK;
    memset(c, 0, sizeof c);
    memcpy(c, p, len);
    if (n == 1) {
        memcpy(out, c[0], CHUNK);
        return KMS_OK;
    }
    return merkleize(c, n, n <= 2 ? 1 : 2, out);
}

/* A container whose fields are described by sizes: 8 = uint64, others = bytes (via bytes_root), 0 = a
 * field root already in roots[i]. */
static kms_err_t container(const uint8_t *p, const size_t *sizes, size_t count, chunk_t *roots, uint8_t out[CHUNK])
{
    unsigned depth = 0;
    while (((size_t)1 << depth) < count) depth++;
    for (size_t i = 0; i < count; i++) {
        if (sizes[i] == 8) chunk_u64(p, roots[i]);
        else if (sizes[i] != 0) KMS_RETURN_IF_ERR(bytes_root(p, sizes[i], roots[i]));
        p += sizes[i];
    }
    return merkleize(roots, count, depth, out);
}

static kms_err_t checkpoint_root(const uint8_t *p, uint8_t out[CHUNK])
{
    static const size_t f[] = {8, 32};
    chunk_t r[2];
    return container(p, f, 2, r, out);
}

/* AttestationData (128): slot, index, beacon_block_root, source, target. */
static kms_err_t attestation_data_root(const uint8_t *p, uint8_t out[CHUNK])
{
    static const size_t f[] = {8, 8, 32, 0, 0};
    chunk_t r[5];
    KMS_RETURN_IF_ERR(checkpoint_root(p + 48, r[3]));
    KMS_RETURN_IF_ERR(checkpoint_root(p + 88, r[4]));
    return container(p, f, 5, r, out);
}

/* Bitlist[limit] in SSZ (delimiter bit last): its root, mix_in_length included. */
static kms_err_t bitlist_root(const uint8_t *p, size_t len, size_t limit, uint8_t out[CHUNK])
{
    if (len == 0 || p[len - 1] == 0 || len > limit / 8 + 1) return KMS_ERR_INVALID_ARGUMENT;
    unsigned top = 7;
    while (!(p[len - 1] & (1u << top))) top--;
    uint64_t bits = (uint64_t)(len - 1) * 8 + top;
    if (bits > limit) return KMS_ERR_INVALID_ARGUMENT;
    size_t data = (size_t)((bits + 7) / 8), limit_chunks = (limit + 255) / 256, n = (data + CHUNK - 1) / CHUNK;
    unsigned depth = 0;
    while (((size_t)1 << depth) < limit_chunks) depth++;
    chunk_t chunks[ELECTRA_AGG_BITS / 256];
    memset(chunks, 0, n * CHUNK);
    memcpy(chunks, p, data);
    if (data > 0 && bits % 8 != 0) ((uint8_t *)chunks)[data - 1] &= (uint8_t)((1u << (bits % 8)) - 1);
    uint8_t root[CHUNK], length[CHUNK];
    KMS_RETURN_IF_ERR(merkleize(chunks, n, depth, root));
    memset(length, 0, CHUNK);
    for (int i = 0; i < 8; i++) length[i] = (uint8_t)(bits >> (8 * i));
    return hash_pair(root, length, out);
}

/* Attestation: offset | data (128) | signature (96) [| committee_bits (8), Electra] | aggregation_bits. */
static kms_err_t attestation_root(const uint8_t *p, size_t len, int electra, uint8_t out[CHUNK])
{
    size_t fixed = 4 + 128 + 96 + (electra ? 8 : 0);
    if (len < fixed + 1 || len - fixed > (electra ? ELECTRA_AGG_BITS : PHASE0_AGG_BITS) / 8 + 1 ||
        p[0] != (uint8_t)fixed || p[1] != (uint8_t)(fixed >> 8) || p[2] != 0 || p[3] != 0)
        return KMS_ERR_INVALID_ARGUMENT;
    chunk_t r[4];
    KMS_RETURN_IF_ERR(bitlist_root(p + fixed, len - fixed, electra ? ELECTRA_AGG_BITS : PHASE0_AGG_BITS, r[0]));
    KMS_RETURN_IF_ERR(attestation_data_root(p + 4, r[1]));
    KMS_RETURN_IF_ERR(bytes_root(p + 132, 96, r[2]));
    if (!electra) return merkleize(r, 3, 2, out);
    memset(r[3], 0, CHUNK);
    memcpy(r[3], p + 228, 8); /* Bitvector[64]: every bit is in range */
    return merkleize(r, 4, 2, out);
}

/* AggregateAndProof: aggregator_index | offset (108) | selection_proof (96) | aggregate. */
static kms_err_t aggregate_and_proof_root(const uint8_t *p, size_t len, int electra, uint8_t out[CHUNK])
{
    if (len < 108 || p[8] != 108 || p[9] != 0 || p[10] != 0 || p[11] != 0)
        return KMS_ERR_INVALID_ARGUMENT;
    chunk_t r[3];
    chunk_u64(p, r[0]);
    KMS_RETURN_IF_ERR(attestation_root(p + 108, len - 108, electra, r[1]));
    KMS_RETURN_IF_ERR(bytes_root(p + 12, 96, r[2]));
    return merkleize(r, 3, 2, out);
}

/* ContributionAndProof (mainnet: 264): aggregator_index, contribution (160), selection_proof. */
static kms_err_t contribution_and_proof_root(const uint8_t *p, uint8_t out[CHUNK])
{
    static const size_t contribution[] = {8, 32, 8, 16, 96}; /* aggregation_bits: Bitvector[128] */
    chunk_t c[5], r[3];
    chunk_u64(p, r[0]);
    KMS_RETURN_IF_ERR(container(p + 8, contribution, 5, c, r[1]));
    KMS_RETURN_IF_ERR(bytes_root(p + 168, 96, r[2]));
    return merkleize(r, 3, 2, out);
}

static kms_err_t fixed_root(EthMessageType type, const uint8_t *p, size_t len, kms_eth_object *o)
{
    static const size_t header[] = {8, 8, 32, 32, 32}, exit_[] = {8, 8}, registration[] = {20, 8, 8, 48},
                        deposit[] = {48, 32, 8};
    chunk_t r[8];
    switch (type) {
    case EthMessageType_ETH_BLOCK_V2:
        if (len != 112) return KMS_ERR_INVALID_ARGUMENT;
        o->slashable = KMS_ETH_BLOCK, o->slot = le64(p);
        return container(p, header, 5, r, o->root);
    case EthMessageType_ETH_ATTESTATION:
        if (len != 128) return KMS_ERR_INVALID_ARGUMENT;
        o->slashable = KMS_ETH_ATTESTATION, o->source_epoch = le64(p + 48), o->target_epoch = le64(p + 88);
        return attestation_data_root(p, o->root);
    case EthMessageType_ETH_AGGREGATION_SLOT:
    case EthMessageType_ETH_RANDAO_REVEAL:
        if (len != 8) return KMS_ERR_INVALID_ARGUMENT;
        chunk_u64(p, o->root);
        return KMS_OK;
    case EthMessageType_ETH_SYNC_COMMITTEE_MESSAGE:
        if (len != 32) return KMS_ERR_INVALID_ARGUMENT;
        memcpy(o->root, p, 32);
        return KMS_OK;
    case EthMessageType_ETH_VOLUNTARY_EXIT:
    case EthMessageType_ETH_SYNC_COMMITTEE_SELECTION_PROOF:
        return len == 16 ? container(p, exit_, 2, r, o->root) : KMS_ERR_INVALID_ARGUMENT;
    case EthMessageType_ETH_SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF:
        return len == 264 ? contribution_and_proof_root(p, o->root) : KMS_ERR_INVALID_ARGUMENT;
    case EthMessageType_ETH_VALIDATOR_REGISTRATION:
        return len == 84 ? container(p, registration, 4, r, o->root) : KMS_ERR_INVALID_ARGUMENT;
    case EthMessageType_ETH_DEPOSIT:
        return len == 88 ? container(p, deposit, 3, r, o->root) : KMS_ERR_INVALID_ARGUMENT;
    default: return KMS_ERR_INVALID_ARGUMENT;
    }
}

kms_err_t kms_eth_object_parse(EthMessageType type, const uint8_t *ssz, size_t len, kms_eth_object *out)
{
    memset(out, 0, sizeof *out);
    if (type == EthMessageType_ETH_AGGREGATE_AND_PROOF || type == EthMessageType_ETH_AGGREGATE_AND_PROOF_V2)
        return aggregate_and_proof_root(ssz, len, type == EthMessageType_ETH_AGGREGATE_AND_PROOF_V2, out->root);
    return fixed_root(type, ssz, len, out);
}

/* DomainType of each message type (consensus specs; the builder's for registrations). */
static int domain_type(EthMessageType type, uint8_t out[4])
{
    static const uint8_t types[][4] = {
        [EthMessageType_ETH_BLOCK_V2] = {0, 0, 0, 0},
        [EthMessageType_ETH_ATTESTATION] = {1, 0, 0, 0},
        [EthMessageType_ETH_RANDAO_REVEAL] = {2, 0, 0, 0},
        [EthMessageType_ETH_DEPOSIT] = {3, 0, 0, 0},
        [EthMessageType_ETH_VOLUNTARY_EXIT] = {4, 0, 0, 0},
        [EthMessageType_ETH_AGGREGATION_SLOT] = {5, 0, 0, 0},
        [EthMessageType_ETH_AGGREGATE_AND_PROOF] = {6, 0, 0, 0},
        [EthMessageType_ETH_AGGREGATE_AND_PROOF_V2] = {6, 0, 0, 0},
        [EthMessageType_ETH_SYNC_COMMITTEE_MESSAGE] = {7, 0, 0, 0},
        [EthMessageType_ETH_SYNC_COMMITTEE_SELECTION_PROOF] = {8, 0, 0, 0},
        [EthMessageType_ETH_SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF] = {9, 0, 0, 0},
        [EthMessageType_ETH_VALIDATOR_REGISTRATION] = {0, 0, 0, 1},
    };
    if (type <= EthMessageType_ETH_MESSAGE_TYPE_UNSPECIFIED || type > _EthMessageType_MAX) return 0;
    memcpy(out, types[type], 4);
    return 1;
}

int kms_eth_type_is_genesis_domain(EthMessageType type)
{
    return type == EthMessageType_ETH_DEPOSIT || type == EthMessageType_ETH_VALIDATOR_REGISTRATION;
}

kms_err_t kms_eth_domain(EthMessageType type, const uint8_t fork_version[4], const uint8_t gvr[32], uint8_t domain[32])
{
    uint8_t version[CHUNK], fork_data_root[CHUNK];
    if (!domain_type(type, domain)) return KMS_ERR_INVALID_ARGUMENT;
    memset(version, 0, sizeof version);
    memcpy(version, fork_version, 4);
    KMS_RETURN_IF_ERR(hash_pair(version, gvr, fork_data_root));
    memcpy(domain + 4, fork_data_root, 28);
    return KMS_OK;
}

kms_err_t kms_eth_signing_root(const uint8_t object_root[32], const uint8_t domain[32], uint8_t out[32])
{
    return hash_pair(object_root, domain, out);
}

kms_err_t kms_eth_chain_root(const char *chain_id, uint8_t gvr[32])
{
    static const char digits[] = "0123456789abcdef";
    if (strlen(chain_id) != 66 || chain_id[0] != '0' || chain_id[1] != 'x') return KMS_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < 32; i++) {
        const char *hi = memchr(digits, chain_id[2 + 2 * i], 16), *lo = memchr(digits, chain_id[3 + 2 * i], 16);
        if (hi == NULL || lo == NULL) return KMS_ERR_INVALID_ARGUMENT;
        gvr[i] = (uint8_t)(((hi - digits) << 4) | (lo - digits));
    }
    return KMS_OK;
}
