/*
 * dispatch.h - routes a decoded Request to its handler by oneof tag. Handlers do the
 * semantic and authorization checks (models.md rule 3, place 3) and fill the Response;
 * changes are persisted through the store_put OCALL before they answer. Thread-safe. Errors: KMS_ERR_UNKNOWN_OPERATION
 * or the handler's.
 */
#ifndef KMS_ENCLAVE_DISPATCH_H
#define KMS_ENCLAVE_DISPATCH_H

#include "kms/errors.h"
#include "kms/proto/enclave/v1/boundary.pb.h"

typedef kms_err_t (*kms_handler)(const Request *req, Response *resp);

kms_err_t kms_dispatch(const Request *req, Response *resp);

/* Handlers, one per operation (handlers_*.c). */
kms_err_t kms_handle_get_identity(const Request *req, Response *resp);
kms_err_t kms_handle_generate_domain_key(const Request *req, Response *resp);
kms_err_t kms_handle_load_domain_key(const Request *req, Response *resp);
kms_err_t kms_handle_create_key(const Request *req, Response *resp);
kms_err_t kms_handle_rotate_key(const Request *req, Response *resp);
kms_err_t kms_handle_describe_key(const Request *req, Response *resp);
kms_err_t kms_handle_set_key_state(const Request *req, Response *resp);
kms_err_t kms_handle_get_public_key(const Request *req, Response *resp);
kms_err_t kms_handle_encrypt(const Request *req, Response *resp);
kms_err_t kms_handle_decrypt(const Request *req, Response *resp);
kms_err_t kms_handle_sign(const Request *req, Response *resp);
kms_err_t kms_handle_verify(const Request *req, Response *resp);
kms_err_t kms_handle_generate_mac(const Request *req, Response *resp);
kms_err_t kms_handle_verify_mac(const Request *req, Response *resp);
kms_err_t kms_handle_asymmetric_decrypt(const Request *req, Response *resp);
kms_err_t kms_handle_derive_shared_secret(const Request *req, Response *resp);
kms_err_t kms_handle_generate_random(const Request *req, Response *resp);
kms_err_t kms_handle_install_quote(const Request *req, Response *resp);
kms_err_t kms_handle_get_evidence(const Request *req, Response *resp);
kms_err_t kms_handle_init(const Request *req, Response *resp);
kms_err_t kms_handle_add_principal(const Request *req, Response *resp);
kms_err_t kms_handle_list_principals(const Request *req, Response *resp);
kms_err_t kms_handle_recover(const Request *req, Response *resp);
kms_err_t kms_handle_list_keys(const Request *req, Response *resp);
kms_err_t kms_handle_grant_key(const Request *req, Response *resp);
kms_err_t kms_handle_validator_sign(const Request *req, Response *resp);
kms_err_t kms_handle_validator_state(const Request *req, Response *resp);
kms_err_t kms_handle_validator_state_import(const Request *req, Response *resp);
kms_err_t kms_handle_import_validator(const Request *req, Response *resp);
kms_err_t kms_handle_schedule_key_deletion(const Request *req, Response *resp);
kms_err_t kms_handle_cancel_key_deletion(const Request *req, Response *resp);
kms_err_t kms_handle_destroy_key(const Request *req, Response *resp);
kms_err_t kms_handle_update_key(const Request *req, Response *resp);
kms_err_t kms_handle_rotate_if_due(const Request *req, Response *resp);
kms_err_t kms_handle_create_alias(const Request *req, Response *resp);
kms_err_t kms_handle_update_alias(const Request *req, Response *resp);
kms_err_t kms_handle_delete_alias(const Request *req, Response *resp);
kms_err_t kms_handle_list_aliases(const Request *req, Response *resp);
kms_err_t kms_handle_generate_data_key(const Request *req, Response *resp);
kms_err_t kms_handle_generate_data_key_pair(const Request *req, Response *resp);
kms_err_t kms_handle_re_encrypt(const Request *req, Response *resp);
kms_err_t kms_handle_batch(const Request *req, Response *resp);
kms_err_t kms_handle_get_parameters_for_import(const Request *req, Response *resp);
kms_err_t kms_handle_import_key_material(const Request *req, Response *resp);
kms_err_t kms_handle_put_key_policy(const Request *req, Response *resp);
kms_err_t kms_handle_create_grant(const Request *req, Response *resp);
kms_err_t kms_handle_list_grants(const Request *req, Response *resp);
kms_err_t kms_handle_revoke_grant(const Request *req, Response *resp);
kms_err_t kms_handle_prepare_key_import(const Request *req, Response *resp);
kms_err_t kms_handle_export_key(const Request *req, Response *resp);
kms_err_t kms_handle_import_transferred_key(const Request *req, Response *resp);

/* Authorize the current caller for req's operation, dispatch it, and append its audit record
 * (a failed append turns a success into KMS_ERR_AUDIT_UNAVAILABLE). ecall.c, session.c. */
kms_err_t kms_process(const Request *req, Response *resp);
/* The operation's name (the oneof field name), for audit records. */
const char *kms_op_name(pb_size_t tag);

#endif /* KMS_ENCLAVE_DISPATCH_H */
