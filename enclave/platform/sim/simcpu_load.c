/*
 * simcpu_load.c - the simulated CPU's loader: EADD of the measured bytes and the enclave's
 * emulated ELRANGE. Untrusted: it plays the hardware and the SDK's loader (docs/simulation.md).
 *
 * The image is loaded from a sealed memfd holding exactly the bytes einit measured, so what
 * runs is what was measured and each enclave has its own copy of the image's static state.
 * One MAP_NORESERVE reservation holds a guard page, per TCS a guard page and a stack, and the
 * heap (2 MiB aligned). Images are unloaded in reverse load order: glibc reclaims a dlclosed
 * module's static TLS only at the end of the used area, and the image's jemalloc has
 * initial-exec TLS.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "simcpu_internal.h"

#define SIM_MAX_IMAGES 64
#define SIM_HEAP_ALIGN (2u * 1024u * 1024u)

static pthread_mutex_t g_load_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_image *g_stack[SIM_MAX_IMAGES]; /* loaded images, load order */
static size_t g_depth;

static size_t page_up(size_t n) { return (n + KMS_SIMCPU_PAGE - 1) & ~(size_t)(KMS_SIMCPU_PAGE - 1); }

static int valid_size(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v >= lo && v <= hi && v % KMS_SIMCPU_PAGE == 0;
}

/* Check config and fill in the defaults; 0 when usable. */
static int resolve_config(const kms_simcpu_config *in, kms_simcpu_config *out)
{
    if (in == NULL || in->struct_size != sizeof *in) return -1;
    *out = *in;
    if (out->heap_size == 0) out->heap_size = KMS_SIMCPU_HEAP_DEFAULT;
    if (out->stack_size == 0) out->stack_size = KMS_SIMCPU_STACK_DEFAULT;
    if (out->tcs_num == 0 || out->tcs_num > KMS_SIMCPU_MAX_TCS) return -1;
    if (!valid_size(out->heap_size, KMS_SIMCPU_HEAP_MIN, KMS_SIMCPU_HEAP_MAX)) return -1;
    return valid_size(out->stack_size, KMS_SIMCPU_STACK_MIN, KMS_SIMCPU_STACK_MAX) ? 0 : -1;
}

/* A sealed memfd with exactly `len` bytes of image; -1 on failure. */
static int sealed_copy(const uint8_t *image, size_t len)
{
    int fd = memfd_create("kms-enclave-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, image + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        done += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

struct phdr_query {
    uintptr_t bias;
    kms_simcpu_layout *out;
    int found;
};

/* dl_iterate_phdr callback: the PT_LOAD segments of the object loaded at q->bias. */
static int find_segments(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct phdr_query *q = arg;
    (void)size;
    if (info->dlpi_addr != q->bias || q->found) return 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || ph->p_memsz == 0) continue;
        uintptr_t s = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(KMS_SIMCPU_PAGE - 1);
        uintptr_t e = page_up(info->dlpi_addr + ph->p_vaddr + ph->p_memsz);
        if (q->out->segment_count < KMS_SIMCPU_MAX_SEGMENTS && (ph->p_flags & PF_R))
            q->out->segments[q->out->segment_count++] = (kms_simcpu_range){s, e - s};
        if (s < lo) lo = s;
        if (e > hi) hi = e;
    }
    if (hi > lo) {
        q->out->image = (kms_simcpu_range){lo, hi - lo};
        q->found = 1;
    }
    return q->found;
}

static kms_sgx_status_t image_layout(void *dl, kms_simcpu_layout *out)
{
    struct link_map *lm = NULL;
    if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL) return SGX_ERROR_INVALID_ENCLAVE;
    struct phdr_query q = {.bias = lm->l_addr, .out = out, .found = 0};
    dl_iterate_phdr(find_segments, &q);
    return q.found ? SGX_SUCCESS : SGX_ERROR_INVALID_ENCLAVE;
}

#ifndef KMS_SIM_BASELINE
/* guard | (guard | stack) x tcs | heap, heap 2 MiB aligned; all in one reservation. */
static kms_sgx_status_t reserve(struct sim_enclave *e, const kms_simcpu_config *c)
{
    size_t stacks = (size_t)c->tcs_num * ((size_t)c->stack_size + KMS_SIMCPU_PAGE);
    size_t len = SIM_HEAP_ALIGN + KMS_SIMCPU_PAGE + stacks + (size_t)c->heap_size;
    uint8_t *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return SGX_ERROR_OUT_OF_MEMORY;
    uintptr_t heap = ((uintptr_t)base + KMS_SIMCPU_PAGE + stacks + SIM_HEAP_ALIGN - 1) &
                     ~(uintptr_t)(SIM_HEAP_ALIGN - 1);
    uint8_t *first_stack = (uint8_t *)heap - stacks; /* below it: at least one guard page */
    e->img->reservation = base;
    e->img->reservation_size = len;
    if (mprotect((void *)heap, (size_t)c->heap_size, PROT_READ | PROT_WRITE) != 0)
        return SGX_ERROR_OUT_OF_MEMORY;
    for (uint32_t i = 0; i < c->tcs_num; i++) {
        uint8_t *s = first_stack + (size_t)i * ((size_t)c->stack_size + KMS_SIMCPU_PAGE) + KMS_SIMCPU_PAGE;
        if (mprotect(s, (size_t)c->stack_size, PROT_READ | PROT_WRITE) != 0) return SGX_ERROR_OUT_OF_MEMORY;
        e->tcs[i].stack = s;
        e->layout.stacks[i] = (kms_simcpu_range){(uintptr_t)s, (size_t)c->stack_size};
    }
    e->layout.reserved = (kms_simcpu_range){(uintptr_t)base, len};
    e->layout.heap = (kms_simcpu_range){heap, (size_t)c->heap_size};
    return SGX_SUCCESS;
}
#endif

/* Untrusted OCALL scratch, one block per TCS, in its own mapping (outside ELRANGE). */
static kms_sgx_status_t scratch(struct sim_enclave *e)
{
    size_t len = (size_t)e->tcs_num * KMS_SIMCPU_OCALLOC_SIZE;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return SGX_ERROR_OUT_OF_MEMORY;
    e->img->scratch = p;
    e->img->scratch_size = len;
    for (unsigned int i = 0; i < e->tcs_num; i++) e->tcs[i].scratch = p + (size_t)i * KMS_SIMCPU_OCALLOC_SIZE;
    return SGX_SUCCESS;
}

static void free_image(struct sim_image *img)
{
    if (img->dl != NULL) dlclose(img->dl);
    if (img->fd >= 0) close(img->fd);
    if (img->reservation != NULL) munmap(img->reservation, img->reservation_size);
    if (img->scratch != NULL) munmap(img->scratch, img->scratch_size);
    free(img);
}

static kms_sgx_status_t open_image(struct sim_image *img, const uint8_t *image, size_t len, const char **why)
{
    char path[64];
    img->fd = sealed_copy(image, len);
    if (img->fd < 0) {
        *why = "cannot copy the measured image into a sealed memfd";
        return SGX_ERROR_OUT_OF_MEMORY;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", img->fd);
    /* RTLD_LOCAL: the enclave's symbols stay out of the process namespace. */
    img->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (img->dl != NULL) return SGX_SUCCESS;
    const char *err = dlerror();
    if (err != NULL && strstr(err, "static TLS") != NULL) {
        *why = "no static TLS left for the enclave image: start the process with "
               "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=262144 (docs/simulation.md)";
        return SGX_ERROR_OUT_OF_MEMORY;
    }
    *why = "the image does not load";
    return SGX_ERROR_INVALID_ENCLAVE;
}

/* Unload every released image at the top of the load stack. Lock held. */
static void unload_released_locked(void)
{
    while (g_depth > 0 && g_stack[g_depth - 1]->released) {
        struct sim_image *top = g_stack[--g_depth];
        g_stack[g_depth] = NULL;
        free_image(top); /* dlclose first: the image's destructors still use its heap */
    }
}

static kms_sgx_status_t load_locked(struct sim_enclave *e, const uint8_t *image, size_t len,
                                    const kms_simcpu_config *c, const char **why)
{
    unload_released_locked();
    if (g_depth == SIM_MAX_IMAGES) {
        *why = "too many enclave images loaded or awaiting unload";
        return SGX_ERROR_OUT_OF_MEMORY;
    }
    kms_sgx_status_t rc = open_image(e->img, image, len, why);
    if (rc != SGX_SUCCESS) return rc;
    void *sym = dlsym(e->img->dl, "kms_enclave_entry");
    if (sym == NULL || image_layout(e->img->dl, &e->layout) != SGX_SUCCESS) {
        *why = "the image has no kms_enclave_entry";
        return SGX_ERROR_INVALID_ENCLAVE;
    }
    memcpy(&e->entry, &sym, sizeof sym);
#ifndef KMS_SIM_BASELINE
    rc = reserve(e, c);
#else
    (void)c;
#endif
    if (rc == SGX_SUCCESS) rc = scratch(e);
    if (rc != SGX_SUCCESS) {
        *why = "cannot reserve the enclave's memory";
        return rc;
    }
    g_stack[g_depth++] = e->img;
    return SGX_SUCCESS;
}

kms_sgx_status_t simcpu_load(struct sim_enclave *e, const uint8_t *image, size_t len,
                             const kms_simcpu_config *config, const char **why)
{
    kms_simcpu_config c;
    if (resolve_config(config, &c) != 0) {
        *why = "invalid enclave configuration (tcs_num, heap_size or stack_size)";
        return SGX_ERROR_INVALID_PARAMETER;
    }
    e->tcs_num = c.tcs_num;
    e->stack_size = (size_t)c.stack_size;
    e->layout.tcs_num = c.tcs_num;
    e->tcs = calloc(c.tcs_num, sizeof *e->tcs);
    e->img = calloc(1, sizeof *e->img);
    if (e->tcs == NULL || e->img == NULL) {
        free(e->tcs);
        free(e->img);
        return SGX_ERROR_OUT_OF_MEMORY;
    }
    e->img->fd = -1;
    pthread_mutex_lock(&g_load_lock);
    kms_sgx_status_t rc = load_locked(e, image, len, &c, why);
    pthread_mutex_unlock(&g_load_lock);
    if (rc != SGX_SUCCESS) {
        free_image(e->img); /* never pushed: it is the top of nothing */
        free(e->tcs);
        e->img = NULL;
        e->tcs = NULL;
    }
    return rc;
}

void simcpu_unload(struct sim_enclave *e)
{
    /* Deferred to the next load: a host thread that had entered the enclave may still be
     * running the image's thread-exit destructors (they were registered before the uninit
     * command deleted their keys), so the image stays mapped until another one is loaded. */
    pthread_mutex_lock(&g_load_lock);
    e->img->released = 1;
    pthread_mutex_unlock(&g_load_lock);
    free(e->tcs);
    e->tcs = NULL;
    e->img = NULL;
}
