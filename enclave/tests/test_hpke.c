/*
 * test_hpke.c - the enclave's HPKE (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM; enclave/src/crypto_hpke.c), built with ASan + UBSan.
 *
 *   test_hpke                        self tests (sizes, fresh ephemeral keys, refusals, wiping)
 *   test_hpke --kat SKE PKR INFO AAD PT ENC CT
 *                                    one known answer: seal PT with the given ephemeral key and
 *                                    compare enc and ciphertext || tag (all hex; the RFC's test
 *                                    vectors come from tests/integration/test_hpke.py at run time)
 *   test_hpke --seal PKR INFO AAD PT prints enc || ct || tag (hex) as the enclave seals, with a
 *                                    fresh ephemeral key, for another implementation to open
 * Prints "N passed, M failed" last (not in --seal mode); exits non-zero on failure.
 */
/* The unit objects this links are built with KMS_TEST_BUILD: declare its test-only entry too. */
#define KMS_TEST_BUILD 1

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "crypto.h"
#include "test_util.h"

#define MAX_HEX 512

/* Decode hex into out (cap bytes); -1 when it is not hex or too long. */
static long unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) return -1;
        out[i] = (uint8_t)b;
    }
    return (long)(n / 2);
}

static int known_answer(char **argv)
{
    uint8_t ske[32], pkr[32], info[MAX_HEX], aad[MAX_HEX], pt[MAX_HEX], enc[32], ct[MAX_HEX], out[2 * MAX_HEX];
    long info_len = unhex(argv[2], info, sizeof info), aad_len = unhex(argv[3], aad, sizeof aad);
    long pt_len = unhex(argv[4], pt, sizeof pt), ct_len = unhex(argv[6], ct, sizeof ct);
    REQUIRE(unhex(argv[0], ske, 32) == 32 && unhex(argv[1], pkr, 32) == 32 && unhex(argv[5], enc, 32) == 32);
    REQUIRE(info_len >= 0 && aad_len >= 0 && pt_len >= 0 && ct_len == pt_len + KMS_GCM_TAG_LEN);
    size_t len = 0;
    CHECK_EQ(kms_hpke_seal_with_ephemeral(ske, pkr, info, (size_t)info_len, aad, (size_t)aad_len, pt, (size_t)pt_len,
                                          out, sizeof out, &len), KMS_OK);
    CHECK_EQ(len, KMS_HPKE_ENC_LEN + (size_t)ct_len);
    CHECK(memcmp(out, enc, 32) == 0);
    CHECK(memcmp(out + 32, ct, (size_t)ct_len) == 0);
    return test_summary();
}

static int seal_once(char **argv)
{
    uint8_t pkr[32], info[MAX_HEX], aad[MAX_HEX], pt[MAX_HEX], out[2 * MAX_HEX];
    long info_len = unhex(argv[1], info, sizeof info), aad_len = unhex(argv[2], aad, sizeof aad);
    long pt_len = unhex(argv[3], pt, sizeof pt);
    size_t len = 0;
    if (unhex(argv[0], pkr, 32) != 32 || info_len < 0 || aad_len < 0 || pt_len < 0 ||
        kms_hpke_seal(pkr, info, (size_t)info_len, aad, (size_t)aad_len, pt, (size_t)pt_len, out, sizeof out, &len) !=
            KMS_OK)
        return 1;
    for (size_t i = 0; i < len; i++) printf("%02x", out[i]);
    printf("\n");
    return 0;
}

static void test_self(void)
{
    EVP_PKEY *r = NULL;
    uint8_t pkr[32], out[128], again[128], zero[32] = {0};
    const uint8_t info[] = "enclave-kms test", pt[32] = {1, 2, 3};
    size_t len = 0, len2 = 0;
    REQUIRE(kms_pkey_generate(KMS_PKEY_X25519, &r) == KMS_OK && kms_x25519_raw_public(r, pkr) == KMS_OK);
    /* Sizes, and a fresh ephemeral key every time: two seals of one message differ entirely. */
    CHECK_EQ(kms_hpke_seal(pkr, info, sizeof info, NULL, 0, pt, sizeof pt, out, sizeof out, &len), KMS_OK);
    CHECK_EQ(len, 32 + sizeof pt + 16);
    CHECK_EQ(kms_hpke_seal(pkr, info, sizeof info, NULL, 0, pt, sizeof pt, again, sizeof again, &len2), KMS_OK);
    CHECK(len2 == len && memcmp(out, again, 32) != 0 && memcmp(out + 32, again + 32, len - 32) != 0);
    /* A given ephemeral key is deterministic (the known-answer path), and its enc is its public key. */
    uint8_t ske[32] = {7};
    CHECK_EQ(kms_hpke_seal_with_ephemeral(ske, pkr, info, sizeof info, NULL, 0, pt, sizeof pt, out, sizeof out, &len),
             KMS_OK);
    CHECK_EQ(kms_hpke_seal_with_ephemeral(ske, pkr, info, sizeof info, NULL, 0, pt, sizeof pt, again, sizeof again,
                                          &len2), KMS_OK);
    CHECK(len == len2 && memcmp(out, again, len) == 0);
    /* info, aad and pt each change the ciphertext. */
    CHECK_EQ(kms_hpke_seal_with_ephemeral(ske, pkr, info, sizeof info - 1, NULL, 0, pt, sizeof pt, again,
                                          sizeof again, &len2), KMS_OK);
    CHECK(memcmp(out, again, 32) == 0 && memcmp(out + 32, again + 32, len - 32) != 0);
    CHECK_EQ(kms_hpke_seal_with_ephemeral(ske, pkr, info, sizeof info, pt, 1, pt, sizeof pt, again, sizeof again,
                                          &len2), KMS_OK);
    CHECK(memcmp(out + 32 + sizeof pt, again + 32 + sizeof pt, 16) != 0);
    /* Refusals: a low-order recipient (all-zero DH), short output, long info, NULLs; out wiped. */
    memset(out, 0xaa, sizeof out);
    CHECK_EQ(kms_hpke_seal(zero, info, sizeof info, NULL, 0, pt, sizeof pt, out, sizeof out, &len), KMS_ERR_INVALID_KEY);
    CHECK(memcmp(out, zero, 32) == 0);
    CHECK_EQ(kms_hpke_seal(pkr, info, sizeof info, NULL, 0, pt, sizeof pt, out, 32 + sizeof pt + 15, &len),
             KMS_ERR_BUFFER_TOO_SMALL);
    uint8_t long_info[KMS_HPKE_MAX_INFO + 1] = {0};
    CHECK_EQ(kms_hpke_seal(pkr, long_info, sizeof long_info, NULL, 0, pt, sizeof pt, out, sizeof out, &len),
             KMS_ERR_INVALID_ARGUMENT);
    CHECK_EQ(kms_hpke_seal(NULL, info, sizeof info, NULL, 0, pt, sizeof pt, out, sizeof out, &len),
             KMS_ERR_INVALID_ARGUMENT);
    CHECK_EQ(kms_hpke_seal(pkr, info, sizeof info, NULL, 0, NULL, 1, out, sizeof out, &len), KMS_ERR_INVALID_ARGUMENT);
    /* An empty message seals to enc || tag. */
    CHECK_EQ(kms_hpke_seal(pkr, NULL, 0, NULL, 0, NULL, 0, out, sizeof out, &len), KMS_OK);
    CHECK_EQ(len, 48);
    CHECK(ERR_peek_error() == 0);
    EVP_PKEY_free(r);
}

int main(int argc, char **argv)
{
    if (argc == 9 && strcmp(argv[1], "--kat") == 0) return known_answer(argv + 2);
    if (argc == 6 && strcmp(argv[1], "--seal") == 0) return seal_once(argv + 2);
    if (argc != 1) {
        fprintf(stderr, "usage: test_hpke [--kat SKE PKR INFO AAD PT ENC CT | --seal PKR INFO AAD PT]\n");
        return 2;
    }
    test_self();
    return test_summary();
}
