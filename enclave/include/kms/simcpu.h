/*
 * simcpu.h - the simulated SGX CPU (libkms_simcpu.so). It stands in for hardware and for
 * the SDK's untrusted runtime in simulation, and PROTECTS NOTHING: the host can read the
 * root secret file and every enclave's memory. It exists so that the same trusted code,
 * the same sealed-blob and report formats and the same loader convention run without SGX.
 *
 * Two groups of functions:
 *  - loader (untrusted callers: the bridge): create/destroy an enclave from an image and
 *    its SIGSTRUCT on a platform directory, and EENTER it;
 *  - instructions (trusted callers: enclave/platform/sim/platform_sim.c only): EGETKEY,
 *    EREPORT and OCALL for the enclave that is executing on the calling thread.
 * All functions return an sgx_status_t (kms/sgx_status.h). Thread-safety: every function is
 * thread-safe; at most tcs_num ECALLs run in one enclave at once (SGX_ERROR_OUT_OF_TCS).
 */
#ifndef KMS_SIMCPU_H
#define KMS_SIMCPU_H

#include <stddef.h>
#include <stdint.h>

#include "kms/export.h"
#include "kms/sgx_status.h"

/* Names under which the bridge resolves the loader with dlsym. */
#define KMS_SIMCPU_LIBRARY "libkms_simcpu.so"
#define KMS_SIMCPU_ABI_VERSION 1u

/* Loader --------------------------------------------------------------------------------- */

/* ABI version of this library (KMS_SIMCPU_ABI_VERSION); the bridge refuses a mismatch. */
KMS_EXPORT unsigned int simcpu_abi_version(void);

/*
 * ECREATE+EADD+EINIT: measure the image file (MRENCLAVE = SHA-256 of its bytes), verify the
 * SIGSTRUCT (header constants, RSA-3072 e=3 PKCS#1 v1.5 signature, ENCLAVEHASH == MRENCLAVE),
 * derive MRSIGNER = SHA-256(modulus), open (or create, mode 0600) the platform's root secret
 * under platform_dir/sgx-sim/, then load the image and record the enclave's identity.
 * tcs_num (1..64) bounds concurrent ECALLs. On success *eid is a non-zero opaque id.
 * Errors: SGX_ERROR_INVALID_PARAMETER, SGX_ERROR_INVALID_SIGNATURE, SGX_ERROR_INVALID_ENCLAVE
 * (image hash, attributes, or missing entry point), SGX_ERROR_FILE_BAD_STATUS (platform dir,
 * root file unreadable, or root file accessible by group/other), SGX_ERROR_OUT_OF_MEMORY.
 * `why` (may be NULL) receives a static string naming the failed check.
 */
KMS_EXPORT kms_sgx_status_t simcpu_create_enclave(const char *platform_dir, const char *image_path,
                                       const char *sigstruct_path, unsigned int tcs_num,
                                       uint64_t *eid, const char **why);

/* Unload. Waits for nothing: the caller must ensure no ECALL is running. */
KMS_EXPORT kms_sgx_status_t simcpu_destroy_enclave(uint64_t eid);

/*
 * EENTER: run ECALL `index` of enclave `eid` with marshalling struct `ms` (untrusted memory)
 * and the OCALL table `ocall_table` (a kms_ocall_table_t). Nested ECALLs from an OCALL are
 * refused (SGX_ERROR_ECALL_NOT_ALLOWED).
 */
KMS_EXPORT kms_sgx_status_t simcpu_ecall(uint64_t eid, int index, const void *ocall_table, void *ms);

/* Instructions (called from inside the enclave) ------------------------------------------ */

/* EEXIT to OCALL `index` of the table given to the current ECALL, then ERESUME. */
KMS_EXPORT kms_sgx_status_t simcpu_ocall(int index, void *ms);

/*
 * EGETKEY: 16-byte key for a 512-byte KEYREQUEST (SEAL or REPORT key names). Checks as the
 * hardware does: request ISVSVN above the enclave's -> SGX_ERROR_INVALID_ISVSVN; request
 * CPUSVN above the platform's -> SGX_ERROR_INVALID_CPUSVN; unknown key name ->
 * SGX_ERROR_INVALID_KEYNAME; non-zero reserved bytes or KSS policy bits ->
 * SGX_ERROR_INVALID_PARAMETER.
 */
KMS_EXPORT kms_sgx_status_t simcpu_egetkey(const uint8_t key_request[512], uint8_t key[16]);

/*
 * EREPORT: a 432-byte REPORT of the current enclave for the target described by the
 * 512-byte TARGETINFO, with the 64-byte REPORTDATA, MACed with the target's report key.
 * A NULL target_info means "target myself" (used to read one's own identity).
 */
KMS_EXPORT kms_sgx_status_t simcpu_ereport(const uint8_t *target_info, const uint8_t report_data[64],
                                uint8_t report[432]);

#endif /* KMS_SIMCPU_H */
