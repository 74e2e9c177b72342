/* Supervision with Erlang's semantics, adapted to refs that survive restarts:
 * restart policy (permanent / transient / temporary) with intensity and backoff,
 * the restart mailbox policy, links with trap-exit, and monitors. A restart keeps the
 * actor's ref, so links and monitors fire only when an actor stops for good. */
#include <string.h>

#include "ax_mem.h"
#include "log.h"
#include "core_int.h"
#include "workers.h"


#define DEFAULT_MAX_RESTARTS 3
#define DEFAULT_RESTART_WINDOW_MS 5000
#define MAX_RESTARTS_LIMIT 10000

int axd_reason_is_normal(const char *r)
{
    /* OTP's rule for transient children: normal, shutdown and {shutdown, _} */
    return strcmp(r, "normal") == 0 || strcmp(r, "shutdown") == 0 || strncmp(r, "shutdown:", 9) == 0;
}

static axd_actor_ext *ext(axd_actor *a)
{
    if (!a->x) {
        a->x = ax_calloc(1, sizeof *a->x);
        a->x->owner = a;
    }
    return a->x;
}

/* ---------------- restarts ---------------- */

/* Record a restart at now; returns 0 if within intensity, -1 if exceeded. */
static int intensity_ok(axd_rt *s, axd_actor *a)
{
    uint32_t max = a->opts.max_restarts ? a->opts.max_restarts : DEFAULT_MAX_RESTARTS;
    double window = (a->opts.restart_window_ms ? a->opts.restart_window_ms : DEFAULT_RESTART_WINDOW_MS) / 1000.0;
    if (max > MAX_RESTARTS_LIMIT)
        max = MAX_RESTARTS_LIMIT;
    axd_actor_ext *x = ext(a);
    if (!x->restart_times)
        x->restart_times = ax_calloc(max, sizeof(double));
    double now = ev_now(s->loop);
    /* the ring holds the last `max` restart times; the oldest is at restart_head */
    double oldest = x->restart_times[x->restart_head];
    if (a->restarts >= max && now - oldest < window)
        return -1;
    x->restart_times[x->restart_head] = now;
    x->restart_head = (x->restart_head + 1) % max;
    return 0;
}

static void restart_now(axd_rt *s, axd_actor *a);

static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_actor_ext *x = w->data;
    restart_now(ev_userdata(loop), x->owner);
}

static void restart_now(axd_rt *s, axd_actor *a)
{
    const char *reason = a->x && a->x->restart_reason ? a->x->restart_reason : "?";
    a->st = AXD_ST_RUNNING;
    if (a->state)
        memset(a->state, 0, a->type->desc->state_size);
    a->trap_exit = a->opts.trap_exit;
    int rc = axd_actor_start(s, a);
    if (rc != AX_OK) {
        char r[64];
        snprintf(r, sizeof r, "start_failed:%s", ax_errname(rc));
        axd_log(AX_LOG_INFO, "actor", "%s @%u.%u: on_start failed on restart (%s)", a->type->name, a->slot, a->gen,
               ax_errname(rc));
        axd_actor_exit(s, a, r, 0); /* counts as another crash; intensity bounds this */
        return;
    }
    axd_event_emit(s, a, "restarted", reason);
    if (a->ctl.len || a->user.len)
        axd_actor_schedule(s, a);
}

void axd_actor_exit(axd_rt *s, axd_actor *a, const char *reason, int external)
{
    if (a->st != AXD_ST_RESTARTING) /* during a backoff no incarnation is running */
        axd_actor_call_on_stop(s, a, reason);
    axd_actor_work_end(s, a); /* its open tokens answer ENOPROC, its timers stop */
    if (external || s->stopping) {
        axd_actor_terminate(s, a, reason);
        return;
    }
    int normal = axd_reason_is_normal(reason);
    int restart = a->opts.restart == AX_RESTART_PERMANENT || (a->opts.restart == AX_RESTART_TRANSIENT && !normal);
    if (!restart) {
        axd_actor_terminate(s, a, reason);
        return;
    }
    if (intensity_ok(s, a) != 0) {
        axd_log(AX_LOG_WARN, "actor", "%s @%u.%u: more than %u restarts in %u ms; stopping it (last reason: %s)",
               a->type->name, a->slot, a->gen, a->opts.max_restarts ? a->opts.max_restarts : DEFAULT_MAX_RESTARTS,
               a->opts.restart_window_ms ? a->opts.restart_window_ms : DEFAULT_RESTART_WINDOW_MS, reason);
        axd_actor_terminate(s, a, "restart_intensity");
        return;
    }
    a->restarts++;
    s->ctr.restarts++;
    axd_actor_ext *x = ext(a);
    ax_free(x->restart_reason);
    x->restart_reason = ax_strdup(reason);
    if (a->opts.mailbox_policy == AX_MAILBOX_DRAIN_AND_DROP) {
        /* queued user messages die with the incarnation; their askers hear it now.
         * Signals ($down, $exit, $event) share the queue and are owed: they stay. */
        axd_mq keep = {0};
        for (axd_env *e; (e = axd_mq_pop(&a->user));) {
            if (e->kind == AXD_ENV_SYS)
                axd_mq_push(&keep, e);
            else
                axd_env_drop(s, e, AX_ECANCELED);
        }
        a->user = keep;
    }
    if (a->opts.backoff_ms) {
        a->st = AXD_ST_RESTARTING;
        ev_timer_init(&x->backoff, backoff_cb, a->opts.backoff_ms / 1000.0, 0.);
        x->backoff.data = x;
        ev_timer_start(s->loop, &x->backoff);
        return;
    }
    restart_now(s, a);
}

/* ---------------- links ---------------- */

static int ref_index(const ax_ref *v, uint32_t n, ax_ref r)
{
    for (uint32_t i = 0; i < n; i++)
        if (ax_ref_eq(v[i], r))
            return (int)i;
    return -1;
}

static void link_add(axd_actor *a, ax_ref r)
{
    axd_actor_ext *x = ext(a);
    if (ref_index(x->links, x->n_links, r) >= 0)
        return;
    if (x->n_links == x->cap_links) {
        x->cap_links = x->cap_links ? x->cap_links * 2 : 4;
        x->links = ax_realloc(x->links, x->cap_links * sizeof *x->links);
    }
    x->links[x->n_links++] = r;
}

static void link_del(axd_actor *a, ax_ref r)
{
    if (!a->x)
        return;
    int i = ref_index(a->x->links, a->x->n_links, r);
    if (i >= 0)
        a->x->links[i] = a->x->links[--a->x->n_links];
}


/* An exit signal from `from` with reason arrives at `to`; what it does is decided now,
 * on arrival, as in Erlang: a trapping actor gets "$exit" queued behind everything
 * that arrived before it (so after every message `from` sent earlier); "normal" to a
 * non-trapping actor is ignored; anything else ends a non-trapping actor (control
 * mailbox: it overtakes queued messages, which die with the incarnation as in Erlang).
 * link: the signal of the link with `from`, which `to` keeps until the signal is taken
 * (ax_unlink before that cancels it). */
static void exit_signal(axd_rt *s, axd_actor *to, ax_ref from, const char *reason, int link)
{
    int trap = to->trap_exit;
    if (!trap && strcmp(reason, "normal") == 0) {
        if (link)
            link_del(to, from);
        return;
    }
    size_t n = strlen(reason);
    if (n > AX_NAME_MAX)
        n = AX_NAME_MAX;
    axd_env *e = axd_env_new(s, n + 1);
    if (!e)
        return;
    memcpy(e->data, reason, n);
    e->data[n] = 0;
    e->m.len = n;
    e->m.from = from;
    e->link_sig = (uint8_t)link;
    if (trap) {
        e->kind = AXD_ENV_SYS;
        e->m.id = s->sys_exit_id;
    } else {
        e->kind = AXD_ENV_EXIT;
    }
    if (axd_actor_deliver(s, to, e) != 0) {
        axd_env_free(s, e);
        if (link)
            link_del(to, from);
    }
}

static int has_link(const axd_actor *a, ax_ref r)
{
    return a->x && ref_index(a->x->links, a->x->n_links, r) >= 0;
}

int axd_sup_exit(axd_rt *s, ax_ref from, axd_actor *a, const char *reason)
{
    if (!a || a->st == AXD_ST_DEAD || a->st == AXD_ST_STOPPING)
        return AX_ENOPROC;
    if (!reason || !*reason)
        reason = "normal";
    if (strcmp(reason, "kill") == 0) { /* untrappable */
        axd_env *e = axd_env_new(s, sizeof "killed");
        if (!e)
            return AX_ENOMEM;
        memcpy(e->data, "killed", sizeof "killed");
        e->m.len = sizeof "killed" - 1;
        e->m.from = from;
        e->kind = AXD_ENV_EXIT;
        if (a->st == AXD_ST_RESTARTING) { /* no incarnation runs: it ends now */
            axd_env_free(s, e);
            axd_actor_exit(s, a, "killed", 0);
            return AX_OK;
        }
        axd_mq_push(&a->ctl, e);
        axd_actor_schedule(s, a);
        return AX_OK;
    }
    if (a->st == AXD_ST_RESTARTING) {
        if (strcmp(reason, "normal") != 0 && !a->trap_exit)
            axd_actor_exit(s, a, reason, 0);
        return AX_OK;
    }
    exit_signal(s, a, from, reason, 0);
    return AX_OK;
}

int axd_sup_link(axd_rt *s, axd_actor *a, ax_ref other, int *noproc)
{
    if (axd_ref_elsewhere(s, other)) { /* its worker adds our side, or answers noproc */
        if (has_link(a, other))
            return AX_OK;
        int rc = axd_xw_signal(s, AXD_XW_LINK, other, axd_ref(s, a), 0, NULL);
        if (rc)
            return rc;
        link_add(a, other);
        s->ctr.links++;
        return AX_OK;
    }
    axd_actor *b = axd_actor_get_any(s, other);
    if (!b || b->st == AXD_ST_STOPPING) {
        *noproc = 1;
        if (a->trap_exit) {
            /* a trapping actor hears about it as an $exit message with noproc */
            size_t n = 6;
            axd_env *e = axd_env_new(s, n + 1);
            if (e) {
                memcpy(e->data, "noproc", n + 1);
                e->m.len = n;
                e->m.from = other;
                e->m.id = s->sys_exit_id;
                e->kind = AXD_ENV_SYS;
                if (axd_actor_deliver(s, a, e) != 0)
                    axd_env_free(s, e);
            }
        }
        return AX_ENOPROC;
    }
    if (b == a)
        return AX_EINVAL;
    link_add(a, other);
    link_add(b, axd_ref(s, a));
    s->ctr.links++;
    return AX_OK;
}

int axd_sup_unlink(axd_rt *s, axd_actor *a, ax_ref other)
{
    if (axd_ref_elsewhere(s, other)) {
        if (has_link(a, other))
            axd_xw_signal(s, AXD_XW_UNLINK, other, axd_ref(s, a), 0, NULL);
        link_del(a, other);
        return AX_OK;
    }
    link_del(a, other);
    axd_actor *b = axd_actor_get_any(s, other);
    if (b)
        link_del(b, axd_ref(s, a));
    return AX_OK;
}


int axd_exit_msg_live(axd_rt *s, axd_actor *a, const axd_env *e)
{
    (void)s;
    if (!e->link_sig)
        return 1;
    if (!has_link(a, e->m.from))
        return 0; /* unlinked after the signal arrived: it has no effect */
    link_del(a, e->m.from);
    return 1;
}

int axd_handle_exit_signal(axd_rt *s, axd_actor *a, axd_env *e)
{
    char reason[AX_NAME_MAX + 1];
    size_t n = e->m.len < AX_NAME_MAX ? e->m.len : AX_NAME_MAX;
    memcpy(reason, e->data, n);
    reason[n] = 0;
    if (e->link_sig) {
        if (!has_link(a, e->m.from)) {
            axd_env_free(s, e);
            return 0;
        }
        link_del(a, e->m.from);
    }
    axd_env_free(s, e);
    axd_actor_exit(s, a, reason, 0);
    return 1;
}

/* ---------------- monitors ---------------- */

static void mon_add(axd_mon **v, uint32_t *n, uint32_t *cap, uint64_t mref, ax_ref other)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *v = ax_realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = (axd_mon){mref, other};
}

/* Order-preserving: the monitors of a target fire in the order they were created. */
static int mon_del(axd_mon *v, uint32_t *n, uint64_t mref, ax_ref *other)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (v[i].mref == mref) {
            if (other)
                *other = v[i].other;
            memmove(&v[i], &v[i + 1], (size_t)(*n - i - 1) * sizeof *v);
            --*n;
            return 1;
        }
    }
    return 0;
}

/* A client's monitor of another worker's actor, kept on the client's worker: a
 * demonitor finds the target through it, and a down that arrives without it (the client
 * demonitored, or left, meanwhile) is dropped. */
typedef struct axd_cmon {
    uint64_t mref; /* the map's key bytes */
    ax_ref watcher, target;
} axd_cmon;

static void cmon_add(axd_rt *s, uint64_t mref, ax_ref watcher, ax_ref target)
{
    axd_cmon *m = ax_malloc(sizeof *m);
    *m = (axd_cmon){mref, watcher, target};
    ax_free(axd_hmap_put(&s->client_mons, (const char *)&m->mref, sizeof m->mref, m));
}

/* Take mref's entry out (0 if none). */
static int cmon_take(axd_rt *s, uint64_t mref, ax_ref watcher, ax_ref *target)
{
    axd_cmon *m = axd_hmap_get(&s->client_mons, (const char *)&mref, sizeof mref);
    if (!m || !ax_ref_eq(m->watcher, watcher))
        return 0;
    if (target)
        *target = m->target;
    axd_hmap_del(&s->client_mons, (const char *)&mref, sizeof mref);
    ax_free(m);
    return 1;
}

void axd_cmon_free_all(axd_rt *s)
{
    axd_hmap_ent *e;
    for (size_t i = 0; (i = axd_hmap_next(&s->client_mons, i, &e)) != 0;)
        ax_free(e->val);
    axd_hmap_free(&s->client_mons);
}

void axd_runtime_deliver_down(axd_rt *s, ax_ref watcher, uint64_t mref, ax_ref who, const char *reason)
{
    if (watcher.node != 0 && s->group) { /* a client's worker has it; the cluster is worker 0's */
        uint32_t home = watcher.node == AXD_NODE_CLIENT ? axd_ref_worker(watcher) : 0;
        if (home != s->worker) {
            if (axd_xw_down_to(s, home, watcher, mref, who, reason) != 0)
                s->ctr.xw_dropped++;
            return;
        }
    }
    if (watcher.node == AXD_NODE_CLIENT && axd_ref_elsewhere(s, who) && !cmon_take(s, mref, watcher, NULL))
        return; /* demonitored (or the client left) while the down was on its way */
    s->ctr.downs++;
    if (watcher.node != 0 && watcher.node != AXD_NODE_CLIENT) { /* a watcher on another node */
        if (s->remote)
            s->remote->deliver_down(s->remote_ud, watcher, mref, who, reason);
        return;
    }
    if (watcher.node == AXD_NODE_CLIENT) {
        char doc[512];
        int n = snprintf(doc, sizeof doc, "{\"event\":\"down\",\"mref\":%llu,\"id\":%llu,\"gen\":%u,\"reason\":\"",
                         (unsigned long long)mref, (unsigned long long)who.id, who.gen);
        /* reasons are names (printable, no quotes or backslashes are produced by us),
         * but escape defensively */
        for (const char *p = reason; *p && n < (int)sizeof doc - 4; p++) {
            if (*p == '"' || *p == '\\')
                doc[n++] = '\\';
            doc[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
        }
        n += snprintf(doc + n, sizeof doc - (size_t)n, "\"}");
        /* forced: a down is owed exactly once and there is at most one per monitor */
        if (s->sink)
            s->sink->send_event(s->sink_ud, watcher, 0, doc, (size_t)n, 1);
        return;
    }
    int elsewhere = axd_ref_elsewhere(s, watcher);
    axd_actor *w = elsewhere ? NULL : axd_actor_get_any(s, watcher);
    if (!w && !elsewhere)
        return;
    size_t n = strlen(reason);
    axd_env *e = axd_env_new(s, n + 1);
    if (!e)
        return;
    memcpy(e->data, reason, n + 1);
    e->m.len = n;
    e->m.from = who;
    e->m.tag = mref;
    e->m.id = s->sys_down_id;
    e->kind = AXD_ENV_SYS;
    if ((elsewhere ? axd_xw_env(s, watcher, e) : axd_actor_deliver(s, w, e)) != 0)
        axd_env_free(s, e);
}

int axd_sup_monitor(axd_rt *s, ax_ref watcher, ax_ref target, uint64_t *mref)
{
    /* unique on the node: the worker in bits 45..52, so that every mref is below 2^53 and
     * exact in the JSON of a client's MONITOR answer and down events */
    uint64_t ref = (uint64_t)s->worker << 45 | (++s->next_mref & ((1ull << 45) - 1));
    *mref = ref;
    s->ctr.monitors++;
    if (target.node != 0 && target.node != AXD_NODE_CLIENT) { /* a remote actor */
        if (s->remote)
            return s->remote->monitor(s->remote_ud, watcher, target, ref);
        axd_runtime_deliver_down(s, watcher, ref, target, "noproc"); /* no such node */
        return AX_OK;
    }
    if (axd_ref_elsewhere(s, target)) { /* its worker adds the watcher, or answers noproc */
        axd_actor *w = watcher.node == 0 ? axd_actor_get_any(s, watcher) : NULL;
        int rc = axd_xw_signal(s, AXD_XW_MONITOR, target, watcher, ref, NULL);
        if (rc == 0 && w) {
            axd_actor_ext *wx = ext(w);
            mon_add(&wx->watching, &wx->n_watching, &wx->cap_watching, ref, target);
        } else if (rc == 0 && watcher.node == AXD_NODE_CLIENT) {
            cmon_add(s, ref, watcher, target);
        }
        return rc;
    }
    axd_actor *t = axd_actor_get_any(s, target);
    if (!t || t->st == AXD_ST_STOPPING) {
        axd_runtime_deliver_down(s, watcher, ref, target, "noproc");
        return AX_OK;
    }
    axd_actor_ext *tx = ext(t);
    mon_add(&tx->watchers, &tx->n_watchers, &tx->cap_watchers, ref, watcher);
    axd_actor *w = watcher.node == 0 ? axd_actor_get_any(s, watcher) : NULL;
    if (w) {
        axd_actor_ext *wx = ext(w);
        mon_add(&wx->watching, &wx->n_watching, &wx->cap_watching, ref, target);
    }
    return AX_OK;
}

/* Remove a queued "$down" for mref from the watcher's mailbox (signals ride the user
 * mailbox, in order with messages). */
static void flush_down(axd_rt *s, axd_actor *w, uint64_t mref)
{
    axd_mq keep = {0};
    for (axd_env *e; (e = axd_mq_pop(&w->user));) {
        if (e->kind == AXD_ENV_SYS && e->m.id == s->sys_down_id && e->m.tag == mref)
            axd_env_free(s, e);
        else
            axd_mq_push(&keep, e);
    }
    w->user = keep;
}

int axd_sup_demonitor(axd_rt *s, ax_ref watcher, uint64_t mref, int flush)
{
    ax_ref target = AX_REF_NONE;
    if (s->remote) /* a no-op unless mref watches a remote actor */
        s->remote->demonitor_mref(s->remote_ud, watcher, mref);
    axd_actor *w = watcher.node == 0 ? axd_actor_get_any(s, watcher) : NULL;
    int found = 0;
    if (w && w->x)
        found = mon_del(w->x->watching, &w->x->n_watching, mref, &target);
    if (!w && watcher.node == AXD_NODE_CLIENT && cmon_take(s, mref, watcher, &target)) {
        axd_xw_signal(s, AXD_XW_DEMONITOR, target, watcher, mref, NULL); /* another worker's actor */
    } else if (!w && watcher.node == AXD_NODE_CLIENT) {
        /* clients keep no list of this worker's targets: search them for the entry */
        for (uint32_t i = 1; i < s->actors.cap && !found; i++) {
            axd_actor *t = s->actors.ptr[i];
            if (t && t->x && mon_del(t->x->watchers, &t->x->n_watchers, mref, NULL))
                found = 1;
        }
    } else if (found && axd_ref_elsewhere(s, target)) {
        axd_xw_signal(s, AXD_XW_DEMONITOR, target, watcher, mref, NULL);
    } else if (found) {
        axd_actor *t = axd_actor_get_any(s, target);
        if (t && t->x)
            mon_del(t->x->watchers, &t->x->n_watchers, mref, NULL);
    }
    if (w && flush)
        flush_down(s, w, mref);
    return AX_OK;
}

static void drop_watcher_here(axd_rt *s, ax_ref watcher);

static void drop_watcher_cb(axd_rt *s, void *ud)
{
    drop_watcher_here(s, *(ax_ref *)ud);
    ax_free(ud);
}

/* A watcher (a client that left) monitors nothing any more, on any worker. */
void axd_monitors_drop_watcher(axd_rt *s, ax_ref watcher)
{
    drop_watcher_here(s, watcher);
    for (uint32_t w = 0; s->group && w < s->group->n; w++) {
        if (w == s->worker)
            continue;
        ax_ref *r = ax_malloc(sizeof *r);
        *r = watcher;
        if (axd_workers_call(s->group, w, drop_watcher_cb, r) != 0) {
            ax_free(r); /* that worker's inbox is full: its downs for the watcher are dropped */
            s->ctr.xw_full++;
        }
    }
}

static void drop_watcher_here(axd_rt *s, ax_ref watcher)
{
    if (watcher.node == AXD_NODE_CLIENT) { /* its monitors of other workers' actors */
        axd_hmap_ent *e;
        for (size_t i = 0; (i = axd_hmap_next(&s->client_mons, i, &e)) != 0;) {
            axd_cmon *m = e->val;
            if (ax_ref_eq(m->watcher, watcher)) {
                axd_hmap_del(&s->client_mons, (const char *)&m->mref, sizeof m->mref);
                ax_free(m);
            }
        }
    }
    for (uint32_t i = 1; i < s->actors.cap; i++) {
        axd_actor *t = s->actors.ptr[i];
        if (!t || !t->x)
            continue;
        for (uint32_t j = 0; j < t->x->n_watchers;) {
            if (ax_ref_eq(t->x->watchers[j].other, watcher))
                t->x->watchers[j] = t->x->watchers[--t->x->n_watchers];
            else
                j++;
        }
    }
}

/* The actor is gone for good: fire links and monitors with reason (NULL: a spawn
 * that never happened, so remove them silently), then drop what it held. */
void axd_actor_free_ext(axd_rt *s, axd_actor *a, const char *reason)
{
    axd_actor_ext *x = a->x;
    if (!x)
        return;
    a->x = NULL;
    ax_ref me = axd_ref(s, a);
    if (ev_is_active(&x->backoff))
        ev_timer_stop(s->loop, &x->backoff);
    for (uint32_t i = 0; i < x->n_links; i++) {
        if (axd_ref_elsewhere(s, x->links[i])) {
            axd_xw_signal(s, reason ? AXD_XW_EXIT_LINK : AXD_XW_UNLINK, x->links[i], me, 0, reason);
            continue;
        }
        axd_actor *b = axd_actor_get_any(s, x->links[i]);
        if (!b)
            continue;
        if (reason && b->st != AXD_ST_DEAD)
            exit_signal(s, b, me, reason, 1); /* b keeps its link entry until it takes the signal */
        else
            link_del(b, me);
    }
    for (uint32_t i = 0; i < x->n_watchers; i++)
        if (reason)
            axd_runtime_deliver_down(s, x->watchers[i].other, x->watchers[i].mref, me, reason);
    for (uint32_t i = 0; i < x->n_watching; i++) {
        if (axd_ref_elsewhere(s, x->watching[i].other)) {
            axd_xw_signal(s, AXD_XW_DEMONITOR, x->watching[i].other, me, x->watching[i].mref, NULL);
            continue;
        }
        axd_actor *t = axd_actor_get_any(s, x->watching[i].other);
        if (t && t->x)
            mon_del(t->x->watchers, &t->x->n_watchers, x->watching[i].mref, NULL);
    }
    ax_free(x->restart_times);
    ax_free(x->restart_reason);
    ax_free(x->links);
    ax_free(x->watchers);
    ax_free(x->watching);
    ax_free(x);
}

/* ---------------- signals from other workers (workers.c) ---------------- */

void axd_sup_xw_signal(axd_rt *s, uint32_t kind, ax_ref to, ax_ref from, uint64_t mref, const char *reason)
{
    axd_actor *a = axd_actor_get_any(s, to);
    int live = a && a->st != AXD_ST_DEAD && a->st != AXD_ST_STOPPING;
    switch (kind) {
    case AXD_XW_STOP:
        if (axd_actor_stop(s, axd_actor_get(s, to), reason) != 0)
            s->ctr.xw_dropped++;
        break;
    case AXD_XW_EXIT:
        if (axd_sup_exit(s, from, a, reason) != 0)
            s->ctr.xw_dropped++;
        break;
    case AXD_XW_EXIT_LINK:
        if (live)
            exit_signal(s, a, from, reason, 1);
        break;
    case AXD_XW_LINK:
        if (!live) /* `from` hears noproc, as a link to a gone actor does on one worker */
            axd_xw_signal(s, AXD_XW_LINK_FAIL, from, to, 0, "noproc");
        else if (!has_link(a, from))
            link_add(a, from);
        break;
    case AXD_XW_LINK_FAIL:
        if (a && a->st != AXD_ST_DEAD && has_link(a, from)) {
            link_del(a, from);
            exit_signal(s, a, from, "noproc", 0);
        }
        break;
    case AXD_XW_UNLINK:
        if (a)
            link_del(a, from);
        break;
    case AXD_XW_MONITOR:
        if (!live) {
            axd_runtime_deliver_down(s, from, mref, to, "noproc");
        } else {
            axd_actor_ext *tx = ext(a);
            mon_add(&tx->watchers, &tx->n_watchers, &tx->cap_watchers, mref, from);
        }
        break;
    case AXD_XW_DEMONITOR:
        if (a && a->x)
            mon_del(a->x->watchers, &a->x->n_watchers, mref, NULL);
        break;
    default: break;
    }
}

int axd_sup_xw_down_live(axd_rt *s, axd_actor *w, uint64_t mref)
{
    (void)s;
    return w->x && mon_del(w->x->watching, &w->x->n_watching, mref, NULL);
}
