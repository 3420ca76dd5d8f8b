/*
 * principals.c - the domain state record: load, cache, create at init, add principals.
 * The cached state holds the domain's audit private key: it is read in place under the lock
 * (role lookups and listings copy only what they answer) and wiped whenever it is dropped.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto.h"
#include "domain.h"
#include "kms/limits.h"
#include "principals.h"
#include "record.h"
#include "replicas.h"
#include "statelog.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static DomainState *g_state; /* what the store holds (authenticated), or NULL before it is read */
/* The store holds no domain state (a host-only domain key), as read since the last clear: without it every
 * request of such a domain would read the record's absence from the store again (an OCALL and the state
 * log's index check). kms_principals_clear drops it with the state; g_generation counts the clears, so a read
 * that a clear overtook installs nothing. */
static int g_absent;
static uint64_t g_generation;

static void state_free(DomainState *st)
{
    if (st == NULL) return;
    OPENSSL_cleanse(st, sizeof *st);
    free(st);
}

/* Load the stored state (NULL *out when there is none). Caller frees with state_free. */
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
    state_free(st);
    return err;
}

/* Lock the cached state, reading it from the store first if needed. On KMS_OK the lock is held
 * and g_state may still be NULL (no domain state); on an error the lock is not held. */
static kms_err_t state_lock(void)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        pthread_mutex_lock(&g_lock);
        if (g_state != NULL || g_absent) return KMS_OK;
        uint64_t generation = g_generation;
        pthread_mutex_unlock(&g_lock);
        DomainState *st = NULL;
        KMS_RETURN_IF_ERR(state_load(&st)); /* no lock across the OCALL */
        pthread_mutex_lock(&g_lock);
        if (generation == g_generation) { /* no change since the read began: it is what the store holds */
            if (g_state == NULL && !g_absent) g_state = st, g_absent = st == NULL, st = NULL;
            state_free(st);
            return KMS_OK;
        }
        pthread_mutex_unlock(&g_lock);
        state_free(st); /* a change overtook the read: read again */
    }
    return KMS_ERR_CONFLICT;
}

/* A private copy of the state for a change (caller frees with state_free). */
static kms_err_t state_copy(DomainState **out)
{
    KMS_RETURN_IF_ERR(state_lock());
    DomainState *copy = NULL;
    kms_err_t err = g_state == NULL ? KMS_ERR_NOT_INITIALIZED_DOMAIN : KMS_ERR_OUT_OF_MEMORY;
    if (g_state != NULL && (copy = malloc(sizeof *copy)) != NULL) {
        memcpy(copy, g_state, sizeof *copy);
        err = KMS_OK;
    }
    pthread_mutex_unlock(&g_lock);
    *out = copy;
    return err;
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
    state_free(g_state);
    g_state = NULL;
    g_absent = 0;
    g_generation++;
    pthread_mutex_unlock(&g_lock);
}

/* 1 when id is a tombstone of st. */
static int removed(const DomainState *st, const uint8_t id[32])
{
    for (pb_size_t i = 0; st != NULL && i < st->removed_count; i++)
        if (st->removed[i].size == 32 && CRYPTO_memcmp(st->removed[i].bytes, id, 32) == 0) return 1;
    return 0;
}

kms_err_t kms_principal_role(const uint8_t principal[32], Role *role)
{
    *role = Role_ROLE_UNSPECIFIED;
    KMS_RETURN_IF_ERR(state_lock());
    kms_err_t err = removed(g_state, principal) ? KMS_ERR_PERMISSION_DENIED : KMS_OK;
    for (pb_size_t i = 0; err == KMS_OK && g_state != NULL && i < g_state->principals_count; i++) {
        const Principal *p = &g_state->principals[i];
        if (p->id.size == 32 && CRYPTO_memcmp(p->id.bytes, principal, 32) == 0) *role = p->role;
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

static void set_principal(Principal *p, const uint8_t id[32], const char *name, Role role)
{
    memcpy(p->id.bytes, id, 32);
    p->id.size = 32;
    strncpy(p->name, name, sizeof p->name - 1);
    p->name[sizeof p->name - 1] = '\0';
    p->role = role;
}

/* The auditors a into st. */
static void put_auditors(DomainState *st, const kms_auditors *a)
{
    _Static_assert(sizeof st->auditor_public_keys / sizeof st->auditor_public_keys[0] == KMS_MAX_AUDITORS_COUNT,
                   "auditor bound");
    memset(st->auditor_public_keys, 0, sizeof st->auditor_public_keys);
    st->auditor_public_keys_count = 0;
    for (size_t i = 0; i < a->count && i < KMS_MAX_AUDITORS_COUNT; i++) {
        memcpy(st->auditor_public_keys[i].bytes, a->keys[i], 32);
        st->auditor_public_keys[i].size = 32;
        st->auditor_public_keys_count++;
    }
    st->audit_bodies_in_clear_insecure = a->count == 0 && a->clear_bodies;
}

kms_err_t kms_principals_create(const uint8_t admin[32], const char *admin_name, uint32_t threshold,
                                uint32_t share_count, const kms_auditors *auditors)
{
    DomainState *st = calloc(1, sizeof *st);
    if (st == NULL) return KMS_ERR_OUT_OF_MEMORY;
    st->revision = 1;
    st->principals_count = 1;
    set_principal(&st->principals[0], admin, admin_name, Role_ADMIN);
    st->recovery_threshold = threshold;
    st->recovery_share_count = share_count;
    put_auditors(st, auditors);
    EVP_PKEY *audit = NULL; /* the domain's audit key lives (encrypted) in its state */
    size_t len = 0;
    kms_err_t err = kms_pkey_generate(KMS_PKEY_ED25519, &audit);
    if (err == KMS_OK)
        err = kms_pkey_private_der(audit, st->audit_private_key.bytes, sizeof st->audit_private_key.bytes, &len);
    EVP_PKEY_free(audit);
    st->audit_private_key.size = (pb_size_t)len;
    if (err == KMS_OK) err = kms_replicas_found(st, kms_state_now(0)); /* this enclave: the first replica */
    if (err == KMS_OK) err = state_write(st);
    state_free(st);
    return err;
}

kms_err_t kms_principals_put(const uint8_t id[32], const char *name, Role role)
{
    if (role != Role_ADMIN && role != Role_USER) return KMS_ERR_INVALID_ARGUMENT;
    DomainState *st = NULL;
    KMS_RETURN_IF_ERR(state_copy(&st));
    kms_err_t err = removed(st, id) ? KMS_ERR_PERMISSION_DENIED : KMS_OK;
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
    state_free(st);
    return err;
}

/* Admins in st other than the one at index skip. */
static pb_size_t other_admins(const DomainState *st, pb_size_t skip)
{
    pb_size_t n = 0;
    for (pb_size_t i = 0; i < st->principals_count; i++) n += i != skip && st->principals[i].role == Role_ADMIN;
    return n;
}

kms_err_t kms_principals_remove(const uint8_t id[32])
{
    DomainState *st = NULL;
    KMS_RETURN_IF_ERR(state_copy(&st));
    pb_size_t i = 0, n = st->principals_count;
    while (i < n && CRYPTO_memcmp(st->principals[i].id.bytes, id, 32) != 0) i++;
    kms_err_t err = i == n || (st->principals[i].role == Role_ADMIN && other_admins(st, i) == 0)
                        ? KMS_ERR_INVALID_ARGUMENT
                    : st->removed_count >= sizeof st->removed / sizeof st->removed[0] ? KMS_ERR_RECORD_TOO_LARGE
                                                                                      : KMS_OK;
    if (err == KMS_OK) {
        memcpy(st->removed[st->removed_count].bytes, id, 32);
        st->removed[st->removed_count++].size = 32;
        st->principals[i] = st->principals[n - 1];
        memset(&st->principals[n - 1], 0, sizeof st->principals[n - 1]);
        st->principals_count--;
        st->revision++;
        err = state_write(st);
    }
    state_free(st);
    return err;
}

kms_err_t kms_principals_audit_key(uint8_t *der, size_t cap, size_t *len)
{
    KMS_RETURN_IF_ERR(state_lock());
    kms_err_t err = g_state == NULL ? KMS_ERR_NOT_INITIALIZED_DOMAIN : KMS_OK;
    *len = 0;
    if (g_state != NULL && g_state->audit_private_key.size > cap) err = KMS_ERR_BUFFER_TOO_SMALL;
    else if (g_state != NULL) {
        memcpy(der, g_state->audit_private_key.bytes, g_state->audit_private_key.size);
        *len = g_state->audit_private_key.size;
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_principals_set_auditors(const kms_auditors *auditors)
{
    if (auditors->count == 0) return KMS_ERR_INVALID_ARGUMENT; /* clear bodies are init's choice only */
    DomainState *st = NULL;
    KMS_RETURN_IF_ERR(state_copy(&st));
    put_auditors(st, auditors);
    st->revision++;
    kms_err_t err = state_write(st);
    state_free(st);
    return err;
}

kms_err_t kms_principals_auditors(kms_auditors *out)
{
    memset(out, 0, sizeof *out);
    KMS_RETURN_IF_ERR(state_lock());
    kms_err_t err = g_state != NULL ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
    for (pb_size_t i = 0; g_state != NULL && i < g_state->auditor_public_keys_count; i++) {
        if (g_state->auditor_public_keys[i].size != 32) continue; /* written only by put_auditors: never */
        memcpy(out->keys[out->count++], g_state->auditor_public_keys[i].bytes, 32);
    }
    out->clear_bodies = g_state != NULL && out->count == 0 && g_state->audit_bodies_in_clear_insecure;
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_principals_list(PrincipalList *out)
{
    KMS_RETURN_IF_ERR(state_lock());
    kms_err_t err = g_state != NULL ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
    if (g_state != NULL) {
        _Static_assert(sizeof out->principals == sizeof g_state->principals, "principal list bound");
        memcpy(out->principals, g_state->principals, sizeof out->principals);
        out->principals_count = g_state->principals_count;
    }
    pthread_mutex_unlock(&g_lock);
    return err;
}

kms_err_t kms_domain_state_edit(kms_domain_state_edit_fn fn, void *arg)
{
    DomainState *st = NULL;
    KMS_RETURN_IF_ERR(state_copy(&st));
    kms_err_t err = fn(st, arg);
    if (err == KMS_OK) {
        st->revision++;
        err = state_write(st);
    }
    state_free(st);
    return err;
}

kms_err_t kms_domain_state_view(kms_domain_state_view_fn fn, void *arg)
{
    KMS_RETURN_IF_ERR(state_lock());
    kms_err_t err = g_state != NULL ? KMS_OK : KMS_ERR_NOT_INITIALIZED_DOMAIN;
    if (g_state != NULL) fn(g_state, arg);
    pthread_mutex_unlock(&g_lock);
    return err;
}
