/*
 * session.h - attested TLS 1.3 sessions terminated inside the enclave (see session.c for the
 * framing). Sessions are bounded (KMS_MAX_SESSIONS), reaped after KMS_SESSION_IDLE_SECONDS of
 * host time without traffic, and refuse to buffer more than KMS_SESSION_MAX_PENDING bytes of
 * output. Session ids are (generation << 32 | slot), never addresses. Thread-safe: different
 * sessions run in parallel; one session is fed by one thread at a time (KMS_ERR_SESSION_BUSY).
 */
#ifndef KMS_ENCLAVE_SESSION_H
#define KMS_ENCLAVE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/limits.h"

#define KMS_MAX_SESSIONS 128u
#define KMS_SESSION_IDLE_SECONDS 600
#define KMS_SESSION_MAX_INPUT KMS_SESSION_IN_MAX
#define KMS_SESSION_MAX_PENDING (512u * 1024u)

/* A new session with the RA-TLS identity. KMS_ERR_SESSION_LIMIT, KMS_ERR_EVIDENCE_NOT_READY. */
kms_err_t kms_session_open(int64_t host_time, uint64_t *session_id);

/*
 * Feed TLS bytes from the client (in_len <= KMS_SESSION_MAX_INPUT), run every complete request,
 * and return up to out_cap bytes of TLS output; *pending is what is still buffered (feed again
 * with no input to drain it). *closed is set when the client closed the session. Any TLS or
 * framing failure ends the session: KMS_ERR_SESSION_TLS, KMS_ERR_SESSION_FRAME.
 */
kms_err_t kms_session_feed(uint64_t session_id, int64_t host_time, const uint8_t *in, size_t in_len,
                           uint8_t *out, size_t out_cap, size_t *out_len, size_t *pending, int *closed);

/* End a session (wiping its buffers). KMS_ERR_SESSION_NOT_FOUND, KMS_ERR_SESSION_BUSY. */
kms_err_t kms_session_close(uint64_t session_id);

#endif /* KMS_ENCLAVE_SESSION_H */
