/* Mailbox queues: intrusive FIFOs of envelopes. Every actor has two: control (stop,
 * exit signals, down) and user (bounded by the actor's capacity). The runtime always
 * drains control before user. */
#ifndef AXD_MAILBOX_H
#define AXD_MAILBOX_H
#include "core.h"

static inline void axd_mq_push(axd_mq *q, axd_env *e)
{
    e->next = NULL;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->len++;
}

static inline axd_env *axd_mq_pop(axd_mq *q)
{
    axd_env *e = q->head;
    if (e) {
        q->head = e->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
        e->next = NULL;
    }
    return e;
}

/* Append all of src to dst (src becomes empty). */
static inline void axd_mq_splice(axd_mq *dst, axd_mq *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->len += src->len;
    src->head = src->tail = NULL;
    src->len = 0;
}

/* Next envelope to run: control first, then user. */
static inline axd_env *axd_mailbox_next(axd_actor *a)
{
    axd_env *e = axd_mq_pop(&a->ctl);
    return e ? e : axd_mq_pop(&a->user);
}
#endif
