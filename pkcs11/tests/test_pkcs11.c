/*
 * test_pkcs11.c - the module's C unit tests against fake_agent (an in-process stand-in for
 * `kms agent`), under ASan + UBSan: initialization rules, slot/token, login, objects and their
 * attributes (no private value ever), the mechanism mappings as the agent receives them (ECDSA
 * signatures checked with OpenSSL), output-length conventions, error codes, concurrency, and
 * an agent that disappears or answers garbage.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/sha.h>

#include "fake_agent.h"
#include "p11.h"
#include "test_util.h"

static CK_FUNCTION_LIST *f;
static char sock_path[108];

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *id)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, (void *)(uintptr_t)id, strlen(id)}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    CHECK_EQ(f->C_FindObjectsInit(s, t, 2), CKR_OK);
    CHECK_EQ(f->C_FindObjects(s, &h, 1, &n), CKR_OK);
    CHECK_EQ(f->C_FindObjectsFinal(s), CKR_OK);
    return n == 1 ? h : 0;
}

static void test_init_rules(void)
{
    CK_C_INITIALIZE_ARGS own_locks = {.CreateMutex = (CK_CREATEMUTEX)1, .DestroyMutex = (CK_DESTROYMUTEX)1,
                                      .LockMutex = (CK_LOCKMUTEX)1, .UnlockMutex = (CK_UNLOCKMUTEX)1};
    CHECK_EQ(f->C_Initialize(&own_locks), CKR_CANT_LOCK);
    own_locks.flags = CKF_OS_LOCKING_OK;
    CHECK_EQ(f->C_Initialize(&own_locks), CKR_OK);
    CHECK_EQ(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    CHECK_EQ(f->C_Finalize(NULL), CKR_OK);
    CHECK_EQ(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_ULONG n = 0;
    CHECK_EQ(f->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_C_INITIALIZE_ARGS os = {.flags = CKF_OS_LOCKING_OK};
    CHECK_EQ(f->C_Initialize(&os), CKR_OK);
}

static void test_slot_token(void)
{
    CK_SLOT_ID slots[2];
    CK_ULONG n = 2;
    CHECK_EQ(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    CHECK_EQ(n, 1);
    CHECK_EQ(slots[0], P11_SLOT_ID);
    CK_TOKEN_INFO ti;
    CHECK_EQ(f->C_GetTokenInfo(P11_SLOT_ID, &ti), CKR_OK);
    CHECK(memcmp(ti.label, "Fake Token ", 11) == 0);
    CHECK(memcmp(ti.serialNumber, "0011223344556677", 16) == 0);
    CHECK(ti.flags & CKF_LOGIN_REQUIRED);
    CHECK_EQ(f->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);
    CK_MECHANISM_INFO mi;
    CHECK_EQ(f->C_GetMechanismInfo(P11_SLOT_ID, CKM_RSA_PKCS_OAEP, &mi), CKR_OK);
    CHECK_EQ(mi.flags, CKF_DECRYPT);
    CHECK_EQ(f->C_GetMechanismInfo(P11_SLOT_ID, CKM_DES3_CBC, &mi), CKR_MECHANISM_INVALID);
}

static CK_SESSION_HANDLE test_login(void)
{
    CK_SESSION_HANDLE s = 0;
    CHECK_EQ(f->C_OpenSession(P11_SLOT_ID, CKF_RW_SESSION, NULL, NULL, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    CHECK_EQ(f->C_OpenSession(P11_SLOT_ID, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    CHECK_EQ(find_one(s, CKO_PUBLIC_KEY, FAKE_EC_ID), 0); /* nothing before the login */
    CHECK_EQ(f->C_Login(s, CKU_SO, (CK_UTF8CHAR *)"1234", 4), CKR_USER_TYPE_INVALID);
    CHECK_EQ(f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)"9999", 4), CKR_PIN_INCORRECT);
    CHECK_EQ(f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)FAKE_PIN, 4), CKR_OK);
    CHECK_EQ(f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)FAKE_PIN, 4), CKR_USER_ALREADY_LOGGED_IN);
    CK_SESSION_INFO si;
    CHECK_EQ(f->C_GetSessionInfo(s, &si), CKR_OK);
    CHECK_EQ(si.state, CKS_RW_USER_FUNCTIONS);
    return s;
}

static void test_objects(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE all[16];
    CK_ULONG n = 0;
    CHECK_EQ(f->C_FindObjectsInit(s, NULL, 0), CKR_OK);
    CHECK_EQ(f->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
    CHECK_EQ(f->C_FindObjects(s, all, 16, &n), CKR_OK);
    CHECK_EQ(n, 4); /* EC private + public, AES, HMAC; the VALIDATOR key is not offered */
    CHECK_EQ(f->C_FindObjectsFinal(s), CKR_OK);
    CK_OBJECT_HANDLE priv = find_one(s, CKO_PRIVATE_KEY, FAKE_EC_ID);
    CHECK(priv != 0);
    uint8_t buf[128];
    CK_ATTRIBUTE value = {CKA_VALUE, buf, sizeof buf};
    CHECK_EQ(f->C_GetAttributeValue(s, priv, &value, 1), CKR_ATTRIBUTE_SENSITIVE);
    CHECK_EQ(value.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    CK_BBOOL sens = 0, ext = 1;
    char label[32] = {0};
    CK_ATTRIBUTE t[] = {{CKA_SENSITIVE, &sens, 1}, {CKA_EXTRACTABLE, &ext, 1}, {CKA_LABEL, label, sizeof label},
                        {CKA_EC_PARAMS, buf, sizeof buf}};
    CHECK_EQ(f->C_GetAttributeValue(s, priv, t, 4), CKR_OK);
    CHECK(sens == CK_TRUE && ext == CK_FALSE);
    CHECK_EQ(t[2].ulValueLen, 6);
    CHECK(memcmp(label, "signer", 6) == 0); /* the alias name */
    CHECK_EQ(t[3].ulValueLen, 10);
    CHECK(buf[0] == 0x06 && buf[1] == 0x08);
    CK_OBJECT_HANDLE aes = find_one(s, CKO_SECRET_KEY, FAKE_AES_ID);
    value.ulValueLen = sizeof buf;
    CHECK_EQ(f->C_GetAttributeValue(s, aes, &value, 1), CKR_ATTRIBUTE_SENSITIVE);
    CK_ATTRIBUTE point = {CKA_EC_POINT, NULL, 0};
    CHECK_EQ(f->C_GetAttributeValue(s, find_one(s, CKO_PUBLIC_KEY, FAKE_EC_ID), &point, 1), CKR_OK);
    CHECK_EQ(point.ulValueLen, 67); /* 04 41 || uncompressed point */
    point.pValue = buf;
    point.ulValueLen = 10;
    CHECK_EQ(f->C_GetAttributeValue(s, find_one(s, CKO_PUBLIC_KEY, FAKE_EC_ID), &point, 1), CKR_BUFFER_TOO_SMALL);
    CHECK_EQ(f->C_DestroyObject(s, priv), CKR_ACTION_PROHIBITED);
    CHECK_EQ(f->C_GetAttributeValue(s, 9999, &value, 1), CKR_OBJECT_HANDLE_INVALID);
}

/* r || s over digest (as the module sent it) verifies with OpenSSL against the key. */
static int ecdsa_ok(const uint8_t *sig, const uint8_t *digest, size_t len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(fake_agent_ec_key(), NULL);
    int ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, len) == 1;
    EVP_PKEY_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

static void test_ecdsa(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE priv = find_one(s, CKO_PRIVATE_KEY, FAKE_EC_ID), pub = find_one(s, CKO_PUBLIC_KEY, FAKE_EC_ID);
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
    uint8_t digest[48], sig[64];
    SHA384((const uint8_t *)"message", 7, digest);
    CK_ULONG len = 0;
    unsigned before = fake_agent_sign_count();
    CHECK_EQ(f->C_SignInit(s, &ecdsa, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, digest, 32, NULL, &len), CKR_OK); /* a length query keeps the operation */
    CHECK_EQ(len, 64);
    len = 10;
    CHECK_EQ(f->C_Sign(s, digest, 32, sig, &len), CKR_BUFFER_TOO_SMALL);
    len = sizeof sig;
    CHECK_EQ(f->C_Sign(s, digest, 32, sig, &len), CKR_OK);
    CHECK_EQ(fake_agent_sign_count() - before, 1); /* one signature, handed out after the queries */
    CHECK(ecdsa_ok(sig, digest, 32));
    CHECK_EQ(f->C_Sign(s, digest, 32, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    /* a SHA-384 digest on P-256: ECDSA uses its leftmost 256 bits */
    CHECK_EQ(f->C_SignInit(s, &ecdsa, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, digest, 48, sig, &len), CKR_OK);
    Request last;
    fake_agent_last(&last);
    CHECK_EQ(last.op.sign.message.size, 32);
    CHECK(ecdsa_ok(sig, digest, 48));
    /* a 20-byte digest is the same integer left-padded */
    CHECK_EQ(f->C_SignInit(s, &ecdsa, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, digest, 20, sig, &len), CKR_OK);
    CHECK(ecdsa_ok(sig, digest, 20));
    CHECK_EQ(f->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
    CHECK_EQ(f->C_Verify(s, digest, 20, sig, 64), CKR_OK);
    sig[5] ^= 1;
    CHECK_EQ(f->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
    CHECK_EQ(f->C_Verify(s, digest, 20, sig, 64), CKR_SIGNATURE_INVALID);
    CHECK_EQ(f->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
    CHECK_EQ(f->C_Verify(s, digest, 20, sig, 63), CKR_SIGNATURE_LEN_RANGE);
    /* hash-then-sign, multi-part: the module hashes and sends the digest */
    CK_MECHANISM sha = {CKM_ECDSA_SHA256, NULL, 0};
    CHECK_EQ(f->C_SignInit(s, &sha, priv), CKR_OK);
    CHECK_EQ(f->C_SignUpdate(s, (CK_BYTE *)"mess", 4), CKR_OK);
    CHECK_EQ(f->C_SignUpdate(s, (CK_BYTE *)"age", 3), CKR_OK);
    len = sizeof sig;
    CHECK_EQ(f->C_SignFinal(s, sig, &len), CKR_OK);
    SHA256((const uint8_t *)"message", 7, digest);
    fake_agent_last(&last);
    CHECK_EQ(last.op.sign.message_type, MessageType_DIGEST);
    CHECK(memcmp(last.op.sign.message.bytes, digest, 32) == 0);
    CHECK(ecdsa_ok(sig, digest, 32));
}

static void test_refusals(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE priv = find_one(s, CKO_PRIVATE_KEY, FAKE_EC_ID), pub = find_one(s, CKO_PUBLIC_KEY, FAKE_EC_ID);
    CK_MECHANISM rsa = {CKM_RSA_PKCS, NULL, 0}, des = {CKM_DES3_CBC, NULL, 0}, ecdsa = {CKM_ECDSA, NULL, 0};
    CHECK_EQ(f->C_SignInit(s, &rsa, priv), CKR_KEY_TYPE_INCONSISTENT);
    CHECK_EQ(f->C_SignInit(s, &des, priv), CKR_MECHANISM_INVALID);
    CHECK_EQ(f->C_SignInit(s, &ecdsa, pub), CKR_KEY_FUNCTION_NOT_PERMITTED);
    CHECK_EQ(f->C_SignInit(s, &ecdsa, 9999), CKR_KEY_HANDLE_INVALID);
    CHECK_EQ(f->C_EncryptInit(s, &ecdsa, priv), CKR_MECHANISM_INVALID);
    CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, NULL, 0};
    CHECK_EQ(f->C_EncryptInit(s, &oaep, pub), CKR_MECHANISM_INVALID); /* OAEP is decrypt-only here */
    CHECK_EQ(f->C_DigestInit(s, &des), CKR_MECHANISM_INVALID);
    CHECK_EQ(f->C_SignInit(s, &ecdsa, priv), CKR_OK);
    uint8_t big[65] = {0}, sig[64];
    CK_ULONG len = sizeof sig;
    CHECK_EQ(f->C_Sign(s, big, sizeof big, sig, &len), CKR_DATA_LEN_RANGE);
    CHECK_EQ(f->C_SignFinal(s, sig, &len), CKR_OPERATION_NOT_INITIALIZED); /* the error ended it */
    CHECK_EQ(f->C_SeedRandom(s, big, 4), CKR_RANDOM_SEED_NOT_SUPPORTED);
    CHECK_EQ(f->C_GenerateRandom(s, big, sizeof big), CKR_OK);
    CHECK(big[0] == 0xab && big[64] == 0xab);
}

static void test_hmac(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE mac = find_one(s, CKO_SECRET_KEY, FAKE_MAC_ID);
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0}, m384 = {CKM_SHA384_HMAC, NULL, 0};
    uint8_t out[64];
    CK_ULONG len = sizeof out;
    CHECK_EQ(f->C_SignInit(s, &m384, mac), CKR_KEY_TYPE_INCONSISTENT);
    CHECK_EQ(f->C_SignInit(s, &m, mac), CKR_OK);
    CHECK_EQ(f->C_Sign(s, (CK_BYTE *)"abc", 3, out, &len), CKR_OK);
    CHECK_EQ(len, 32);
    Request last;
    fake_agent_last(&last);
    CHECK_EQ(last.which_op, Request_generate_mac_tag);
    CHECK_EQ(strcmp(last.op.generate_mac.key_id, FAKE_MAC_ID), 0);
}

static void test_gcm(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE aes = find_one(s, CKO_SECRET_KEY, FAKE_AES_ID);
    uint8_t iv[12] = {0}, ct[200], pt[200];
    CK_GCM_PARAMS with_iv = {.pIv = iv, .ulIvLen = 12, .ulTagBits = 128};
    CK_MECHANISM bad = {CKM_AES_GCM, &with_iv, sizeof with_iv};
    CHECK_EQ(f->C_EncryptInit(s, &bad, aes), CKR_MECHANISM_PARAM_INVALID); /* the enclave picks the nonce */
    CK_GCM_PARAMS p = {.pAAD = (CK_BYTE *)"hdr", .ulAADLen = 3, .ulTagBits = 128};
    CK_MECHANISM gcm = {CKM_AES_GCM, &p, sizeof p};
    CK_ULONG len = sizeof ct;
    CHECK_EQ(f->C_EncryptInit(s, &gcm, aes), CKR_OK);
    CHECK_EQ(f->C_Encrypt(s, (CK_BYTE *)"secret", 6, ct, &len), CKR_OK);
    CHECK_EQ(len, 6 + P11_GCM_OVERHEAD);
    Request last;
    fake_agent_last(&last);
    CHECK_EQ(last.op.encrypt.context_count, 1);
    CHECK(memcmp(last.op.encrypt.context[0].key.bytes, "pkcs11-aad", 10) == 0);
    CHECK(memcmp(last.op.encrypt.context[0].value.bytes, "hdr", 3) == 0);
    CK_ULONG plen = sizeof pt;
    CHECK_EQ(f->C_DecryptInit(s, &gcm, aes), CKR_OK);
    CHECK_EQ(f->C_DecryptUpdate(s, ct, 10, pt, &plen), CKR_OK);
    CHECK_EQ(plen, 0);
    plen = sizeof pt;
    CHECK_EQ(f->C_DecryptUpdate(s, ct + 10, len - 10, pt, &plen), CKR_OK);
    plen = sizeof pt;
    CHECK_EQ(f->C_DecryptFinal(s, pt, &plen), CKR_OK);
    CHECK(plen == 6 && memcmp(pt, "secret", 6) == 0);
    ct[2] ^= 1; /* a ciphertext that names another key is refused before the KMS sees it */
    CHECK_EQ(f->C_DecryptInit(s, &gcm, aes), CKR_OK);
    plen = sizeof pt;
    CHECK_EQ(f->C_Decrypt(s, ct, len, pt, &plen), CKR_ENCRYPTED_DATA_INVALID);
}

static void *signer(void *arg)
{
    (void)arg;
    CK_SESSION_HANDLE s = 0;
    int bad = f->C_OpenSession(P11_SLOT_ID, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK;
    CK_OBJECT_HANDLE priv = find_one(s, CKO_PRIVATE_KEY, FAKE_EC_ID);
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    for (int i = 0; i < 20 && !bad; i++) {
        uint8_t sig[64];
        CK_ULONG len = sizeof sig;
        bad |= f->C_SignInit(s, &m, priv) != CKR_OK || f->C_Sign(s, (CK_BYTE *)"x", 1, sig, &len) != CKR_OK;
    }
    bad |= f->C_CloseSession(s) != CKR_OK;
    return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, signer, NULL);
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        bad += (int)(intptr_t)r;
    }
    CHECK_EQ(bad, 0);
}

static void test_agent_failures(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE priv = find_one(s, CKO_PRIVATE_KEY, FAKE_EC_ID);
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    uint8_t d[32] = {1}, sig[64];
    CK_ULONG len = sizeof sig;
    fake_agent_set_mode(FAKE_OVERSIZED_FRAME);
    CHECK_EQ(f->C_SignInit(s, &m, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, d, 32, sig, &len), CKR_DEVICE_ERROR);
    fake_agent_set_mode(FAKE_GARBAGE);
    CHECK_EQ(f->C_SignInit(s, &m, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, d, 32, sig, &len), CKR_DEVICE_ERROR);
    fake_agent_set_mode(FAKE_NORMAL);
    CHECK_EQ(f->C_SignInit(s, &m, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, d, 32, sig, &len), CKR_OK); /* a fresh connection, logged in again */
    fake_agent_stop();
    CHECK_EQ(f->C_SignInit(s, &m, priv), CKR_OK);
    CHECK_EQ(f->C_Sign(s, d, 32, sig, &len), CKR_DEVICE_ERROR);
    CK_ULONG n = 5;
    CHECK_EQ(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    CHECK_EQ(n, 0);
}

int main(void)
{
    snprintf(sock_path, sizeof sock_path, "/tmp/kms-p11-test-%d.sock", (int)getpid());
    setenv("KMS_PKCS11_SOCKET", sock_path, 1);
    REQUIRE(fake_agent_start(sock_path) == 0);
    REQUIRE(C_GetFunctionList(&f) == CKR_OK);
    CHECK_EQ(f->version.major, 2);
    test_init_rules();
    test_slot_token();
    CK_SESSION_HANDLE s = test_login();
    test_objects(s);
    test_ecdsa(s);
    test_refusals(s);
    test_hmac(s);
    test_gcm(s);
    test_threads();
    test_agent_failures(s);
    CHECK_EQ(f->C_Logout(s), CKR_OK);
    CHECK_EQ(f->C_CloseSession(s), CKR_OK);
    CHECK_EQ(f->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
    CHECK_EQ(f->C_Finalize(NULL), CKR_OK);
    EVP_PKEY_free(fake_agent_ec_key());
    unlink(sock_path);
    return test_summary();
}
