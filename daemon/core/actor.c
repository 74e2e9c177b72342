/* The actor runtime of one daemon: spawn, mailboxes, run-to-completion scheduling in
 * batches on the libev loop, tell/ask/reply, pending asks with timeouts, stop, and the
 * function table (ax_api) that plugin code calls. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "ax_build_config.h"
#include "ax_mem.h"
#include "log.h"
#include "monotime.h"
#include "peer.h"
#include "core_int.h"
#include "workers.h"

#define RUN_TURN_BUDGET 4096 /* actor turns per loop iteration before I/O gets a look */
#define ENV_POOL_MAX 65536

/* ---------------- message names ---------------- */

static axd_msgtab *msgtab_new(void)
{
    axd_msgtab *m = ax_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    axd_hmap_init(&m->names);
    m->by_id = ax_calloc(AXD_MSG_IDS_MAX + 1, sizeof *m->by_id); /* pages touched only when used */
    atomic_init(&m->n, 0);
    atomic_init(&m->users, 1);
    return m;
}

static void msgtab_release(axd_msgtab *m)
{
    if (!m || atomic_fetch_sub(&m->users, 1) != 1)
        return;
    axd_hmap_free(&m->names);
    for (uint32_t i = 1, n = atomic_load(&m->n); i <= n; i++)
        ax_free(m->by_id[i]);
    ax_free(m->by_id);
    pthread_mutex_destroy(&m->mu);
    ax_free(m);
}

/* ---------------- registered names (node-wide) ---------------- */

static axd_nametab *nametab_new(void)
{
    axd_nametab *n = ax_calloc(1, sizeof *n);
    pthread_mutex_init(&n->mu, NULL);
    axd_hmap_init(&n->refs);
    atomic_init(&n->users, 1);
    return n;
}

static void nametab_release(axd_nametab *n)
{
    if (!n || atomic_fetch_sub(&n->users, 1) != 1)
        return;
    axd_hmap_ent *e;
    for (size_t i = 0; (i = axd_hmap_next(&n->refs, i, &e)) != 0;)
        ax_free(e->val);
    axd_hmap_free(&n->refs);
    pthread_mutex_destroy(&n->mu);
    ax_free(n);
}

/* An entry owns its key: the map keeps the key pointer. */
typedef struct name_ent {
    ax_ref ref;
    char name[];
} name_ent;

/* Claim name for ref: 0, or AX_EEXIST when an actor of any worker holds it. */
static int name_claim(axd_rt *s, const char *name, size_t len, ax_ref ref)
{
    axd_nametab *n = s->regnames;
    int rc = 0;
    pthread_mutex_lock(&n->mu);
    if (axd_hmap_get(&n->refs, name, len)) {
        rc = AX_EEXIST;
    } else {
        name_ent *e = ax_malloc(sizeof *e + len + 1);
        e->ref = ref;
        memcpy(e->name, name, len);
        e->name[len] = 0;
        axd_hmap_put(&n->refs, e->name, len, e);
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

static void name_release(axd_rt *s, const char *name, ax_ref ref)
{
    axd_nametab *n = s->regnames;
    size_t len = strlen(name);
    pthread_mutex_lock(&n->mu);
    name_ent *e = axd_hmap_get(&n->refs, name, len);
    if (e && ax_ref_eq(e->ref, ref))
        ax_free(axd_hmap_del(&n->refs, name, len));
    pthread_mutex_unlock(&n->mu);
}

int axd_name_lookup(axd_rt *s, const char *name, size_t len, ax_ref *out)
{
    axd_nametab *n = s->regnames;
    pthread_mutex_lock(&n->mu);
    name_ent *e = axd_hmap_get(&n->refs, name, len);
    if (e)
        *out = e->ref;
    pthread_mutex_unlock(&n->mu);
    return e ? 0 : AX_ENOTFOUND;
}

uint32_t axd_msg_lookup(axd_rt *s, const char *name, size_t len)
{
    axd_msgtab *m = s->msgs;
    pthread_mutex_lock(&m->mu);
    uint32_t id = (uint32_t)(uintptr_t)axd_hmap_get(&m->names, name, len);
    pthread_mutex_unlock(&m->mu);
    return id;
}

uint32_t axd_msg_intern(axd_rt *s, const char *name, size_t len)
{
    axd_msgtab *m = s->msgs;
    if (len == 0 || len > AX_NAME_MAX)
        return 0;
    /* '$' names are system messages; plugins may declare handlers for them. */
    if (ax_name_valid(name, len) != 0)
        return 0;
    pthread_mutex_lock(&m->mu);
    uint32_t id = (uint32_t)(uintptr_t)axd_hmap_get(&m->names, name, len);
    uint32_t n = atomic_load_explicit(&m->n, memory_order_relaxed);
    if (!id && n < AXD_MSG_IDS_MAX) {
        id = n + 1;
        m->by_id[id] = ax_strndup(name, len);
        axd_hmap_put(&m->names, m->by_id[id], len, (void *)(uintptr_t)id);
        atomic_store_explicit(&m->n, id, memory_order_release); /* after the name is written */
    }
    pthread_mutex_unlock(&m->mu);
    return id;
}

const char *axd_msg_name(axd_rt *s, uint32_t id)
{
    return axd_msg_valid(s->msgs, id) ? s->msgs->by_id[id] : "?";
}

/* ---------------- envelopes ---------------- */

axd_env *axd_env_new(axd_rt *s, size_t n)
{
    axd_env *e;
    if (n <= AXD_ENV_POOL_PAYLOAD) {
        if (s->env_pool) {
            e = s->env_pool;
            s->env_pool = e->next;
            s->env_pool_len--;
        } else {
            e = ax_malloc(sizeof *e + AXD_ENV_POOL_PAYLOAD);
        }
        memset(e, 0, sizeof *e);
        e->pooled = 1;
    } else {
        e = ax_try_malloc(sizeof *e + n);
        if (!e)
            return NULL;
        memset(e, 0, sizeof *e);
    }
    e->m.size = sizeof e->m;
    e->m.data = e->data;
    e->m.len = n;
    e->ask_worker = (uint8_t)s->worker; /* a pending ask put on e is this worker's */
    return e;
}

void axd_env_free(axd_rt *s, axd_env *e)
{
    if (!e)
        return;
    if (e->pooled && s->env_pool_len < ENV_POOL_MAX) {
        e->next = s->env_pool;
        s->env_pool = e;
        s->env_pool_len++;
        return;
    }
    ax_free(e);
}

/* An envelope that will never be handled: its asker gets `status` now. */
void axd_env_drop(axd_rt *s, axd_env *e, int status)
{
    axd_xw_answer(s, e, status, NULL, 0);
    axd_env_free(s, e);
}

/* ---------------- pending asks ---------------- */

static void pending_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_pending *p = w->data;
    axd_rt *s = ev_userdata(loop);
    s->ctr.ask_timeouts++;
    axd_pending_complete(s, p->slot, p->gen, AX_ETIMEDOUT, NULL, 0);
}

axd_pending *axd_pending_new(axd_rt *s, uint32_t timeout_ms, axd_pending_done done)
{
    axd_pending *p = ax_try_malloc(sizeof *p);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->slot = axd_slots_alloc(&s->pending, p, &p->gen);
    if (!p->slot) {
        ax_free(p);
        return NULL;
    }
    p->done = done;
    p->t0 = ev_now(s->loop);
    ev_timer_init(&p->timer, pending_timeout_cb, timeout_ms / 1000.0, 0.);
    p->timer.data = p;
    ev_timer_start(s->loop, &p->timer);
    return p;
}

void axd_pending_complete(axd_rt *s, uint32_t slot, uint32_t gen, int status, const void *data, size_t n)
{
    axd_pending *p = axd_slots_get(&s->pending, slot, gen);
    if (!p) {
        s->ctr.late_replies++; /* the ask already timed out or its asker is gone */
        return;
    }
    axd_slots_release(&s->pending, slot);
    ev_timer_stop(s->loop, &p->timer);
    p->done(s, p, status, data, n);
    ax_free(p);
}

/* ---------------- scheduling ---------------- */

void axd_actor_schedule(axd_rt *s, axd_actor *a)
{
    if (a->in_ready || a->running || a->st == AXD_ST_DEAD || a->st == AXD_ST_RESTARTING)
        return;
    a->in_ready = 1;
    a->ready_next = NULL;
    if (s->ready_tail)
        s->ready_tail->ready_next = a;
    else
        s->ready_head = a;
    s->ready_tail = a;
    if (!ev_is_active(&s->run_idle))
        ev_idle_start(s->loop, &s->run_idle);
}

static axd_actor *ready_pop(axd_rt *s)
{
    axd_actor *a = s->ready_head;
    if (a) {
        s->ready_head = a->ready_next;
        if (!s->ready_head)
            s->ready_tail = NULL;
        a->in_ready = 0;
        a->ready_next = NULL;
    }
    return a;
}

axd_actor *axd_actor_get(axd_rt *s, ax_ref r)
{
    if (r.node != 0 || axd_ref_worker(r) != s->worker)
        return NULL;
    axd_actor *a = axd_slots_get(&s->actors, (uint32_t)r.id, r.gen);
    return a && (a->st == AXD_ST_RUNNING || a->st == AXD_ST_RESTARTING) ? a : NULL;
}

axd_actor *axd_actor_get_any(axd_rt *s, ax_ref r)
{
    if (r.node != 0 || axd_ref_worker(r) != s->worker)
        return NULL;
    axd_actor *a = axd_slots_get(&s->actors, (uint32_t)r.id, r.gen);
    return a && a->st != AXD_ST_DEAD ? a : NULL;
}

axd_actor *axd_actor_by_name(axd_rt *s, const char *name, size_t len)
{
    axd_actor *a = axd_hmap_get(&s->names, name, len);
    return a && a->st != AXD_ST_DEAD ? a : NULL;
}

static ax_handler_fn find_handler(const axd_type *t, uint32_t id)
{
    for (size_t i = 0; i < t->n_handlers; i++)
        if (t->handlers[i].id == id)
            return t->handlers[i].fn;
    return NULL;
}

/* A durable type's keyed actors also take "$forget" (persist.c). */
int axd_actor_handles(const axd_actor *a, uint32_t id)
{
    return id && (find_handler(a->type, id) != NULL || (a->key && a->type->forget_id == id));
}

int axd_actor_deliver(axd_rt *s, axd_actor *a, axd_env *e)
{
    if (!a || a->st == AXD_ST_DEAD || (a->st == AXD_ST_STOPPING && e->kind != AXD_ENV_KILL))
        return AX_ENOPROC;
    switch (e->kind) {
    case AXD_ENV_USER:
        a->last_msg = ev_now(s->loop);
        if (!axd_actor_handles(a, e->m.id)) {
            s->ctr.no_handler++;
            return AX_ENOMSG;
        }
        if (a->user.len >= a->cap) {
            s->ctr.mailbox_full++;
            return AX_EFULL;
        }
        axd_mq_push(&a->user, e);
        break;
    case AXD_ENV_REPLY: /* the asker asked for it: not refused for capacity */
        axd_mq_push(&a->user, e);
        break;
    case AXD_ENV_SYS:
        /* $exit and $down: in order with what their sender sent before, never refused.
         * $event (the lifecycle stream, bounded per subscriber by events_buffer) rides
         * the control mailbox: it reports on other actors, not a signal from them. */
        axd_mq_push(e->m.id == s->sys_event_id ? &a->ctl : &a->user, e);
        break;
    default:
        axd_mq_push(&a->ctl, e);
        break;
    }
    axd_actor_schedule(s, a);
    return AX_OK;
}

/* ---------------- spawn / stop ---------------- */

static void ctx_init(ax_ctx *cx, axd_rt *s, axd_actor *a, axd_env *e)
{
    cx->api = &s->api;
    cx->srv = s;
    cx->self = a;
    cx->cur = e;
    cx->replied = 0;
    cx->fail_reason = NULL;
    cx->exit_reason = NULL;
    cx->hold = NULL;
    cx->persisted = 0;
}

/* Run on_start for a fresh incarnation (state already zeroed). 0 or the error. */
int axd_actor_start(axd_rt *s, axd_actor *a)
{
    if (!a->type->desc->on_start) {
        axd_persist_activate(s, a); /* a durable keyed actor: its state before the first message */
        return AX_OK;
    }
    ax_ctx cx;
    ctx_init(&cx, s, a, NULL);
    a->running = 1;
    int rc = a->type->desc->on_start(&cx, a->state);
    a->running = 0;
    if (rc == AX_OK && (cx.fail_reason || cx.exit_reason))
        rc = AX_EFAILED;
    if (rc == AX_OK)
        axd_persist_activate(s, a); /* a durable keyed actor: its state before the first message */
    return rc;
}

/* Undo a spawn whose first on_start failed: nothing fires, the ref never existed. */
static void spawn_unwind(axd_rt *s, axd_actor *a)
{
    axd_actor_work_end(s, a); /* a timer its failed on_start made */
    a->st = AXD_ST_DEAD;
    if (a->name) {
        axd_hmap_del(&s->names, a->name, strlen(a->name));
        name_release(s, a->name, axd_ref(s, a));
    }
    axd_registry_remove(s, a);
    axd_mq_splice(&a->user, &a->ctl);
    for (axd_env *e; (e = axd_mq_pop(&a->user));)
        axd_env_drop(s, e, AX_ENOPROC);
    axd_actor_free_ext(s, a, NULL);
    a->type->live--;
    axd_slots_release(&s->actors, a->slot);
    ax_free(a->key);
    ax_free(a->name);
    ax_free(a->state);
    ax_free(a->arg);
    ax_free(a);
}

/* The spawn argument of options already read: 0, or AX_EINVAL with why. */
static int spawn_arg_check(const ax_spawn_opts *o, const char **why)
{
    if (o->arg_len > AX_SPAWN_ARG_MAX || (o->arg_len && !o->arg)) {
        *why = "spawn argument longer than AX_SPAWN_ARG_MAX (32768 bytes)";
        return AX_EINVAL;
    }
    return 0;
}

/* Create an actor; key (registry key "type\0key", owned by the caller) is set for
 * keyed actors before on_start runs, so a racing get_or_spawn finds it. */
static int actor_create(axd_rt *s, axd_type *t, const ax_spawn_opts *o, const char *key, size_t key_len,
                        ax_ref *out, const char **why)
{
    ax_spawn_opts opts;
    axd_spawn_opts_read(&opts, o);
    size_t nlen = opts.name ? strlen(opts.name) : 0;
    if (opts.name) {
        if (ax_name_valid(opts.name, nlen) != 0) {
            *why = "invalid actor name";
            return AX_EINVAL;
        }
        if (axd_hmap_get(&s->names, opts.name, nlen)) {
            *why = "an actor with this name already exists";
            return AX_EEXIST;
        }
    }
    if (opts.restart > AX_RESTART_PERMANENT || opts.mailbox_policy > AX_MAILBOX_DRAIN_AND_DROP) {
        *why = "invalid restart or mailbox policy";
        return AX_EINVAL;
    }
    if (spawn_arg_check(&opts, why) != 0)
        return AX_EINVAL;
    axd_actor *a = ax_try_malloc(sizeof *a);
    if (!a) {
        *why = "out of memory";
        return AX_ENOMEM;
    }
    memset(a, 0, sizeof *a);
    a->state = t->desc->state_size ? ax_try_malloc(t->desc->state_size) : NULL;
    if (t->desc->state_size && !a->state) {
        ax_free(a);
        *why = "out of memory";
        return AX_ENOMEM;
    }
    if (a->state)
        memset(a->state, 0, t->desc->state_size);
    a->slot = axd_slots_alloc(&s->actors, a, &a->gen);
    if (!a->slot) {
        ax_free(a->state);
        ax_free(a);
        *why = "runtime.max_actors reached";
        return AX_ENOMEM;
    }
    a->type = t;
    a->cap = opts.mailbox_cap ? opts.mailbox_cap : s->cfg->mailbox_capacity;
    a->trap_exit = opts.trap_exit;
    a->opts = opts;
    a->opts.name = NULL;
    a->opts.arg = NULL;
    if (opts.arg_len) {
        a->arg = ax_malloc(opts.arg_len);
        memcpy(a->arg, opts.arg, opts.arg_len);
        a->arg_len = opts.arg_len;
    }
    a->started_at = a->last_msg = ev_now(s->loop);
    if (opts.name) {
        if (name_claim(s, opts.name, nlen, axd_ref(s, a)) != 0) { /* taken meanwhile, on another worker */
            axd_slots_release(&s->actors, a->slot);
            ax_free(a->state);
            ax_free(a->arg);
            ax_free(a);
            *why = "an actor with this name already exists";
            return AX_EEXIST;
        }
        a->name = ax_strndup(opts.name, nlen);
        axd_hmap_put(&s->names, a->name, nlen, a);
    }
    if (key) {
        a->key = ax_malloc(key_len + 1); /* NUL-terminated: the key part is read as a C string */
        memcpy(a->key, key, key_len);
        a->key[key_len] = 0;
        a->key_len = key_len;
        size_t tl = strlen(a->key);
        a->shard = s->gate ? s->gate->shard_of(s->gate_ud, a->key + tl + 1, key_len - tl - 1) : 0;
        a->epoch = s->gate ? s->gate->epoch(s->gate_ud, a->shard) : 0;
        axd_hmap_put(&s->keyed, a->key, key_len, a);
        a->knext = s->keyed_head;
        if (s->keyed_head)
            s->keyed_head->kprev = a;
        s->keyed_head = a;
    }
    t->live++;
    if (!ax_ref_is_none(opts.link_to)) {
        int noproc = 0;
        axd_sup_link(s, a, opts.link_to, &noproc);
        if (noproc && !a->trap_exit) {
            spawn_unwind(s, a);
            *why = "link target does not exist (noproc)";
            return AX_ENOPROC;
        }
    }
    int rc = axd_actor_start(s, a);
    if (rc != AX_OK) {
        /* A failed first start leaves nothing behind; messages it sent stay sent. */
        spawn_unwind(s, a);
        *why = "on_start failed";
        return rc;
    }
    s->ctr.spawned++;
    axd_log(AX_LOG_DEBUG, "actor", "spawned %s @%u.%u%s%s", t->name, a->slot, a->gen, a->name ? " " : "",
           a->name ? a->name : "");
    if (out)
        *out = axd_ref(s, a);
    axd_event_emit(s, a, "started", NULL);
    if (a->ctl.len || a->user.len)
        axd_actor_schedule(s, a);
    return AX_OK;
}

/* A spawn made on another worker (a synchronous call, see axd_workers_sync): a
 * single-worker type's from any worker, or a client's spread over the workers. */
typedef struct spawn_call {
    axd_xspawn x; /* first */
    char type[AX_NAME_MAX + 1];
    char name[AX_NAME_MAX + 1];
    size_t tlen;
} spawn_call;

static void spawn_call_cb(axd_rt *s, void *ud)
{
    spawn_call *c = ud;
    ax_spawn_opts *o = axd_xspawn_opts(&c->x);
    o->name = c->name[0] ? c->name : NULL;
    c->x.rc = axd_actor_spawn_on(s, s->worker, c->type, c->tlen, o, &c->x.out, &c->x.why);
}

int axd_spawn_opts_check(const ax_spawn_opts *o, ax_spawn_opts *ro, const char **why)
{
    axd_spawn_opts_read(ro, o);
    return spawn_arg_check(ro, why);
}

void *axd_xspawn_new(size_t size, const ax_spawn_opts *ro)
{
    axd_xspawn *x = ax_calloc(1, size + ro->arg_len);
    x->opts = *ro;
    x->opts.name = NULL;
    x->opts.arg = NULL;
    x->arg_off = size;
    if (ro->arg_len)
        memcpy((uint8_t *)x + size, ro->arg, ro->arg_len);
    x->rc = AX_EFAILED;
    x->why = "";
    return x;
}

ax_spawn_opts *axd_xspawn_opts(axd_xspawn *x)
{
    x->opts.arg = x->opts.arg_len ? (const uint8_t *)x + x->arg_off : NULL; /* this copy's */
    return &x->opts;
}

int axd_xspawn_run(axd_rt *s, uint32_t w, void (*fn)(axd_rt *, void *), axd_xspawn *x, size_t size, ax_ref *out,
                   const char **why)
{
    int rc = axd_workers_sync(s->group, s->worker, w, fn, x, size + x->opts.arg_len, s->cfg->ask_timeout_ms);
    if (rc) {
        rc = axd_workers_sync_error(rc, why);
    } else {
        rc = x->rc;
        *why = x->why;
        if (rc == AX_OK)
            *out = x->out;
    }
    ax_free(x);
    return rc;
}

int axd_actor_spawn_on(axd_rt *s, uint32_t w, const char *type, size_t tlen, const ax_spawn_opts *o, ax_ref *out,
                       const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    axd_type *t = axd_hmap_get(&s->types, type, tlen);
    if (!t) {
        *why = "unknown actor type";
        return AX_ENOTYPE;
    }
    if (!s->group || s->group->n < 2)
        w = s->worker;
    else if (t->flags & AX_TYPE_SINGLE_WORKER)
        w = 0; /* its actors all live on worker 0 */
    else if (w >= s->group->n)
        return *why = "no such worker", AX_EINVAL;
    if (w == s->worker)
        return actor_create(s, t, o, NULL, 0, out, why);
    ax_spawn_opts ro;
    if (axd_spawn_opts_check(o, &ro, why) != 0)
        return AX_EINVAL;
    if (ro.name && strlen(ro.name) > AX_NAME_MAX) {
        *why = "invalid actor name";
        return AX_EINVAL;
    }
    spawn_call *c = axd_xspawn_new(sizeof *c, &ro);
    memcpy(c->type, type, tlen);
    c->tlen = tlen;
    if (ro.name) /* the copy's own, set on worker w */
        snprintf(c->name, sizeof c->name, "%s", ro.name);
    return axd_xspawn_run(s, w, spawn_call_cb, &c->x, sizeof *c, out, why);
}

int axd_actor_spawn(axd_rt *s, const char *type, size_t type_len, const ax_spawn_opts *o,
                   ax_ref *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    return axd_actor_spawn_on(s, s->worker, type, type_len, o, out, why);
}

int axd_actor_spawn_keyed(axd_rt *s, axd_type *t, const char *key, size_t key_len, const ax_spawn_opts *o,
                         ax_ref *out, const char **why);
int axd_actor_spawn_keyed(axd_rt *s, axd_type *t, const char *key, size_t key_len, const ax_spawn_opts *o,
                         ax_ref *out, const char **why)
{
    return actor_create(s, t, o, key, key_len, out, why);
}

/* Final end of an actor (on_stop already ran): fail what is queued, fire links and
 * monitors, emit "stopped", release the name, key and slot. */
void axd_actor_terminate(axd_rt *s, axd_actor *a, const char *reason)
{
    axd_actor_work_end(s, a); /* done already unless this incarnation never ran on_stop */
    a->st = AXD_ST_DEAD;
    /* A keyed actor stopped because its shard left this node: what it had queued was
     * not handled and may be sent again to the shard's next owner (retryable EBUSY). */
    int moved = a->key && (!strcmp(reason, AXD_SHARD_LOST) || !strcmp(reason, AXD_SHARD_HANDOVER) ||
                           !strcmp(reason, AXD_SHARD_SHUTDOWN) || !strcmp(reason, AXD_SHARD_REGRESSED) ||
                           !strcmp(reason, AXD_FENCED) || !strcmp(reason, AXD_STATE_UNAVAILABLE));
    axd_mq_splice(&a->ctl, &a->user);
    for (axd_env *e; (e = axd_mq_pop(&a->ctl));)
        axd_env_drop(s, e, moved ? AX_EBUSY : AX_ENOPROC);
    if (a->name) {
        axd_hmap_del(&s->names, a->name, strlen(a->name));
        name_release(s, a->name, axd_ref(s, a));
    }
    axd_registry_remove(s, a);
    axd_event_emit(s, a, "stopped", reason);
    axd_actor_free_ext(s, a, reason); /* fires links and monitors */
    a->type->live--;
    s->ctr.stopped++;
    axd_log(AX_LOG_DEBUG, "actor", "stopped %s @%u.%u: %s", a->type->name, a->slot, a->gen, reason);
    axd_slots_release(&s->actors, a->slot);
    if (a->in_ready) {
        /* unlink from the ready queue (only happens on shutdown paths) */
        axd_actor **pp = &s->ready_head, *prev = NULL;
        while (*pp && *pp != a) {
            prev = *pp;
            pp = &(*pp)->ready_next;
        }
        if (*pp) {
            *pp = a->ready_next;
            if (s->ready_tail == a)
                s->ready_tail = prev;
        }
    }
    axd_persist_free(a);
    ax_free(a->key);
    ax_free(a->name);
    ax_free(a->state);
    ax_free(a->arg);
    ax_free(a);
}

/* Take out of a's user mailbox, in order, the messages no handler has seen (user
 * messages: not replies, signals or I/O events) into out; returns how many. A keyed
 * actor whose shard leaves this node hands them to the shard's next owner
 * (keyed/routing.c) rather than failing them. */
uint32_t axd_actor_take_unhandled(axd_actor *a, axd_mq *out)
{
    axd_mq keep = {0};
    uint32_t n = 0;
    for (axd_env *e; (e = axd_mq_pop(&a->user));) {
        if (e->kind == AXD_ENV_USER && !e->io) {
            axd_mq_push(out, e);
            n++;
        } else {
            axd_mq_push(&keep, e);
        }
    }
    a->user = keep;
    return n;
}

/* Call on_stop for the incarnation that is ending. */
void axd_actor_call_on_stop(axd_rt *s, axd_actor *a, const char *reason)
{
    if (!a->type->desc->on_stop)
        return;
    ax_ctx cx;
    ctx_init(&cx, s, a, NULL);
    a->running = 1;
    a->type->desc->on_stop(&cx, a->state, reason);
    a->running = 0;
}

/* Stop from outside (client, another actor): final, never restarted. "kill" cannot be
 * trapped and ends the actor with reason "killed". */
int axd_actor_stop(axd_rt *s, axd_actor *a, const char *reason)
{
    if (!a || a->st == AXD_ST_DEAD || a->st == AXD_ST_STOPPING)
        return AX_ENOPROC;
    int kill = strcmp(reason, "kill") == 0;
    if (kill)
        reason = "killed";
    size_t n = strlen(reason);
    if (n > AX_NAME_MAX)
        n = AX_NAME_MAX;
    axd_env *e = axd_env_new(s, n + 1);
    if (!e)
        return AX_ENOMEM;
    memcpy(e->data, reason, n);
    e->data[n] = 0;
    e->m.len = n;
    e->kind = kill ? AXD_ENV_KILL : AXD_ENV_STOP;
    if (a->st == AXD_ST_RESTARTING) {
        /* no incarnation runs during a backoff: end it now */
        axd_env_free(s, e);
        axd_actor_terminate(s, a, reason);
        return AX_OK;
    }
    a->st = AXD_ST_STOPPING; /* refuses new user messages from now on */
    axd_mq_push(&a->ctl, e);
    axd_actor_schedule(s, a);
    return AX_OK;
}

/* ---------------- running actors ---------------- */

static void exit_reason_for_error(ax_ctx *cx, int rc)
{
    snprintf(cx->fail_buf, sizeof cx->fail_buf, "error:%s", ax_errname(rc));
    cx->fail_reason = cx->fail_buf;
}

/* A keyed actor handles a message only while its shard's local deadline is ahead of a
 * fresh monotonic clock read (never the loop's cached time: after a stall, SIGSTOP, a VM
 * pause, a slow handler, it is seconds old). Past it, every shard whose deadline passed
 * is dropped at once (their actors get a stop) before anything else runs, and this actor
 * ends with "lease_lost". Returns 1 if the actor may go on. */
static int keyed_may_run(axd_rt *s, axd_actor *a)
{
    uint64_t ep = 0;
    /* served, and still at the epoch this incarnation began under: a shard lost and taken
     * again meanwhile (the stop may still be on its way from the lease manager's worker)
     * is a new incarnation's */
    if (s->gate->serving(s->gate_ud, a->shard, &ep) && ep == a->epoch)
        return 1;
    s->gate->expire(s->gate_ud);
    if (a->st == AXD_ST_DEAD || a->st == AXD_ST_RESTARTING)
        return 0;
    /* A stop queued for it (the manager's on_lost: handover, shutdown, lease_lost) says
     * why the shard went: on_stop hears that reason, not a generic one. */
    char reason[AX_NAME_MAX + 1] = AXD_SHARD_LOST;
    for (axd_env *e = a->ctl.head; e; e = e->next)
        if (e->kind == AXD_ENV_STOP || e->kind == AXD_ENV_KILL) {
            size_t n = e->m.len < AX_NAME_MAX ? e->m.len : AX_NAME_MAX;
            memcpy(reason, e->data, n);
            reason[n] = 0;
            break;
        }
    axd_actor_exit(s, a, reason, 1);
    return 0;
}

/* The same in the middle of a batch, with the envelope taken from the mailbox but not
 * handled: it is refused (its asker gets AX_EBUSY, retryable) before the actor ends. */
static int keyed_may_run_with(axd_rt *s, axd_actor *a, axd_env *e, struct axd_hold *h)
{
    uint64_t ep = 0;
    if (s->gate->serving(s->gate_ud, a->shard, &ep) && ep == a->epoch)
        return 1;
    a->running = 0;
    if (h) /* the write of the handlers before goes first (the store fences it) */
        axd_persist_flush(s, a, h);
    axd_env_drop(s, e, AX_EBUSY);
    keyed_may_run(s, a);
    return 0;
}

/* Run one actor for up to one batch. Returns 1 if it still has work. A durable actor's
 * answers are held in h and its turn's write (if any) is sent with them before anything
 * ends the turn: FLUSH() before every exit. */
static int run_actor_turn(axd_rt *s, axd_actor *a, struct axd_hold *h)
{
#define FLUSH()                                                                                                  \
    do {                                                                                                         \
        if (h)                                                                                                   \
            axd_persist_flush(s, a, h);                                                                          \
    } while (0)
    uint32_t budget = s->cfg->batch;
    ax_ctx cx;
    int fenced = a->key && s->gate;
    if (fenced && !keyed_may_run(s, a))
        return 0;
    a->running = 1;
    uint64_t processed_at_start = a->processed;
    while (budget-- > 0 && a->st != AXD_ST_DEAD && a->st != AXD_ST_RESTARTING) {
        axd_env *e = axd_mailbox_next(a);
        if (!e)
            break;
        if (e->kind == AXD_ENV_STOP || e->kind == AXD_ENV_KILL) {
            a->running = 0;
            char reason[AX_NAME_MAX + 1];
            memcpy(reason, e->data, e->m.len + 1);
            axd_env_free(s, e);
            FLUSH();
            axd_actor_exit(s, a, reason, 1);
            return 0;
        }
        if (e->kind == AXD_ENV_EXIT) {
            a->running = 0;
            FLUSH();
            if (axd_handle_exit_signal(s, a, e))
                return 0;
            a->running = 1;
            continue; /* a signal of a link that was removed meanwhile */
        }
        if (e->kind == AXD_ENV_SYS && e->m.id == s->sys_exit_id && !axd_exit_msg_live(s, a, e)) {
            axd_env_free(s, e);
            continue;
        }
        if (fenced && a->processed != processed_at_start && !keyed_may_run_with(s, a, e, h))
            return 0; /* a handler of this batch ran: the clock may have passed the deadline */
        if (h && e->kind == AXD_ENV_USER && e->m.id == a->type->forget_id) {
            /* "$forget": delete the record (acknowledged once the store confirms), end */
            ctx_init(&cx, s, a, e);
            cx.hold = h;
            axd_persist_forget_msg(&cx);
            axd_ctx_answer(&cx, e, AX_OK, NULL, 0);
            axd_env_free(s, e);
            a->running = 0;
            FLUSH();
            axd_actor_stop(s, a, AXD_FORGOTTEN); /* schedules it */
            return 0;
        }
        ax_handler_fn fn = find_handler(a->type, e->m.id);
        if (!fn) { /* system message the type does not handle, or an unknown reply name */
            axd_env_drop(s, e, AX_ENOMSG);
            continue;
        }
        e->m.name = axd_msg_name(s, e->m.id);
        ctx_init(&cx, s, a, e);
        cx.hold = h;
        int timed = (s->ctr.delivered % AXD_HANDLER_SAMPLE) == 0;
        double t0 = timed ? axd_mono_now() : 0;
        int rc = fn(&cx, a->state, &e->m);
        if (timed)
            axd_histo_observe(&s->h_handler, axd_mono_now() - t0);
        a->processed++;
        s->ctr.delivered++;
        if (h) {
            int er = axd_persist_after(s, a, &cx, rc);
            if (er != AX_OK && rc == AX_OK && !cx.fail_reason) {
                rc = er; /* the state cannot be written: the handler's effect is not acknowledged */
                snprintf(cx.fail_buf, sizeof cx.fail_buf, "state_encode:%s", ax_errname(er));
                cx.fail_reason = cx.fail_buf;
                if (cx.replied && e->ask && h->n && h->v[h->n - 1].ask == e->ask) {
                    h->v[h->n - 1].status = er; /* its answer says so instead */
                    ax_free(h->v[h->n - 1].data);
                    h->v[h->n - 1].data = NULL;
                    h->v[h->n - 1].n = 0;
                }
            }
        }
        if (rc != AX_OK && !cx.fail_reason)
            exit_reason_for_error(&cx, rc);
        if (e->ask && !cx.replied)
            axd_ctx_answer(&cx, e, rc == AX_OK ? AX_OK : (rc < 0 ? rc : AX_EFAILED), NULL, 0);
        if (e->io)
            axd_io_rearm(s, a, e->m.tag);
        axd_env_free(s, e);
        if (cx.fail_reason || cx.exit_reason) {
            const char *r = cx.fail_reason ? cx.fail_reason : cx.exit_reason;
            char reason[128];
            snprintf(reason, sizeof reason, "%s", r);
            if (cx.fail_reason) {
                s->ctr.failed++;
                axd_log(AX_LOG_INFO, "actor", "%s @%u.%u failed: %s", a->type->name, a->slot, a->gen, reason);
            }
            a->running = 0;
            FLUSH();
            axd_actor_exit(s, a, reason, 0);
            return 0;
        }
    }
    a->running = 0;
    FLUSH();
    return a->st != AXD_ST_DEAD && a->st != AXD_ST_RESTARTING && (a->ctl.len || a->user.len);
#undef FLUSH
}

static int run_actor(axd_rt *s, axd_actor *a)
{
    if (a->loading)
        return 0; /* its state load's completion schedules it */
    if (!axd_persist_durable(s, a))
        return run_actor_turn(s, a, NULL);
    struct axd_hold h;
    memset(&h, 0, sizeof h);
    return run_actor_turn(s, a, &h);
}

/* Run ready actors; called from the loop's check watcher and right after client I/O so
 * a request is answered in the same loop iteration. */
void axd_runtime_run(axd_rt *s)
{
    unsigned turns = 0;
    axd_actor *a;
    while (turns++ < RUN_TURN_BUDGET && (a = ready_pop(s))) {
        if (run_actor(s, a))
            axd_actor_schedule(s, a);
    }
    if (!s->ready_head && ev_is_active(&s->run_idle))
        ev_idle_stop(s->loop, &s->run_idle);
}

static void run_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_rt *s = w->data;
    axd_runtime_run(s);
    if (s->sink)
        s->sink->flush(s->sink_ud);
}

static void run_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    /* Only keeps the loop from blocking; the work happens in run_check_cb. */
    (void)loop;
    (void)w;
    (void)revents;
}

/* ---------------- the plugin function table ---------------- */

static uint32_t api_msg_id(ax_ctx *cx, const char *name)
{
    return name ? axd_msg_intern(cx->srv, name, strlen(name)) : 0;
}

static ax_ref api_self(ax_ctx *cx) { return axd_ref(cx->srv, cx->self); }

/* Deliver a user envelope to local actor a, or (a NULL) to `to` on its worker. */
static int deliver_user(axd_rt *s, axd_actor *a, ax_ref to, axd_env *e)
{
    return a ? axd_actor_deliver(s, a, e) : axd_xw_env(s, to, e);
}

/* Deliver a user envelope to `to`, here or on its worker. On an error the caller still
 * owns e. */
int axd_deliver(axd_rt *s, ax_ref to, axd_env *e)
{
    return axd_ref_elsewhere(s, to) ? axd_xw_env(s, to, e) : axd_actor_deliver(s, axd_actor_get(s, to), e);
}

/* An envelope of a user message for `to`; *pa: the actor if it is this worker's (NULL if
 * it is another worker's, where it is looked up). */
static int send_user(axd_rt *s, ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n, axd_env **pe,
                     axd_actor **pa)
{
    *pa = axd_ref_elsewhere(s, to) ? NULL : axd_actor_get(s, to);
    if (!*pa && !axd_ref_elsewhere(s, to))
        return AX_ENOPROC;
    if (!msg || !axd_msg_valid(s->msgs, msg))
        return AX_EINVAL;
    axd_env *e = axd_env_new(s, n);
    if (!e)
        return AX_ENOMEM;
    if (n)
        memcpy(e->data, p, n);
    e->m.id = msg;
    if (cx && cx->self)
        e->m.from = axd_ref(cx->srv, cx->self);
    *pe = e;
    return AX_OK;
}

static int api_tell(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_rt *s = cx->srv;
    axd_env *e;
    if (to.node != 0) { /* a remote ref: only the bytes cross */
        if (to.node == AXD_NODE_CLIENT || !msg || !axd_msg_valid(s->msgs, msg))
            return AX_EINVAL;
        ax_ref from = cx->self ? axd_ref(cx->srv, cx->self) : AX_REF_NONE;
        int rc = s->remote ? s->remote->tell(s->remote_ud, to, msg, p, n, from) : AX_ENOPROC;
        if (rc == AX_OK)
            s->ctr.tells++;
        return rc;
    }
    axd_actor *a;
    int rc = send_user(s, cx, to, msg, p, n, &e, &a);
    if (rc)
        return rc;
    rc = deliver_user(s, a, to, e);
    if (rc)
        axd_env_free(s, e);
    else
        s->ctr.tells++;
    return rc;
}

static void actor_ask_done(axd_rt *s, axd_pending *p, int status, const void *data, size_t n)
{
    axd_actor *a = axd_actor_get(s, p->u.actor.asker);
    if (!a)
        return;
    axd_env *e = axd_env_new(s, n); /* the reply, or an error's text (ax_reply_error) */
    if (!e)
        return;
    if (n)
        memcpy(e->data, data, n);
    e->kind = AXD_ENV_REPLY;
    e->m.id = p->u.actor.reply_msg;
    e->m.tag = p->u.actor.tag;
    e->m.status = status;
    if (axd_actor_deliver(s, a, e))
        axd_env_free(s, e);
}

/* A pending ask whose reply goes to the running actor as message reply_msg. */
static axd_pending *actor_pending(ax_ctx *cx, uint32_t timeout_ms, uint32_t reply_msg, uint64_t tag)
{
    axd_rt *s = cx->srv;
    axd_pending *pd = axd_pending_new(s, timeout_ms ? timeout_ms : s->cfg->ask_timeout_ms, actor_ask_done);
    if (pd) {
        pd->u.actor.asker = axd_ref(cx->srv, cx->self);
        pd->u.actor.reply_msg = reply_msg;
        pd->u.actor.tag = tag;
    }
    return pd;
}

/* Drop a pending ask that was never handed on: no completion runs. */
static void pending_discard(axd_rt *s, axd_pending *pd)
{
    axd_slots_release(&s->pending, pd->slot);
    ev_timer_stop(s->loop, &pd->timer);
    ax_free(pd);
}

static int api_ask(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n, uint32_t timeout_ms,
                   uint32_t reply_msg, uint64_t tag)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    axd_rt *s = cx->srv;
    axd_env *e = NULL;
    axd_actor *a = NULL;
    int rc;
    if (!reply_msg || !axd_msg_valid(s->msgs, reply_msg) || !cx->self || !msg || !axd_msg_valid(s->msgs, msg) || to.node == AXD_NODE_CLIENT)
        return AX_EINVAL;
    if (to.node == 0 && (rc = send_user(s, cx, to, msg, p, n, &e, &a)))
        return rc;
    axd_pending *pd = actor_pending(cx, timeout_ms, reply_msg, tag);
    if (!pd) {
        axd_env_free(s, e);
        return AX_ENOMEM;
    }
    if (to.node != 0) {
        rc = s->remote ? s->remote->ask(s->remote_ud, to, msg, p, n, pd, axd_ref(cx->srv, cx->self))
                       : AX_ENOPROC; /* only bytes cross */
    } else {
        e->ask = pd->slot;
        e->ask_gen = pd->gen;
        rc = deliver_user(s, a, to, e);
        if (rc) {
            e->ask = 0;
            axd_env_free(s, e);
        }
    }
    if (rc) { /* refused at once: the ask ends with this return, not a reply message */
        pending_discard(s, pd);
        return rc;
    }
    s->ctr.asks++;
    return AX_OK;
}

static int api_reply(ax_ctx *cx, const void *p, size_t n)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (!cx->cur || !cx->cur->ask || cx->replied)
        return AX_OK;
    cx->replied = 1;
    cx->srv->ctr.replies++;
    axd_ctx_answer(cx, cx->cur, AX_OK, p, n);
    return AX_OK;
}

static const void *api_spawn_arg(ax_ctx *cx, size_t *len)
{
    *len = cx->self ? cx->self->arg_len : 0;
    return cx->self && cx->self->arg_len ? cx->self->arg : NULL;
}

static int api_spawn(ax_ctx *cx, const char *type, const ax_spawn_opts *o, ax_ref *out)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (!type)
        return AX_EINVAL;
    return axd_actor_spawn(cx->srv, type, strlen(type), o, out, NULL);
}

static int api_stop(ax_ctx *cx, ax_ref who, const char *reason)
{
    AXD_NOT_FROM_POOL(AX_EINVAL);
    if (!reason || !*reason)
        reason = "normal";
    if (cx->self && ax_ref_eq(who, axd_ref(cx->srv, cx->self)) && strcmp(reason, "kill") != 0) {
        /* stopping itself is an exit with that reason: the restart policy decides */
        snprintf(cx->exit_buf, sizeof cx->exit_buf, "%s", reason);
        cx->exit_reason = cx->exit_buf;
        return AX_OK;
    }
    if (axd_ref_elsewhere(cx->srv, who))
        return axd_xw_signal(cx->srv, AXD_XW_STOP, who, AX_REF_NONE, 0, reason);
    return axd_actor_stop(cx->srv, axd_actor_get(cx->srv, who), reason);
}

/* Erlang's exit/2 (ABI 1.1): see axd_sup_exit. Links are node-local, so a ref of another
 * node is refused. */
static int api_exit(ax_ctx *cx, ax_ref who, const char *reason)
{
    if (who.node != 0)
        return who.node == AXD_NODE_CLIENT ? AX_EINVAL : AX_ENOTSUP;
    if (reason && (!*reason || ax_name_valid(reason, strlen(reason)) != 0))
        return AX_EINVAL;
    ax_ref from = cx->self ? axd_ref(cx->srv, cx->self) : AX_REF_NONE;
    if (axd_ref_elsewhere(cx->srv, who))
        return axd_xw_signal(cx->srv, AXD_XW_EXIT, who, from, 0, reason ? reason : "normal");
    return axd_sup_exit(cx->srv, from, axd_actor_get_any(cx->srv, who), reason ? reason : "normal");
}

static int api_fail(ax_ctx *cx, const char *reason)
{
    if (!cx->self)
        return AX_EINVAL;
    snprintf(cx->fail_buf, sizeof cx->fail_buf, "%s", reason && *reason ? reason : "failed");
    cx->fail_reason = cx->fail_buf;
    return AX_OK;
}

static int api_lookup(ax_ctx *cx, const char *name, ax_ref *out)
{
    return name ? axd_name_lookup(cx->srv, name, strlen(name), out) : AX_ENOTFOUND;
}

static void api_log(ax_ctx *cx, int level, const char *text)
{
    if (level < AX_LOG_ERROR)
        level = AX_LOG_ERROR;
    if (level > AX_LOG_DEBUG)
        level = AX_LOG_DEBUG;
    axd_log(level, cx->self ? cx->self->type->name : "plugin", "%s", text ? text : "");
}

static uint64_t api_epoch(ax_ctx *cx)
{
    if (cx->self && cx->self->key)
        return cx->self->key && cx->srv->gate ? cx->srv->gate->epoch(cx->srv->gate_ud, cx->self->shard)
                                              : 0; /* the shard's current fencing token */
    return cx->cur ? cx->cur->epoch : 0;
}
static double api_now(ax_ctx *cx) { return ev_now(cx->srv->loop); }

typedef struct send_after_timer {
    ev_timer t;
    axd_rt *s;
    ax_ref to, from;
    uint32_t msg;
    size_t n;
    uint8_t data[];
} send_after_timer;

static void send_after_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    send_after_timer *t = (send_after_timer *)w;
    axd_rt *s = t->s;
    axd_actor *a = axd_actor_get(s, t->to);
    if (a) {
        axd_env *e = axd_env_new(s, t->n);
        if (e) {
            memcpy(e->data, t->data, t->n);
            e->m.id = t->msg;
            e->m.from = t->from;
            if (axd_actor_deliver(s, a, e))
                axd_env_free(s, e);
        }
    }
    ax_free(t);
}

static int api_send_after(ax_ctx *cx, ax_ref to, uint32_t msg, const void *p, size_t n, uint32_t ms)
{
    axd_rt *s = cx->srv;
    if (!axd_actor_get(s, to))
        return AX_ENOPROC;
    if (!msg || !axd_msg_valid(s->msgs, msg))
        return AX_EINVAL;
    send_after_timer *t = ax_try_malloc(sizeof *t + n);
    if (!t)
        return AX_ENOMEM;
    t->s = s;
    t->to = to;
    t->from = cx->self ? axd_ref(cx->srv, cx->self) : AX_REF_NONE;
    t->msg = msg;
    t->n = n;
    if (n)
        memcpy(t->data, p, n);
    ev_timer_init(&t->t, send_after_cb, ms / 1000.0, 0.);
    ev_timer_start(s->loop, &t->t);
    return AX_OK;
}

static int api_link(ax_ctx *cx, ax_ref other)
{
    if (!cx->self)
        return AX_EINVAL;
    int noproc = 0, rc = axd_sup_link(cx->srv, cx->self, other, &noproc);
    if (noproc && !cx->self->trap_exit && !cx->fail_reason) {
        /* Erlang: linking to a dead process is an exit signal noproc */
        snprintf(cx->fail_buf, sizeof cx->fail_buf, "noproc");
        cx->fail_reason = cx->fail_buf;
    }
    return rc;
}

static int api_unlink(ax_ctx *cx, ax_ref other) { return cx->self ? axd_sup_unlink(cx->srv, cx->self, other) : AX_EINVAL; }

static int api_monitor(ax_ctx *cx, ax_ref other, uint64_t *mref)
{
    if (!cx->self || !mref)
        return AX_EINVAL;
    return axd_sup_monitor(cx->srv, axd_ref(cx->srv, cx->self), other, mref);
}

static int api_demonitor(ax_ctx *cx, uint64_t mref, int flush)
{
    if (!cx->self)
        return AX_EINVAL;
    return axd_sup_demonitor(cx->srv, axd_ref(cx->srv, cx->self), mref, flush);
}

static int api_trap_exit(ax_ctx *cx, int on)
{
    if (!cx->self)
        return AX_EINVAL;
    cx->self->trap_exit = on ? 1 : 0;
    return AX_OK;
}

static int api_get_or_spawn(ax_ctx *cx, const char *type, const char *key, const ax_spawn_opts *o, ax_ref *out)
{
    if (!type || !key)
        return AX_EINVAL;
    return axd_registry_get_or_spawn(cx->srv, type, strlen(type), key, strlen(key), o, 1, out, NULL);
}

static int api_subscribe_events(ax_ctx *cx, int on)
{
    if (!cx->self)
        return AX_EINVAL;
    ax_ref me = {cx->self->slot, cx->self->gen, 0};
    return on ? axd_events_subscribe(cx->srv, me, NULL, 0, 0) : axd_events_unsubscribe(cx->srv, me);
}

/* Keyed routing from plugin code: deliver here when this node serves the key's shard,
 * else forward to the shard's owner. */
static int key_send(ax_ctx *cx, const char *type, const char *key, uint32_t msg, const void *p, size_t n,
                    int direct, axd_pending *pd)
{
    axd_rt *s = cx->srv;
    ax_ref ref, from = cx->self ? axd_ref(cx->srv, cx->self) : AX_REF_NONE;
    const char *why = NULL;
    if (!type || !key || !msg || !axd_msg_valid(s->msgs, msg))
        return AX_EINVAL;
    size_t tlen = strlen(type), klen = strlen(key);
    int rc = axd_registry_route(s, type, tlen, key, klen, 0, !direct, &ref, &why);
    if (rc == AX_EBUSY && s->remote && s->gate) {
        const char *name = axd_msg_name(s, msg);
        return s->gate->forward(s->gate_ud, type, tlen, key, klen, (pd ? AX_PK_ASK : 0) | (direct ? AX_PK_DIRECT : 0), name,
                             strlen(name), p, n, from, pd);
    }
    if (rc)
        return rc;
    axd_actor *a;
    axd_env *e;
    rc = send_user(s, cx, ref, msg, p, n, &e, &a); /* a keyed actor may live on its home worker */
    if (rc)
        return rc;
    if (pd) {
        e->ask = pd->slot;
        e->ask_gen = pd->gen;
    }
    rc = deliver_user(s, a, ref, e);
    if (rc) {
        e->ask = 0;
        axd_env_free(s, e);
    }
    return rc;
}

static int api_tell_key(ax_ctx *cx, const char *type, const char *key, uint32_t msg, const void *p, size_t n,
                        int direct)
{
    int rc = key_send(cx, type, key, msg, p, n, direct, NULL);
    if (rc == AX_OK)
        cx->srv->ctr.tells++;
    return rc;
}

static int api_ask_key(ax_ctx *cx, const char *type, const char *key, uint32_t msg, const void *p, size_t n,
                       uint32_t timeout_ms, uint32_t reply_msg, uint64_t tag, int direct)
{
    axd_rt *s = cx->srv;
    if (!cx->self || !reply_msg || !axd_msg_valid(s->msgs, reply_msg))
        return AX_EINVAL;
    axd_pending *pd = actor_pending(cx, timeout_ms, reply_msg, tag);
    if (!pd)
        return AX_ENOMEM;
    int rc = key_send(cx, type, key, msg, p, n, direct, pd);
    if (rc) { /* refused at once: the ask ends with this return, not a reply message */
        pending_discard(s, pd);
        return rc;
    }
    s->ctr.asks++;
    return AX_OK;
}

static const char *api_key(ax_ctx *cx)
{
    if (!cx->self || !cx->self->key)
        return NULL;
    return cx->self->key + strlen(cx->self->key) + 1; /* "type\0key" */
}

static void runtime_init(axd_rt *s, struct ev_loop *loop, const axd_config *cfg, const char *node_id,
                         axd_msgtab *msgs, axd_nametab *names, uint32_t worker);

void axd_runtime_init(axd_rt *s, struct ev_loop *loop, const axd_config *cfg, const char *node_id)
{
    runtime_init(s, loop, cfg, node_id, NULL, NULL, 0);
}

void axd_runtime_init_worker(axd_rt *s, struct ev_loop *loop, const axd_rt *first, uint32_t worker)
{
    atomic_fetch_add(&first->msgs->users, 1);
    atomic_fetch_add(&first->regnames->users, 1);
    runtime_init(s, loop, first->cfg, first->node_id, first->msgs, first->regnames, worker);
    s->pool = first->pool; /* the node's: worker 0 owns it */
}

static void runtime_init(axd_rt *s, struct ev_loop *loop, const axd_config *cfg, const char *node_id,
                         axd_msgtab *msgs, axd_nametab *names, uint32_t worker)
{
    memset(s, 0, sizeof *s);
    if (!msgs) /* the node's first runtime: it owns the offload pool (threads start at the first job) */
        s->pool = axd_pool_new(cfg->offload_threads, cfg->offload_queue);
    s->msgs = msgs;
    s->regnames = names;
    s->worker = worker;
    s->loop = loop;
    s->cfg = cfg;
    snprintf(s->node_id, sizeof s->node_id, "%s", node_id ? node_id : "");
    s->started_at = ev_now(loop);
    ev_set_userdata(loop, s); /* timers of actors and restarts find their runtime */
    axd_hash_seed_init();
    axd_slots_init(&s->actors, s->cfg->max_actors);
    axd_slots_init(&s->pending, 1u << 24);
    axd_hmap_init(&s->names);
    axd_hmap_init(&s->client_mons);
    if (!s->msgs)
        s->msgs = msgtab_new();
    if (!s->regnames)
        s->regnames = nametab_new();
    axd_hmap_init(&s->types);
    ev_check_init(&s->run_check, run_check_cb);
    s->run_check.data = s;
    ev_check_start(s->loop, &s->run_check);
    ev_idle_init(&s->run_idle, run_idle_cb);
    s->run_idle.data = s;

    ax_api *api = &s->api;
    memset(api, 0, sizeof *api);
    api->size = sizeof *api;
    api->abi_minor = AX_ABI_MINOR;
    api->msg_id = api_msg_id;
    api->self = api_self;
    api->tell = api_tell;
    api->ask = api_ask;
    api->reply = api_reply;
    api->spawn = api_spawn;
    api->stop = api_stop;
    api->fail = api_fail;
    api->lookup = api_lookup;
    api->log = api_log;
    api->epoch = api_epoch;
    api->now = api_now;
    api->send_after = api_send_after;
    api->link = api_link;
    api->unlink = api_unlink;
    api->monitor = api_monitor;
    api->demonitor = api_demonitor;
    api->trap_exit = api_trap_exit;
    api->get_or_spawn = api_get_or_spawn;
    api->subscribe_events = api_subscribe_events;
    api->key = api_key;
    api->tell_key = api_tell_key;
    api->ask_key = api_ask_key;
    api->exit = api_exit; /* ABI 1.1 */
    api->reply_error = axd_api_reply_error; /* ABI 1.3 */
    api->defer = axd_api_defer; /* ABI 1.4 */
    api->reply_token = axd_api_reply_token;
    api->timer_start = axd_api_timer_start; /* ABI 1.5 */
    api->timer_cancel = axd_api_timer_cancel;
    api->spawn_arg = api_spawn_arg; /* ABI 1.6 */
    api->io_watch = axd_api_io_watch; /* ABI 1.7 */
    api->io_unwatch = axd_api_io_unwatch;
    api->offload = axd_api_offload; /* ABI 1.8 */
    api->persist = axd_api_persist; /* ABI 1.9 */
    api->forget = axd_api_forget;
    s->sys_exit_id = axd_msg_intern(s, "$exit", 5);
    s->sys_down_id = axd_msg_intern(s, "$down", 5);
    s->sys_event_id = axd_msg_intern(s, "$event", 6);
    axd_registry_init(s);
}

/* Stop every actor now (shutdown): on_stop runs, queued asks fail, nothing restarts. */
void axd_runtime_stop_all(axd_rt *s, const char *reason)
{
    for (uint32_t i = 1; i < s->actors.cap; i++) {
        axd_actor *a = s->actors.ptr[i];
        if (a && a->st != AXD_ST_DEAD)
            axd_actor_exit(s, a, reason, 1);
    }
    s->ready_head = s->ready_tail = NULL;
}

void axd_runtime_free(axd_rt *s)
{
    axd_runtime_stop_all(s, "shutdown");
    ax_free(s->state_buf);
    s->state_buf = NULL;
    axd_registry_free(s);
    axd_events_free(s);
    /* fail what is still pending (clients are gone by now) */
    for (uint32_t i = 1; i < s->pending.cap; i++) {
        axd_pending *p = s->pending.ptr[i];
        if (p)
            axd_pending_complete(s, p->slot, p->gen, AX_ECANCELED, NULL, 0);
    }
    if (s->worker == 0) /* the owner: running jobs finish, queued ones are dropped */
        axd_pool_stop(s->pool);
    axd_offload_q_free(s); /* results still on their way: to actors still here, or dropped */
    if (s->worker == 0) {
        axd_pool_free(s->pool);
    }
    s->pool = NULL;
    axd_slots_free(&s->actors);
    axd_slots_free(&s->pending);
    axd_hmap_free(&s->names);
    axd_cmon_free_all(s);
    msgtab_release(s->msgs);
    s->msgs = NULL;
    nametab_release(s->regnames);
    s->regnames = NULL;
    while (s->env_pool) {
        axd_env *e = s->env_pool;
        s->env_pool = e->next;
        ax_free(e);
    }
    if (ev_is_active(&s->run_check))
        ev_check_stop(s->loop, &s->run_check);
    if (ev_is_active(&s->run_idle))
        ev_idle_stop(s->loop, &s->run_idle);
}

/* ---------------- control-plane documents ---------------- */

static const char *state_name(uint8_t st)
{
    return st == AXD_ST_RUNNING ? "running" : st == AXD_ST_STOPPING ? "stopping" : st == AXD_ST_RESTARTING ? "restarting" : "dead";
}

static int utf8_printable(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || (len == 1 && (c < 0x20 || c == 0x7f)))
            return 0;
        for (size_t j = 1; j < len; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

void axd_json_add_key(cJSON *o, const axd_actor *a)
{
    size_t tl = strlen(a->key), n = a->key_len - tl - 1;
    const unsigned char *k = (const unsigned char *)a->key + tl + 1;
    if (utf8_printable(k, n)) {
        cJSON_AddStringToObject(o, "key", (const char *)k);
        return;
    }
    char *hex = ax_malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", k[i]);
    cJSON_AddStringToObject(o, "key_hex", hex);
    ax_free(hex);
}

static int prefix_of(const char *p, size_t pn, const char *s, size_t sn)
{
    return pn <= sn && (!pn || !memcmp(p, s, pn));
}

cJSON *axd_runtime_actors_json(axd_rt *s) { return axd_runtime_actors_page(s, NULL, 0); }

/* One worker's rows from slot i on, into arr; the slot to go on from (0: the end). */
static uint32_t actors_rows(axd_rt *s, const ax_actors_query *q, uint32_t i, uint32_t limit, size_t max_bytes,
                            cJSON *arr, uint32_t *pn, size_t *pbytes)
{
    uint32_t n = *pn;
    size_t bytes = *pbytes;
    if (!i)
        i = 1;
    for (; i < s->actors.cap && n < limit && bytes < max_bytes; i++) {
        axd_actor *a = s->actors.ptr[i];
        if (!a)
            continue;
        if (q->type_len && (strlen(a->type->name) != q->type_len || memcmp(a->type->name, q->type, q->type_len)))
            continue;
        if (q->name_len && (!a->name || !prefix_of(q->name, q->name_len, a->name, strlen(a->name))))
            continue;
        if (q->state_len && (strlen(state_name(a->st)) != q->state_len || memcmp(state_name(a->st), q->state, q->state_len)))
            continue;
        if (q->key_len) {
            const char *k = a->key ? memchr(a->key, 0, a->key_len) : NULL; /* "type\0key" */
            if (!k || !prefix_of(q->key, q->key_len, k + 1, a->key_len - (size_t)(k + 1 - a->key)))
                continue;
        }
        /* a row is ~300 bytes of JSON plus its name and key (up to 6x escaped) */
        bytes += 320 + (a->name ? strlen(a->name) : 0) + (a->key ? 6 * a->key_len : 0);
        n++;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)axd_ref(s, a).id); /* the worker in bits 32..47 */
        cJSON_AddNumberToObject(o, "gen", a->gen);
        cJSON_AddStringToObject(o, "name", a->name ? a->name : "");
        cJSON_AddStringToObject(o, "type", a->type->name);
        cJSON_AddStringToObject(o, "state", state_name(a->st));
        cJSON_AddNumberToObject(o, "mailbox", a->user.len);
        cJSON_AddNumberToObject(o, "capacity", a->cap);
        cJSON_AddNumberToObject(o, "processed", (double)a->processed);
        cJSON_AddNumberToObject(o, "restarts", a->restarts);
        cJSON_AddNumberToObject(o, "links", a->x ? a->x->n_links : 0);
        cJSON_AddNumberToObject(o, "monitors", a->x ? a->x->n_watchers : 0);
        cJSON_AddStringToObject(o, "restart", a->opts.restart == AX_RESTART_PERMANENT   ? "permanent"
                                              : a->opts.restart == AX_RESTART_TRANSIENT ? "transient"
                                                                                        : "temporary");
        if (a->trap_exit)
            cJSON_AddBoolToObject(o, "trap_exit", 1);
        if (a->key)
            axd_json_add_key(o, a);
        cJSON_AddItemToArray(arr, o);
    }
    while (i < s->actors.cap && !s->actors.ptr[i])
        i++;
    *pn = n;
    *pbytes = bytes;
    return i < s->actors.cap ? i : 0;
}

/* The rows of another worker, made on its thread (a synchronous call: the filters are
 * copied in, the rows come back as a JSON array). */
typedef struct rows_call {
    char type[AX_NAME_MAX], name[AX_NAME_MAX], state[AX_NAME_MAX], key[AX_KEY_MAX];
    size_t type_len, name_len, state_len, key_len;
    uint32_t from, limit, n, next;
    size_t max_bytes, bytes;
    cJSON *rows; /* made by the callee; the caller's once the call returned in time (a
                  * call that timed out leaves its rows unfreed: a rare, bounded leak) */
} rows_call;

static void rows_call_cb(axd_rt *s, void *ud)
{
    rows_call *c = ud;
    ax_actors_query q = {.type = c->type, .type_len = c->type_len, .name = c->name, .name_len = c->name_len,
                         .state = c->state, .state_len = c->state_len, .key = c->key, .key_len = c->key_len};
    c->rows = cJSON_CreateArray();
    c->next = actors_rows(s, &q, c->from, c->limit, c->max_bytes, c->rows, &c->n, &c->bytes);
}

cJSON *axd_runtime_actors_page(axd_rt *s, const ax_actors_query *q, size_t max_bytes)
{
    ax_actors_query none;
    if (!q) {
        memset(&none, 0, sizeof none);
        q = &none;
    }
    uint32_t limit = q->limit ? q->limit : AXD_ACTORS_PAGE;
    if (limit > AXD_ACTORS_PAGE_MAX)
        limit = AXD_ACTORS_PAGE_MAX;
    if (!max_bytes)
        max_bytes = (size_t)s->cfg->max_frame / 2;
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "actors");
    /* the cursor is an actor id: its worker (bits 32..47) and slot; workers in order */
    uint32_t nw = s->group ? s->group->n : 1, w = (uint32_t)(q->cursor >> 32), from = (uint32_t)q->cursor;
    uint32_t n = 0, next = 0;
    size_t bytes = 64;
    for (; w < nw && n < limit && bytes < max_bytes; w++, from = 1) {
        if (w == s->worker) {
            next = actors_rows(s, q, from, limit, max_bytes, arr, &n, &bytes);
        } else {
            rows_call c = {.from = from, .limit = limit, .n = n, .max_bytes = max_bytes, .bytes = bytes,
                           .type_len = q->type_len, .name_len = q->name_len, .state_len = q->state_len,
                           .key_len = q->key_len};
            if (q->type_len)
                memcpy(c.type, q->type, q->type_len);
            if (q->name_len)
                memcpy(c.name, q->name, q->name_len);
            if (q->state_len)
                memcpy(c.state, q->state, q->state_len);
            if (q->key_len)
                memcpy(c.key, q->key, q->key_len);
            if (axd_workers_sync(s->group, s->worker, w, rows_call_cb, &c, sizeof c, 1000) != 0) {
                next = from; /* that worker is busy: the next page starts there */
                break;
            }
            cJSON *row;
            while ((row = cJSON_DetachItemFromArray(c.rows, 0)))
                cJSON_AddItemToArray(arr, row);
            cJSON_Delete(c.rows);
            n = c.n;
            bytes = c.bytes;
            next = c.next;
        }
        if (next)
            break;
    }
    /* the cursor of the next page, 0 when the scan reached the end */
    uint64_t cursor = next ? ((uint64_t)w << 32) | next : w < nw ? ((uint64_t)w << 32) | 1 : 0;
    cJSON_AddNumberToObject(doc, "next", (double)cursor);
    return doc;
}

void axd_rt_set_remote(axd_rt *s, const axd_remote_ops *ops, void *ud)
{
    s->remote = ops;
    s->remote_ud = ops ? ud : NULL;
}

void axd_rt_set_sink(axd_rt *s, const axd_client_sink *ops, void *ud)
{
    s->sink = ops;
    s->sink_ud = ops ? ud : NULL;
}

void axd_rt_set_gate(axd_rt *s, const axd_shard_gate *ops, void *ud)
{
    s->gate = ops;
    s->gate_ud = ops ? ud : NULL;
}

/* What one worker contributes to STATUS (copied out on its thread). */
typedef struct worker_stat {
    axd_counters ctr;
    uint32_t actors, keyed, subs, n_plugins, n_types;
} worker_stat;

static void worker_stat_cb(axd_rt *s, void *ud)
{
    worker_stat *w = ud;
    w->ctr = s->ctr;
    w->actors = 0;
    for (uint32_t i = 1; i < s->actors.cap; i++)
        w->actors += s->actors.ptr[i] != NULL;
    w->keyed = (uint32_t)s->keyed.len;
    w->subs = s->n_subs;
}

/* One worker's part of axd_runtime_metrics, on its thread. */
static void worker_metrics_cb(axd_rt *s, void *ud)
{
    axd_rt_metrics *m = ud;
    m->h_ask = s->h_ask;
    m->h_handler = s->h_handler;
    m->mailbox_messages = 0;
    m->mailbox_max = 0;
    for (uint32_t i = 1; i < s->actors.cap; i++) {
        const axd_actor *a = s->actors.ptr[i];
        if (!a)
            continue;
        uint32_t d = a->user.len + a->ctl.len;
        m->mailbox_messages += d;
        if (d > m->mailbox_max)
            m->mailbox_max = d;
    }
}

void axd_runtime_metrics(axd_rt *s, axd_rt_metrics *out)
{
    memset(out, 0, sizeof *out);
    uint32_t nw = s->group ? s->group->n : 1;
    for (uint32_t w = 0; w < nw; w++) {
        axd_rt_metrics one;
        memset(&one, 0, sizeof one);
        if (w == s->worker)
            worker_metrics_cb(s, &one);
        else if (axd_workers_sync(s->group, s->worker, w, worker_metrics_cb, &one, sizeof one, 1000) != 0)
            continue; /* too busy to answer: left out of this scrape */
        axd_histo_add(&out->h_ask, &one.h_ask);
        axd_histo_add(&out->h_handler, &one.h_handler);
        out->mailbox_messages += one.mailbox_messages;
        if (one.mailbox_max > out->mailbox_max)
            out->mailbox_max = one.mailbox_max;
    }
}

/* The counters of every worker, summed (all of axd_counters is uint64_t). */
static void ctr_add(axd_counters *sum, const axd_counters *c)
{
    uint64_t *d = (uint64_t *)sum;
    const uint64_t *x = (const uint64_t *)c;
    for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)
        d[i] += x[i];
}

cJSON *axd_runtime_status_json(axd_rt *s)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "node", s->node_id);
    cJSON_AddStringToObject(doc, "version", AX_VERSION);
    cJSON_AddNumberToObject(doc, "pid", (double)getpid());
    cJSON_AddNumberToObject(doc, "uptime_s", ev_now(s->loop) - s->started_at);
    uint32_t nw = s->group ? s->group->n : 1;
    worker_stat all = {0};
    cJSON *ws = nw > 1 ? cJSON_CreateArray() : NULL;
    for (uint32_t w = 0; w < nw; w++) {
        worker_stat one = {0};
        if (w == s->worker)
            worker_stat_cb(s, &one);
        else if (axd_workers_sync(s->group, s->worker, w, worker_stat_cb, &one, sizeof one, 1000) != 0)
            continue; /* a worker too busy to answer: left out (its entry says so) */
        uint64_t load_max = all.ctr.state_load_us_max > one.ctr.state_load_us_max ? all.ctr.state_load_us_max
                                                                                   : one.ctr.state_load_us_max;
        ctr_add(&all.ctr, &one.ctr);
        all.ctr.state_load_us_max = load_max; /* a maximum, not a sum */
        all.actors += one.actors;
        all.keyed += one.keyed;
        all.subs += one.subs;
        if (ws) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "worker", w);
            cJSON_AddNumberToObject(o, "actors", one.actors);
            cJSON_AddNumberToObject(o, "keyed_actors", one.keyed);
            cJSON_AddNumberToObject(o, "delivered", (double)one.ctr.delivered);
            cJSON_AddNumberToObject(o, "xw_full", (double)one.ctr.xw_full);
            cJSON_AddNumberToObject(o, "xw_dropped", (double)one.ctr.xw_dropped);
            cJSON_AddItemToArray(ws, o);
        }
    }
    cJSON_AddNumberToObject(doc, "actors", all.actors);
    cJSON_AddNumberToObject(doc, "plugins", (double)s->n_plugins);
    cJSON_AddNumberToObject(doc, "types", (double)s->types.len);
    cJSON_AddNumberToObject(doc, "workers", nw);
    cJSON *c = cJSON_AddObjectToObject(doc, "counters");
#define CTR(f) cJSON_AddNumberToObject(c, #f, (double)all.ctr.f)
    CTR(spawned);
    CTR(stopped);
    CTR(failed);
    CTR(delivered);
    CTR(tells);
    CTR(asks);
    CTR(replies);
    CTR(ask_timeouts);
    CTR(mailbox_full);
    CTR(no_handler);
    CTR(late_replies);
    CTR(clients_accepted);
    CTR(clients_refused);
    CTR(bad_frames);
    CTR(restarts);
    CTR(links);
    CTR(monitors);
    CTR(downs);
    CTR(events);
    CTR(events_lagged);
    CTR(idle_reaped);
    CTR(route_retries);
    CTR(route_held);
    CTR(route_handed_back);
    CTR(route_hold_expired);
    if (nw > 1) {
        CTR(xw_full);
        CTR(xw_dropped);
    }
#undef CTR
    /* durable keyed actors: their state's loads and writes (persist.c) */
    cJSON *st = cJSON_AddObjectToObject(doc, "state");
    cJSON_AddStringToObject(st, "persist", s->cfg->state_persist);
#define SCTR(name, f) cJSON_AddNumberToObject(st, name, (double)all.ctr.f)
    SCTR("loads", state_loads);
    SCTR("loads_found", state_loads_found);
    SCTR("load_errors", state_load_errors);
    cJSON_AddNumberToObject(st, "load_ms_avg",
                            all.ctr.state_loads ? all.ctr.state_load_us_total / 1000.0 / (double)all.ctr.state_loads : 0);
    cJSON_AddNumberToObject(st, "load_ms_max", all.ctr.state_load_us_max / 1000.0);
    SCTR("writes", state_writes);
    SCTR("deletes", state_deletes);
    SCTR("write_bytes", state_write_bytes);
    SCTR("write_errors", state_write_errors);
    SCTR("fenced", state_fenced);
    SCTR("unchanged", state_unchanged);
#undef SCTR
    cJSON_AddNumberToObject(doc, "keyed_actors", (double)all.keyed);
    cJSON_AddNumberToObject(doc, "event_subscribers", (double)all.subs);
    if (ws)
        cJSON_AddItemToObject(doc, "per_worker", ws);
    return doc;
}
