/* Cross-worker queues (xq.h): a bounded MPSC ring with an ev_async wake-up. A producer
 * claims a cell by advancing head with a CAS once the cell's sequence says it is free,
 * writes the item, then publishes it by storing seq = pos + 1 (release); the consumer
 * takes the cell at tail once seq == tail + 1 (acquire) and frees it for the next round
 * with seq = tail + cap. */
#include "xq.h"

#include <stdlib.h>

#include "ax_mem.h"
#include "axactor/errors.h"

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_xq *q = w->data;
    axd_xmsg buf[64];
    uint32_t left = q->batch;
    while (left > 0) {
        size_t n = axd_xq_pop(q, buf, left < 64 ? left : 64);
        if (!n)
            return;
        left -= (uint32_t)n;
        q->fn(q, buf, n, q->ud);
    }
    /* A full batch taken: the rest waits for the next loop iteration, so one busy
     * producer cannot starve this worker's other watchers. */
    ev_async_send(q->loop, &q->wake);
}

int axd_xq_init(axd_xq *q, struct ev_loop *loop, size_t cap, uint32_t batch, axd_xq_fn fn, void *ud)
{
    if (!loop || !fn || cap > ((size_t)1 << 30))
        return AX_EINVAL;
    size_t n = 2;
    while (n < cap)
        n <<= 1;
    axd_xq_cell *cells = ax_try_malloc(n * sizeof *cells);
    if (!cells)
        return AX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        atomic_init(&cells[i].seq, i);
    q->cells = cells;
    q->mask = n - 1;
    atomic_init(&q->head, 0);
    q->tail = 0;
    atomic_init(&q->refused, 0);
    q->loop = loop;
    q->fn = fn;
    q->ud = ud;
    q->batch = batch ? batch : 64;
    ev_async_init(&q->wake, wake_cb);
    q->wake.data = q;
    ev_async_start(loop, &q->wake);
    return 0;
}

void axd_xq_free(axd_xq *q)
{
    if (!q || !q->cells)
        return;
    axd_xmsg buf[64];
    size_t n;
    while ((n = axd_xq_pop(q, buf, 64)) > 0)
        q->fn(q, buf, n, q->ud);
    ev_async_stop(q->loop, &q->wake);
    ax_free(q->cells);
    q->cells = NULL;
}

int axd_xq_push(axd_xq *q, const axd_xmsg *m)
{
    if (!q->cells)
        return AX_EINVAL; /* freed at teardown (only the stopping thread is left then) */
    size_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
    axd_xq_cell *c;
    for (;;) {
        c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break; /* cell claimed */
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&q->refused, 1, memory_order_relaxed);
            return AX_EFULL; /* the consumer has not freed this cell of the last round */
        } else {
            pos = atomic_load_explicit(&q->head, memory_order_relaxed);
        }
    }
    c->v = *m;
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    ev_async_send(q->loop, &q->wake); /* thread-safe; coalesces while one is pending */
    return 0;
}

size_t axd_xq_pop(axd_xq *q, axd_xmsg *out, size_t max)
{
    size_t n = 0;
    while (n < max) {
        axd_xq_cell *c = &q->cells[q->tail & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (seq != q->tail + 1)
            break; /* empty, or the next cell is claimed but not yet written */
        out[n++] = c->v;
        atomic_store_explicit(&c->seq, q->tail + q->mask + 1, memory_order_release);
        q->tail++;
    }
    return n;
}
