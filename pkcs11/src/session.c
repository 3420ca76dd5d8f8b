/*
 * session.c - the session table (handles never reused while the module is initialized), login
 * and logout (token-wide, checked by the agent), and session information.
 */
#include <stdlib.h>
#include <string.h>

#include "p11.h"

static struct p11_session **g_sessions;
static size_t g_nsessions, g_cap;
static CK_SESSION_HANDLE g_next = 1;

static void session_free(struct p11_session *s)
{
    for (size_t i = 0; i < sizeof s->ops / sizeof s->ops[0]; i++) p11_op_free(s->ops[i]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The index of handle in the table, or g_nsessions. Caller holds g_p11.lock. */
static size_t find_locked(CK_SESSION_HANDLE handle)
{
    size_t i = 0;
    while (i < g_nsessions && g_sessions[i]->handle != handle) i++;
    return i;
}

CK_RV p11_session_get(CK_SESSION_HANDLE handle, struct p11_session **out)
{
    pthread_mutex_lock(&g_p11.lock);
    if (!g_p11.initialized) {
        pthread_mutex_unlock(&g_p11.lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    size_t i = find_locked(handle);
    struct p11_session *s = i < g_nsessions ? g_sessions[i] : NULL;
    if (s != NULL) s->refs++;
    pthread_mutex_unlock(&g_p11.lock);
    if (s == NULL) return CKR_SESSION_HANDLE_INVALID;
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&g_p11.lock);
    bool closed = s->closed;
    pthread_mutex_unlock(&g_p11.lock);
    if (closed) { /* closed while this thread waited for it */
        p11_session_put(s);
        return CKR_SESSION_HANDLE_INVALID;
    }
    *out = s;
    return CKR_OK;
}

void p11_session_put(struct p11_session *s)
{
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&g_p11.lock);
    bool last = --s->refs == 0 && s->closed;
    pthread_mutex_unlock(&g_p11.lock);
    if (last) session_free(s);
}

bool p11_session_user_ok(void)
{
    pthread_mutex_lock(&g_p11.lock);
    bool ok = g_p11.logged_in || !g_p11.login_required;
    pthread_mutex_unlock(&g_p11.lock);
    return ok;
}

P11_EXPORT CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify,
                               CK_SESSION_HANDLE *out)
{
    (void)app, (void)notify;
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (slot != P11_SLOT_ID) return CKR_SLOT_ID_INVALID;
    if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    if (out == NULL) return CKR_ARGUMENTS_BAD;
    CK_TOKEN_INFO ti; /* the token must be there; this also learns whether a login is needed */
    if (C_GetTokenInfo(slot, &ti) != CKR_OK) return CKR_TOKEN_NOT_PRESENT;
    struct p11_session *s = calloc(1, sizeof *s);
    if (s == NULL) return CKR_HOST_MEMORY;
    pthread_mutex_init(&s->mu, NULL);
    s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
    pthread_mutex_lock(&g_p11.lock);
    if (g_nsessions == g_cap) {
        size_t cap = g_cap ? g_cap * 2 : 16;
        struct p11_session **grown = realloc(g_sessions, cap * sizeof *grown);
        if (grown == NULL) rv = CKR_HOST_MEMORY;
        else g_sessions = grown, g_cap = cap;
    }
    if (rv == CKR_OK) {
        s->handle = g_next++;
        g_sessions[g_nsessions++] = s;
        *out = s->handle;
    }
    pthread_mutex_unlock(&g_p11.lock);
    if (rv != CKR_OK) session_free(s);
    return rv;
}

/* Removes g_sessions[i] (g_p11.lock held); returns it when nobody holds it (caller frees). */
static struct p11_session *remove_locked(size_t i)
{
    struct p11_session *s = g_sessions[i];
    g_sessions[i] = g_sessions[--g_nsessions];
    s->closed = true;
    return s->refs == 0 ? s : NULL;
}

P11_EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE handle)
{
    pthread_mutex_lock(&g_p11.lock);
    CK_RV rv = g_p11.initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
    size_t i = rv == CKR_OK ? find_locked(handle) : 0;
    struct p11_session *dead = NULL;
    if (rv == CKR_OK && i == g_nsessions) rv = CKR_SESSION_HANDLE_INVALID;
    if (rv == CKR_OK) dead = remove_locked(i);
    bool last = rv == CKR_OK && g_nsessions == 0;
    if (last) g_p11.logged_in = false; /* PKCS#11: closing the last session logs out */
    pthread_mutex_unlock(&g_p11.lock);
    if (rv != CKR_OK) return rv;
    if (dead != NULL) session_free(dead);
    p11_objects_drop_session(handle);
    if (last) p11_agent_logout();
    return CKR_OK;
}

P11_EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slot)
{
    CK_RV rv = p11_check_init();
    if (rv != CKR_OK) return rv;
    if (slot != P11_SLOT_ID) return CKR_SLOT_ID_INVALID;
    for (;;) {
        pthread_mutex_lock(&g_p11.lock);
        CK_SESSION_HANDLE h = g_nsessions ? g_sessions[0]->handle : 0;
        pthread_mutex_unlock(&g_p11.lock);
        if (h == 0) return CKR_OK;
        C_CloseSession(h);
    }
}

void p11_sessions_fini(void)
{
    pthread_mutex_lock(&g_p11.lock);
    while (g_nsessions > 0) {
        struct p11_session *s = remove_locked(g_nsessions - 1);
        if (s != NULL) session_free(s);
    }
    free(g_sessions);
    g_sessions = NULL;
    g_cap = 0;
    pthread_mutex_unlock(&g_p11.lock);
}

P11_EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE handle, CK_SESSION_INFO *info)
{
    if (info == NULL) return CKR_ARGUMENTS_BAD;
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(handle, &s);
    if (rv != CKR_OK) return rv;
    pthread_mutex_lock(&g_p11.lock);
    bool user = g_p11.logged_in;
    pthread_mutex_unlock(&g_p11.lock);
    bool rw = (s->flags & CKF_RW_SESSION) != 0;
    info->slotID = P11_SLOT_ID;
    info->state = rw ? (user ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION)
                     : (user ? CKS_RO_USER_FUNCTIONS : CKS_RO_PUBLIC_SESSION);
    info->flags = s->flags;
    info->ulDeviceError = 0;
    p11_session_put(s);
    return CKR_OK;
}

P11_EXPORT CK_RV C_Login(CK_SESSION_HANDLE handle, CK_USER_TYPE user, CK_UTF8CHAR *pin, CK_ULONG pin_len)
{
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(handle, &s);
    if (rv != CKR_OK) return rv;
    if (user == CKU_CONTEXT_SPECIFIC) rv = CKR_OPERATION_NOT_INITIALIZED; /* no CKA_ALWAYS_AUTHENTICATE keys */
    else if (user != CKU_USER) rv = CKR_USER_TYPE_INVALID;  /* no security officer: the KMS has admins */
    else if (pin == NULL && pin_len != 0) rv = CKR_ARGUMENTS_BAD;
    if (rv == CKR_OK) {
        pthread_mutex_lock(&g_p11.lock);
        if (g_p11.logged_in) rv = CKR_USER_ALREADY_LOGGED_IN;
        pthread_mutex_unlock(&g_p11.lock);
    }
    if (rv == CKR_OK) rv = p11_agent_login(pin ? pin : (CK_UTF8CHAR *)"", pin_len);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&g_p11.lock);
        g_p11.logged_in = true;
        pthread_mutex_unlock(&g_p11.lock);
    }
    p11_session_put(s);
    return rv;
}

P11_EXPORT CK_RV C_Logout(CK_SESSION_HANDLE handle)
{
    struct p11_session *s = NULL;
    CK_RV rv = p11_session_get(handle, &s);
    if (rv != CKR_OK) return rv;
    pthread_mutex_lock(&g_p11.lock);
    if (!g_p11.logged_in) rv = CKR_USER_NOT_LOGGED_IN;
    g_p11.logged_in = false;
    pthread_mutex_unlock(&g_p11.lock);
    if (rv == CKR_OK) p11_agent_logout();
    p11_session_put(s);
    return rv;
}
