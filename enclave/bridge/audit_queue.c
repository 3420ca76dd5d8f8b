/*
 * audit_queue.c - the audit entries ECALL threads have queued and not yet collected, in one list in
 * queue order (at most one per thread slot: each thread waits for its entry before it queues another).
 * Each entry has its own condition variable, so settling one wakes only the thread that waits for it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audit_queue.h"

typedef struct pending {
    uint64_t ticket, seq;
    int follows, taken, settled, outcome;
    uint32_t len;
    uint8_t *entry;
    pthread_cond_t cond;
    struct pending *next;
} pending;

struct kms_audit_queue {
    pthread_mutex_t lock;
    pthread_cond_t queued; /* the flusher waits here */
    pending *head;         /* queue order; a waiter unlinks its own entry */
    uint64_t last_ticket;
    int closed;
};

static void pending_free(pending *p)
{
    pthread_cond_destroy(&p->cond);
    free(p->entry);
    free(p);
}

kms_audit_queue *kms_audit_queue_new(void)
{
    kms_audit_queue *q = calloc(1, sizeof *q);
    if (q == NULL) return NULL;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        free(q);
        return NULL;
    }
    if (pthread_cond_init(&q->queued, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        free(q);
        return NULL;
    }
    return q;
}

void kms_audit_queue_free(kms_audit_queue *q)
{
    if (q == NULL) return;
    while (q->head != NULL) {
        pending *p = q->head;
        q->head = p->next;
        pending_free(p);
    }
    pthread_cond_destroy(&q->queued);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

int kms_audit_queue_put(kms_audit_queue *q, uint64_t seq, int follows, const uint8_t *entry, size_t len,
                        uint64_t *ticket)
{
    if (len > KMS_AUDIT_QUEUE_ENTRY_MAX || (entry == NULL && len > 0)) return -1;
    pending *p = calloc(1, sizeof *p);
    if (p == NULL) return -1;
    if ((p->entry = malloc(len > 0 ? len : 1)) == NULL || pthread_cond_init(&p->cond, NULL) != 0) {
        free(p->entry);
        free(p);
        return -1;
    }
    if (len > 0) memcpy(p->entry, entry, len);
    p->seq = seq, p->follows = follows != 0, p->len = (uint32_t)len;
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        pending_free(p);
        return -1;
    }
    p->ticket = *ticket = ++q->last_ticket;
    pending **at = &q->head;
    while (*at != NULL) at = &(*at)->next;
    *at = p;
    pthread_cond_signal(&q->queued);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

/* The link that points at ticket's entry, or NULL (lock held). */
static pending **find(kms_audit_queue *q, uint64_t ticket)
{
    for (pending **at = &q->head; *at != NULL; at = &(*at)->next)
        if ((*at)->ticket == ticket) return at;
    return NULL;
}

int kms_audit_queue_wait(kms_audit_queue *q, uint64_t ticket)
{
    pthread_mutex_lock(&q->lock);
    pending **at = find(q, ticket);
    if (at == NULL) {
        pthread_mutex_unlock(&q->lock);
        return -1;
    }
    pending *p = *at;
    while (!p->settled && !q->closed) pthread_cond_wait(&p->cond, &q->lock);
    int outcome = p->settled ? p->outcome : -1;
    *find(q, ticket) = p->next; /* other entries may have been unlinked meanwhile: find the link again */
    pthread_mutex_unlock(&q->lock);
    pending_free(p);
    return outcome;
}

static void put_u64(uint8_t *out, uint64_t v)
{
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *out, uint32_t v)
{
    for (int i = 0; i < 4; i++) out[i] = (uint8_t)(v >> (8 * i));
}

int kms_audit_queue_take(kms_audit_queue *q, uint8_t *buf, size_t cap, size_t *used)
{
    int count = 0;
    size_t off = 0;
    *used = 0;
    if (cap < KMS_AUDIT_QUEUE_HEADER + KMS_AUDIT_QUEUE_ENTRY_MAX) return -1; /* the largest entry must fit */
    pthread_mutex_lock(&q->lock);
    for (;;) {
        for (pending *p = q->head; p != NULL && !q->closed; p = p->next) {
            if (p->taken) continue;
            if (cap - off < KMS_AUDIT_QUEUE_HEADER + p->len) break; /* the rest at the next take */
            put_u64(buf + off, p->ticket);
            put_u64(buf + off + 8, p->seq);
            put_u32(buf + off + 16, (uint32_t)p->follows);
            put_u32(buf + off + 20, p->len);
            memcpy(buf + off + KMS_AUDIT_QUEUE_HEADER, p->entry, p->len);
            off += KMS_AUDIT_QUEUE_HEADER + p->len;
            p->taken = 1;
            count++;
        }
        if (count > 0 || q->closed) break;
        pthread_cond_wait(&q->queued, &q->lock);
    }
    int closed = q->closed;
    pthread_mutex_unlock(&q->lock);
    *used = off;
    return closed ? -1 : count;
}

void kms_audit_queue_settle(kms_audit_queue *q, const uint64_t *tickets, const int *outcomes, size_t n)
{
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < n; i++) {
        pending **at = find(q, tickets[i]);
        if (at == NULL || !(*at)->taken || (*at)->settled) continue; /* its thread gave up (closed) */
        (*at)->settled = 1;
        (*at)->outcome = outcomes[i] == 0 || outcomes[i] == 1 ? outcomes[i] : -1;
        pthread_cond_signal(&(*at)->cond);
    }
    pthread_mutex_unlock(&q->lock);
}

void kms_audit_queue_close(kms_audit_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->queued);
    for (pending *p = q->head; p != NULL; p = p->next) pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&q->lock);
}
