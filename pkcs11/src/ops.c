/*
 * ops.c - what every cryptographic operation shares: its state in the session, input
 * accumulation (local hashing for the hash-then-sign mechanisms, else a buffer bounded by what
 * the enclave takes), and the PKCS#11 output convention (a length query or CKR_BUFFER_TOO_SMALL
 * keeps the operation and its computed result; anything else ends it). Also the object
 * functions: find, attributes, size, destroy.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ops.h"

void p11_op_free(struct p11_op *op)
{
    if (op == NULL) return;
    p11_object_clear(&op->key);
    EVP_MD_CTX_free(op->mdctx);
    if (op->buf) OPENSSL_cleanse(op->buf, op->len);
    if (op->out) OPENSSL_cleanse(op->out, op->out_len);
    free(op->buf);
    free(op->out);
    free(op->found);
    OPENSSL_cleanse(op, sizeof *op);
    free(op);
}

void p11_op_end(struct p11_session *s, enum p11_op_kind kind)
{
    p11_op_free(s->ops[kind]);
    s->ops[kind] = NULL;
}

CK_RV p11_op_begin(struct p11_session *s, enum p11_op_kind kind, struct p11_op **out)
{
    if (s->ops[kind] != NULL) return CKR_OPERATION_ACTIVE;
    *out = calloc(1, sizeof **out);
    if (*out == NULL) return CKR_HOST_MEMORY;
    (*out)->cap = P11_MAX_DATA;
    return CKR_OK;
}

CK_RV p11_op_key(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle, struct p11_op *op)
{
    CK_RV rv = p11_object_get(session, handle, &op->key);
    return rv == CKR_OBJECT_HANDLE_INVALID ? CKR_KEY_HANDLE_INVALID : rv;
}

CK_RV p11_op_add(struct p11_op *op, const uint8_t *data, size_t len)
{
    if (len > 0 && data == NULL) return CKR_ARGUMENTS_BAD;
    if (op->mdctx != NULL) return EVP_DigestUpdate(op->mdctx, data, len) == 1 ? CKR_OK : CKR_GENERAL_ERROR;
    if (len > op->cap - op->len) return CKR_DATA_LEN_RANGE;
    uint8_t *grown = malloc(op->len + len + 1);
    if (grown == NULL) return CKR_HOST_MEMORY;
    if (op->len) memcpy(grown, op->buf, op->len);
    if (len) memcpy(grown + op->len, data, len);
    if (op->buf) OPENSSL_cleanse(op->buf, op->len);
    free(op->buf);
    op->buf = grown;
    op->len += len;
    return CKR_OK;
}

CK_RV p11_op_input(struct p11_op *op, const uint8_t **data, size_t *len)
{
    if (op->mdctx == NULL) {
        *data = op->buf;
        *len = op->len;
        return CKR_OK;
    }
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(op->mdctx, op->digest, &n) != 1) return CKR_GENERAL_ERROR;
    EVP_MD_CTX_free(op->mdctx);
    op->mdctx = NULL;
    op->digest_len = n;
    *data = op->digest;
    *len = n;
    return CKR_OK;
}

CK_RV p11_op_set_out(struct p11_op *op, const uint8_t *data, size_t len)
{
    op->out = malloc(len ? len : 1);
    if (op->out == NULL) return CKR_HOST_MEMORY;
    if (len) memcpy(op->out, data, len);
    op->out_len = len;
    op->have_out = true;
    return CKR_OK;
}

CK_RV p11_op_output(struct p11_session *s, enum p11_op_kind kind, p11_compute_fn compute, CK_BYTE *out,
                    CK_ULONG *out_len)
{
    struct p11_op *op = s->ops[kind];
    CK_RV rv = out_len == NULL ? CKR_ARGUMENTS_BAD : CKR_OK;
    if (rv == CKR_OK && !op->have_out) rv = compute(s, op);
    if (rv == CKR_OK && out == NULL) {
        *out_len = (CK_ULONG)op->out_len;
        return CKR_OK;
    }
    if (rv == CKR_OK && *out_len < op->out_len) {
        *out_len = (CK_ULONG)op->out_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (rv == CKR_OK) {
        memcpy(out, op->out, op->out_len);
        *out_len = (CK_ULONG)op->out_len;
    }
    p11_op_end(s, kind);
    return rv;
}

/* ---- finding objects ---- */

P11_EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_op *op = NULL;
    if (count > 0 && tmpl == NULL) rv = CKR_ARGUMENTS_BAD;
    if (rv == CKR_OK) rv = p11_op_begin(s, P11_OP_FIND, &op);
    if (rv == CKR_OK) {
        rv = p11_objects_refresh();
        if (rv == CKR_USER_NOT_LOGGED_IN) rv = CKR_OK; /* nothing is visible before the login */
    }
    CK_OBJECT_HANDLE *all = NULL;
    size_t n = 0;
    if (rv == CKR_OK) rv = p11_objects_visible(h, &all, &n);
    for (size_t i = 0; rv == CKR_OK && i < n; i++) {
        struct p11_object o;
        if (p11_object_get(h, all[i], &o) != CKR_OK) continue;
        if (p11_attrs_match(&o, tmpl, count)) all[op->nfound++] = all[i];
        p11_object_clear(&o);
    }
    if (rv == CKR_OK) {
        op->found = all;
        s->ops[P11_OP_FIND] = op;
    } else {
        free(all);
        if (op != s->ops[P11_OP_FIND]) p11_op_free(op);
    }
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *count)
{
    if (out == NULL || count == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_op *op = s->ops[P11_OP_FIND];
    if (op == NULL) rv = CKR_OPERATION_NOT_INITIALIZED;
    CK_ULONG n = 0;
    while (rv == CKR_OK && n < max && op->pos < op->nfound) out[n++] = op->found[op->pos++];
    *count = n;
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h)
{
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    if (s->ops[P11_OP_FIND] == NULL) rv = CKR_OPERATION_NOT_INITIALIZED;
    else p11_op_end(s, P11_OP_FIND);
    p11_session_put(s);
    return rv;
}

/* ---- attributes ---- */

P11_EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    if (tmpl == NULL && count > 0) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_object o;
    rv = p11_object_get(h, obj, &o);
    if (rv == CKR_USER_NOT_LOGGED_IN) rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv == CKR_OK) {
        rv = p11_attrs_get(&o, tmpl, count);
        p11_object_clear(&o);
    }
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG *size)
{
    if (size == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_object o;
    rv = p11_object_get(h, obj, &o);
    if (rv == CKR_USER_NOT_LOGGED_IN) rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv == CKR_OK) {
        *size = CK_UNAVAILABLE_INFORMATION;
        p11_object_clear(&o);
    }
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj)
{
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    rv = p11_objects_destroy(h, obj);
    p11_session_put(s);
    return rv;
}
