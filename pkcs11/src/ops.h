/*
 * ops.h - the state of one operation in a session (sign, verify, encrypt, decrypt, find) and
 * the helpers ops.c gives sign.c and crypt.c. Every function here runs with the session's
 * mutex held (p11_session_get); none takes g_p11.lock except through p11_object_get.
 */
#ifndef KMS_P11_OPS_H
#define KMS_P11_OPS_H

#include <openssl/evp.h>

#include "p11.h"

struct p11_op {
    CK_MECHANISM_TYPE mech;
    struct p11_object key;          /* a copy of the key object (owns its spki) */
    int alg;                        /* SigningAlgorithm or EncryptionAlgorithm */
    int mode;                       /* sign.c's input mode */
    size_t order;                   /* ECDSA: the group order's size in bytes */
    EVP_MD_CTX *mdctx;              /* hash-then-sign: the running hash, else NULL */
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t digest_len;
    uint8_t *buf;                   /* accumulated input, at most cap bytes */
    size_t len, cap;
    uint8_t *out;                   /* the computed result, kept for a length query */
    size_t out_len;
    bool have_out;
    uint8_t aad[256];               /* CKM_AES_GCM: CK_GCM_PARAMS.pAAD */
    size_t aad_len;
    CK_OBJECT_HANDLE *found;        /* find: matching handles (owned) */
    size_t nfound, pos;
};

/* Computes op's result into op->out (p11_op_set_out); returns CKR_OK or why not. */
typedef CK_RV (*p11_compute_fn)(struct p11_session *s, struct p11_op *op);

/* A fresh operation of kind for s: CKR_OPERATION_ACTIVE when one runs, CKR_HOST_MEMORY. The
 * caller installs it in s->ops[kind] once its Init succeeded, else frees it. */
CK_RV p11_op_begin(struct p11_session *s, enum p11_op_kind kind, struct p11_op **out);
/* Ends s's operation of kind (frees and wipes its state). */
void p11_op_end(struct p11_session *s, enum p11_op_kind kind);
/* Copies the key object for handle into op->key: CKR_KEY_HANDLE_INVALID when there is none. */
CK_RV p11_op_key(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle, struct p11_op *op);
/* Feeds input: into the running hash, else appended to op->buf (CKR_DATA_LEN_RANGE past
 * op->cap bytes in all: P11_MAX_DATA unless the Init set another bound). data may be NULL only when len is 0. */
CK_RV p11_op_add(struct p11_op *op, const uint8_t *data, size_t len);
/* The input to send: the finished hash (once), or the accumulated bytes. Pointers into op. */
CK_RV p11_op_input(struct p11_op *op, const uint8_t **data, size_t *len);
/* Keeps len bytes of data as op's result (copied). */
CK_RV p11_op_set_out(struct p11_op *op, const uint8_t *data, size_t len);
/* The PKCS#11 output convention for s's operation of kind: computes once, answers a length
 * query (out NULL) or CKR_BUFFER_TOO_SMALL keeping the operation, else copies and ends it. */
CK_RV p11_op_output(struct p11_session *s, enum p11_op_kind kind, p11_compute_fn compute, CK_BYTE *out,
                    CK_ULONG *out_len);
/* mechs.c: CKR_OK when type is in the table with every flag of use, else CKR_MECHANISM_INVALID. */
CK_RV p11_mech_check(CK_MECHANISM_TYPE type, CK_FLAGS use);

#endif /* KMS_P11_OPS_H */
