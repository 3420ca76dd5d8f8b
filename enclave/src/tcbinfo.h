/*
 * tcbinfo.h - the TCB evaluation of a verified quote (reference/dcap-ratls.md §2.3 steps 9, 11, 12):
 * the PCK certificate's SGX extension, Intel's TCB Info (v2, v3) and QE Identity (v2) JSON bodies, and
 * how their statuses combine. The bodies' signatures are the caller's (collateral.c): these functions
 * only parse and match. JSON through Debian's jansson (linked into the image; its allocations go to the
 * enclave heap like every other). Trusted code, no state; thread-safe.
 */
#ifndef KMS_ENCLAVE_TCBINFO_H
#define KMS_ENCLAVE_TCBINFO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "kms/errors.h"

/* Largest TCB Info / QE Identity body parsed, and most TCB levels in one (Intel's hold ~20). */
#define KMS_TCB_BODY_MAX 16384u
#define KMS_TCB_LEVELS_MAX 64u

/* A TCB status: a TcbStatusFlag bit (boundary.proto), or KMS_TCB_REVOKED (no flag: never allowed). */
#define KMS_TCB_REVOKED 0x80000000u

/* What the PCK leaf's SGX extension (OID 1.2.840.113741.1.13.1) says about the platform. */
typedef struct {
    uint8_t fmspc[6];
    uint8_t pce_id[2];
    uint8_t components[16];   /* SGX TCB components 1..16 (OIDs ...13.1.2.1 to .2.16) */
    uint16_t pcesvn;          /* ...13.1.2.17 */
} kms_pck_tcb;

/* Decode leaf's SGX extension (exactly one, DER, each needed entry once with its type and range).
 * KMS_ERR_PEER_MISMATCH when absent or malformed. The leaf is only read. */
kms_err_t kms_pck_tcb_of(X509 *leaf, kms_pck_tcb *out);

/* The platform's status from a TCB Info body (len <= KMS_TCB_BODY_MAX): version 2 or 3 (id "SGX"), TCB
 * type 0, issueDate <= now <= nextUpdate, fmspc and pceId equal to pck's, then the first TCB level (in
 * the body's order) whose 16 components and PCESVN the PCK's all reach. *status: a TcbStatusFlag bit or
 * KMS_TCB_REVOKED. KMS_ERR_PEER_MISMATCH for anything malformed, stale, foreign, an unknown status on the
 * matching level, or no matching level (TCB not supported). */
kms_err_t kms_tcb_info_status(const uint8_t *body, size_t len, const kms_pck_tcb *pck, int64_t now,
                              uint32_t *status);

/* The QE's status from a QE Identity body (len <= KMS_TCB_BODY_MAX): version 2, id "QE", issueDate <=
 * now <= nextUpdate, the QE report body's (384 bytes) MISCSELECT and ATTRIBUTES under the masks, its
 * MRSIGNER and ISVPRODID equal, then the first level whose ISVSVN the QE's reaches. Errors as above. */
kms_err_t kms_qe_identity_status(const uint8_t *body, size_t len, const uint8_t qe_report[384], int64_t now,
                                 uint32_t *status);

/* The quote's status from the platform's and the QE's, as Intel's QVL converges them
 * (convergeTcbStatusWithQeTcbStatus): QE Revoked -> Revoked; QE OutOfDate turns UpToDate and
 * SWHardeningNeeded into OutOfDate, ConfigurationNeeded and ConfigurationAndSWHardeningNeeded into
 * OutOfDateConfigurationNeeded; otherwise the platform's. */
uint32_t kms_tcb_converge(uint32_t platform, uint32_t qe);

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC, the form Intel's collateral uses) to Unix seconds. -1: anything else. */
int64_t kms_tcb_parse_date(const char *text);

#endif /* KMS_ENCLAVE_TCBINFO_H */
