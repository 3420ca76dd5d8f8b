/*
 * session.c - attested sessions: TLS 1.3 served by OpenSSL inside the enclave over memory
 * BIOs, with the RA-TLS certificate. The host only moves TLS records in and out; requests,
 * responses and the client's identity exist in clear only in here.
 *
 * Inside TLS, each message is a frame: length u32 BE (<= KMS_MAX_REQUEST_SIZE) | payload.
 * Client payloads are kms.enclave.v1.Request, enclave payloads kms.enclave.v1.Response (with
 * `error` set when refused). The client must present a certificate; its SubjectPublicKeyInfo
 * hash is the principal (the handshake proves possession of the key).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "crypto.h"
#include "request.h"
#include "kms/limits.h"
#include "ratls.h"
#include "session.h"

#define FRAME_HEADER 4u
#define FRAME_BUF (FRAME_HEADER + KMS_MAX_REQUEST_SIZE)

struct session {
    pthread_mutex_t lock;
    int in_use;
    uint32_t generation;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int authenticated;
    kms_caller caller;
    int64_t last_active;
    uint8_t *frame; /* FRAME_BUF bytes: a partial frame */
    size_t frame_len;
};

static pthread_mutex_t g_table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session g_sessions[KMS_MAX_SESSIONS];
static SSL_CTX *g_ctx;

/* The client certificate is self-signed and authenticated by its key, not by a CA. */
static int accept_client_cert(int preverify_ok, X509_STORE_CTX *ctx)
{
    (void)preverify_ok;
    (void)ctx;
    return 1;
}

static kms_err_t ctx_get(SSL_CTX **out)
{
    pthread_mutex_lock(&g_table_lock);
    if (g_ctx == NULL) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (ctx != NULL && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 && SSL_CTX_set_num_tickets(ctx, 0) == 1) {
            SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_client_cert);
            g_ctx = ctx;
        } else {
            SSL_CTX_free(ctx);
        }
    }
    *out = g_ctx;
    pthread_mutex_unlock(&g_table_lock);
    return *out != NULL ? KMS_OK : KMS_ERR_CRYPTO;
}

/* Free a session's resources; table lock or session lock held by the caller. */
static void session_free(struct session *s)
{
    SSL_free(s->ssl);
    if (s->frame != NULL) kms_wipe(s->frame, FRAME_BUF);
    free(s->frame);
    s->ssl = NULL;
    s->rbio = s->wbio = NULL;
    s->frame = NULL;
    s->frame_len = 0;
    s->authenticated = 0;
    OPENSSL_cleanse(&s->caller, sizeof s->caller);
    s->in_use = 0;
}

static kms_err_t session_init(struct session *s, int64_t host_time)
{
    SSL_CTX *ctx = NULL;
    KMS_RETURN_IF_ERR(ctx_get(&ctx));
    s->ssl = SSL_new(ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    s->frame = malloc(FRAME_BUF);
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL || s->frame == NULL) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        s->rbio = s->wbio = NULL;
        return KMS_ERR_OUT_OF_MEMORY;
    }
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    s->last_active = host_time;
    return kms_ratls_use(s->ssl);
}

kms_err_t kms_session_open(int64_t host_time, uint64_t *session_id)
{
    kms_err_t err = KMS_ERR_SESSION_LIMIT;
    pthread_mutex_lock(&g_table_lock);
    for (size_t i = 0; i < KMS_MAX_SESSIONS; i++) { /* reap idle sessions nobody is feeding */
        struct session *s = &g_sessions[i];
        if (s->in_use && host_time - s->last_active > KMS_SESSION_IDLE_SECONDS &&
            pthread_mutex_trylock(&s->lock) == 0) {
            session_free(s);
            pthread_mutex_unlock(&s->lock);
        }
    }
    size_t slot = KMS_MAX_SESSIONS;
    for (size_t i = 0; i < KMS_MAX_SESSIONS && slot == KMS_MAX_SESSIONS; i++) /* a free slot we can lock */
        if (!g_sessions[i].in_use && pthread_mutex_trylock(&g_sessions[i].lock) == 0) slot = i;
    if (slot < KMS_MAX_SESSIONS) {
        /* The slot's lock is held while it is set up: the reaper (trylock) and feeds skip it, and
         * last_active is this open's, not the slot's previous user's. */
        struct session *s = &g_sessions[slot];
        s->in_use = 1;
        s->generation++;
        s->last_active = host_time;
        pthread_mutex_unlock(&g_table_lock);
        err = session_init(s, host_time);
        pthread_mutex_lock(&g_table_lock);
        if (err == KMS_OK) *session_id = ((uint64_t)s->generation << 32) | slot;
        else session_free(s);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&g_table_lock);
    return err;
}

/* The locked session for an id, or NULL with *err set. */
static struct session *session_lock(uint64_t id, kms_err_t *err)
{
    uint64_t slot = id & 0xffffffffu;
    *err = KMS_ERR_SESSION_NOT_FOUND;
    if (slot >= KMS_MAX_SESSIONS) return NULL;
    struct session *s = &g_sessions[slot];
    if (pthread_mutex_trylock(&s->lock) != 0) {
        *err = KMS_ERR_SESSION_BUSY;
        return NULL;
    }
    if (!s->in_use || s->ssl == NULL || s->generation != (uint32_t)(id >> 32)) {
        pthread_mutex_unlock(&s->lock);
        return NULL;
    }
    return s;
}

kms_err_t kms_session_close(uint64_t id)
{
    kms_err_t err;
    struct session *s = session_lock(id, &err);
    if (s == NULL) return err;
    pthread_mutex_lock(&g_table_lock);
    session_free(s);
    pthread_mutex_unlock(&g_table_lock);
    pthread_mutex_unlock(&s->lock);
    return KMS_OK;
}

/* After the handshake: the principal is the SHA-256 of the client certificate's SPKI. */
static kms_err_t authenticate(struct session *s)
{
    X509 *peer = SSL_get0_peer_certificate(s->ssl);
    unsigned char *spki = NULL;
    int len = peer != NULL ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &spki) : -1;
    kms_err_t err = len > 0 ? kms_sha256(spki, (size_t)len, s->caller.principal) : KMS_ERR_SESSION_TLS;
    OPENSSL_free(spki);
    s->caller.kind = err == KMS_OK ? KMS_CALLER_PRINCIPAL : KMS_CALLER_NONE;
    s->authenticated = err == KMS_OK;
    return err;
}

/* One request frame: run it as this session's principal (request.c) and answer it as a frame, refused or
 * not, through TLS. */
static kms_err_t handle_frame(struct session *s, const uint8_t *payload, size_t len, int64_t host_time)
{
    uint8_t *buf = malloc(FRAME_HEADER + Response_size);
    if (buf == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_answer a = {.out = buf + FRAME_HEADER, .cap = Response_size, .refusals = 1};
    (void)kms_request_run(&s->caller, &host_time, payload, len, &a); /* the outcome is in the answer */
    kms_err_t err = a.encoded;
    size_t n = a.len;
    if (err == KMS_OK) {
        buf[0] = (uint8_t)(n >> 24), buf[1] = (uint8_t)(n >> 16), buf[2] = (uint8_t)(n >> 8), buf[3] = (uint8_t)n;
        err = SSL_write(s->ssl, buf, (int)(n + FRAME_HEADER)) == (int)(n + FRAME_HEADER) ? KMS_OK : KMS_ERR_SESSION_TLS;
        if (err == KMS_OK && BIO_ctrl_pending(s->wbio) > KMS_SESSION_MAX_PENDING) err = KMS_ERR_SESSION_FRAME;
    }
    kms_wipe(buf, FRAME_HEADER + n); /* a failed encoding wiped what it wrote (request.c) */
    free(buf);
    return err;
}

/* Run every complete frame in the buffer. */
static kms_err_t drain_frames(struct session *s, int64_t host_time)
{
    while (s->frame_len >= FRAME_HEADER) {
        const uint8_t *f = s->frame;
        size_t n = ((size_t)f[0] << 24) | ((size_t)f[1] << 16) | ((size_t)f[2] << 8) | f[3];
        if (n > KMS_MAX_REQUEST_SIZE) return KMS_ERR_SESSION_FRAME;
        if (s->frame_len < FRAME_HEADER + n) break;
        KMS_RETURN_IF_ERR(handle_frame(s, f + FRAME_HEADER, n, host_time));
        memmove(s->frame, s->frame + FRAME_HEADER + n, s->frame_len - FRAME_HEADER - n);
        s->frame_len -= FRAME_HEADER + n;
    }
    return KMS_OK;
}

/* Handshake, then read application data into frames and answer them. On the client's close_notify,
 * answer with our own (RFC 8446 §6.1: the standard close; the host sends it and ends the stream) and set
 * *closed. */
static kms_err_t pump(struct session *s, int64_t host_time, int *closed)
{
    if (!SSL_is_init_finished(s->ssl)) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? KMS_OK : KMS_ERR_SESSION_TLS;
        }
        KMS_RETURN_IF_ERR(authenticate(s));
    }
    for (;;) {
        size_t room = FRAME_BUF - s->frame_len;
        if (room == 0) return KMS_ERR_SESSION_FRAME;
        int r = SSL_read(s->ssl, s->frame + s->frame_len, (int)(room > 16384 ? 16384 : room));
        if (r <= 0) {
            int e = SSL_get_error(s->ssl, r);
            if (e != SSL_ERROR_ZERO_RETURN) return e == SSL_ERROR_WANT_READ ? KMS_OK : KMS_ERR_SESSION_TLS;
            *closed = 1;
            return SSL_shutdown(s->ssl) >= 0 ? KMS_OK : KMS_ERR_SESSION_TLS; /* 1: ours written, theirs seen */
        }
        s->frame_len += (size_t)r;
        KMS_RETURN_IF_ERR(drain_frames(s, host_time));
    }
}

kms_err_t kms_session_feed(uint64_t id, int64_t host_time, const uint8_t *in, size_t in_len, uint8_t *out,
                           size_t out_cap, size_t *out_len, size_t *pending, int *closed)
{
    kms_err_t err;
    struct session *s = session_lock(id, &err);
    if (s == NULL) return err;
    *closed = 0;
    *out_len = 0;
    err = in_len > KMS_SESSION_MAX_INPUT ? KMS_ERR_REQUEST_TOO_LARGE : KMS_OK;
    if (err == KMS_OK && in_len > 0 && BIO_write(s->rbio, in, (int)in_len) != (int)in_len) err = KMS_ERR_SESSION_TLS;
    if (err == KMS_OK) err = pump(s, host_time, closed);
    s->last_active = host_time;
    if (err == KMS_OK) {
        int n = out_cap > 0 ? BIO_read(s->wbio, out, (int)(out_cap > INT32_MAX ? INT32_MAX : out_cap)) : 0;
        *out_len = n > 0 ? (size_t)n : 0;
        *pending = BIO_ctrl_pending(s->wbio);
    }
    ERR_clear_error();
    if (err != KMS_OK || (*closed && *pending == 0)) {
        pthread_mutex_lock(&g_table_lock);
        session_free(s);
        pthread_mutex_unlock(&g_table_lock);
    }
    pthread_mutex_unlock(&s->lock);
    return err;
}
