/*
 * stub_enclave.h - the ECALLs of the TEST-ONLY enclave image stub_enclave.so (built into
 * build/asan/ for test_simcpu, never shipped). It lets a test run the simulated CPU's
 * instructions (EGETKEY, EREPORT, OCALL) from inside an enclave context without adding
 * anything to the production enclave. The marshalling structs are used in place (no copy):
 * this image checks nothing and must never hold a secret.
 */
#ifndef KMS_STUB_ENCLAVE_H
#define KMS_STUB_ENCLAVE_H

#include <stdint.h>

enum { STUB_ECALL_EGETKEY = 0, STUB_ECALL_EREPORT = 1, STUB_ECALL_OCALL = 2, STUB_ECALL_VARIANT = 3 };

typedef struct {
    unsigned int status;          /* out: simcpu_egetkey's sgx_status_t */
    uint8_t key_request[512];     /* in */
    uint8_t key[16];              /* out */
} stub_ms_egetkey_t;

typedef struct {
    unsigned int status;          /* out: simcpu_ereport's sgx_status_t */
    int has_target;               /* 0: target myself (NULL target info) */
    uint8_t target_info[512];     /* in */
    uint8_t report_data[64];      /* in */
    uint8_t report[432];          /* out */
} stub_ms_ereport_t;

typedef struct {
    unsigned int status;          /* out: simcpu_ocall's sgx_status_t */
    int index;                    /* in: OCALL index */
    void *ms;                     /* in: its marshalling struct */
} stub_ms_ocall_t;

typedef struct {
    int variant;                  /* out: STUB_VARIANT the image was built with */
} stub_ms_variant_t;

#endif /* KMS_STUB_ENCLAVE_H */
