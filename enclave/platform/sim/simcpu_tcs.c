/*
 * simcpu_tcs.c - the simulated CPU's control transfer: EENTER onto a TCS stack inside the
 * enclave's ELRANGE, EEXIT to the host's own stack for an OCALL and ERESUME after it, and the
 * untrusted OCALL scratch (sgx_ocalloc). Untrusted: it plays the hardware and the SDK's
 * runtime, and protects nothing (docs/simulation.md).
 *
 * Each ECALL runs in a ucontext on the stack of a free TCS (makecontext/swapcontext); an OCALL
 * switches back to the host thread's context, runs the host's function there, and switches
 * into the enclave again. Sanitizer builds tell ASan about every switch (fiber annotations).
 * A baseline build (KMS_SIM_BASELINE, benchmarks only) runs the enclave on the host stack.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <ucontext.h>

#include "simcpu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#define FIBER_START(save, bottom, size) __sanitizer_start_switch_fiber((save), (bottom), (size))
#define FIBER_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber((save), (bottom), (size))
#else
#define FIBER_START(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define FIBER_FINISH(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#endif

enum { TCS_RUNNING = 0, TCS_OCALL = 1, TCS_DONE = 2 };

static __thread const struct sim_enclave *t_current;
static __thread struct sim_tcs *t_tcs;
static __thread int t_in_ocall; /* the host is running an OCALL on this thread */

/* Instructions are refused while the host runs an OCALL: it is outside the enclave then. */
const struct sim_enclave *simcpu_current(void) { return t_in_ocall ? NULL : t_current; }

static struct sim_tcs *acquire_tcs(const struct sim_enclave *e)
{
    for (unsigned int i = 0; i < e->tcs_num; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&e->tcs[i].busy, &expected, 1)) return &e->tcs[i];
    }
    return NULL;
}

/* Run the host's OCALL function for the enclave (on the host stack). */
static kms_sgx_status_t run_ocall(struct sim_tcs *tcs)
{
    const kms_ocall_table_t *table = tcs->ocall_table;
    int index = tcs->ocall_index;
    if (table == NULL) return SGX_ERROR_OCALL_NOT_ALLOWED;
    if (index < 0 || (size_t)index >= table->nr_ocall || (size_t)index >= KMS_OCALL_COUNT ||
        table->table[index] == NULL)
        return SGX_ERROR_INVALID_FUNCTION;
    t_in_ocall = 1;
    kms_sgx_status_t rc = table->table[index](tcs->ocall_ms);
    t_in_ocall = 0;
    return rc;
}

#ifndef KMS_SIM_BASELINE
/* The first frame on the TCS stack: the enclave's entry, then EEXIT for good. */
static void tcs_main(void)
{
    struct sim_tcs *tcs = t_tcs;
    FIBER_FINISH(NULL, &tcs->host_bottom, &tcs->host_size);
    tcs->rc = tcs->e->entry(tcs->index, tcs->ms);
    tcs->state = TCS_DONE;
    FIBER_START(NULL, tcs->host_bottom, tcs->host_size); /* this fiber ends: drop its fake stack */
    setcontext(&tcs->host);
}

/* EENTER / ERESUME: run the enclave until it finishes or asks for an OCALL. */
static int switch_in(struct sim_tcs *tcs)
{
    void *fake = NULL;
    FIBER_START(&fake, tcs->stack, tcs->e->stack_size);
    int rc = swapcontext(&tcs->host, &tcs->enclave);
    FIBER_FINISH(fake, NULL, NULL);
    return rc;
}

static kms_sgx_status_t run_on_tcs(struct sim_tcs *tcs)
{
    if (getcontext(&tcs->enclave) != 0) return SGX_ERROR_UNEXPECTED;
    tcs->enclave.uc_stack.ss_sp = tcs->stack;
    tcs->enclave.uc_stack.ss_size = tcs->e->stack_size;
    tcs->enclave.uc_link = NULL;
    makecontext(&tcs->enclave, tcs_main, 0);
    for (;;) {
        if (switch_in(tcs) != 0) return SGX_ERROR_UNEXPECTED;
        if (tcs->state == TCS_DONE) return (kms_sgx_status_t)tcs->rc;
        tcs->ocall_rc = run_ocall(tcs);
        tcs->state = TCS_RUNNING;
    }
}
#endif

kms_sgx_status_t simcpu_ecall(uint64_t eid, int index, const void *ocall_table, void *ms)
{
    if (t_current != NULL) return SGX_ERROR_ECALL_NOT_ALLOWED;
    const struct sim_enclave *e = simcpu_find(eid);
    if (e == NULL) return SGX_ERROR_INVALID_ENCLAVE_ID;
    struct sim_tcs *tcs = acquire_tcs(e);
    if (tcs == NULL) return SGX_ERROR_OUT_OF_TCS;
    tcs->e = e;
    tcs->ocall_table = ocall_table;
    tcs->index = index;
    tcs->ms = ms;
    tcs->rc = SGX_ERROR_UNEXPECTED;
    tcs->state = TCS_RUNNING;
    tcs->scratch_used = 0;
    t_current = e;
    t_tcs = tcs;
#ifdef KMS_SIM_BASELINE
    kms_sgx_status_t rc = (kms_sgx_status_t)e->entry(index, ms);
#else
    kms_sgx_status_t rc = run_on_tcs(tcs);
#endif
    t_current = NULL;
    t_tcs = NULL;
    atomic_store(&tcs->busy, 0);
    return rc;
}

kms_sgx_status_t simcpu_ocall(int index, void *ms)
{
    struct sim_tcs *tcs = t_tcs;
    if (simcpu_current() == NULL || tcs == NULL) return SGX_ERROR_OCALL_NOT_ALLOWED;
    tcs->ocall_index = index;
    tcs->ocall_ms = ms;
#ifdef KMS_SIM_BASELINE
    return run_ocall(tcs);
#else
    tcs->state = TCS_OCALL;
    FIBER_START(&tcs->fake_stack, tcs->host_bottom, tcs->host_size);
    int rc = swapcontext(&tcs->enclave, &tcs->host);
    FIBER_FINISH(tcs->fake_stack, &tcs->host_bottom, &tcs->host_size);
    return rc == 0 ? tcs->ocall_rc : SGX_ERROR_UNEXPECTED;
#endif
}

void *simcpu_ocalloc(size_t size)
{
    struct sim_tcs *tcs = t_tcs;
    if (simcpu_current() == NULL || tcs == NULL) return NULL;
    size_t need = size == 0 ? 16 : (size + 15) & ~(size_t)15;
    if (need < size || need > KMS_SIMCPU_OCALLOC_SIZE - tcs->scratch_used) return NULL;
    void *p = tcs->scratch + tcs->scratch_used;
    tcs->scratch_used += need;
    return p;
}

void simcpu_ocfree(void)
{
    struct sim_tcs *tcs = t_tcs;
    if (simcpu_current() != NULL && tcs != NULL) tcs->scratch_used = 0;
}

kms_sgx_status_t simcpu_self_layout(kms_simcpu_layout *out)
{
    const struct sim_enclave *e = simcpu_current();
    if (e == NULL) return SGX_ERROR_INVALID_STATE;
    if (out == NULL) return SGX_ERROR_INVALID_PARAMETER;
    memcpy(out, &e->layout, sizeof *out);
    return SGX_SUCCESS;
}
