/* handlers_admin.c - identity, the domain key, and random bytes. */
#include <string.h>

#include "audit.h"
#include "crypto.h"
#include "principals.h"
#include "handlers.h"
#include "domain.h"
#include "kms/limits.h"
#include "platform.h"
#include "ratls.h"
#include "replicas.h"
#include "statelog.h"

#define KMS_ENCLAVE_VERSION "0.1.0"

_Static_assert(sizeof(((GenerateDomainKeyResponse *)0)->domain_id.bytes) == KMS_DOMAIN_ID_LEN, "domain id");
_Static_assert(sizeof(((GenerateRandomResponse *)0)->random.bytes) == KMS_MAX_RANDOM_SIZE, "random bound");

kms_err_t kms_handle_get_identity(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    kms_identity self;
    KMS_RETURN_IF_ERR(platform_self_identity(&self));
    GetIdentityResponse *r = &resp->result.get_identity;
    resp->which_result = Response_get_identity_tag;
    memcpy(r->mrenclave.bytes, self.mrenclave, 32);
    r->mrenclave.size = 32;
    memcpy(r->mrsigner.bytes, self.mrsigner, 32);
    r->mrsigner.size = 32;
    r->isv_prod_id = self.isvprodid;
    r->isv_svn = self.isvsvn;
    r->attributes = self.attributes;
    r->debug = (self.attributes & 0x2u) != 0;
    r->simulated = platform_is_simulated() != 0;
    r->domain_loaded = kms_domain_id(r->domain_id.bytes) != 0;
    r->domain_id.size = r->domain_loaded ? KMS_DOMAIN_ID_LEN : 0;
    memcpy(r->version, KMS_ENCLAVE_VERSION, sizeof KMS_ENCLAVE_VERSION);
    r->audit_public_key.size = kms_audit_public_key(r->audit_public_key.bytes) == KMS_OK ? 32 : 0;
    const GetIdentityRequest *q = &req->op.get_identity;
    int check = 0;
    if (q->has_known_head && q->known_head.hash.size == 32 && r->domain_loaded && kms_state_refresh() == KMS_OK &&
        kms_state_check_head(q->known_head.seq, q->known_head.hash.bytes, &check) == KMS_OK)
        r->known_head_check = (HeadCheck)check; /* KNOWN, AHEAD or FORKED */
    /* TARGETINFO for local attestation: MRENCLAVE @0, ATTRIBUTES @32, MISCSELECT @52. */
    memset(r->target_info.bytes, 0, 512);
    memcpy(r->target_info.bytes, self.mrenclave, 32);
    for (int i = 0; i < 8; i++) {
        r->target_info.bytes[32 + i] = (uint8_t)(self.attributes >> (8 * i));
        r->target_info.bytes[40 + i] = (uint8_t)(self.xfrm >> (8 * i));
    }
    for (int i = 0; i < 4; i++) r->target_info.bytes[52 + i] = (uint8_t)(self.miscselect >> (8 * i));
    r->target_info.size = 512;
    r->replica_id.size = kms_replica_self(NULL, r->replica_id.bytes, NULL) == KMS_OK ? KMS_REPLICA_ID_LEN : 0;
    return KMS_OK;
}

kms_err_t kms_handle_generate_domain_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    (void)req;
    GenerateDomainKeyResponse *r = &resp->result.generate_domain_key;
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_domain_generate(r->sealed_domain_key.bytes, sizeof r->sealed_domain_key.bytes,
                                          &len, r->domain_id.bytes));
    kms_err_t err = kms_domain_open_state(1, resp->error_detail, sizeof resp->error_detail, NULL);
    if (err != KMS_OK) {
        kms_domain_forget();
        return err;
    }
    r->sealed_domain_key.size = (pb_size_t)len;
    r->domain_id.size = KMS_DOMAIN_ID_LEN;
    resp->which_result = Response_generate_domain_key_tag;
    return KMS_OK;
}

kms_err_t kms_handle_load_domain_key(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const LoadDomainKeyRequest *q = &req->op.load_domain_key;
    LoadDomainKeyResponse *r = &resp->result.load_domain_key;
    KMS_RETURN_IF_ERR(kms_domain_load(q->sealed_domain_key.bytes, q->sealed_domain_key.size,
                                      r->domain_id.bytes));
    /* The store must be what the state log says, or nothing is served (resp names the mismatch). */
    size_t damaged = 0;
    kms_err_t err = kms_domain_open_state(0, resp->error_detail, sizeof resp->error_detail, &damaged);
    if (err == KMS_OK && damaged > 0) { /* served, but the host should know which records are damaged */
        r->damaged_records = (uint32_t)damaged;
        memcpy(r->damaged_detail, resp->error_detail, sizeof r->damaged_detail);
        resp->error_detail[0] = '\0';
    }
    /* A domain initialized over a session has state with an audit key; a host-made one has none. */
    if (err == KMS_OK) err = kms_activate_audit();
    if (err == KMS_ERR_NOT_INITIALIZED_DOMAIN) err = KMS_OK;
    if (err != KMS_OK) {
        kms_domain_forget();
        return err;
    }
    r->domain_id.size = KMS_DOMAIN_ID_LEN;
    resp->which_result = Response_load_domain_key_tag;
    return KMS_OK;
}

kms_err_t kms_handle_generate_random(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    uint32_t n = req->op.generate_random.length;
    if (n == 0 || n > KMS_MAX_RANDOM_SIZE) return KMS_ERR_INVALID_ARGUMENT;
    GenerateRandomResponse *r = &resp->result.generate_random;
    KMS_RETURN_IF_ERR(kms_random(r->random.bytes, n));
    r->random.size = (pb_size_t)n;
    resp->which_result = Response_generate_random_tag;
    return KMS_OK;
}

kms_err_t kms_handle_install_quote(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const InstallQuoteRequest *q = &req->op.install_quote;
    EvidenceResponse *r = &resp->result.evidence;
    size_t len = 0;
    KMS_RETURN_IF_ERR(kms_ratls_install_quote(q->quote.bytes, q->quote.size, r->certificate.bytes,
                                              sizeof r->certificate.bytes, &len));
    r->certificate.size = (pb_size_t)len;
    memcpy(r->quote.bytes, q->quote.bytes, q->quote.size);
    r->quote.size = q->quote.size;
    resp->which_result = Response_evidence_tag;
    return KMS_OK;
}

kms_err_t kms_handle_get_evidence(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    (void)req;
    EvidenceResponse *r = &resp->result.evidence;
    size_t cert_len = 0, quote_len = 0;
    KMS_RETURN_IF_ERR(kms_ratls_evidence(r->certificate.bytes, sizeof r->certificate.bytes, &cert_len,
                                         r->quote.bytes, sizeof r->quote.bytes, &quote_len));
    r->certificate.size = (pb_size_t)cert_len;
    r->quote.size = (pb_size_t)quote_len;
    resp->which_result = Response_evidence_tag;
    return KMS_OK;
}
