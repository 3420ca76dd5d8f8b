/*
 * limits.h - sizes fixed at compile time for everything that crosses the boundary.
 * Shared by the enclave and the untrusted bridge (which sizes its buffers from them).
 * All values are in bytes unless named _COUNT. The generated nanopb size constants are
 * checked against these in enclave/src/ecall.c with _Static_assert.
 */
#ifndef KMS_LIMITS_H
#define KMS_LIMITS_H

/* Largest encoded Request the call ECALL accepts (nanopb's Request_size must fit). */
#define KMS_MAX_REQUEST_SIZE (64u * 1024u)
/* Largest encoded Response; the host's output buffer must be at least this big. */
#define KMS_MAX_RESPONSE_SIZE (64u * 1024u)
/* Largest plaintext / message accepted by Encrypt, Sign, GenerateMac (AWS KMS: 4 KiB; bulk
 * data goes through data keys). Bounded by nanopb's 16-bit field sizes in Debian's build. */
#define KMS_MAX_DATA_SIZE (32u * 1024u)
/* Largest encrypted key record the store OCALL may hand back. */
#define KMS_MAX_RECORD_BLOB (32u * 1024u)
/* Key ids: UUID strings, 36 characters. */
#define KMS_KEY_ID_LEN 36u
/* Versions a key may hold before it must be retired (rotation refuses beyond this). */
#define KMS_MAX_KEY_VERSIONS_COUNT 8u
/* Decrypted key records cached inside the enclave (LRU; wiped on eviction). */
#define KMS_RECORD_CACHE_COUNT 64u
/* Auditors a domain's audit bodies are encrypted to (InitRequest, SetAuditorsRequest). */
#define KMS_MAX_AUDITORS_COUNT 8u
/* GenerateRandom upper bound. */
#define KMS_MAX_RANDOM_SIZE 1024u

/* Session ECALL buffers: client TLS bytes per feed, and TLS output returned per feed. */
#define KMS_SESSION_IN_MAX (128u * 1024u)
#define KMS_SESSION_OUT_MAX (256u * 1024u)

/* SGX structure sizes (real layouts). */
#define KMS_SGX_REPORT_SIZE 432u
#define KMS_SGX_TARGET_INFO_SIZE 512u
#define KMS_SGX_REPORT_DATA_SIZE 64u
#define KMS_SGX_KEY_REQUEST_SIZE 512u
#define KMS_SGX_SEALED_HEADER_SIZE 560u
#define KMS_SGX_SIGSTRUCT_SIZE 1808u

#endif /* KMS_LIMITS_H */
