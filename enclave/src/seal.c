/*
 * seal.c - sgx_seal_data / sgx_unseal_data semantics on platform_get_key (EGETKEY).
 * Layout (reference/dcap-ratls.md §4.2): key_request[512] | plain_text_offset u32 @512 |
 * reserved[12] | payload_size u32 @528 | reserved[12] | tag[16] @544 | payload @560 =
 * ciphertext[plain_text_offset] || aad[payload_size - plain_text_offset].
 */
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "platform.h"
#include "seal.h"

enum { OFF_PT_OFFSET = 512, OFF_PAYLOAD_SIZE = 528, OFF_TAG = 544, OFF_PAYLOAD = 560 };
enum { KR_NAME = 0, KR_POLICY = 2, KR_ISVSVN = 4, KR_CPUSVN = 8, KR_ATTRMASK = 24, KR_KEYID = 40,
       KR_MISCMASK = 72 };
#define KEYNAME_SEAL 4u
#define POLICY_MRSIGNER 0x2u
/* The SDK's default seal attribute mask: INIT, DEBUG, MODE64BIT... (0xFF0000000000000B). */
#define SEAL_FLAGS_MASK 0xFF0000000000000Bull
#define SEAL_MISC_MASK 0xF0000000u
/* Upper bound on what we ever seal: the domain key and its label. */
#define SEAL_MAX_PAYLOAD 4096u

static const uint8_t k_zero_iv[12];

static void put_le(uint8_t *p, uint64_t v, int n) { for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

kms_err_t kms_seal(const uint8_t *pt, size_t pt_len, const uint8_t *aad, size_t aad_len,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    if (pt_len == 0 || pt_len + aad_len > SEAL_MAX_PAYLOAD) return KMS_ERR_INVALID_ARGUMENT;
    size_t total = KMS_SEALED_SIZE(pt_len, aad_len);
    if (cap < total) return KMS_ERR_BUFFER_TOO_SMALL;
    kms_identity self;
    uint8_t key[16];
    kms_err_t err;
    memset(out, 0, OFF_PAYLOAD);
    KMS_GOTO_IF_ERR(err, platform_self_identity(&self), done);
    put_le(out + KR_NAME, KEYNAME_SEAL, 2);
    put_le(out + KR_POLICY, POLICY_MRSIGNER, 2);
    put_le(out + KR_ISVSVN, self.isvsvn, 2);
    memcpy(out + KR_CPUSVN, self.cpusvn, 16);
    put_le(out + KR_ATTRMASK, SEAL_FLAGS_MASK, 8);
    put_le(out + KR_MISCMASK, SEAL_MISC_MASK, 4);
    KMS_GOTO_IF_ERR(err, kms_random(out + KR_KEYID, 32), done);
    KMS_GOTO_IF_ERR(err, platform_get_key(out, key), done);
    put_le(out + OFF_PT_OFFSET, pt_len, 4);
    put_le(out + OFF_PAYLOAD_SIZE, pt_len + aad_len, 4);
    if (aad_len > 0) memcpy(out + OFF_PAYLOAD + pt_len, aad, aad_len);
    KMS_GOTO_IF_ERR(err, kms_aes_gcm_seal(key, 16, k_zero_iv, sizeof k_zero_iv, aad, aad_len, pt,
                                          pt_len, out + OFF_PAYLOAD, out + OFF_TAG), done);
    *out_len = total;
done:
    OPENSSL_cleanse(key, sizeof key);
    if (err != KMS_OK) OPENSSL_cleanse(out, total);
    return err;
}

/* Shape checks: every size consistent with len, reserved bytes zero, MRSIGNER seal request. */
static kms_err_t check_shape(const uint8_t *blob, size_t len, size_t *ct_len, size_t *aad_len)
{
    if (blob == NULL || len < OFF_PAYLOAD || len > OFF_PAYLOAD + SEAL_MAX_PAYLOAD) return KMS_ERR_SEAL_MALFORMED;
    uint32_t pt_off = get_le32(blob + OFF_PT_OFFSET), payload = get_le32(blob + OFF_PAYLOAD_SIZE);
    if (payload != len - OFF_PAYLOAD || pt_off == 0 || pt_off > payload ||
        !all_zero(blob + OFF_PT_OFFSET + 4, 12) || !all_zero(blob + OFF_PAYLOAD_SIZE + 4, 12))
        return KMS_ERR_SEAL_MALFORMED;
    if (get_le32(blob + KR_NAME) != (KEYNAME_SEAL | (POLICY_MRSIGNER << 16)))
        return KMS_ERR_SEAL_INVALID_POLICY;
    *ct_len = pt_off;
    *aad_len = payload - pt_off;
    return KMS_OK;
}

kms_err_t kms_unseal(const uint8_t *blob, size_t len, uint8_t *pt, size_t pt_cap, size_t *pt_len,
                     uint8_t *aad, size_t aad_cap, size_t *aad_len)
{
    size_t ct_len = 0, a_len = 0;
    KMS_RETURN_IF_ERR(check_shape(blob, len, &ct_len, &a_len));
    if (ct_len > pt_cap || a_len > aad_cap) return KMS_ERR_BUFFER_TOO_SMALL;
    uint8_t key[16];
    kms_err_t err = platform_get_key(blob, key);
    if (err != KMS_OK) goto done;
    const uint8_t *a = blob + OFF_PAYLOAD + ct_len;
    if (kms_aes_gcm_open(key, 16, k_zero_iv, sizeof k_zero_iv, a, a_len, blob + OFF_PAYLOAD, ct_len,
                         blob + OFF_TAG, KMS_GCM_TAG_LEN, pt) != KMS_OK) {
        OPENSSL_cleanse(pt, ct_len);
        err = KMS_ERR_SEAL_MAC_MISMATCH;
        goto done;
    }
    if (a_len > 0) memcpy(aad, a, a_len);
    *pt_len = ct_len;
    *aad_len = a_len;
done:
    OPENSSL_cleanse(key, sizeof key);
    return err;
}
