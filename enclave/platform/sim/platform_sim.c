/*
 * platform_sim.c - platform.h on the simulated CPU (libkms_simcpu.so): with elrange_sim.c (first
 * entry, ELRANGE) the only trusted files that call simcpu instructions. Protects nothing; see
 * docs/simulation.md.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "kms/simcpu.h"
#include "platform.h"

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

kms_err_t platform_self_identity(kms_identity *out)
{
    uint8_t report[432], data[64] = {0};
    if (simcpu_ereport(NULL, data, report) != SGX_SUCCESS) return KMS_ERR_PLATFORM;
    memcpy(out->cpusvn, report, 16);
    out->miscselect = (uint32_t)report[16] | ((uint32_t)report[17] << 8) | ((uint32_t)report[18] << 16) |
                      ((uint32_t)report[19] << 24);
    out->attributes = rd64(report + 48);
    out->xfrm = rd64(report + 56);
    memcpy(out->mrenclave, report + 64, 32);
    memcpy(out->mrsigner, report + 128, 32);
    out->isvprodid = (uint16_t)(report[256] | (report[257] << 8));
    out->isvsvn = (uint16_t)(report[258] | (report[259] << 8));
    return KMS_OK;
}

kms_err_t platform_get_key(const uint8_t key_request[512], uint8_t key[16])
{
    switch (simcpu_egetkey(key_request, key)) {
    case SGX_SUCCESS: return KMS_OK;
    case SGX_ERROR_INVALID_ISVSVN: return KMS_ERR_SEAL_INVALID_ISVSVN;
    case SGX_ERROR_INVALID_CPUSVN: return KMS_ERR_SEAL_INVALID_CPUSVN;
    case SGX_ERROR_INVALID_KEYNAME:
    case SGX_ERROR_INVALID_PARAMETER: return KMS_ERR_SEAL_INVALID_POLICY;
    default: return KMS_ERR_PLATFORM;
    }
}

kms_err_t platform_report(const uint8_t target_info[512], const uint8_t report_data[64],
                          uint8_t report[432])
{
    return simcpu_ereport(target_info, report_data, report) == SGX_SUCCESS ? KMS_OK : KMS_ERR_REPORT;
}

kms_err_t platform_ocall(int index, void *ms)
{
    return simcpu_ocall(index, ms) == SGX_SUCCESS ? KMS_OK : KMS_ERR_OCALL;
}

void *platform_ocalloc(size_t size) { return simcpu_ocalloc(size); }

void platform_ocfree(void) { simcpu_ocfree(); }

int platform_is_simulated(void) { return 1; }
