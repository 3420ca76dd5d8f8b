/*
 * replicas.h - the cluster's replicas (docs/cluster.md): this enclave's join key and replica id,
 * and the replica records and policy kept in the domain state (so under the state log).
 * Trusted code. Thread-safe.
 */
#ifndef KMS_ENCLAVE_REPLICAS_H
#define KMS_ENCLAVE_REPLICAS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"
#include "quote.h"

#define KMS_REPLICA_ID_LEN 32u

/*
 * This enclave's join key: X25519, derived from an EGETKEY seal key of this node (MRSIGNER
 * policy, ISVSVN 0, CPUSVN 0, a fixed KEYID), so every enclave of our signer on this CPU derives
 * the same key, across restarts and upgrades, and no other CPU (nor a DEBUG build) can. pub and
 * id (SHA-256 of pub) may be NULL. key (may be NULL) receives a new reference the caller frees.
 * Errors: KMS_ERR_PLATFORM, KMS_ERR_CRYPTO.
 */
kms_err_t kms_replica_self(uint8_t pub[32], uint8_t id[KMS_REPLICA_ID_LEN], EVP_PKEY **key);

/* At init, into a new domain state: this enclave as the first approved replica, and the default
 * policy (min ISVSVN = ours, TCB up to date only, no auto-join). */
kms_err_t kms_replicas_found(DomainState *st, int64_t now);

/* The records, the policy and this replica's id. KMS_ERR_NOT_INITIALIZED_DOMAIN. */
kms_err_t kms_replicas_list(ReplicaList *out);

/* Pending -> approved. KMS_ERR_INVALID_ARGUMENT (no such replica), KMS_ERR_PERMISSION_DENIED (removed). */
kms_err_t kms_replicas_approve(const uint8_t id[KMS_REPLICA_ID_LEN], int64_t now);

/* Any -> removed, for good. Not this replica itself (KMS_ERR_INVALID_ARGUMENT: remove it through
 * another one), nor the last approved one. KMS_ERR_PERMISSION_DENIED: already removed. */
kms_err_t kms_replicas_remove(const uint8_t id[KMS_REPLICA_ID_LEN], int64_t now);

/* Replace the policy. KMS_ERR_INVALID_ARGUMENT: an ISVSVN above 65535, no TCB status or an unknown one. */
kms_err_t kms_replicas_set_policy(const ReplicaPolicy *policy);

/* KMS_OK when this replica may serve: it is APPROVED in the domain state, or the domain has no
 * replica records (made before clusters) or no domain state at all (a host-only domain key).
 * Else KMS_ERR_REPLICA_NOT_APPROVED. */
kms_err_t kms_replicas_self_approved(void);

/* Recovery (M of N shares) on this node: record it APPROVED, unless the domain has no replica records
 * (made before clusters: nothing to record). A REMOVED node stays removed: KMS_ERR_REPLICA_NOT_APPROVED. */
kms_err_t kms_replicas_enroll_self(int64_t now);

/* The domain's replica policy. KMS_ERR_NOT_INITIALIZED_DOMAIN. */
kms_err_t kms_replicas_policy(ReplicaPolicy *out);

/* The status of replica id (REPLICA_STATUS_UNSPECIFIED: no record). */
kms_err_t kms_replicas_status(const uint8_t id[KMS_REPLICA_ID_LEN], ReplicaStatus *out);

/*
 * A peer enclave's verified quote against this enclave and a policy: our MRSIGNER and ISVPRODID, no
 * DEBUG, ISVSVN >= min_isv_svn (policy NULL: skipped, and the root and TCB status too), a root that is
 * Intel's or one of the policy's extra roots, a TCB status (from the verified collateral) among the
 * policy's allowed_tcb_statuses, and REPORTDATA = SHA-256(label || bound) || 0^32.
 * KMS_ERR_PERMISSION_DENIED (signer, product, debug), KMS_ERR_PEER_MISMATCH (the rest).
 */
kms_err_t kms_replicas_check_peer(const kms_quote_info *info, const ReplicaPolicy *policy, const char *label,
                                  const uint8_t *bound, size_t bound_len);

/* Record a verified joiner (PENDING, or APPROVED when the policy auto-joins) unless it has a record
 * (*recorded: 1 when this call wrote it); *out: its status. KMS_ERR_REPLICA_NOT_APPROVED for a removed
 * one; KMS_ERR_RECORD_TOO_LARGE when the list is full. */
kms_err_t kms_replicas_admit(const Replica *candidate, ReplicaStatus *out, int *recorded);

#endif /* KMS_ENCLAVE_REPLICAS_H */
