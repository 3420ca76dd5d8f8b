/*
 * request.h - the one request path and the context every handler receives.
 *
 * Both transports (the host's call ECALL and a request frame inside an attested session) hand
 * the encoded Request to kms_request_run with the caller they authenticated: the call ECALL
 * says "the host", a session says "principal P" (the SHA-256 of its client certificate's
 * SubjectPublicKeyInfo, proven in the TLS handshake). kms_request_run decodes it into a
 * zeroed bounded struct (a slot of request_slot.c), checks the version, finds the operation (operations.def), decides
 * the caller's right to run it, runs the handler with a context, and appends the audit
 * record, then encodes the answer. Nothing of a request outlives the call: the slot is wiped back
 * to all-zero before it returns, and there is no thread-local request state.
 * Thread-safe.
 */
#ifndef KMS_ENCLAVE_REQUEST_H
#define KMS_ENCLAVE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "context.h"
#include "operations.h"

/* Where kms_request_run encodes the answer, and what became of it. */
typedef struct {
    uint8_t *out;      /* the encoded Response goes here, cap bytes */
    size_t cap;
    int refusals;      /* 1: a refusal is answered too (a session); 0: only when it carries an
                        * error_detail (the call ECALL: otherwise its code says everything) */
    size_t len;        /* out: bytes written; 0 when none (out holds nothing of the request) */
    kms_err_t encoded; /* out: KMS_OK, or why the answer could not be encoded (BUFFER_TOO_SMALL, ENCODE) */
} kms_answer;

/*
 * Run one encoded request (in, len bytes; at most KMS_MAX_REQUEST_SIZE) for caller and encode its
 * answer into a->out. time: the transport's time for the request, or NULL to take Request.host_time
 * (the call ECALL has no time of its own). The answer carries the version and the request id even
 * when the request is refused. The bounded structs live in a zeroed slot (request_slot.h) and are
 * wiped before this returns.
 * Returns the outcome: KMS_OK, or the code the request was refused with (decode, version,
 * authorization, the handler's, or KMS_ERR_AUDIT_* when its audit record could not be
 * appended: an unaudited success is a failure).
 */
kms_err_t kms_request_run(const kms_caller *caller, const int64_t *time, const uint8_t *in, size_t len,
                          kms_answer *a);

/*
 * Encode resp into out (cap bytes). KMS_ERR_BUFFER_TOO_SMALL when it does not fit, else
 * KMS_ERR_ENCODE; out is wiped on failure. (kms_request_run's last step.)
 */
kms_err_t kms_response_encode(const Response *resp, uint8_t *out, size_t cap, size_t *len);

/*
 * The audit record body of req's outcome run in ctx: the operation, the key ids the operation
 * table names (resp carries the resolved ones; a failed decrypt names the key its ciphertext
 * claims), the key version of the answer, the caller, the outcome, the policy hash of the key it
 * authorized and the SHA-256 of the operation's canonical encryption context (none: empty).
 * audit.c adds the sequence, chain, time and domain, seals the body to the auditors and signs.
 * rec holds what the auditors alone may read: the caller wipes it.
 */
void kms_request_audit_body(const kms_ctx *ctx, const Request *req, const Response *resp, kms_err_t outcome,
                            AuditBody *rec);

#endif /* KMS_ENCLAVE_REQUEST_H */
