/*
 * test_authz.c - who may do what (enclave/src/authz.c), as unit tests under ASan/UBSan:
 *  - kms_authz_decide over every operation of the table, every caller kind, role and domain
 *    phase, against the rules as they were written before the operation table existed (the
 *    lists below), so the table cannot widen anyone's rights unnoticed;
 *  - nobody (KMS_CALLER_NONE) is refused everything, through the whole request path;
 *  - kms_authz_key: host-owned keys, admins, policy statements, grants;
 *  - kms_authz_hide_absence: only the host and admins learn that a key does not exist.
 */
#include <string.h>

#include "authz.h"
#include "principals.h"
#include "test_util.h"
#include "unit_host.h"

static int in(pb_size_t tag, const pb_size_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == tag) return 1;
    return 0;
}

static const pb_size_t k_host_only[] = {Request_generate_domain_key_tag, Request_load_domain_key_tag,
                                        Request_install_quote_tag, Request_get_evidence_tag,
                                        Request_replica_join_tag, Request_replica_admit_tag,
                                        Request_replica_join_complete_tag};
static const pb_size_t k_session_only[] = {Request_init_tag, Request_add_principal_tag, Request_list_principals_tag,
                                           Request_import_validator_tag, Request_recover_tag,
                                           Request_validator_state_import_tag, Request_remove_principal_tag,
                                           Request_set_auditors_tag, Request_list_replicas_tag,
                                           Request_approve_replica_tag, Request_remove_replica_tag,
                                           Request_set_replica_policy_tag, Request_eth_import_keystore_tag,
                                           Request_eth_slashing_export_tag, Request_eth_slashing_import_tag,
                                           Request_eth_slashing_check_tag};
static const pb_size_t k_user[] = {
    Request_get_identity_tag, Request_describe_key_tag, Request_get_public_key_tag, Request_list_keys_tag,
    Request_encrypt_tag, Request_decrypt_tag, Request_sign_tag, Request_verify_tag, Request_generate_mac_tag,
    Request_verify_mac_tag, Request_asymmetric_decrypt_tag, Request_derive_shared_secret_tag,
    Request_generate_random_tag, Request_validator_sign_tag, Request_validator_state_tag,
    Request_generate_data_key_tag, Request_generate_data_key_pair_tag, Request_re_encrypt_tag, Request_batch_tag,
    Request_eth_sign_tag};
#define N(a) (sizeof a / sizeof a[0])

/* The rules as authz.c spelled them out before the table. */
static kms_err_t expected(pb_size_t op, kms_caller_kind kind, int domain, Role role)
{
    if (kind == KMS_CALLER_HOST) return in(op, k_session_only, N(k_session_only)) ? KMS_ERR_PERMISSION_DENIED : KMS_OK;
    if (kind != KMS_CALLER_PRINCIPAL || in(op, k_host_only, N(k_host_only))) return KMS_ERR_PERMISSION_DENIED;
    int first = op == Request_init_tag || op == Request_recover_tag;
    if (!domain) return first || op == Request_get_identity_tag ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
    if (first) return KMS_ERR_DOMAIN_ALREADY_LOADED;
    if (op == Request_get_identity_tag || role == Role_ADMIN) return KMS_OK;
    return role == Role_USER && in(op, k_user, N(k_user)) ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
}

static void test_decide_matrix(void)
{
    size_t n = 0;
    const kms_op *ops = kms_op_table(&n);
    const kms_caller_kind kinds[] = {KMS_CALLER_NONE, KMS_CALLER_HOST, KMS_CALLER_PRINCIPAL};
    const Role roles[] = {Role_ROLE_UNSPECIFIED, Role_ADMIN, Role_USER};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < N(kinds); k++)
            for (int domain = 0; domain <= 1; domain++)
                for (size_t r = 0; r < N(roles); r++) {
                    kms_err_t got = kms_authz_decide(ops[i].allow, kinds[k], domain, roles[r]);
                    kms_err_t want = expected(ops[i].tag, kinds[k], domain, roles[r]);
                    if (got != want)
                        fprintf(stderr, "%s kind %d domain %d role %d: %d, want %d\n", ops[i].name, kinds[k], domain,
                                roles[r], got, want);
                    CHECK_EQ(got, want);
                }
}

/* Through the whole request path, a request with no caller is refused, whatever it asks. */
static void test_nobody(void)
{
    uh_enclave_with_domain();
    size_t n = 0;
    const kms_op *ops = kms_op_table(&n);
    kms_caller nobody = {.kind = KMS_CALLER_NONE};
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(resp != NULL);
    unsigned long puts = uh_puts;
    for (size_t i = 0; i < n; i++) {
        Request *req = uh_request(ops[i].tag);
        CHECK_EQ(uh_run(&nobody, 2000, req, resp), KMS_ERR_PERMISSION_DENIED);
        CHECK_EQ(resp->error, KMS_ERR_PERMISSION_DENIED);
        CHECK_EQ(resp->which_result, 0);
        free(req);
    }
    CHECK_EQ(uh_puts, puts); /* nothing was written */
    free(resp);
}

static KeyRecord *record(int host_owned)
{
    KeyRecord *rec = calloc(1, sizeof *rec);
    REQUIRE(rec != NULL);
    rec->host_owned = host_owned;
    return rec;
}

static kms_ctx ctx_for(kms_caller_kind kind, uint8_t who, Role role, uint32_t op_class)
{
    kms_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.caller.kind = kind;
    memset(ctx.caller.principal, who, 32);
    ctx.role = role;
    ctx.op_class = op_class;
    ctx.now = 5000;
    return ctx;
}

static void test_key_rules(void)
{
    KeyRecord *mine = record(1), *theirs = record(0);
    kms_ctx host = ctx_for(KMS_CALLER_HOST, 0, Role_ROLE_UNSPECIFIED, OperationClass_OP_ENCRYPT);
    CHECK_EQ(kms_authz_key(&host, mine), KMS_OK);
    CHECK_EQ(kms_authz_key(&host, theirs), KMS_ERR_PERMISSION_DENIED); /* the host never uses a principal's key */
    CHECK(host.has_policy_hash);                                         /* noted for the audit record */
    kms_ctx admin = ctx_for(KMS_CALLER_PRINCIPAL, 1, Role_ADMIN, OperationClass_OP_ENCRYPT);
    CHECK_EQ(kms_authz_key(&admin, theirs), KMS_OK);
    CHECK_EQ(kms_authz_key(&admin, mine), KMS_ERR_PERMISSION_DENIED); /* nor a session the host's */
    kms_ctx user = ctx_for(KMS_CALLER_PRINCIPAL, 2, Role_USER, OperationClass_OP_ENCRYPT);
    CHECK_EQ(kms_authz_key(&user, theirs), KMS_ERR_PERMISSION_DENIED);
    Grant *g = &theirs->grants[0]; /* a grant of every operation: what full use is */
    memset(g->grantee.bytes, 2, 32), g->grantee.size = 32, g->operations = 0x7f, theirs->grants_count = 1;
    CHECK_EQ(kms_authz_key(&user, theirs), KMS_OK);
    kms_ctx norole = ctx_for(KMS_CALLER_PRINCIPAL, 2, Role_ROLE_UNSPECIFIED, OperationClass_OP_ENCRYPT);
    CHECK_EQ(kms_authz_key(&norole, theirs), KMS_ERR_PERMISSION_DENIED); /* a removed principal: nothing */
    kms_ctx nobody = ctx_for(KMS_CALLER_NONE, 2, Role_USER, OperationClass_OP_ENCRYPT);
    CHECK_EQ(kms_authz_key(&nobody, theirs), KMS_ERR_PERMISSION_DENIED);
    theirs->grants_count = 0;
    theirs->policy_count = 1; /* any principal may encrypt */
    theirs->policy[0].operations = OperationClass_OP_ENCRYPT;
    CHECK_EQ(kms_authz_key(&user, theirs), KMS_OK);
    user.op_class = OperationClass_OP_DECRYPT;
    CHECK_EQ(kms_authz_key(&user, theirs), KMS_ERR_PERMISSION_DENIED);
    free(mine);
    free(theirs);
}

static void test_hide_absence(void)
{
    kms_ctx host = ctx_for(KMS_CALLER_HOST, 0, Role_ROLE_UNSPECIFIED, 0);
    kms_ctx admin = ctx_for(KMS_CALLER_PRINCIPAL, 1, Role_ADMIN, 0);
    kms_ctx user = ctx_for(KMS_CALLER_PRINCIPAL, 2, Role_USER, 0);
    CHECK_EQ(kms_authz_hide_absence(&host, KMS_ERR_KEY_NOT_FOUND), KMS_ERR_KEY_NOT_FOUND);
    CHECK_EQ(kms_authz_hide_absence(&admin, KMS_ERR_ALIAS_NOT_FOUND), KMS_ERR_ALIAS_NOT_FOUND);
    CHECK_EQ(kms_authz_hide_absence(&user, KMS_ERR_KEY_NOT_FOUND), KMS_ERR_PERMISSION_DENIED);
    CHECK_EQ(kms_authz_hide_absence(&user, KMS_ERR_ALIAS_NOT_FOUND), KMS_ERR_PERMISSION_DENIED);
    CHECK_EQ(kms_authz_hide_absence(&user, KMS_ERR_STORE_UNAVAILABLE), KMS_ERR_STORE_UNAVAILABLE);
    CHECK_EQ(kms_authz_hide_absence(&user, KMS_OK), KMS_OK);
}

/* Removal: a tombstone refuses the principal everything, for good; the last admin stays. */
static void test_removal(void)
{
    uh_enclave_with_domain();
    kms_caller admin = uh_principal(0xa0), bob = uh_principal(0xb0);
    kms_auditors auditors = {.clear_bodies = 1};
    REQUIRE(kms_principals_create(admin.principal, "admin", 1, 1, &auditors) == KMS_OK);
    REQUIRE(kms_principals_put(bob.principal, "bob", Role_USER) == KMS_OK);
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(resp != NULL);
    Request *ident = uh_request(Request_get_identity_tag), *rnd = uh_request(Request_generate_random_tag);
    rnd->op.generate_random.length = 8;
    CHECK_EQ(uh_run(&bob, 2000, rnd, resp), KMS_OK);
    Request *rm = uh_request(Request_remove_principal_tag);
    rm->op.remove_principal.principal_id.size = 32;
    memcpy(rm->op.remove_principal.principal_id.bytes, bob.principal, 32);
    CHECK_EQ(uh_run(&bob, 2000, rm, resp), KMS_ERR_PERMISSION_DENIED); /* users cannot */
    CHECK_EQ(uh_run(&admin, 2000, rm, resp), KMS_OK);
    CHECK_EQ(resp->result.principals.principals_count, 1);
    CHECK_EQ(uh_run(&bob, 2000, rnd, resp), KMS_ERR_PERMISSION_DENIED);
    CHECK_EQ(uh_run(&bob, 2000, ident, resp), KMS_ERR_PERMISSION_DENIED); /* not even its identity */
    CHECK_EQ(kms_principals_put(bob.principal, "bob again", Role_ADMIN), KMS_ERR_PERMISSION_DENIED);
    CHECK_EQ(uh_run(&admin, 2000, rm, resp), KMS_ERR_INVALID_ARGUMENT); /* already gone */
    memcpy(rm->op.remove_principal.principal_id.bytes, admin.principal, 32);
    CHECK_EQ(uh_run(&admin, 2000, rm, resp), KMS_ERR_INVALID_ARGUMENT); /* the last admin */
    CHECK_EQ(uh_run(&admin, 2000, ident, resp), KMS_OK);
    free(ident), free(rnd), free(rm), free(resp);
}

int main(void)
{
    test_decide_matrix();
    test_nobody();
    test_key_rules();
    test_hide_absence();
    test_removal();
    return test_summary();
}
