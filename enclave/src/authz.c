/* authz.c - the caller of the running request, and the rules of who may do what. */
#include <string.h>

#include <openssl/crypto.h>

#include "authz.h"
#include "domain.h"
#include "policy.h"
#include "principals.h"

static __thread const kms_caller *t_caller;
static const kms_caller k_host = {.host = 1};

void kms_caller_set(const kms_caller *caller) { t_caller = caller; }

const kms_caller *kms_caller_get(void) { return t_caller != NULL ? t_caller : &k_host; }

/* Operations only the host may run (the platform's business, not a client's). */
static int host_only(pb_size_t op)
{
    return op == Request_generate_domain_key_tag || op == Request_load_domain_key_tag ||
           op == Request_install_quote_tag || op == Request_get_evidence_tag;
}

/* Operations only an authenticated session may run. */
static int session_only(pb_size_t op)
{
    return op == Request_init_tag || op == Request_add_principal_tag || op == Request_list_principals_tag ||
           op == Request_grant_key_tag || op == Request_import_validator_tag || op == Request_recover_tag ||
           op == Request_validator_state_import_tag;
}

/* What a USER may do: use keys granted to it, and harmless reads. */
static int user_allowed(pb_size_t op)
{
    switch (op) {
    case Request_get_identity_tag: case Request_describe_key_tag: case Request_get_public_key_tag:
    case Request_list_keys_tag: case Request_encrypt_tag: case Request_decrypt_tag: case Request_sign_tag:
    case Request_verify_tag: case Request_generate_mac_tag: case Request_verify_mac_tag:
    case Request_asymmetric_decrypt_tag: case Request_derive_shared_secret_tag: case Request_generate_random_tag:
    case Request_validator_sign_tag: case Request_validator_state_tag: case Request_generate_data_key_tag:
    case Request_generate_data_key_pair_tag: case Request_re_encrypt_tag: case Request_batch_tag:
        return 1;
    default:
        return 0;
    }
}

static kms_err_t session_role(Role *role)
{
    return kms_principal_role(kms_caller_get()->principal, role);
}

kms_err_t kms_authz_op(pb_size_t op)
{
    const kms_caller *c = kms_caller_get();
    if (c->host) return session_only(op) ? KMS_ERR_PERMISSION_DENIED : KMS_OK;
    if (host_only(op)) return KMS_ERR_PERMISSION_DENIED;
    uint8_t id[KMS_DOMAIN_ID_LEN];
    if (!kms_domain_id(id))
        return op == Request_init_tag || op == Request_recover_tag || op == Request_get_identity_tag
                   ? KMS_OK
                   : KMS_ERR_NOT_INITIALIZED_DOMAIN;
    if (op == Request_init_tag || op == Request_recover_tag) return KMS_ERR_DOMAIN_ALREADY_LOADED;
    if (op == Request_get_identity_tag) return KMS_OK;
    Role role = Role_ROLE_UNSPECIFIED;
    KMS_RETURN_IF_ERR(session_role(&role));
    if (role == Role_ADMIN) return KMS_OK;
    if (role == Role_USER && user_allowed(op)) return KMS_OK;
    return KMS_ERR_PERMISSION_DENIED;
}

int kms_caller_is_admin(void)
{
    Role role = Role_ROLE_UNSPECIFIED;
    return !kms_caller_get()->host && session_role(&role) == KMS_OK && role == Role_ADMIN;
}

kms_err_t kms_authz_key(const KeyRecord *rec)
{
    const kms_caller *c = kms_caller_get();
    kms_policy_note_key(rec);
    if (c->host) return rec->host_owned ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
    if (rec->host_owned) return KMS_ERR_PERMISSION_DENIED;
    if (kms_caller_is_admin()) return KMS_OK;
    for (pb_size_t i = 0; i < rec->grantees_count; i++) /* full-use grants (grant_key) */
        if (rec->grantees[i].size == 32 && CRYPTO_memcmp(rec->grantees[i].bytes, c->principal, 32) == 0)
            return KMS_OK;
    return kms_policy_allows(rec, c->principal) ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
}
