/* Blocking work off the loop (ax_offload, ABI 1.8): a node-wide pool of
 * runtime.offload_threads threads (started at the first offload) takes jobs from one
 * bounded queue (runtime.offload_queue; a full queue is AX_EFULL to the actor). A job
 * runs fn(arg) on a pool thread, which must not call the plugin API; its result goes
 * back to the actor's worker through that worker's completion queue (an xq, made on the
 * worker's thread at its first offload) and arrives as the done message, beside the
 * signals (never refused for capacity). cleanup(arg) then runs on that worker: after the
 * done message was queued, or when the actor is gone and the result is dropped. At
 * teardown queued jobs are dropped (cleanup on the stopping thread) and running ones
 * finish first. */
#include <pthread.h>
#include <string.h>

#include "ax_mem.h"
#include "core_int.h"
#include "log.h"
#include "workers.h"

typedef struct axd_ojob {
    ax_offload_fn fn;
    void (*cleanup)(void *arg);
    void *arg;
    axd_rt *rt;    /* the actor's worker */
    ax_ref actor;
    uint32_t msg;
    uint64_t tag;
    int status;    /* set by the pool thread */
    size_t n;
    uint8_t *result;
} axd_ojob;

struct axd_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    axd_ojob **q;   /* ring of cap jobs */
    uint32_t cap, head, len;
    uint32_t n_threads, started;
    pthread_t *th;
    int stopping;
    _Atomic uint64_t done, dropped;
};

static _Thread_local int in_pool; /* this thread is a pool thread */

int axd_offload_in_pool(void) { return in_pool; }

axd_pool *axd_pool_new(uint32_t threads, uint32_t queue)
{
    axd_pool *p = ax_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->cap = queue ? queue : 1;
    p->q = ax_calloc(p->cap, sizeof *p->q);
    p->n_threads = threads ? threads : 1;
    return p;
}

static void *pool_main(void *arg)
{
    axd_pool *p = arg;
    uint8_t *buf = ax_malloc(AX_OFFLOAD_RESULT_MAX);
    in_pool = 1;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->len && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping) { /* what is still queued is dropped by axd_pool_stop */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        axd_ojob *j = p->q[p->head];
        p->head = (p->head + 1) % p->cap;
        p->len--;
        pthread_mutex_unlock(&p->mu);
        size_t n = 0;
        j->status = j->fn(j->arg, buf, AX_OFFLOAD_RESULT_MAX, &n);
        if (n > AX_OFFLOAD_RESULT_MAX)
            n = AX_OFFLOAD_RESULT_MAX;
        j->n = n;
        j->result = n ? ax_malloc(n) : NULL;
        if (n)
            memcpy(j->result, buf, n);
        axd_xmsg m = {.kind = 0, .p = j};
        /* the completion queue holds every job that can be out at once: it is not full */
        if (axd_xq_push(j->rt->offload_q, &m) != 0) {
            atomic_fetch_add(&p->dropped, 1); /* its worker is gone (teardown) */
            ax_free(j->result);
            if (j->cleanup)
                j->cleanup(j->arg);
            ax_free(j);
        }
    }
    ax_free(buf);
    return NULL;
}

/* On the actor's worker: the result becomes the done message, then cleanup runs. */
static void completions_cb(axd_xq *q, const axd_xmsg *it, size_t n, void *ud)
{
    axd_rt *s = ud;
    (void)q;
    for (size_t i = 0; i < n; i++) {
        axd_ojob *j = it[i].p;
        axd_actor *a = axd_actor_get(s, j->actor);
        axd_env *e = a ? axd_env_new(s, j->n) : NULL;
        if (e) {
            if (j->n)
                memcpy(e->data, j->result, j->n);
            e->m.id = j->msg;
            e->m.tag = j->tag;
            e->m.status = j->status;
            e->kind = AXD_ENV_SYS; /* beside the signals: never refused for capacity */
            if (axd_actor_deliver(s, a, e) != 0) {
                axd_env_free(s, e);
                e = NULL;
            }
        }
        if (!e && s->pool)
            atomic_fetch_add(&s->pool->dropped, 1); /* the actor is gone */
        else if (s->pool)
            atomic_fetch_add(&s->pool->done, 1);
        if (j->cleanup)
            j->cleanup(j->arg);
        ax_free(j->result);
        ax_free(j);
    }
}

int axd_api_offload(ax_ctx *cx, ax_offload_fn fn, void (*cleanup)(void *arg), void *arg, uint32_t done_msg,
                    uint64_t tag)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_rt *s = cx->srv;
    axd_pool *p = s->pool;
    if (!cx->self || !fn || !done_msg || !axd_msg_valid(s->msgs, done_msg))
        return AX_EINVAL;
    if (!p)
        return AX_ENOTSUP;
    if (!s->offload_q) { /* this worker's completion queue, on its own thread */
        axd_xq *q = ax_calloc(1, sizeof *q);
        if (axd_xq_init(q, s->loop, p->cap + p->n_threads, 0, completions_cb, s) != 0) {
            ax_free(q);
            return AX_ENOMEM;
        }
        ev_unref(s->loop); /* it alone does not keep the loop running */
        s->offload_q = q;
    }
    axd_ojob *j = ax_try_malloc(sizeof *j);
    if (!j)
        return AX_ENOMEM;
    *j = (axd_ojob){.fn = fn, .cleanup = cleanup, .arg = arg, .rt = s, .actor = axd_ref(s, cx->self),
                    .msg = done_msg, .tag = tag};
    pthread_mutex_lock(&p->mu);
    int rc = AX_OK;
    if (p->stopping)
        rc = AX_ECANCELED;
    else if (p->len == p->cap)
        rc = AX_EFULL;
    if (!rc && !p->started) {
        p->th = ax_calloc(p->n_threads, sizeof *p->th);
        for (uint32_t i = 0; i < p->n_threads; i++)
            if (pthread_create(&p->th[i], NULL, pool_main, p) == 0)
                p->started++;
        if (!p->started)
            rc = AX_EIO;
    }
    if (!rc) {
        p->q[(p->head + p->len) % p->cap] = j;
        p->len++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc)
        ax_free(j); /* not taken: the caller still owns arg */
    return rc;
}

void axd_pool_stop(axd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    int was = p->stopping;
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (was)
        return;
    for (uint32_t i = 0; i < p->started; i++) /* running jobs finish and send their results */
        pthread_join(p->th[i], NULL);
    /* queued jobs never run: their actors get nothing, their args are cleaned up */
    axd_ojob *drop[64];
    for (;;) {
        uint32_t k = 0;
        pthread_mutex_lock(&p->mu);
        while (p->len && k < 64) {
            drop[k++] = p->q[p->head];
            p->head = (p->head + 1) % p->cap;
            p->len--;
        }
        pthread_mutex_unlock(&p->mu);
        if (!k)
            break;
        for (uint32_t i = 0; i < k; i++) {
            if (drop[i]->cleanup)
                drop[i]->cleanup(drop[i]->arg);
            ax_free(drop[i]);
        }
    }
}

void axd_pool_free(axd_pool *p)
{
    if (!p)
        return;
    axd_pool_stop(p);
    ax_free(p->th);
    ax_free(p->q);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    ax_free(p);
}

/* A worker's runtime is freed: results still on their way to it are dropped (cleanup
 * runs here); the pool must have stopped first. */
void axd_offload_q_free(axd_rt *s)
{
    if (!s->offload_q)
        return;
    ev_ref(s->loop); /* balance the ev_unref of its start */
    axd_xq_free(s->offload_q); /* its callback delivers to actors still there, or drops */
    ax_free(s->offload_q);
    s->offload_q = NULL;
}
