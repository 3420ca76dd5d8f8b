/*
 * collateral.h - a quote's collateral verified inside the enclave (reference/dcap-ratls.md §2.3 steps 4-6,
 * 9, 11, 12; docs/cluster.md): the CRLs, the TCB Info and the QE Identity, each signed by a key that
 * chains to the root of the quote's own (already verified) PCK chain, and current at the enclave's time.
 * The host supplies them (QuoteCollateral in boundary.proto) and is not trusted for any of it.
 * Trusted code, no state; thread-safe.
 */
#ifndef KMS_ENCLAVE_COLLATERAL_H
#define KMS_ENCLAVE_COLLATERAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

/* A quote's PCK chain as kms_quote_verify verified it (borrowed: the caller keeps ownership). */
typedef struct {
    X509 *leaf, *ca, *root;
} kms_pck_chain;

/* Exactly n PEM certificates (nothing after them but one optional NUL or newline) from len bytes
 * (at most 8192) into out[0..n-1], which the caller frees with X509_free; on failure none is left.
 * KMS_ERR_PEER_MISMATCH. */
kms_err_t kms_pem_certs(const uint8_t *pem, size_t len, X509 **out, int n);

/*
 * Verify c for the quote whose chain and QE report body (384 bytes) are given, at Unix time now:
 *  - the Root CA CRL is signed by the chain's root, the PCK CRL by its CA (each: issuer name, signature,
 *    thisUpdate <= now <= nextUpdate); the CA is not on the root's CRL, the leaf not on the CA's; the PCK
 *    CRL issuer chain is that CA (subject and key) and that root (byte for byte);
 *  - the TCB Info and QE Identity issuer chains are a "TCB Signing" certificate and the chain's root
 *    (byte for byte), valid at now, the signer not on the root's CRL; each body's ECDSA P-256 signature
 *    (r || s) verifies with it over the exact body bytes; then tcbinfo.h's rules give the platform's and
 *    the QE's statuses, combined by kms_tcb_converge.
 * *status: the quote's TcbStatusFlag bit. KMS_ERR_PEER_MISMATCH for a missing, malformed, stale, foreign
 * or revoked piece and for a Revoked TCB. Reads only.
 */
kms_err_t kms_collateral_check(const kms_pck_chain *chain, const uint8_t qe_report[384], const QuoteCollateral *c,
                               int64_t now, uint32_t *status);

#endif /* KMS_ENCLAVE_COLLATERAL_H */
