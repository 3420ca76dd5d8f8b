/*
 * handlers_cluster.c - the cluster's replicas (docs/cluster.md): admins list, approve and remove
 * replicas and set the replica policy; every answer is the replica list.
 */
#include <string.h>

#include "handlers.h"
#include "keystore.h"
#include "principals.h"
#include "replicas.h"
#include "statelog.h"

static kms_err_t fill_replicas(Response *resp)
{
    KMS_RETURN_IF_ERR(kms_replicas_list(&resp->result.replicas));
    resp->which_result = Response_replicas_tag;
    return KMS_OK;
}

kms_err_t kms_handle_list_replicas(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    (void)req;
    return fill_replicas(resp);
}

kms_err_t kms_handle_approve_replica(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ReplicaIdRequest *q = &req->op.approve_replica;
    if (q->replica_id.size != KMS_REPLICA_ID_LEN) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_replicas_approve(q->replica_id.bytes, ctx->now));
    return fill_replicas(resp);
}

kms_err_t kms_handle_remove_replica(kms_ctx *ctx, const Request *req, Response *resp)
{
    const ReplicaIdRequest *q = &req->op.remove_replica;
    if (q->replica_id.size != KMS_REPLICA_ID_LEN) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_replicas_remove(q->replica_id.bytes, ctx->now));
    return fill_replicas(resp);
}

kms_err_t kms_handle_set_replica_policy(kms_ctx *ctx, const Request *req, Response *resp)
{
    (void)ctx;
    const SetReplicaPolicyRequest *q = &req->op.set_replica_policy;
    if (!q->has_policy) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(kms_replicas_set_policy(&q->policy));
    return fill_replicas(resp);
}

/* A changed record's cached copy goes; the domain state's change is noted. NULL: everything. */
static void drop_cached(const char *name, void *arg)
{
    if (name == NULL) {
        kms_keystore_clear();
        *(int *)arg = 1;
    } else if (strcmp(name, KMS_DOMAIN_STATE_ID) == 0) {
        *(int *)arg = 1;
    } else {
        kms_keystore_evict(name);
    }
}

kms_err_t kms_cluster_gate(void)
{
    int domain_state = 0;
    kms_err_t err = kms_state_refresh();
    kms_state_take_changes(drop_cached, &domain_state); /* also what a commit's retry followed */
    if (domain_state) {
        kms_principals_clear(); /* principals, auditors, replicas: read again */
        if (err == KMS_OK) err = kms_activate_audit();
    }
    return err != KMS_OK ? err : kms_replicas_self_approved();
}
