/*
 * pbwipe.h - return a nanopb struct that started all-zero to all-zero, storing only over what can
 * have been written: a walk of the message's fields (read once per message type from nanopb's
 * descriptor into a plan, pbwipe.c). The request path keeps its
 * bounded Request/Response structs zeroed between requests (request.c) and wipes them with this
 * instead of clearing 36-45 KiB per request (docs/performance.md, docs/boundary.md).
 *
 * What the walk covers, per static field: a scalar, enum, bool or fixed-length bytes field whole; a
 * bytes field's size and its first `size` bytes (size clamped to the bound); a string whole (strings
 * are small, and one decoded twice may hold bytes after its terminator); a submessage by recursion; a
 * repeated field's count and its first `count` elements (clamped: nanopb leaves bound + 1 after an
 * array overflow); a oneof's tag and its active member only; `has_` flags. It cannot see bytes a writer
 * left beyond a bytes field's `size` or in a oneof member that is no longer active: the request path's
 * decoder records where the input's bytes went and falls back to a whole wipe on a oneof switch
 * (request_slot.c). Sanitizer and unit builds check after every wipe that the struct is all-zero
 * (KMS_WIPE_CHECK). Thread-safe: a plan is built once under a lock and read without one.
 */
#ifndef KMS_ENCLAVE_PBWIPE_H
#define KMS_ENCLAVE_PBWIPE_H

#include <stddef.h>

#include <pb.h>

/* Wipe what the walk covers of msg (a struct of desc's message). Returns 1, or 0 when desc holds a
 * field the walk does not know (not static: never in this build, whose fields are all bounded) or
 * when out of memory for its plan; the caller then wipes the struct whole. */
int kms_pb_wipe(const pb_msgdesc_t *desc, void *msg);

/* Free the per-message plans the walk keeps (the enclave's uninit: no request runs). */
void kms_pb_wipe_plans_free(void);

/* 1 when p[0..n) is all-zero. */
int kms_is_zero(const void *p, size_t n);

#endif /* KMS_ENCLAVE_PBWIPE_H */
