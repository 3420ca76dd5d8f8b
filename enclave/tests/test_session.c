/*
 * test_session.c - attested sessions (enclave/src/session.c) driven by a real OpenSSL TLS 1.3
 * client over memory BIOs, through kms_session_open/feed/close as the session ECALLs call
 * them: the handshake with a client certificate (its SPKI hash is the principal), framed
 * requests pipelined and split across feeds, answers in order with request ids echoed, a
 * refused frame answered with its code, close_notify, and every way the host or a client can
 * end a session: a frame above the limit, garbage TLS, no client certificate, an oversized
 * feed, a stale session id, the session limit and idle reaping.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "crypto.h"
#include "kms/limits.h"
#include "platform.h"
#include "ratls.h"
#include "session.h"
#include "test_util.h"
#include "unit_host.h"

typedef struct {
    SSL *ssl;
    BIO *in, *out; /* in: what the enclave sent; out: what the client wrote */
    uint64_t id;
    uint8_t spki_hash[32];
} client;

static uint8_t g_out[KMS_SESSION_OUT_MAX];

/* A quote whose report body is this enclave's, binding its RA-TLS key (the fake platform). */
static void install_quote(void)
{
    uint8_t quote[1100] = {3, 0}, rd[64], report[432], cert[16384];
    size_t len = 0;
    REQUIRE(kms_ratls_report_data(rd) == KMS_OK);
    REQUIRE(platform_report(NULL, rd, report) == KMS_OK);
    memcpy(quote + 48, report, 384);
    REQUIRE(kms_ratls_install_quote(quote, sizeof quote, cert, sizeof cert, &len) == KMS_OK);
}

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    REQUIRE(x != NULL && X509_set_version(x, 2) == 1 && X509_set_pubkey(x, key) == 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"unit", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    REQUIRE(X509_sign(x, key, NULL) > 0);
    return x;
}

static void client_new(client *c, int with_cert, int64_t now)
{
    memset(c, 0, sizeof *c);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx != NULL && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* RA-TLS verification is tested in Python */
    if (with_cert) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        X509 *cert = self_signed(key);
        REQUIRE(SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1);
        unsigned char *spki = NULL;
        int n = i2d_PUBKEY(key, &spki);
        REQUIRE(n > 0 && kms_sha256(spki, (size_t)n, c->spki_hash) == KMS_OK);
        OPENSSL_free(spki);
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    REQUIRE(c->ssl != NULL && c->in != NULL && c->out != NULL);
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
    REQUIRE(kms_session_open(now, &c->id) == KMS_OK);
}

static void client_free(client *c)
{
    SSL_free(c->ssl);
    memset(c, 0, sizeof *c);
}

/* Move the client's pending bytes into the enclave (in pieces of at most chunk bytes) and the
 * enclave's answer back. Returns the last feed's code. */
static kms_err_t pump(client *c, size_t chunk, int *closed)
{
    uint8_t buf[64 * 1024];
    kms_err_t err = KMS_OK;
    int n = BIO_read(c->out, buf, sizeof buf);
    size_t len = n > 0 ? (size_t)n : 0, off = 0;
    do {
        size_t take = len - off < chunk ? len - off : chunk, out_len = 0, pending = 0;
        int cl = 0;
        err = kms_session_feed(c->id, 100, buf + off, take, g_out, sizeof g_out, &out_len, &pending, &cl);
        if (closed != NULL) *closed = cl;
        if (err != KMS_OK) return err;
        BIO_write(c->in, g_out, (int)out_len);
        while (pending > 0 && err == KMS_OK) { /* drain */
            err = kms_session_feed(c->id, 100, NULL, 0, g_out, sizeof g_out, &out_len, &pending, &cl);
            BIO_write(c->in, g_out, (int)out_len);
        }
        off += take;
    } while (off < len);
    return err;
}

static int handshake(client *c)
{
    for (int i = 0; i < 10; i++) {
        int r = SSL_do_handshake(c->ssl);
        if (pump(c, SIZE_MAX, NULL) != KMS_OK) return 0;
        if (r == 1 && BIO_ctrl_pending(c->out) == 0) return 1;
    }
    return 0;
}

/* Frame and write req (not yet pumped). */
static void send_request(client *c, Request *req)
{
    static uint8_t buf[4 + KMS_MAX_REQUEST_SIZE];
    pb_ostream_t os = pb_ostream_from_buffer(buf + 4, KMS_MAX_REQUEST_SIZE);
    REQUIRE(pb_encode(&os, Request_fields, req));
    size_t n = os.bytes_written;
    buf[0] = (uint8_t)(n >> 24), buf[1] = (uint8_t)(n >> 16), buf[2] = (uint8_t)(n >> 8), buf[3] = (uint8_t)n;
    REQUIRE(SSL_write(c->ssl, buf, (int)(n + 4)) == (int)(n + 4));
}

/* Read one answer frame into resp. 1 on success. */
static int read_response(client *c, Response *resp)
{
    static uint8_t buf[4 + KMS_MAX_RESPONSE_SIZE];
    size_t got = 0, want = 4;
    while (got < want) {
        int r = SSL_read(c->ssl, buf + got, (int)(want - got));
        if (r <= 0) return 0;
        got += (size_t)r;
        if (got == 4) want = 4 + (((size_t)buf[0] << 24) | ((size_t)buf[1] << 16) | ((size_t)buf[2] << 8) | buf[3]);
    }
    memset(resp, 0, sizeof *resp);
    pb_istream_t is = pb_istream_from_buffer(buf + 4, want - 4);
    return pb_decode(&is, Response_fields, resp);
}

static Request *request(pb_size_t tag, uint64_t id)
{
    Request *req = uh_request(tag);
    req->request_id = id;
    return req;
}

/* Init over a session: the session's principal becomes the first admin; then it works. */
/* Init changes the claims (audit key, domain id): the evidence is stale until re-quoted. */
static void check_requote(void)
{
    uint8_t cert[16384], quote[8192], before[64], after[64];
    size_t cl = 0, ql = 0;
    REQUIRE(kms_ratls_report_data(before) == KMS_OK);
    CHECK_EQ(kms_ratls_evidence(cert, sizeof cert, &cl, quote, sizeof quote, &ql), KMS_ERR_EVIDENCE_NOT_READY);
    install_quote(); /* binds the new claims */
    REQUIRE(kms_ratls_report_data(after) == KMS_OK);
    CHECK(memcmp(before, after, 64) == 0);
    CHECK_EQ(kms_ratls_evidence(cert, sizeof cert, &cl, quote, sizeof quote, &ql), KMS_OK);
    static const uint8_t claim[] = {0x69, 'd', 'o', 'm', 'a', 'i', 'n', '-', 'i', 'd', 0x50};
    CHECK(memmem(cert, cl, claim, sizeof claim) != NULL);
}

static void test_requests(Response *resp)
{
    client c;
    client_new(&c, 1, 100);
    REQUIRE(handshake(&c));
    Request *init = request(Request_init_tag, 1);
    init->op.init.recovery_public_keys_count = 1;
    init->op.init.recovery_public_keys[0].size = 32;
    REQUIRE(kms_random(init->op.init.recovery_public_keys[0].bytes, 32) == KMS_OK);
    init->op.init.recovery_public_keys[0].bytes[31] &= 0x7f;
    init->op.init.threshold = 1;
    send_request(&c, init); /* no auditor: refused (fail closed), nothing created */
    CHECK_EQ(pump(&c, SIZE_MAX, NULL), KMS_OK);
    REQUIRE(read_response(&c, resp));
    CHECK_EQ(resp->error, KMS_ERR_INVALID_ARGUMENT);
    EVP_PKEY *auditor = NULL;
    REQUIRE(kms_pkey_generate(KMS_PKEY_X25519, &auditor) == KMS_OK);
    REQUIRE(kms_x25519_raw_public(auditor, init->op.init.auditor_public_keys[0].bytes) == KMS_OK);
    EVP_PKEY_free(auditor);
    init->op.init.auditor_public_keys[0].size = 32;
    init->op.init.auditor_public_keys_count = 1;
    send_request(&c, init);
    CHECK_EQ(pump(&c, SIZE_MAX, NULL), KMS_OK);
    REQUIRE(read_response(&c, resp));
    CHECK_EQ(resp->error, KMS_OK);
    CHECK_EQ(resp->request_id, 1);
    CHECK(resp->which_result == Response_init_tag &&
          memcmp(resp->result.init.admin_principal_id.bytes, c.spki_hash, 32) == 0);
    CHECK(resp->has_state_head && resp->state_head.seq == 1 && resp->domain_id.size == 16); /* the domain state */
    CHECK(memcmp(resp->domain_id.bytes, resp->result.init.domain_id.bytes, 16) == 0);
    check_requote();
    /* Three requests pipelined in one feed, answered in order; a refused one answers its code. */
    Request *create = request(Request_create_key_tag, 2), *bad = request(Request_create_key_tag, 3);
    create->op.create_key.spec = KeySpec_SYMMETRIC_DEFAULT;
    create->op.create_key.usage = KeyUsage_ENCRYPT_DECRYPT;
    bad->op.create_key.spec = KeySpec_ED25519;
    bad->op.create_key.usage = KeyUsage_ENCRYPT_DECRYPT;
    Request *ident = request(Request_get_identity_tag, 4);
    send_request(&c, create), send_request(&c, bad), send_request(&c, ident);
    CHECK_EQ(pump(&c, 7, NULL), KMS_OK); /* and split into 7-byte feeds */
    for (uint64_t id = 2; id <= 4; id++) {
        REQUIRE(read_response(&c, resp));
        CHECK_EQ(resp->request_id, id);
        CHECK_EQ(resp->error, id == 3 ? KMS_ERR_INVALID_ARGUMENT : KMS_OK);
        CHECK_EQ(resp->which_result, id == 2 ? Response_key_metadata_tag : id == 3 ? 0 : Response_get_identity_tag);
    }
    /* A frame that is not a Request: answered MALFORMED_REQUEST; the session goes on. */
    static const uint8_t junk[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
    REQUIRE(SSL_write(c.ssl, junk, sizeof junk) == (int)sizeof junk);
    CHECK_EQ(pump(&c, SIZE_MAX, NULL), KMS_OK);
    REQUIRE(read_response(&c, resp));
    CHECK_EQ(resp->error, KMS_ERR_MALFORMED_REQUEST);
    Request *old = request(Request_get_identity_tag, 5);
    old->version = 9;
    send_request(&c, old);
    CHECK_EQ(pump(&c, SIZE_MAX, NULL), KMS_OK);
    REQUIRE(read_response(&c, resp));
    CHECK_EQ(resp->error, KMS_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ(resp->request_id, 5);
    /* close_notify: the enclave reports the close and forgets the session. */
    int closed = 0;
    SSL_shutdown(c.ssl);
    CHECK_EQ(pump(&c, SIZE_MAX, &closed), KMS_OK);
    CHECK_EQ(closed, 1);
    size_t out_len = 0, pending = 0;
    CHECK_EQ(kms_session_feed(c.id, 100, NULL, 0, g_out, sizeof g_out, &out_len, &pending, &closed),
             KMS_ERR_SESSION_NOT_FOUND);
    free(init), free(create), free(bad), free(ident), free(old);
    client_free(&c);
}

/* Every way a session ends badly: it is closed and its id is dead afterwards. */
static void test_failures(Response *resp)
{
    (void)resp;
    client c;
    size_t out_len = 0, pending = 0;
    int closed = 0;
    client_new(&c, 1, 100);
    REQUIRE(handshake(&c));
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff}; /* a frame far above the limit */
    REQUIRE(SSL_write(c.ssl, huge, sizeof huge) == (int)sizeof huge);
    CHECK_EQ(pump(&c, SIZE_MAX, NULL), KMS_ERR_SESSION_FRAME);
    CHECK_EQ(kms_session_feed(c.id, 100, NULL, 0, g_out, sizeof g_out, &out_len, &pending, &closed),
             KMS_ERR_SESSION_NOT_FOUND);
    client_free(&c);

    client_new(&c, 1, 100);
    static const uint8_t garbage[64] = {0x16, 0x03, 0x01, 0x00, 0x3b, 0x02};
    CHECK_EQ(kms_session_feed(c.id, 100, garbage, sizeof garbage, g_out, sizeof g_out, &out_len, &pending, &closed),
             KMS_ERR_SESSION_TLS);
    client_free(&c);

    client_new(&c, 0, 100); /* no client certificate: no principal, no session */
    CHECK(!handshake(&c));
    client_free(&c);

    client_new(&c, 1, 100);
    static uint8_t big[KMS_SESSION_MAX_INPUT + 1];
    CHECK_EQ(kms_session_feed(c.id, 100, big, sizeof big, g_out, sizeof g_out, &out_len, &pending, &closed),
             KMS_ERR_REQUEST_TOO_LARGE);
    CHECK_EQ(kms_session_close(c.id), KMS_ERR_SESSION_NOT_FOUND); /* any failure ends the session */
    client_free(&c);

    client_new(&c, 1, 100);
    CHECK_EQ(kms_session_feed(c.id + (1ull << 32), 100, NULL, 0, g_out, sizeof g_out, &out_len, &pending, &closed),
             KMS_ERR_SESSION_NOT_FOUND); /* another generation of the same slot */
    CHECK_EQ(kms_session_feed(KMS_MAX_SESSIONS + 5, 100, NULL, 0, g_out, sizeof g_out, &out_len, &pending, &closed),
             KMS_ERR_SESSION_NOT_FOUND);
    CHECK_EQ(kms_session_close(c.id), KMS_OK);
    CHECK_EQ(kms_session_close(c.id), KMS_ERR_SESSION_NOT_FOUND);
    client_free(&c);
}

static void test_limits(void)
{
    uint64_t ids[KMS_MAX_SESSIONS], extra = 0;
    for (size_t i = 0; i < KMS_MAX_SESSIONS; i++) REQUIRE(kms_session_open(1000, &ids[i]) == KMS_OK);
    CHECK_EQ(kms_session_open(1000, &extra), KMS_ERR_SESSION_LIMIT);
    CHECK_EQ(kms_session_open(1000 + KMS_SESSION_IDLE_SECONDS, &extra), KMS_ERR_SESSION_LIMIT); /* not yet idle */
    CHECK_EQ(kms_session_open(1001 + KMS_SESSION_IDLE_SECONDS, &extra), KMS_OK); /* idle ones were reaped */
    CHECK_EQ(kms_session_close(ids[0]), KMS_ERR_SESSION_NOT_FOUND);
    CHECK_EQ(kms_session_close(extra), KMS_OK);
}

/* Threads opening and closing sessions at once, round after round, every round's opens later than
 * the idle limit after the last: a session being set up must never be reaped as idle by another
 * open of its round (it was: it still carried its slot's last-use time from an earlier round, and
 * the reaper freed it under its initializer). Within a round no session is idle. */
#define RACE_THREADS 8
#define RACE_ROUNDS 200
static int g_race_lost;
static pthread_barrier_t g_race_round;

static void *race_worker(void *arg)
{
    (void)arg;
    for (int64_t r = 1; r <= RACE_ROUNDS; r++) {
        uint64_t id = 0;
        pthread_barrier_wait(&g_race_round);
        if (kms_session_open(r * 10 * KMS_SESSION_IDLE_SECONDS, &id) != KMS_OK || kms_session_close(id) != KMS_OK)
            __atomic_add_fetch(&g_race_lost, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_open_race(void)
{
    pthread_t t[RACE_THREADS];
    REQUIRE(pthread_barrier_init(&g_race_round, NULL, RACE_THREADS) == 0);
    for (int i = 0; i < RACE_THREADS; i++) REQUIRE(pthread_create(&t[i], NULL, race_worker, NULL) == 0);
    for (int i = 0; i < RACE_THREADS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&g_race_round);
    CHECK_EQ(g_race_lost, 0);
}

int main(void)
{
    Response *resp = calloc(1, sizeof *resp);
    REQUIRE(resp != NULL);
    uh_enclave_fresh();
    install_quote();
    test_requests(resp);
    test_failures(resp);
    test_limits();
    test_open_race();
    free(resp);
    return test_summary();
}
