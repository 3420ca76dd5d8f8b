/*
 * operations.h - the operation table (generated from operations.def): for each operation its
 * handler, name, who may call it, whether it is audited, the operation class key policies
 * check, and where its key id and encryption context are. Read-only data; thread-safe.
 */
#ifndef KMS_ENCLAVE_OPERATIONS_H
#define KMS_ENCLAVE_OPERATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "context.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/* A handler: the request is decoded and authorized for its caller; it fills resp. */
typedef kms_err_t (*kms_handler)(struct kms_ctx *ctx, const Request *req, Response *resp);

/* Audit rule (operations.def "audit"). */
typedef enum {
    KMS_AUDIT_NO = 0,
    KMS_AUDIT_YES = 1,
    KMS_AUDIT_HOUSEKEEPING = 2, /* audited, except a refused call of the host's path */
} kms_audit_rule;

/* Operation class for OP_BATCH entries: taken from BatchRequest.operation. */
#define KMS_OP_CLASS_BATCH 0xffffffffu

/* Where a key id is: a request string field, a response string field (valid when the
 * response's oneof tag is resp_tag), or a ciphertext's header. KMS_NO_FIELD when absent. */
#define KMS_NO_FIELD ((size_t)-1)
typedef struct {
    size_t req;
    pb_size_t resp_tag;
    size_t resp;
    size_t ciphertext;
} kms_key_ref;

typedef struct kms_op {
    pb_size_t tag;            /* Request_<name>_tag */
    const char *name;         /* the oneof field name, as in audit records */
    kms_handler handler;
    unsigned int allow;       /* KMS_ALLOW_* bits (context.h) */
    kms_audit_rule audit;
    uint32_t op_class;        /* OperationClass bits, 0 or KMS_OP_CLASS_BATCH */
    kms_key_ref key, source;
    size_t context, context_count; /* request offsets, KMS_NO_FIELD when the op has none */
} kms_op;

/* The entry for a Request oneof tag, or NULL (KMS_ERR_UNKNOWN_OPERATION). */
const kms_op *kms_op_find(pb_size_t tag);

/* The whole table (for tests and documentation): *count entries. */
const kms_op *kms_op_table(size_t *count);

/* The operation class req's key policies must allow (resolves OP_BATCH). */
uint32_t kms_op_class(const kms_op *op, const Request *req);

/*
 * The key id `ref` designates for req/resp into out (cap bytes, NUL-terminated; "" when there
 * is none). The response field wins, then the request field, then the ciphertext's header
 * (its claimed key id, only if it is a well-formed one). Never reads outside req/resp.
 */
void kms_op_key_id(const kms_key_ref *ref, const Request *req, const Response *resp, char *out, size_t cap);

/* The request's encryption context (NULL, 0 when the op has none). */
const ContextEntry *kms_op_context(const kms_op *op, const Request *req, pb_size_t *count);

#endif /* KMS_ENCLAVE_OPERATIONS_H */
