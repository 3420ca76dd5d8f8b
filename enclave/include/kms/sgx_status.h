/*
 * sgx_status.h - the sgx_status_t values of the Intel SGX SDK (sgx_error.h) that the
 * simulated platform and the bridge return. Same numbers as the SDK, so logs read the same
 * on hardware. These report "the ECALL/platform failed", never an enclave decision (those
 * are kms_err_t). Constants only.
 */
#ifndef KMS_SGX_STATUS_H
#define KMS_SGX_STATUS_H

typedef unsigned int kms_sgx_status_t;

#define SGX_SUCCESS 0x0000u
#define SGX_ERROR_UNEXPECTED 0x0001u
#define SGX_ERROR_INVALID_PARAMETER 0x0002u
#define SGX_ERROR_OUT_OF_MEMORY 0x0003u
#define SGX_ERROR_ENCLAVE_LOST 0x0004u
#define SGX_ERROR_INVALID_STATE 0x0005u
#define SGX_ERROR_INVALID_FUNCTION 0x1001u
#define SGX_ERROR_OUT_OF_TCS 0x1003u
#define SGX_ERROR_ECALL_NOT_ALLOWED 0x1007u
#define SGX_ERROR_OCALL_NOT_ALLOWED 0x1008u
#define SGX_ERROR_INVALID_ENCLAVE 0x2001u
#define SGX_ERROR_INVALID_ENCLAVE_ID 0x2002u
#define SGX_ERROR_INVALID_SIGNATURE 0x2003u
#define SGX_ERROR_INVALID_METADATA 0x2009u
#define SGX_ERROR_MAC_MISMATCH 0x3001u
#define SGX_ERROR_INVALID_ATTRIBUTE 0x3002u
#define SGX_ERROR_INVALID_CPUSVN 0x3003u
#define SGX_ERROR_INVALID_ISVSVN 0x3004u
#define SGX_ERROR_INVALID_KEYNAME 0x3005u
#define SGX_ERROR_FILE_BAD_STATUS 0x7001u

#endif /* KMS_SGX_STATUS_H */
