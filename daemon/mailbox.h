/* Mailbox queues: intrusive FIFOs of envelopes. Every actor has two: control (stop,
 * exit signals, down) and user (bounded by the actor's capacity). The runtime always
 * drains control before user. */
#ifndef AX_MAILBOX_H
#define AX_MAILBOX_H
#include "server.h"

static inline void ax_mq_push(ax_mq *q, ax_env *e)
{
    e->next = NULL;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->len++;
}

static inline ax_env *ax_mq_pop(ax_mq *q)
{
    ax_env *e = q->head;
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
static inline void ax_mq_splice(ax_mq *dst, ax_mq *src)
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
static inline ax_env *ax_mailbox_next(ax_actor *a)
{
    ax_env *e = ax_mq_pop(&a->ctl);
    return e ? e : ax_mq_pop(&a->user);
}
#endif
