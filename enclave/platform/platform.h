/*
 * platform.h - the seam between the trusted KMS code and the platform it runs on (the SVR2
 * `env` pattern). platform/sim/platform_sim.c implements it on the simulated CPU; an SGX
 * port implements it with ENCLU (EGETKEY/EREPORT) and the SDK's OCALL stubs. Only platform
 * files include platform headers. All functions are thread-safe. Sizes in bytes.
 */
#ifndef KMS_PLATFORM_H
#define KMS_PLATFORM_H

#ifdef KMS_UNTRUSTED_BUILD
#error "platform.h is trusted-only"
#endif

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

/* The running enclave's identity, as the CPU reports it (never as the host claims it). */
typedef struct {
    uint8_t cpusvn[16];
    uint32_t miscselect;
    uint64_t attributes;   /* flags: INIT 0x1, DEBUG 0x2, MODE64BIT 0x4 */
    uint64_t xfrm;
    uint8_t mrenclave[32];
    uint8_t mrsigner[32];
    uint16_t isvprodid;
    uint16_t isvsvn;
} kms_identity;

/* Identity of this enclave from a REPORT targeted at itself. Errors: KMS_ERR_PLATFORM. */
kms_err_t platform_self_identity(kms_identity *out);

/*
 * EGETKEY for a 512-byte KEYREQUEST into key[16]. Errors map the CPU's refusal:
 * KMS_ERR_SEAL_INVALID_ISVSVN, KMS_ERR_SEAL_INVALID_CPUSVN, KMS_ERR_SEAL_INVALID_POLICY
 * (bad key name or policy), KMS_ERR_PLATFORM (anything else). The caller wipes key.
 */
kms_err_t platform_get_key(const uint8_t key_request[512], uint8_t key[16]);

/* EREPORT for target_info[512] with report_data[64] into report[432]. KMS_ERR_REPORT. */
kms_err_t platform_report(const uint8_t target_info[512], const uint8_t report_data[64],
                          uint8_t report[432]);

/*
 * Called by the edge at every ECALL before anything else. The first call learns ELRANGE from
 * the CPU (elrange.h), sets up the enclave heap and initialises OpenSSL without configuration
 * files; later calls return that outcome. Errors: KMS_ERR_PLATFORM, KMS_ERR_OUT_OF_MEMORY.
 */
kms_err_t platform_enter(void);

/*
 * At destroy (the CPU's uninit command): release the enclave's global state (OpenSSL's, the
 * heap's per-thread keys) so no host thread calls into the image afterwards; every ECALL fails
 * after it. No-op when the enclave never entered. Not thread-safe: no ECALL may run.
 */
void platform_exit(void);

/*
 * sgx_ocalloc: size bytes (16-aligned) of untrusted memory, outside ELRANGE, for the
 * marshalling struct and buffers of the next OCALL; NULL when the frame is full or outside an
 * ECALL. The host may read and write it at any time: copy in, check, then use. Every block
 * is released by platform_ocfree (sgx_ocfree), which the caller runs after the OCALL.
 */
void *platform_ocalloc(size_t size);
void platform_ocfree(void);

/* OCALL `index` with its marshalling struct (in memory from platform_ocalloc). KMS_ERR_OCALL. */
kms_err_t platform_ocall(int index, void *ms);

/* 1 when this build runs on the simulated platform (which protects nothing). */
int platform_is_simulated(void);

#endif /* KMS_PLATFORM_H */
