/*
 * request.h - the one request path and the context every handler receives.
 *
 * Both transports (the host's call ECALL and a request frame inside an attested session) hand
 * the encoded Request to kms_request_run with the caller they authenticated: the call ECALL
 * says "the host", a session says "principal P" (the SHA-256 of its client certificate's
 * SubjectPublicKeyInfo, proven in the TLS handshake). kms_request_run decodes it into a
 * zeroed bounded struct, checks the version, finds the operation (operations.def), decides
 * the caller's right to run it, runs the handler with a context, and appends the audit
 * record. Nothing of a request outlives the call: there is no thread-local request state.
 * Thread-safe.
 */
#ifndef KMS_ENCLAVE_REQUEST_H
#define KMS_ENCLAVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "operations.h"

typedef enum {
    KMS_CALLER_NONE = 0,      /* nobody: every operation is refused (PERMISSION_DENIED) */
    KMS_CALLER_HOST = 1,      /* the call ECALL */
    KMS_CALLER_PRINCIPAL = 2, /* an authenticated session principal */
} kms_caller_kind;

typedef struct {
    kms_caller_kind kind;
    uint8_t principal[32]; /* KMS_CALLER_PRINCIPAL only */
} kms_caller;

/* What a handler knows about the request it runs. Owned by kms_request_run (on its stack). */
typedef struct kms_ctx {
    kms_caller caller;
    Role role;                      /* the principal's role when authorized; ROLE_UNSPECIFIED for the host */
    int64_t now;                    /* the request's time (Unix seconds) */
    const kms_op *op;
    uint32_t op_class;              /* what key policies must allow now (ReEncrypt changes it per key) */
    const ContextEntry *context;    /* the encryption context policy conditions see */
    pb_size_t context_count;
    int has_policy_hash;            /* the policy hash of the last key authorized (for audit) */
    uint8_t policy_hash[32];
} kms_ctx;

/* 1 when the request runs on the host's path. */
static inline int kms_ctx_is_host(const kms_ctx *ctx) { return ctx->caller.kind == KMS_CALLER_HOST; }

/* Switch the operation class and context for one step of a request that uses two keys. */
void kms_ctx_step(kms_ctx *ctx, uint32_t op_class, const ContextEntry *context, pb_size_t count);

/*
 * Run one encoded request (in, len bytes; at most KMS_MAX_REQUEST_SIZE) for caller.
 * time: the transport's time for the request, or NULL to take Request.host_time (the call
 * ECALL has no time of its own). resp (zeroed by the caller) receives the answer, with the
 * version and the request id filled in even when the request is refused.
 * Returns the outcome: KMS_OK, or the code the request was refused with (decode, version,
 * authorization, the handler's, or KMS_ERR_AUDIT_* when its audit record could not be
 * appended: an unaudited success is a failure).
 */
kms_err_t kms_request_run(const kms_caller *caller, const int64_t *time, const uint8_t *in, size_t len,
                          Response *resp);

/*
 * Encode resp into out (cap bytes). KMS_ERR_BUFFER_TOO_SMALL when it does not fit, else
 * KMS_ERR_ENCODE; out is wiped on failure.
 */
kms_err_t kms_response_encode(const Response *resp, uint8_t *out, size_t cap, size_t *len);

#endif /* KMS_ENCLAVE_REQUEST_H */
