/*
 * simcpu_internal.h - state shared by the simulated CPU's source files. Untrusted code
 * (it plays the hardware); not a public interface.
 */
#ifndef KMS_SIMCPU_INTERNAL_H
#define KMS_SIMCPU_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

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

struct sim_enclave {
    uint64_t eid;
    void *dl;
    int (*entry)(int index, void *ms);
    struct sim_platform platform;
    struct sim_identity id;
    unsigned int tcs_num;
    atomic_uint tcs_busy;
};

/* The enclave executing on this thread (set by EENTER), or NULL. */
const struct sim_enclave *simcpu_current(void);

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
