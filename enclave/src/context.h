/*
 * context.h - who is calling, and the context every handler receives (types only). The
 * transports authenticate the caller (the call ECALL: the host; a session: the principal its
 * TLS handshake proved); request.c builds the context for one request and nothing of it
 * outlives that request. Plain data; a context belongs to one request on one thread.
 */
#ifndef KMS_ENCLAVE_CONTEXT_H
#define KMS_ENCLAVE_CONTEXT_H

#include <stdint.h>

#include "kms/proto/enclave/v1/boundary.pb.h"

typedef enum {
    KMS_CALLER_NONE = 0,      /* nobody: every operation is refused (PERMISSION_DENIED) */
    KMS_CALLER_HOST = 1,      /* the call ECALL */
    KMS_CALLER_PRINCIPAL = 2, /* an authenticated session principal */
} kms_caller_kind;

typedef struct {
    kms_caller_kind kind;
    uint8_t principal[32]; /* KMS_CALLER_PRINCIPAL only: SHA-256 of its certificate's SPKI */
} kms_caller;

/* Caller classes an operation allows (operations.def "allow"). */
enum {
    KMS_ALLOW_HOST = 1u,       /* the host's call ECALL */
    KMS_ALLOW_ADMIN = 2u,      /* a session principal with role ADMIN */
    KMS_ALLOW_USER = 4u,       /* a session principal with role USER */
    KMS_ALLOW_ANYONE = 8u,     /* any authenticated session principal, whatever its role */
    KMS_ALLOW_NEWDOMAIN = 16u, /* a session principal while there is no domain (and only then) */
};

struct kms_op;

/* What a handler knows about the request it runs. Owned by kms_request_run (on its stack). */
typedef struct kms_ctx {
    kms_caller caller;
    Role role;                      /* the principal's role when authorized; ROLE_UNSPECIFIED for the host */
    int64_t now;                    /* the request's time (Unix seconds) */
    const struct kms_op *op;        /* its entry of the operation table */
    uint32_t op_class;              /* what key policies must allow now (ReEncrypt changes it per key) */
    const ContextEntry *context;    /* the encryption context policy conditions see */
    pb_size_t context_count;
    int has_policy_hash;            /* the policy hash of the last key authorized (for audit) */
    uint8_t policy_hash[32];
} kms_ctx;

/* 1 when the request runs on the host's path. */
static inline int kms_ctx_is_host(const kms_ctx *ctx) { return ctx->caller.kind == KMS_CALLER_HOST; }

/* Switch the operation class and context for one step of a request that uses two keys. */
static inline void kms_ctx_step(kms_ctx *ctx, uint32_t op_class, const ContextEntry *context, pb_size_t count)
{
    ctx->op_class = op_class;
    ctx->context = context;
    ctx->context_count = count;
}

#endif /* KMS_ENCLAVE_CONTEXT_H */
