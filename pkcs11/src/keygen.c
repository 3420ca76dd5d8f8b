/*
 * keygen.c - C_GenerateKey / C_GenerateKeyPair (one CreateKey each: the key is made inside the
 * enclave and stays there) and C_DeriveKey (CKM_ECDH1_DERIVE through DeriveSharedSecret, the
 * result a session object the module holds).
 *
 * Templates: CKA_LABEL becomes the key's description. The KMS chooses the key id, so a CKA_ID
 * is CKR_ATTRIBUTE_READ_ONLY; KMS keys are always token objects, sensitive and never
 * extractable, so CKA_TOKEN false, CKA_SENSITIVE false or CKA_EXTRACTABLE true is
 * CKR_ATTRIBUTE_VALUE_INVALID. A KMS key has one usage: an RSA or EC template asking to sign
 * gets a signing key (CKA_SIGN wins over CKA_DECRYPT/CKA_DERIVE; the object's attributes say
 * what it can do).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ops.h"

static const CK_ATTRIBUTE *attr(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    for (CK_ULONG i = 0; t != NULL && i < n; i++)
        if (t[i].type == type) return &t[i];
    return NULL;
}

/* A CK_BBOOL from the template: 1/0, -1 when absent, -2 when malformed. */
static int bool_of(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    const CK_ATTRIBUTE *a = attr(t, n, type);
    if (a == NULL) return -1;
    if (a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL)) return -2;
    return *(const CK_BBOOL *)a->pValue ? 1 : 0;
}

static bool ulong_of(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_ULONG *v, CK_RV *rv)
{
    const CK_ATTRIBUTE *a = attr(t, n, type);
    if (a == NULL) return false;
    if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG)) *rv = CKR_ATTRIBUTE_VALUE_INVALID;
    else memcpy(v, a->pValue, sizeof *v);
    return *rv == CKR_OK;
}

/* What every KMS key is: token, sensitive, not extractable, no caller-chosen id. */
static CK_RV check_common(const CK_ATTRIBUTE *t, CK_ULONG n, bool secret_part)
{
    if (n > 0 && t == NULL) return CKR_ARGUMENTS_BAD;
    const CK_ATTRIBUTE *id = attr(t, n, CKA_ID);
    if (id != NULL && id->ulValueLen != 0) return CKR_ATTRIBUTE_READ_ONLY; /* empty: none asked for */
    int tok = bool_of(t, n, CKA_TOKEN), sens = bool_of(t, n, CKA_SENSITIVE), ext = bool_of(t, n, CKA_EXTRACTABLE);
    if (tok == -2 || sens == -2 || ext == -2 || tok == 0) return CKR_ATTRIBUTE_VALUE_INVALID;
    if (secret_part && (sens == 0 || ext == 1)) return CKR_ATTRIBUTE_VALUE_INVALID;
    const CK_ATTRIBUTE *l = attr(t, n, CKA_LABEL);
    if (l != NULL && (l->ulValueLen > 256 || (l->ulValueLen > 0 && l->pValue == NULL))) return CKR_ATTRIBUTE_VALUE_INVALID;
    return CKR_OK;
}

static void copy_label(const CK_ATTRIBUTE *t, CK_ULONG n, char *desc, size_t cap)
{
    const CK_ATTRIBUTE *l = attr(t, n, CKA_LABEL);
    size_t len = l != NULL && l->pValue != NULL ? l->ulValueLen : 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(desc, l->pValue, len);
    desc[len] = '\0';
}

/* CreateKey(spec, usage, label) and the new key's object handles. */
static CK_RV create(KeySpec spec, KeyUsage usage, const CK_ATTRIBUTE *lt, CK_ULONG ln, CK_OBJECT_HANDLE *first,
                    CK_OBJECT_HANDLE *second)
{
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    Request *r = &m->req.body.request;
    r->which_op = Request_create_key_tag;
    r->op.create_key.spec = spec;
    r->op.create_key.usage = usage;
    copy_label(lt, ln, r->op.create_key.description, sizeof r->op.create_key.description);
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, false);
    if (rv == CKR_OK && m->resp.body.response.which_result != Response_key_metadata_tag) rv = CKR_DEVICE_ERROR;
    KeyMetadata md = m->resp.body.response.result.key_metadata;
    p11_msg_free(m);
    return rv == CKR_OK ? p11_objects_add_created(&md, first, second) : rv;
}

/* Session checks for making a token key: read/write session, a user who may. */
static CK_RV open_for_keys(CK_SESSION_HANDLE h, struct p11_session **s)
{
    CK_RV rv = p11_session_get(h, s);
    if (rv != CKR_OK) return rv;
    if (!((*s)->flags & CKF_RW_SESSION)) rv = CKR_SESSION_READ_ONLY;
    else if (!p11_session_user_ok()) rv = CKR_USER_NOT_LOGGED_IN;
    if (rv != CKR_OK) p11_session_put(*s);
    return rv;
}

static CK_RV secret_spec(CK_MECHANISM_TYPE mech, const CK_ATTRIBUTE *t, CK_ULONG n, KeySpec *spec, KeyUsage *usage)
{
    CK_RV rv = CKR_OK;
    CK_ULONG len = 32, kt = CKK_GENERIC_SECRET;
    bool has_len = ulong_of(t, n, CKA_VALUE_LEN, &len, &rv);
    if (rv == CKR_OK) ulong_of(t, n, CKA_KEY_TYPE, &kt, &rv);
    if (rv != CKR_OK) return rv;
    if (mech == CKM_AES_KEY_GEN) {
        *spec = KeySpec_SYMMETRIC_DEFAULT;
        *usage = KeyUsage_ENCRYPT_DECRYPT;
        return len == 32 && (kt == CKK_GENERIC_SECRET || kt == CKK_AES) ? CKR_OK : CKR_KEY_SIZE_RANGE;
    }
    *usage = KeyUsage_GENERATE_VERIFY_MAC; /* CKM_GENERIC_SECRET_KEY_GEN: an HMAC key */
    if (kt == CKK_SHA384_HMAC && !has_len) len = 48;
    if (kt == CKK_SHA512_HMAC && !has_len) len = 64;
    *spec = len == 32 ? KeySpec_HMAC_SHA_256 : len == 48 ? KeySpec_HMAC_SHA_384 : len == 64 ? KeySpec_HMAC_SHA_512 : 0;
    if (*spec == 0) return CKR_KEY_SIZE_RANGE;
    return kt == CKK_GENERIC_SECRET || kt == p11_key_type(*spec) ? CKR_OK : CKR_TEMPLATE_INCONSISTENT;
}

P11_EXPORT CK_RV C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_ATTRIBUTE *t, CK_ULONG n,
                               CK_OBJECT_HANDLE *key)
{
    if (m == NULL || key == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = open_for_keys(h, &s);
    if (rv != CKR_OK) return rv;
    KeySpec spec = 0;
    KeyUsage usage = 0;
    rv = p11_mech_check(m->mechanism, CKF_GENERATE);
    if (rv == CKR_OK) rv = check_common(t, n, true);
    if (rv == CKR_OK) rv = secret_spec(m->mechanism, t, n, &spec, &usage);
    if (rv == CKR_OK) rv = create(spec, usage, t, n, key, NULL);
    p11_session_put(s);
    return rv;
}

static CK_RV rsa_spec(const CK_ATTRIBUTE *pub, CK_ULONG pn, KeySpec *spec)
{
    CK_RV rv = CKR_OK;
    CK_ULONG bits = 0;
    if (!ulong_of(pub, pn, CKA_MODULUS_BITS, &bits, &rv)) return rv == CKR_OK ? CKR_TEMPLATE_INCOMPLETE : rv;
    const CK_ATTRIBUTE *e = attr(pub, pn, CKA_PUBLIC_EXPONENT);
    static const uint8_t F4[] = {0x01, 0x00, 0x01};
    if (e != NULL) { /* the enclave uses 65537; leading zero bytes are the same number */
        const uint8_t *v = e->pValue;
        size_t len = v ? e->ulValueLen : 0;
        while (len > 3 && *v == 0) v++, len--;
        if (len != 3 || memcmp(v, F4, 3) != 0) return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    *spec = bits == 2048 ? KeySpec_RSA_2048 : bits == 3072 ? KeySpec_RSA_3072 : bits == 4096 ? KeySpec_RSA_4096 : 0;
    return *spec ? CKR_OK : CKR_KEY_SIZE_RANGE;
}

static CK_RV pair_spec(CK_MECHANISM_TYPE mech, const CK_ATTRIBUTE *pub, CK_ULONG pn, const CK_ATTRIBUTE *priv,
                       CK_ULONG qn, KeySpec *spec, KeyUsage *usage)
{
    int sign = bool_of(priv, qn, CKA_SIGN), decrypt = bool_of(priv, qn, CKA_DECRYPT), derive = bool_of(priv, qn, CKA_DERIVE);
    if (sign == -2 || decrypt == -2 || derive == -2) return CKR_ATTRIBUTE_VALUE_INVALID;
    *usage = KeyUsage_SIGN_VERIFY;
    if (mech == CKM_RSA_PKCS_KEY_PAIR_GEN) {
        if (sign != 1 && decrypt == 1) *usage = KeyUsage_ENCRYPT_DECRYPT;
        return rsa_spec(pub, pn, spec);
    }
    const CK_ATTRIBUTE *p = attr(pub, pn, CKA_EC_PARAMS);
    *spec = p != NULL ? p11_spec_from_ec_params(p->pValue, p->ulValueLen) : 0;
    if (mech == CKM_EC_EDWARDS_KEY_PAIR_GEN) {
        if (p == NULL) *spec = KeySpec_ED25519;
        return *spec == KeySpec_ED25519 ? CKR_OK : CKR_CURVE_NOT_SUPPORTED;
    }
    if (p == NULL) return CKR_TEMPLATE_INCOMPLETE;
    if (*spec == 0 || *spec == KeySpec_ED25519) return CKR_CURVE_NOT_SUPPORTED;
    if (sign != 1 && derive == 1) {
        if (*spec == KeySpec_ECC_SECG_P256K1) return CKR_TEMPLATE_INCONSISTENT; /* no ECDH on secp256k1 */
        *usage = KeyUsage_KEY_AGREEMENT;
    }
    return CKR_OK;
}

P11_EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_ATTRIBUTE *pub, CK_ULONG pn,
                                   CK_ATTRIBUTE *priv, CK_ULONG qn, CK_OBJECT_HANDLE *pub_key,
                                   CK_OBJECT_HANDLE *priv_key)
{
    if (m == NULL || pub_key == NULL || priv_key == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = open_for_keys(h, &s);
    if (rv != CKR_OK) return rv;
    KeySpec spec = 0;
    KeyUsage usage = 0;
    rv = p11_mech_check(m->mechanism, CKF_GENERATE_KEY_PAIR);
    if (rv == CKR_OK) rv = check_common(pub, pn, false);
    if (rv == CKR_OK) rv = check_common(priv, qn, true);
    if (rv == CKR_OK) rv = pair_spec(m->mechanism, pub, pn, priv, qn, &spec, &usage);
    if (rv == CKR_OK) rv = create(spec, usage, attr(priv, qn, CKA_LABEL) ? priv : pub, attr(priv, qn, CKA_LABEL) ? qn : pn,
                                  priv_key, pub_key);
    p11_session_put(s);
    return rv;
}

static CK_RV derive_params(const CK_MECHANISM *m, const struct p11_object *base, uint8_t **spki, size_t *spki_len)
{
    if (m->mechanism != CKM_ECDH1_DERIVE) return CKR_MECHANISM_INVALID;
    if (base->kind != P11_PRIVATE || base->usage != KeyUsage_KEY_AGREEMENT) return CKR_KEY_FUNCTION_NOT_PERMITTED;
    const CK_ECDH1_DERIVE_PARAMS *p = m->pParameter;
    if (p == NULL || m->ulParameterLen != sizeof *p) return CKR_MECHANISM_PARAM_INVALID;
    if (p->kdf != CKD_NULL || p->ulSharedDataLen != 0) return CKR_MECHANISM_PARAM_INVALID; /* no KDF in the enclave */
    return p11_spki_from_point(base->spec, p->pPublicData, p->ulPublicDataLen, spki, spki_len);
}

/* DeriveSharedSecret: the raw shared secret into a malloc'd buffer. */
static CK_RV derive(const struct p11_object *base, const uint8_t *spki, size_t spki_len, uint8_t **out, size_t *len)
{
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    Request *r = &m->req.body.request;
    r->which_op = Request_derive_shared_secret_tag;
    strcpy(r->op.derive_shared_secret.key_id, base->key_id);
    CK_RV rv = spki_len <= sizeof r->op.derive_shared_secret.peer_public_key.bytes ? CKR_OK : CKR_MECHANISM_PARAM_INVALID;
    if (rv == CKR_OK) {
        memcpy(r->op.derive_shared_secret.peer_public_key.bytes, spki, spki_len);
        r->op.derive_shared_secret.peer_public_key.size = (pb_size_t)spki_len;
        rv = p11_enclave_call(&m->req, &m->resp, true);
    }
    const DeriveSharedSecretResponse *d = &m->resp.body.response.result.derive_shared_secret;
    if (rv == CKR_OK && m->resp.body.response.which_result != Response_derive_shared_secret_tag) rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK && (*out = malloc(d->shared_secret.size ? d->shared_secret.size : 1)) == NULL) rv = CKR_HOST_MEMORY;
    if (rv == CKR_OK) memcpy(*out, d->shared_secret.bytes, d->shared_secret.size), *len = d->shared_secret.size;
    p11_msg_free(m);
    return rv;
}

static CK_RV derived_template(const CK_ATTRIBUTE *t, CK_ULONG n, bool *sensitive, CK_ULONG *value_len)
{
    CK_RV rv = CKR_OK;
    CK_ULONG kt = CKK_GENERIC_SECRET;
    int tok = bool_of(t, n, CKA_TOKEN), sens = bool_of(t, n, CKA_SENSITIVE);
    if (n > 0 && t == NULL) return CKR_ARGUMENTS_BAD;
    if (tok == 1 || tok == -2 || sens == -2) return CKR_ATTRIBUTE_VALUE_INVALID; /* the KMS does not store it */
    if (ulong_of(t, n, CKA_KEY_TYPE, &kt, &rv) && kt != CKK_GENERIC_SECRET) return CKR_TEMPLATE_INCONSISTENT;
    if (rv == CKR_OK) ulong_of(t, n, CKA_VALUE_LEN, value_len, &rv);
    *sensitive = sens == 1;
    return rv;
}

P11_EXPORT CK_RV C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE base_key, CK_ATTRIBUTE *t,
                             CK_ULONG n, CK_OBJECT_HANDLE *key)
{
    if (m == NULL || key == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(h, &s);
    if (rv != CKR_OK) return rv;
    struct p11_object base = {0};
    uint8_t *spki = NULL, *value = NULL;
    size_t spki_len = 0, len = 0;
    bool sensitive = false;
    CK_ULONG want = 0;
    rv = p11_object_get(h, base_key, &base);
    if (rv == CKR_OBJECT_HANDLE_INVALID) rv = CKR_KEY_HANDLE_INVALID;
    if (rv == CKR_OK) rv = derived_template(t, n, &sensitive, &want);
    if (rv == CKR_OK) rv = derive_params(m, &base, &spki, &spki_len);
    if (rv == CKR_OK) rv = derive(&base, spki, spki_len, &value, &len);
    if (rv == CKR_OK && want > len) rv = CKR_ATTRIBUTE_VALUE_INVALID;
    if (rv == CKR_OK && want > 0) len = want; /* CKA_VALUE_LEN: the leading bytes */
    char label[258] = "";
    copy_label(t, n, label, sizeof label);
    if (rv == CKR_OK) rv = p11_objects_add_derived(h, value, len, sensitive, label, key), value = NULL;
    if (value != NULL) OPENSSL_cleanse(value, len);
    free(value);
    OPENSSL_free(spki);
    p11_object_clear(&base);
    p11_session_put(s);
    return rv;
}
