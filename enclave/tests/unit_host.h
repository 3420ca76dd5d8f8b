/*
 * unit_host.h - what the C unit tests link instead of the trusted edge and the simulated
 * platform: platform.h over a fixed identity and a deterministic key source, and ocalls.h
 * over an in-memory record store and audit log, with hooks a test sets to play a hostile
 * host. The enclave modules under test (every enclave/src file but edge.c, and no platform file)
 * are linked in directly, so a test calls their functions as trusted code would.
 *
 * Test code, not trusted. Thread-safety: the store and the log are guarded by one mutex;
 * hooks are plain globals set while no other thread runs. Sizes in bytes.
 */
#ifndef KMS_UNIT_HOST_H
#define KMS_UNIT_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "request.h"

/* Drop every record and audit entry; reset the hooks and counters. */
void uh_reset(void);

/* A stored record (revision and blob), or NULL. The pointer stays valid until the next put
 * of that name or uh_reset; the test may modify the blob in place (a hostile store). */
typedef struct {
    uint64_t revision;
    uint8_t *blob;
    size_t len;
} uh_record;
uh_record *uh_record_get(const char *name);
/* Replace (or create) a record with these bytes, as a host writing its own store. */
void uh_record_set(const char *name, uint64_t revision, const uint8_t *blob, size_t len);

/* State log entries the host holds (uh_log_count) and entry i (0-based; NULL beyond); a test
 * may alter them, drop the last n, or make the host lie about commits. */
size_t uh_log_count(void);
uint8_t *uh_log_entry(size_t i, size_t *len);
void uh_log_drop(size_t n);
/* Save the whole store (records and state log) into snapshot slot (0..3), or put a saved one
 * back: a host restoring an older but consistent copy of its store. */
void uh_snapshot(int slot);
void uh_restore(int slot);

/* Non-zero: the next commits are written, then reported as this error (an outcome the host hides). */
extern kms_err_t uh_commit_lie;

/* Audit entries appended so far (uh_audit_count) and entry i (0-based; NULL beyond); the
 * test may alter the bytes in place (a hostile host). */
size_t uh_audit_count(void);
uint8_t *uh_audit_entry(size_t i, size_t *len);
/* Forget the last n entries, as a host truncating its log. */
void uh_audit_drop(size_t n);
/* Audit entries are queued (kms_edge_audit_enqueue) and applied in queue order by the first
 * kms_edge_audit_wait that reaches them, as the host's group commit does: an entry must be the
 * last + 1, and one that follows must come after exactly the entry queued before it, else the wait
 * answers KMS_ERR_CONFLICT (out of sequence, as the host does). Non-zero:
 * applying the entry with this seq fails once (an injected store failure). */
extern uint64_t uh_fail_audit_seq;

/* Hooks: a non-zero value makes the next OCALLs of that kind fail that way. */
extern kms_err_t uh_fail_get, uh_fail_put, uh_fail_append; /* returned as the OCALL's error */
extern unsigned long uh_puts, uh_gets, uh_appends;          /* counters since uh_reset */
extern unsigned long uh_log_gets;                            /* state log entries read */
/* The next n queued audit entries lose a race: each is stored when applied, as if by another replica
 * of the domain (same audit key), and its wait answers KMS_ERR_CONFLICT. */
extern unsigned long uh_audit_race;

/* Initialize the enclave modules once (identity, RNG self test, RA-TLS key) and generate a
 * domain key on a fresh store: the state every test starts from. Aborts on failure. */
void uh_enclave_with_domain(void);

/* The same, without a domain: a fresh enclave that only init (over a session) can set up. */
void uh_enclave_fresh(void);

/* A caller of kind KMS_CALLER_PRINCIPAL with principal id[0..31] = byte. */
kms_caller uh_principal(uint8_t byte);

/* Run req (encoded here) as caller through kms_request_run; the response is decoded into
 * *resp (zeroed first) from its encoding. Returns the outcome. */
kms_err_t uh_run(const kms_caller *caller, int64_t now, Request *req, Response *resp);

/* A Request with version 1 and op tag set (heap, zeroed; free()). */
Request *uh_request(pb_size_t tag);

#endif /* KMS_UNIT_HOST_H */
