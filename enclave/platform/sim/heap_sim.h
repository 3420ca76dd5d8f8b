/*
 * heap_sim.h - the enclave heap of the simulated platform (heap_sim.c). Trusted, platform
 * files only.
 */
#ifndef KMS_HEAP_SIM_H
#define KMS_HEAP_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "kms/errors.h"

/*
 * Serve every allocation of trusted code from [base, base + size) (the heap range of ELRANGE).
 * Called once, at first entry, before any allocation; not thread-safe (platform_enter runs it
 * under pthread_once). Errors: KMS_ERR_PLATFORM (empty or wrapping range),
 * KMS_ERR_OUT_OF_MEMORY (jemalloc could not create the arena).
 */
kms_err_t heap_sim_init(uintptr_t base, size_t size);

/* Delete jemalloc's thread-specific-data key (once), so that no thread exit calls into the
 * image any more; allocations keep working. Called at destroy and at unload. */
void heap_sim_fini(void);

/* 1 when p lies in the heap range. Thread-safe after heap_sim_init. */
int heap_sim_contains(const void *p);

#endif /* KMS_HEAP_SIM_H */
