/*
 * test_audit.c - the audit chain (enclave/src/audit.c) and what its records say:
 *  - no audit key: nothing is appended; with one: gap-free sequence numbers, each record
 *    chained to the SHA-256 of the previous one and signed with the domain's audit key;
 *  - a failed append fails the request (KMS_ERR_AUDIT_UNAVAILABLE) and the next record
 *    re-reads the host's head; a head that does not verify is KMS_ERR_AUDIT_CORRUPT and
 *    nothing is appended after it;
 *  - key ids come from the operation table: the import operations (whose records once read
 *    another message's field), a failed decrypt (the id its ciphertext claims), re_encrypt
 *    (both keys), and the caller, outcome, version and policy hash.
 */
#include <string.h>

#include <openssl/evp.h>
#include <pb_decode.h>

#include "audit.h"
#include "request.h"
#include "crypto.h"
#include "test_util.h"
#include "unit_host.h"

static EVP_PKEY *g_pub;

static void use_new_audit_key(void)
{
    EVP_PKEY *k = NULL;
    uint8_t der[128];
    size_t len = 0;
    REQUIRE(kms_pkey_generate(KMS_PKEY_ED25519, &k) == KMS_OK);
    REQUIRE(kms_pkey_private_der(k, der, sizeof der, &len) == KMS_OK);
    REQUIRE(kms_audit_set_key(der, len) == KMS_OK);
    EVP_PKEY_free(g_pub);
    g_pub = k;
}

/* Decode entry i, check its signature; the record's bytes go to raw (for chaining). */
static int entry_at(size_t i, AuditRecord *rec, uint8_t hash[32])
{
    size_t len = 0;
    const uint8_t *buf = uh_audit_entry(i, &len);
    AuditEntry e = AuditEntry_init_zero;
    if (buf == NULL) return 0;
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, AuditEntry_fields, &e)) return 0;
    if (kms_verify(g_pub, KMS_SIG_ED25519, 0, e.record.bytes, e.record.size, KMS_SIGFMT_DER, e.signature.bytes,
                   e.signature.size) != KMS_OK)
        return 0;
    memset(rec, 0, sizeof *rec);
    pb_istream_t rs = pb_istream_from_buffer(e.record.bytes, e.record.size);
    return pb_decode(&rs, AuditRecord_fields, rec) && kms_sha256(e.record.bytes, e.record.size, hash) == KMS_OK;
}

/* Audit the outcome of req in ctx as request.c does. */
static kms_err_t record(const kms_ctx *ctx, const Request *req, const Response *resp, kms_err_t outcome)
{
    AuditRecord rec;
    memset(&rec, 0, sizeof rec);
    kms_request_audit_body(ctx, req, resp, outcome, &rec);
    return kms_audit_record(&rec);
}

static kms_ctx ctx_for(pb_size_t tag, kms_caller caller)
{
    kms_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.caller = caller;
    ctx.op = kms_op_find(tag);
    ctx.now = 1234;
    return ctx;
}

static void test_chain(Request *req, Response *resp)
{
    uh_enclave_with_domain();
    kms_ctx ctx = ctx_for(Request_generate_random_tag, uh_principal(3));
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK);
    CHECK_EQ(uh_audit_count(), 0); /* no audit key: nothing to chain */
    use_new_audit_key();
    for (int i = 0; i < 3; i++) CHECK_EQ(record(&ctx, req, resp, i == 1 ? KMS_ERR_INVALID_ARGUMENT : KMS_OK), KMS_OK);
    uh_fail_append = KMS_ERR_AUDIT_UNAVAILABLE;
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_ERR_AUDIT_UNAVAILABLE);
    uh_fail_append = KMS_OK;
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK); /* re-reads the head: no gap */
    CHECK_EQ(uh_audit_count(), 4);
    uint8_t prev[32] = {0}, hash[32];
    for (size_t i = 0; i < uh_audit_count(); i++) {
        AuditRecord rec;
        REQUIRE(entry_at(i, &rec, hash));
        CHECK_EQ(rec.seq, i + 1);
        CHECK(rec.prev_hash.size == 32 && memcmp(rec.prev_hash.bytes, prev, 32) == 0);
        CHECK_EQ(rec.outcome, i == 1 ? KMS_ERR_INVALID_ARGUMENT : KMS_OK);
        CHECK(strcmp(rec.operation, "generate_random") == 0);
        CHECK(rec.principal.size == 32 && rec.principal.bytes[0] == 3);
        CHECK_EQ(rec.time, 1234);
        CHECK_EQ(rec.domain_id.size, 16);
        memcpy(prev, hash, 32);
    }
}

static void test_forged_head(Request *req, Response *resp)
{
    kms_ctx ctx = ctx_for(Request_generate_random_tag, uh_principal(3));
    /* A fresh enclave (the head is read again) and a host that altered its last entry. */
    REQUIRE(kms_audit_set_key(NULL, 0) == KMS_OK);
    uint8_t der[128];
    size_t der_len = 0, len = 0;
    REQUIRE(kms_pkey_private_der(g_pub, der, sizeof der, &der_len) == KMS_OK);
    REQUIRE(kms_audit_set_key(der, der_len) == KMS_OK);
    uint8_t *last = uh_audit_entry(uh_audit_count() - 1, &len);
    REQUIRE(last != NULL);
    last[len - 1] ^= 1; /* its signature no longer verifies */
    size_t before = uh_audit_count();
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_ERR_AUDIT_CORRUPT);
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_ERR_AUDIT_CORRUPT);
    CHECK_EQ(uh_audit_count(), before);
}

static void key_case(pb_size_t tag, Request *req, Response *resp, const char *want, const char *want_source)
{
    AuditRecord rec;
    memset(&rec, 0, sizeof rec);
    kms_ctx ctx = ctx_for(tag, uh_principal(9));
    req->which_op = tag;
    kms_request_audit_body(&ctx, req, resp, KMS_OK, &rec);
    if (strcmp(rec.key_id, want) != 0) fprintf(stderr, "%s: key id '%s', want '%s'\n", ctx.op->name, rec.key_id, want);
    CHECK(strcmp(rec.key_id, want) == 0);
    CHECK(strcmp(rec.source_key_id, want_source) == 0);
    CHECK(strcmp(rec.operation, ctx.op->name) == 0);
}

static void test_key_ids(Request *req, Response *resp)
{
    static const char id[] = "6f1c2a8e-0d3b-4c5e-9f70-1a2b3c4d5e6f", other[] = "0a0b0c0d-1111-4222-8333-444455556666";
    memset(req, 0, sizeof *req);
    memset(resp, 0, sizeof *resp);
    /* Imports name their key only in the answer: once they read another message's field. */
    memset(&req->op, 'Z', sizeof req->op); /* garbage where the old code looked */
    resp->which_result = Response_key_metadata_tag;
    memcpy(resp->result.key_metadata.key_id, id, sizeof id);
    key_case(Request_import_validator_tag, req, resp, id, "");
    key_case(Request_import_key_material_tag, req, resp, id, "");
    key_case(Request_import_transferred_key_tag, req, resp, id, "");
    resp->which_result = 0;
    key_case(Request_import_validator_tag, req, resp, "", ""); /* failed: no key */
    /* A failed decrypt names the key its ciphertext claims, if the header is well formed. */
    memset(req, 0, sizeof *req);
    uint8_t *ct = req->op.decrypt.ciphertext.bytes;
    ct[0] = 0x01, ct[1] = 36;
    memcpy(ct + 2, id, 36);
    ct[41] = 1;
    req->op.decrypt.ciphertext.size = 100;
    key_case(Request_decrypt_tag, req, resp, id, "");
    ct[1] = 35;
    key_case(Request_decrypt_tag, req, resp, "", "");
    /* ReEncrypt: the destination, and the source its ciphertext was under. */
    memset(req, 0, sizeof *req);
    memcpy(req->op.re_encrypt.destination_key_id, "alias/dest", 11);
    key_case(Request_re_encrypt_tag, req, resp, "alias/dest", "");
    resp->which_result = Response_re_encrypt_tag;
    memcpy(resp->result.re_encrypt.key_id, id, sizeof id);
    memcpy(resp->result.re_encrypt.source_key_id, other, sizeof other);
    key_case(Request_re_encrypt_tag, req, resp, id, other); /* the resolved ids win over the alias */
    /* An alias the caller named stays what the record says when nothing resolved it. */
    memset(resp, 0, sizeof *resp);
    memset(req, 0, sizeof *req);
    memcpy(req->op.encrypt.key_id, "alias/a", 8);
    key_case(Request_encrypt_tag, req, resp, "alias/a", "");
    key_case(Request_generate_random_tag, req, resp, "", "");
}

int main(void)
{
    Request *req = calloc(1, sizeof *req);
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(req != NULL && resp != NULL);
    test_chain(req, resp);
    test_forged_head(req, resp);
    test_key_ids(req, resp);
    EVP_PKEY_free(g_pub);
    free(req);
    free(resp);
    return test_summary();
}
