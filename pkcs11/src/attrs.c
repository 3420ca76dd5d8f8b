/*
 * attrs.c - the attributes of each object kind (docs/pkcs11.md has the table). Private and
 * secret key objects are sensitive and never extractable: CKA_VALUE and every private part
 * answer CKR_ATTRIBUTE_SENSITIVE (the module never has them anyway). Objects are read-only.
 */
#include <string.h>

#include "p11.h"

CK_KEY_TYPE p11_key_type(KeySpec spec)
{
    switch (spec) {
    case KeySpec_SYMMETRIC_DEFAULT: return CKK_AES;
    case KeySpec_HMAC_SHA_256: return CKK_SHA256_HMAC;
    case KeySpec_HMAC_SHA_384: return CKK_SHA384_HMAC;
    case KeySpec_HMAC_SHA_512: return CKK_SHA512_HMAC;
    case KeySpec_ECC_NIST_P256:
    case KeySpec_ECC_NIST_P384:
    case KeySpec_ECC_SECG_P256K1: return CKK_EC;
    case KeySpec_ED25519: return CKK_EC_EDWARDS;
    case KeySpec_RSA_2048:
    case KeySpec_RSA_3072:
    case KeySpec_RSA_4096: return CKK_RSA;
    default: return CKK_VENDOR_DEFINED; /* X25519: not offered */
    }
}

static CK_ULONG secret_len(KeySpec spec)
{
    return spec == KeySpec_HMAC_SHA_384 ? 48 : spec == KeySpec_HMAC_SHA_512 ? 64 : 32;
}

/* A CK_BBOOL attribute's value for o: 1 or 0, or -1 when o has no such attribute. */
static int bool_attr(const struct p11_object *o, CK_ATTRIBUTE_TYPE t)
{
    bool priv = o->kind == P11_PRIVATE, pub = o->kind == P11_PUBLIC, sec = o->kind == P11_SECRET;
    bool der = o->kind == P11_DERIVED, key_priv = priv || sec || der;
    bool sign = o->usage == KeyUsage_SIGN_VERIFY || o->usage == KeyUsage_GENERATE_VERIFY_MAC;
    bool crypt = o->usage == KeyUsage_ENCRYPT_DECRYPT;
    switch (t) {
    case CKA_TOKEN: return !der;
    case CKA_PRIVATE: return priv || sec;
    case CKA_MODIFIABLE:
    case CKA_COPYABLE:
    case CKA_DERIVE: return t == CKA_DERIVE && priv && o->usage == KeyUsage_KEY_AGREEMENT;
    case CKA_DESTROYABLE: return der;
    case CKA_LOCAL: return !der && o->local;
    case CKA_SENSITIVE: return der ? o->sensitive : key_priv ? 1 : -1;
    case CKA_ALWAYS_SENSITIVE:
    case CKA_NEVER_EXTRACTABLE: return der ? 0 : key_priv ? 1 : -1;
    case CKA_EXTRACTABLE: return der ? 1 : key_priv ? 0 : -1;
    case CKA_SIGN: return priv || sec ? sign : der ? 0 : -1;
    case CKA_VERIFY: return pub || sec ? sign : der ? 0 : -1;
    case CKA_ENCRYPT: return sec ? crypt : pub || der ? 0 : -1;
    case CKA_DECRYPT: return priv || sec ? crypt : der ? 0 : -1;
    case CKA_WRAP:
    case CKA_VERIFY_RECOVER: return pub || sec || der ? 0 : -1;
    case CKA_UNWRAP:
    case CKA_SIGN_RECOVER: return priv || sec || der ? 0 : -1;
    case CKA_TRUSTED: return pub || sec ? 0 : -1;
    case CKA_WRAP_WITH_TRUSTED:
    case CKA_ALWAYS_AUTHENTICATE: return priv ? 0 : -1;
    default: return -1;
    }
}

/* The object's class, key type, or other CK_ULONG attribute; false when it has none. */
static bool ulong_attr(const struct p11_object *o, CK_ATTRIBUTE_TYPE t, CK_ULONG *v)
{
    static const CK_OBJECT_CLASS cls[] = {0, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY, CKO_SECRET_KEY};
    switch (t) {
    case CKA_CLASS: *v = cls[o->kind]; return true;
    case CKA_KEY_TYPE: *v = o->kind == P11_DERIVED ? CKK_GENERIC_SECRET : p11_key_type(o->spec); return true;
    case CKA_KEY_GEN_MECHANISM: *v = CK_UNAVAILABLE_INFORMATION; return true;
    case CKA_VALUE_LEN:
        if (o->kind == P11_DERIVED) *v = o->value_len;
        else *v = secret_len(o->spec);
        return o->kind == P11_SECRET || o->kind == P11_DERIVED;
    case CKA_MODULUS_BITS:
        *v = o->spec == KeySpec_RSA_4096 ? 4096 : o->spec == KeySpec_RSA_3072 ? 3072 : 2048;
        return p11_key_type(o->spec) == CKK_RSA && o->kind != P11_DERIVED;
    default: return false;
    }
}

static bool is_private_part(const struct p11_object *o, CK_ATTRIBUTE_TYPE t)
{
    if (o->kind == P11_SECRET || (o->kind == P11_DERIVED && o->sensitive)) return t == CKA_VALUE;
    if (o->kind != P11_PRIVATE) return false;
    return t == CKA_VALUE || t == CKA_PRIVATE_EXPONENT || t == CKA_PRIME_1 || t == CKA_PRIME_2 ||
           t == CKA_EXPONENT_1 || t == CKA_EXPONENT_2 || t == CKA_COEFFICIENT;
}

/* Byte-string attributes: writes into buf (cap bytes) and sets *len. */
static CK_RV bytes_attr(const struct p11_object *o, CK_ATTRIBUTE_TYPE t, uint8_t *buf, size_t cap, size_t *len)
{
    bool keyobj = o->kind == P11_PRIVATE || o->kind == P11_PUBLIC || o->kind == P11_SECRET;
    bool asym = o->kind == P11_PRIVATE || o->kind == P11_PUBLIC;
    CK_KEY_TYPE kt = p11_key_type(o->spec);
    const void *src = NULL;
    size_t n = 0;
    if (t == CKA_LABEL) src = o->label, n = strlen(o->label);
    else if (t == CKA_ID && keyobj) src = o->key_id, n = strlen(o->key_id);
    else if (t == CKA_ID || t == CKA_START_DATE || t == CKA_END_DATE || (t == CKA_SUBJECT && asym)) n = 0;
    else if (t == CKA_VALUE && o->kind == P11_DERIVED) src = o->value, n = o->value_len;
    else if (t == CKA_EC_PARAMS && asym && (kt == CKK_EC || kt == CKK_EC_EDWARDS)) {
        n = p11_ec_params(o->spec, buf, cap);
        *len = n;
        return n ? CKR_OK : CKR_GENERAL_ERROR;
    } else if (asym && (t == CKA_EC_POINT || t == CKA_MODULUS || t == CKA_PUBLIC_EXPONENT || t == CKA_PUBLIC_KEY_INFO))
        return p11_spki_part(o->spki, o->spki_len, t, buf, cap, len);
    else return CKR_ATTRIBUTE_TYPE_INVALID;
    if (n > cap) return CKR_BUFFER_TOO_SMALL;
    if (n) memcpy(buf, src, n);
    *len = n;
    return CKR_OK;
}

/* One attribute's value into scratch (cap bytes); *len its length. */
static CK_RV attr_value(const struct p11_object *o, CK_ATTRIBUTE_TYPE t, uint8_t *scratch, size_t cap, size_t *len)
{
    if (is_private_part(o, t)) return CKR_ATTRIBUTE_SENSITIVE;
    int b = bool_attr(o, t);
    if (b >= 0) {
        scratch[0] = b ? CK_TRUE : CK_FALSE;
        *len = sizeof(CK_BBOOL);
        return CKR_OK;
    }
    CK_ULONG v = 0;
    if (ulong_attr(o, t, &v)) {
        memcpy(scratch, &v, sizeof v);
        *len = sizeof v;
        return CKR_OK;
    }
    return bytes_attr(o, t, scratch, cap, len);
}

CK_RV p11_attrs_get(const struct p11_object *o, CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    uint8_t scratch[2048];
    CK_RV result = CKR_OK;
    for (CK_ULONG i = 0; i < count; i++) {
        size_t len = 0;
        CK_RV rv = attr_value(o, tmpl[i].type, scratch, sizeof scratch, &len);
        if (rv == CKR_OK && tmpl[i].pValue != NULL && tmpl[i].ulValueLen < len) rv = CKR_BUFFER_TOO_SMALL;
        if (rv == CKR_OK && tmpl[i].pValue != NULL) memcpy(tmpl[i].pValue, scratch, len);
        tmpl[i].ulValueLen = rv == CKR_OK ? (CK_ULONG)len : CK_UNAVAILABLE_INFORMATION;
        if (rv == CKR_GENERAL_ERROR) return rv;
        if (rv != CKR_OK && result == CKR_OK) result = rv; /* every entry is still processed */
    }
    memset(scratch, 0, sizeof scratch); /* a derived secret may have passed through */
    return result;
}

bool p11_attrs_match(const struct p11_object *o, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    uint8_t scratch[2048];
    bool ok = true;
    for (CK_ULONG i = 0; ok && i < count; i++) {
        size_t len = 0;
        ok = attr_value(o, tmpl[i].type, scratch, sizeof scratch, &len) == CKR_OK && len == tmpl[i].ulValueLen &&
             (len == 0 || (tmpl[i].pValue != NULL && memcmp(scratch, tmpl[i].pValue, len) == 0));
    }
    memset(scratch, 0, sizeof scratch);
    return ok;
}
