/* principals.c - the domain state record: load, cache, create at init, add principals. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "crypto.h"
#include "domain.h"
#include "keystore.h"
#include "kms/limits.h"
#include "principals.h"
#include "record.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static DomainState *g_state; /* cached copy of what the store holds, or NULL */

/* Load the stored state (NULL *out when there is none). Caller frees. */
static kms_err_t state_load(DomainState **out)
{
    DomainState *st = calloc(1, sizeof *st);
    uint64_t revision = 0;
    int found = 0;
    *out = NULL;
    if (st == NULL) return KMS_ERR_OUT_OF_MEMORY;
    kms_err_t err = kms_record_load(KMS_DOMAIN_STATE_ID, DomainState_fields, st, DomainState_size, &found, &revision);
    if (err == KMS_OK && found && st->revision != revision) err = KMS_ERR_RECORD_CORRUPT;
    if (err == KMS_OK && found) {
        *out = st;
        return KMS_OK;
    }
    OPENSSL_cleanse(st, sizeof *st);
    free(st);
    return err;
}

/* A copy of the current state (cached, else loaded). NULL *out: no state. Caller frees. */
static kms_err_t state_get(DomainState **out)
{
    pthread_mutex_lock(&g_lock);
    DomainState *copy = NULL;
    if (g_state != NULL && (copy = malloc(sizeof *copy)) != NULL) memcpy(copy, g_state, sizeof *copy);
    int cached = g_state != NULL;
    pthread_mutex_unlock(&g_lock);
    if (cached) {
        *out = copy;
        return copy != NULL ? KMS_OK : KMS_ERR_OUT_OF_MEMORY;
    }
    KMS_RETURN_IF_ERR(state_load(out));
    if (*out != NULL) {
        pthread_mutex_lock(&g_lock);
        if (g_state == NULL && (g_state = malloc(sizeof *g_state)) != NULL) memcpy(g_state, *out, sizeof *g_state);
        pthread_mutex_unlock(&g_lock);
    }
    return KMS_OK;
}

/* Persist st (its revision already bumped) conditionally, then drop the cache. */
static kms_err_t state_write(const DomainState *st)
{
    KMS_RETURN_IF_ERR(kms_record_store(KMS_DOMAIN_STATE_ID, DomainState_fields, st, DomainState_size,
                                       st->revision - 1, st->revision));
    kms_principals_clear();
    return KMS_OK;
}

void kms_principals_clear(void)
{
    pthread_mutex_lock(&g_lock);
    free(g_state);
    g_state = NULL;
    pthread_mutex_unlock(&g_lock);
}

kms_err_t kms_principal_role(const uint8_t principal[32], Role *role)
{
    DomainState *st = NULL;
    *role = Role_ROLE_UNSPECIFIED;
    KMS_RETURN_IF_ERR(state_get(&st));
    for (pb_size_t i = 0; st != NULL && i < st->principals_count; i++)
        if (st->principals[i].id.size == 32 && CRYPTO_memcmp(st->principals[i].id.bytes, principal, 32) == 0)
            *role = st->principals[i].role;
    free(st);
    return KMS_OK;
}

static void set_principal(Principal *p, const uint8_t id[32], const char *name, Role role)
{
    memcpy(p->id.bytes, id, 32);
    p->id.size = 32;
    strncpy(p->name, name, sizeof p->name - 1);
    p->name[sizeof p->name - 1] = '\0';
    p->role = role;
}

kms_err_t kms_principals_create(const uint8_t admin[32], const char *admin_name, uint32_t threshold,
                                uint32_t share_count)
{
    DomainState *st = calloc(1, sizeof *st);
    if (st == NULL) return KMS_ERR_OUT_OF_MEMORY;
    st->revision = 1;
    st->principals_count = 1;
    set_principal(&st->principals[0], admin, admin_name, Role_ADMIN);
    st->recovery_threshold = threshold;
    st->recovery_share_count = share_count;
    EVP_PKEY *audit = NULL; /* the domain's audit key lives (encrypted) in its state */
    size_t len = 0;
    kms_err_t err = kms_pkey_generate(KMS_PKEY_ED25519, &audit);
    if (err == KMS_OK)
        err = kms_pkey_private_der(audit, st->audit_private_key.bytes, sizeof st->audit_private_key.bytes, &len);
    EVP_PKEY_free(audit);
    st->audit_private_key.size = (pb_size_t)len;
    if (err == KMS_OK) err = state_write(st);
    if (err == KMS_OK) err = kms_audit_set_key(st->audit_private_key.bytes, st->audit_private_key.size);
    OPENSSL_cleanse(st, sizeof *st);
    free(st);
    return err;
}

kms_err_t kms_principals_put(const uint8_t id[32], const char *name, Role role)
{
    if (role != Role_ADMIN && role != Role_USER) return KMS_ERR_INVALID_ARGUMENT;
    DomainState *st = NULL;
    KMS_RETURN_IF_ERR(state_get(&st));
    if (st == NULL) return KMS_ERR_NOT_INITIALIZED_DOMAIN;
    kms_err_t err = KMS_OK;
    pb_size_t i = 0;
    while (i < st->principals_count && CRYPTO_memcmp(st->principals[i].id.bytes, id, 32) != 0) i++;
    if (i == st->principals_count) {
        if (i >= sizeof st->principals / sizeof st->principals[0]) err = KMS_ERR_INVALID_ARGUMENT;
        else st->principals_count++;
    }
    if (err == KMS_OK) {
        set_principal(&st->principals[i], id, name, role);
        st->revision++;
        err = state_write(st);
    }
    free(st);
    return err;
}

kms_err_t kms_principals_activate_audit(void)
{
    DomainState *st = NULL;
    KMS_RETURN_IF_ERR(state_get(&st));
    kms_err_t err = KMS_OK;
    if (st != NULL && st->audit_private_key.size > 0)
        err = kms_audit_set_key(st->audit_private_key.bytes, st->audit_private_key.size);
    if (st != NULL) OPENSSL_cleanse(st, sizeof *st);
    free(st);
    return err;
}

kms_err_t kms_principals_list(DomainState **out)
{
    KMS_RETURN_IF_ERR(state_get(out));
    return *out != NULL ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
}
