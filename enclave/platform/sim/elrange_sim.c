/*
 * elrange_sim.c - first entry into the enclave on the simulated platform, and the ELRANGE
 * predicates of platform/elrange.h. Trusted (linked into the image).
 *
 * At the first ECALL (pthread_once) the enclave reads its layout from the simulated CPU (as
 * the SDK's runtime reads its own layout on hardware), checks that its code and the stack it
 * runs on lie inside it, makes the heap range its only heap (heap_sim.c), and initialises the
 * static OpenSSL without reading any configuration file. Until that succeeded every
 * is_outside_enclave / is_within_enclave is 0 and every ECALL fails.
 */
#include <pthread.h>
#include <stdint.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "elrange.h"
#include "heap_sim.h"
#include "kms/simcpu.h"
#include "platform.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static kms_err_t g_enter_err = KMS_ERR_PLATFORM;
static kms_simcpu_range g_ranges[2]; /* the image; the reservation (stacks + heap) */
static int g_range_count;

static int contains(const kms_simcpu_range *r, uintptr_t a)
{
    return r->size > 0 && a >= r->base && a - r->base < r->size;
}

static int range_within(const kms_simcpu_range *r, uintptr_t lo, uintptr_t last)
{
    return contains(r, lo) && contains(r, last);
}

int is_within_enclave(const void *addr, size_t size)
{
    uintptr_t lo = (uintptr_t)addr, n = size > 0 ? size : 1;
    if (lo + (n - 1) < lo) return 0;
    for (int i = 0; i < g_range_count; i++)
        if (range_within(&g_ranges[i], lo, lo + (n - 1))) return 1;
    return 0;
}

int is_outside_enclave(const void *addr, size_t size)
{
    uintptr_t lo = (uintptr_t)addr, n = size > 0 ? size : 1;
    if (g_range_count == 0 || lo + (n - 1) < lo) return 0;
    uintptr_t last = lo + (n - 1);
    for (int i = 0; i < g_range_count; i++) {
        const kms_simcpu_range *r = &g_ranges[i];
        if (r->size > 0 && lo <= r->base + (r->size - 1) && last >= r->base) return 0;
    }
    return 1;
}

/* The layout must hold this image's code and (unless the CPU is a baseline one) the stack
 * this ECALL runs on, and a heap. */
static kms_err_t check_layout(const kms_simcpu_layout *l)
{
    int here = 0;
    void *code = (void *)(uintptr_t)&platform_enter;
    if (!contains(&l->image, (uintptr_t)code)) return KMS_ERR_PLATFORM;
#ifndef KMS_SIM_BASELINE
    if (!contains(&l->reserved, (uintptr_t)&here) || l->heap.size == 0 ||
        !contains(&l->reserved, l->heap.base) || !contains(&l->reserved, l->heap.base + l->heap.size - 1))
        return KMS_ERR_PLATFORM;
#endif
    (void)here;
    return KMS_OK;
}

/* The once-control's body when the enclave is destroyed before it ever entered. */
static void first_entry_refused(void) { g_enter_err = KMS_ERR_PLATFORM; }

static void first_entry(void)
{
    kms_simcpu_layout layout;
    if (simcpu_self_layout(&layout) != SGX_SUCCESS || check_layout(&layout) != KMS_OK) return;
    g_ranges[0] = layout.image;
    g_ranges[1] = layout.reserved;
    g_range_count = 2;
    kms_err_t err = heap_sim_init(layout.heap.base, layout.heap.size);
    /* No openssl.cnf, no engines or providers named by the host's configuration. */
    if (err == KMS_OK &&
        (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1 ||
         OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1))
        err = KMS_ERR_PLATFORM;
    if (err != KMS_OK) {
        g_range_count = 0;
        g_enter_err = err;
        return;
    }
    g_enter_err = KMS_OK;
}

kms_err_t platform_enter(void)
{
    if (pthread_once(&g_once, first_entry) != 0) return KMS_ERR_PLATFORM;
    return g_enter_err;
}

void platform_exit(void)
{
    /* Runs the first-entry once-control too, so a later ECALL cannot start the enclave again. */
    (void)pthread_once(&g_once, first_entry_refused);
    if (g_enter_err != KMS_OK) return;
    g_enter_err = KMS_ERR_PLATFORM;
    g_range_count = 0;
#ifndef KMS_SIM_BASELINE /* the baseline shares the host's libcrypto: leave it alone */
    OPENSSL_cleanup(); /* its atexit registration becomes a no-op */
#endif
    heap_sim_fini();
}
