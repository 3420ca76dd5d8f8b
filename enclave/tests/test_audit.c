/*
 * test_audit.c - the audit chain (enclave/src/audit.c, audit_epoch.c) and what its records say:
 *  - no audit key: nothing is appended; with one: gap-free sequence numbers, each record
 *    chained to the SHA-256 of the previous one and signed with the domain's audit key;
 *  - bodies are sealed: the record that opens an epoch carries the epoch key sealed to every
 *    auditor (and names them), the others point at it; nothing of the body is in the entry's
 *    bytes; a new epoch opens after a re-read head, an auditor change, and every
 *    KMS_AUDIT_EPOCH_RECORDS records; a domain without auditors seals to no one; only init's
 *    insecure choice writes clear bodies; auditor sets are checked (count, duplicates, points);
 *  - a failed append fails the request (KMS_ERR_AUDIT_UNAVAILABLE) and the next record
 *    re-reads the host's head; one that lost the race to another replica follows the head and
 *    appends after it (bounded), unless the head does not show the race; a head that does not verify is KMS_ERR_AUDIT_CORRUPT and
 *    nothing is appended after it;
 *  - key ids come from the operation table: the import operations (whose records once read
 *    another message's field), a failed decrypt (the id its ciphertext claims), re_encrypt
 *    (both keys), and the caller, outcome, version, policy hash and context hash.
 * (That auditors open the bodies with pyca's HPKE: tests/integration/test_audit_chain.py.)
 */
#include <string.h>

#include <openssl/evp.h>
#include <pb_decode.h>

#include "audit.h"
#include "audit_epoch.h"
#include "request.h"
#include "crypto.h"
#include "ocalls.h"
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

/* An auditor set of n fresh X25519 public keys (the private halves are not needed here). */
static kms_auditors new_auditors(size_t n)
{
    kms_auditors a;
    memset(&a, 0, sizeof a);
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY *k = NULL;
        REQUIRE(kms_pkey_generate(KMS_PKEY_X25519, &k) == KMS_OK && kms_x25519_raw_public(k, a.keys[i]) == KMS_OK);
        EVP_PKEY_free(k);
    }
    a.count = n;
    return a;
}

/* Decode entry i (heap record: the caller frees), check its signature and hash its record bytes. */
static AuditRecord *entry_at(size_t i, uint8_t hash[32])
{
    size_t len = 0;
    const uint8_t *buf = uh_audit_entry(i, &len);
    AuditEntry *e = calloc(1, sizeof *e);
    AuditRecord *rec = calloc(1, sizeof *rec);
    REQUIRE(buf != NULL && e != NULL && rec != NULL);
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    REQUIRE(pb_decode(&is, AuditEntry_fields, e));
    REQUIRE(kms_verify(g_pub, KMS_SIG_ED25519, 0, e->record.bytes, e->record.size, KMS_SIGFMT_DER, e->signature.bytes,
                       e->signature.size) == KMS_OK);
    pb_istream_t rs = pb_istream_from_buffer(e->record.bytes, e->record.size);
    REQUIRE(pb_decode(&rs, AuditRecord_fields, rec) && kms_sha256(e->record.bytes, e->record.size, hash) == KMS_OK);
    free(e);
    return rec;
}

/* Audit the outcome of req in ctx as request.c does. */
static kms_err_t record(const kms_ctx *ctx, const Request *req, const Response *resp, kms_err_t outcome)
{
    AuditBody body;
    memset(&body, 0, sizeof body);
    kms_request_audit_body(ctx, req, resp, outcome, &body);
    return kms_audit_record(&body, ctx->now);
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

/* 1 when needle occurs in entry i's bytes. */
static int entry_contains(size_t i, const void *needle, size_t n)
{
    size_t len = 0;
    const uint8_t *buf = uh_audit_entry(i, &len);
    return buf != NULL && memmem(buf, len, needle, n) != NULL;
}

static void test_chain(Request *req, Response *resp)
{
    uh_enclave_with_domain();
    kms_ctx ctx = ctx_for(Request_generate_random_tag, uh_principal(3));
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK);
    CHECK_EQ(uh_audit_count(), 0); /* no audit key: nothing to chain */
    use_new_audit_key();
    kms_auditors auditors = new_auditors(2);
    kms_audit_set_auditors(&auditors);
    for (int i = 0; i < 3; i++) CHECK_EQ(record(&ctx, req, resp, i == 1 ? KMS_ERR_INVALID_ARGUMENT : KMS_OK), KMS_OK);
    uh_fail_append = KMS_ERR_AUDIT_UNAVAILABLE;
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_ERR_AUDIT_UNAVAILABLE);
    uh_fail_append = KMS_OK;
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK); /* re-reads the head: no gap, a new epoch */
    CHECK_EQ(uh_audit_count(), 4);
    static const uint64_t epochs[] = {1, 1, 1, 4};
    uint8_t prev[32] = {0}, hash[32], principal[32];
    memset(principal, 3, sizeof principal);
    for (size_t i = 0; i < uh_audit_count(); i++) {
        AuditRecord *rec = entry_at(i, hash);
        CHECK_EQ(rec->seq, i + 1);
        CHECK(rec->prev_hash.size == 32 && memcmp(rec->prev_hash.bytes, prev, 32) == 0);
        CHECK_EQ(rec->time, 1234);
        CHECK_EQ(rec->domain_id.size, 16);
        CHECK_EQ(rec->epoch, epochs[i]);
        CHECK(!rec->has_clear_body && rec->sealed_body.size > KMS_GCM_TAG_LEN);
        int opens = rec->epoch == rec->seq;
        CHECK_EQ(rec->epoch_keys_count, opens ? 2 : 0);
        for (pb_size_t k = 0; opens && k < 2; k++) {
            CHECK(memcmp(rec->epoch_keys[k].auditor.bytes, auditors.keys[k], 32) == 0);
            CHECK_EQ(rec->epoch_keys[k].sealed_key.size, 80);
        }
        /* The host sees neither the operation nor the caller. */
        CHECK(!entry_contains(i, "generate_random", 15) && !entry_contains(i, principal, 32));
        memcpy(prev, hash, 32);
        free(rec);
    }
}

static void test_epochs(Request *req, Response *resp)
{
    kms_ctx ctx = ctx_for(Request_generate_random_tag, uh_principal(4));
    uint8_t hash[32];
    /* An auditor change: the next record opens an epoch naming only the new auditor. */
    kms_auditors one = new_auditors(1);
    kms_audit_set_auditors(&one);
    size_t first = uh_audit_count();
    for (unsigned i = 0; i < KMS_AUDIT_EPOCH_RECORDS + 1; i++) REQUIRE(record(&ctx, req, resp, KMS_OK) == KMS_OK);
    AuditRecord *rec = entry_at(first, hash);
    CHECK(rec->epoch == rec->seq && rec->epoch_keys_count == 1 &&
          memcmp(rec->epoch_keys[0].auditor.bytes, one.keys[0], 32) == 0);
    uint64_t opened = rec->seq;
    free(rec);
    rec = entry_at(first + KMS_AUDIT_EPOCH_RECORDS - 1, hash); /* the epoch's last record */
    CHECK_EQ(rec->epoch, opened);
    free(rec);
    rec = entry_at(first + KMS_AUDIT_EPOCH_RECORDS, hash); /* after its share: a new epoch */
    CHECK(rec->epoch == rec->seq && rec->epoch_keys_count == 1);
    free(rec);
    /* A state from before auditors existed: bodies still sealed, to no one. */
    kms_auditors none = new_auditors(0);
    kms_audit_set_auditors(&none);
    REQUIRE(record(&ctx, req, resp, KMS_OK) == KMS_OK);
    rec = entry_at(uh_audit_count() - 1, hash);
    CHECK(rec->epoch == rec->seq && rec->epoch_keys_count == 0 && rec->sealed_body.size > 0 && !rec->has_clear_body);
    free(rec);
    /* Init's insecure choice: the body in clear, no epoch. */
    kms_auditors clear = {.clear_bodies = 1};
    kms_audit_set_auditors(&clear);
    REQUIRE(record(&ctx, req, resp, KMS_ERR_INVALID_ARGUMENT) == KMS_OK);
    rec = entry_at(uh_audit_count() - 1, hash);
    CHECK(rec->has_clear_body && rec->epoch == 0 && rec->sealed_body.size == 0 && rec->epoch_keys_count == 0);
    CHECK(strcmp(rec->clear_body.operation, "generate_random") == 0);
    CHECK(rec->clear_body.principal.size == 32 && rec->clear_body.principal.bytes[0] == 4);
    CHECK_EQ(rec->clear_body.outcome, KMS_ERR_INVALID_ARGUMENT);
    CHECK_EQ(rec->clear_body.context_hash.size, 0);
    free(rec);
    kms_audit_set_auditors(&one);
}

/* Replicas share the chain: an append that loses the race (the host appends that very entry first, as
 * another replica of the domain would, and answers CONFLICT) follows the head and appends after it, as
 * often as it loses, within a bound; a host that claims a race its head does not show gets no record. */
static void test_race(Request *req, Response *resp)
{
    kms_ctx ctx = ctx_for(Request_generate_random_tag, uh_principal(5));
    uint8_t prev[32], hash[32];
    size_t first = uh_audit_count();
    uh_audit_race = 5; /* more than the two tries that were once all */
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK);
    CHECK_EQ(uh_audit_race, 0);
    CHECK_EQ(uh_audit_count(), first + 6);
    free(entry_at(first - 1, prev));
    for (size_t i = first; i < uh_audit_count(); i++) { /* one chain, no gap: each after the one it lost to */
        AuditRecord *rec = entry_at(i, hash);
        CHECK(rec->seq == i + 1 && memcmp(rec->prev_hash.bytes, prev, 32) == 0);
        CHECK(rec->epoch == rec->seq); /* a re-read head opens a new epoch */
        memcpy(prev, hash, 32);
        free(rec);
    }
    uh_fail_append = KMS_ERR_CONFLICT; /* a race the head does not show */
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_ERR_AUDIT_UNAVAILABLE);
    uh_fail_append = KMS_OK;
    CHECK_EQ(uh_audit_count(), first + 6);
    uh_audit_race = 100; /* lost every time: bounded, and then unavailable */
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_ERR_AUDIT_UNAVAILABLE);
    CHECK(uh_audit_race > 0 && uh_audit_race < 100);
    uh_audit_race = 0;
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK);
}

static void test_check_auditors(void)
{
    kms_auditors a = new_auditors(2);
    CHECK_EQ(kms_audit_check_auditors(&a), KMS_OK);
    a.clear_bodies = 1; /* clear bodies and auditors: refused */
    CHECK_EQ(kms_audit_check_auditors(&a), KMS_ERR_INVALID_ARGUMENT);
    a.clear_bodies = 0;
    memcpy(a.keys[1], a.keys[0], 32); /* the same auditor twice */
    CHECK_EQ(kms_audit_check_auditors(&a), KMS_ERR_INVALID_ARGUMENT);
    memset(a.keys[1], 0, 32); /* a low-order point: an all-zero DH */
    CHECK_EQ(kms_audit_check_auditors(&a), KMS_ERR_INVALID_KEY);
    kms_auditors none = new_auditors(0); /* nobody, without the insecure choice: refused (fail closed) */
    CHECK_EQ(kms_audit_check_auditors(&none), KMS_ERR_INVALID_ARGUMENT);
    none.clear_bodies = 1;
    CHECK_EQ(kms_audit_check_auditors(&none), KMS_OK);
    kms_auditors many = new_auditors(KMS_MAX_AUDITORS_COUNT);
    CHECK_EQ(kms_audit_check_auditors(&many), KMS_OK);
    many.count++;
    CHECK_EQ(kms_audit_check_auditors(&many), KMS_ERR_INVALID_ARGUMENT);
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
    kms_auditors one = new_auditors(1);
    kms_audit_set_auditors(&one);
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
    AuditBody rec;
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

/* The context hash: SHA-256 of the canonical context, whatever order the caller sent; none: empty. */
static void test_context_hash(Request *req, Response *resp)
{
    static const uint8_t canonical[] = {2, 0, 1, 'a', 0, 1, '1', 0, 2, 'b', 'b', 0, 0};
    uint8_t want[32];
    AuditBody body;
    kms_ctx ctx = ctx_for(Request_encrypt_tag, uh_principal(9));
    REQUIRE(kms_sha256(canonical, sizeof canonical, want) == KMS_OK);
    memset(req, 0, sizeof *req);
    memset(resp, 0, sizeof *resp);
    req->which_op = Request_encrypt_tag;
    memset(&body, 0, sizeof body);
    kms_request_audit_body(&ctx, req, resp, KMS_OK, &body);
    CHECK_EQ(body.context_hash.size, 0);
    ContextEntry *c = req->op.encrypt.context;
    c[0].key.size = 2, memcpy(c[0].key.bytes, "bb", 2); /* value empty */
    c[1].key.size = 1, c[1].key.bytes[0] = 'a', c[1].value.size = 1, c[1].value.bytes[0] = '1';
    req->op.encrypt.context_count = 2;
    memset(&body, 0, sizeof body);
    kms_request_audit_body(&ctx, req, resp, KMS_OK, &body);
    CHECK(body.context_hash.size == 32 && memcmp(body.context_hash.bytes, want, 32) == 0);
}

/* Group commit: records queued back to back share one flush; when the first fails, the one queued
 * after it (chained on it) is refused too, and the next record re-reads the head: no gap, no fork. */
static void test_queued(Request *req, Response *resp)
{
    uh_enclave_with_domain();
    use_new_audit_key();
    kms_auditors auditors = new_auditors(1);
    kms_audit_set_auditors(&auditors);
    kms_ctx ctx = ctx_for(Request_generate_random_tag, uh_principal(4));
    AuditBody body;
    memset(&body, 0, sizeof body);
    kms_request_audit_body(&ctx, req, resp, KMS_OK, &body);
    kms_audit_ticket t[4];
    for (int i = 0; i < 2; i++) CHECK_EQ(kms_audit_queue(&body, ctx.now, &t[i]), KMS_OK);
    CHECK_EQ(uh_audit_count(), 0); /* queued, not durable */
    CHECK_EQ(kms_audit_wait(&t[1]), KMS_OK); /* one flush makes both durable, in order */
    CHECK_EQ(kms_audit_wait(&t[0]), KMS_OK);
    CHECK_EQ(uh_audit_count(), 2);
    for (int i = 0; i < 3; i++) CHECK_EQ(kms_audit_queue(&body, ctx.now, &t[i]), KMS_OK); /* seq 3, 4, 5 */
    uh_fail_audit_seq = 3;
    CHECK_EQ(kms_audit_wait(&t[0]), KMS_ERR_AUDIT_UNAVAILABLE);
    CHECK_EQ(kms_audit_queue(&body, ctx.now, &t[3]), KMS_OK); /* re-reads the head: seq 3 again */
    CHECK_EQ(kms_audit_wait(&t[1]), KMS_ERR_CONFLICT); /* chained on the failed one: refused */
    CHECK_EQ(kms_audit_wait(&t[2]), KMS_ERR_CONFLICT);
    CHECK_EQ(kms_audit_wait(&t[3]), KMS_OK);
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK);
    CHECK_EQ(uh_audit_count(), 4);
    /* Another writer takes seq 5 before our flush: ours (5) is refused, and so is the one after it
     * (6 would be the last + 1, but it chains on our 5, not theirs). */
    uint64_t other = 0;
    CHECK_EQ(kms_edge_audit_enqueue(5, 0, (const uint8_t *)"other", 5, &other), KMS_OK);
    for (int i = 0; i < 2; i++) CHECK_EQ(kms_audit_queue(&body, ctx.now, &t[i]), KMS_OK);
    CHECK_EQ(kms_edge_audit_wait(other), KMS_OK);
    CHECK_EQ(kms_audit_wait(&t[0]), KMS_ERR_CONFLICT);
    CHECK_EQ(kms_audit_wait(&t[1]), KMS_ERR_CONFLICT);
    CHECK_EQ(uh_audit_count(), 5);
    uh_audit_drop(1); /* (its entry is no record of ours: drop it so the head verifies) */
    CHECK_EQ(record(&ctx, req, resp, KMS_OK), KMS_OK);
    CHECK_EQ(uh_audit_count(), 5);
    uint8_t prev[32] = {0}, hash[32];
    for (size_t i = 0; i < uh_audit_count(); i++) {
        AuditRecord *rec = entry_at(i, hash);
        CHECK_EQ(rec->seq, i + 1);
        CHECK(memcmp(rec->prev_hash.bytes, prev, 32) == 0);
        memcpy(prev, hash, 32);
        free(rec);
    }
    memset(&body, 0, sizeof body);
}

int main(void)
{
    Request *req = calloc(1, sizeof *req);
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(req != NULL && resp != NULL);
    test_chain(req, resp);
    test_epochs(req, resp);
    test_race(req, resp);
    test_check_auditors();
    test_forged_head(req, resp);
    test_key_ids(req, resp);
    test_context_hash(req, resp);
    test_queued(req, resp);
    EVP_PKEY_free(g_pub);
    free(req);
    free(resp);
    return test_summary();
}
