/* A node's workers (workers.h): the threads, their inboxes, and how each kind of
 * cross-worker item is handled on the receiving worker. */
#include "workers.h"

#include <sched.h>
#include <string.h>
#include <time.h>

#include "ax_mem.h"
#include "core_int.h"
#include "log.h"

/* A signal's or a reply's body (kind in the xq item). */
typedef struct xw_body {
    ax_ref from;
    uint64_t mref;            /* MONITOR/DEMONITOR; REPLY: unused */
    uint32_t slot, gen;       /* REPLY: the pending ask */
    int status;               /* REPLY */
    void (*fn)(axd_rt *, void *); /* CALL */
    void *ud;
    size_t n;
    char data[];              /* reason (NUL-terminated) or reply payload */
} xw_body;

static int push(axd_rt *s, uint32_t w, uint32_t kind, ax_ref to, void *p)
{
    axd_workers *g = s->group;
    if (!g || w >= g->n)
        return AX_ENOPROC; /* no such worker: no such actor */
    axd_xmsg m = {.kind = kind, .to = to, .p = p};
    int rc = axd_xq_push(&g->w[w].inbox, &m);
    if (rc)
        s->ctr.xw_full++;
    return rc;
}

/* A body with n bytes of data (copied from p, if any) and a NUL after them. */
static xw_body *body_new(ax_ref from, uint64_t mref, const void *p, size_t n)
{
    xw_body *b = ax_try_malloc(sizeof *b + n + 1);
    if (!b)
        return NULL;
    memset(b, 0, sizeof *b);
    b->from = from;
    b->mref = mref;
    b->n = n;
    if (p && n)
        memcpy(b->data, p, n);
    b->data[n] = 0;
    return b;
}

/* Push b to worker w; on an error b is freed and the error returned. */
static int push_body(axd_rt *s, uint32_t w, uint32_t kind, ax_ref to, xw_body *b)
{
    if (!b)
        return AX_ENOMEM;
    int rc = push(s, w, kind, to, b);
    if (rc)
        ax_free(b);
    return rc;
}

int axd_xw_env(axd_rt *s, ax_ref to, axd_env *e)
{
    return push(s, axd_ref_worker(to), AXD_XW_ENV, to, e);
}

void axd_xw_answer(axd_rt *s, const axd_env *e, int status, const void *data, size_t n)
{
    if (!e->ask)
        return;
    if (e->ask_worker == s->worker) {
        axd_pending_complete(s, e->ask, e->ask_gen, status, data, n);
        return;
    }
    xw_body *b = body_new(AX_REF_NONE, 0, data, n);
    if (b) {
        b->slot = e->ask;
        b->gen = e->ask_gen;
        b->status = status;
    }
    if (push_body(s, e->ask_worker, AXD_XW_REPLY, AX_REF_NONE, b) != 0)
        s->ctr.xw_dropped++; /* the asker's timer answers it */
}

int axd_xw_signal(axd_rt *s, uint32_t kind, ax_ref to, ax_ref from, uint64_t mref, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (n > AX_NAME_MAX)
        n = AX_NAME_MAX;
    return push_body(s, axd_ref_worker(to), kind, to, body_new(from, mref, reason, n));
}

void axd_xw_event(axd_rt *s, uint32_t w, ax_ref who, const char *name, const char *doc, size_t n)
{
    size_t nl = name ? strlen(name) : 0;
    xw_body *b = body_new(AX_REF_NONE, name ? 1 : 0 /* has a name */, NULL, nl + 1 + n);
    if (b) {
        memcpy(b->data, name ? name : "", nl + 1); /* the name, NUL, then the document */
        memcpy(b->data + nl + 1, doc, n);
        b->n = n;
    }
    if (push_body(s, w, AXD_XW_EVENT, who, b) != 0)
        s->ctr.events_lagged++; /* that worker is too far behind: its subscribers miss it */
}

int axd_xw_down_to(axd_rt *s, uint32_t w, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason)
{
    return push_body(s, w, AXD_XW_DOWN, watcher, body_new(who, mref, reason, reason ? strlen(reason) : 0));
}

int axd_workers_call(axd_workers *g, uint32_t w, void (*fn)(axd_rt *rt, void *ud), void *ud)
{
    if (!g || w >= g->n || !fn)
        return AX_EINVAL;
    xw_body *b = body_new(AX_REF_NONE, 0, NULL, 0);
    if (!b)
        return AX_ENOMEM;
    b->fn = fn;
    b->ud = ud;
    axd_xmsg m = {.kind = AXD_XW_CALL, .p = b};
    int rc = axd_xq_push(&g->w[w].inbox, &m);
    if (rc)
        ax_free(b);
    return rc;
}

static void on_env(axd_rt *s, ax_ref to, axd_env *e)
{
    int sys = e->kind == AXD_ENV_SYS;
    axd_actor *a = sys ? axd_actor_get_any(s, to) : axd_actor_get(s, to);
    if (a && sys && e->m.id == s->sys_down_id && e->m.from.node == 0 && !axd_sup_xw_down_live(s, a, e->m.tag)) {
        axd_env_free(s, e); /* demonitored while the down was on its way */
        return;
    }
    axd_env ack = {.ask = 0};
    if (e->ack && e->ask) { /* the sender waits for "queued", not for a reply */
        ack.ask = e->ask;
        ack.ask_gen = e->ask_gen;
        ack.ask_worker = e->ask_worker;
        e->ask = 0;
    }
    int rc = a ? axd_actor_deliver(s, a, e) : AX_ENOPROC;
    char why[2 * AX_NAME_MAX + 48];
    size_t wn = 0;
    if (rc == AX_ENOMSG) /* the words a client of this worker would get (front/listener.c) */
        wn = (size_t)snprintf(why, sizeof why, "actor type '%s' has no message '%s'", a->type->name,
                              axd_msg_name(s, e->m.id));
    if (ack.ask)
        axd_xw_answer(s, &ack, rc, wn ? why : NULL, wn);
    if (rc) {
        if (!e->ask && !ack.ask)
            s->ctr.xw_dropped++;
        axd_xw_answer(s, e, rc, wn ? why : NULL, wn); /* an ask gets the error back on its worker */
        e->ask = 0;
        axd_env_drop(s, e, rc);
    }
}

static void inbox_cb(axd_xq *q, const axd_xmsg *it, size_t n, void *ud)
{
    axd_rt *s = ud;
    axd_workers *g = s->group;
    (void)q;
    for (size_t i = 0; i < n; i++) {
        const axd_xmsg *m = &it[i];
        if (atomic_load_explicit(&g->discard, memory_order_acquire)) {
            if (m->kind == AXD_XW_ENV) {
                axd_env_free(s, m->p);
            } else {
                xw_body *b = m->p;
                if (m->kind == AXD_XW_CALL && b)
                    b->fn(s, b->ud); /* still run: it may own ud (the worker's runtime is
                                      * still there, its thread has ended) */
                ax_free(b);
            }
            continue;
        }
        xw_body *b = m->p;
        switch (m->kind) {
        case AXD_XW_ENV: on_env(s, m->to, m->p); continue;
        case AXD_XW_REPLY: axd_pending_complete(s, b->slot, b->gen, b->status, b->data, b->n); break;
        case AXD_XW_CALL: b->fn(s, b->ud); break;
        case AXD_XW_DOWN: axd_runtime_deliver_down(s, m->to, b->mref, b->from, b->data); break;
        case AXD_XW_EVENT: {
            size_t nl = strlen(b->data);
            axd_events_deliver(s, m->to, b->mref ? b->data : NULL, b->data + nl + 1, b->n);
            break;
        }
        default: axd_sup_xw_signal(s, m->kind, m->to, b->from, b->mref, b->data); break;
        }
        ax_free(b);
    }
}

/* ---------------- synchronous calls ---------------- */

typedef struct xw_sync {
    _Atomic int refs;  /* the caller's and the callee's */
    _Atomic int done;
    void (*fn)(axd_rt *, void *);
    size_t size;
    unsigned char ud[];
} xw_sync;

static void sync_unref(xw_sync *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        ax_free(c);
}

static void calls_cb(axd_xq *q, const axd_xmsg *it, size_t n, void *ud)
{
    axd_rt *s = ud;
    (void)q;
    for (size_t i = 0; i < n; i++) {
        xw_sync *c = it[i].p;
        if (!atomic_load_explicit(&s->group->discard, memory_order_acquire))
            c->fn(s, c->ud);
        atomic_store_explicit(&c->done, 1, memory_order_release);
        sync_unref(c);
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int axd_workers_sync(axd_workers *g, uint32_t from, uint32_t w, void (*fn)(axd_rt *rt, void *ud), void *ud,
                     size_t ud_size, uint32_t timeout_ms)
{
    if (!g || w >= g->n || from >= g->n || !fn)
        return AX_EINVAL;
    xw_sync *c = ax_try_malloc(sizeof *c + ud_size);
    if (!c)
        return AX_ENOMEM;
    atomic_init(&c->refs, 2);
    atomic_init(&c->done, 0);
    c->fn = fn;
    c->size = ud_size;
    memcpy(c->ud, ud, ud_size);
    axd_xmsg m = {.kind = AXD_XW_CALL, .p = c};
    if (axd_xq_push(&g->w[w].calls, &m) != 0) {
        ax_free(c);
        return AX_EFULL;
    }
    double end = mono_s() + timeout_ms / 1000.0;
    axd_xmsg buf[16];
    int spins = 0;
    while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
        size_t k = axd_xq_pop(&g->w[from].calls, buf, 16); /* serve who calls us meanwhile */
        if (k) {
            calls_cb(&g->w[from].calls, buf, k, g->w[from].rt);
            continue;
        }
        if (++spins % 64 == 0 && mono_s() >= end) {
            sync_unref(c); /* the callee frees it when it gets to it */
            return AX_ETIMEDOUT;
        }
        sched_yield();
    }
    memcpy(ud, c->ud, ud_size);
    sync_unref(c);
    return 0;
}

int axd_workers_sync_error(int rc, const char **why)
{
    *why = rc == AX_ETIMEDOUT ? "the actor's worker did not answer in time" : "the actor's worker is busy";
    return rc == AX_ETIMEDOUT ? AX_ETIMEDOUT : AX_EBUSY;
}

uint32_t axd_workers_home(const axd_workers *g, const char *key, size_t klen)
{
    if (!g || g->n < 2)
        return 0;
    const axd_rt *r0 = g->w[0].rt;
    uint64_t h = r0->gate ? r0->gate->shard_of(r0->gate_ud, key, klen) : axd_hash(key, klen);
    return (uint32_t)(h % g->n);
}

/* ---------------- plugin types on every worker ---------------- */

typedef struct types_call {
    axd_plugin *p;
    int add;      /* 1: register p's types; 0: unregister them (if none has live actors) */
    int rc;
    uint32_t live;
    char err[256];
} types_call;

static void types_cb(axd_rt *s, void *ud)
{
    types_call *c = ud;
    axd_plugin *p = c->p;
    c->rc = 0;
    if (c->add) {
        for (size_t i = 0; i < p->n_types; i++) {
            axd_type *t;
            int rc = axd_type_register(s, p->types[i]->desc, p, &t, c->err, sizeof c->err);
            if (rc) {
                for (size_t k = 0; k < i; k++) /* this worker keeps none of them */
                    axd_type_unregister(s, axd_hmap_get(&s->types, p->types[k]->name, strlen(p->types[k]->name)));
                c->rc = rc;
                return;
            }
        }
        return;
    }
    axd_type *mine[64];
    size_t n = 0;
    for (size_t i = 0; i < p->n_types && n < 64; i++) {
        axd_type *t = axd_hmap_get(&s->types, p->types[i]->name, strlen(p->types[i]->name));
        if (t && t->plugin == p) {
            c->live += t->live;
            mine[n++] = t;
        }
    }
    if (c->live) {
        c->rc = AX_EBUSY;
        return;
    }
    for (size_t i = 0; i < n; i++)
        axd_type_unregister(s, mine[i]);
}

static int types_on(axd_workers *g, uint32_t w, axd_plugin *p, int add, types_call *c)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->add = add;
    int rc = axd_workers_sync(g, 0, w, types_cb, c, sizeof *c, 5000);
    return rc ? rc : c->rc;
}

int axd_workers_add_types(axd_workers *g, axd_plugin *p, char *err, size_t errlen)
{
    types_call c;
    for (uint32_t w = 1; g && w < g->n; w++) {
        int rc = types_on(g, w, p, 1, &c);
        if (rc) {
            snprintf(err, errlen, "worker %u: %s", w, c.err[0] ? c.err : ax_strerror(rc));
            for (uint32_t k = 1; k < w; k++)
                types_on(g, k, p, 0, &c);
            return rc;
        }
    }
    return 0;
}

int axd_workers_retire_types(axd_workers *g, axd_plugin *p, char *err, size_t errlen)
{
    types_call c;
    for (uint32_t w = 1; g && w < g->n; w++) {
        int rc = types_on(g, w, p, 0, &c);
        if (rc) {
            if (rc == AX_EBUSY)
                snprintf(err, errlen, "plugin '%s' still has %u live actors on worker %u; stop them first", p->name,
                         c.live, w);
            else
                snprintf(err, errlen, "worker %u: %s", w, ax_strerror(rc));
            for (uint32_t k = 1; k < w; k++)
                types_on(g, k, p, 1, &c); /* as it was */
            return rc;
        }
    }
    return 0;
}

/* ---------------- other nodes, from workers 1..n-1 ----------------
 * The cluster runs on worker 0: what a worker's actors send to other nodes goes there,
 * and what comes back (replies, downs) returns through the worker inboxes. */

enum { RQ_TELL, RQ_ASK, RQ_MONITOR, RQ_DEMONITOR, RQ_DOWN };
typedef struct remote_rq {
    int kind;
    ax_ref to, from;
    uint32_t msg;
    uint64_t mref;
    uint32_t slot, gen, worker, timeout_ms; /* ask: the asker's pending, on `worker` */
    size_t n;
    unsigned char data[]; /* payload, or the reason of a down */
} remote_rq;

/* A pending whose answer goes on to another worker's pending (u.client: conn_slot and
 * conn_gen are that pending's slot and generation, req_id its worker). */
void axd_xw_relay_done(axd_rt *s, axd_pending *p, int status, const void *data, size_t n)
{
    axd_env back = {.ask = p->u.client.conn_slot, .ask_gen = p->u.client.conn_gen,
                    .ask_worker = (uint8_t)p->u.client.req_id};
    axd_xw_answer(s, &back, status, data, n);
}

static void remote_cb(axd_rt *s, void *ud)
{
    remote_rq *q = ud;
    const axd_remote_ops *r = s->remote;
    switch (q->kind) {
    case RQ_TELL:
        if (!r || r->tell(s->remote_ud, q->to, q->msg, q->data, q->n, q->from) != 0)
            s->ctr.xw_dropped++;
        break;
    case RQ_ASK: {
        axd_pending *p = axd_pending_new(s, q->timeout_ms, axd_xw_relay_done);
        if (!p) {
            axd_env back = {.ask = q->slot, .ask_gen = q->gen, .ask_worker = (uint8_t)q->worker};
            axd_xw_answer(s, &back, AX_ENOMEM, NULL, 0);
            break;
        }
        p->u.client.conn_slot = q->slot;
        p->u.client.conn_gen = q->gen;
        p->u.client.req_id = q->worker;
        int rc = r ? r->ask(s->remote_ud, q->to, q->msg, q->data, q->n, p, q->from) : AX_ENOPROC;
        if (rc)
            axd_pending_complete(s, p->slot, p->gen, rc, NULL, 0); /* the error goes back */
        break;
    }
    case RQ_MONITOR:
        if (!r || r->monitor(s->remote_ud, q->from, q->to, q->mref) != 0)
            axd_runtime_deliver_down(s, q->from, q->mref, q->to, "noconnection");
        break;
    case RQ_DEMONITOR:
        if (r)
            r->demonitor_mref(s->remote_ud, q->from, q->mref);
        break;
    case RQ_DOWN: axd_runtime_deliver_down(s, q->to, q->mref, q->from, (const char *)q->data); break;
    }
    ax_free(q);
}

static int remote_send(axd_rt *s, remote_rq *q)
{
    int rc = axd_workers_call(s->group, 0, remote_cb, q);
    if (rc)
        ax_free(q);
    return rc;
}

static remote_rq *rq_new(int kind, ax_ref to, ax_ref from, const void *p, size_t n)
{
    remote_rq *q = ax_try_malloc(sizeof *q + n + 1);
    if (!q)
        return NULL;
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->to = to;
    q->from = from;
    q->n = n;
    if (n)
        memcpy(q->data, p, n);
    q->data[n] = 0;
    return q;
}

static int wr_tell(void *ud, ax_ref to, uint32_t msg, const void *p, size_t n, ax_ref from)
{
    remote_rq *q = rq_new(RQ_TELL, to, from, p, n);
    if (!q)
        return AX_ENOMEM;
    q->msg = msg;
    return remote_send(ud, q);
}

static int wr_ask(void *ud, ax_ref to, uint32_t msg, const void *p, size_t n, axd_pending *pd, ax_ref from)
{
    axd_rt *s = ud;
    remote_rq *q = rq_new(RQ_ASK, to, from, p, n);
    if (!q)
        return AX_ENOMEM;
    double rem = ev_timer_remaining(s->loop, &pd->timer);
    q->msg = msg;
    q->slot = pd->slot;
    q->gen = pd->gen;
    q->worker = s->worker;
    q->timeout_ms = rem > 0 ? (uint32_t)(rem * 1000.0) + 1 : 1;
    return remote_send(s, q); /* on AX_OK the answer comes back to pd, exactly once */
}

static int wr_monitor(void *ud, ax_ref watcher, ax_ref target, uint64_t mref)
{
    remote_rq *q = rq_new(RQ_MONITOR, target, watcher, NULL, 0);
    if (!q)
        return AX_ENOMEM;
    q->mref = mref;
    return remote_send(ud, q);
}

static int wr_demonitor_mref(void *ud, ax_ref watcher, uint64_t mref)
{
    remote_rq *q = rq_new(RQ_DEMONITOR, AX_REF_NONE, watcher, NULL, 0);
    if (!q)
        return AX_ENOMEM;
    q->mref = mref;
    return remote_send(ud, q);
}

static void wr_deliver_down(void *ud, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason)
{
    remote_rq *q = rq_new(RQ_DOWN, watcher, who, reason, strlen(reason));
    if (q) {
        q->mref = mref;
        remote_send(ud, q);
    }
}

static int wr_keyed_send(void *ud, const char *owner, const char *type, size_t tlen, const char *key, size_t klen,
                         uint64_t epoch, unsigned kflags, const char *msg, size_t mlen, const void *p, size_t n,
                         ax_ref from, axd_pending *pd)
{
    (void)ud, (void)owner, (void)type, (void)tlen, (void)key, (void)klen, (void)epoch, (void)kflags, (void)msg;
    (void)mlen, (void)p, (void)n, (void)from, (void)pd;
    return AX_EBUSY; /* keyed routing to other nodes is worker 0's */
}

static uint32_t wr_live_nodes(void *ud) { return (void)ud, 1; }
static void wr_share_epoch(void *ud, uint32_t shard, uint64_t epoch) { (void)ud, (void)shard, (void)epoch; }

static const axd_remote_ops worker_remote_ops = {
    .tell = wr_tell,
    .ask = wr_ask,
    .monitor = wr_monitor,
    .demonitor_mref = wr_demonitor_mref,
    .deliver_down = wr_deliver_down,
    .keyed_send = wr_keyed_send,
    .live_nodes = wr_live_nodes,
    .share_epoch = wr_share_epoch,
};

static void *worker_main(void *arg)
{
    axd_worker *w = arg;
    ev_run(w->loop, 0);
    return NULL;
}

static void register_types(axd_rt *dst, const axd_rt *src)
{
    axd_hmap_ent *e;
    for (size_t i = 0; (i = axd_hmap_next(&src->types, i, &e)) != 0;) {
        const axd_type *t = e->val;
        axd_type *mine;
        char err[256];
        if (axd_type_register(dst, t->desc, t->plugin, &mine, err, sizeof err) != 0)
            axd_log(AX_LOG_ERROR, "workers", "worker %u: %s", dst->worker, err);
    }
}

static void unregister_types(axd_rt *s)
{
    axd_hmap_ent *e;
    size_t n = 0, cap = s->types.len;
    axd_type **v = ax_calloc(cap ? cap : 1, sizeof *v);
    for (size_t i = 0; (i = axd_hmap_next(&s->types, i, &e)) != 0 && n < cap;)
        v[n++] = e->val;
    for (size_t i = 0; i < n; i++)
        axd_type_unregister(s, v[i]);
    ax_free(v);
    axd_hmap_free(&s->types);
}

int axd_workers_start(axd_workers *g, axd_rt *rt0, uint32_t n, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (n < 1 || n > AXD_WORKERS_MAX) {
        snprintf(err, errlen, "runtime.workers must be 1..%d (got %u)", AXD_WORKERS_MAX, n);
        return AX_EINVAL;
    }
    g->w = ax_calloc(n, sizeof *g->w);
    g->n = n;
    atomic_init(&g->discard, 0);
    g->w[0].rt = rt0;
    g->w[0].loop = rt0->loop;
    rt0->group = g;
    rt0->worker = 0;
    for (uint32_t i = 1; i < n; i++) {
        axd_worker *w = &g->w[i];
        w->loop = ev_loop_new(EVFLAG_AUTO);
        if (!w->loop) {
            snprintf(err, errlen, "worker %u: cannot create an event loop", i);
            g->n = i;
            axd_workers_stop(g, "shutdown");
            return AX_EIO;
        }
        w->rt = ax_calloc(1, sizeof *w->rt);
        axd_runtime_init_worker(w->rt, w->loop, rt0, i);
        w->rt->group = g;
        axd_rt_set_remote(w->rt, &worker_remote_ops, w->rt); /* other nodes: through worker 0 */
        register_types(w->rt, rt0);
    }
    for (uint32_t i = 0; i < n; i++)
        if (axd_xq_init(&g->w[i].inbox, g->w[i].loop, AXD_WORKER_INBOX, 0, inbox_cb, g->w[i].rt) != 0 ||
            axd_xq_init(&g->w[i].calls, g->w[i].loop, 1024, 0, calls_cb, g->w[i].rt) != 0) {
            snprintf(err, errlen, "worker %u: cannot allocate its inbox", i);
            g->n = i;
            axd_workers_stop(g, "shutdown");
            return AX_ENOMEM;
        }
    for (uint32_t i = 1; i < n; i++) {
        if (pthread_create(&g->w[i].th, NULL, worker_main, &g->w[i]) != 0) {
            snprintf(err, errlen, "worker %u: cannot start its thread", i);
            axd_workers_stop(g, "shutdown");
            return AX_EIO;
        }
        g->w[i].started = 1;
    }
    return 0;
}

static void stop_all_cb(axd_rt *s, void *ud)
{
    s->stopping = 1;
    axd_runtime_stop_all(s, ud);
}

static void quit_cb(axd_rt *s, void *ud)
{
    (void)ud;
    if (s->sink && s->sink->stop) /* its clients: the answers of its actors are out */
        s->sink->stop(s->sink_ud);
    ev_break(s->loop, EVBREAK_ALL);
}

void axd_workers_stop(axd_workers *g, const char *reason)
{
    if (!g || !g->w)
        return;
    /* 1. every worker stops its actors (their asks are answered, across workers too) */
    for (uint32_t i = 1; i < g->n; i++)
        if (g->w[i].started)
            while (axd_workers_call(g, i, stop_all_cb, (void *)reason) == AX_EFULL)
                ev_run(g->w[0].loop, EVRUN_NOWAIT);
    g->w[0].rt->stopping = 1;
    axd_runtime_stop_all(g->w[0].rt, reason);
    /* 2. then each ends its loop; what it sent before arrives first (per-sender order) */
    for (uint32_t i = 1; i < g->n; i++)
        if (g->w[i].started)
            while (axd_workers_call(g, i, quit_cb, NULL) == AX_EFULL)
                ev_run(g->w[0].loop, EVRUN_NOWAIT);
    for (uint32_t i = 1; i < g->n; i++)
        if (g->w[i].started) {
            pthread_join(g->w[i].th, NULL);
            g->w[i].started = 0;
        }
    /* offload jobs: running ones finish (their results wait in the worker queues), queued
     * ones are dropped, before any worker's runtime goes */
    axd_pool_stop(g->w[0].rt->pool);
    /* 3. worker 0 takes the replies the others sent it; the rest is freed unhandled */
    if (g->w[0].inbox.cells)
        ev_run(g->w[0].loop, EVRUN_NOWAIT);
    atomic_store_explicit(&g->discard, 1, memory_order_release);
    for (uint32_t i = 0; i < g->n; i++) {
        axd_xq_free(&g->w[i].inbox);
        axd_xq_free(&g->w[i].calls);
    }
    for (uint32_t i = 1; i < g->n; i++) {
        axd_worker *w = &g->w[i];
        if (w->rt) {
            axd_runtime_free(w->rt);
            unregister_types(w->rt);
            ax_free(w->rt);
        }
        if (w->loop)
            ev_loop_destroy(w->loop);
    }
    g->w[0].rt->group = NULL;
    ax_free(g->w);
    g->w = NULL;
    g->n = 0;
}

/* ---------------- one actor's operation on its worker ---------------- */

typedef struct op_call {
    ax_ref r;
    int op;
    int rc;
    char reason[AX_NAME_MAX + 1];
} op_call;

static void op_cb(axd_rt *s, void *ud)
{
    op_call *c = ud;
    axd_actor *a = axd_actor_get(s, c->r);
    if (!a) {
        c->rc = AX_ENOPROC;
        return;
    }
    switch (c->op) {
    case AXD_OP_STOP: c->rc = axd_actor_stop(s, a, c->reason); break;
    case AXD_OP_EXIT: c->rc = axd_sup_exit(s, AX_REF_NONE, a, c->reason); break;
    default: c->rc = AX_OK; break;
    }
}

int axd_workers_actor_op(axd_rt *s, ax_ref r, int op, const char *reason, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    uint32_t w = axd_ref_worker(r);
    if (w == s->worker || !s->group) {
        axd_actor *a = w == s->worker ? axd_actor_get(s, r) : NULL;
        if (!a)
            return AX_ENOPROC;
        return op == AXD_OP_STOP ? axd_actor_stop(s, a, reason)
             : op == AXD_OP_EXIT ? axd_sup_exit(s, AX_REF_NONE, a, reason)
                                 : AX_OK;
    }
    if (w >= s->group->n)
        return AX_ENOPROC;
    op_call c = {.r = r, .op = op, .rc = AX_EFAILED};
    snprintf(c.reason, sizeof c.reason, "%s", reason ? reason : "");
    int rc = axd_workers_sync(s->group, s->worker, w, op_cb, &c, sizeof c, s->cfg->ask_timeout_ms);
    if (rc)
        return axd_workers_sync_error(rc, why);
    return c.rc;
}
