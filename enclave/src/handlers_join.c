/*
 * handlers_join.c - the attested join of a replica (boundary.proto, "The attested join";
 * docs/cluster.md): the joiner's evidence, the sponsor's admission and grant, and the joiner's
 * checks before it seals the domain key. Both sides verify the other's quote inside the enclave.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "domain.h"
#include "handlers.h"
#include "ocalls.h"
#include "platform.h"
#include "principals.h"
#include "quote.h"
#include "replicas.h"
#include "statelog.h"

#define DK_LEN 32u
static const char k_join_label[] = "enclave-kms replica join v1";
static const char k_grant_label[] = "enclave-kms replica grant v1";
static const uint8_t k_zero_nonce[KMS_GCM_IV_LEN];

/* What the sponsor's REPORTDATA binds (after its label): domain id | sponsor key | wrapped key |
 * head seq u64 BE | head hash | joiner key. */
static size_t grant_binding(const ReplicaGrant *g, uint8_t out[16 + 32 + 48 + 8 + 32 + 32])
{
    size_t n = 0;
    memcpy(out + n, g->domain_id.bytes, KMS_DOMAIN_ID_LEN), n += KMS_DOMAIN_ID_LEN;
    memcpy(out + n, g->sponsor_public_key.bytes, 32), n += 32;
    memcpy(out + n, g->wrapped_domain_key.bytes, DK_LEN + KMS_GCM_TAG_LEN), n += DK_LEN + KMS_GCM_TAG_LEN;
    for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)(g->sponsor_head.seq >> (8 * i));
    memcpy(out + n, g->sponsor_head.hash.bytes, 32), n += 32;
    memcpy(out + n, g->joiner_public_key.bytes, 32), n += 32;
    return n;
}

/* The wrapping key: HKDF-SHA-256(X25519(priv, peer), salt = sponsor key || joiner key, info = grant label). */
static kms_err_t wrap_key(EVP_PKEY *priv, const uint8_t peer[32], const uint8_t sponsor[32], const uint8_t joiner[32],
                          uint8_t key[32])
{
    EVP_PKEY *p = NULL;
    uint8_t shared[32], salt[64];
    size_t len = 0;
    kms_err_t err = kms_x25519_from_raw(peer, &p);
    if (err == KMS_OK) err = kms_derive(priv, p, shared, sizeof shared, &len);
    memcpy(salt, sponsor, 32);
    memcpy(salt + 32, joiner, 32);
    if (err == KMS_OK)
        err = kms_hkdf_sha256(salt, sizeof salt, shared, len, (const uint8_t *)k_grant_label, sizeof k_grant_label - 1,
                              key, 32);
    OPENSSL_cleanse(shared, sizeof shared);
    EVP_PKEY_free(p);
    return err;
}

kms_err_t kms_handle_replica_join(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const ReplicaJoinRequest *q = &req->op.replica_join;
    ReplicaJoinResponse *r = &resp->result.replica_join;
    uint8_t id[KMS_DOMAIN_ID_LEN], buf[sizeof k_join_label - 1 + 32], rd[64] = {0};
    if (kms_domain_id(id)) return KMS_ERR_DOMAIN_ALREADY_LOADED;
    if (q->qe_target_info.size != 512) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_replica_self(r->join_public_key.bytes, r->replica_id.bytes, NULL));
    r->join_public_key.size = 32, r->replica_id.size = KMS_REPLICA_ID_LEN;
    memcpy(buf, k_join_label, sizeof k_join_label - 1);
    memcpy(buf + sizeof k_join_label - 1, r->join_public_key.bytes, 32);
    KMS_RETURN_IF_ERR(kms_sha256(buf, sizeof buf, rd));
    KMS_RETURN_IF_ERR(platform_report(q->qe_target_info.bytes, rd, r->report.bytes));
    r->report.size = 432;
    resp->which_result = Response_replica_join_tag;
    return KMS_OK;
}

/* The joiner's record as its verified quote shows it. */
static void candidate_of(const kms_quote_info *info, const ReplicaAdmitRequest *q, int64_t now, Replica *c)
{
    memset(c, 0, sizeof *c);
    memcpy(c->join_public_key.bytes, q->join_public_key.bytes, 32);
    c->join_public_key.size = 32;
    (void)kms_sha256(c->join_public_key.bytes, 32, c->replica_id.bytes);
    c->replica_id.size = KMS_REPLICA_ID_LEN;
    memcpy(c->mrenclave.bytes, info->body + 64, 32);
    memcpy(c->mrsigner.bytes, info->body + 128, 32);
    c->mrenclave.size = c->mrsigner.size = 32;
    c->isv_prod_id = (uint32_t)(info->body[256] | (info->body[257] << 8));
    c->isv_svn = (uint32_t)(info->body[258] | (info->body[259] << 8));
    memcpy(c->name, q->name, sizeof c->name);
    c->name[sizeof c->name - 1] = '\0';
    c->updated_at = now;
}

/* Wrap the domain key to the joiner and make the REPORT that binds the grant. */
static kms_err_t grant(const ReplicaAdmitRequest *q, ReplicaAdmitResponse *r)
{
    ReplicaGrant *g = &r->grant;
    EVP_PKEY *eph = NULL;
    uint8_t dk[DK_LEN], key[32], aad[KMS_DOMAIN_ID_LEN], buf[sizeof k_grant_label - 1 + 168], rd[64] = {0};
    kms_err_t err = kms_domain_id(g->domain_id.bytes) ? KMS_OK : KMS_ERR_DOMAIN_NOT_LOADED;
    g->domain_id.size = KMS_DOMAIN_ID_LEN;
    memcpy(g->joiner_public_key.bytes, q->join_public_key.bytes, 32);
    g->joiner_public_key.size = 32;
    if (err == KMS_OK) err = kms_state_head(&g->sponsor_head.seq, g->sponsor_head.hash.bytes);
    g->sponsor_head.hash.size = 32, g->has_sponsor_head = true;
    if (err == KMS_OK) err = kms_pkey_generate(KMS_PKEY_X25519, &eph);
    if (err == KMS_OK) err = kms_x25519_raw_public(eph, g->sponsor_public_key.bytes);
    g->sponsor_public_key.size = 32;
    if (err == KMS_OK) err = wrap_key(eph, q->join_public_key.bytes, g->sponsor_public_key.bytes,
                                      q->join_public_key.bytes, key);
    if (err == KMS_OK) err = kms_domain_copy_key(dk);
    memcpy(aad, g->domain_id.bytes, KMS_DOMAIN_ID_LEN);
    if (err == KMS_OK)
        err = kms_aes_gcm_seal(key, 32, k_zero_nonce, sizeof k_zero_nonce, aad, sizeof aad, dk, DK_LEN,
                               g->wrapped_domain_key.bytes, g->wrapped_domain_key.bytes + DK_LEN);
    g->wrapped_domain_key.size = DK_LEN + KMS_GCM_TAG_LEN;
    memcpy(buf, k_grant_label, sizeof k_grant_label - 1);
    size_t n = sizeof k_grant_label - 1 + grant_binding(g, buf + sizeof k_grant_label - 1);
    if (err == KMS_OK) err = kms_sha256(buf, n, rd);
    if (err == KMS_OK) err = platform_report(q->qe_target_info.bytes, rd, r->report.bytes);
    r->report.size = 432;
    r->has_grant = true;
    OPENSSL_cleanse(dk, sizeof dk);
    OPENSSL_cleanse(key, sizeof key);
    EVP_PKEY_free(eph);
    return err;
}

kms_err_t kms_handle_replica_admit(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ReplicaAdmitRequest *q = &req->op.replica_admit;
    ReplicaAdmitResponse *r = &resp->result.replica_admit;
    kms_quote_info info;
    ReplicaPolicy policy;
    Replica candidate;
    if (q->join_public_key.size != 32 || q->qe_target_info.size != 512) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_quote_verify(q->quote.bytes, q->quote.size, q->has_collateral ? &q->collateral : NULL, ctx->now, &info));
    KMS_RETURN_IF_ERR(kms_replicas_policy(&policy));
    KMS_RETURN_IF_ERR(kms_replicas_check_peer(&info, &policy, k_join_label, q->join_public_key.bytes, 32));
    candidate_of(&info, q, ctx->now, &candidate);
    ReplicaStatus status = ReplicaStatus_REPLICA_STATUS_UNSPECIFIED;
    int recorded = 0;
    KMS_RETURN_IF_ERR(kms_replicas_admit(&candidate, &status, &recorded));
    if (status != ReplicaStatus_REPLICA_APPROVED && !recorded) return KMS_ERR_REPLICA_NOT_APPROVED; /* no news */
    r->status = status;
    resp->which_result = Response_replica_admit_tag;
    return status == ReplicaStatus_REPLICA_APPROVED ? grant(q, r) : KMS_OK;
}

/* After the key opened the domain state: the sponsor against the domain's policy, the sponsor's
 * head in this enclave's log, and this replica approved. */
static kms_err_t check_joined(const kms_quote_info *sponsor, const ReplicaGrant *g)
{
    ReplicaPolicy policy;
    uint8_t self[KMS_REPLICA_ID_LEN], buf[168];
    int head = 0;
    ReplicaStatus status = ReplicaStatus_REPLICA_STATUS_UNSPECIFIED;
    KMS_RETURN_IF_ERR(kms_replicas_policy(&policy));
    KMS_RETURN_IF_ERR(kms_replicas_check_peer(sponsor, &policy, k_grant_label, buf, grant_binding(g, buf)));
    if (g->sponsor_head.seq > 0) {
        KMS_RETURN_IF_ERR(kms_state_check_head(g->sponsor_head.seq, g->sponsor_head.hash.bytes, &head));
        if (head != HeadCheck_HEAD_KNOWN) return KMS_ERR_STALE_RECORD; /* our view of the store is behind */
    }
    KMS_RETURN_IF_ERR(kms_replica_self(NULL, self, NULL));
    KMS_RETURN_IF_ERR(kms_replicas_status(self, &status));
    return status == ReplicaStatus_REPLICA_APPROVED ? KMS_OK : KMS_ERR_PERMISSION_DENIED;
}

/* The sponsor's quote (without the policy, which only the domain state holds) and the unwrap. */
static kms_err_t open_grant(kms_ctx *ctx, const ReplicaGrant *g, kms_quote_info *sponsor, uint8_t dk[DK_LEN])
{
    uint8_t own[32], key[32], buf[168];
    EVP_PKEY *join = NULL;
    if (g->domain_id.size != KMS_DOMAIN_ID_LEN || g->sponsor_public_key.size != 32 || g->joiner_public_key.size != 32 ||
        g->wrapped_domain_key.size != DK_LEN + KMS_GCM_TAG_LEN || g->sponsor_head.hash.size != 32)
        return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_replica_self(own, NULL, &join));
    kms_err_t err = memcmp(own, g->joiner_public_key.bytes, 32) == 0 ? KMS_OK : KMS_ERR_PEER_MISMATCH;
    if (err == KMS_OK) err = kms_quote_verify(g->sponsor_quote.bytes, g->sponsor_quote.size,
                                            g->has_sponsor_collateral ? &g->sponsor_collateral : NULL, ctx->now, sponsor);
    if (err == KMS_OK) err = kms_replicas_check_peer(sponsor, NULL, k_grant_label, buf, grant_binding(g, buf));
    if (err == KMS_OK) err = wrap_key(join, g->sponsor_public_key.bytes, g->sponsor_public_key.bytes, own, key);
    if (err == KMS_OK && kms_aes_gcm_open(key, 32, k_zero_nonce, sizeof k_zero_nonce, g->domain_id.bytes,
                                          KMS_DOMAIN_ID_LEN, g->wrapped_domain_key.bytes, DK_LEN,
                                          g->wrapped_domain_key.bytes + DK_LEN, KMS_GCM_TAG_LEN, dk) != KMS_OK)
        err = KMS_ERR_INVALID_CIPHERTEXT;
    OPENSSL_cleanse(key, sizeof key);
    EVP_PKEY_free(join);
    return err;
}

kms_err_t kms_handle_replica_join_complete(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ReplicaGrant *g = &req->op.replica_join_complete;
    kms_quote_info sponsor;
    uint8_t dk[DK_LEN], sealed[1024], id[KMS_DOMAIN_ID_LEN];
    size_t sealed_len = 0;
    if (kms_domain_id(id)) return KMS_ERR_DOMAIN_ALREADY_LOADED;
    kms_err_t err = open_grant(ctx, g, &sponsor, dk);
    if (err == KMS_OK) err = kms_domain_install_recovered(dk, g->domain_id.bytes, sealed, sizeof sealed, &sealed_len);
    OPENSSL_cleanse(dk, sizeof dk);
    if (err != KMS_OK) return err;
    kms_principals_clear();
    err = kms_domain_open_state(0, resp->error_detail, sizeof resp->error_detail, NULL); /* the key opens the state */
    if (err == KMS_OK) err = check_joined(&sponsor, g);
    if (err == KMS_OK) err = kms_edge_store_put(KMS_SEALED_DOMAIN_KEY_ID, 0, 1, sealed, sealed_len);
    if (err == KMS_OK) err = kms_activate_audit();
    if (err != KMS_OK) {
        kms_domain_forget(); /* nothing of the domain stays in this enclave */
        return err;
    }
    resp->error_detail[0] = '\0';
    memcpy(resp->result.load_domain_key.domain_id.bytes, g->domain_id.bytes, KMS_DOMAIN_ID_LEN);
    resp->result.load_domain_key.domain_id.size = KMS_DOMAIN_ID_LEN;
    resp->which_result = Response_load_domain_key_tag;
    return KMS_OK;
}
