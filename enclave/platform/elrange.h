/*
 * elrange.h - the enclave's address range (ELRANGE), as the edge checks it. The one header
 * that holds these predicates. On hardware they are the SDK's functions (sgx_trts.h); on the
 * simulated platform (platform/sim/elrange_sim.c) they check the ranges the simulated CPU
 * reported at first entry: the image as the loader mapped it and the reservation that holds
 * the stacks and the heap.
 *
 * Semantics (those of sgx_is_within_enclave / sgx_is_outside_enclave): size 0 counts as one
 * byte; a range [addr, addr + size - 1] that wraps around the address space is neither within
 * nor outside (both return 0). Before the ranges are known (platform_enter not yet run, or it
 * failed) both return 0, so every check fails closed. Thread-safe, no allocation.
 */
#ifndef KMS_ELRANGE_H
#define KMS_ELRANGE_H

#ifdef KMS_UNTRUSTED_BUILD
#error "elrange.h is trusted-only"
#endif

#include <stddef.h>

#ifdef KMS_PLATFORM_SGX
#include <sgx_trts.h>
#define is_within_enclave(addr, size) sgx_is_within_enclave((addr), (size))
#define is_outside_enclave(addr, size) sgx_is_outside_enclave((addr), (size))
#else
/* 1 when [addr, addr + size) lies wholly inside one range of ELRANGE. */
int is_within_enclave(const void *addr, size_t size);
/* 1 when [addr, addr + size) does not overflow and intersects no range of ELRANGE. */
int is_outside_enclave(const void *addr, size_t size);
#endif

#endif /* KMS_ELRANGE_H */
