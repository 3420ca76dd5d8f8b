/*
 * test_pbwipe.c - the request path's wipe of its zeroed slots (enclave/src/pbwipe.c, request_slot.c)
 * leaves nothing behind, as unit tests under ASan/UBSan:
 *  - randomized requests of every operation (every member of Request's oneof, its fields filled at
 *    random within their bounds), alone, merged with another (protobuf concatenation: fields decoded
 *    twice, bytes that shrink, a oneof that switches members), truncated and with flipped bytes:
 *    decoded into a slot, wiped, and the slot is all-zero;
 *  - randomized responses of every result: encoded, wiped with the walk, all-zero;
 *  - the walk alone does not see bytes beyond a bytes field's size, nor a field decoded twice that
 *    shrank: the decoder's record does (so these tests can fail);
 *  - real operations through kms_request_run, succeeding and refused: this build checks every slot
 *    all-zero after its wipe (KMS_WIPE_CHECK aborts otherwise), so a handler that wrote scratch
 *    beyond a field's size would fail here;
 *  - a request nested in another's (a slot taken while one is held) gets its own slot.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <pb_common.h>
#include <pb_encode.h>

#include "crypto.h"
#include "kms/limits.h"
#include "pbwipe.h"
#include "request.h"
#include "request_slot.h"
#include "test_util.h"
#include "unit_host.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

static void fill_msg(const pb_msgdesc_t *desc, void *msg, pb_size_t oneof_tag, int depth);

/* One element of the iterator's field at p, random within its bound. */
static void fill_item(const pb_field_iter_t *it, uint8_t *p, int depth)
{
    switch (PB_LTYPE(it->type)) {
    case PB_LTYPE_BOOL: *(bool *)p = rnd() & 1; break;
    case PB_LTYPE_BYTES: {
        pb_bytes_array_t *b = (pb_bytes_array_t *)p;
        size_t room = it->data_size - offsetof(pb_bytes_array_t, bytes);
        size_t n = rnd() % 4 == 0 ? room : rnd() % (room + 1);
        b->size = (pb_size_t)n;
        for (size_t i = 0; i < n; i++) b->bytes[i] = (uint8_t)(rnd() | 1);
        break;
    }
    case PB_LTYPE_STRING: {
        size_t n = rnd() % it->data_size; /* room for the terminator */
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)('a' + rnd() % 26);
        break;
    }
    case PB_LTYPE_SUBMESSAGE:
    case PB_LTYPE_SUBMSG_W_CB:
        if (depth < 6) fill_msg(it->submsg_desc, p, 0, depth + 1);
        break;
    default:
        for (size_t i = 0; i < it->data_size; i++) p[i] = (uint8_t)(rnd() | 1);
    }
}

/* Fill msg at random; a oneof gets member oneof_tag when it names one of its members, else a random one. */
static void fill_msg(const pb_msgdesc_t *desc, void *msg, pb_size_t oneof_tag, int depth)
{
    pb_field_iter_t it;
    if (!pb_field_iter_begin(&it, desc, msg)) return;
    do {
        switch (PB_HTYPE(it.type)) {
        case PB_HTYPE_REPEATED: {
            pb_size_t n = (pb_size_t)(rnd() % (it.array_size + 1));
            *(pb_size_t *)it.pSize = n;
            for (pb_size_t i = 0; i < n; i++) fill_item(&it, (uint8_t *)it.pField + i * it.data_size, depth);
            break;
        }
        case PB_HTYPE_ONEOF: {
            pb_size_t *which = it.pSize;
            int pick = oneof_tag != 0 ? it.tag == oneof_tag : (*which == 0 && rnd() % 8 == 0);
            if (pick && *which == 0) {
                *which = it.tag;
                fill_item(&it, it.pField, depth);
            }
            break;
        }
        case PB_HTYPE_OPTIONAL:
            if (it.pSize != NULL && it.pSize != it.pField) *(bool *)it.pSize = true;
            fill_item(&it, it.pField, depth);
            break;
        default:
            fill_item(&it, it.pField, depth);
        }
    } while (pb_field_iter_next(&it));
}

/* Every member tag of msg's top-level oneof. */
static size_t oneof_tags(const pb_msgdesc_t *desc, void *msg, pb_size_t *tags, size_t cap)
{
    pb_field_iter_t it;
    size_t n = 0;
    if (!pb_field_iter_begin(&it, desc, msg)) return 0;
    do {
        if (PB_HTYPE(it.type) == PB_HTYPE_ONEOF && n < cap) tags[n++] = it.tag;
    } while (pb_field_iter_next(&it));
    return n;
}

/* A random Request of operation tag, encoded into out; its length. */
static size_t random_request(pb_size_t tag, uint8_t *out, size_t cap)
{
    Request *req = calloc(1, sizeof *req);
    REQUIRE(req != NULL);
    fill_msg(Request_fields, req, tag, 0);
    req->version = BoundaryVersion_BOUNDARY_VERSION_1;
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    size_t len = pb_encode(&os, Request_fields, req) ? os.bytes_written : 0;
    free(req);
    return len;
}

/* Decode in into a fresh slot, wipe it, check it all-zero. */
static void decode_and_wipe(const uint8_t *in, size_t len)
{
    kms_slot *s = kms_slot_take();
    REQUIRE(s != NULL);
    (void)kms_slot_decode(s, in, len);
    kms_slot_wipe(s);
    CHECK(kms_is_zero(&s->req, sizeof s->req) && kms_is_zero(&s->resp, sizeof s->resp));
    kms_slot_give(s);
}

static void test_random_requests(void)
{
    Request probe;
    pb_size_t tags[128];
    size_t ntags = oneof_tags(Request_fields, &probe, tags, 128);
    REQUIRE(ntags > 40);
    uint8_t *a = malloc(2 * KMS_MAX_REQUEST_SIZE), *b = malloc(KMS_MAX_REQUEST_SIZE);
    REQUIRE(a != NULL && b != NULL);
    for (size_t t = 0; t < ntags; t++) {
        for (int round = 0; round < 12; round++) {
            size_t la = random_request(tags[t], a, KMS_MAX_REQUEST_SIZE);
            CHECK(la > 0);
            decode_and_wipe(a, la);
            /* merged with another request: the same operation (fields twice) or any other (a switch) */
            pb_size_t other = round % 2 == 0 ? tags[t] : tags[rnd() % ntags];
            size_t lb = random_request(other, b, KMS_MAX_REQUEST_SIZE);
            memcpy(a + la, b, lb);
            decode_and_wipe(a, la + lb);
            decode_and_wipe(a, rnd() % (la + lb + 1)); /* truncated */
            for (int i = 0; i < 4 && la > 0; i++) a[rnd() % la] ^= (uint8_t)(1u << (rnd() % 8));
            decode_and_wipe(a, la); /* flipped bits */
        }
    }
    free(a);
    free(b);
}

static void test_random_responses(void)
{
    Response *resp = calloc(1, sizeof *resp);
    uint8_t *out = malloc(KMS_MAX_RESPONSE_SIZE);
    pb_size_t tags[128];
    REQUIRE(resp != NULL && out != NULL);
    size_t ntags = oneof_tags(Response_fields, resp, tags, 128);
    REQUIRE(ntags > 30);
    for (size_t t = 0; t < ntags; t++) {
        for (int round = 0; round < 12; round++) {
            fill_msg(Response_fields, resp, tags[t], 0);
            pb_ostream_t os = pb_ostream_from_buffer(out, KMS_MAX_RESPONSE_SIZE);
            CHECK(pb_encode(&os, Response_fields, resp) || os.bytes_written == KMS_MAX_RESPONSE_SIZE);
            CHECK(kms_pb_wipe(Response_fields, resp));
            CHECK(kms_is_zero(resp, sizeof *resp));
        }
    }
    free(resp);
    free(out);
}

/* What the walk cannot see, and the record can: these are why the checks above can fail. */
static void test_walk_limits(void)
{
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(resp != NULL);
    resp->which_result = Response_encrypt_tag;
    resp->result.encrypt.ciphertext.size = 4;
    resp->result.encrypt.ciphertext.bytes[100] = 0xAA; /* a writer's scratch beyond size */
    CHECK(kms_pb_wipe(Response_fields, resp));
    CHECK(!kms_is_zero(resp, sizeof *resp));
    free(resp);

    /* plaintext decoded twice, 300 bytes then 2: the walk sees 2, the record all 300 */
    Request *req = uh_request(Request_encrypt_tag);
    uint8_t in[1024];
    req->op.encrypt.plaintext.size = 300;
    memset(req->op.encrypt.plaintext.bytes, 0x5A, 300);
    pb_ostream_t os = pb_ostream_from_buffer(in, sizeof in);
    REQUIRE(pb_encode(&os, Request_fields, req));
    req->op.encrypt.plaintext.size = 2;
    REQUIRE(pb_encode(&os, Request_fields, req));
    kms_slot *s = kms_slot_take();
    REQUIRE(s != NULL);
    CHECK(kms_slot_decode(s, in, os.bytes_written));
    CHECK_EQ(s->req.op.encrypt.plaintext.size, 2);
    Request *copy = malloc(sizeof *copy);
    REQUIRE(copy != NULL);
    memcpy(copy, &s->req, sizeof *copy);
    CHECK(kms_pb_wipe(Request_fields, copy));
    CHECK(!kms_is_zero(copy, sizeof *copy)); /* bytes 2..299 of the first plaintext */
    kms_slot_wipe(s);
    CHECK(kms_is_zero(&s->req, sizeof s->req));
    kms_slot_give(s);
    free(copy);
    free(req);
}

/* Real operations, succeeding and refused, through the whole request path (KMS_WIPE_CHECK). */
static void test_operations_leave_nothing(void)
{
    static const kms_caller host = {.kind = KMS_CALLER_HOST};
    uh_enclave_with_domain();
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(resp != NULL);
    static const struct { KeySpec spec; KeyUsage usage; } k_keys[] = {
        {KeySpec_SYMMETRIC_DEFAULT, KeyUsage_ENCRYPT_DECRYPT}, {KeySpec_ECC_NIST_P256, KeyUsage_SIGN_VERIFY},
        {KeySpec_ED25519, KeyUsage_SIGN_VERIFY}, {KeySpec_HMAC_SHA_256, KeyUsage_GENERATE_VERIFY_MAC}};
    char ids[4][41];
    for (size_t i = 0; i < 4; i++) {
        Request *req = uh_request(Request_create_key_tag);
        req->op.create_key.spec = k_keys[i].spec;
        req->op.create_key.usage = k_keys[i].usage;
        CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
        memcpy(ids[i], resp->result.key_metadata.key_id, sizeof ids[i]);
        free(req);
    }
    Request *req = uh_request(Request_encrypt_tag);
    memcpy(req->op.encrypt.key_id, ids[0], 41);
    req->op.encrypt.plaintext.size = 1024;
    memset(req->op.encrypt.plaintext.bytes, 0x11, 1024);
    req->op.encrypt.context_count = 1;
    req->op.encrypt.context[0].key.size = 3, memcpy(req->op.encrypt.context[0].key.bytes, "app", 3);
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    EncryptResponse enc = resp->result.encrypt;
    free(req);
    req = uh_request(Request_decrypt_tag);
    req->op.decrypt.ciphertext.size = enc.ciphertext.size;
    memcpy(req->op.decrypt.ciphertext.bytes, enc.ciphertext.bytes, enc.ciphertext.size);
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_ERR_INVALID_CIPHERTEXT); /* without its context */
    req->op.decrypt.context_count = 1;
    req->op.decrypt.context[0].key.size = 3, memcpy(req->op.decrypt.context[0].key.bytes, "app", 3);
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    CHECK_EQ(resp->result.decrypt.plaintext.size, 1024);
    free(req);
    for (size_t i = 1; i < 3; i++) {
        req = uh_request(Request_sign_tag);
        memcpy(req->op.sign.key_id, ids[i], 41);
        req->op.sign.message.size = 32;
        req->op.sign.message_type = MessageType_RAW;
        req->op.sign.algorithm = i == 1 ? SigningAlgorithm_ECDSA_SHA_256 : SigningAlgorithm_ED25519_PURE;
        CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
        req->op.sign.algorithm = SigningAlgorithm_RSASSA_PSS_SHA_256; /* refused */
        CHECK(uh_run(&host, 1000, req, resp) != KMS_OK);
        free(req);
    }
    req = uh_request(Request_generate_mac_tag);
    memcpy(req->op.generate_mac.key_id, ids[3], 41);
    req->op.generate_mac.message.size = 100;
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    free(req);
    req = uh_request(Request_generate_data_key_tag);
    memcpy(req->op.generate_data_key.key_id, ids[0], 41);
    req->op.generate_data_key.number_of_bytes = 32;
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    free(req);
    req = uh_request(Request_batch_tag);
    req->op.batch.operation = BatchOperation_BATCH_ENCRYPT;
    memcpy(req->op.batch.key_id, ids[0], 41);
    req->op.batch.items_count = 8;
    for (int i = 0; i < 8; i++) req->op.batch.items[i].size = 32;
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    free(req);
    /* A batch that succeeds with a failed item (a forged tag): the slot's wipe covers each item's data.size
     * only, so nothing the failed item's operation wrote may be left (KMS_WIPE_CHECK aborts otherwise). */
    REQUIRE(resp->which_result == Response_batch_tag && resp->result.batch.results_count == 8);
    req = uh_request(Request_batch_tag);
    req->op.batch.operation = BatchOperation_BATCH_DECRYPT;
    req->op.batch.items_count = 2;
    for (int i = 0; i < 2; i++) {
        const BatchItemResult *ct = &resp->result.batch.results[i];
        memcpy(req->op.batch.items[i].bytes, ct->data.bytes, ct->data.size);
        req->op.batch.items[i].size = ct->data.size;
    }
    req->op.batch.items[1].bytes[req->op.batch.items[1].size - 1] ^= 1;
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    CHECK_EQ(resp->result.batch.results[0].error, KMS_OK);
    CHECK(resp->result.batch.results[1].error != KMS_OK);
    free(req);
    req = uh_request(Request_list_keys_tag);
    CHECK_EQ(uh_run(&host, 1000, req, resp), KMS_OK);
    free(req);
    free(resp);
}

/* A request nested in another's OCALL takes a slot of its own, never the one in use. */
static void test_nested_slots(void)
{
    kms_slot *outer = kms_slot_take(), *inner = kms_slot_take();
    REQUIRE(outer != NULL && inner != NULL);
    CHECK(outer != inner);
    kms_slot_give(inner);
    kms_slot_give(outer);
    kms_slot *held[70];
    for (int i = 0; i < 70; i++) held[i] = kms_slot_take(); /* beyond the pool: allocated ones */
    for (int i = 0; i < 70; i++) {
        CHECK(held[i] != NULL);
        for (int j = 0; j < i; j++) CHECK(held[i] != held[j]);
    }
    for (int i = 0; i < 70; i++) kms_slot_give(held[i]);
}

int main(void)
{
    test_random_requests();
    test_random_responses();
    test_walk_limits();
    test_operations_leave_nothing();
    test_nested_slots();
    kms_slot_pool_free();
    return test_summary();
}
