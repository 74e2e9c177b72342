/* Cross-worker queues: how envelopes travel from one worker's thread to another's
 * (../shared/DESIGN.md, "Workers"). One bounded multi-producer single-consumer queue per
 * receiving worker: any thread pushes, only the owning worker's loop pops, woken by an
 * ev_async and draining in batches per loop iteration. A full queue refuses the push
 * (AX_EFULL: backpressure, never unbounded growth). The ring is Dmitry Vyukov's bounded
 * queue (a sequence number per cell), restricted to one consumer; tests/test_xq.c checks
 * it under ThreadSanitizer. */
#ifndef AXD_XQ_H
#define AXD_XQ_H

#include <ev.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "axactor/plugin.h"

/* One item: what it is for (kind, the receiver's business), to whom, and a pointer whose
 * ownership passes to the consumer with the item. */
typedef struct axd_xmsg {
    uint32_t kind;
    ax_ref to;
    void *p;
} axd_xmsg;

typedef struct axd_xq_cell {
    _Atomic size_t seq;
    axd_xmsg v;
} axd_xq_cell;

typedef struct axd_xq axd_xq;
/* Called on the consumer's loop with up to `batch` items popped in order. */
typedef void (*axd_xq_fn)(axd_xq *q, const axd_xmsg *items, size_t n, void *ud);

struct axd_xq {
    axd_xq_cell *cells;
    size_t mask;
    _Alignas(64) _Atomic size_t head; /* next cell to claim (producers) */
    _Alignas(64) size_t tail;         /* next cell to take (the consumer only) */
    struct ev_loop *loop;
    ev_async wake;
    axd_xq_fn fn;
    void *ud;
    uint32_t batch;
    _Atomic uint64_t refused; /* pushes refused because the queue was full */
};

/* A queue of `cap` items (rounded up to a power of two, >= 2) consumed on loop by fn,
 * at most `batch` items per call (0: 64). The ev_async is started on loop: call from the
 * loop's thread before any producer runs. 0, or AX_EINVAL / AX_ENOMEM. */
int axd_xq_init(axd_xq *q, struct ev_loop *loop, size_t cap, uint32_t batch, axd_xq_fn fn, void *ud);
/* Stop the watcher and free the ring (the loop's thread; no producer may run any more).
 * Items still queued are handed to fn first. Accepts a queue never initialised (zeroed). */
void axd_xq_free(axd_xq *q);
/* Any thread: queue one item and wake the consumer. AX_EFULL when the queue is full (the
 * caller still owns m->p). */
int axd_xq_push(axd_xq *q, const axd_xmsg *m);
/* The consumer's thread: pop up to max items in order; returns how many. */
size_t axd_xq_pop(axd_xq *q, axd_xmsg *out, size_t max);

#endif
