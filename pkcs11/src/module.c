/*
 * module.c - C_Initialize/C_Finalize, library, slot and token information, the mechanism list,
 * and C_GetFunctionList. One slot (P11_SLOT_ID) whose token is the agent.
 */
#include <stdio.h>
#include <string.h>

#include "p11.h"

struct p11_state g_p11 = {.lock = PTHREAD_MUTEX_INITIALIZER};

void p11_pad(CK_UTF8CHAR *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    memset(dst, ' ', n);
    memcpy(dst, src, len < n ? len : n);
}

CK_RV p11_check_init(void)
{
    pthread_mutex_lock(&g_p11.lock);
    bool ok = g_p11.initialized;
    pthread_mutex_unlock(&g_p11.lock);
    return ok ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* Only the OS's locking is used: an application that offers only its own mutex functions
 * (without CKF_OS_LOCKING_OK) gets CKR_CANT_LOCK, as PKCS#11 allows. */
static CK_RV check_init_args(const CK_C_INITIALIZE_ARGS *a)
{
    if (a == NULL) return CKR_OK;
    if (a->pReserved != NULL) return CKR_ARGUMENTS_BAD;
    bool any = a->CreateMutex || a->DestroyMutex || a->LockMutex || a->UnlockMutex;
    bool all = a->CreateMutex && a->DestroyMutex && a->LockMutex && a->UnlockMutex;
    if (any && !all) return CKR_ARGUMENTS_BAD;
    if (all && !(a->flags & CKF_OS_LOCKING_OK)) return CKR_CANT_LOCK;
    return CKR_OK;
}

P11_EXPORT CK_RV C_Initialize(void *init_args)
{
    CK_RV rv = check_init_args(init_args);
    if (rv != CKR_OK) return rv;
    pthread_mutex_lock(&g_p11.lock);
    if (g_p11.initialized) {
        rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
    } else {
        rv = p11_agent_init(NULL);
        g_p11.initialized = rv == CKR_OK;
        g_p11.logged_in = false;
    }
    pthread_mutex_unlock(&g_p11.lock);
    return rv;
}

P11_EXPORT CK_RV C_Finalize(void *reserved)
{
    if (reserved != NULL) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_p11.lock);
    bool was = g_p11.initialized;
    g_p11.initialized = false;
    g_p11.logged_in = false;
    pthread_mutex_unlock(&g_p11.lock);
    if (!was) return CKR_CRYPTOKI_NOT_INITIALIZED;
    p11_sessions_fini();
    p11_objects_fini();
    p11_agent_fini();
    return CKR_OK;
}

P11_EXPORT CK_RV C_GetInfo(CK_INFO *info)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (info == NULL) return CKR_ARGUMENTS_BAD;
    memset(info, 0, sizeof *info);
    info->cryptokiVersion = (CK_VERSION){2, 40};
    p11_pad(info->manufacturerID, sizeof info->manufacturerID, "Enclave KMS");
    p11_pad(info->libraryDescription, sizeof info->libraryDescription, "Enclave KMS agent PKCS#11");
    info->libraryVersion = (CK_VERSION){1, 0};
    return CKR_OK;
}

/* Asks the agent for its TokenInfo; keeps login_required. */
static CK_RV token_info(TokenInfo *out)
{
    struct p11_msg *m = p11_msg_new();
    if (m == NULL) return CKR_HOST_MEMORY;
    m->req.which_body = LocalRequest_token_info_tag;
    CK_RV rv = p11_agent_call(&m->req, &m->resp, true);
    if (rv == CKR_OK && m->resp.which_body != LocalResponse_token_info_tag) rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK) {
        *out = m->resp.body.token_info;
        pthread_mutex_lock(&g_p11.lock);
        g_p11.login_required = out->login_required;
        pthread_mutex_unlock(&g_p11.lock);
    }
    p11_msg_free(m);
    return rv;
}

P11_EXPORT CK_RV C_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID *list, CK_ULONG *count)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (count == NULL) return CKR_ARGUMENTS_BAD;
    TokenInfo ti;
    CK_ULONG n = !token_present || token_info(&ti) == CKR_OK ? 1 : 0;
    if (list == NULL) {
        *count = n;
        return CKR_OK;
    }
    if (*count < n) {
        *count = n;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (n == 1) list[0] = P11_SLOT_ID;
    *count = n;
    return CKR_OK;
}

P11_EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO *info)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (slot != P11_SLOT_ID) return CKR_SLOT_ID_INVALID;
    if (info == NULL) return CKR_ARGUMENTS_BAD;
    memset(info, 0, sizeof *info);
    p11_pad(info->slotDescription, sizeof info->slotDescription, "Enclave KMS agent");
    p11_pad(info->manufacturerID, sizeof info->manufacturerID, "Enclave KMS");
    TokenInfo ti;
    info->flags = CKF_REMOVABLE_DEVICE | (token_info(&ti) == CKR_OK ? CKF_TOKEN_PRESENT : 0);
    info->hardwareVersion = (CK_VERSION){1, 0};
    info->firmwareVersion = (CK_VERSION){1, 0};
    return CKR_OK;
}

P11_EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO *info)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (slot != P11_SLOT_ID) return CKR_SLOT_ID_INVALID;
    if (info == NULL) return CKR_ARGUMENTS_BAD;
    TokenInfo ti;
    if (token_info(&ti) != CKR_OK) return CKR_TOKEN_NOT_PRESENT;
    memset(info, 0, sizeof *info);
    p11_pad(info->label, sizeof info->label, ti.label[0] ? ti.label : "Enclave KMS");
    p11_pad(info->manufacturerID, sizeof info->manufacturerID, "Enclave KMS");
    p11_pad(info->model, sizeof info->model, ti.simulated ? "agent/simulated" : "agent");
    p11_pad(info->serialNumber, sizeof info->serialNumber, ti.serial);
    info->flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED |
                  (ti.login_required ? CKF_LOGIN_REQUIRED : 0);
    info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
    info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
    info->ulMaxPinLen = 128;
    info->ulMinPinLen = 0;
    info->ulTotalPublicMemory = info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulTotalPrivateMemory = info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->hardwareVersion = (CK_VERSION){1, 0};
    info->firmwareVersion = (CK_VERSION){1, 0};
    return CKR_OK;
}

P11_EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE *list, CK_ULONG *count)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (slot != P11_SLOT_ID) return CKR_SLOT_ID_INVALID;
    if (count == NULL) return CKR_ARGUMENTS_BAD;
    CK_ULONG n = (CK_ULONG)p11_mech_count();
    if (list != NULL && *count < n) rv = CKR_BUFFER_TOO_SMALL;
    else if (list != NULL)
        for (size_t i = 0; i < n; i++) list[i] = p11_mech_at(i)->type;
    *count = n;
    return rv;
}

P11_EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (slot != P11_SLOT_ID) return CKR_SLOT_ID_INVALID;
    if (info == NULL) return CKR_ARGUMENTS_BAD;
    const struct p11_mech *m = p11_mech_find(type);
    if (m == NULL) return CKR_MECHANISM_INVALID;
    info->ulMinKeySize = m->min_bits;
    info->ulMaxKeySize = m->max_bits;
    info->flags = m->flags;
    return CKR_OK;
}

P11_EXPORT CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID *slot, void *reserved)
{
    (void)flags, (void)slot, (void)reserved;
    CK_RV rv = p11_check_init();
    return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_SUPPORTED;
}
