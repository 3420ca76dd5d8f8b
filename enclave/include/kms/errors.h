/*
 * errors.h - the enclave's error type. The values come from proto/.../errors.proto (the one
 * error vocabulary shared with Python); this header only names the C type.
 * Thread-safety: constants only.
 */
#ifndef KMS_ERRORS_H
#define KMS_ERRORS_H

#include "kms/proto/enclave/v1/errors.pb.h"

typedef ErrorCode kms_err_t;

/* Evaluate expr (a kms_err_t); on failure store it in `err` and jump to `label`. */
#define KMS_GOTO_IF_ERR(err, expr, label) \
    do {                                  \
        (err) = (expr);                   \
        if ((err) != KMS_OK) goto label;  \
    } while (0)

/* Return the error of expr if it is not KMS_OK. */
#define KMS_RETURN_IF_ERR(expr)          \
    do {                                 \
        kms_err_t kms_err_ = (expr);     \
        if (kms_err_ != KMS_OK) return kms_err_; \
    } while (0)

#endif /* KMS_ERRORS_H */
