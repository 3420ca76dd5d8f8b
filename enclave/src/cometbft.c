/* cometbft.c - strict parsing of CometBFT canonical sign bytes (uvarint-length-prefixed protobuf). */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "cometbft.h"
#include "crypto.h"

#define CMT_MAX_BYTES 4400u

/* Strip the uvarint length prefix; the rest must be exactly that long. */
static kms_err_t unprefix(const uint8_t *bytes, size_t len, const uint8_t **body, size_t *body_len)
{
    uint64_t n = 0;
    size_t i = 0;
    for (int shift = 0; i < len && i < 10; shift += 7) {
        uint8_t b = bytes[i++];
        n |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (n != len - i) return KMS_ERR_INVALID_ARGUMENT;
            *body = bytes + i;
            *body_len = (size_t)n;
            return KMS_OK;
        }
    }
    return KMS_ERR_INVALID_ARGUMENT;
}

/* Encode msg (fields) with a uvarint length prefix into out. */
static kms_err_t encode_prefixed(const pb_msgdesc_t *fields, const void *msg, uint8_t *out, size_t cap, size_t *len)
{
    size_t body = 0;
    if (!pb_get_encoded_size(&body, fields, msg)) return KMS_ERR_ENCODE;
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    if (!pb_encode_varint(&os, body) || !pb_encode(&os, fields, msg)) return KMS_ERR_BUFFER_TOO_SMALL;
    *len = os.bytes_written;
    return KMS_OK;
}

/* Decode, then require the canonical re-encoding to be the same bytes. */
static kms_err_t decode_strict(const pb_msgdesc_t *fields, void *msg, const uint8_t *bytes, size_t len)
{
    const uint8_t *body = NULL;
    size_t body_len = 0, again_len = 0;
    uint8_t again[CMT_MAX_BYTES];
    if (len > sizeof again) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(unprefix(bytes, len, &body, &body_len));
    pb_istream_t is = pb_istream_from_buffer(body, body_len);
    if (!pb_decode(&is, fields, msg)) return KMS_ERR_INVALID_ARGUMENT;
    if (encode_prefixed(fields, msg, again, sizeof again, &again_len) != KMS_OK || again_len != len ||
        memcmp(again, bytes, len) != 0)
        return KMS_ERR_INVALID_ARGUMENT;
    return KMS_OK;
}

static kms_err_t hash_block_id(int has, const CmtBlockId *id, kms_cmt_msg *out)
{
    uint8_t buf[CmtBlockId_size];
    memset(out->block_id_hash, 0, sizeof out->block_id_hash);
    out->block_id_nil = !has || (id->hash.size == 0 && !id->has_part_set_header);
    if (out->block_id_nil) return KMS_OK;
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    if (!pb_encode(&os, CmtBlockId_fields, id)) return KMS_ERR_ENCODE;
    return kms_sha256(buf, os.bytes_written, out->block_id_hash);
}

static kms_err_t fill_vote(kms_cmt_msg *out)
{
    const CmtCanonicalVote *v = &out->vote;
    if ((v->type != 1 && v->type != 2) || v->height < 0 || v->round < 0 || v->round > INT32_MAX)
        return KMS_ERR_INVALID_ARGUMENT;
    out->height = v->height;
    out->round = (int32_t)v->round;
    out->step = v->type == 1 ? KMS_STEP_PREVOTE : KMS_STEP_PRECOMMIT;
    out->timestamp = v->timestamp;
    out->has_timestamp = v->has_timestamp;
    memcpy(out->chain_id, v->chain_id, sizeof out->chain_id);
    return hash_block_id(v->has_block_id, &v->block_id, out);
}

static kms_err_t fill_proposal(kms_cmt_msg *out)
{
    const CmtCanonicalProposal *p = &out->proposal;
    if (p->type != 32 || p->height < 0 || p->round < 0 || p->round > INT32_MAX || p->pol_round < -1)
        return KMS_ERR_INVALID_ARGUMENT;
    out->height = p->height;
    out->round = (int32_t)p->round;
    out->step = KMS_STEP_PROPOSE;
    out->timestamp = p->timestamp;
    out->has_timestamp = p->has_timestamp;
    memcpy(out->chain_id, p->chain_id, sizeof out->chain_id);
    return hash_block_id(p->has_block_id, &p->block_id, out);
}

kms_err_t kms_cmt_parse(int is_proposal, const uint8_t *bytes, size_t len, kms_cmt_msg *out)
{
    memset(out, 0, sizeof *out);
    out->is_proposal = is_proposal;
    if (is_proposal) {
        KMS_RETURN_IF_ERR(decode_strict(CmtCanonicalProposal_fields, &out->proposal, bytes, len));
        return fill_proposal(out);
    }
    KMS_RETURN_IF_ERR(decode_strict(CmtCanonicalVote_fields, &out->vote, bytes, len));
    return fill_vote(out);
}

kms_err_t kms_cmt_encode_with_timestamp(const kms_cmt_msg *msg, const kms_cmt_msg *ts_from, uint8_t *out, size_t cap,
                                        size_t *len)
{
    if (msg->is_proposal) {
        CmtCanonicalProposal p = msg->proposal;
        p.timestamp = ts_from->timestamp;
        p.has_timestamp = ts_from->has_timestamp;
        return encode_prefixed(CmtCanonicalProposal_fields, &p, out, cap, len);
    }
    CmtCanonicalVote v = msg->vote;
    v.timestamp = ts_from->timestamp;
    v.has_timestamp = ts_from->has_timestamp;
    return encode_prefixed(CmtCanonicalVote_fields, &v, out, cap, len);
}

kms_err_t kms_cmt_parse_extension(const uint8_t *bytes, size_t len, int64_t height, int32_t round,
                                  const char *chain_id)
{
    CmtCanonicalVoteExtension ext;
    memset(&ext, 0, sizeof ext);
    KMS_RETURN_IF_ERR(decode_strict(CmtCanonicalVoteExtension_fields, &ext, bytes, len));
    if (ext.height != height || ext.round != round || strcmp(ext.chain_id, chain_id) != 0)
        return KMS_ERR_INVALID_ARGUMENT;
    return KMS_OK;
}
