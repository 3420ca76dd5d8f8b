/*
 * pckext.c - the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1; Intel's "PCK Certificate
 * and CRL Profile"): SEQUENCE OF SEQUENCE { OID, value }, decoded with OpenSSL's ASN.1 templates. Only
 * what the TCB evaluation needs is read: FMSPC, PCE-ID, the 16 TCB components and the PCESVN.
 */
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "tcbinfo.h"

#define SGX_OID "1.2.840.113741.1.13.1"
#define MAX_ENTRIES 32

typedef struct {
    ASN1_OBJECT *oid;
    ASN1_TYPE *value;
} SGX_ENTRY;

DEFINE_STACK_OF(SGX_ENTRY)
typedef STACK_OF(SGX_ENTRY) SGX_ENTRIES;

ASN1_SEQUENCE(SGX_ENTRY) = {
    ASN1_SIMPLE(SGX_ENTRY, oid, ASN1_OBJECT),
    ASN1_SIMPLE(SGX_ENTRY, value, ASN1_ANY),
} static_ASN1_SEQUENCE_END(SGX_ENTRY)

ASN1_ITEM_TEMPLATE(SGX_ENTRIES) = ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, SGX_ENTRIES, SGX_ENTRY)
static_ASN1_ITEM_TEMPLATE_END(SGX_ENTRIES)

/* DER (len bytes, all of them) as a SEQUENCE OF entries; NULL when it is not one or too long. */
static SGX_ENTRIES *entries_of(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    SGX_ENTRIES *e = (SGX_ENTRIES *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(SGX_ENTRIES));
    if (e != NULL && (p != der + len || sk_SGX_ENTRY_num(e) > MAX_ENTRIES)) {
        ASN1_item_free((ASN1_VALUE *)e, ASN1_ITEM_rptr(SGX_ENTRIES));
        e = NULL;
    }
    return e;
}

static void entries_free(SGX_ENTRIES *e)
{
    ASN1_item_free((ASN1_VALUE *)e, ASN1_ITEM_rptr(SGX_ENTRIES));
}

/* The value of the one entry whose OID is SGX_OID "." suffix, of ASN.1 type `type`; NULL when it is
 * missing, repeated or of another type. */
static const ASN1_TYPE *entry(const SGX_ENTRIES *e, const char *suffix, int type)
{
    char want[64], got[64];
    const ASN1_TYPE *found = NULL;
    int n = 0;
    if (snprintf(want, sizeof want, SGX_OID ".%s", suffix) >= (int)sizeof want) return NULL;
    for (int i = 0; i < sk_SGX_ENTRY_num(e); i++) {
        const SGX_ENTRY *x = sk_SGX_ENTRY_value(e, i);
        int len = OBJ_obj2txt(got, sizeof got, x->oid, 1);
        if (len > 0 && len < (int)sizeof got && strcmp(got, want) == 0) found = x->value, n++;
    }
    return n == 1 && found->type == type ? found : NULL;
}

static int octets(const SGX_ENTRIES *e, const char *suffix, uint8_t *out, int size)
{
    const ASN1_TYPE *t = entry(e, suffix, V_ASN1_OCTET_STRING);
    if (t == NULL || ASN1_STRING_length(t->value.octet_string) != size) return 0;
    memcpy(out, ASN1_STRING_get0_data(t->value.octet_string), (size_t)size);
    return 1;
}

static int uint_at_most(const SGX_ENTRIES *e, const char *suffix, uint64_t limit, uint64_t *out)
{
    const ASN1_TYPE *t = entry(e, suffix, V_ASN1_INTEGER);
    return t != NULL && ASN1_INTEGER_get_uint64(out, t->value.integer) == 1 && *out <= limit;
}

/* The TCB entry (...13.1.2): its components and PCESVN. */
static int tcb_of(const SGX_ENTRIES *e, kms_pck_tcb *out)
{
    const ASN1_TYPE *t = entry(e, "2", V_ASN1_SEQUENCE);
    if (t == NULL) return 0;
    SGX_ENTRIES *tcb = entries_of(ASN1_STRING_get0_data(t->value.sequence), ASN1_STRING_length(t->value.sequence));
    int ok = tcb != NULL;
    uint64_t v = 0;
    char name[16];
    for (int i = 1; ok && i <= 16; i++) {
        snprintf(name, sizeof name, "2.%d", i);
        ok = uint_at_most(tcb, name, 255, &v);
        out->components[i - 1] = (uint8_t)v;
    }
    ok = ok && uint_at_most(tcb, "2.17", 0xFFFF, &v);
    out->pcesvn = (uint16_t)v;
    entries_free(tcb);
    return ok;
}

kms_err_t kms_pck_tcb_of(X509 *leaf, kms_pck_tcb *out)
{
    ASN1_OBJECT *oid = OBJ_txt2obj(SGX_OID, 1);
    int at = oid != NULL ? X509_get_ext_by_OBJ(leaf, oid, -1) : -1;
    int again = at >= 0 ? X509_get_ext_by_OBJ(leaf, oid, at) : -1;
    ASN1_OBJECT_free(oid);
    if (at < 0 || again >= 0) return KMS_ERR_PEER_MISMATCH;
    const ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(X509_get_ext(leaf, at));
    SGX_ENTRIES *e = data != NULL ? entries_of(ASN1_STRING_get0_data(data), ASN1_STRING_length(data)) : NULL;
    memset(out, 0, sizeof *out);
    int ok = e != NULL && octets(e, "4", out->fmspc, 6) && octets(e, "3", out->pce_id, 2) && tcb_of(e, out);
    entries_free(e);
    ERR_clear_error();
    return ok ? KMS_OK : KMS_ERR_PEER_MISMATCH;
}
