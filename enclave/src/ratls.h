/*
 * ratls.h - the enclave's RA-TLS identity: a P-256 TLS key generated inside at initialization,
 * the claims that bind it into REPORTDATA, and the self-signed certificate carrying the quote
 * in the interoperable evidence extension (reference/dcap-ratls.md §3.2, §3.5).
 * Trusted code. Thread-safe (one mutex; the key never leaves). Sizes in bytes.
 */
#ifndef KMS_ENCLAVE_RATLS_H
#define KMS_ENCLAVE_RATLS_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

/* Generate the TLS key and its claims. Called once by the init ECALL. KMS_ERR_CRYPTO. */
kms_err_t kms_ratls_init(void);

/* Add (or, with NULL, remove) the domain's audit public key to the claims, so reports made
 * from now on bind it too ("audit-key"). */
kms_err_t kms_ratls_set_audit_key(const uint8_t pub[32]);

/* Add (or, with NULL, remove) the domain id (16 bytes) to the claims ("domain-id"), so that
 * clients can pin the domain an enclave serves. */
void kms_ratls_set_domain(const uint8_t id[16]);

/* REPORTDATA for every report: SHA-256(claims) || 32 zero bytes. KMS_ERR_NOT_INITIALIZED. */
kms_err_t kms_ratls_report_data(uint8_t out[64]);

/*
 * Check that quote (v3 or v4 SGX) carries this enclave's report body (MRENCLAVE, MRSIGNER,
 * ISVPRODID, ISVSVN, attributes and the REPORTDATA above), then issue the certificate (DER,
 * ecdsa-with-SHA256, basicConstraints CA:FALSE, non-critical 2.23.133.5.4.9 extension =
 * CBOR 60000([quote, claims])) and keep it with the quote as the current evidence.
 * cert has room for cap bytes. Errors: KMS_ERR_QUOTE_MISMATCH, KMS_ERR_BUFFER_TOO_SMALL,
 * KMS_ERR_CRYPTO, KMS_ERR_PLATFORM.
 */
kms_err_t kms_ratls_install_quote(const uint8_t *quote, size_t quote_len, uint8_t *cert, size_t cap,
                                  size_t *cert_len);

/* The current certificate and quote. KMS_ERR_EVIDENCE_NOT_READY before a quote is installed,
 * and after a claim changed (the domain was initialized, loaded or forgotten): the host must
 * have the enclave quoted again. Sessions keep using the last certificate meanwhile. */
kms_err_t kms_ratls_evidence(uint8_t *cert, size_t cert_cap, size_t *cert_len, uint8_t *quote,
                             size_t quote_cap, size_t *quote_len);

/* Give a TLS server connection the RA-TLS certificate and key (session.c).
 * KMS_ERR_EVIDENCE_NOT_READY before a quote is installed; KMS_ERR_CRYPTO. */
struct ssl_st;
kms_err_t kms_ratls_use(struct ssl_st *ssl);

#endif /* KMS_ENCLAVE_RATLS_H */
