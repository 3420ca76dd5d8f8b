/*
 * request_slot.c - zeroed Request/Response slots, the recording decode and the wipe (request_slot.h).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <pb_common.h>
#include <pb_decode.h>

#include "crypto.h"
#include "pbwipe.h"
#include "request_slot.h"

/* As many slots as ECALLs can run at once (KMS_SIMCPU_MAX_TCS); each allocated on first use. */
#define POOL 64
static atomic_int g_busy[POOL];
static kms_slot *g_pool[POOL]; /* g_pool[i] belongs to whoever set g_busy[i] */

kms_slot *kms_slot_take(void)
{
    for (int i = 0; i < POOL; i++) {
        if (atomic_load_explicit(&g_busy[i], memory_order_relaxed) ||
            atomic_exchange_explicit(&g_busy[i], 1, memory_order_acquire))
            continue;
        if (g_pool[i] == NULL && (g_pool[i] = calloc(1, sizeof *g_pool[i])) != NULL) g_pool[i]->index = i;
        if (g_pool[i] == NULL) atomic_store_explicit(&g_busy[i], 0, memory_order_release);
        return g_pool[i];
    }
    kms_slot *s = calloc(1, sizeof *s); /* all taken: this request's own */
    if (s != NULL) s->index = -1;
    return s;
}

void kms_slot_give(kms_slot *s)
{
    if (s == NULL) return;
    kms_slot_wipe(s);
    if (s->index < 0) free(s);
    else atomic_store_explicit(&g_busy[s->index], 0, memory_order_release);
}

void kms_slot_pool_free(void)
{
    for (int i = 0; i < POOL; i++) {
        if (atomic_exchange_explicit(&g_busy[i], 1, memory_order_acquire)) continue; /* never at uninit */
        free(g_pool[i]); /* all-zero: given back wiped */
        g_pool[i] = NULL;
        atomic_store_explicit(&g_busy[i], 0, memory_order_release);
    }
    kms_pb_wipe_plans_free();
}

/* ---- the recording decode ------------------------------------------------------------------ */

typedef struct {
    const uint8_t *src; /* the next input byte (pb_read checked bytes_left) */
    kms_slot *slot;
} recorder;

/* nanopb's read callback: copy the input, and mark the chunks of req it lands in. Every byte of the
 * input that reaches req (bytes and string contents) comes through here; scalars are decoded into
 * nanopb's locals first. */
static bool record_read(pb_istream_t *stream, pb_byte_t *buf, size_t count)
{
    recorder *r = stream->state;
    memcpy(buf, r->src, count);
    r->src += count;
    uintptr_t base = (uintptr_t)&r->slot->req, at = (uintptr_t)buf;
    if (count == 0 || at < base || at - base >= sizeof r->slot->req) return true;
    size_t first = (at - base) / KMS_SLOT_CHUNK, last = (at - base + count - 1) / KMS_SLOT_CHUNK;
    for (size_t c = first; c <= last && c < KMS_SLOT_MARKS * 8; c++) r->slot->marks[c / 8] |= (uint8_t)(1u << (c % 8));
    return true;
}

/* The first op oneof member's tag in the encoded request (0: none); *mixed when another member
 * follows it (protobuf: the last one wins, and nanopb clears the new one over the old). */
static pb_size_t scan_op(Request *req, const uint8_t *in, size_t len, int *mixed)
{
    pb_istream_t is = pb_istream_from_buffer(in, len);
    pb_field_iter_t it;
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    pb_size_t first = 0;
    *mixed = 0;
    if (!pb_field_iter_begin(&it, Request_fields, req)) return 0;
    while (pb_decode_tag(&is, &wt, &tag, &eof)) {
        if (tag <= PB_SIZE_MAX && pb_field_iter_find(&it, tag) && PB_HTYPE(it.type) == PB_HTYPE_ONEOF) {
            if (first == 0) first = (pb_size_t)tag;
            else if (tag != first) *mixed = 1;
        }
        if (!pb_skip_field(&is, wt)) break;
    }
    return first;
}

int kms_slot_decode(kms_slot *s, const uint8_t *in, size_t len)
{
    int mixed = 0;
    pb_size_t op = scan_op(&s->req, in, len, &mixed);
    /* nanopb clears a oneof member it starts on unless the tag already names it: name it (the slot
     * is all-zero, each field's proto3 default), so the member is not cleared a second time. */
    if (!mixed) s->req.which_op = op;
    s->whole = mixed;
    recorder r = {.src = in, .slot = s};
    pb_istream_t is = {.callback = record_read, .state = &r, .bytes_left = len};
    return pb_decode_ex(&is, Request_fields, &s->req, PB_DECODE_NOINIT);
}

/* Wipe the marked chunks of req. */
static void wipe_marked(kms_slot *s)
{
    uint8_t *base = (uint8_t *)&s->req;
    for (size_t c = 0; c < KMS_SLOT_MARKS * 8;) {
        if (!(s->marks[c / 8] & (1u << (c % 8)))) {
            c = c % 8 == 0 && s->marks[c / 8] == 0 ? c + 8 : c + 1;
            continue;
        }
        size_t end = c;
        while (end < KMS_SLOT_MARKS * 8 && (s->marks[end / 8] & (1u << (end % 8)))) end++;
        size_t from = c * KMS_SLOT_CHUNK, to = end * KMS_SLOT_CHUNK;
        kms_wipe(base + from, (to < sizeof s->req ? to : sizeof s->req) - from);
        c = end;
    }
    memset(s->marks, 0, sizeof s->marks);
}

void kms_slot_wipe(kms_slot *s)
{
    if (s->whole || !kms_pb_wipe(Request_fields, &s->req)) kms_wipe(&s->req, sizeof s->req);
    wipe_marked(s);
    s->whole = 0;
    if (!kms_pb_wipe(Response_fields, &s->resp)) kms_wipe(&s->resp, sizeof s->resp);
#ifdef KMS_WIPE_CHECK
    if (!kms_is_zero(&s->req, sizeof s->req) || !kms_is_zero(&s->resp, sizeof s->resp)) abort();
#endif
}
