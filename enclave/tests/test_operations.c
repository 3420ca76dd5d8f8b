/*
 * test_operations.c - the operation table (enclave/src/operations.def) is complete and sound:
 * every member of the Request oneof has exactly one entry, every entry is a member, allow
 * bits and audit rules are in range, and the key and context references point inside the
 * request/response structs. (docs/boundary.md's table is generated from operations.def by
 * scripts/docs_tables.py.)
 */
#include <stdio.h>
#include <string.h>

#include <pb_common.h>

#include "operations.h"
#include "test_util.h"

/* Every oneof member of Request, from nanopb's descriptor. */
static size_t oneof_tags(pb_size_t *tags, size_t cap)
{
    Request req;
    pb_field_iter_t it;
    size_t n = 0;
    memset(&req, 0, sizeof req);
    if (!pb_field_iter_begin(&it, Request_fields, &req)) return 0;
    do {
        if (PB_HTYPE(it.type) == PB_HTYPE_ONEOF && n < cap) tags[n++] = it.tag;
    } while (pb_field_iter_next(&it));
    return n;
}

static void check_ref(const kms_key_ref *ref)
{
    CHECK(ref->req == KMS_NO_FIELD || ref->req + 41 <= sizeof(Request));
    CHECK(ref->resp == KMS_NO_FIELD || (ref->resp_tag != 0 && ref->resp + 41 <= sizeof(Response)));
    CHECK(ref->ciphertext == KMS_NO_FIELD || ref->ciphertext + sizeof(pb_size_t) <= sizeof(Request));
}

static void test_complete(void)
{
    pb_size_t tags[128];
    size_t ntags = oneof_tags(tags, 128), nops = 0;
    const kms_op *ops = kms_op_table(&nops);
    REQUIRE(ntags > 40);
    CHECK_EQ(nops, ntags);
    for (size_t i = 0; i < ntags; i++) { /* each member has exactly one entry */
        size_t found = 0;
        for (size_t j = 0; j < nops; j++) found += ops[j].tag == tags[i];
        if (found != 1) fprintf(stderr, "Request oneof tag %u has %zu entries\n", (unsigned)tags[i], found);
        CHECK_EQ(found, 1);
        CHECK(kms_op_find(tags[i]) != NULL);
    }
    for (size_t j = 0; j < nops; j++) { /* each entry is a member, and sound */
        size_t found = 0;
        for (size_t i = 0; i < ntags; i++) found += ops[j].tag == tags[i];
        CHECK_EQ(found, 1);
        CHECK(ops[j].handler != NULL && ops[j].name != NULL && ops[j].name[0] != '\0');
        CHECK(ops[j].allow != 0 && (ops[j].allow & ~31u) == 0);
        CHECK(ops[j].audit <= KMS_AUDIT_HOUSEKEEPING);
        CHECK((ops[j].context == KMS_NO_FIELD) == (ops[j].context_count == KMS_NO_FIELD));
        check_ref(&ops[j].key);
        check_ref(&ops[j].source);
    }
    CHECK(kms_op_find(0) == NULL);
    CHECK(kms_op_find(9999) == NULL);
}

int main(void)
{
    test_complete();
    return test_summary();
}
