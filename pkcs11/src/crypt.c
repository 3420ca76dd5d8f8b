/*
 * crypt.c - C_Encrypt* / C_Decrypt* and C_GenerateRandom.
 *
 * CKM_AES_GCM is the KMS's AES-256-GCM envelope (docs/formats.md): the enclave chooses the
 * nonce, so CK_GCM_PARAMS must carry no IV (ulIvLen 0) and a 128-bit tag; C_Encrypt returns the
 * KMS ciphertext (header, nonce, ciphertext, tag: 70 bytes more than the plaintext); pAAD is
 * bound as the encryption-context entry "pkcs11-aad" and must be given again to decrypt. Before
 * decrypting, the module checks that the ciphertext names this key (the KMS would otherwise
 * decrypt under whichever key the ciphertext names). CKM_RSA_PKCS_OAEP decrypts with SHA-1 or
 * SHA-256 (MGF1 with the same hash) and an empty label, as the enclave does.
 */
#include <string.h>

#include "ops.h"

static CK_RV gcm_params(const CK_MECHANISM *m, struct p11_op *op)
{
    const CK_GCM_PARAMS *p = m->pParameter;
    if (p == NULL || m->ulParameterLen != sizeof *p) return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulIvLen != 0 || (p->ulTagBits != 0 && p->ulTagBits != 128)) return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulAADLen > sizeof op->aad || (p->ulAADLen > 0 && p->pAAD == NULL)) return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulAADLen) memcpy(op->aad, p->pAAD, p->ulAADLen);
    op->aad_len = p->ulAADLen;
    return CKR_OK;
}

static CK_RV oaep_params(const CK_MECHANISM *m, struct p11_op *op)
{
    const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
    if (p == NULL || m->ulParameterLen != sizeof *p) return CKR_MECHANISM_PARAM_INVALID;
    if (p->source != 0 && p->source != CKZ_DATA_SPECIFIED) return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulSourceDataLen != 0) return CKR_MECHANISM_PARAM_INVALID; /* no OAEP label in the enclave */
    if (p->hashAlg == CKM_SHA_1 && p->mgf == CKG_MGF1_SHA1) op->alg = EncryptionAlgorithm_RSAES_OAEP_SHA_1;
    else if (p->hashAlg == CKM_SHA256 && p->mgf == CKG_MGF1_SHA256) op->alg = EncryptionAlgorithm_RSAES_OAEP_SHA_256;
    else return CKR_MECHANISM_PARAM_INVALID;
    return CKR_OK;
}

static CK_RV crypt_plan(const CK_MECHANISM *m, struct p11_op *op, bool enc)
{
    const struct p11_object *k = &op->key;
    bool crypt = k->usage == KeyUsage_ENCRYPT_DECRYPT;
    if (m->mechanism == CKM_AES_GCM) {
        if (k->kind != P11_SECRET || !crypt) return CKR_KEY_FUNCTION_NOT_PERMITTED;
        if (p11_key_type(k->spec) != CKK_AES) return CKR_KEY_TYPE_INCONSISTENT;
        return gcm_params(m, op);
    }
    /* CKM_RSA_PKCS_OAEP: decrypt only (p11_mech_check refused encrypt) */
    if (enc || k->kind != P11_PRIVATE || !crypt) return CKR_KEY_FUNCTION_NOT_PERMITTED;
    if (p11_key_type(k->spec) != CKK_RSA) return CKR_KEY_TYPE_INCONSISTENT;
    return oaep_params(m, op);
}

static CK_RV crypt_init(CK_SESSION_HANDLE h, const CK_MECHANISM *m, CK_OBJECT_HANDLE key, enum p11_op_kind kind)
{
    if (m == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_op *op = NULL;
    bool enc = kind == P11_OP_ENCRYPT;
    rv = p11_op_begin(s, kind, &op);
    if (rv == CKR_OK) rv = p11_mech_check(m->mechanism, enc ? CKF_ENCRYPT : CKF_DECRYPT);
    if (rv == CKR_OK) rv = p11_op_key(h, key, op);
    if (rv == CKR_OK) rv = crypt_plan(m, op, enc);
    if (rv == CKR_OK) {
        op->mech = m->mechanism;
        if (!enc) op->cap = sizeof(((DecryptRequest *)0)->ciphertext.bytes); /* the KMS envelope's bound */
        s->ops[kind] = op;
    } else {
        p11_op_free(op);
    }
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
    return crypt_init(h, m, key, P11_OP_ENCRYPT);
}

P11_EXPORT CK_RV C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
    return crypt_init(h, m, key, P11_OP_DECRYPT);
}

static void set_aad(const struct p11_op *op, ContextEntry *ctx, pb_size_t *count)
{
    if (op->aad_len == 0) return;
    memcpy(ctx[0].key.bytes, P11_AAD_CONTEXT_KEY, sizeof P11_AAD_CONTEXT_KEY - 1);
    ctx[0].key.size = sizeof P11_AAD_CONTEXT_KEY - 1;
    memcpy(ctx[0].value.bytes, op->aad, op->aad_len);
    ctx[0].value.size = (pb_size_t)op->aad_len;
    *count = 1;
}

static CK_RV encrypt_compute(struct p11_session *s, struct p11_op *op)
{
    (void)s;
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    Request *r = &m->req.body.request;
    EncryptRequest *q = &r->op.encrypt;
    r->which_op = Request_encrypt_tag;
    strcpy(q->key_id, op->key.key_id);
    if (op->len) memcpy(q->plaintext.bytes, op->buf, op->len);
    q->plaintext.size = (pb_size_t)op->len;
    set_aad(op, q->context, &q->context_count);
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, false);
    const Response *resp = &m->resp.body.response;
    if (rv == CKR_OK && resp->which_result != Response_encrypt_tag) rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK) rv = p11_op_set_out(op, resp->result.encrypt.ciphertext.bytes, resp->result.encrypt.ciphertext.size);
    p11_msg_free(m);
    return rv;
}

/* The KMS ciphertext names its key in bytes 2..38 (docs/formats.md). */
static bool names_key(const struct p11_op *op)
{
    return op->len >= P11_GCM_OVERHEAD && op->buf[0] == 0x01 && op->buf[1] == P11_KEY_ID_LEN &&
           strlen(op->key.key_id) == P11_KEY_ID_LEN && memcmp(op->buf + 2, op->key.key_id, P11_KEY_ID_LEN) == 0;
}

static CK_RV gcm_decrypt(struct p11_op *op, struct p11_msg *m)
{
    if (!names_key(op)) return CKR_ENCRYPTED_DATA_INVALID;
    Request *r = &m->req.body.request;
    DecryptRequest *q = &r->op.decrypt;
    r->which_op = Request_decrypt_tag;
    memcpy(q->ciphertext.bytes, op->buf, op->len);
    q->ciphertext.size = (pb_size_t)op->len;
    set_aad(op, q->context, &q->context_count);
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, true);
    const Response *resp = &m->resp.body.response;
    if (rv == CKR_OK && resp->which_result != Response_decrypt_tag) rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK && strcmp(resp->result.decrypt.key_id, op->key.key_id) != 0) rv = CKR_ENCRYPTED_DATA_INVALID;
    if (rv == CKR_OK) rv = p11_op_set_out(op, resp->result.decrypt.plaintext.bytes, resp->result.decrypt.plaintext.size);
    return rv;
}

static CK_RV oaep_decrypt(struct p11_op *op, struct p11_msg *m)
{
    size_t k = op->key.spec == KeySpec_RSA_4096 ? 512 : op->key.spec == KeySpec_RSA_3072 ? 384 : 256;
    if (op->len != k) return CKR_ENCRYPTED_DATA_LEN_RANGE;
    Request *r = &m->req.body.request;
    AsymmetricDecryptRequest *q = &r->op.asymmetric_decrypt;
    r->which_op = Request_asymmetric_decrypt_tag;
    strcpy(q->key_id, op->key.key_id);
    memcpy(q->ciphertext.bytes, op->buf, op->len);
    q->ciphertext.size = (pb_size_t)op->len;
    q->algorithm = (EncryptionAlgorithm)op->alg;
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, true);
    const Response *resp = &m->resp.body.response;
    if (rv == CKR_OK && resp->which_result != Response_asymmetric_decrypt_tag) rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK)
        rv = p11_op_set_out(op, resp->result.asymmetric_decrypt.plaintext.bytes,
                            resp->result.asymmetric_decrypt.plaintext.size);
    return rv;
}

static CK_RV decrypt_compute(struct p11_session *s, struct p11_op *op)
{
    (void)s;
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    CK_RV rv = op->mech == CKM_AES_GCM ? gcm_decrypt(op, m) : oaep_decrypt(op, m);
    p11_msg_free(m);
    return rv;
}

static CK_RV one_shot(CK_SESSION_HANDLE h, enum p11_op_kind kind, const CK_BYTE *in, CK_ULONG in_len, CK_BYTE *out,
                      CK_ULONG *out_len)
{
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_op *op = s->ops[kind];
    bool enc = kind == P11_OP_ENCRYPT;
    if (op == NULL) rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (!op->have_out) rv = p11_op_add(op, in, in_len);
    if (rv == CKR_OK) rv = p11_op_output(s, kind, enc ? encrypt_compute : decrypt_compute, out, out_len);
    else if (op != NULL) p11_op_end(s, kind);
    p11_session_put(s);
    return rv == CKR_DATA_LEN_RANGE && !enc ? CKR_ENCRYPTED_DATA_LEN_RANGE : rv;
}

P11_EXPORT CK_RV C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE *in, CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
    return one_shot(h, P11_OP_ENCRYPT, in, in_len, out, out_len);
}

P11_EXPORT CK_RV C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE *in, CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
    return one_shot(h, P11_OP_DECRYPT, in, in_len, out, out_len);
}

/* Multi-part: input is gathered and everything comes out of the Final call (allowed for GCM). */
static CK_RV update(CK_SESSION_HANDLE h, enum p11_op_kind kind, const CK_BYTE *in, CK_ULONG in_len, CK_ULONG *out_len)
{
    if (out_len == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_op *op = s->ops[kind];
    if (op == NULL) rv = CKR_OPERATION_NOT_INITIALIZED;
    else rv = p11_op_add(op, in, in_len);
    if (rv == CKR_OK) *out_len = 0;
    else if (op != NULL) p11_op_end(s, kind);
    p11_session_put(s);
    return rv == CKR_DATA_LEN_RANGE && kind == P11_OP_DECRYPT ? CKR_ENCRYPTED_DATA_LEN_RANGE : rv;
}

P11_EXPORT CK_RV C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE *in, CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
    (void)out;
    return update(h, P11_OP_ENCRYPT, in, in_len, out_len);
}

P11_EXPORT CK_RV C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE *in, CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
    (void)out;
    return update(h, P11_OP_DECRYPT, in, in_len, out_len);
}

P11_EXPORT CK_RV C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE *out, CK_ULONG *out_len)
{
    return one_shot(h, P11_OP_ENCRYPT, NULL, 0, out, out_len);
}

P11_EXPORT CK_RV C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE *out, CK_ULONG *out_len)
{
    return one_shot(h, P11_OP_DECRYPT, NULL, 0, out, out_len);
}

P11_EXPORT CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE *out, CK_ULONG len)
{
    if (out == NULL && len > 0) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) rv = CKR_HOST_MEMORY;
    for (CK_ULONG done = 0; rv == CKR_OK && done < len;) {
        CK_ULONG n = len - done < 1024 ? len - done : 1024;
        memset(&m->req, 0, sizeof m->req);
        m->req.body.request.which_op = Request_generate_random_tag;
        m->req.body.request.op.generate_random.length = (uint32_t)n;
        rv = p11_enclave_call(&m->req, &m->resp, true);
        const GenerateRandomResponse *g = &m->resp.body.response.result.generate_random;
        if (rv == CKR_OK && (m->resp.body.response.which_result != Response_generate_random_tag || g->random.size != n))
            rv = CKR_DEVICE_ERROR;
        if (rv == CKR_OK) memcpy(out + done, g->random.bytes, n);
        done += n;
    }
    p11_msg_free(m);
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE *seed, CK_ULONG len)
{
    (void)seed, (void)len;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    p11_session_put(s);
    return CKR_RANDOM_SEED_NOT_SUPPORTED;
}
