/*
 * replicas.c - the cluster's replicas (docs/cluster.md): this enclave's join key, derived from
 * its node's seal key, and the replica records and policy in the domain state.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "platform.h"
#include "principals.h"
#include "replicas.h"

enum { KR_NAME = 0, KR_POLICY = 2, KR_ISVSVN = 4, KR_CPUSVN = 8, KR_ATTRMASK = 24, KR_KEYID = 40, KR_MISCMASK = 72 };
#define KEYNAME_SEAL 4u
#define POLICY_MRSIGNER 0x2u
#define ATTR_MASK 0xFF0000000000000Bull /* as sealing: INIT, DEBUG (a debug build derives another key), MODE64BIT */
#define MISC_MASK 0xF0000000u
#define ALL_TCB_STATUSES 0x3Fu
static const char k_keyid_label[] = "enclave-kms replica join key v1";
static const char k_hkdf_info[] = "enclave-kms replica join key v1 x25519";

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *g_key; /* derived once */
static uint8_t g_pub[32], g_id[KMS_REPLICA_ID_LEN];

static void put_le(uint8_t *p, uint64_t v, int n) { for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* EGETKEY(SEAL, MRSIGNER, ISVSVN 0, CPUSVN 0, KEYID = SHA-256(label)) -> HKDF -> X25519 private. */
static kms_err_t derive(EVP_PKEY **out)
{
    uint8_t kr[512] = {0}, seal[16], priv[32];
    put_le(kr + KR_NAME, KEYNAME_SEAL, 2);
    put_le(kr + KR_POLICY, POLICY_MRSIGNER, 2);
    put_le(kr + KR_ATTRMASK, ATTR_MASK, 8);
    put_le(kr + KR_MISCMASK, MISC_MASK, 4);
    kms_err_t err = kms_sha256((const uint8_t *)k_keyid_label, sizeof k_keyid_label - 1, kr + KR_KEYID);
    if (err == KMS_OK) err = platform_get_key(kr, seal);
    if (err == KMS_OK)
        err = kms_hkdf_sha256(NULL, 0, seal, sizeof seal, (const uint8_t *)k_hkdf_info, sizeof k_hkdf_info - 1, priv,
                              sizeof priv);
    if (err == KMS_OK) err = kms_pkey_from_raw_private(KMS_PKEY_X25519, priv, sizeof priv, out);
    OPENSSL_cleanse(seal, sizeof seal);
    OPENSSL_cleanse(priv, sizeof priv);
    return err;
}

kms_err_t kms_replica_self(uint8_t pub[32], uint8_t id[KMS_REPLICA_ID_LEN], EVP_PKEY **key)
{
    kms_err_t err = KMS_OK;
    pthread_mutex_lock(&g_lock);
    if (g_key == NULL) {
        EVP_PKEY *k = NULL;
        err = derive(&k);
        if (err == KMS_OK) err = kms_x25519_raw_public(k, g_pub);
        if (err == KMS_OK) err = kms_sha256(g_pub, 32, g_id);
        if (err == KMS_OK) g_key = k, k = NULL;
        EVP_PKEY_free(k);
    }
    if (err == KMS_OK) {
        if (pub != NULL) memcpy(pub, g_pub, 32);
        if (id != NULL) memcpy(id, g_id, KMS_REPLICA_ID_LEN);
        if (key != NULL) err = EVP_PKEY_up_ref(g_key) == 1 ? (*key = g_key, KMS_OK) : KMS_ERR_CRYPTO;
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_replicas_found(DomainState *st, int64_t now)
{
    kms_identity self;
    Replica *r = &st->replicas[0];
    KMS_RETURN_IF_ERR(platform_self_identity(&self));
    memset(r, 0, sizeof *r);
    KMS_RETURN_IF_ERR(kms_replica_self(r->join_public_key.bytes, r->replica_id.bytes, NULL));
    r->join_public_key.size = 32, r->replica_id.size = KMS_REPLICA_ID_LEN;
    r->status = ReplicaStatus_REPLICA_APPROVED;
    memcpy(r->mrenclave.bytes, self.mrenclave, 32);
    memcpy(r->mrsigner.bytes, self.mrsigner, 32);
    r->mrenclave.size = r->mrsigner.size = 32;
    r->isv_prod_id = self.isvprodid, r->isv_svn = self.isvsvn;
    memcpy(r->name, "first replica", sizeof "first replica");
    r->updated_at = now;
    st->replicas_count = 1;
    st->has_replica_policy = true;
    st->replica_policy.min_isv_svn = self.isvsvn;
    st->replica_policy.allowed_tcb_statuses = TcbStatusFlag_TCB_UP_TO_DATE;
    st->replica_policy.auto_join = false;
    return KMS_OK;
}

/* The index of id's record in st, or -1. */
static int find(const DomainState *st, const uint8_t id[KMS_REPLICA_ID_LEN])
{
    for (pb_size_t i = 0; i < st->replicas_count; i++)
        if (st->replicas[i].replica_id.size == KMS_REPLICA_ID_LEN &&
            CRYPTO_memcmp(st->replicas[i].replica_id.bytes, id, KMS_REPLICA_ID_LEN) == 0)
            return (int)i;
    return -1;
}

static void list_view(const DomainState *st, void *arg)
{
    ReplicaList *out = arg;
    _Static_assert(sizeof out->replicas == sizeof st->replicas, "replica list bound");
    memcpy(out->replicas, st->replicas, sizeof out->replicas);
    out->replicas_count = st->replicas_count;
    out->has_policy = st->has_replica_policy;
    out->policy = st->replica_policy;
}

kms_err_t kms_replicas_list(ReplicaList *out)
{
    memset(out, 0, sizeof *out);
    KMS_RETURN_IF_ERR(kms_replica_self(NULL, out->self_replica_id.bytes, NULL));
    out->self_replica_id.size = KMS_REPLICA_ID_LEN;
    return kms_domain_state_view(list_view, out);
}

typedef struct {
    const uint8_t *id;
    int64_t now;
    ReplicaStatus to;
} status_change;

static pb_size_t approved(const DomainState *st)
{
    pb_size_t n = 0;
    for (pb_size_t i = 0; i < st->replicas_count; i++) n += st->replicas[i].status == ReplicaStatus_REPLICA_APPROVED;
    return n;
}

static kms_err_t change_status(DomainState *st, void *arg)
{
    const status_change *c = arg;
    int i = find(st, c->id);
    if (i < 0) return KMS_ERR_INVALID_ARGUMENT;
    Replica *r = &st->replicas[i];
    if (r->status == ReplicaStatus_REPLICA_REMOVED) return KMS_ERR_PERMISSION_DENIED; /* a tombstone stays one */
    if (c->to == ReplicaStatus_REPLICA_REMOVED) {
        uint8_t self[KMS_REPLICA_ID_LEN];
        KMS_RETURN_IF_ERR(kms_replica_self(NULL, self, NULL));
        if (CRYPTO_memcmp(self, c->id, KMS_REPLICA_ID_LEN) == 0) return KMS_ERR_INVALID_ARGUMENT;
        if (r->status == ReplicaStatus_REPLICA_APPROVED && approved(st) <= 1) return KMS_ERR_INVALID_ARGUMENT;
    }
    r->status = c->to;
    r->updated_at = c->now;
    return KMS_OK;
}

kms_err_t kms_replicas_approve(const uint8_t id[KMS_REPLICA_ID_LEN], int64_t now)
{
    status_change c = {id, now, ReplicaStatus_REPLICA_APPROVED};
    return kms_domain_state_edit(change_status, &c);
}

kms_err_t kms_replicas_remove(const uint8_t id[KMS_REPLICA_ID_LEN], int64_t now)
{
    status_change c = {id, now, ReplicaStatus_REPLICA_REMOVED};
    return kms_domain_state_edit(change_status, &c);
}

static kms_err_t put_policy(DomainState *st, void *arg)
{
    st->has_replica_policy = true;
    st->replica_policy = *(const ReplicaPolicy *)arg;
    return KMS_OK;
}

kms_err_t kms_replicas_set_policy(const ReplicaPolicy *policy)
{
    if (policy->min_isv_svn > 0xFFFFu || (policy->allowed_tcb_statuses & ~ALL_TCB_STATUSES) != 0 ||
        policy->allowed_tcb_statuses == 0)
        return KMS_ERR_INVALID_ARGUMENT;
    for (pb_size_t i = 0; i < policy->extra_roots_insecure_count; i++)
        if (policy->extra_roots_insecure[i].size != KMS_QUOTE_ROOT_LEN || policy->extra_roots_insecure[i].bytes[0] != 4)
            return KMS_ERR_INVALID_KEY;
    ReplicaPolicy copy = *policy;
    return kms_domain_state_edit(put_policy, &copy);
}

static void count_view(const DomainState *st, void *arg) { *(int *)arg = st->replicas_count == 0; }

static void policy_view(const DomainState *st, void *arg) { *(ReplicaPolicy *)arg = st->replica_policy; }

kms_err_t kms_replicas_policy(ReplicaPolicy *out)
{
    memset(out, 0, sizeof *out);
    return kms_domain_state_view(policy_view, out);
}

typedef struct {
    const uint8_t *id;
    ReplicaStatus status;
} status_query;

static void status_view(const DomainState *st, void *arg)
{
    status_query *q = arg;
    int i = find(st, q->id);
    q->status = i >= 0 ? st->replicas[i].status : ReplicaStatus_REPLICA_STATUS_UNSPECIFIED;
}

kms_err_t kms_replicas_status(const uint8_t id[KMS_REPLICA_ID_LEN], ReplicaStatus *out)
{
    status_query q = {id, ReplicaStatus_REPLICA_STATUS_UNSPECIFIED};
    kms_err_t err = kms_domain_state_view(status_view, &q);
    *out = q.status;
    return err;
}

static int trusted_root(const uint8_t root[KMS_QUOTE_ROOT_LEN], const ReplicaPolicy *p)
{
    if (memcmp(root, kms_intel_sgx_root, KMS_QUOTE_ROOT_LEN) == 0) return 1;
    for (pb_size_t i = 0; i < p->extra_roots_insecure_count; i++)
        if (p->extra_roots_insecure[i].size == KMS_QUOTE_ROOT_LEN &&
            memcmp(p->extra_roots_insecure[i].bytes, root, KMS_QUOTE_ROOT_LEN) == 0)
            return 1;
    return 0;
}

kms_err_t kms_replicas_check_peer(const kms_quote_info *info, const ReplicaPolicy *policy, const char *label,
                                  const uint8_t *bound, size_t bound_len)
{
    kms_identity self;
    uint8_t rd[64] = {0}, buf[64 + 256];
    size_t label_len = strlen(label);
    KMS_RETURN_IF_ERR(platform_self_identity(&self));
    const uint8_t *b = info->body; /* report body offsets: flags 48, MRSIGNER 128, ISVPRODID 256, ISVSVN 258 */
    if (memcmp(b + 128, self.mrsigner, 32) != 0 || (uint16_t)(b[256] | (b[257] << 8)) != self.isvprodid ||
        (b[48] & 0x2u) != 0)
        return KMS_ERR_PERMISSION_DENIED;
    if (label_len > 64 || bound_len > 256) return KMS_ERR_INVALID_ARGUMENT;
    memcpy(buf, label, label_len);
    memcpy(buf + label_len, bound, bound_len);
    KMS_RETURN_IF_ERR(kms_sha256(buf, label_len + bound_len, rd));
    if (CRYPTO_memcmp(rd, b + 320, 64) != 0) return KMS_ERR_PEER_MISMATCH;
    if (policy != NULL && ((uint16_t)(b[258] | (b[259] << 8)) < policy->min_isv_svn || !trusted_root(info->root, policy) ||
                           (info->tcb_status & policy->allowed_tcb_statuses) == 0))
        return KMS_ERR_PEER_MISMATCH;
    return KMS_OK;
}

typedef struct {
    const Replica *candidate;
    ReplicaStatus status;
} admit_arg;

static kms_err_t admit_edit(DomainState *st, void *arg)
{
    admit_arg *a = arg;
    if (find(st, a->candidate->replica_id.bytes) >= 0) return KMS_ERR_CONFLICT; /* recorded meanwhile: look again */
    if (st->replicas_count >= sizeof st->replicas / sizeof st->replicas[0]) return KMS_ERR_RECORD_TOO_LARGE;
    Replica *n = &st->replicas[st->replicas_count++];
    *n = *a->candidate;
    n->status = st->replica_policy.auto_join ? ReplicaStatus_REPLICA_APPROVED : ReplicaStatus_REPLICA_PENDING;
    a->status = n->status;
    return KMS_OK;
}

kms_err_t kms_replicas_admit(const Replica *candidate, ReplicaStatus *out, int *recorded)
{
    *recorded = 0;
    KMS_RETURN_IF_ERR(kms_replicas_status(candidate->replica_id.bytes, out));
    if (*out == ReplicaStatus_REPLICA_REMOVED) return KMS_ERR_REPLICA_NOT_APPROVED;
    if (*out != ReplicaStatus_REPLICA_STATUS_UNSPECIFIED) return KMS_OK; /* known: nothing to write */
    admit_arg a = {candidate, ReplicaStatus_REPLICA_STATUS_UNSPECIFIED};
    kms_err_t err = kms_domain_state_edit(admit_edit, &a);
    *out = a.status;
    *recorded = err == KMS_OK;
    return err;
}

static void self_view(const DomainState *st, void *arg)
{
    status_query *q = arg;
    int i = find(st, q->id);
    q->status = st->replicas_count == 0 ? ReplicaStatus_REPLICA_APPROVED
                : i >= 0                ? st->replicas[i].status
                                        : ReplicaStatus_REPLICA_STATUS_UNSPECIFIED;
}

kms_err_t kms_replicas_self_approved(void)
{
    uint8_t self[KMS_REPLICA_ID_LEN];
    KMS_RETURN_IF_ERR(kms_replica_self(NULL, self, NULL));
    status_query q = {self, ReplicaStatus_REPLICA_STATUS_UNSPECIFIED};
    kms_err_t err = kms_domain_state_view(self_view, &q);
    if (err == KMS_ERR_NOT_INITIALIZED_DOMAIN) return KMS_OK; /* a host-only domain key: no cluster */
    KMS_RETURN_IF_ERR(err);
    return q.status == ReplicaStatus_REPLICA_APPROVED ? KMS_OK : KMS_ERR_REPLICA_NOT_APPROVED;
}

static kms_err_t enroll_edit(DomainState *st, void *arg)
{
    const Replica *me = arg;
    int i = find(st, me->replica_id.bytes);
    if (i >= 0 && st->replicas[i].status == ReplicaStatus_REPLICA_REMOVED) return KMS_ERR_REPLICA_NOT_APPROVED;
    if (i < 0 && st->replicas_count >= sizeof st->replicas / sizeof st->replicas[0]) return KMS_ERR_RECORD_TOO_LARGE;
    if (i < 0) i = (int)st->replicas_count++;
    st->replicas[i] = *me;
    return KMS_OK;
}

kms_err_t kms_replicas_enroll_self(int64_t now)
{
    DomainState *one = calloc(1, sizeof *one); /* this node's record, as init writes the first one */
    if (one == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err = kms_replicas_found(one, now);
    ReplicaStatus status = ReplicaStatus_REPLICA_STATUS_UNSPECIFIED;
    if (err == KMS_OK) err = kms_replicas_status(one->replicas[0].replica_id.bytes, &status);
    int none = 0;
    if (err == KMS_OK) err = kms_domain_state_view(count_view, &none);
    if (err == KMS_OK && !none && status != ReplicaStatus_REPLICA_APPROVED) {
        memcpy(one->replicas[0].name, "recovered", sizeof "recovered");
        err = kms_domain_state_edit(enroll_edit, &one->replicas[0]);
    }
    free(one);
    return err;
}
