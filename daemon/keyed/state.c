/* The keyed layer's side of durable keyed actors (core/persist.c): the shard gate's
 * state_load / state_write. The lease store is worker 0's (its loop), so an operation of
 * another worker's actor travels there and its result comes back to that worker, in
 * order per worker (both hops are FIFO), so one actor's writes reach the store in the
 * order it made them. Counts per shard feed `axctl shards` and `axctl status`. */
#include <string.h>

#include "ax_mem.h"
#include "keyed.h"
#include "lease.h"
#include "log.h"
#include "workers.h"

/* Where durable state is kept: a store of its own (state.store = redis), or the lease store. */
static axd_lease_store *state_store(const axd_keyed *s) { return s->state_store ? s->state_store : s->lease_store; }

typedef void (*state_done_fn)(axd_rt *rt, void *dud, int status, int found, const void *data, size_t n);

typedef struct sop {
    axd_keyed *s;
    axd_rt *rt; /* the caller's runtime (its worker runs done) */
    uint32_t worker, shard;
    uint64_t epoch;
    int load, del;
    state_done_fn done;
    void *dud;
    int status, found;
    void *res;  /* a load's record (owned) */
    size_t res_len;
    size_t nlen, n;
    char buf[]; /* name, then the value */
} sop;

int axd_route_release_ready(void *ud, uint32_t shard)
{
    axd_keyed *s = ud;
    if (!s->state_inflight || shard >= s->cfg->shard_count)
        return 1;
    return atomic_load_explicit(&s->stops_pending[shard], memory_order_acquire) == 0 &&
           atomic_load_explicit(&s->state_inflight[shard], memory_order_acquire) == 0;
}

static void inflight_done(axd_keyed *s, uint32_t shard)
{
    if (s->state_inflight && shard < s->cfg->shard_count)
        atomic_fetch_sub_explicit(&s->state_inflight[shard], 1, memory_order_release);
}

static void sop_finish(axd_rt *rt, void *ud)
{
    sop *q = ud;
    (void)rt;
    q->done(q->rt, q->dud, q->status, q->found, q->res, q->res_len);
    ax_free(q->res);
    ax_free(q);
}

static void back_retry(int revents, void *arg);

/* From worker 0: hand the result to the caller's worker (retried while its inbox is full). */
static void sop_back(sop *q)
{
    if (q->s->freeing) { /* axd_route_free cancels what is in flight: the runtimes may be gone */
        q->done(NULL, q->dud, AX_ECANCELED, 0, NULL, 0);
        ax_free(q->res);
        ax_free(q);
        return;
    }
    if (q->worker == 0) {
        sop_finish(q->rt, q);
        return;
    }
    int rc = axd_workers_call(q->s->rt->group, q->worker, sop_finish, q);
    if (rc == AX_EFULL) {
        ev_once(q->s->loop, -1, 0, 0.001, back_retry, q);
    } else if (rc) {
        /* teardown: that worker's runtime is gone; done frees what it owns, nothing else */
        q->done(NULL, q->dud, AX_ECANCELED, 0, NULL, 0);
        ax_free(q->res);
        ax_free(q);
    }
}

static void back_retry(int revents, void *arg)
{
    (void)revents;
    sop_back(arg);
}

static void store_cb(void *ud, uint32_t shard, const axd_state_result *r)
{
    sop *q = ud;
    axd_keyed *s = q->s;
    inflight_done(s, q->shard);
    q->status = r->status;
    q->found = r->status == AX_OK && r->found;
    if (q->found && r->len) {
        q->res = ax_malloc(r->len);
        memcpy(q->res, r->data, r->len);
        q->res_len = r->len;
    }
    if (s->state_stats && shard < s->cfg->shard_count) {
        axd_route_state_stat *st = &s->state_stats[shard];
        if (r->status == AX_OK) {
            if (q->load)
                st->loads++;
            else
                st->writes++;
            if (r->records >= 0)
                st->records = r->records;
        } else if (r->status == AX_ESTALE) {
            st->fenced++;
        } else {
            st->errors++;
        }
    }
    sop_back(q);
}

/* On worker 0. */
static void sop_issue(axd_rt *rt, void *ud)
{
    (void)rt;
    sop *q = ud;
    axd_keyed *s = q->s;
    int rc = AX_ENOTSUP;
    axd_lease_store *st = state_store(s);
    if (st)
        rc = q->load ? axd_state_load(st, q->shard, q->epoch, q->buf, q->nlen, store_cb, q)
                     : axd_state_write(st, q->shard, q->epoch, q->buf, q->nlen, q->buf + q->nlen, q->n, q->del,
                                       store_cb, q);
    if (rc != 0) {
        inflight_done(s, q->shard);
        q->status = rc;
        sop_back(q);
    }
}

static int state_op(void *ud, axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                    const void *data, size_t n, int load, int del, state_done_fn done, void *dud)
{
    axd_keyed *s = ud;
    if (!s->lease_store)
        return AX_ENOTSUP;
    if (nlen > AXD_STATE_NAME_MAX || n > AXD_STATE_VALUE_MAX)
        return AX_ETOOBIG;
    sop *q = ax_try_malloc(sizeof *q + nlen + n);
    if (!q)
        return AX_ENOMEM;
    *q = (sop){.s = s, .rt = rt, .worker = rt->worker, .shard = shard, .epoch = epoch, .load = load, .del = del,
               .done = done, .dud = dud, .nlen = nlen, .n = n};
    memcpy(q->buf, name, nlen);
    if (n)
        memcpy(q->buf + nlen, data, n);
    if (s->state_inflight && shard < s->cfg->shard_count)
        atomic_fetch_add_explicit(&s->state_inflight[shard], 1, memory_order_relaxed);
    int rc;
    if (rt->worker == 0) /* the store calls back from the loop, never inside the call: done runs later */
        rc = q->load ? axd_state_load(state_store(s), shard, epoch, q->buf, nlen, store_cb, q)
                     : axd_state_write(state_store(s), shard, epoch, q->buf, nlen, q->buf + nlen, n, del, store_cb, q);
    else
        rc = axd_workers_call(rt->group, 0, sop_issue, q);
    if (rc) {
        inflight_done(s, shard);
        ax_free(q);
    }
    return rc;
}

int axd_route_state_load(void *ud, axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                         state_done_fn done, void *dud)
{
    return state_op(ud, rt, shard, epoch, name, nlen, NULL, 0, 1, 0, done, dud);
}

int axd_route_state_write(void *ud, axd_rt *rt, uint32_t shard, uint64_t epoch, const char *name, size_t nlen,
                          const void *data, size_t n, int del, state_done_fn done, void *dud)
{
    return state_op(ud, rt, shard, epoch, name, nlen, data, n, 0, del, done, dud);
}
