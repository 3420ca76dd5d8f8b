/*
 * sign.c - C_Sign* and C_Verify*: each mechanism becomes one SignRequest/VerifyRequest (or
 * GenerateMac/VerifyMac) on the key's id.
 *
 * Hash-then-sign mechanisms hash here (OpenSSL) and send the digest (message_type DIGEST), so
 * multi-part input of any length works. CKM_ECDSA's caller-supplied hash is turned into the
 * order-sized integer ECDSA uses (SEC 1 4.1.3 step 5: the leftmost bits when longer, the same
 * integer left-padded when shorter; the orders of P-256, P-384 and secp256k1 are whole bytes),
 * which is what the enclave's DIGEST mode signs. CKM_RSA_PKCS takes a DigestInfo for SHA-256,
 * -384 or -512 (what the enclave's PKCS#1 v1.5 DIGEST mode encodes itself); any other input is
 * CKR_DATA_INVALID, since the enclave does not sign arbitrary PKCS#1 v1.5 blocks.
 */
#include <string.h>

#include "ops.h"

enum { MODE_RAW = 1, MODE_DIGEST, MODE_ECDSA, MODE_DIGESTINFO, MODE_MAC };

/* Fields of CK_EDDSA_PARAMS (PKCS#11 3.0), absent from p11-kit's 2.40 header. */
struct eddsa_params {
    CK_BBOOL ph_flag;
    CK_ULONG context_len;
    CK_BYTE *context;
};

static const struct {
    CK_MECHANISM_TYPE hash, mgf;
    size_t len;
    int pss, pkcs1;
    uint8_t digest_info[19];
} HASHES[] = {
    {CKM_SHA256, CKG_MGF1_SHA256, 32, SigningAlgorithm_RSASSA_PSS_SHA_256, SigningAlgorithm_RSASSA_PKCS1_V1_5_SHA_256,
     {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
    {CKM_SHA384, CKG_MGF1_SHA384, 48, SigningAlgorithm_RSASSA_PSS_SHA_384, SigningAlgorithm_RSASSA_PKCS1_V1_5_SHA_384,
     {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
    {CKM_SHA512, CKG_MGF1_SHA512, 64, SigningAlgorithm_RSASSA_PSS_SHA_512, SigningAlgorithm_RSASSA_PKCS1_V1_5_SHA_512,
     {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
};
#define NHASHES (sizeof HASHES / sizeof HASHES[0])

/* The hash a hash-then-sign mechanism computes (CKM_SHA256...), or 0 for the raw ones. */
static CK_MECHANISM_TYPE mech_hash(CK_MECHANISM_TYPE m)
{
    switch (m) {
    case CKM_ECDSA_SHA256: case CKM_SHA256_RSA_PKCS: case CKM_SHA256_RSA_PKCS_PSS: return CKM_SHA256;
    case CKM_ECDSA_SHA384: case CKM_SHA384_RSA_PKCS: case CKM_SHA384_RSA_PKCS_PSS: return CKM_SHA384;
    case CKM_ECDSA_SHA512: case CKM_SHA512_RSA_PKCS: case CKM_SHA512_RSA_PKCS_PSS: return CKM_SHA512;
    default: return 0;
    }
}

static size_t hash_index(CK_MECHANISM_TYPE hash)
{
    size_t i = 0;
    while (i < NHASHES && HASHES[i].hash != hash) i++;
    return i;
}

static const EVP_MD *evp_md(CK_MECHANISM_TYPE hash)
{
    return hash == CKM_SHA256 ? EVP_sha256() : hash == CKM_SHA384 ? EVP_sha384() : EVP_sha512();
}

static CK_RV plan_pss(const CK_MECHANISM *m, struct p11_op *op)
{
    const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
    if (p == NULL || m->ulParameterLen != sizeof *p) return CKR_MECHANISM_PARAM_INVALID;
    size_t i = hash_index(p->hashAlg);
    CK_MECHANISM_TYPE want = mech_hash(m->mechanism);
    if (i == NHASHES || p->mgf != HASHES[i].mgf || p->sLen != HASHES[i].len || (want && want != p->hashAlg))
        return CKR_MECHANISM_PARAM_INVALID; /* the enclave's PSS: MGF1 with the same hash, salt = hash length */
    op->alg = HASHES[i].pss;
    op->mode = MODE_DIGEST;
    op->digest_len = HASHES[i].len;
    return CKR_OK;
}

static CK_RV plan_rsa(const CK_MECHANISM *m, struct p11_op *op)
{
    switch (m->mechanism) {
    case CKM_RSA_PKCS: op->mode = MODE_DIGESTINFO; return CKR_OK;
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS: {
        size_t i = hash_index(mech_hash(m->mechanism));
        op->alg = HASHES[i].pkcs1;
        op->mode = MODE_DIGEST;
        op->digest_len = HASHES[i].len;
        return CKR_OK;
    }
    case CKM_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_SHA512_RSA_PKCS_PSS: return plan_pss(m, op);
    default: return CKR_KEY_TYPE_INCONSISTENT;
    }
}

static CK_RV plan_eddsa(const CK_MECHANISM *m, struct p11_op *op)
{
    if (m->mechanism != CKM_EDDSA) return CKR_KEY_TYPE_INCONSISTENT;
    const struct eddsa_params *p = m->pParameter;
    if (p != NULL && (m->ulParameterLen != sizeof *p || p->ph_flag || p->context_len != 0))
        return CKR_MECHANISM_PARAM_INVALID; /* Ed25519ph and Ed25519ctx: not in the enclave */
    op->alg = SigningAlgorithm_ED25519_PURE;
    op->mode = MODE_RAW;
    return CKR_OK;
}

static CK_RV plan(const CK_MECHANISM *m, struct p11_op *op)
{
    KeySpec spec = op->key.spec;
    switch (p11_key_type(spec)) {
    case CKK_EC:
        if (m->mechanism != CKM_ECDSA && !(m->mechanism >= CKM_ECDSA_SHA256 && m->mechanism <= CKM_ECDSA_SHA512))
            return CKR_KEY_TYPE_INCONSISTENT;
        op->order = spec == KeySpec_ECC_NIST_P384 ? 48 : 32;
        op->alg = spec == KeySpec_ECC_NIST_P384 ? SigningAlgorithm_ECDSA_SHA_384 : SigningAlgorithm_ECDSA_SHA_256;
        op->mode = MODE_ECDSA;
        return CKR_OK;
    case CKK_RSA: return plan_rsa(m, op);
    case CKK_EC_EDWARDS: return plan_eddsa(m, op);
    case CKK_SHA256_HMAC: op->mode = MODE_MAC; return m->mechanism == CKM_SHA256_HMAC ? CKR_OK : CKR_KEY_TYPE_INCONSISTENT;
    case CKK_SHA384_HMAC: op->mode = MODE_MAC; return m->mechanism == CKM_SHA384_HMAC ? CKR_OK : CKR_KEY_TYPE_INCONSISTENT;
    case CKK_SHA512_HMAC: op->mode = MODE_MAC; return m->mechanism == CKM_SHA512_HMAC ? CKR_OK : CKR_KEY_TYPE_INCONSISTENT;
    default: return CKR_KEY_TYPE_INCONSISTENT;
    }
}

static CK_RV check_key(const struct p11_object *k, bool sign)
{
    bool mac = k->kind == P11_SECRET && k->usage == KeyUsage_GENERATE_VERIFY_MAC;
    bool asym = k->kind == (sign ? P11_PRIVATE : P11_PUBLIC) && k->usage == KeyUsage_SIGN_VERIFY;
    return mac || asym ? CKR_OK : CKR_KEY_FUNCTION_NOT_PERMITTED;
}

static CK_RV sig_init(CK_SESSION_HANDLE h, const CK_MECHANISM *m, CK_OBJECT_HANDLE key, enum p11_op_kind kind)
{
    if (m == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_op *op = NULL;
    rv = p11_op_begin(s, kind, &op);
    if (rv == CKR_OK) rv = p11_mech_check(m->mechanism, kind == P11_OP_SIGN ? CKF_SIGN : CKF_VERIFY);
    if (rv == CKR_OK) rv = p11_op_key(h, key, op);
    if (rv == CKR_OK) rv = check_key(&op->key, kind == P11_OP_SIGN);
    if (rv == CKR_OK) rv = plan(m, op);
    CK_MECHANISM_TYPE hash = mech_hash(m->mechanism);
    if (rv == CKR_OK && hash != 0) {
        op->mdctx = EVP_MD_CTX_new();
        if (op->mdctx == NULL || EVP_DigestInit_ex(op->mdctx, evp_md(hash), NULL) != 1) rv = CKR_HOST_MEMORY;
    }
    if (rv == CKR_OK) {
        op->mech = m->mechanism;
        s->ops[kind] = op;
    } else {
        p11_op_free(op);
    }
    p11_session_put(s);
    return rv;
}

/* The message or digest to send and its message type, from what the caller gave. */
static CK_RV sig_message(struct p11_op *op, uint8_t *msg, size_t *msg_len, MessageType *type)
{
    const uint8_t *in = NULL;
    size_t n = 0;
    CK_RV rv = p11_op_input(op, &in, &n);
    if (rv != CKR_OK) return rv;
    *type = MessageType_DIGEST;
    if (op->mode == MODE_RAW || op->mode == MODE_MAC) {
        *type = MessageType_RAW;
    } else if (op->mode == MODE_ECDSA) { /* the integer ECDSA signs, as order-sized bytes */
        if (n == 0 || n > 64) return CKR_DATA_LEN_RANGE;
        size_t pad = n < op->order ? op->order - n : 0;
        memset(msg, 0, pad);
        memcpy(msg + pad, in, n < op->order ? n : op->order);
        *msg_len = op->order;
        return CKR_OK;
    } else if (op->mode == MODE_DIGESTINFO) {
        size_t i = 0;
        while (i < NHASHES && !(n == 19 + HASHES[i].len && memcmp(in, HASHES[i].digest_info, 19) == 0)) i++;
        if (i == NHASHES) return CKR_DATA_INVALID;
        op->alg = HASHES[i].pkcs1;
        in += 19;
        n -= 19;
    } else if (n != op->digest_len) {
        return CKR_DATA_LEN_RANGE; /* CKM_RSA_PKCS_PSS: exactly the hash */
    }
    if (n > P11_MAX_DATA) return CKR_DATA_LEN_RANGE;
    if (n) memcpy(msg, in, n);
    *msg_len = n;
    return CKR_OK;
}

static CK_RV sign_compute(struct p11_session *s, struct p11_op *op)
{
    (void)s;
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    Request *r = &m->req.body.request;
    MessageType type = MessageType_RAW;
    size_t n = 0;
    CK_RV rv;
    if (op->mode == MODE_MAC) {
        r->which_op = Request_generate_mac_tag;
        strcpy(r->op.generate_mac.key_id, op->key.key_id);
        rv = sig_message(op, r->op.generate_mac.message.bytes, &n, &type);
        r->op.generate_mac.message.size = (pb_size_t)n;
    } else {
        SignRequest *q = &r->op.sign;
        r->which_op = Request_sign_tag;
        strcpy(q->key_id, op->key.key_id);
        rv = sig_message(op, q->message.bytes, &n, &type);
        q->message.size = (pb_size_t)n;
        q->message_type = type;
        q->algorithm = (SigningAlgorithm)op->alg;
        q->format = SignatureFormat_SIGNATURE_FORMAT_P1363; /* PKCS#11's ECDSA signature is r || s */
    }
    if (rv == CKR_OK) rv = p11_enclave_call(&m->req, &m->resp, true);
    const Response *resp = &m->resp.body.response;
    if (rv == CKR_OK && op->mode == MODE_MAC && resp->which_result == Response_generate_mac_tag)
        rv = p11_op_set_out(op, resp->result.generate_mac.mac.bytes, resp->result.generate_mac.mac.size);
    else if (rv == CKR_OK && op->mode != MODE_MAC && resp->which_result == Response_sign_tag)
        rv = p11_op_set_out(op, resp->result.sign.signature.bytes, resp->result.sign.signature.size);
    else if (rv == CKR_OK)
        rv = CKR_DEVICE_ERROR;
    p11_msg_free(m);
    return rv;
}

/* The signature length a key's mechanism gives, for CKR_SIGNATURE_LEN_RANGE. */
static size_t sig_len(const struct p11_op *op)
{
    switch (op->key.spec) {
    case KeySpec_RSA_2048: return 256;
    case KeySpec_RSA_3072: return 384;
    case KeySpec_RSA_4096: return 512;
    case KeySpec_ED25519: return 64;
    case KeySpec_HMAC_SHA_256: return 32;
    case KeySpec_HMAC_SHA_384: return 48;
    case KeySpec_HMAC_SHA_512: return 64;
    default: return 2 * op->order;
    }
}

static CK_RV verify_compute(struct p11_op *op, const CK_BYTE *sig, CK_ULONG sig_len_given)
{
    if (sig == NULL) return CKR_ARGUMENTS_BAD;
    if (sig_len_given != sig_len(op)) return CKR_SIGNATURE_LEN_RANGE;
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    Request *r = &m->req.body.request;
    MessageType type = MessageType_RAW;
    size_t n = 0;
    CK_RV rv;
    if (op->mode == MODE_MAC) {
        VerifyMacRequest *q = &r->op.verify_mac;
        r->which_op = Request_verify_mac_tag;
        strcpy(q->key_id, op->key.key_id);
        rv = sig_message(op, q->message.bytes, &n, &type);
        q->message.size = (pb_size_t)n;
        memcpy(q->mac.bytes, sig, sig_len_given);
        q->mac.size = (pb_size_t)sig_len_given;
    } else {
        VerifyRequest *q = &r->op.verify;
        r->which_op = Request_verify_tag;
        strcpy(q->key_id, op->key.key_id);
        rv = sig_message(op, q->message.bytes, &n, &type);
        q->message.size = (pb_size_t)n;
        q->message_type = type;
        q->algorithm = (SigningAlgorithm)op->alg;
        q->format = SignatureFormat_SIGNATURE_FORMAT_P1363;
        memcpy(q->signature.bytes, sig, sig_len_given);
        q->signature.size = (pb_size_t)sig_len_given;
    }
    if (rv == CKR_OK) rv = p11_enclave_call(&m->req, &m->resp, true);
    p11_msg_free(m);
    return rv;
}

P11_EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
    return sig_init(h, m, key, P11_OP_SIGN);
}

P11_EXPORT CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
    return sig_init(h, m, key, P11_OP_VERIFY);
}

/* Runs body with s's operation of kind; CKR_OPERATION_NOT_INITIALIZED when there is none. */
static CK_RV with_op(CK_SESSION_HANDLE h, enum p11_op_kind kind, struct p11_session **s)
{
    CK_RV rv = p11_session_get(h, s);
    if (rv != CKR_OK) return rv;
    if ((*s)->ops[kind] != NULL) return CKR_OK;
    p11_session_put(*s);
    return CKR_OPERATION_NOT_INITIALIZED;
}

P11_EXPORT CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE *data, CK_ULONG len, CK_BYTE *sig, CK_ULONG *sig_len_out)
{
    struct p11_session *s = NULL;
    CK_RV rv = with_op(h, P11_OP_SIGN, &s);
    if (rv != CKR_OK) return rv;
    if (!s->ops[P11_OP_SIGN]->have_out) rv = p11_op_add(s->ops[P11_OP_SIGN], data, len);
    if (rv == CKR_OK) rv = p11_op_output(s, P11_OP_SIGN, sign_compute, sig, sig_len_out);
    else p11_op_end(s, P11_OP_SIGN);
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE *part, CK_ULONG len)
{
    struct p11_session *s = NULL;
    CK_RV rv = with_op(h, P11_OP_SIGN, &s);
    if (rv != CKR_OK) return rv;
    rv = p11_op_add(s->ops[P11_OP_SIGN], part, len);
    if (rv != CKR_OK) p11_op_end(s, P11_OP_SIGN);
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE *sig, CK_ULONG *sig_len_out)
{
    struct p11_session *s = NULL;
    CK_RV rv = with_op(h, P11_OP_SIGN, &s);
    if (rv != CKR_OK) return rv;
    rv = p11_op_output(s, P11_OP_SIGN, sign_compute, sig, sig_len_out);
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE *data, CK_ULONG len, CK_BYTE *sig, CK_ULONG sig_len_in)
{
    struct p11_session *s = NULL;
    CK_RV rv = with_op(h, P11_OP_VERIFY, &s);
    if (rv != CKR_OK) return rv;
    rv = p11_op_add(s->ops[P11_OP_VERIFY], data, len);
    if (rv == CKR_OK) rv = verify_compute(s->ops[P11_OP_VERIFY], sig, sig_len_in);
    p11_op_end(s, P11_OP_VERIFY);
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE *part, CK_ULONG len)
{
    struct p11_session *s = NULL;
    CK_RV rv = with_op(h, P11_OP_VERIFY, &s);
    if (rv != CKR_OK) return rv;
    rv = p11_op_add(s->ops[P11_OP_VERIFY], part, len);
    if (rv != CKR_OK) p11_op_end(s, P11_OP_VERIFY);
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE *sig, CK_ULONG sig_len_in)
{
    struct p11_session *s = NULL;
    CK_RV rv = with_op(h, P11_OP_VERIFY, &s);
    if (rv != CKR_OK) return rv;
    rv = verify_compute(s->ops[P11_OP_VERIFY], sig, sig_len_in);
    p11_op_end(s, P11_OP_VERIFY);
    p11_session_put(s);
    return rv;
}
