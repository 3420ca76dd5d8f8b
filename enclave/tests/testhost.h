/*
 * testhost.h - a minimal untrusted host for the C tests and the fuzz harness: it drives an
 * enclave image only through the simulated CPU's loader and simcpu_ecall, with the
 * marshalling structs of kms/edge.h, exactly as enclave/bridge/bridge.c does. It provides
 * the OCALL table (log + an in-memory record store with get, conditional put and list),
 * temporary platform directories, and
 * nanopb helpers that encode a Request, call the enclave and decode the Response.
 *
 * Untrusted test code. Thread-safety: the store is guarded by a mutex; the hooks are plain
 * globals that a test sets while no ECALL runs. Sizes are bytes.
 */
#ifndef KMS_TESTHOST_H
#define KMS_TESTHOST_H

#include <stddef.h>
#include <stdint.h>

#include "kms/edge.h"
#include "kms/errors.h"
#include "kms/limits.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "kms/simcpu.h"

/* 1 when code is a value of ErrorCode (generated from errors.proto into kms_error_codes.inc). */
int th_code_known(int code);

/* A result of th_call/th_request that is not an enclave answer: the ECALL itself failed. */
#define TH_ECALL_FAILED (-1)

/* The OCALL table to pass with every ECALL (log, store_get/put/list, with the hooks below). */
extern const kms_ocall_table_t th_ocalls;

/* Optional hooks run instead of the default OCALL bodies (NULL: the default). */
typedef unsigned int (*th_store_hook)(ms_kms_ocall_store_get_t *ms);
typedef unsigned int (*th_put_hook)(ms_kms_ocall_store_put_t *ms);
typedef unsigned int (*th_list_hook)(ms_kms_ocall_store_list_t *ms);
typedef void (*th_log_hook)(int level, int code, const char *msg);
extern th_store_hook th_store_get_hook;
extern th_put_hook th_store_put_hook;
extern th_list_hook th_store_list_hook;
/* store_commit: the record goes through the store_put hook (or default), and only if that kept it
 * (retval 0) is the state log entry appended (a seq that is not the last + 1 is a conflict).
 * th_store_commit_hook, when set, answers instead. */
typedef unsigned int (*th_commit_hook)(ms_kms_ocall_store_commit_t *ms);
extern th_commit_hook th_store_commit_hook;
/* state_log_get: th_state_log_hook, when set, answers instead of the log. */
typedef unsigned int (*th_log_get_hook)(ms_kms_ocall_state_log_get_t *ms);
extern th_log_get_hook th_state_log_hook;
/* State log entries held (appended by store_commit); dropped by th_store_clear. */
size_t th_state_log_count(void);
extern th_log_hook th_log_hook_fn;
/* Number of log OCALLs seen (any thread). */
extern unsigned long th_log_count;

/* The default store_get body: serve the record store (0 and *blob_len = 0 when unknown). */
unsigned int th_store_get_default(ms_kms_ocall_store_get_t *ms);
/* The default store_put body: store the record if the stored revision is still
 * ms_expected_revision (0: the key must not exist): retval 0; else 1 (conflict). */
unsigned int th_store_put_default(ms_kms_ocall_store_put_t *ms);

/* The default store_list body: up to ms_limit stored ids above ms_after in byte order, each
 * NUL-terminated, as many as fit in ms_cap; retval 0. */
unsigned int th_store_list_default(ms_kms_ocall_store_list_t *ms);

/* Record store: key id -> (revision, encrypted record blob). clear drops everything. */
void th_store_clear(void);

/* out = <directory of this executable>/rel. Returns out, or NULL when it does not fit. */
char *th_exe_path(const char *rel, char *out, size_t cap);
/* A fresh 0700 directory under $TMPDIR (or /tmp) named <prefix>.XXXXXX; 0 on success. */
int th_mkdtemp(const char *prefix, char *out, size_t cap);
/* Remove a directory tree (best effort). */
void th_rmtree(const char *dir);
/* Copy a file byte for byte (mode 0755); 0 on success. */
int th_copy_file(const char *from, const char *to);

/* ECALLs, as the bridge makes them. Each returns the sgx_status_t; *ret gets ms_retval. */
kms_sgx_status_t th_ecall_init(uint64_t eid, int *ret);
kms_sgx_status_t th_ecall_call(uint64_t eid, const uint8_t *req, size_t req_len, uint8_t *resp,
                               size_t resp_cap, size_t *resp_len, int *ret);

/* ECALLs 2-5 with host buffers, as the bridge makes them; *ret gets ms_retval. */
kms_sgx_status_t th_ecall_report(uint64_t eid, const uint8_t ti[512], uint8_t report[432], int *ret);
kms_sgx_status_t th_ecall_session_open(uint64_t eid, uint64_t *sid, int *ret);
kms_sgx_status_t th_ecall_session_feed(uint64_t eid, uint64_t sid, const uint8_t *in, size_t in_len, uint8_t *out,
                                       size_t out_cap, size_t *out_len, size_t *pending, int *closed, int *ret);
kms_sgx_status_t th_ecall_session_close(uint64_t eid, uint64_t sid, int *ret);

/*
 * Make sessions possible without a quoting enclave: take the enclave's own REPORT (report
 * ECALL), wrap its body in a minimal quote v3 (header, body, zero padding: what the enclave
 * checks of a quote it installs) and install it. Returns the enclave's code.
 */
int th_install_self_quote(uint64_t eid);

/* SHA-256 over the readable parts of enclave eid's ELRANGE: image segments, heap, and every
 * TCS stack except skip_tcs (-1: none). 0 on success. */
int th_elrange_digest(uint64_t eid, int skip_tcs, uint8_t out[32]);

/* Encode req (version 1 and a request id are filled in when zero) into buf; 0 on failure. */
size_t th_encode(Request *req, uint8_t *buf, size_t cap);

/*
 * Encode req, make the call ECALL with a KMS_MAX_RESPONSE_SIZE buffer and decode into resp
 * (zeroed first; may be NULL). An OK answer that is not a decodable Response echoing the
 * version and request id aborts. Returns the enclave's kms_err_t, or TH_ECALL_FAILED
 * (status in *status when non-NULL).
 */
int th_request(uint64_t eid, Request *req, Response *resp, kms_sgx_status_t *status);

/* Heap-allocated zeroed Request/Response (they are tens of KiB); free with free(). */
Request *th_new_request(pb_size_t which_op);
Response *th_new_response(void);

/*
 * Create a key of spec/usage (the enclave stores its record through store_put); its id goes
 * to key_id[37]. Returns the enclave's code (KMS_OK on success).
 */
int th_create_key(uint64_t eid, KeySpec spec, KeyUsage usage, char key_id[37]);

#endif /* KMS_TESTHOST_H */
