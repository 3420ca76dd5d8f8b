/*
 * cometbft.h - CometBFT canonical sign bytes as the double-sign guard reads them. Parsing is
 * strict: the uvarint length prefix must cover the rest exactly, and re-encoding the decoded
 * message must give back the same bytes, so the fields checked are the fields signed.
 * Pure functions; thread-safe. Sizes in bytes.
 */
#ifndef KMS_ENCLAVE_COMETBFT_H
#define KMS_ENCLAVE_COMETBFT_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/cometbft.pb.h"

/* The longest CometBFT chain id (the enclave's records hold 50 characters). */
#define KMS_CMT_CHAIN_ID_MAX 50

/* FilePV steps. */
enum { KMS_STEP_PROPOSE = 1, KMS_STEP_PREVOTE = 2, KMS_STEP_PRECOMMIT = 3 };

typedef struct {
    int is_proposal;
    int64_t height;
    int32_t round;
    uint32_t step;
    int block_id_nil;
    uint8_t block_id_hash[32]; /* SHA-256 of the encoded block id (zeros when nil) */
    char chain_id[51];
    int has_timestamp;
    CmtTimestamp timestamp;
    CmtCanonicalVote vote;      /* valid when !is_proposal */
    CmtCanonicalProposal proposal; /* valid when is_proposal */
} kms_cmt_msg;

/* Parse vote (is_proposal 0) or proposal sign bytes. KMS_ERR_INVALID_ARGUMENT on anything
 * non-canonical, a wrong type, a negative height or round, or a round above INT32_MAX. */
kms_err_t kms_cmt_parse(int is_proposal, const uint8_t *bytes, size_t len, kms_cmt_msg *out);

/* Re-encode msg (length-prefixed) with the timestamp of `ts_from` into out (cap bytes). */
kms_err_t kms_cmt_encode_with_timestamp(const kms_cmt_msg *msg, const kms_cmt_msg *ts_from, uint8_t *out, size_t cap,
                                        size_t *len);

/* Parse vote-extension sign bytes and check they belong to (height, round, chain_id). */
kms_err_t kms_cmt_parse_extension(const uint8_t *bytes, size_t len, int64_t height, int32_t round,
                                  const char *chain_id);

#endif /* KMS_ENCLAVE_COMETBFT_H */
