/*
 * fake_agent.h - a stand-in for `kms agent` in the module's C unit tests only: it serves
 * local.proto on a unix socket with a PIN ("1234"), three keys (a P-256 signing key with real
 * OpenSSL signatures, an AES key with a fake KMS-shaped ciphertext, an HMAC key) and records
 * what the module sent. The real agent is exercised by tests/integration/test_pkcs11_*.py.
 */
#ifndef KMS_P11_FAKE_AGENT_H
#define KMS_P11_FAKE_AGENT_H

#include <openssl/evp.h>

#include "kms/proto/agent/v1/local.pb.h"

#define FAKE_PIN "1234"
#define FAKE_EC_ID "11111111-1111-4111-8111-111111111111"
#define FAKE_AES_ID "22222222-2222-4222-8222-222222222222"
#define FAKE_MAC_ID "33333333-3333-4333-8333-333333333333"

enum fake_mode { FAKE_NORMAL = 0, FAKE_OVERSIZED_FRAME, FAKE_GARBAGE };

/* Starts serving on path (removed first). Returns 0, or -1. */
int fake_agent_start(const char *path);
/* Stops listening and closes every connection (the module sees the agent gone). */
void fake_agent_stop(void);
void fake_agent_set_mode(enum fake_mode mode);
/* The EC key's public half (owned by the fake). */
EVP_PKEY *fake_agent_ec_key(void);
/* A copy of the last enclave Request received, and how many Sign requests arrived. */
void fake_agent_last(Request *out);
unsigned fake_agent_sign_count(void);

#endif /* KMS_P11_FAKE_AGENT_H */
