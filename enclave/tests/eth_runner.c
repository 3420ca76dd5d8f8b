/*
 * eth_runner - feeds BLS12-381 and SSZ cases to the enclave's own Ethereum code (eth_bls.c, eth_ssz.c).
 * Test code, built with ASan + UBSan (make build/test/eth_runner), linked with the same libblst.a as the
 * enclave. Driven by tests/eth/test_eth_vectors.py, which converts the vector JSON files to lines:
 *
 *   sign   ID SK MSG           -> "ID SIG" (hex) or "ID invalid" (a secret key blst refuses)
 *   verify ID PK MSG SIG       -> "ID true|false"
 *   g1     ID BYTES            -> "ID true|false" (decodes to a point of G1)
 *   g2     ID BYTES            -> "ID true|false"
 *   root   ID TYPE SSZ FORK GVR -> "ID OBJECT_ROOT SIGNING_ROOT" or "ID invalid" (TYPE: EthMessageType number)
 *
 * Byte strings in hex, "-" for an empty one. Exit status 0 when every line was read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eth_bls.h"
#include "eth_ssz.h"

#define LINE_MAX_LEN (2 * 20000)

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);
    if (strcmp(s, "-") == 0) return 0;
    if (n % 2 != 0 || n / 2 > cap) return (size_t)-1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return (size_t)-1;
        out[i] = (uint8_t)v;
    }
    return n / 2;
}

static void hexout(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static void run(char *op, char *id, char **f, int nf)
{
    static uint8_t a[20000], b[20000], c[200], d[64];
    size_t na = nf > 0 ? unhex(f[0], a, sizeof a) : (size_t)-1, nb = nf > 1 ? unhex(f[1], b, sizeof b) : 0;
    if (na == (size_t)-1 || nb == (size_t)-1) {
        printf("%s error\n", id);
        return;
    }
    if (strcmp(op, "sign") == 0) {
        uint8_t sig[KMS_BLS_SIGNATURE_LEN];
        if (kms_bls_check_secret(a, na) != KMS_OK || kms_bls_sign(a, b, nb, sig) != KMS_OK) {
            printf("%s invalid\n", id);
            return;
        }
        printf("%s ", id), hexout(sig, sizeof sig), printf("\n");
    } else if (strcmp(op, "verify") == 0 && nf == 3) {
        size_t nc = unhex(f[2], c, sizeof c);
        int ok = na == KMS_BLS_PUBLIC_LEN && nc == KMS_BLS_SIGNATURE_LEN && kms_bls_verify(a, b, nb, c);
        printf("%s %s\n", id, ok ? "true" : "false");
    } else if (strcmp(op, "g1") == 0 || strcmp(op, "g2") == 0) {
        int ok = op[1] == '1' ? kms_bls_g1_decodes(a, na) : kms_bls_g2_decodes(a, na);
        printf("%s %s\n", id, ok ? "true" : "false");
    } else if (strcmp(op, "root") == 0 && nf == 4) {
        kms_eth_object o;
        uint8_t domain[32], root[32];
        int type = atoi(f[0]);
        na = unhex(f[1], a, sizeof a);
        size_t nc = unhex(f[2], c, sizeof c), nd = unhex(f[3], d, sizeof d);
        if (na == (size_t)-1 || nc != 4 || nd != 32 || kms_eth_object_parse((EthMessageType)type, a, na, &o) != KMS_OK ||
            kms_eth_domain((EthMessageType)type, c, d, domain) != KMS_OK ||
            kms_eth_signing_root(o.root, domain, root) != KMS_OK) {
            printf("%s invalid\n", id);
            return;
        }
        printf("%s ", id), hexout(o.root, 32), printf(" "), hexout(root, 32), printf("\n");
    } else {
        printf("%s error\n", id);
    }
}

int main(void)
{
    static char line[LINE_MAX_LEN];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *f[8], *save = NULL;
        int n = 0;
        for (char *t = strtok_r(line, " \n", &save); t != NULL && n < 8; t = strtok_r(NULL, " \n", &save)) f[n++] = t;
        if (n >= 2) run(f[0], f[1], f + 2, n - 2);
    }
    return 0;
}
