/* operations.c - the operation table, expanded from operations.def, and its accessors. */
#include <string.h>

#include "handlers.h"
#include "kms/limits.h"
#include "operations.h"

#define HOST KMS_ALLOW_HOST
#define ADMIN KMS_ALLOW_ADMIN
#define USER KMS_ALLOW_USER
#define ANYONE KMS_ALLOW_ANYONE
#define NEWDOMAIN KMS_ALLOW_NEWDOMAIN
#define NO KMS_AUDIT_NO
#define YES KMS_AUDIT_YES
#define HOUSEKEEPING KMS_AUDIT_HOUSEKEEPING
#define OP_NONE 0u
#define OP_ENCRYPT OperationClass_OP_ENCRYPT
#define OP_DECRYPT OperationClass_OP_DECRYPT
#define OP_SIGN OperationClass_OP_SIGN
#define OP_VERIFY OperationClass_OP_VERIFY
#define OP_MAC OperationClass_OP_MAC
#define OP_DERIVE OperationClass_OP_DERIVE
#define OP_DESCRIBE OperationClass_OP_DESCRIBE
#define OP_BATCH KMS_OP_CLASS_BATCH

/* Parts of a key reference (operations.def): offsets into Request / Response, or absent. */
#define NOREQ KMS_NO_FIELD
#define NORESP 0, KMS_NO_FIELD
#define NOCT KMS_NO_FIELD
/* Key id fields are 41-byte strings (boundary.options); a field of another size does not compile. */
#define ID_FIELD(type, path) (offsetof(type, path) + 0 * sizeof(char[sizeof(((type *)0)->path) == 41 ? 1 : -1]))
#define REQ(path) ID_FIELD(Request, op.path)
#define RESP(tag, path) Response_##tag##_tag, ID_FIELD(Response, result.tag.path)
#define CT(path) offsetof(Request, op.path)
#define KEY(req, resp, ct) {req, resp, ct}
#define NOKEY {KMS_NO_FIELD, 0, KMS_NO_FIELD, KMS_NO_FIELD}
#define NOCTX KMS_NO_FIELD, KMS_NO_FIELD
#define CTX(path) offsetof(Request, op.path), offsetof(Request, op.path##_count)

static const kms_op k_ops[] = {
#define KMS_OP(name, allow, audit, cls, key, source, context) \
    {Request_##name##_tag, #name, kms_handle_##name, (allow), (audit), (cls), key, source, context},
#include "operations.def"
#undef KMS_OP
};

const kms_op *kms_op_table(size_t *count)
{
    *count = sizeof k_ops / sizeof k_ops[0];
    return k_ops;
}

const kms_op *kms_op_find(pb_size_t tag)
{
    for (size_t i = 0; i < sizeof k_ops / sizeof k_ops[0]; i++)
        if (k_ops[i].tag == tag) return &k_ops[i];
    return NULL;
}

uint32_t kms_op_class(const kms_op *op, const Request *req)
{
    if (op->op_class != KMS_OP_CLASS_BATCH) return op->op_class;
    switch (req->op.batch.operation) {
    case BatchOperation_BATCH_ENCRYPT: return OperationClass_OP_ENCRYPT;
    case BatchOperation_BATCH_DECRYPT: return OperationClass_OP_DECRYPT;
    case BatchOperation_BATCH_SIGN: return OperationClass_OP_SIGN;
    default: return 0; /* nothing is allowed an unknown batch operation */
    }
}

/* Copy a NUL-terminated field of at most field_cap bytes into out (cap bytes). */
static void copy_id(const char *field, size_t field_cap, char *out, size_t cap)
{
    size_t n = strnlen(field, field_cap);
    if (n >= cap) n = cap - 1;
    memcpy(out, field, n);
    out[n] = '\0';
}

void kms_op_key_id(const kms_key_ref *ref, const Request *req, const Response *resp, char *out, size_t cap)
{
    enum { FIELD_CAP = 41 }; /* checked for every field by ID_FIELD */
    out[0] = '\0';
    if (cap == 0) return;
    if (ref->resp != KMS_NO_FIELD && resp != NULL && resp->which_result == ref->resp_tag)
        copy_id((const char *)resp + ref->resp, FIELD_CAP, out, cap);
    if (out[0] == '\0' && ref->req != KMS_NO_FIELD) copy_id((const char *)req + ref->req, FIELD_CAP, out, cap);
    if (out[0] == '\0' && ref->ciphertext != KMS_NO_FIELD) {
        const pb_bytes_array_t *ct = (const pb_bytes_array_t *)(const void *)((const char *)req + ref->ciphertext);
        char claimed[KMS_KEY_ID_LEN + 1];
        if (kms_ciphertext_key_id(ct->bytes, ct->size, claimed) == KMS_OK) copy_id(claimed, sizeof claimed, out, cap);
    }
}

const ContextEntry *kms_op_context(const kms_op *op, const Request *req, pb_size_t *count)
{
    *count = 0;
    if (op->context == KMS_NO_FIELD) return NULL;
    *count = *(const pb_size_t *)(const void *)((const char *)req + op->context_count);
    return (const ContextEntry *)(const void *)((const char *)req + op->context);
}
