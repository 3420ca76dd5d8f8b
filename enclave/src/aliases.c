/* aliases.c - alias records: names that point at key ids. */
#include <string.h>

#include "ocalls.h"
#include "aliases.h"
#include "keystore.h"
#include "record.h"

int kms_alias_name_valid(const char *name)
{
    size_t n = strlen(name), p = sizeof KMS_ALIAS_PREFIX - 1;
    if (n <= p || n > 40 || strncmp(name, KMS_ALIAS_PREFIX, p) != 0) return 0;
    for (size_t i = p; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* The stored record of an alias; *found 0 when there is none. */
static kms_err_t alias_load(const char *name, AliasRecord *rec, int *found)
{
    uint64_t revision = 0;
    memset(rec, 0, sizeof *rec);
    KMS_RETURN_IF_ERR(kms_record_load(name, AliasRecord_fields, rec, AliasRecord_size, found, &revision));
    if (*found && (rec->revision != revision || strcmp(rec->alias, name) != 0)) return KMS_ERR_RECORD_CORRUPT;
    *found = *found && rec->key_id[0] != '\0'; /* an empty key id is a deleted alias */
    return KMS_OK;
}

static kms_err_t alias_store(const AliasRecord *rec)
{
    return kms_record_store(rec->alias, AliasRecord_fields, rec, AliasRecord_size, rec->revision - 1, rec->revision);
}

kms_err_t kms_alias_resolve(const char *name, char key_id[37])
{
    AliasRecord rec;
    int found = 0;
    if (!kms_alias_name_valid(name)) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(alias_load(name, &rec, &found));
    if (!found || !kms_key_id_valid(rec.key_id)) return KMS_ERR_ALIAS_NOT_FOUND;
    memcpy(key_id, rec.key_id, 37);
    return KMS_OK;
}

kms_err_t kms_alias_write(const char *name, const char *key_id, int create)
{
    AliasRecord rec;
    int found = 0;
    if (!kms_alias_name_valid(name) || !kms_key_id_valid(key_id)) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(alias_load(name, &rec, &found));
    if (create && found) return KMS_ERR_CONFLICT;
    if (!create && !found) return KMS_ERR_ALIAS_NOT_FOUND;
    memcpy(rec.alias, name, strlen(name) + 1);
    memcpy(rec.key_id, key_id, 37);
    rec.revision++;
    return alias_store(&rec);
}

kms_err_t kms_alias_delete(const char *name)
{
    AliasRecord rec;
    int found = 0;
    if (!kms_alias_name_valid(name)) return KMS_ERR_INVALID_ARGUMENT;
    KMS_RETURN_IF_ERR(alias_load(name, &rec, &found));
    if (!found) return KMS_ERR_ALIAS_NOT_FOUND;
    rec.key_id[0] = '\0'; /* a tombstone keeps the revision chain: a stale copy cannot come back */
    rec.revision++;
    return alias_store(&rec);
}

kms_err_t kms_alias_list(AliasList *out, pb_size_t max)
{
    char ids[32 * 65]; /* record names up to 64 characters */
    size_t len = 0;
    out->aliases_count = 0;
    KMS_RETURN_IF_ERR(kms_edge_store_list(KMS_ALIAS_PREFIX, max, ids, sizeof ids, &len));
    for (size_t off = 0; off < len && out->aliases_count < max;) {
        const char *id = ids + off;
        size_t n = strnlen(id, len - off);
        if (n == len - off || strncmp(id, KMS_ALIAS_PREFIX, sizeof KMS_ALIAS_PREFIX - 1) != 0) break;
        off += n + 1;
        char key_id[37];
        if (kms_alias_resolve(id, key_id) != KMS_OK) continue;
        AliasEntry *e = &out->aliases[out->aliases_count++];
        memcpy(e->alias, id, n + 1);
        memcpy(e->key_id, key_id, sizeof key_id);
    }
    return KMS_OK;
}
