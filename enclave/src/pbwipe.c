/*
 * pbwipe.c - wipe what was written of a nanopb struct that started all-zero (pbwipe.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <pb_common.h>

#include "crypto.h"
#include "pbwipe.h"

static int wipe_item(const pb_field_iter_t *it, uint8_t *p);

/* The field's count, has_ or which_ in the struct, or NULL (none: nanopb points a fixed-count array's
 * at the iterator's own array_size). */
static void *size_field(const pb_field_iter_t *it)
{
    return it->pSize == NULL || it->pSize == it->pField || it->pSize == &it->array_size ? NULL : it->pSize;
}

/* A repeated field's count, clamped to its bound (a fixed-count array: all of it). */
static size_t item_count(const pb_field_iter_t *it)
{
    if (size_field(it) == NULL) return it->array_size;
    pb_size_t n;
    memcpy(&n, it->pSize, sizeof n);
    return n < it->array_size ? n : it->array_size;
}

/* The field the iterator is on. */
static int wipe_field(const pb_field_iter_t *it)
{
    if (PB_ATYPE(it->type) != PB_ATYPE_STATIC) return 0;
    uint8_t *data = it->pField;
    switch (PB_HTYPE(it->type)) {
    case PB_HTYPE_REPEATED: {
        size_t n = item_count(it);
        for (size_t i = 0; i < n; i++)
            if (!wipe_item(it, data + i * it->data_size)) return 0;
        kms_wipe(size_field(it), sizeof(pb_size_t));
        return 1;
    }
    case PB_HTYPE_ONEOF: {
        pb_size_t which;
        if (size_field(it) == NULL) return 0;
        memcpy(&which, it->pSize, sizeof which);
        if (which != it->tag) return 1; /* another member, or none */
        int ok = wipe_item(it, data);
        kms_wipe(it->pSize, sizeof(pb_size_t)); /* after the active member: the others see none */
        return ok;
    }
    case PB_HTYPE_OPTIONAL: /* proto3 singular; has_ when it has one */
        kms_wipe(size_field(it), sizeof(bool));
        return wipe_item(it, data);
    default: /* required */
        return wipe_item(it, data);
    }
}

/* One element of the field's type at p. */
static int wipe_item(const pb_field_iter_t *it, uint8_t *p)
{
    switch (PB_LTYPE(it->type)) {
    case PB_LTYPE_BYTES: {
        pb_size_t size;
        size_t head = offsetof(pb_bytes_array_t, bytes), room = it->data_size - head;
        memcpy(&size, p, sizeof size);
        kms_wipe(p, head + (size < room ? size : room));
        return 1;
    }
    case PB_LTYPE_SUBMESSAGE:
    case PB_LTYPE_SUBMSG_W_CB:
        return kms_pb_wipe(it->submsg_desc, p);
    case PB_LTYPE_EXTENSION:
        return 0;
    default: /* scalars, enums, strings, fixed-length bytes: whole */
        kms_wipe(p, it->data_size);
        return 1;
    }
}

int kms_pb_wipe(const pb_msgdesc_t *desc, void *msg)
{
    pb_field_iter_t it;
    if (!pb_field_iter_begin(&it, desc, msg)) return 1; /* a message without fields */
    do {
        if (!wipe_field(&it)) return 0;
    } while (pb_field_iter_next(&it));
    return 1;
}

int kms_is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= b[i];
    return acc == 0;
}
