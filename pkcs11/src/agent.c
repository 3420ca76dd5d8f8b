/*
 * agent.c - a small pool of connections to `kms agent` (local.proto), the login that each of
 * them carries, and the mapping of the agent's and the enclave's errors to CK_RV.
 *
 * A connection is set up for one login generation: when C_Login or C_Logout changes the
 * generation, a pooled connection is closed and reopened (and logs in with the kept PIN) before
 * its next request, because the agent's login lasts as long as its connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "p11.h"

#define POOL_MAX 8
#define DEFAULT_SOCKET "/run/kms/agent-pkcs11.sock"
#define IO_TIMEOUT_S 120

struct conn {
    int fd;          /* -1 when closed */
    unsigned gen;    /* login generation it was set up for */
    bool busy;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct conn conns[POOL_MAX];
    char pin[129];
    bool have_pin;
    unsigned gen;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

void p11_debug(const char *fmt, ...)
{
    const char *on = getenv("KMS_PKCS11_DEBUG");
    if (on == NULL || strcmp(on, "1") != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("kms-pkcs11: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

CK_RV p11_agent_init(const char *path)
{
    if (path == NULL) path = getenv("KMS_PKCS11_SOCKET");
    if (path == NULL || path[0] == '\0') path = DEFAULT_SOCKET;
    if (strlen(path) >= sizeof P.path) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&P.mu);
    strcpy(P.path, path);
    for (size_t i = 0; i < POOL_MAX; i++) P.conns[i] = (struct conn){.fd = -1};
    P.gen = 1;
    pthread_mutex_unlock(&P.mu);
    return CKR_OK;
}

static void wipe_pin_locked(void)
{
    OPENSSL_cleanse(P.pin, sizeof P.pin);
    P.have_pin = false;
    P.gen++;
}

void p11_agent_fini(void)
{
    pthread_mutex_lock(&P.mu);
    for (size_t i = 0; i < POOL_MAX; i++) {
        if (P.conns[i].fd >= 0) close(P.conns[i].fd);
        P.conns[i] = (struct conn){.fd = -1};
    }
    wipe_pin_locked();
    pthread_mutex_unlock(&P.mu);
}

static int dial(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path); /* fits: checked in p11_agent_init */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        p11_debug("connect %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static CK_RV agent_rv(AgentError err, const char *detail)
{
    if (err != AgentError_AGENT_OK) p11_debug("agent error %d: %s", (int)err, detail);
    switch (err) {
    case AgentError_AGENT_OK: return CKR_OK;
    case AgentError_AGENT_ERROR_PIN_INCORRECT: return CKR_PIN_INCORRECT;
    case AgentError_AGENT_ERROR_NOT_LOGGED_IN: return CKR_USER_NOT_LOGGED_IN;
    case AgentError_AGENT_ERROR_MALFORMED: return CKR_GENERAL_ERROR;
    default: return CKR_DEVICE_ERROR; /* unavailable, untrusted, internal */
    }
}

/* Sends one request on fd and reads its answer; CKR_OK only when the agent said AGENT_OK. */
static CK_RV exchange(int fd, const LocalRequest *req, LocalResponse *resp, bool *io_failed)
{
    CK_RV rv = p11_frame_write(fd, &LocalRequest_msg, req);
    if (rv == CKR_OK) rv = p11_frame_read(fd, &LocalResponse_msg, resp);
    *io_failed = rv != CKR_OK;
    if (rv != CKR_OK) return rv;
    return agent_rv(resp->error, resp->error_detail);
}

/* Opens a connection and, when a PIN is kept, logs it in. fd or -1 (*rv says why). */
static int open_logged_in(const char *pin, bool have_pin, CK_RV *rv)
{
    int fd = dial(P.path);
    *rv = fd < 0 ? CKR_DEVICE_ERROR : CKR_OK;
    if (fd < 0 || !have_pin) return fd;
    struct p11_msg *m = p11_msg_new();
    bool io = false;
    if (m == NULL) {
        *rv = CKR_HOST_MEMORY;
    } else {
        m->req.which_body = LocalRequest_login_tag;
        memcpy(m->req.body.login.pin, pin, sizeof m->req.body.login.pin);
        *rv = exchange(fd, &m->req, &m->resp, &io);
    }
    p11_msg_free(m);
    if (*rv != CKR_OK) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Takes a connection slot (waiting while all are busy). Returns its index. */
static size_t take_slot(void)
{
    pthread_mutex_lock(&P.mu);
    for (;;) {
        size_t free_slot = POOL_MAX;
        for (size_t i = 0; i < POOL_MAX; i++) {
            if (P.conns[i].busy) continue;
            if (P.conns[i].fd >= 0 && P.conns[i].gen == P.gen) {
                free_slot = i;
                break;
            }
            if (free_slot == POOL_MAX) free_slot = i;
        }
        if (free_slot < POOL_MAX) {
            P.conns[free_slot].busy = true;
            pthread_mutex_unlock(&P.mu);
            return free_slot;
        }
        pthread_cond_wait(&P.cv, &P.mu);
    }
}

static void give_slot(size_t i, int fd, unsigned gen)
{
    pthread_mutex_lock(&P.mu);
    if (fd >= 0 && gen != P.gen) { /* a login or logout happened meanwhile */
        close(fd);
        fd = -1;
    }
    P.conns[i] = (struct conn){.fd = fd, .gen = gen};
    pthread_cond_signal(&P.cv);
    pthread_mutex_unlock(&P.mu);
}

/* Readies slot i for the current generation: (re)opens and logs in when needed. */
static CK_RV ready_slot(size_t i, int *fd, unsigned *gen, bool *reused)
{
    char pin[sizeof P.pin];
    pthread_mutex_lock(&P.mu);
    *fd = P.conns[i].fd;
    *gen = P.gen;
    bool stale = *fd >= 0 && P.conns[i].gen != P.gen, have_pin = P.have_pin;
    memcpy(pin, P.pin, sizeof pin);
    pthread_mutex_unlock(&P.mu);
    if (stale) {
        close(*fd);
        *fd = -1;
    }
    *reused = *fd >= 0;
    CK_RV rv = CKR_OK;
    if (*fd < 0) *fd = open_logged_in(pin, have_pin, &rv);
    OPENSSL_cleanse(pin, sizeof pin);
    return rv;
}

CK_RV p11_agent_call(const LocalRequest *req, LocalResponse *resp, bool idempotent)
{
    for (int attempt = 0;; attempt++) {
        size_t i = take_slot();
        int fd = -1;
        unsigned gen = 0;
        bool reused = false, io_failed = false;
        CK_RV rv = ready_slot(i, &fd, &gen, &reused);
        if (rv == CKR_OK) rv = exchange(fd, req, resp, &io_failed);
        if (io_failed || rv == CKR_GENERAL_ERROR) { /* the connection is done with */
            close(fd);
            fd = -1;
        }
        give_slot(i, fd, gen);
        if (io_failed && reused && idempotent && attempt == 0) continue;
        return rv;
    }
}

CK_RV p11_agent_login(const CK_UTF8CHAR *pin, size_t pin_len)
{
    if (pin_len >= sizeof P.pin) return CKR_PIN_LEN_RANGE;
    if (memchr(pin, '\0', pin_len) != NULL) return CKR_PIN_INVALID;
    char buf[sizeof P.pin] = {0};
    memcpy(buf, pin, pin_len);
    CK_RV rv = CKR_OK;
    int fd = open_logged_in(buf, true, &rv); /* the agent checks the PIN */
    if (fd >= 0) {
        close(fd);
        pthread_mutex_lock(&P.mu);
        memcpy(P.pin, buf, sizeof P.pin);
        P.have_pin = true;
        P.gen++;
        pthread_mutex_unlock(&P.mu);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return rv;
}

void p11_agent_logout(void)
{
    pthread_mutex_lock(&P.mu);
    wipe_pin_locked();
    for (size_t i = 0; i < POOL_MAX; i++) {
        if (!P.conns[i].busy && P.conns[i].fd >= 0) {
            close(P.conns[i].fd);
            P.conns[i].fd = -1;
        }
    }
    pthread_mutex_unlock(&P.mu);
}

struct p11_msg *p11_msg_new(void)
{
    return calloc(1, sizeof(struct p11_msg));
}

void p11_msg_free(struct p11_msg *m)
{
    if (m == NULL) return;
    OPENSSL_cleanse(m, sizeof *m);
    free(m);
}

CK_RV p11_kms_rv(ErrorCode err)
{
    switch (err) {
    case KMS_OK: return CKR_OK;
    case KMS_ERR_INVALID_SIGNATURE: return CKR_SIGNATURE_INVALID;
    case KMS_ERR_INVALID_CIPHERTEXT:
    case KMS_ERR_KEY_VERSION_RETIRED: return CKR_ENCRYPTED_DATA_INVALID;
    case KMS_ERR_INVALID_ARGUMENT: return CKR_DATA_INVALID;
    case KMS_ERR_UNSUPPORTED: return CKR_MECHANISM_INVALID;
    case KMS_ERR_INVALID_KEY: return CKR_MECHANISM_PARAM_INVALID;
    case KMS_ERR_KEY_NOT_FOUND:
    case KMS_ERR_ALIAS_NOT_FOUND:
    case KMS_ERR_KEY_DESTROYED: return CKR_KEY_HANDLE_INVALID;
    case KMS_ERR_INVALID_KEY_USAGE:
    case KMS_ERR_PERMISSION_DENIED:
    case KMS_ERR_KEY_DISABLED:
    case KMS_ERR_KEY_PENDING_DELETION: return CKR_KEY_FUNCTION_NOT_PERMITTED;
    case KMS_ERR_REQUEST_TOO_LARGE: return CKR_DATA_LEN_RANGE;
    case KMS_ERR_OUT_OF_MEMORY: return CKR_DEVICE_MEMORY;
    default: return CKR_DEVICE_ERROR;
    }
}

CK_RV p11_enclave_call(LocalRequest *req, LocalResponse *resp, bool idempotent)
{
    req->which_body = LocalRequest_request_tag;
    req->body.request.version = BoundaryVersion_BOUNDARY_VERSION_1;
    CK_RV rv = p11_agent_call(req, resp, idempotent);
    if (rv != CKR_OK) return rv;
    if (resp->which_body != LocalResponse_response_tag) return CKR_DEVICE_ERROR;
    const Response *r = &resp->body.response;
    if (r->error != KMS_OK) {
        p11_debug("enclave error %d: %s", (int)r->error, r->error_detail);
        return p11_kms_rv(r->error);
    }
    return CKR_OK;
}
