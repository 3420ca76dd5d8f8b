/*
 * simcpu.c - the simulated SGX CPU's ECREATE/EINIT (measure, verify the SIGSTRUCT, register)
 * and the platform's root secret; loading is in simcpu_load.c, EENTER/OCALL in simcpu_tcs.c.
 * Untrusted: it plays the hardware and the SDK's simulation runtime, and protects nothing (see
 * docs/simulation.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "simcpu_internal.h"

#define SIM_MAX_ENCLAVES 16
#define SIM_MAX_IMAGE_SIZE (64u * 1024u * 1024u)
#define SIM_ROOT_MAGIC "KMSSIMR1"
#define SIM_ROOT_FILE_SIZE 64
/* Default CPUSVN of a fresh simulated platform; a `cpusvn` file (32 hex digits) overrides. */
static const uint8_t k_default_cpusvn[16] = {0x0f, 0x0f, 0x02, 0x04, 0xff, 0x80, 0x06, 0x00};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_enclave *g_enclaves[SIM_MAX_ENCLAVES];
static uint64_t g_next_eid = 1;

unsigned int simcpu_abi_version(void) { return KMS_SIMCPU_ABI_VERSION; }


/* Read a whole regular file of at most max bytes into a malloc'd buffer. */
static kms_sgx_status_t read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SGX_ERROR_FILE_BAD_STATUS;
    struct stat st;
    kms_sgx_status_t rc = SGX_ERROR_FILE_BAD_STATUS;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (size_t)st.st_size > max)
        goto done;
    buf = malloc((size_t)st.st_size);
    if (buf == NULL) { rc = SGX_ERROR_OUT_OF_MEMORY; goto done; }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto done;
        got += (size_t)n;
    }
    *out = buf;
    *len = got;
    buf = NULL;
    rc = SGX_SUCCESS;
done:
    free(buf);
    close(fd);
    return rc;
}

/* Create the root secret file exclusively with mode 0600, fsync'd. */
static kms_sgx_status_t create_root(const char *path)
{
    uint8_t blob[SIM_ROOT_FILE_SIZE] = {0};
    memcpy(blob, SIM_ROOT_MAGIC, 8);
    if (RAND_priv_bytes(blob + 8, 32) != 1) return SGX_ERROR_UNEXPECTED;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    kms_sgx_status_t rc = SGX_ERROR_FILE_BAD_STATUS;
    if (fd < 0) {
        rc = errno == EEXIST ? SGX_SUCCESS : SGX_ERROR_FILE_BAD_STATUS; /* lost a race: use it */
        goto done;
    }
    if (write(fd, blob, sizeof blob) == (ssize_t)sizeof blob && fsync(fd) == 0) rc = SGX_SUCCESS;
    close(fd);
    if (rc != SGX_SUCCESS) unlink(path);
done:
    OPENSSL_cleanse(blob, sizeof blob);
    return rc;
}

static int parse_hex16(const char *s, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        unsigned int v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* Optional platform_dir/sgx-sim/cpusvn: 32 hex digits, the simulated CPU's TCB. */
static kms_sgx_status_t load_cpusvn(const char *dir, uint8_t out[16])
{
    char path[4096];
    memcpy(out, k_default_cpusvn, 16);
    if (snprintf(path, sizeof path, "%s/sgx-sim/cpusvn", dir) >= (int)sizeof path)
        return SGX_ERROR_INVALID_PARAMETER;
    uint8_t *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) return SGX_SUCCESS;
    kms_sgx_status_t rc = read_file(path, 64, &text, &len);
    if (rc != SGX_SUCCESS) return rc;
    char hex[33] = {0};
    rc = SGX_ERROR_FILE_BAD_STATUS;
    if (len >= 32) {
        memcpy(hex, text, 32);
        if (parse_hex16(hex, out) == 0) rc = SGX_SUCCESS;
    }
    free(text);
    return rc;
}

kms_sgx_status_t simcpu_platform_open(const char *platform_dir, struct sim_platform *out,
                                      const char **why)
{
    char dir[4096], path[4096];
    if (snprintf(dir, sizeof dir, "%s/sgx-sim", platform_dir) >= (int)sizeof dir ||
        snprintf(path, sizeof path, "%s/root.secret", dir) >= (int)sizeof path) {
        *why = "platform directory path too long";
        return SGX_ERROR_INVALID_PARAMETER;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        *why = "cannot create <data>/sgx-sim";
        return SGX_ERROR_FILE_BAD_STATUS;
    }
    if (access(path, F_OK) != 0 && create_root(path) != SGX_SUCCESS) {
        *why = "cannot create the simulated root secret";
        return SGX_ERROR_FILE_BAD_STATUS;
    }
    struct stat st;
    if (stat(path, &st) != 0 || (st.st_mode & 077) != 0) {
        *why = "simulated root secret must be mode 0600 (readable by its owner only)";
        return SGX_ERROR_FILE_BAD_STATUS;
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    kms_sgx_status_t rc = read_file(path, SIM_ROOT_FILE_SIZE, &blob, &len);
    if (rc != SGX_SUCCESS || len != SIM_ROOT_FILE_SIZE || memcmp(blob, SIM_ROOT_MAGIC, 8) != 0) {
        *why = "simulated root secret is unreadable or malformed";
        rc = SGX_ERROR_FILE_BAD_STATUS;
        goto done;
    }
    memcpy(out->fuse_key, blob + 8, 16);
    memcpy(out->owner_epoch, blob + 24, 16);
    rc = load_cpusvn(platform_dir, out->cpusvn);
    if (rc != SGX_SUCCESS) *why = "sgx-sim/cpusvn must hold 32 hex digits";
done:
    if (blob != NULL) OPENSSL_cleanse(blob, len);
    free(blob);
    return rc;
}

/* Read and measure the image, check its SIGSTRUCT (fills e->id); *image keeps the bytes
 * measured, which are the bytes loaded. */
static kms_sgx_status_t einit(const char *image_path, const char *sigstruct_path,
                              struct sim_enclave *e, uint8_t **image, size_t *image_len,
                              const char **why)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    uint8_t mrenclave[32];
    kms_sgx_status_t rc = read_file(image_path, SIM_MAX_IMAGE_SIZE, image, image_len);
    if (rc != SGX_SUCCESS) {
        *why = "cannot read the enclave image";
        return rc;
    }
    rc = read_file(sigstruct_path, 4096, &sig, &sig_len);
    if (rc != SGX_SUCCESS || sig_len != 1808) {
        *why = "cannot read a 1808-byte SIGSTRUCT";
        rc = SGX_ERROR_INVALID_SIGNATURE;
        goto done;
    }
    if (EVP_Digest(*image, *image_len, mrenclave, NULL, EVP_sha256(), NULL) != 1) {
        rc = SGX_ERROR_UNEXPECTED;
        goto done;
    }
    rc = simcpu_verify_sigstruct(sig, mrenclave, &e->id, why);
done:
    free(sig);
    return rc;
}

static kms_sgx_status_t register_enclave(struct sim_enclave *e, uint64_t *eid)
{
    kms_sgx_status_t rc = SGX_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < SIM_MAX_ENCLAVES; i++) {
        if (g_enclaves[i] == NULL) {
            e->eid = g_next_eid++;
            g_enclaves[i] = e;
            *eid = e->eid;
            rc = SGX_SUCCESS;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

kms_sgx_status_t simcpu_create_enclave(const char *platform_dir, const char *image_path,
                                       const char *sigstruct_path, unsigned int tcs_num,
                                       uint64_t *eid, const char **why)
{
    kms_simcpu_config config = {.struct_size = sizeof config, .tcs_num = tcs_num};
    return simcpu_create_enclave_ex(platform_dir, image_path, sigstruct_path, &config, eid, why);
}

kms_sgx_status_t simcpu_create_enclave_ex(const char *platform_dir, const char *image_path,
                                          const char *sigstruct_path, const kms_simcpu_config *config,
                                          uint64_t *eid, const char **why)
{
    const char *ignored;
    if (why == NULL) why = &ignored;
    *why = "ok";
    if (platform_dir == NULL || image_path == NULL || sigstruct_path == NULL || eid == NULL ||
        config == NULL || config->tcs_num == 0 || config->tcs_num > KMS_SIMCPU_MAX_TCS) {
        *why = "invalid parameter";
        return SGX_ERROR_INVALID_PARAMETER;
    }
    struct sim_enclave *e = calloc(1, sizeof *e);
    if (e == NULL) return SGX_ERROR_OUT_OF_MEMORY;
    uint8_t *image = NULL;
    size_t image_len = 0;
    kms_sgx_status_t rc = einit(image_path, sigstruct_path, e, &image, &image_len, why);
    if (rc == SGX_SUCCESS) rc = simcpu_platform_open(platform_dir, &e->platform, why);
    if (rc == SGX_SUCCESS) rc = simcpu_load(e, image, image_len, config, why);
    free(image);
    if (rc == SGX_SUCCESS) {
        rc = register_enclave(e, eid);
        if (rc == SGX_SUCCESS) return rc;
        *why = "too many enclaves";
        simcpu_unload(e);
    }
    OPENSSL_cleanse(e, sizeof *e);
    free(e);
    return rc;
}

kms_sgx_status_t simcpu_destroy_enclave(uint64_t eid)
{
    struct sim_enclave *e = NULL;
    /* The SDK's ECMD_UNINIT_ENCLAVE: the enclave releases its global state and per-thread keys
     * while it is still mapped (refused, harmlessly, on a thread that is inside an ECALL). */
    (void)simcpu_ecall(eid, KMS_ECALL_UNINIT, NULL, NULL);
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < SIM_MAX_ENCLAVES; i++) {
        if (g_enclaves[i] != NULL && g_enclaves[i]->eid == eid) {
            e = g_enclaves[i];
            g_enclaves[i] = NULL;
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (e == NULL) return SGX_ERROR_INVALID_ENCLAVE_ID;
    simcpu_unload(e);
    OPENSSL_cleanse(e, sizeof *e);
    free(e);
    return SGX_SUCCESS;
}

const struct sim_enclave *simcpu_find(uint64_t eid)
{
    const struct sim_enclave *e = NULL;
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < SIM_MAX_ENCLAVES; i++)
        if (g_enclaves[i] != NULL && g_enclaves[i]->eid == eid) e = g_enclaves[i];
    pthread_mutex_unlock(&g_lock);
    return e;
}

kms_sgx_status_t simcpu_enclave_layout(uint64_t eid, kms_simcpu_layout *out)
{
    if (out == NULL) return SGX_ERROR_INVALID_PARAMETER;
    const struct sim_enclave *e = simcpu_find(eid);
    if (e == NULL) return SGX_ERROR_INVALID_ENCLAVE_ID;
    memcpy(out, &e->layout, sizeof *out);
    return SGX_SUCCESS;
}
