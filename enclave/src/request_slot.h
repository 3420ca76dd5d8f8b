/*
 * request_slot.h - where a request's bounded structs live: a pool of slots, each a Request and a
 * Response kept all-zero between requests, so a request neither allocates nor clears 80 KiB.
 *
 * kms_slot_take hands out a free slot (allocated zeroed on its first use, kept after); when all are
 * taken (more requests at once than the pool holds, or a request nested in another's OCALL on the
 * same thread) it allocates a zeroed one that kms_slot_give frees, so nesting never shares a slot.
 * kms_slot_decode decodes into the slot's Request and records which bytes of it the input was copied
 * into; kms_slot_wipe returns both structs to all-zero, storing only over what was written (pbwipe.h
 * for the fields' sizes and counts, the record for every byte the decoder copied in, a whole wipe of
 * the Request when its op oneof switched members), so nothing of a request outlives it.
 * Sanitizer and unit builds (KMS_WIPE_CHECK) check after every wipe that both structs are all-zero
 * and abort when not. Thread-safe; a slot belongs to one request on one thread until given back.
 */
#ifndef KMS_ENCLAVE_REQUEST_SLOT_H
#define KMS_ENCLAVE_REQUEST_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include "kms/proto/enclave/v1/boundary.pb.h"

/* The Request is recorded in chunks of this many bytes. */
#define KMS_SLOT_CHUNK 64u
#define KMS_SLOT_MARKS ((sizeof(Request) + KMS_SLOT_CHUNK * 8 - 1) / (KMS_SLOT_CHUNK * 8))

typedef struct kms_slot {
    Request req;
    Response resp;
    uint8_t marks[KMS_SLOT_MARKS]; /* bit c: the decoder copied input into req's chunk c */
    int whole;                     /* wipe req whole (its op oneof switched members) */
    int index;                     /* in the pool, or -1: allocated for one request */
} kms_slot;

/* A slot with both structs all-zero; NULL when out of memory. */
kms_slot *kms_slot_take(void);

/* Decode in[0..len) into s->req (nanopb, every field within its bound), recording where the input's
 * bytes went. 1 on success; on failure s->req holds what was decoded before it (wiped by give). */
int kms_slot_decode(kms_slot *s, const uint8_t *in, size_t len);

/* Return s->req and s->resp to all-zero (what was written only). */
void kms_slot_wipe(kms_slot *s);

/* Wipe s and hand it back (NULL: nothing). */
void kms_slot_give(kms_slot *s);

/* Free the pool's idle slots and the wipe's plans (tests; no request may run). The enclave's uninit
 * leaves them: they hold nothing, and its heap goes with the image. */
void kms_slot_pool_free(void);

#endif /* KMS_ENCLAVE_REQUEST_SLOT_H */
