/*
 * heap_sim.c - the enclave heap on the simulated platform. Trusted (linked into the image).
 *
 * Every allocation of trusted code (ours, the static OpenSSL, nanopb, libgfshare) reaches
 * this file: the image is linked with -Wl,--wrap for malloc, calloc, realloc, free and the
 * other allocation functions those libraries reference, and the wrappers allocate with
 * Debian's jemalloc (libjemalloc_pic.a, linked into the image) from one arena whose extent
 * hooks hand out pages of the heap range the simulated CPU reserved inside ELRANGE. The hooks
 * are a page provider over a fixed range (the SGX SDK's sbrk over the enclave heap), not an
 * allocator: pages are handed out once, in order, and never given back (jemalloc retains and
 * reuses them). An exhausted heap makes the wrappers return NULL, which callers turn into
 * KMS_ERR_OUT_OF_MEMORY.
 *
 * What lives outside ELRANGE (docs/simulation.md): jemalloc's bootstrap metadata (base 0, the
 * extent radix tree, the tcache structures) and its thread-specific data (host TLS).
 *
 * Sanitizer builds keep the arena (what is tested is what runs) and poison by hand: exactly
 * [p, p + size) is addressable after an allocation, the slack up to the usable size and the
 * whole block after free are poisoned. ASan's leak checker cannot see arena allocations.
 *
 * A baseline build (KMS_SIM_BASELINE, benchmarks only) is not linked with --wrap: trusted
 * code then uses the host's glibc malloc, as before the arena existed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "heap_sim.h"

#ifndef KMS_SIM_BASELINE
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdatomic.h>

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_ASAN 1
#endif
#endif
#ifdef HEAP_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* jemalloc's thread-specific-data key (hidden in the archive, resolved inside the image). */
extern pthread_key_t je_tsd_tsd;

/* Options applied after MALLOC_CONF and /etc/malloc.conf (the host's), so those cannot turn
 * on background threads or extra automatic arenas inside the enclave. */
const char *malloc_conf_2_conf_harder = "narenas:1,background_thread:false,percpu_arena:disabled,tcache_max:524288";

/* Which tcache the wrappers use: 0 is jemalloc's automatic per-thread cache (measured in
 * tests/bench/bench_enclave.py against MALLOCX_TCACHE_NONE; docs/simulation.md). */
#ifndef KMS_HEAP_TCACHE_FLAG
#define KMS_HEAP_TCACHE_FLAG 0
#endif

static pthread_mutex_t g_brk_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t g_lo, g_hi, g_brk; /* the heap range and the first page never handed out */
static int g_flags;                 /* MALLOCX_ARENA(the heap's arena) | tcache choice */
static int g_ready;

/* Extent hook: the next `size` bytes of the heap at `alignment`, or NULL when they do not fit
 * (or when jemalloc asks for a specific address other than the next one). */
static void *pages_alloc(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment, bool *zero,
                         bool *commit, unsigned arena_ind)
{
    (void)hooks;
    (void)arena_ind;
    void *p = NULL;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) return NULL;
    pthread_mutex_lock(&g_brk_lock);
    uintptr_t start = (g_brk + alignment - 1) & ~(uintptr_t)(alignment - 1);
    if (start >= g_brk && start <= g_hi && size <= g_hi - start &&
        (new_addr == NULL || (uintptr_t)new_addr == start)) {
        g_brk = start + size;
        p = (void *)start;
    }
    pthread_mutex_unlock(&g_brk_lock);
    if (p != NULL) {
        *zero = true;   /* fresh anonymous pages, never handed out before */
        *commit = true; /* the whole heap is committed (SGX1: EPC pages are added at load) */
    }
    return p;
}

/* dalloc: refuse (jemalloc retains the pages); commit: always committed; decommit: refuse;
 * split/merge: allowed, the heap is one mapping. */
static bool pages_dalloc(extent_hooks_t *h, void *a, size_t s, bool c, unsigned i)
{
    (void)h, (void)a, (void)s, (void)c, (void)i;
    return true;
}
static void pages_destroy(extent_hooks_t *h, void *a, size_t s, bool c, unsigned i)
{
    (void)h, (void)a, (void)s, (void)c, (void)i;
}
static bool pages_commit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i)
{
    (void)h, (void)a, (void)s, (void)o, (void)l, (void)i;
    return false;
}
static bool pages_decommit(extent_hooks_t *h, void *a, size_t s, size_t o, size_t l, unsigned i)
{
    (void)h, (void)a, (void)s, (void)o, (void)l, (void)i;
    return true;
}
static bool pages_split(extent_hooks_t *h, void *a, size_t s, size_t sa, size_t sb, bool c, unsigned i)
{
    (void)h, (void)a, (void)s, (void)sa, (void)sb, (void)c, (void)i;
    return false;
}
static bool pages_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c, unsigned i)
{
    (void)h, (void)a, (void)sa, (void)b, (void)sb, (void)c, (void)i;
    return false;
}

static extent_hooks_t g_hooks = {
    .alloc = pages_alloc, .dalloc = pages_dalloc, .destroy = pages_destroy,
    .commit = pages_commit, .decommit = pages_decommit, .purge_lazy = NULL,
    .purge_forced = NULL, .split = pages_split, .merge = pages_merge,
};

/* At unload (registered before OpenSSL's cleanup, so it runs after it): drop jemalloc's TSD
 * key, whose destructor would otherwise be called on thread exit after the image is gone. */
void heap_sim_fini(void)
{
    static atomic_flag done = ATOMIC_FLAG_INIT;
    /* Once only: the key number may belong to someone else after it was deleted. */
    if (g_ready && !atomic_flag_test_and_set(&done)) pthread_key_delete(je_tsd_tsd);
}

static void heap_fini(void) { heap_sim_fini(); }

kms_err_t heap_sim_init(uintptr_t base, size_t size)
{
    if (base == 0 || size == 0 || base + size < base) return KMS_ERR_PLATFORM;
    g_lo = g_brk = base;
    g_hi = base + size;
    unsigned arena = 0;
    size_t len = sizeof arena;
    extent_hooks_t *hooks = &g_hooks;
    if (mallctl("arenas.create", &arena, &len, &hooks, sizeof hooks) != 0) return KMS_ERR_OUT_OF_MEMORY;
    g_flags = MALLOCX_ARENA(arena) | KMS_HEAP_TCACHE_FLAG;
    if (atexit(heap_fini) != 0) return KMS_ERR_PLATFORM;
    g_ready = 1;
    return KMS_OK;
}

int heap_sim_contains(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a >= g_lo && a < g_hi;
}

#ifdef HEAP_ASAN
static void *track(void *p, size_t n)
{
    if (p == NULL) return NULL;
    if (!heap_sim_contains(p)) abort(); /* an allocation outside the heap arena */
    size_t usable = sallocx(p, 0);
    ASAN_UNPOISON_MEMORY_REGION(p, n);
    ASAN_POISON_MEMORY_REGION((uint8_t *)p + n, usable - n);
    return p;
}
#define TRACK(p, n) track((p), (n))
#else
#define TRACK(p, n) (p)
#endif

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t count, size_t n);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
    if (!g_ready) return NULL;
    return TRACK(mallocx(n > 0 ? n : 1, g_flags), n);
}

void *__wrap_calloc(size_t count, size_t n)
{
    if (!g_ready || (n != 0 && count > SIZE_MAX / n)) return NULL;
    size_t total = count * n;
#ifdef HEAP_ASAN
    /* jemalloc's own memset would touch poisoned memory; zero after unpoisoning. */
    void *p = __wrap_malloc(total);
    if (p != NULL) memset(p, 0, total);
    return p;
#else
    return mallocx(total > 0 ? total : 1, g_flags | MALLOCX_ZERO);
#endif
}

void __wrap_free(void *p)
{
    if (p == NULL) return;
    if (!heap_sim_contains(p)) abort(); /* never hand jemalloc a pointer it did not make */
#ifdef HEAP_ASAN
    ASAN_POISON_MEMORY_REGION(p, sallocx(p, 0));
#endif
    dallocx(p, g_flags);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (p == NULL) return __wrap_malloc(n);
    if (n == 0) {
        __wrap_free(p);
        return NULL;
    }
    if (!heap_sim_contains(p)) abort();
#ifdef HEAP_ASAN
    /* The caller's size is where the poisoned slack starts; copy that much ourselves. */
    size_t usable = sallocx(p, 0);
    const uint8_t *poisoned = __asan_region_is_poisoned(p, usable);
    size_t old = poisoned != NULL ? (size_t)(poisoned - (const uint8_t *)p) : usable;
    void *q = __wrap_malloc(n);
    if (q == NULL) return NULL;
    memcpy(q, p, old < n ? old : n);
    __wrap_free(p);
    return q;
#else
    return rallocx(p, n, g_flags);
#endif
}

/* libcrypto's strdup callers free the copy with free(): it must come from the arena too. */
char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    if (p != NULL) memcpy(p, s, n);
    return p;
}

#else /* KMS_SIM_BASELINE: glibc's malloc, no wrappers */

kms_err_t heap_sim_init(uintptr_t base, size_t size)
{
    (void)base;
    (void)size;
    return KMS_OK;
}

int heap_sim_contains(const void *p)
{
    (void)p;
    return 0;
}

void heap_sim_fini(void) {}

#endif
