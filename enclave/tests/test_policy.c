/*
 * test_policy.c - key policy statements and grants (enclave/src/policy.c) as pure functions
 * of the request context: operation classes, principal wildcards, encryption-context
 * conditions (every condition, exactly), grant expiry against the request's time, and the
 * policy hash.
 */
#include <string.h>

#include "policy.h"
#include "test_util.h"

static const uint8_t k_alice[32] = {0xa1}, k_bob[32] = {0xb0};

static void set_bytes(pb_byte_t *dst, pb_size_t *size, const char *s)
{
    *size = (pb_size_t)strlen(s);
    memcpy(dst, s, *size);
}

static ContextEntry entry(const char *k, const char *v)
{
    ContextEntry e;
    memset(&e, 0, sizeof e);
    set_bytes(e.key.bytes, &e.key.size, k);
    set_bytes(e.value.bytes, &e.value.size, v);
    return e;
}

static kms_ctx ctx_with(uint32_t op_class, const ContextEntry *c, pb_size_t n, int64_t now)
{
    kms_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.op_class = op_class;
    ctx.context = c;
    ctx.context_count = n;
    ctx.now = now;
    return ctx;
}

static void test_statements(KeyRecord *rec)
{
    memset(rec, 0, sizeof *rec);
    kms_ctx enc = ctx_with(OperationClass_OP_ENCRYPT, NULL, 0, 0);
    CHECK(!kms_policy_allows(&enc, rec, k_alice)); /* no statement, no grant: nothing */
    rec->policy_count = 1;
    rec->policy[0].operations = OperationClass_OP_ENCRYPT | OperationClass_OP_DECRYPT;
    memcpy(rec->policy[0].principal.bytes, k_alice, 32), rec->policy[0].principal.size = 32;
    CHECK(kms_policy_allows(&enc, rec, k_alice));
    CHECK(!kms_policy_allows(&enc, rec, k_bob));
    kms_ctx sign = ctx_with(OperationClass_OP_SIGN, NULL, 0, 0);
    CHECK(!kms_policy_allows(&sign, rec, k_alice));
    kms_ctx none = ctx_with(0, NULL, 0, 0); /* an operation no class allows */
    CHECK(!kms_policy_allows(&none, rec, k_alice));
    rec->policy[0].principal.size = 0; /* any principal of the domain */
    CHECK(kms_policy_allows(&enc, rec, k_bob));
    rec->policy[0].principal.size = 31; /* a malformed principal matches nobody */
    CHECK(!kms_policy_allows(&enc, rec, k_alice));
}

static void test_conditions(KeyRecord *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->policy_count = 1;
    PolicyStatement *s = &rec->policy[0];
    s->operations = OperationClass_OP_DECRYPT;
    s->conditions_count = 2;
    set_bytes(s->conditions[0].key.bytes, &s->conditions[0].key.size, "app");
    set_bytes(s->conditions[0].value.bytes, &s->conditions[0].value.size, "billing");
    set_bytes(s->conditions[1].key.bytes, &s->conditions[1].key.size, "env");
    set_bytes(s->conditions[1].value.bytes, &s->conditions[1].value.size, "prod");
    ContextEntry both[3] = {entry("env", "prod"), entry("app", "billing"), entry("extra", "x")};
    kms_ctx ok = ctx_with(OperationClass_OP_DECRYPT, both, 3, 0);
    CHECK(kms_policy_allows(&ok, rec, k_alice)); /* order and extra entries do not matter */
    kms_ctx one = ctx_with(OperationClass_OP_DECRYPT, both, 1, 0);
    CHECK(!kms_policy_allows(&one, rec, k_alice)); /* every condition must hold */
    ContextEntry prefix[2] = {entry("env", "pro"), entry("app", "billing")};
    kms_ctx p = ctx_with(OperationClass_OP_DECRYPT, prefix, 2, 0);
    CHECK(!kms_policy_allows(&p, rec, k_alice)); /* exact values: no prefix matches */
    ContextEntry longer[2] = {entry("env", "prod2"), entry("app", "billing")};
    kms_ctx l = ctx_with(OperationClass_OP_DECRYPT, longer, 2, 0);
    CHECK(!kms_policy_allows(&l, rec, k_alice));
    kms_ctx empty = ctx_with(OperationClass_OP_DECRYPT, NULL, 0, 0);
    CHECK(!kms_policy_allows(&empty, rec, k_alice));
}

static void test_grants(KeyRecord *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->grants_count = 1;
    Grant *g = &rec->grants[0];
    memcpy(g->grantee.bytes, k_bob, 32), g->grantee.size = 32;
    g->operations = OperationClass_OP_SIGN;
    g->expires_at = 1000;
    kms_ctx before = ctx_with(OperationClass_OP_SIGN, NULL, 0, 999);
    kms_ctx at = ctx_with(OperationClass_OP_SIGN, NULL, 0, 1000);
    kms_ctx after = ctx_with(OperationClass_OP_SIGN, NULL, 0, 4000);
    CHECK(kms_policy_allows(&before, rec, k_bob));
    CHECK(!kms_policy_allows(&at, rec, k_bob)); /* live strictly before expires_at */
    CHECK(!kms_policy_allows(&after, rec, k_bob));
    CHECK(!kms_policy_allows(&before, rec, k_alice)); /* someone else's grant */
    g->expires_at = 0; /* never expires */
    CHECK(kms_policy_allows(&after, rec, k_bob));
    kms_ctx verify = ctx_with(OperationClass_OP_VERIFY, NULL, 0, 0);
    CHECK(!kms_policy_allows(&verify, rec, k_bob));
    g->conditions_count = 1;
    set_bytes(g->conditions[0].key.bytes, &g->conditions[0].key.size, "tenant");
    set_bytes(g->conditions[0].value.bytes, &g->conditions[0].value.size, "7");
    CHECK(!kms_policy_allows(&after, rec, k_bob));
    ContextEntry t = entry("tenant", "7");
    kms_ctx with = ctx_with(OperationClass_OP_SIGN, &t, 1, 4000);
    CHECK(kms_policy_allows(&with, rec, k_bob));
}

static void test_hash(KeyRecord *rec)
{
    uint8_t a[32], b[32], c[32], zero[32] = {0};
    memset(rec, 0, sizeof *rec);
    kms_policy_hash(rec, a);
    CHECK(memcmp(a, zero, 32) != 0);
    rec->policy_count = 1;
    rec->policy[0].operations = OperationClass_OP_ENCRYPT;
    kms_policy_hash(rec, b);
    CHECK(memcmp(a, b, 32) != 0);
    rec->export_policy = ExportPolicy_EXPORT_TO_ATTESTED_ENCLAVE;
    kms_policy_hash(rec, c);
    CHECK(memcmp(b, c, 32) != 0);
    rec->grants_count = 1; /* grants are not part of the policy hash */
    kms_policy_hash(rec, a);
    CHECK(memcmp(a, c, 32) == 0);
}

int main(void)
{
    KeyRecord *rec = calloc(1, sizeof *rec);
    REQUIRE(rec != NULL);
    test_statements(rec);
    test_conditions(rec);
    test_grants(rec);
    test_hash(rec);
    free(rec);
    return test_summary();
}
