/*
 * stub_enclave.c - a TEST-ONLY enclave image (see stub_enclave.h): its entry point runs one
 * simulated-CPU instruction per ECALL. Built twice with different STUB_VARIANT values so
 * that two images of one signer have different MRENCLAVEs.
 */
#include "kms/export.h"
#include "kms/simcpu.h"
#include "stub_enclave.h"

#ifndef STUB_VARIANT
#error "build with -DSTUB_VARIANT=<n>"
#endif

KMS_EXPORT int kms_enclave_entry(int index, void *ms);

int kms_enclave_entry(int index, void *ms)
{
    if (ms == 0) return SGX_ERROR_INVALID_PARAMETER;
    switch (index) {
    case STUB_ECALL_EGETKEY: {
        stub_ms_egetkey_t *m = ms;
        m->status = simcpu_egetkey(m->key_request, m->key);
        return SGX_SUCCESS;
    }
    case STUB_ECALL_EREPORT: {
        stub_ms_ereport_t *m = ms;
        m->status = simcpu_ereport(m->has_target ? m->target_info : 0, m->report_data, m->report);
        return SGX_SUCCESS;
    }
    case STUB_ECALL_OCALL: {
        stub_ms_ocall_t *m = ms;
        m->status = simcpu_ocall(m->index, m->ms);
        return SGX_SUCCESS;
    }
    case STUB_ECALL_VARIANT:
        ((stub_ms_variant_t *)ms)->variant = STUB_VARIANT;
        return SGX_SUCCESS;
    default:
        return SGX_ERROR_INVALID_FUNCTION;
    }
}
