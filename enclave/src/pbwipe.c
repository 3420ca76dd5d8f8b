/*
 * pbwipe.c - wipe what was written of a nanopb struct that started all-zero (pbwipe.h).
 *
 * nanopb's field iterator decodes each field's descriptor words on every step, about 150 instructions
 * a field: walking Request's and Response's 100-odd oneof members each time cost more than the wipe
 * itself. So each message's fields are read once into a plan (offsets, sizes, types), kept for the
 * enclave's lifetime in a small table keyed by the descriptor, and the wipe walks the plan.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pb_common.h>

#include "crypto.h"
#include "pbwipe.h"

#define NO_SIZE UINT32_MAX

typedef struct {
    uint32_t offset;      /* the field's data, from the start of the message */
    uint32_t size_offset; /* its count, has_ or which_ (NO_SIZE: none) */
    pb_size_t data_size, array_size, tag;
    pb_type_t type;
    const pb_msgdesc_t *sub; /* a submessage's descriptor */
    uint32_t group_end;      /* a oneof member: the index after its oneof's last member */
} wipe_field;

typedef struct {
    const pb_msgdesc_t *desc;
    size_t count;
    int walkable; /* every field static (the build's bound check makes them so) */
    wipe_field fields[];
} wipe_plan;

/* Open addressing over descriptor addresses; entries are written once, under the lock. */
#define PLANS 512
static _Atomic(wipe_plan *) g_plans[PLANS];
static pthread_mutex_t g_plans_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(const pb_msgdesc_t *desc) { return ((uintptr_t)desc >> 3) % PLANS; }

/* desc's plan, read from a message at msg (any message of that type). */
static wipe_plan *build_plan(const pb_msgdesc_t *desc, const void *msg)
{
    pb_field_iter_t it;
    size_t n = 0;
    if (pb_field_iter_begin_const(&it, desc, msg))
        do n++; while (pb_field_iter_next(&it));
    wipe_plan *p = calloc(1, sizeof *p + n * sizeof p->fields[0]);
    if (p == NULL) return NULL;
    p->desc = desc;
    p->walkable = 1;
    if (n > 0 && pb_field_iter_begin_const(&it, desc, msg)) {
        do {
            wipe_field *f = &p->fields[p->count++];
            const uint8_t *base = msg;
            f->offset = (uint32_t)((const uint8_t *)it.pField - base);
            int own = it.pSize != NULL && it.pSize != it.pField && it.pSize != &it.array_size;
            f->size_offset = own ? (uint32_t)((const uint8_t *)it.pSize - base) : NO_SIZE;
            f->data_size = it.data_size, f->array_size = it.array_size, f->tag = it.tag, f->type = it.type;
            f->sub = it.submsg_desc;
            if (PB_ATYPE(it.type) != PB_ATYPE_STATIC || PB_LTYPE(it.type) == PB_LTYPE_EXTENSION ||
                (PB_HTYPE(it.type) == PB_HTYPE_ONEOF && !own))
                p->walkable = 0;
        } while (pb_field_iter_next(&it));
    }
    for (size_t i = p->count; i-- > 0;) { /* a oneof's members follow each other and share which_ */
        wipe_field *f = &p->fields[i];
        int same = i + 1 < p->count && PB_HTYPE(f[1].type) == PB_HTYPE_ONEOF && f[1].size_offset == f->size_offset;
        f->group_end = same ? f[1].group_end : (uint32_t)(i + 1);
    }
    return p;
}

/* The plan of desc (built from msg the first time); NULL when out of memory or the table is full. */
static const wipe_plan *plan_of(const pb_msgdesc_t *desc, const void *msg)
{
    size_t i = slot_of(desc);
    for (size_t k = 0; k < PLANS; k++, i = (i + 1) % PLANS) {
        wipe_plan *p = atomic_load_explicit(&g_plans[i], memory_order_acquire);
        if (p == NULL) break;
        if (p->desc == desc) return p;
    }
    pthread_mutex_lock(&g_plans_lock);
    wipe_plan *found = NULL;
    i = slot_of(desc);
    for (size_t k = 0; k < PLANS; k++, i = (i + 1) % PLANS) {
        wipe_plan *p = atomic_load_explicit(&g_plans[i], memory_order_relaxed);
        if (p != NULL && p->desc == desc) {
            found = p;
            break;
        }
        if (p == NULL) {
            found = build_plan(desc, msg);
            if (found != NULL) atomic_store_explicit(&g_plans[i], found, memory_order_release);
            break;
        }
    }
    pthread_mutex_unlock(&g_plans_lock);
    return found;
}

static int wipe_msg(const pb_msgdesc_t *desc, uint8_t *msg);

/* One element of f's type at p. */
static int wipe_item(const wipe_field *f, uint8_t *p)
{
    switch (PB_LTYPE(f->type)) {
    case PB_LTYPE_BYTES: {
        pb_size_t size;
        size_t head = offsetof(pb_bytes_array_t, bytes), room = f->data_size - head;
        memcpy(&size, p, sizeof size);
        kms_wipe(p, head + (size < room ? size : room));
        return 1;
    }
    case PB_LTYPE_SUBMESSAGE:
    case PB_LTYPE_SUBMSG_W_CB:
        return wipe_msg(f->sub, p);
    default: /* scalars, enums, strings, fixed-length bytes: whole */
        kms_wipe(p, f->data_size);
        return 1;
    }
}

/* A repeated field's count, clamped to its bound (nanopb leaves bound + 1 after an overflow; a
 * fixed-count array has none: all of it). */
static size_t item_count(const wipe_field *f, const uint8_t *msg)
{
    if (f->size_offset == NO_SIZE) return f->array_size;
    pb_size_t n;
    memcpy(&n, msg + f->size_offset, sizeof n);
    return n < f->array_size ? n : f->array_size;
}

static int wipe_field_at(const wipe_field *f, uint8_t *msg)
{
    uint8_t *data = msg + f->offset, *size = f->size_offset == NO_SIZE ? NULL : msg + f->size_offset;
    switch (PB_HTYPE(f->type)) {
    case PB_HTYPE_REPEATED: {
        size_t n = item_count(f, msg);
        for (size_t i = 0; i < n; i++)
            if (!wipe_item(f, data + i * f->data_size)) return 0;
        kms_wipe(size, sizeof(pb_size_t));
        return 1;
    }
    case PB_HTYPE_OPTIONAL: /* proto3 singular; has_ when it has one */
        kms_wipe(size, sizeof(bool));
        return wipe_item(f, data);
    default: /* required */
        return wipe_item(f, data);
    }
}

/* The oneof whose first member is p->fields[*i]: its active member only, then its which_; *i moves
 * past its members. */
static int wipe_oneof(const wipe_plan *p, size_t *i, uint8_t *msg)
{
    const wipe_field *first = &p->fields[*i];
    size_t end = first->group_end;
    pb_size_t which;
    memcpy(&which, msg + first->size_offset, sizeof which);
    *i = end;
    if (which == 0) return 1;
    for (const wipe_field *f = first; f < p->fields + end; f++) {
        if (f->tag != which) continue;
        int ok = wipe_item(f, msg + f->offset);
        kms_wipe(msg + first->size_offset, sizeof(pb_size_t));
        return ok;
    }
    return 0; /* a tag that names no member: not a struct nanopb wrote */
}

static int wipe_msg(const pb_msgdesc_t *desc, uint8_t *msg)
{
    const wipe_plan *p = plan_of(desc, msg);
    if (p == NULL || !p->walkable) return 0;
    for (size_t i = 0; i < p->count;) {
        if (PB_HTYPE(p->fields[i].type) == PB_HTYPE_ONEOF) {
            if (!wipe_oneof(p, &i, msg)) return 0;
        } else if (!wipe_field_at(&p->fields[i++], msg)) {
            return 0;
        }
    }
    return 1;
}

int kms_pb_wipe(const pb_msgdesc_t *desc, void *msg) { return wipe_msg(desc, msg); }

void kms_pb_wipe_plans_free(void)
{
    pthread_mutex_lock(&g_plans_lock);
    for (size_t i = 0; i < PLANS; i++) free(atomic_exchange_explicit(&g_plans[i], NULL, memory_order_acq_rel));
    pthread_mutex_unlock(&g_plans_lock);
}

int kms_is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= b[i];
    return acc == 0;
}
