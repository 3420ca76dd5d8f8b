/* dispatch.c - the table from Request oneof tag to handler. */
#include <stddef.h>

#include "audit.h"
#include "authz.h"
#include "policy.h"
#include "dispatch.h"

static const struct {
    pb_size_t tag;
    kms_handler handler;
    const char *name;
} k_routes[] = {
    {Request_get_identity_tag, kms_handle_get_identity, "get_identity"},
    {Request_generate_domain_key_tag, kms_handle_generate_domain_key, "generate_domain_key"},
    {Request_load_domain_key_tag, kms_handle_load_domain_key, "load_domain_key"},
    {Request_create_key_tag, kms_handle_create_key, "create_key"},
    {Request_rotate_key_tag, kms_handle_rotate_key, "rotate_key"},
    {Request_describe_key_tag, kms_handle_describe_key, "describe_key"},
    {Request_set_key_state_tag, kms_handle_set_key_state, "set_key_state"},
    {Request_get_public_key_tag, kms_handle_get_public_key, "get_public_key"},
    {Request_encrypt_tag, kms_handle_encrypt, "encrypt"},
    {Request_decrypt_tag, kms_handle_decrypt, "decrypt"},
    {Request_sign_tag, kms_handle_sign, "sign"},
    {Request_verify_tag, kms_handle_verify, "verify"},
    {Request_generate_mac_tag, kms_handle_generate_mac, "generate_mac"},
    {Request_verify_mac_tag, kms_handle_verify_mac, "verify_mac"},
    {Request_asymmetric_decrypt_tag, kms_handle_asymmetric_decrypt, "asymmetric_decrypt"},
    {Request_derive_shared_secret_tag, kms_handle_derive_shared_secret, "derive_shared_secret"},
    {Request_generate_random_tag, kms_handle_generate_random, "generate_random"},
    {Request_install_quote_tag, kms_handle_install_quote, "install_quote"},
    {Request_get_evidence_tag, kms_handle_get_evidence, "get_evidence"},
    {Request_init_tag, kms_handle_init, "init"},
    {Request_add_principal_tag, kms_handle_add_principal, "add_principal"},
    {Request_list_principals_tag, kms_handle_list_principals, "list_principals"},
    {Request_recover_tag, kms_handle_recover, "recover"},
    {Request_list_keys_tag, kms_handle_list_keys, "list_keys"},
    {Request_grant_key_tag, kms_handle_grant_key, "grant_key"},
    {Request_validator_sign_tag, kms_handle_validator_sign, "validator_sign"},
    {Request_validator_state_tag, kms_handle_validator_state, "validator_state"},
    {Request_validator_state_import_tag, kms_handle_validator_state_import, "validator_state_import"},
    {Request_import_validator_tag, kms_handle_import_validator, "import_validator"},
    {Request_schedule_key_deletion_tag, kms_handle_schedule_key_deletion, "schedule_key_deletion"},
    {Request_cancel_key_deletion_tag, kms_handle_cancel_key_deletion, "cancel_key_deletion"},
    {Request_destroy_key_tag, kms_handle_destroy_key, "destroy_key"},
    {Request_update_key_tag, kms_handle_update_key, "update_key"},
    {Request_rotate_if_due_tag, kms_handle_rotate_if_due, "rotate_if_due"},
    {Request_create_alias_tag, kms_handle_create_alias, "create_alias"},
    {Request_update_alias_tag, kms_handle_update_alias, "update_alias"},
    {Request_delete_alias_tag, kms_handle_delete_alias, "delete_alias"},
    {Request_list_aliases_tag, kms_handle_list_aliases, "list_aliases"},
    {Request_generate_data_key_tag, kms_handle_generate_data_key, "generate_data_key"},
    {Request_generate_data_key_pair_tag, kms_handle_generate_data_key_pair, "generate_data_key_pair"},
    {Request_re_encrypt_tag, kms_handle_re_encrypt, "re_encrypt"},
    {Request_batch_tag, kms_handle_batch, "batch"},
    {Request_get_parameters_for_import_tag, kms_handle_get_parameters_for_import, "get_parameters_for_import"},
    {Request_import_key_material_tag, kms_handle_import_key_material, "import_key_material"},
    {Request_put_key_policy_tag, kms_handle_put_key_policy, "put_key_policy"},
    {Request_create_grant_tag, kms_handle_create_grant, "create_grant"},
    {Request_list_grants_tag, kms_handle_list_grants, "list_grants"},
    {Request_revoke_grant_tag, kms_handle_revoke_grant, "revoke_grant"},
    {Request_prepare_key_import_tag, kms_handle_prepare_key_import, "prepare_key_import"},
    {Request_export_key_tag, kms_handle_export_key, "export_key"},
    {Request_import_transferred_key_tag, kms_handle_import_transferred_key, "import_transferred_key"},
};

kms_err_t kms_dispatch(const Request *req, Response *resp)
{
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0]; i++)
        if (k_routes[i].tag == req->which_op) return k_routes[i].handler(req, resp);
    return KMS_ERR_UNKNOWN_OPERATION;
}

const char *kms_op_name(pb_size_t tag)
{
    for (size_t i = 0; i < sizeof k_routes / sizeof k_routes[0]; i++)
        if (k_routes[i].tag == tag) return k_routes[i].name;
    return "unknown";
}

/* Host plumbing is not audited; every operation on keys, principals or the domain is. */
static int audited(pb_size_t op)
{
    return op != Request_get_identity_tag && op != Request_get_evidence_tag && op != Request_install_quote_tag &&
           op != Request_generate_domain_key_tag && op != Request_load_domain_key_tag;
}

kms_err_t kms_process(const Request *req, Response *resp)
{
    kms_policy_begin(req);
    kms_err_t err = kms_authz_op(req->which_op);
    if (err == KMS_OK) err = kms_dispatch(req, resp);
    if (!audited(req->which_op)) return err;
    /* The host's housekeeping proposes destroy/rotate for every key on a timer; a refused proposal
     * changed nothing, so it is not worth an audit record (and an fsync) per key per round. */
    if (err != KMS_OK && kms_caller_get()->host &&
        (req->which_op == Request_destroy_key_tag || req->which_op == Request_rotate_if_due_tag))
        return err;
    kms_err_t audit = kms_audit_record(req, resp, err);
    return err != KMS_OK ? err : audit; /* an unaudited success is a failure */
}
