/* handlers_eth_keystore.c - EIP-2335 keystore import: KDF, checksum and AES-128-CTR inside the enclave. */
#include "handlers.h"

kms_err_t kms_handle_eth_import_keystore(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx, (void)req, (void)resp;
    return KMS_ERR_UNSUPPORTED;
}
