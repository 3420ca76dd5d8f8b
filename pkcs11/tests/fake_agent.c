/* fake_agent.c - see fake_agent.h. Test-only code. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include "fake_agent.h"
#include "p11.h"

#define MAX_CONNS 64

static struct {
    pthread_mutex_t mu;
    int listen_fd;
    pthread_t acceptor;
    int conns[MAX_CONNS];
    size_t nconns;
    pthread_t threads[MAX_CONNS];
    enum fake_mode mode;
    EVP_PKEY *ec;
    Request last;
    unsigned signs;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1};

EVP_PKEY *fake_agent_ec_key(void) { return F.ec; }
void fake_agent_set_mode(enum fake_mode mode) { F.mode = mode; }

void fake_agent_last(Request *out)
{
    pthread_mutex_lock(&F.mu);
    *out = F.last;
    pthread_mutex_unlock(&F.mu);
}

unsigned fake_agent_sign_count(void)
{
    pthread_mutex_lock(&F.mu);
    unsigned n = F.signs;
    pthread_mutex_unlock(&F.mu);
    return n;
}

static void metadata(KeyMetadata *k, const char *id, KeySpec spec, KeyUsage usage, const char *desc)
{
    strcpy(k->key_id, id);
    k->spec = spec;
    k->usage = usage;
    k->state = KeyState_ENABLED;
    strcpy(k->description, desc);
}

static void list_keys(Response *r)
{
    ListKeysResponse *l = &r->result.list_keys;
    r->which_result = Response_list_keys_tag;
    metadata(&l->keys[0], FAKE_EC_ID, KeySpec_ECC_NIST_P256, KeyUsage_SIGN_VERIFY, "ec key");
    metadata(&l->keys[1], FAKE_AES_ID, KeySpec_SYMMETRIC_DEFAULT, KeyUsage_ENCRYPT_DECRYPT, "aes key");
    metadata(&l->keys[2], FAKE_MAC_ID, KeySpec_HMAC_SHA_256, KeyUsage_GENERATE_VERIFY_MAC, "mac key");
    metadata(&l->keys[3], "44444444-4444-4444-8444-444444444444", KeySpec_ED25519, KeyUsage_VALIDATOR, "validator");
    l->keys_count = 4;
}

/* ECDSA over the digest the module sent, as r || s. */
static void ec_sign(const SignRequest *q, Response *r)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(F.ec, NULL);
    uint8_t der[80];
    size_t der_len = sizeof der;
    if (q->message_type != MessageType_DIGEST || q->format != SignatureFormat_SIGNATURE_FORMAT_P1363 ||
        EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_sign(ctx, der, &der_len, q->message.bytes, q->message.size) != 1) {
        r->error = KMS_ERR_INVALID_ARGUMENT;
    } else {
        const unsigned char *p = der;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        BN_bn2binpad(ECDSA_SIG_get0_r(sig), r->result.sign.signature.bytes, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), r->result.sign.signature.bytes + 32, 32);
        ECDSA_SIG_free(sig);
        r->result.sign.signature.size = 64;
        strcpy(r->result.sign.key_id, q->key_id);
        r->which_result = Response_sign_tag;
    }
    EVP_PKEY_CTX_free(ctx);
}

static void ec_verify(const VerifyRequest *q, Response *r)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(q->signature.bytes, 32, NULL), BN_bin2bn(q->signature.bytes + 32, 32, NULL));
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(sig, &der);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(F.ec, NULL);
    int ok = EVP_PKEY_verify_init(ctx) == 1 &&
             EVP_PKEY_verify(ctx, der, (size_t)der_len, q->message.bytes, q->message.size) == 1;
    r->error = ok ? KMS_OK : KMS_ERR_INVALID_SIGNATURE;
    r->which_result = ok ? Response_verify_tag : 0;
    EVP_PKEY_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
}

/* A KMS-shaped ciphertext: header (key id), zero nonce, the plaintext in clear, zero tag. */
static void encrypt(const EncryptRequest *q, Response *r)
{
    uint8_t *c = r->result.encrypt.ciphertext.bytes;
    c[0] = 1;
    c[1] = 36;
    memcpy(c + 2, q->key_id, 36);
    memset(c + 38, 0, 16);
    memcpy(c + 54, q->plaintext.bytes, q->plaintext.size);
    memset(c + 54 + q->plaintext.size, 0, 16);
    r->result.encrypt.ciphertext.size = (pb_size_t)(q->plaintext.size + 70);
    strcpy(r->result.encrypt.key_id, q->key_id);
    r->which_result = Response_encrypt_tag;
}

static void decrypt(const DecryptRequest *q, Response *r)
{
    DecryptResponse *d = &r->result.decrypt;
    memcpy(d->key_id, q->ciphertext.bytes + 2, 36);
    d->key_id[36] = '\0';
    d->plaintext.size = (pb_size_t)(q->ciphertext.size - 70);
    memcpy(d->plaintext.bytes, q->ciphertext.bytes + 54, d->plaintext.size);
    r->which_result = Response_decrypt_tag;
}

static void enclave(const Request *q, Response *r)
{
    switch (q->which_op) {
    case Request_list_keys_tag: list_keys(r); break;
    case Request_list_aliases_tag:
        r->which_result = Response_aliases_tag;
        strcpy(r->result.aliases.aliases[0].alias, "alias/signer");
        strcpy(r->result.aliases.aliases[0].key_id, FAKE_EC_ID);
        r->result.aliases.aliases_count = 1;
        break;
    case Request_get_public_key_tag: {
        unsigned char *p = r->result.get_public_key.public_key.bytes;
        r->result.get_public_key.public_key.size = (pb_size_t)i2d_PUBKEY(F.ec, &p);
        r->which_result = Response_get_public_key_tag;
        break;
    }
    case Request_sign_tag: ec_sign(&q->op.sign, r); break;
    case Request_verify_tag: ec_verify(&q->op.verify, r); break;
    case Request_generate_mac_tag: {
        unsigned int n = 0;
        HMAC(EVP_sha256(), "k", 1, q->op.generate_mac.message.bytes, q->op.generate_mac.message.size,
             r->result.generate_mac.mac.bytes, &n);
        r->result.generate_mac.mac.size = (pb_size_t)n;
        r->which_result = Response_generate_mac_tag;
        break;
    }
    case Request_encrypt_tag: encrypt(&q->op.encrypt, r); break;
    case Request_decrypt_tag: decrypt(&q->op.decrypt, r); break;
    case Request_generate_random_tag:
        memset(r->result.generate_random.random.bytes, 0xab, q->op.generate_random.length);
        r->result.generate_random.random.size = (pb_size_t)q->op.generate_random.length;
        r->which_result = Response_generate_random_tag;
        break;
    default: r->error = KMS_ERR_UNSUPPORTED;
    }
}

static void answer(const LocalRequest *q, LocalResponse *r, bool *logged_in)
{
    if (q->which_body == LocalRequest_token_info_tag) {
        r->which_body = LocalResponse_token_info_tag;
        strcpy(r->body.token_info.label, "Fake Token");
        strcpy(r->body.token_info.serial, "0011223344556677");
        r->body.token_info.login_required = true;
    } else if (q->which_body == LocalRequest_login_tag) {
        *logged_in = strcmp(q->body.login.pin, FAKE_PIN) == 0;
        r->error = *logged_in ? AgentError_AGENT_OK : AgentError_AGENT_ERROR_PIN_INCORRECT;
        r->which_body = *logged_in ? LocalResponse_login_tag : 0;
    } else if (!*logged_in) {
        r->error = AgentError_AGENT_ERROR_NOT_LOGGED_IN;
    } else {
        pthread_mutex_lock(&F.mu);
        F.last = q->body.request;
        F.signs += q->body.request.which_op == Request_sign_tag;
        pthread_mutex_unlock(&F.mu);
        r->which_body = LocalResponse_response_tag;
        enclave(&q->body.request, &r->body.response);
    }
}

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct p11_msg *m = calloc(1, sizeof *m);
    bool logged_in = false;
    while (p11_frame_read(fd, &LocalRequest_msg, &m->req) == CKR_OK) {
        memset(&m->resp, 0, sizeof m->resp);
        answer(&m->req, &m->resp, &logged_in);
        if (F.mode == FAKE_OVERSIZED_FRAME) {
            static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
            if (write(fd, huge, 4) != 4) break;
        } else if (F.mode == FAKE_GARBAGE) {
            static const uint8_t junk[6] = {0, 0, 0, 2, 0xff, 0xff};
            if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk) break;
        } else if (p11_frame_write(fd, &LocalResponse_msg, &m->resp) != CKR_OK) {
            break;
        }
    }
    free(m);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(F.listen_fd, NULL, NULL);
        if (fd < 0) return NULL;
        pthread_mutex_lock(&F.mu);
        if (F.nconns == MAX_CONNS) {
            close(fd);
        } else {
            F.conns[F.nconns] = fd;
            pthread_create(&F.threads[F.nconns], NULL, serve_conn, (void *)(intptr_t)fd);
            F.nconns++;
        }
        pthread_mutex_unlock(&F.mu);
    }
}

int fake_agent_start(const char *path)
{
    if (F.ec == NULL) F.ec = EVP_EC_gen("P-256");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    unlink(path);
    F.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(F.listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(F.listen_fd, 16) != 0) return -1;
    F.mode = FAKE_NORMAL;
    return pthread_create(&F.acceptor, NULL, acceptor, NULL) == 0 ? 0 : -1;
}

void fake_agent_stop(void)
{
    shutdown(F.listen_fd, SHUT_RDWR);
    close(F.listen_fd);
    pthread_join(F.acceptor, NULL);
    pthread_mutex_lock(&F.mu);
    size_t n = F.nconns;
    for (size_t i = 0; i < n; i++) shutdown(F.conns[i], SHUT_RDWR);
    pthread_mutex_unlock(&F.mu);
    for (size_t i = 0; i < n; i++) {
        pthread_join(F.threads[i], NULL);
        close(F.conns[i]);
    }
    F.nconns = 0;
}
