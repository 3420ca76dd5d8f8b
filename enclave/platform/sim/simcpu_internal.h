/*
 * simcpu_internal.h - state shared by the simulated CPU's source files. Untrusted code
 * (it plays the hardware); not a public interface.
 */
#ifndef KMS_SIMCPU_INTERNAL_H
#define KMS_SIMCPU_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#include "kms/edge.h"
#include "kms/simcpu.h"

#define SIM_ATTR_INIT 0x1ull
#define SIM_ATTR_DEBUG 0x2ull
#define SIM_ATTR_MODE64BIT 0x4ull
#define SIM_ATTR_KSS 0x80ull

/* The per-machine secrets the real CPU keeps in fuses, here in a 0600 file. */
struct sim_platform {
    uint8_t fuse_key[16];    /* AES-128-CMAC key of every EGETKEY derivation */
    uint8_t owner_epoch[16];
    uint8_t cpusvn[16];      /* the platform's current CPUSVN (TCB of the "CPU") */
};

/* The identity EINIT established from the SIGSTRUCT and the image (the SECS). */
struct sim_identity {
    uint8_t mrenclave[32];
    uint8_t mrsigner[32];
    uint64_t attributes;     /* flags, INIT set by EINIT */
    uint64_t xfrm;
    uint32_t miscselect;
    uint16_t isvprodid;
    uint16_t isvsvn;
};

/* A loaded image and the memory that belongs to it; freed only when the image is unloaded
 * (images are unloaded in reverse load order, simcpu_load.c). */
struct sim_image {
    void *dl;              /* dlopen handle of /proc/self/fd/<fd> */
    int fd;                /* the sealed memfd holding the measured bytes (open while loaded) */
    uint8_t *reservation;  /* guard + stacks + heap (MAP_NORESERVE), or NULL (baseline) */
    size_t reservation_size;
    uint8_t *scratch;      /* untrusted OCALL scratch, KMS_SIMCPU_OCALLOC_SIZE per TCS */
    size_t scratch_size;
    int released;          /* the enclave was destroyed; unload when nothing is above it */
};

/* One thread slot: its stack (inside ELRANGE) and the contexts of the ECALL it runs. */
struct sim_tcs {
    ucontext_t host;       /* the host thread, suspended while the enclave runs */
    ucontext_t enclave;    /* the enclave, suspended while its OCALL runs on the host */
    const struct sim_enclave *e;
    const void *ocall_table;
    int index;             /* the ECALL */
    void *ms;
    int rc;
    int state;             /* TCS_RUNNING, TCS_OCALL, TCS_DONE */
    int ocall_index;       /* the OCALL the enclave asked for */
    void *ocall_ms;
    kms_sgx_status_t ocall_rc;
    uint8_t *stack;        /* lowest usable address; size = enclave stack_size */
    uint8_t *scratch;      /* KMS_SIMCPU_OCALLOC_SIZE bytes of untrusted memory */
    size_t scratch_used;
    atomic_int busy;
    void *fake_stack;      /* ASan fiber bookkeeping (sanitizer builds) */
    const void *host_bottom;
    size_t host_size;
};

struct sim_enclave {
    uint64_t eid;
    struct sim_image *img;
    int (*entry)(int index, void *ms);
    struct sim_platform platform;
    struct sim_identity id;
    unsigned int tcs_num;
    size_t stack_size;
    struct sim_tcs *tcs;   /* tcs_num slots */
    kms_simcpu_layout layout;
};

/* The registered enclave with id eid, or NULL. */
const struct sim_enclave *simcpu_find(uint64_t eid);

/* The enclave executing on this thread (set by EENTER), or NULL. */
const struct sim_enclave *simcpu_current(void);

/* Load the measured image bytes through a sealed memfd, reserve the enclave's memory and fill
 * e->img, e->entry, e->tcs and e->layout. On failure nothing stays loaded. */
kms_sgx_status_t simcpu_load(struct sim_enclave *e, const uint8_t *image, size_t len,
                             const kms_simcpu_config *config, const char **why);

/* Mark e's image released; the next load first unloads every released image at the top of
 * the load stack. */
void simcpu_unload(struct sim_enclave *e);

/* Open or create platform_dir/sgx-sim/root.secret (+ optional cpusvn file). */
kms_sgx_status_t simcpu_platform_open(const char *platform_dir, struct sim_platform *out,
                                      const char **why);

/* Check a 1808-byte SIGSTRUCT against the image's measurement; fill the identity. */
kms_sgx_status_t simcpu_verify_sigstruct(const uint8_t sigstruct[1808],
                                         const uint8_t mrenclave[32], struct sim_identity *out,
                                         const char **why);

/* AES-128-CMAC(fuse key, data): every simulated EGETKEY derivation. 0 on success. */
int simcpu_cmac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t out[16]);

#endif /* KMS_SIMCPU_INTERNAL_H */
