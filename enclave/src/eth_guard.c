/* eth_guard.c - the Ethereum slashing guard's rules and its state record (eth_guard.h). */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "eth_guard.h"
#include "record.h"

#define MAX_BLOCKS (sizeof ((EthGuardState *)0)->blocks / sizeof ((EthGuardState *)0)->blocks[0])
#define MAX_ATTS (sizeof ((EthGuardState *)0)->attestations / sizeof ((EthGuardState *)0)->attestations[0])

static void state_id(const char *key_id, char out[KMS_ETHSTATE_ID_LEN])
{
    snprintf(out, KMS_ETHSTATE_ID_LEN, "ethstate-%s", key_id);
}

kms_err_t kms_eth_guard_create(const char *key_id, const uint8_t gvr[32])
{
    EthGuardState st;
    memset(&st, 0, sizeof st);
    snprintf(st.key_id, sizeof st.key_id, "%s", key_id);
    memcpy(st.genesis_validators_root.bytes, gvr, 32);
    st.genesis_validators_root.size = 32;
    st.has_watermark = true;
    return kms_eth_guard_store(&st);
}

kms_err_t kms_eth_guard_load(const char *key_id, EthGuardState *st)
{
    char id[KMS_ETHSTATE_ID_LEN];
    uint64_t revision = 0;
    int found = 0;
    state_id(key_id, id);
    memset(st, 0, sizeof *st);
    KMS_RETURN_IF_ERR(kms_record_load(id, EthGuardState_fields, st, EthGuardState_size, &found, &revision));
    /* Created with the key: a missing state means a tampered store. */
    if (!found || st->revision != revision || strcmp(st->key_id, key_id) != 0 ||
        st->genesis_validators_root.size != 32)
        return KMS_ERR_RECORD_CORRUPT;
    st->has_watermark = true;
    return KMS_OK;
}

kms_err_t kms_eth_guard_store(EthGuardState *st)
{
    char id[KMS_ETHSTATE_ID_LEN];
    state_id(st->key_id, id);
    st->revision++;
    return kms_record_store(id, EthGuardState_fields, st, EthGuardState_size, st->revision - 1, st->revision);
}

static int raise_u64(uint64_t *field, uint64_t to)
{
    if (*field >= to) return 0;
    *field = to;
    return 1;
}

int kms_eth_guard_raise(EthGuardState *st, const EthWatermark *w)
{
    int rose = raise_u64(&st->watermark.min_block_slot, w->min_block_slot);
    rose |= raise_u64(&st->watermark.min_source_epoch, w->min_source_epoch);
    rose |= raise_u64(&st->watermark.min_target_epoch, w->min_target_epoch);
    return rose;
}

/* Append to a bounded list, dropping the oldest (its position is already below the watermark). */
#define PUSH(list, count, max, item)                                                                         \
    do {                                                                                                     \
        if ((count) == (max)) {                                                                              \
            memmove(&(list)[0], &(list)[1], ((max) - 1) * sizeof (list)[0]);                                 \
            (count)--;                                                                                       \
        }                                                                                                    \
        (list)[(count)++] = (item);                                                                          \
    } while (0)

/* Equal and known: a zero root is EIP-3076's "unknown", never the same as another. */
static int same_root(const uint8_t stored[32], pb_size_t stored_len, const uint8_t root[32])
{
    static const uint8_t zero[32];
    return stored_len == 32 && CRYPTO_memcmp(stored, root, 32) == 0 && CRYPTO_memcmp(root, zero, 32) != 0;
}

static kms_err_t admit_block(EthGuardState *st, uint64_t slot, const uint8_t root[32], int *repeat)
{
    for (pb_size_t i = 0; i < st->blocks_count; i++) {
        if (st->blocks[i].slot != slot) continue;
        if (!same_root(st->blocks[i].signing_root.bytes, st->blocks[i].signing_root.size, root))
            return KMS_ERR_SLASHING_PROTECTION;
        *repeat = 1;
        return KMS_OK;
    }
    if (slot < st->watermark.min_block_slot || slot == UINT64_MAX) return KMS_ERR_SLASHING_PROTECTION;
    EthSignedBlock b = {.slot = slot, .signing_root = {.size = 32}};
    memcpy(b.signing_root.bytes, root, 32);
    PUSH(st->blocks, st->blocks_count, MAX_BLOCKS, b);
    st->watermark.min_block_slot = slot + 1;
    return KMS_OK;
}

static kms_err_t admit_attestation(EthGuardState *st, uint64_t source, uint64_t target, const uint8_t root[32],
                                   int *repeat)
{
    if (source > target) return KMS_ERR_SLASHING_PROTECTION;
    for (pb_size_t i = 0; i < st->attestations_count; i++) {
        const EthSignedAttestation *a = &st->attestations[i];
        if (a->target_epoch != target) continue;
        if (a->source_epoch != source || !same_root(a->signing_root.bytes, a->signing_root.size, root))
            return KMS_ERR_SLASHING_PROTECTION; /* a double vote */
        *repeat = 1;
        return KMS_OK;
    }
    /* Below the watermark: a double vote, a surround (either way) or unknown history. */
    if (source < st->watermark.min_source_epoch || target < st->watermark.min_target_epoch || target == UINT64_MAX)
        return KMS_ERR_SLASHING_PROTECTION;
    EthSignedAttestation a = {.source_epoch = source, .target_epoch = target, .signing_root = {.size = 32}};
    memcpy(a.signing_root.bytes, root, 32);
    PUSH(st->attestations, st->attestations_count, MAX_ATTS, a);
    st->watermark.min_source_epoch = source;
    st->watermark.min_target_epoch = target + 1;
    return KMS_OK;
}

kms_err_t kms_eth_guard_admit(EthGuardState *st, const kms_eth_object *o, const uint8_t root[32], int *repeat)
{
    *repeat = 0;
    switch (o->slashable) {
    case KMS_ETH_BLOCK: return admit_block(st, o->slot, root, repeat);
    case KMS_ETH_ATTESTATION: return admit_attestation(st, o->source_epoch, o->target_epoch, root, repeat);
    default: return KMS_OK;
    }
}
