/*
 * log.h - enclave logging through the log OCALL: a level, an error code and a FIXED string
 * (a literal). Never data: no key ids, no lengths of secrets, no bytes. Thread-safe.
 */
#ifndef KMS_ENCLAVE_LOG_H
#define KMS_ENCLAVE_LOG_H

#include "kms/edge.h"
#include "kms/errors.h"

/* msg must be a string literal. Failures of the OCALL are ignored (logging is best effort). */
void kms_log(int level, kms_err_t code, const char *msg);

#endif /* KMS_ENCLAVE_LOG_H */
