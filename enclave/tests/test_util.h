/*
 * test_util.h - assertion counters for the host-side C tests. Each test program includes it
 * once, runs its checks and ends with `return test_summary();`, which prints
 * "N passed, M failed" as the last line and returns the exit status (non-zero on failure).
 */
#ifndef KMS_TEST_UTIL_H
#define KMS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

static int g_pass, g_fail;

/* A check: counts, and reports the expression on failure. */
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            g_pass++;                                                                 \
        } else {                                                                      \
            g_fail++;                                                                 \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                             \
    } while (0)

/* got == want, both integers; reports both values (hex too, for sgx_status_t). */
#define CHECK_EQ(got, want)                                                           \
    do {                                                                              \
        long long got_ = (long long)(got), want_ = (long long)(want);                 \
        if (got_ == want_) {                                                          \
            g_pass++;                                                                 \
        } else {                                                                      \
            g_fail++;                                                                 \
            fprintf(stderr, "%s:%d: FAILED: %s = %lld (0x%llx), want %s = %lld (0x%llx)\n", \
                    __FILE__, __LINE__, #got, got_, (unsigned long long)got_, #want,  \
                    want_, (unsigned long long)want_);                                \
        }                                                                             \
    } while (0)

/* A precondition of the rest of the program: abort the run when it does not hold. */
#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: REQUIRED: %s\n", __FILE__, __LINE__, #cond);      \
            printf("%d passed, %d failed\n", g_pass, g_fail + 1);                     \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static inline int test_summary(void)
{
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}

#endif /* KMS_TEST_UTIL_H */
