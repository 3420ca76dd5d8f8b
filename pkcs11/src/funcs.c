/*
 * funcs.c - C_GetFunctionList, and the functions the module does not offer, each with the
 * return code PKCS#11 gives for that case (after the usual session check), not a blanket
 * CKR_FUNCTION_NOT_SUPPORTED: no digest, recover, wrap or dual-function mechanism is in the
 * mechanism list, so their Init is CKR_MECHANISM_INVALID and the rest is
 * CKR_OPERATION_NOT_INITIALIZED; objects are read-only; PINs belong to the agent's settings.
 */
#include "p11.h"

/* The session check every session function does first; then rv. */
static CK_RV session_then(CK_SESSION_HANDLE h, CK_RV rv)
{
    struct p11_session *s = NULL;
    CK_RV got = p11_session_get(h, &s);
    if (got != CKR_OK) return got;
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR *pin, CK_ULONG len, CK_UTF8CHAR *label)
{
    (void)slot, (void)pin, (void)len, (void)label;
    CK_RV rv = p11_check_init();
    return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_SUPPORTED; /* the KMS domain is set up with `kms admin init` */
}

P11_EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR *pin, CK_ULONG len)
{
    (void)pin, (void)len;
    return session_then(h, CKR_FUNCTION_NOT_SUPPORTED); /* the PIN is the agent's setting */
}

P11_EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR *old, CK_ULONG old_len, CK_UTF8CHAR *pin, CK_ULONG len)
{
    (void)old, (void)old_len, (void)pin, (void)len;
    return session_then(h, CKR_FUNCTION_NOT_SUPPORTED);
}

P11_EXPORT CK_RV C_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE *state, CK_ULONG *len)
{
    (void)state, (void)len;
    return session_then(h, CKR_STATE_UNSAVEABLE);
}

P11_EXPORT CK_RV C_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE *state, CK_ULONG len, CK_OBJECT_HANDLE enc,
                                     CK_OBJECT_HANDLE auth)
{
    (void)state, (void)len, (void)enc, (void)auth;
    return session_then(h, CKR_SAVED_STATE_INVALID);
}

P11_EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *obj)
{
    (void)t, (void)n, (void)obj;
    return session_then(h, CKR_FUNCTION_NOT_SUPPORTED); /* import: `kms keys import` (BYOK) */
}

P11_EXPORT CK_RV C_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE *t, CK_ULONG n,
                              CK_OBJECT_HANDLE *out)
{
    (void)obj, (void)t, (void)n, (void)out;
    return session_then(h, CKR_ACTION_PROHIBITED); /* CKA_COPYABLE is false */
}

P11_EXPORT CK_RV C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE *t, CK_ULONG n)
{
    (void)obj, (void)t, (void)n;
    return session_then(h, CKR_ACTION_PROHIBITED); /* CKA_MODIFIABLE is false */
}

P11_EXPORT CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM *m)
{
    (void)m;
    return session_then(h, CKR_MECHANISM_INVALID);
}

P11_EXPORT CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n, CK_BYTE *out, CK_ULONG *out_len)
{
    (void)d, (void)n, (void)out, (void)out_len;
    return session_then(h, CKR_OPERATION_NOT_INITIALIZED);
}

P11_EXPORT CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n)
{
    (void)d, (void)n;
    return session_then(h, CKR_OPERATION_NOT_INITIALIZED);
}

P11_EXPORT CK_RV C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    (void)key;
    return session_then(h, CKR_OPERATION_NOT_INITIALIZED);
}

P11_EXPORT CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE *out, CK_ULONG *out_len)
{
    (void)out, (void)out_len;
    return session_then(h, CKR_OPERATION_NOT_INITIALIZED);
}

P11_EXPORT CK_RV C_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
    (void)m, (void)key;
    return session_then(h, CKR_MECHANISM_INVALID);
}

P11_EXPORT CK_RV C_SignRecover(CK_SESSION_HANDLE h, CK_BYTE *d, CK_ULONG n, CK_BYTE *sig, CK_ULONG *sig_len)
{
    (void)d, (void)n, (void)sig, (void)sig_len;
    return session_then(h, CKR_OPERATION_NOT_INITIALIZED);
}

P11_EXPORT CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
    (void)m, (void)key;
    return session_then(h, CKR_MECHANISM_INVALID);
}

P11_EXPORT CK_RV C_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE *sig, CK_ULONG n, CK_BYTE *d, CK_ULONG *d_len)
{
    (void)sig, (void)n, (void)d, (void)d_len;
    return session_then(h, CKR_OPERATION_NOT_INITIALIZED);
}

/* The dual functions need a digest, sign or verify running beside encrypt/decrypt: never. */
#define DUAL(name)                                                                                  \
    P11_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_BYTE *in, CK_ULONG n, CK_BYTE *out, CK_ULONG *out_len) \
    {                                                                                               \
        (void)in, (void)n, (void)out, (void)out_len;                                               \
        return session_then(h, CKR_OPERATION_NOT_INITIALIZED);                                      \
    }
DUAL(C_DigestEncryptUpdate)
DUAL(C_DecryptDigestUpdate)
DUAL(C_SignEncryptUpdate)
DUAL(C_DecryptVerifyUpdate)

P11_EXPORT CK_RV C_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                           CK_BYTE *out, CK_ULONG *out_len)
{
    (void)m, (void)wrapping, (void)key, (void)out, (void)out_len;
    return session_then(h, CKR_MECHANISM_INVALID);
}

P11_EXPORT CK_RV C_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE unwrapping, CK_BYTE *wrapped,
                             CK_ULONG wrapped_len, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *key)
{
    (void)m, (void)unwrapping, (void)wrapped, (void)wrapped_len, (void)t, (void)n, (void)key;
    return session_then(h, CKR_MECHANISM_INVALID);
}

P11_EXPORT CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE h)
{
    return session_then(h, CKR_FUNCTION_NOT_PARALLEL);
}

P11_EXPORT CK_RV C_CancelFunction(CK_SESSION_HANDLE h)
{
    return session_then(h, CKR_FUNCTION_NOT_PARALLEL);
}

#define F(name) .name = name
static CK_FUNCTION_LIST FUNCTIONS = {
    .version = {2, 40},
    F(C_Initialize), F(C_Finalize), F(C_GetInfo), F(C_GetFunctionList), F(C_GetSlotList), F(C_GetSlotInfo),
    F(C_GetTokenInfo), F(C_GetMechanismList), F(C_GetMechanismInfo), F(C_InitToken), F(C_InitPIN), F(C_SetPIN),
    F(C_OpenSession), F(C_CloseSession), F(C_CloseAllSessions), F(C_GetSessionInfo), F(C_GetOperationState),
    F(C_SetOperationState), F(C_Login), F(C_Logout), F(C_CreateObject), F(C_CopyObject), F(C_DestroyObject),
    F(C_GetObjectSize), F(C_GetAttributeValue), F(C_SetAttributeValue), F(C_FindObjectsInit), F(C_FindObjects),
    F(C_FindObjectsFinal), F(C_EncryptInit), F(C_Encrypt), F(C_EncryptUpdate), F(C_EncryptFinal),
    F(C_DecryptInit), F(C_Decrypt), F(C_DecryptUpdate), F(C_DecryptFinal), F(C_DigestInit), F(C_Digest),
    F(C_DigestUpdate), F(C_DigestKey), F(C_DigestFinal), F(C_SignInit), F(C_Sign), F(C_SignUpdate),
    F(C_SignFinal), F(C_SignRecoverInit), F(C_SignRecover), F(C_VerifyInit), F(C_Verify), F(C_VerifyUpdate),
    F(C_VerifyFinal), F(C_VerifyRecoverInit), F(C_VerifyRecover), F(C_DigestEncryptUpdate),
    F(C_DecryptDigestUpdate), F(C_SignEncryptUpdate), F(C_DecryptVerifyUpdate), F(C_GenerateKey),
    F(C_GenerateKeyPair), F(C_WrapKey), F(C_UnwrapKey), F(C_DeriveKey), F(C_SeedRandom), F(C_GenerateRandom),
    F(C_GetFunctionStatus), F(C_CancelFunction), F(C_WaitForSlotEvent),
};

/* Thread-safe, callable before C_Initialize; *list points at static storage (never freed). */
P11_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST **list)
{
    if (list == NULL) return CKR_ARGUMENTS_BAD;
    *list = &FUNCTIONS;
    return CKR_OK;
}
