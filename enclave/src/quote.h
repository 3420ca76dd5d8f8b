/*
 * quote.h - DCAP quote v3 verification inside the enclave, for the attested join of replicas
 * (docs/cluster.md). The quote's PCK chain (certification data type 5) must verify to its own
 * root at the given time; the QE report must be signed by the PCK leaf and bind the attestation
 * key; the ISV report must be signed by the attestation key. What the chain's root is, and whether
 * that root and the ISV enclave are acceptable, is the caller's decision (kms_quote_info). The
 * collateral the host supplies beside the quote must verify too (collateral.h: CRLs, TCB Info, QE
 * Identity, all to the same root), which gives the quote's TCB status; whether that status is
 * acceptable is the caller's policy. Trusted code, no state; thread-safe.
 */
#ifndef KMS_ENCLAVE_QUOTE_H
#define KMS_ENCLAVE_QUOTE_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

#define KMS_QUOTE_BODY_LEN 384u
#define KMS_QUOTE_ROOT_LEN 65u /* an uncompressed P-256 point */

typedef struct {
    uint8_t body[KMS_QUOTE_BODY_LEN];   /* the ISV enclave's report body */
    uint8_t root[KMS_QUOTE_ROOT_LEN];   /* the public key of the chain's root */
    uint8_t qe_mrsigner[32];
    uint32_t tcb_status;                /* one TcbStatusFlag bit: the platform's and QE's, converged */
} kms_quote_info;

/* Intel's SGX Root CA public key (the production trust anchor). */
extern const uint8_t kms_intel_sgx_root[KMS_QUOTE_ROOT_LEN];

/* Verify quote (len bytes) and its collateral (NULL: refused) at Unix time now. KMS_ERR_PEER_MISMATCH
 * for anything that does not parse or verify, a revoked certificate and a Revoked TCB. out is written
 * only on success (tcb_status included). */
kms_err_t kms_quote_verify(const uint8_t *quote, size_t len, const QuoteCollateral *collateral, int64_t now,
                           kms_quote_info *out);

#endif /* KMS_ENCLAVE_QUOTE_H */
