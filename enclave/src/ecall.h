/*
 * ecall.h - the ECALL implementations behind the trusted edge. Buffers passed here are
 * already in enclave memory (edge.c copied them) and sizes are in bytes.
 * Thread-safe once initialized; init itself is idempotent-refusing (a second init is
 * KMS_ERR_ALREADY_INITIALIZED).
 */
#ifndef KMS_ENCLAVE_ECALL_H
#define KMS_ENCLAVE_ECALL_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

/* Read identity from the platform, self-test the RNG, create the RA-TLS key, become ready. */
kms_err_t kms_ecall_init_impl(void);
/* Run one Request as the host (request.c) and encode the Response into resp (cap bytes). On a
 * refusal the code is returned and *resp_len is 0, unless the response explains it
 * (Response.error_detail, never a secret): then it is encoded too. */
kms_err_t kms_ecall_call_impl(const uint8_t *req, size_t req_len, uint8_t *resp, size_t cap,
                              size_t *resp_len);
/* REPORT for the target; REPORTDATA = the RA-TLS binding (ratls.h), never host data. */
kms_err_t kms_ecall_report_impl(const uint8_t target_info[512], uint8_t report[432]);

/* Session ECALLs: init-state check, then session.c. */
kms_err_t kms_ecall_session_open_impl(int64_t host_time, uint64_t *session_id);
kms_err_t kms_ecall_session_feed_impl(uint64_t session_id, int64_t host_time, const uint8_t *in, size_t in_len,
                                      uint8_t *out, size_t cap, size_t *out_len, size_t *pending, int *closed);
kms_err_t kms_ecall_session_close_impl(uint64_t session_id);

/* Before the image goes (the uninit command; no ECALL runs then or later): refuse every later
 * ECALL and drop the record cache, wiped, while the enclave heap is still there to free into. */
void kms_ecall_uninit_impl(void);

#endif /* KMS_ENCLAVE_ECALL_H */
