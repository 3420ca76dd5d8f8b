/*
 * objects.c - the object table: what the token holds, learned from the agent.
 *
 * Each usable key (ENABLED, not a VALIDATOR key, of a spec the module maps) appears as a private
 * key object and a public key object (asymmetric) or one secret key object (AES, HMAC), with
 * CKA_ID = the key id. Handles are indexes into the table plus one and are never reused while
 * the module is initialized; a key that disappears keeps its handle, marked absent. Derived
 * secrets (CKM_ECDH1_DERIVE) are session objects held here, wiped when destroyed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "p11.h"

static struct p11_object *g_objs;
static size_t g_nobjs, g_cap;

static bool spec_is_asym(KeySpec s)
{
    return p11_key_type(s) == CKK_EC || p11_key_type(s) == CKK_RSA || p11_key_type(s) == CKK_EC_EDWARDS;
}

static bool usable(const KeyMetadata *k)
{
    return k->state == KeyState_ENABLED && k->usage != KeyUsage_VALIDATOR &&
           p11_key_type(k->spec) != CKK_VENDOR_DEFINED;
}

/* Appends an object (g_p11.lock held); its handle, or 0 on ENOMEM. */
static CK_OBJECT_HANDLE append_locked(const struct p11_object *o)
{
    if (g_nobjs == g_cap) {
        size_t cap = g_cap ? g_cap * 2 : 32;
        struct p11_object *grown = realloc(g_objs, cap * sizeof *grown);
        if (grown == NULL) return 0;
        g_objs = grown;
        g_cap = cap;
    }
    g_objs[g_nobjs] = *o;
    g_objs[g_nobjs].handle = (CK_OBJECT_HANDLE)(g_nobjs + 1);
    g_nobjs++;
    return (CK_OBJECT_HANDLE)g_nobjs;
}

static struct p11_object *find_locked(const char *key_id, enum p11_kind kind)
{
    for (size_t i = 0; i < g_nobjs; i++)
        if (g_objs[i].kind == kind && strcmp(g_objs[i].key_id, key_id) == 0) return &g_objs[i];
    return NULL;
}

/* Fetches a key's SubjectPublicKeyInfo (DER) from the KMS into a malloc'd buffer. */
static CK_RV fetch_spki(struct p11_msg *m, const char *key_id, uint8_t **out, size_t *len)
{
    memset(&m->req, 0, sizeof m->req);
    Request *r = &m->req.body.request;
    r->which_op = Request_get_public_key_tag;
    strcpy(r->op.get_public_key.key_id, key_id);
    r->op.get_public_key.format = PublicKeyFormat_PUBLIC_KEY_DER;
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, true);
    if (rv != CKR_OK) return rv;
    const GetPublicKeyResponse *g = &m->resp.body.response.result.get_public_key;
    if (m->resp.body.response.which_result != Response_get_public_key_tag || g->public_key.size == 0)
        return CKR_DEVICE_ERROR;
    *out = malloc(g->public_key.size);
    if (*out == NULL) return CKR_HOST_MEMORY;
    memcpy(*out, g->public_key.bytes, g->public_key.size);
    *len = g->public_key.size;
    return CKR_OK;
}

/* Adds or refreshes the objects of one key (g_p11.lock NOT held; takes it). spki is consumed. */
static CK_RV upsert(const KeyMetadata *k, const char *label, uint8_t *spki, size_t spki_len,
                    CK_OBJECT_HANDLE *first, CK_OBJECT_HANDLE *second)
{
    struct p11_object o = {.spec = k->spec, .usage = k->usage, .present = true,
                           .local = k->origin == KeyOrigin_ORIGIN_GENERATED};
    size_t id_len = strnlen(k->key_id, sizeof k->key_id);
    if (id_len > P11_KEY_ID_LEN) return CKR_DEVICE_ERROR; /* not a KMS key id */
    memcpy(o.key_id, k->key_id, id_len);
    snprintf(o.label, sizeof o.label, "%s", label);
    enum p11_kind kinds[2] = {P11_SECRET, 0};
    if (spec_is_asym(k->spec)) kinds[0] = P11_PRIVATE, kinds[1] = P11_PUBLIC;
    CK_OBJECT_HANDLE *out[2] = {first, second};
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&g_p11.lock);
    for (size_t i = 0; i < 2 && kinds[i] != 0; i++) {
        struct p11_object *have = find_locked(o.key_id, kinds[i]);
        CK_OBJECT_HANDLE h = 0;
        if (have != NULL) {
            memcpy(have->label, o.label, sizeof o.label);
            have->present = true;
            h = have->handle;
        } else {
            o.kind = kinds[i];
            o.spki = NULL;
            o.spki_len = 0;
            if (spki != NULL) { /* each object owns its own copy */
                o.spki = malloc(spki_len);
                if (o.spki != NULL) memcpy(o.spki, spki, spki_len), o.spki_len = spki_len;
            }
            h = (spki == NULL || o.spki != NULL) ? append_locked(&o) : 0;
            if (h == 0) free(o.spki), rv = CKR_HOST_MEMORY;
        }
        if (out[i] != NULL) *out[i] = h;
    }
    pthread_mutex_unlock(&g_p11.lock);
    free(spki);
    return rv;
}

static bool known_locked(const char *key_id)
{
    return find_locked(key_id, P11_PRIVATE) != NULL || find_locked(key_id, P11_SECRET) != NULL;
}

/* One key from a listing: its label (alias name, else description), its SPKI when new. */
static CK_RV refresh_key(struct p11_msg *m, const KeyMetadata *k, const AliasList *aliases)
{
    const char *label = k->description;
    for (pb_size_t a = 0; a < aliases->aliases_count; a++)
        if (strcmp(aliases->aliases[a].key_id, k->key_id) == 0) {
            label = aliases->aliases[a].alias;
            if (strncmp(label, "alias/", 6) == 0) label += 6;
            break;
        }
    pthread_mutex_lock(&g_p11.lock);
    bool known = known_locked(k->key_id);
    pthread_mutex_unlock(&g_p11.lock);
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    if (!known && spec_is_asym(k->spec)) {
        CK_RV rv = fetch_spki(m, k->key_id, &spki, &spki_len);
        if (rv != CKR_OK) return rv == CKR_KEY_FUNCTION_NOT_PERMITTED ? CKR_OK : rv; /* not ours to use */
    }
    return upsert(k, label, spki, spki_len, NULL, NULL);
}

static CK_RV list_aliases(struct p11_msg *m, AliasList *out)
{
    memset(&m->req, 0, sizeof m->req);
    m->req.body.request.which_op = Request_list_aliases_tag;
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, true);
    if (rv == CKR_OK && m->resp.body.response.which_result == Response_aliases_tag)
        *out = m->resp.body.response.result.aliases;
    return rv;
}

/* After a complete listing: keys not in it are gone (their handles stay, marked absent). Done
 * at the end, not the start, so that a concurrent lookup never sees a listed key absent. */
static void sweep(char (*seen)[P11_KEY_ID_LEN + 1], size_t nseen)
{
    pthread_mutex_lock(&g_p11.lock);
    for (size_t i = 0; i < g_nobjs; i++) {
        if (g_objs[i].kind == P11_DERIVED) continue;
        bool listed = false;
        for (size_t j = 0; j < nseen && !listed; j++) listed = strcmp(seen[j], g_objs[i].key_id) == 0;
        g_objs[i].present = listed;
    }
    pthread_mutex_unlock(&g_p11.lock);
}

/* Remembers a listed key id in the growing array *seen. */
static CK_RV remember(char (**seen)[P11_KEY_ID_LEN + 1], size_t *n, const char *key_id)
{
    char(*grown)[P11_KEY_ID_LEN + 1] = realloc(*seen, (*n + 1) * sizeof **seen);
    if (grown == NULL) return CKR_HOST_MEMORY;
    *seen = grown;
    snprintf(grown[*n], sizeof grown[*n], "%.*s", (int)P11_KEY_ID_LEN, key_id);
    (*n)++;
    return CKR_OK;
}

/* One page of ListKeys into *page. */
static CK_RV list_page(struct p11_msg *m, const char *token, ListKeysResponse *page)
{
    memset(&m->req, 0, sizeof m->req);
    Request *r = &m->req.body.request;
    r->which_op = Request_list_keys_tag;
    snprintf(r->op.list_keys.page_token, sizeof r->op.list_keys.page_token, "%s", token);
    CK_RV rv = p11_enclave_call(&m->req, &m->resp, true);
    if (rv == CKR_OK && m->resp.body.response.which_result != Response_list_keys_tag) rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK) *page = m->resp.body.response.result.list_keys;
    return rv;
}

CK_RV p11_objects_refresh(void)
{
    struct p11_msg *m = p11_msg_new();
    AliasList *aliases = calloc(1, sizeof *aliases);
    ListKeysResponse *page = calloc(1, sizeof *page);
    char(*seen)[P11_KEY_ID_LEN + 1] = NULL;
    size_t nseen = 0;
    CK_RV rv = m && aliases && page ? list_aliases(m, aliases) : CKR_HOST_MEMORY;
    char token[sizeof page->next_page_token] = "";
    while (rv == CKR_OK) {
        rv = list_page(m, token, page);
        for (pb_size_t i = 0; i < page->keys_count && rv == CKR_OK; i++) {
            if (!usable(&page->keys[i])) continue;
            rv = refresh_key(m, &page->keys[i], aliases);
            if (rv == CKR_OK) rv = remember(&seen, &nseen, page->keys[i].key_id);
        }
        if (rv != CKR_OK || page->next_page_token[0] == '\0') break;
        memcpy(token, page->next_page_token, sizeof token);
    }
    if (rv == CKR_OK) sweep(seen, nseen);
    free(seen);
    p11_msg_free(m);
    free(aliases);
    free(page);
    return rv;
}

CK_RV p11_objects_add_created(const KeyMetadata *md, CK_OBJECT_HANDLE *first, CK_OBJECT_HANDLE *second)
{
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    if (spec_is_asym(md->spec)) {
        struct p11_msg *m = p11_msg_new();
        CK_RV rv = m ? fetch_spki(m, md->key_id, &spki, &spki_len) : CKR_HOST_MEMORY;
        p11_msg_free(m);
        if (rv != CKR_OK) return rv;
    }
    return upsert(md, md->description, spki, spki_len, first, second);
}

static bool visible_locked(const struct p11_object *o, bool user_ok)
{
    return o->present && (o->kind == P11_PUBLIC || user_ok);
}

CK_RV p11_object_get(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle, struct p11_object *out)
{
    (void)session; /* session objects are visible to every session of the application */
    bool user_ok = p11_session_user_ok();
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&g_p11.lock);
    const struct p11_object *o = handle >= 1 && handle <= g_nobjs ? &g_objs[handle - 1] : NULL;
    if (o == NULL || !o->present) rv = CKR_OBJECT_HANDLE_INVALID;
    else if (!visible_locked(o, user_ok)) rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK) {
        *out = *o;
        out->spki = o->spki_len ? malloc(o->spki_len) : NULL;
        out->value = o->value_len ? malloc(o->value_len) : NULL;
        if ((o->spki_len && out->spki == NULL) || (o->value_len && out->value == NULL)) rv = CKR_HOST_MEMORY;
        if (out->spki) memcpy(out->spki, o->spki, o->spki_len);
        if (out->value) memcpy(out->value, o->value, o->value_len);
    }
    pthread_mutex_unlock(&g_p11.lock);
    if (rv == CKR_HOST_MEMORY) p11_object_clear(out);
    return rv;
}

void p11_object_clear(struct p11_object *o)
{
    free(o->spki);
    if (o->value) OPENSSL_cleanse(o->value, o->value_len);
    free(o->value);
    o->spki = o->value = NULL;
    o->spki_len = o->value_len = 0;
}

CK_RV p11_objects_visible(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE **out, size_t *count)
{
    (void)session;
    bool user_ok = p11_session_user_ok();
    pthread_mutex_lock(&g_p11.lock);
    *out = calloc(g_nobjs ? g_nobjs : 1, sizeof **out);
    *count = 0;
    for (size_t i = 0; *out != NULL && i < g_nobjs; i++)
        if (visible_locked(&g_objs[i], user_ok)) (*out)[(*count)++] = g_objs[i].handle;
    pthread_mutex_unlock(&g_p11.lock);
    return *out ? CKR_OK : CKR_HOST_MEMORY;
}

CK_RV p11_objects_add_derived(CK_SESSION_HANDLE session, uint8_t *value, size_t len, bool sensitive,
                              const char *label, CK_OBJECT_HANDLE *out)
{
    struct p11_object o = {.kind = P11_DERIVED, .value = value, .value_len = len, .sensitive = sensitive,
                           .owner = session, .present = true};
    snprintf(o.label, sizeof o.label, "%s", label ? label : "");
    pthread_mutex_lock(&g_p11.lock);
    *out = append_locked(&o);
    pthread_mutex_unlock(&g_p11.lock);
    if (*out != 0) return CKR_OK;
    OPENSSL_cleanse(value, len);
    free(value);
    return CKR_HOST_MEMORY;
}

static void destroy_locked(struct p11_object *o)
{
    p11_object_clear(o);
    o->present = false;
}

CK_RV p11_objects_destroy(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE handle)
{
    (void)session;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&g_p11.lock);
    struct p11_object *o = handle >= 1 && handle <= g_nobjs ? &g_objs[handle - 1] : NULL;
    if (o == NULL || !o->present) rv = CKR_OBJECT_HANDLE_INVALID;
    else if (o->kind != P11_DERIVED) rv = CKR_ACTION_PROHIBITED; /* keys are deleted through the KMS */
    else destroy_locked(o);
    pthread_mutex_unlock(&g_p11.lock);
    return rv;
}

void p11_objects_drop_session(CK_SESSION_HANDLE session)
{
    pthread_mutex_lock(&g_p11.lock);
    for (size_t i = 0; i < g_nobjs; i++)
        if (g_objs[i].kind == P11_DERIVED && g_objs[i].owner == session && g_objs[i].present)
            destroy_locked(&g_objs[i]);
    pthread_mutex_unlock(&g_p11.lock);
}

void p11_objects_fini(void)
{
    pthread_mutex_lock(&g_p11.lock);
    for (size_t i = 0; i < g_nobjs; i++) destroy_locked(&g_objs[i]);
    free(g_objs);
    g_objs = NULL;
    g_nobjs = g_cap = 0;
    pthread_mutex_unlock(&g_p11.lock);
}
