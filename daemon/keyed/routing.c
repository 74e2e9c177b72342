/* Keyed routing on top of the shard leases: a (type, key) target hashes (by key) to a
 * shard; this node delivers to the keyed actor only while it holds the shard's lease,
 * checks the message's epoch against the shard's (fencing), and stops the shard's
 * actors with the manager's reason (lease_lost, handover, shutdown) the moment it stops
 * serving it. Without a lease manager (not started) every shard is local. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <string.h>

#include "ax_mem.h"
#include "log.h"
#include "monotime.h"
#include "peer.h"
#include "keyed.h"
#include "workers.h"
#include "shard.h"

#define SHARDS_STOP_GRACE 2.0 /* seconds to wait for lease releases at shutdown */
#define OWNER_CACHE_S 1.0     /* how long a looked-up shard owner is trusted */
#define MAX_WAITERS 4096      /* messages held per shard while its owner is looked up */
#define MEMBERSHIP_POLL 0.25  /* seconds between fair-share updates from the cluster */

/* A keyed message for a shard held elsewhere, waiting for the owner lookup. */
typedef struct route_wait {
    struct route_wait *next;
    unsigned kflags;
    uint32_t pd_slot, pd_gen; /* completion (ask or acknowledged tell); slot 0 = none */
    ax_ref from;
    uint32_t shard;
    uint8_t tries;            /* sends so far: a stale owner is re-resolved once */
    size_t tlen, klen, mlen, plen;
    char data[]; /* type, key, msg, payload */
} route_wait;

#define MAX_SENDS 2

struct axd_route_shard {
    char owner[AXD_LEASE_NODE_MAX + 1];
    uint64_t epoch;
    double at;
    uint8_t fetching;
    route_wait *head, *tail;
    uint32_t n_wait;
};

/* The per-shard table, with what an owner lookup's callback needs to find its server.
 * A lookup in flight on a store the server does not own (axd_route_start_store) may
 * answer after axd_route_free: the table is then detached (s = NULL) and freed by the
 * last such answer, so the callback never touches a server that is gone. */
typedef struct route_tab {
    axd_keyed *s;
    uint32_t fetching; /* owner lookups in flight */
    struct axd_route_shard sh[];
} route_tab;

static route_tab *tab_of(struct axd_route_shard *sh)
{
    return (route_tab *)(void *)((char *)sh - offsetof(route_tab, sh));
}


static const axd_shard_gate gate_ops;

static void on_acquired(void *ud, uint32_t shard, uint64_t epoch)
{
    axd_keyed *s = ud;
    axd_log(AX_LOG_DEBUG, "shard", "serving shard %u at epoch %llu", shard, (unsigned long long)epoch);
    if (s->rt->remote)
        s->rt->remote->share_epoch(s->rt->remote_ud, shard, epoch); /* every member learns it: the next grant exceeds it */
}

void axd_route_note_epoch(axd_keyed *s, uint32_t shard, uint64_t epoch, const char *from)
{
    if (s->shards)
        axd_shards_note_epoch(s->shards, shard, epoch, from);
}

size_t axd_route_known_epochs(axd_keyed *s, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap)
{
    return s->shards ? axd_shards_known_epochs(s->shards, from, sh, ep, cap) : 0;
}

/* A shard's actors on another worker stop there (workers.h); until they do, their own
 * fencing check (deadline and epoch) keeps them from handling anything. */
typedef struct shard_stop {
    axd_keyed *s;
    uint32_t shard;
    char reason[32];
} shard_stop;

static void stop_shard_cb(axd_rt *rt, void *ud)
{
    shard_stop *st = ud;
    for (axd_actor *a = rt->keyed_head; a; a = a->knext)
        if (a->st != AXD_ST_DEAD && a->st != AXD_ST_STOPPING && a->shard == st->shard)
            axd_actor_stop(rt, a, st->reason);
    /* every state write this worker's actors of the shard made is counted by now (this
     * thread made them, before this call): the release may wait for them (state.c) */
    atomic_fetch_sub_explicit(&st->s->stops_pending[st->shard], 1, memory_order_release);
    ax_free(st);
}

static void on_lost(void *ud, uint32_t shard, uint64_t epoch, const char *reason)
{
    axd_keyed *s = ud;
    uint32_t n = 0;
    axd_workers *g = s->rt->group;
    for (uint32_t w = 1; g && s->workers_attached && w < g->n; w++) {
        shard_stop *st = ax_malloc(sizeof *st);
        st->s = s;
        st->shard = shard;
        snprintf(st->reason, sizeof st->reason, "%s", reason);
        atomic_fetch_add_explicit(&s->stops_pending[shard], 1, memory_order_relaxed);
        if (axd_workers_call(g, w, stop_shard_cb, st) != 0) {
            atomic_fetch_sub_explicit(&s->stops_pending[shard], 1, memory_order_relaxed);
            ax_free(st); /* its actors stop at their own fencing check */
        }
    }
    /* From now on deliveries are refused (the actor is STOPPING) and the stop runs
     * before any queued user message (control mailbox first). */
    for (axd_actor *a = s->rt->keyed_head; a; a = a->knext) {
        if (a->st != AXD_ST_DEAD && a->st != AXD_ST_STOPPING && a->shard == shard) {
            axd_actor_stop(s->rt, a, reason);
            n++;
        }
    }
    axd_log(strcmp(reason, AXD_SHARD_LOST) == 0 ? AX_LOG_WARN : AX_LOG_DEBUG, "shard",
           "stopped serving shard %u (epoch %llu): %s; %u actors stopped", shard, (unsigned long long)epoch, reason, n);
}

static void on_stopped(void *ud)
{
    axd_keyed *s = ud;
    s->shards_stopped = 1;
    if (s->stopping)
        ev_break(s->loop, EVBREAK_ALL);
}

/* The fair share follows the cluster's membership (a joining node takes shards over,
 * a lost one's shards are taken by the survivors once its leases expire). */
static void membership_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    axd_keyed *s = w->data;
    if (s->lease_store) {
        axd_lease_state ls;
        axd_lease_store_state(s->lease_store, &ls);
        int up = ls.conn && !strcmp(ls.conn, "connected");
        if (up)
            s->store_down_since = 0;
        else if (!s->store_down_since)
            s->store_down_since = axd_mono_now();
    }
    if (s->shards && !s->stopping && !s->rt->stopping)
        axd_shards_set_live_nodes(s->shards, s->rt->remote ? s->rt->remote->live_nodes(s->rt->remote_ud) : 1);
}

int axd_route_store_ok(axd_keyed *s)
{
    if (!s->shards || !s->store_down_since)
        return 1;
    return axd_mono_now() - s->store_down_since < s->cfg->lease_renew_interval_ms / 1000.0;
}

static int route_start(axd_keyed *s, char *err, size_t errlen)
{
    /* the owner id is the wire id without the session part: a restarted node (new
     * boot hex) is a new owner, a re-handshake of the same process is not */
    char owner[sizeof s->rt->node_id];
    snprintf(owner, sizeof owner, "%s", s->rt->node_id);
    char *sess = strstr(owner, "-session-");
    if (sess)
        *sess = 0;
    axd_shards_cfg sc;
    axd_shards_cfg_from_config(&sc, s->cfg, owner);
    axd_shards_cbs cb = {.on_acquired = on_acquired, .on_lost = on_lost, .on_stopped = on_stopped,
                         .release_ready = axd_route_release_ready, .ud = s};
    s->state_inflight = ax_calloc(s->cfg->shard_count, sizeof *s->state_inflight);
    s->stops_pending = ax_calloc(s->cfg->shard_count, sizeof *s->stops_pending);
    s->shards = axd_shards_new(s->loop, s->lease_store, &sc, &cb, err, errlen);
    if (!s->shards) {
        if (!s->lease_store_borrowed)
            axd_lease_store_free(s->lease_store);
        s->lease_store = NULL;
        s->lease_store_borrowed = 0;
        return AX_ECONFIG;
    }
    axd_shards_start(s->shards);
    snprintf(s->route_owner, sizeof s->route_owner, "%s", owner);
    route_tab *tab = ax_calloc(1, sizeof *tab + (size_t)s->cfg->shard_count * sizeof tab->sh[0]);
    tab->s = s;
    s->route_shards = tab->sh;
    s->state_stats = ax_calloc(s->cfg->shard_count, sizeof *s->state_stats);
    for (uint32_t i = 0; i < s->cfg->shard_count; i++)
        s->state_stats[i].records = -1;
    ev_timer_init(&s->membership, membership_cb, MEMBERSHIP_POLL, MEMBERSHIP_POLL);
    s->membership.data = s;
    ev_timer_start(s->loop, &s->membership);
    axd_rt_set_gate(s->rt, &gate_ops, s);
    axd_log(AX_LOG_INFO, "shard", "%u shards, lease store %s, ttl %u ms", s->cfg->shard_count,
           s->lease_store_borrowed ? "(given)" : s->cfg->lease_store, s->cfg->lease_ttl_ms);
    return AX_OK;
}

static void keyed_init(axd_keyed *s, axd_rt *rt)
{
    memset(s, 0, sizeof *s);
    s->rt = rt;
    s->loop = rt->loop;
    s->cfg = rt->cfg;
}

int axd_route_start(axd_keyed *s, axd_rt *rt, char *err, size_t errlen)
{
    keyed_init(s, rt);
    s->lease_store = axd_lease_store_from_config(s->loop, s->cfg, err, errlen);
    if (!s->lease_store)
        return AX_ECONFIG;
    s->lease_store_borrowed = 0;
    if (s->cfg->state_store && !strcmp(s->cfg->state_store, "redis")) {
        /* durable state in a Redis of its own, fenced by per-shard epoch fences there */
        axd_lease_redis_cfg rc = {
            .host = s->cfg->state_redis_host,
            .port = (uint16_t)s->cfg->state_redis_port,
            .password = s->cfg->state_redis_password,
            .db = s->cfg->state_redis_db,
            .prefix = s->cfg->state_redis_prefix,
            .connect_timeout_ms = s->cfg->redis_connect_timeout_ms,
            .state_fences = 1,
        };
        s->state_store = axd_lease_redis_new(s->loop, s->cfg->shard_count, &rc, err, errlen);
        if (!s->state_store) {
            axd_lease_store_free(s->lease_store);
            s->lease_store = NULL;
            return AX_ECONFIG;
        }
    }
    int rc = route_start(s, err, errlen);
    if (rc && s->state_store) {
        axd_lease_store_free(s->state_store);
        s->state_store = NULL;
    }
    return rc;
}

int axd_route_start_store(axd_keyed *s, axd_rt *rt, axd_lease_store *store, char *err, size_t errlen)
{
    keyed_init(s, rt);
    if (!store || store->n_shards != s->cfg->shard_count) {
        snprintf(err, errlen, "lease store has %u shards, shards.count is %u", store ? store->n_shards : 0,
                 s->cfg->shard_count);
        return AX_ECONFIG;
    }
    s->lease_store = store;
    s->lease_store_borrowed = 1;
    return route_start(s, err, errlen);
}

/* Begin releasing the leases. Returns 1 if the caller must keep the loop running
 * until on_stopped (bounded by a grace timer), 0 if nothing is left to wait for. */
static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    axd_log(AX_LOG_WARN, "shard", "lease releases not confirmed within %.0f s; exiting anyway", SHARDS_STOP_GRACE);
    ev_break(loop, EVBREAK_ALL);
}

int axd_route_stop(axd_keyed *s)
{
    if (!s->shards || s->shards_stopped)
        return 0;
    s->stopping = 1; /* on_stopped ends the loop */
    axd_shards_stop(s->shards);
    if (s->shards_stopped)
        return 0;
    ev_timer_init(&s->shards_grace, grace_cb, SHARDS_STOP_GRACE, 0.);
    ev_timer_start(s->loop, &s->shards_grace);
    return 1;
}

static void fail_waiters(axd_keyed *s, struct axd_route_shard *rs, int rc);

void axd_route_free(axd_keyed *s)
{
    if (!s->rt)
        return; /* never started */
    if (s->rt->gate_ud == s)
        axd_rt_set_gate(s->rt, NULL, NULL);
    if (ev_is_active(&s->shards_grace))
        ev_timer_stop(s->loop, &s->shards_grace);
    if (ev_is_active(&s->membership))
        ev_timer_stop(s->loop, &s->membership);
    if (s->route_shards) {
        for (uint32_t i = 0; i < s->cfg->shard_count; i++)
            fail_waiters(s, &s->route_shards[i], AX_ECANCELED);
    }
    s->freeing = 1; /* the stores' callbacks from here on must not reach the runtimes */
    axd_shards_free(s->shards); /* manager before store */
    s->shards = NULL;
    if (!s->lease_store_borrowed)
        axd_lease_store_free(s->lease_store); /* cancels owner lookups (their callbacks run) */
    s->lease_store = NULL;
    axd_lease_store_free(s->state_store); /* cancels state operations in flight */
    s->state_store = NULL;
    s->lease_store_borrowed = 0;
    if (s->route_shards) {
        route_tab *tab = tab_of(s->route_shards);
        tab->s = NULL;
        if (!tab->fetching)
            ax_free(tab); /* else the last lookup's answer frees it */
    }
    s->route_shards = NULL;
    ax_free(s->state_stats);
    s->state_stats = NULL;
    ax_free((void *)s->state_inflight);
    s->state_inflight = NULL;
    ax_free((void *)s->stops_pending);
    s->stops_pending = NULL;
}

uint32_t axd_route_shard_of(axd_keyed *s, const char *key, size_t klen)
{
    return axd_shard_of(key, klen, s->cfg->shard_count);
}

int axd_route_check(axd_keyed *s, const char *key, size_t klen, uint64_t msg_epoch, uint64_t *epoch, const char **why)
{
    *epoch = 0;
    if (!s->shards)
        return AX_OK;
    uint32_t shard = axd_shard_of(key, klen, s->cfg->shard_count);
    /* admission with the coarse clock: the handler's own check (actor.c) is precise */
    int rc = axd_shards_fence_at(s->shards, shard, msg_epoch, axd_mono_coarse_now(), epoch);
    if (rc == AX_EBUSY)
        *why = "the key's shard is not served by this node now (retry: it may be moving)";
    else if (rc == AX_ESTALE)
        *why = "stale shard epoch: the shard changed owner; re-resolve";
    return rc;
}


/* Live keyed actors per shard on one worker, counted on its thread (a synchronous call
 * from worker 0: the callee allocates the counts, the caller frees them). */
typedef struct shard_count_call {
    uint32_t shards;
    uint32_t *count;
} shard_count_call;

static void shard_count_cb(axd_rt *rt, void *ud)
{
    shard_count_call *c = ud;
    c->count = ax_calloc(c->shards, sizeof *c->count);
    for (axd_actor *a = rt->keyed_head; a; a = a->knext)
        if (a->st != AXD_ST_DEAD && a->shard < c->shards)
            c->count[a->shard]++;
}

cJSON *axd_route_shards_json(axd_keyed *s, int all)
{
    if (!s->shards) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "no lease manager");
        return o;
    }
    cJSON *doc = axd_shards_json(s->shards, all);
    shard_count_call mine = {.shards = s->cfg->shard_count};
    shard_count_cb(s->rt, &mine);
    uint32_t *count = mine.count;
    axd_workers *g = s->rt->group;
    for (uint32_t w = 1; g && w < g->n; w++) { /* the keyed actors of the other workers */
        shard_count_call c = {.shards = s->cfg->shard_count};
        if (axd_workers_sync(g, 0, w, shard_count_cb, &c, sizeof c, 1000) != 0)
            continue; /* too busy to answer: its actors are not counted (a call answered
                       * late leaves its counts unfreed: rare and bounded) */
        for (uint32_t i = 0; i < c.shards; i++)
            count[i] += c.count[i];
        ax_free(c.count);
    }
    cJSON *arr = cJSON_GetObjectItem(doc, "shards"), *it;
    cJSON_ArrayForEach(it, arr)
    {
        cJSON *sh = cJSON_GetObjectItem(it, "shard");
        if (cJSON_IsNumber(sh) && sh->valuedouble >= 0 && sh->valuedouble < s->cfg->shard_count) {
            uint32_t i = (uint32_t)sh->valuedouble;
            cJSON_AddNumberToObject(it, "actors", count[i]);
            if (s->state_stats) { /* durable state: what this node did with the shard's records */
                const axd_route_state_stat *st = &s->state_stats[i];
                cJSON_AddNumberToObject(it, "states", (double)st->records);
                cJSON_AddNumberToObject(it, "state_loads", (double)st->loads);
                cJSON_AddNumberToObject(it, "state_writes", (double)st->writes);
                cJSON_AddNumberToObject(it, "state_fenced", (double)st->fenced);
            }
        }
    }
    ax_free(count);
    return doc;
}

void axd_route_status(axd_keyed *s, cJSON *doc)
{
    cJSON *o = cJSON_AddObjectToObject(doc, "shards");
    cJSON_AddNumberToObject(o, "count", s->cfg->shard_count);
    if (!s->shards)
        return;
    axd_lease_state ls;
    axd_lease_store_state(s->lease_store, &ls);
    cJSON_AddNumberToObject(o, "owned", axd_shards_count_owned(s->shards));
    cJSON_AddNumberToObject(o, "target", axd_shards_target(s->shards));
    cJSON *st = cJSON_AddObjectToObject(doc, "lease_store");
    cJSON_AddStringToObject(st, "type", ls.store ? ls.store : "?");
    cJSON_AddStringToObject(st, "state", ls.conn ? ls.conn : "?");
    cJSON_AddStringToObject(st, "last_error", ls.last_error ? ls.last_error : "");
    cJSON_AddNumberToObject(st, "ops", (double)ls.ops);
    cJSON_AddNumberToObject(st, "errors", (double)ls.errors);
    cJSON_AddNumberToObject(st, "reconnects", (double)ls.reconnects);
    /* lease records older than an epoch known in the cluster: the store went back */
    cJSON_AddNumberToObject(st, "regressions", (double)axd_shards_regressions(s->shards));
    /* durable state: in the lease store, or in a Redis of its own (state.store) */
    cJSON *ss = cJSON_AddObjectToObject(doc, "state_store");
    if (s->state_store) {
        axd_lease_state ps;
        axd_lease_store_state(s->state_store, &ps);
        cJSON_AddStringToObject(ss, "type", "redis (its own)");
        cJSON_AddStringToObject(ss, "state", ps.conn ? ps.conn : "?");
        cJSON_AddStringToObject(ss, "last_error", ps.last_error ? ps.last_error : "");
        cJSON_AddNumberToObject(ss, "ops", (double)ps.ops);
        cJSON_AddNumberToObject(ss, "errors", (double)ps.errors);
        cJSON_AddNumberToObject(ss, "reconnects", (double)ps.reconnects);
    } else {
        cJSON_AddStringToObject(ss, "type", "the lease store");
    }
}

/* ---------------- keyed messages for shards held elsewhere ---------------- */

static void complete(axd_keyed *s, uint32_t slot, uint32_t gen, int rc)
{
    if (slot)
        axd_pending_complete(s->rt, slot, gen, rc, NULL, 0);
}

static void fail_waiters(axd_keyed *s, struct axd_route_shard *rs, int rc)
{
    route_wait *w;
    while ((w = rs->head)) {
        rs->head = w->next;
        complete(s, w->pd_slot, w->pd_gen, rc);
        ax_free(w);
    }
    rs->tail = NULL;
    rs->n_wait = 0;
}

/* Deliver here after all (the lookup found this node, e.g. it acquired the shard in
 * the meantime). The pd, if any, completes with the reply (ask) or the enqueue (tell). */
static int deliver_local(axd_keyed *s, const char *type, size_t tlen, const char *key, size_t klen,
                         unsigned kflags, const char *msg, size_t mlen, const void *p, size_t n, ax_ref from,
                         axd_pending *pd)
{
    ax_ref ref;
    const char *why = NULL;
    int rc = axd_registry_route(s->rt, type, tlen, key, klen, 0, !(kflags & AX_PK_DIRECT), &ref, &why);
    axd_actor *a = rc ? NULL : axd_actor_get(s->rt, ref);
    uint32_t id = a ? axd_msg_lookup(s->rt, msg, mlen) : 0;
    if (!rc && !a)
        rc = AX_ENOPROC;
    if (!rc && !axd_actor_handles(a, id))
        rc = AX_ENOMSG;
    if (rc)
        return rc;
    axd_env *e = axd_env_new(s->rt, n);
    if (!e)
        return AX_ENOMEM;
    if (n)
        memcpy(e->data, p, n);
    e->m.id = id;
    e->m.from = from;
    if (pd && (kflags & AX_PK_ASK)) {
        e->ask = pd->slot;
        e->ask_gen = pd->gen;
    }
    rc = axd_actor_deliver(s->rt, a, e);
    if (rc) {
        axd_env_free(s->rt, e);
        return rc;
    }
    if (pd && !(kflags & AX_PK_ASK))
        axd_pending_complete(s->rt, pd->slot, pd->gen, AX_OK, NULL, 0);
    return AX_OK;
}

static int wait_enqueue(axd_keyed *s, route_wait *w);

/* The owner's answer to a forwarded message, on its way to the original request (kept
 * in u.client: slot, gen). EBUSY / ESTALE mean the cached owner or epoch is out of date,
 * ENOCONN that the owner is gone: forget it, and for EBUSY / ESTALE look the owner up
 * again and send once more (the message is kept in ud for that) before answering the
 * request with the retryable error. */
static axd_keyed *keyed_of(axd_rt *rt);

static void keyed_reply(axd_rt *rt, axd_pending *p, int status, const void *data, size_t n)
{
    axd_keyed *s = keyed_of(rt);
    route_wait *w = p->ud;
    p->ud = NULL;
    if ((status == AX_EBUSY || status == AX_ESTALE || status == AX_ENOCONN) && s && s->route_shards)
        s->route_shards[w->shard].owner[0] = 0;
    if ((status == AX_EBUSY || status == AX_ESTALE) && w->tries < MAX_SENDS &&
        axd_slots_get(&rt->pending, w->pd_slot, w->pd_gen) && s && s->route_shards && !s->stopping && !rt->stopping) {
        rt->ctr.route_retries++;
        if (wait_enqueue(s, w) == AX_OK)
            return; /* w is queued again; the request is answered by the next send */
    }
    uint32_t slot = w->pd_slot, gen = w->pd_gen;
    ax_free(w);
    axd_pending_complete(rt, slot, gen, status, data, n);
}

static void keyed_unsent(axd_rt *s, axd_pending *p, int status, const void *data, size_t n)
{
    (void)s, (void)status, (void)data, (void)n; /* the caller answers the original request */
    ax_free(p->ud);
    p->ud = NULL;
}

/* Send w to the shard's cached owner. Takes w: frees it, or hands it to the pending
 * request that waits for the owner's answer. Returns the send's error (the caller
 * answers the request with it), or 0. */
static int send_now(axd_keyed *s, struct axd_route_shard *rs, route_wait *w)
{
    const char *type = w->data, *key = type + w->tlen, *msg = key + w->klen, *pl = msg + w->mlen;
    axd_pending *pd = w->pd_slot ? axd_slots_get(&s->rt->pending, w->pd_slot, w->pd_gen) : NULL;
    int rc;
    w->tries++;
    if (w->pd_slot && !pd) {
        rc = AX_OK; /* the request timed out while its message waited: nothing to send */
    } else if (strcmp(rs->owner, s->route_owner) == 0) {
        rc = deliver_local(s, type, w->tlen, key, w->klen, w->kflags, msg, w->mlen, pl, w->plen, w->from, pd);
    } else if (!pd) {
        rc = s->rt->remote->keyed_send(s->rt->remote_ud, rs->owner, type, w->tlen, key, w->klen, rs->epoch, w->kflags, msg, w->mlen, pl,
                                   w->plen, w->from, NULL);
    } else {
        double rem = ev_timer_remaining(s->loop, &pd->timer);
        axd_pending *via = axd_pending_new(s->rt, rem > 0 ? (uint32_t)(rem * 1000.0) + 1 : 1, keyed_reply);
        if (!via) {
            ax_free(w);
            return AX_ENOMEM;
        }
        via->ud = w;
        rc = s->rt->remote->keyed_send(s->rt->remote_ud, rs->owner, type, w->tlen, key, w->klen, rs->epoch, w->kflags, msg, w->mlen, pl,
                                   w->plen, w->from, via);
        if (rc) {
            via->done = keyed_unsent; /* frees w */
            axd_pending_complete(s->rt, via->slot, via->gen, rc, NULL, 0);
        }
        return rc;
    }
    ax_free(w);
    return rc;
}

static void owner_cb(void *ud, uint32_t shard, const axd_lease_result *r)
{
    route_tab *tab = ud;
    axd_keyed *s = tab->s;
    tab->fetching--;
    if (!s) {
        if (!tab->fetching)
            ax_free(tab);
        return;
    }
    struct axd_route_shard *rs = &tab->sh[shard];
    rs->fetching = 0;
    rs->owner[0] = 0;
    if (r->status == AX_OK && r->granted && r->owner_len && r->owner_len < sizeof rs->owner) {
        memcpy(rs->owner, r->owner, r->owner_len);
        rs->owner[r->owner_len] = 0;
        rs->epoch = r->epoch;
        rs->at = ev_now(s->loop);
    }
    if (!rs->owner[0]) {
        /* nobody holds it now (its owner died and the lease has not been taken over
         * yet), or the store cannot say (unreachable: then no node serves anything
         * beyond its deadline either): a retryable error rather than a silent drop.
         * Not the store's AX_ECONN: to a client that means its own connection broke. */
        fail_waiters(s, rs, r->status == AX_ECANCELED ? AX_ECANCELED : AX_EBUSY);
        return;
    }
    route_wait *w;
    while ((w = rs->head)) {
        rs->head = w->next;
        rs->n_wait--;
        w->next = NULL;
        uint32_t slot = w->pd_slot, gen = w->pd_gen;
        int rc = send_now(s, rs, w);
        /* a holder that is no node we know (our own previous boot after a restart,
         * a node not yet peered) cannot be reached until its lease moves: retry */
        if (rc == AX_ENOTFOUND && strcmp(rs->owner, s->route_owner) != 0)
            rc = AX_EBUSY;
        if (rc)
            complete(s, slot, gen, rc);
    }
    rs->tail = NULL;
}

/* Queue w for its shard and make sure the owner is being looked up. Takes w on
 * success; on an error the caller still owns it. */
static int wait_enqueue(axd_keyed *s, route_wait *w)
{
    struct axd_route_shard *rs = &s->route_shards[w->shard];
    if (rs->n_wait >= MAX_WAITERS)
        return AX_EBUSY;
    if (!rs->fetching) {
        route_tab *tab = tab_of(s->route_shards);
        int rc = axd_lease_get(s->lease_store, w->shard, owner_cb, tab);
        if (rc)
            return rc;
        rs->fetching = 1;
        tab->fetching++;
    }
    w->next = NULL;
    if (rs->tail)
        rs->tail->next = w;
    else
        rs->head = w;
    rs->tail = w;
    rs->n_wait++;
    return AX_OK;
}

int axd_route_send(axd_keyed *s, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                  const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, axd_pending *pd)
{
    if (!s->shards || !s->route_shards || !s->rt->remote)
        return AX_EBUSY; /* alone: a shard we do not hold has no other owner to go to */
    route_wait *w = ax_try_malloc(sizeof *w + tlen + klen + mlen + n);
    if (!w)
        return AX_ENOMEM;
    w->next = NULL;
    w->kflags = kflags;
    w->pd_slot = pd ? pd->slot : 0;
    w->pd_gen = pd ? pd->gen : 0;
    w->from = from;
    w->shard = axd_shard_of(key, klen, s->cfg->shard_count);
    w->tries = 0;
    w->tlen = tlen;
    w->klen = klen;
    w->mlen = mlen;
    w->plen = n;
    memcpy(w->data, type, tlen);
    memcpy(w->data + tlen, key, klen);
    memcpy(w->data + tlen + klen, msg, mlen);
    if (n)
        memcpy(w->data + tlen + klen + mlen, p, n);
    struct axd_route_shard *rs = &s->route_shards[w->shard];
    if (rs->owner[0] && ev_now(s->loop) - rs->at < OWNER_CACHE_S && !rs->head) {
        /* the cached owner: send now; if it is gone, look it up (w kept for that) */
        route_wait *copy = ax_try_malloc(sizeof *w + tlen + klen + mlen + n);
        if (copy) {
            memcpy(copy, w, sizeof *w + tlen + klen + mlen + n);
            int rc = send_now(s, rs, copy);
            if (rc != AX_ENOCONN && rc != AX_ENOTFOUND) {
                ax_free(w);
                return rc;
            }
            rs->owner[0] = 0;
        }
    }
    int rc = wait_enqueue(s, w);
    if (rc)
        ax_free(w);
    return rc;
}

/* ---------------- the core's shard gate ---------------- */

static axd_keyed *keyed_of(axd_rt *rt) { return rt->gate == &gate_ops ? rt->gate_ud : NULL; }

static uint32_t gate_shard_of(void *ud, const char *key, size_t klen) { return axd_route_shard_of(ud, key, klen); }

static int gate_check(void *ud, const char *key, size_t klen, uint64_t msg_epoch, uint64_t *epoch, const char **why)
{
    return axd_route_check(ud, key, klen, msg_epoch, epoch, why);
}

static int gate_serving(void *ud, uint32_t shard, uint64_t *epoch)
{
    axd_keyed *s = ud;
    return axd_shards_serving(s->shards, shard, epoch);
}

static void gate_expire(void *ud)
{
    axd_keyed *s = ud;
    axd_shards_expire(s->shards);
}

/* a keyed actor runs only within one epoch of its shard (it is stopped when the shard
 * is lost) and a handler starts only before the deadline (actor.c) */
static uint64_t gate_epoch(void *ud, uint32_t shard)
{
    axd_keyed *s = ud;
    return axd_shards_epoch(s->shards, shard);
}

static int gate_forward(void *ud, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                        const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, axd_pending *pd)
{
    return axd_route_send(ud, type, tlen, key, klen, kflags, msg, mlen, p, n, from, pd);
}

static int gate_store_ok(void *ud) { return axd_route_store_ok(ud); }

static void gate_note_epoch(void *ud, uint32_t shard, uint64_t epoch, const char *from)
{
    axd_route_note_epoch(ud, shard, epoch, from);
}

static size_t gate_known_epochs(void *ud, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap)
{
    return axd_route_known_epochs(ud, from, sh, ep, cap);
}

static const axd_shard_gate gate_ops = {
    .shard_of = gate_shard_of,
    .check = gate_check,
    .serving = gate_serving,
    .expire = gate_expire,
    .epoch = gate_epoch,
    .forward = gate_forward,
    .store_ok = gate_store_ok,
    .note_epoch = gate_note_epoch,
    .known_epochs = gate_known_epochs,
    .state_load = axd_route_state_load,
    .state_write = axd_route_state_write,
};

/* ---------------- the shard gate of workers 1..n-1 ----------------
 * The lease manager runs on worker 0; what a worker's keyed actors need of it is read
 * from their own thread (published state, thread-safe), and the rest is sent there. */

static void expire_cb(axd_rt *rt, void *ud)
{
    (void)rt;
    axd_keyed *s = ud;
    if (s->shards)
        axd_shards_expire(s->shards);
}

static void wgate_expire(void *ud)
{
    axd_keyed *s = ud;
    axd_workers_call(s->rt->group, 0, expire_cb, s); /* the manager's state is worker 0's */
}

/* A keyed message an actor of worker `worker` sends to a shard another node serves:
 * routed by worker 0 (its lease manager and cluster), the answer back to the asker's
 * pending on its worker through a pending of worker 0. */
typedef struct wfwd {
    axd_keyed *s;
    unsigned kflags;
    ax_ref from;
    uint32_t slot, gen, worker, timeout_ms; /* slot 0: a tell */
    size_t tlen, klen, mlen, n;
    char data[]; /* type, key, msg, payload */
} wfwd;

static void wfwd_cb(axd_rt *rt, void *ud)
{
    wfwd *q = ud;
    axd_pending *p = NULL;
    int rc = AX_OK;
    if (q->slot) {
        p = axd_pending_new(rt, q->timeout_ms, axd_xw_relay_done);
        if (!p)
            rc = AX_ENOMEM;
        else {
            p->u.client.conn_slot = q->slot;
            p->u.client.conn_gen = q->gen;
            p->u.client.req_id = q->worker;
        }
    }
    if (!rc)
        rc = axd_route_send(q->s, q->data, q->tlen, q->data + q->tlen, q->klen, q->kflags, q->data + q->tlen + q->klen,
                            q->mlen, q->data + q->tlen + q->klen + q->mlen, q->n, q->from, p);
    if (rc && p)
        axd_pending_complete(rt, p->slot, p->gen, rc, NULL, 0); /* the error goes back */
    else if (rc && q->slot) {
        axd_env back = {.ask = q->slot, .ask_gen = q->gen, .ask_worker = (uint8_t)q->worker};
        axd_xw_answer(rt, &back, rc, NULL, 0);
    } else if (rc)
        rt->ctr.xw_dropped++; /* a tell that no node can take now */
    ax_free(q);
}

static int wgate_forward(void *ud, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                         const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, axd_pending *pd)
{
    axd_keyed *s = ud;
    axd_workers *g = s->rt->group;
    uint32_t w = axd_ref_worker(from); /* the sender is an actor of the calling worker */
    if (!g || from.node != 0 || w == 0 || w >= g->n)
        return AX_EBUSY;
    wfwd *q = ax_try_malloc(sizeof *q + tlen + klen + mlen + n);
    if (!q)
        return AX_ENOMEM;
    *q = (wfwd){.s = s, .kflags = kflags, .from = from, .worker = w, .tlen = tlen, .klen = klen, .mlen = mlen, .n = n};
    memcpy(q->data, type, tlen);
    memcpy(q->data + tlen, key, klen);
    memcpy(q->data + tlen + klen, msg, mlen);
    if (n)
        memcpy(q->data + tlen + klen + mlen, p, n);
    if (pd) {
        double rem = ev_timer_remaining(g->w[w].loop, &pd->timer); /* this thread's loop */
        q->slot = pd->slot;
        q->gen = pd->gen;
        q->timeout_ms = rem > 0 ? (uint32_t)(rem * 1000.0) + 1 : 1;
    }
    int rc = axd_workers_call(g, 0, wfwd_cb, q);
    if (rc)
        ax_free(q);
    return rc; /* on AX_OK the answer comes back to pd, exactly once */
}

static int wgate_store_ok(void *ud) { return (void)ud, 1; } /* asked by the cluster, on worker 0 only */
static void wgate_note_epoch(void *ud, uint32_t shard, uint64_t epoch, const char *from)
{
    (void)ud, (void)shard, (void)epoch, (void)from; /* the cluster is worker 0's */
}
static size_t wgate_known_epochs(void *ud, uint32_t from, uint32_t *sh, uint64_t *ep, size_t cap)
{
    (void)ud, (void)from, (void)sh, (void)ep, (void)cap;
    return 0;
}

static const axd_shard_gate worker_gate_ops = {
    .shard_of = gate_shard_of,
    .check = gate_check,
    .serving = gate_serving,
    .expire = wgate_expire,
    .epoch = gate_epoch,
    .forward = wgate_forward,
    .store_ok = wgate_store_ok,
    .note_epoch = wgate_note_epoch,
    .known_epochs = wgate_known_epochs,
    .state_load = axd_route_state_load,
    .state_write = axd_route_state_write,
};

static void install_cb(axd_rt *rt, void *ud)
{
    axd_keyed *s = *(axd_keyed **)ud;
    axd_rt_set_gate(rt, s ? &worker_gate_ops : NULL, s);
}

int axd_route_attach_workers(axd_keyed *s)
{
    axd_workers *g = s->rt ? s->rt->group : NULL;
    if (!g || !s->shards)
        return 0;
    for (uint32_t w = 1; w < g->n; w++) {
        int rc = axd_workers_sync(g, 0, w, install_cb, &s, sizeof s, 5000);
        if (rc)
            return rc;
    }
    s->workers_attached = 1;
    return 0;
}
