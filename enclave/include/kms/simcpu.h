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
#define KMS_SIMCPU_ABI_VERSION 2u

/* Bounds and defaults of an enclave's memory (the EPC budget of the simulated enclave). */
#define KMS_SIMCPU_PAGE 4096u
#define KMS_SIMCPU_MAX_TCS 64u
#define KMS_SIMCPU_HEAP_MIN (4u * 1024u * 1024u)
#define KMS_SIMCPU_HEAP_MAX (16ull * 1024u * 1024u * 1024u)
#define KMS_SIMCPU_HEAP_DEFAULT (256u * 1024u * 1024u)
#define KMS_SIMCPU_STACK_MIN (64u * 1024u)
#define KMS_SIMCPU_STACK_MAX (64u * 1024u * 1024u)
/* Sanitizer builds of the CPU default to a larger stack (ASan's redzones grow every frame). */
#if defined(__SANITIZE_ADDRESS__)
#define KMS_SIMCPU_STACK_DEFAULT (4u * 1024u * 1024u)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KMS_SIMCPU_STACK_DEFAULT (4u * 1024u * 1024u)
#endif
#endif
#ifndef KMS_SIMCPU_STACK_DEFAULT
#define KMS_SIMCPU_STACK_DEFAULT (1024u * 1024u)
#endif
/* Untrusted scratch per TCS for OCALL marshalling (simcpu_ocalloc); the largest OCALL frame
 * (marshalling struct, ids and a 32 KiB record) fits many times over. */
#define KMS_SIMCPU_OCALLOC_SIZE (256u * 1024u)
/* Most readable image segments reported in a layout. */
#define KMS_SIMCPU_MAX_SEGMENTS 8u

/* The resources of one enclave (what Enclave.config.xml fixes on hardware). Sizes in bytes,
 * multiples of KMS_SIMCPU_PAGE; 0 selects the default. */
typedef struct {
    uint32_t struct_size;  /* sizeof(kms_simcpu_config): refused when it differs */
    uint32_t tcs_num;      /* 1..KMS_SIMCPU_MAX_TCS thread slots */
    uint64_t heap_size;    /* KMS_SIMCPU_HEAP_MIN..KMS_SIMCPU_HEAP_MAX (0: default) */
    uint64_t stack_size;   /* per TCS, KMS_SIMCPU_STACK_MIN..KMS_SIMCPU_STACK_MAX (0: default) */
} kms_simcpu_config;

/* A range of addresses [base, base + size). */
typedef struct {
    uintptr_t base;
    size_t size;
} kms_simcpu_range;

/*
 * The emulated ELRANGE of one enclave: the image as the loader mapped it (first to last
 * PT_LOAD, page-rounded; `segments` are its readable parts) and one reserved mapping that
 * holds a guard page, then per TCS a guard page and a stack, then the heap. Nothing else of
 * the process is enclave memory. A baseline CPU (built with KMS_SIM_BASELINE, benchmarks
 * only) reserves nothing: reserved, heap and stacks are empty.
 */
typedef struct {
    kms_simcpu_range image;
    kms_simcpu_range segments[KMS_SIMCPU_MAX_SEGMENTS];
    uint32_t segment_count;
    uint32_t tcs_num;
    kms_simcpu_range reserved;
    kms_simcpu_range heap;
    kms_simcpu_range stacks[KMS_SIMCPU_MAX_TCS]; /* usable stack of TCS i (no guard) */
} kms_simcpu_layout;

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

/*
 * simcpu_create_enclave with explicit resources (config: heap and stack sizes, thread slots).
 * The image file is read once: the bytes measured are the bytes loaded (a sealed memfd), so
 * every enclave has its own copy of the image's static state, as separate enclaves have on
 * hardware. Memory: one MAP_NORESERVE reservation of guard + stacks + heap, released when the
 * image is unloaded. Images are unloaded in reverse load order (glibc reclaims static TLS only
 * that way), and only when the next enclave is created (docs/simulation.md).
 * Errors as above; SGX_ERROR_OUT_OF_MEMORY also when the static TLS surplus is exhausted (why
 * names GLIBC_TUNABLES=glibc.rtld.optional_static_tls).
 */
KMS_EXPORT kms_sgx_status_t simcpu_create_enclave_ex(const char *platform_dir, const char *image_path,
                                                     const char *sigstruct_path,
                                                     const kms_simcpu_config *config, uint64_t *eid,
                                                     const char **why);

/* The ELRANGE of enclave eid (the host knows it on hardware too: it created the enclave).
 * SGX_ERROR_INVALID_ENCLAVE_ID, SGX_ERROR_INVALID_PARAMETER (out NULL). */
KMS_EXPORT kms_sgx_status_t simcpu_enclave_layout(uint64_t eid, kms_simcpu_layout *out);

/* Destroy: the enclave gets the uninit command (it releases its global state), its id stops
 * working, and its image and memory are unloaded when the next enclave is created (images go
 * in reverse load order). Waits for nothing: the caller must ensure no ECALL is running. */
KMS_EXPORT kms_sgx_status_t simcpu_destroy_enclave(uint64_t eid);

/*
 * EENTER: run ECALL `index` of enclave `eid` with marshalling struct `ms` (untrusted memory)
 * and the OCALL table `ocall_table` (a kms_ocall_table_t). Nested ECALLs from an OCALL are
 * refused (SGX_ERROR_ECALL_NOT_ALLOWED). The enclave runs on the stack of a free TCS inside
 * its ELRANGE (makecontext/swapcontext); SGX_ERROR_OUT_OF_TCS when none is free.
 */
KMS_EXPORT kms_sgx_status_t simcpu_ecall(uint64_t eid, int index, const void *ocall_table, void *ms);

/* Instructions (called from inside the enclave) ------------------------------------------ */

/* The layout of the enclave running on this thread (the trusted runtime reads its own
 * layout on hardware). SGX_ERROR_INVALID_STATE outside an ECALL. */
KMS_EXPORT kms_sgx_status_t simcpu_self_layout(kms_simcpu_layout *out);

/*
 * sgx_ocalloc: size bytes (16-aligned) of untrusted memory, outside ELRANGE, for the
 * marshalling struct and buffers of the next OCALL of the current ECALL; NULL outside an ECALL
 * or when the TCS's KMS_SIMCPU_OCALLOC_SIZE scratch is used up. simcpu_ocfree releases every
 * block of the current TCS (sgx_ocfree). The host can read and write these blocks at any time.
 */
KMS_EXPORT void *simcpu_ocalloc(size_t size);
KMS_EXPORT void simcpu_ocfree(void);

/* EEXIT to OCALL `index` of the table given to the current ECALL, then ERESUME. The OCALL
 * runs on the host thread's own stack, as after EEXIT; the enclave resumes on its stack. */
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
