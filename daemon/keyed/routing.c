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
#define ROUTE_RETRY_S 0.025   /* a held shard's owner is looked up again this often */
#define DRAIN_POLL_S 0.01     /* a drain looks this often whether it is done */
#define DRAIN_BARRIER_MAX_S 1.0 /* the longest wait for the peers' answers before an exit */

/* A keyed message for a shard held elsewhere, waiting for the owner lookup. */
typedef struct route_wait {
    struct route_wait *next;
    unsigned kflags;
    uint32_t pd_slot, pd_gen; /* completion (ask or acknowledged tell); slot 0 = none */
    ax_ref from;
    uint32_t shard;
    uint8_t tries;            /* sends so far: a stale owner is re-resolved at once, then held */
    uint8_t held;             /* it waited for the shard's next owner (counted once) */
    uint8_t handback;         /* an actor of this node had it queued (a drain waits for it) */
    uint8_t ask_worker;       /* hand-back from another worker: the worker of pd_slot */
    double until;             /* held no longer than this (loop time): then EBUSY */
    double held_at;           /* loop time it was first held (the hold histogram) */
    size_t tlen, klen, mlen, plen;
    char data[]; /* type, key, msg, payload */
} route_wait;

#define MAX_SENDS 2

struct axd_route_shard {
    char owner[AXD_LEASE_NODE_MAX + 1];
    uint64_t epoch;
    uint64_t released; /* the highest epoch a peer said it released (RELEASED) */
    double at;
    uint8_t fetching;
    uint8_t parked; /* its owner is looked up again at the next retry tick */
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

/* What a leaving shard's actors had queued, on its way to the routing queue. */
typedef struct handback {
    route_wait *head, *tail;
    uint32_t n;
} handback;

static void handback_take(axd_keyed *s, axd_rt *rt, axd_actor *a, handback *hb);
static void handback_queue(axd_keyed *s, uint32_t shard, handback *hb);
static void handback_fail(axd_rt *rt, handback *hb);
static int may_hand_back(const axd_keyed *s);
static void park(axd_keyed *s, uint32_t shard, double in);
static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void drain_cb(struct ev_loop *loop, ev_timer *t, int revents);

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
    if (s->route_shards && s->route_shards[shard].head)
        park(s, shard, 0); /* what waited for the shard's next owner: this node */
}

/* The store confirmed a release: the peers may take the shard now (RELEASED), and what
 * was handed back goes to whoever does. */
static void on_released(void *ud, uint32_t shard, uint64_t epoch)
{
    axd_keyed *s = ud;
    if (s->rt->remote && s->rt->remote->shard_released)
        s->rt->remote->shard_released(s->rt->remote_ud, shard, epoch);
    if (s->route_shards && s->route_shards[shard].head)
        park(s, shard, ROUTE_RETRY_S);
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
    int handback;
    handback hb; /* what its actors of this worker had queued, for worker 0 */
} shard_stop;

/* On worker 0: the hand-back of another worker is queued; only then the stop counts as
 * done (the release waits for it: nothing can overtake what it hands back). */
static void handback_cb(axd_rt *rt, void *ud)
{
    shard_stop *st = ud;
    (void)rt;
    handback_queue(st->s, st->shard, &st->hb);
    atomic_fetch_sub_explicit(&st->s->stops_pending[st->shard], 1, memory_order_release);
    ax_free(st);
}

static void stop_shard_cb(axd_rt *rt, void *ud)
{
    shard_stop *st = ud;
    for (axd_actor *a = rt->keyed_head; a; a = a->knext)
        if (a->st != AXD_ST_DEAD && a->st != AXD_ST_STOPPING && a->shard == st->shard) {
            if (st->handback)
                handback_take(st->s, rt, a, &st->hb);
            axd_actor_stop(rt, a, st->reason);
        }
    if (st->hb.n && axd_workers_call(st->s->rt->group, 0, handback_cb, st) == 0)
        return;
    handback_fail(rt, &st->hb); /* worker 0's inbox is full: retryable errors */
    /* every state write this worker's actors of the shard made is counted by now (this
     * thread made them, before this call): the release may wait for them (state.c) */
    atomic_fetch_sub_explicit(&st->s->stops_pending[st->shard], 1, memory_order_release);
    ax_free(st);
}

static void on_lost(void *ud, uint32_t shard, uint64_t epoch, const char *reason)
{
    axd_keyed *s = ud;
    uint32_t n = 0;
    int hand = may_hand_back(s);
    axd_workers *g = s->rt->group;
    for (uint32_t w = 1; g && s->workers_attached && w < g->n; w++) {
        shard_stop *st = ax_calloc(1, sizeof *st);
        st->s = s;
        st->shard = shard;
        st->handback = hand;
        snprintf(st->reason, sizeof st->reason, "%s", reason);
        atomic_fetch_add_explicit(&s->stops_pending[shard], 1, memory_order_relaxed);
        if (axd_workers_call(g, w, stop_shard_cb, st) != 0) {
            atomic_fetch_sub_explicit(&s->stops_pending[shard], 1, memory_order_relaxed);
            ax_free(st); /* its actors stop at their own fencing check */
        }
    }
    /* From now on deliveries are refused (the actor is STOPPING) and the stop runs
     * before any queued user message (control mailbox first). */
    handback hb = {0};
    for (axd_actor *a = s->rt->keyed_head; a; a = a->knext) {
        if (a->st != AXD_ST_DEAD && a->st != AXD_ST_STOPPING && a->shard == shard) {
            if (hand)
                handback_take(s, s->rt, a, &hb);
            axd_actor_stop(s->rt, a, reason);
            n++;
        }
    }
    if (hb.n)
        handback_queue(s, shard, &hb);
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
                         .release_ready = axd_route_release_ready, .on_released = on_released, .ud = s};
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
    s->parked = ax_calloc(s->cfg->shard_count, sizeof *s->parked);
    ev_timer_init(&s->route_retry, retry_cb, ROUTE_RETRY_S, 0.);
    s->route_retry.data = s;
    ev_timer_init(&s->drain_w, drain_cb, DRAIN_POLL_S, DRAIN_POLL_S);
    s->drain_w.data = s;
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
    if (s->parked) {
        ev_timer_stop(s->loop, &s->route_retry);
        ev_timer_stop(s->loop, &s->drain_w);
    }
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
    ax_free(s->parked);
    s->parked = NULL;
    cJSON_Delete(s->drain_last);
    s->drain_last = NULL;
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

/* ---------------- keyed messages for shards held elsewhere ----------------
 * A message for a shard this node does not serve waits in the shard's queue while the
 * owner is looked up in the lease store, then goes to it. While the shard has no owner
 * (a failover, a handover between release and acquire) or its owner cannot take it yet
 * (it is handing the shard over), the queue is held and looked up again every
 * ROUTE_RETRY_S, each message for at most the hold time (one ttl and one acquire interval
 * and a second: a failover); a message is never sent ahead of one queued before it. */

static double hold_s(const axd_keyed *s)
{
    uint32_t acq = s->cfg->lease_acquire_interval_ms ? s->cfg->lease_acquire_interval_ms : s->cfg->lease_renew_interval_ms;
    return (s->cfg->lease_ttl_ms + acq) / 1000.0 + 1.0;
}

static void complete(axd_keyed *s, uint32_t slot, uint32_t gen, int rc)
{
    if (slot)
        axd_pending_complete(s->rt, slot, gen, rc, NULL, 0);
}

static void wait_free(axd_keyed *s, route_wait *w)
{
    if (w->handback && s && s->handback_pending)
        s->handback_pending--;
    if (w->held && s) /* how long it waited for its shard's next owner (sent, answered or dropped) */
        axd_histo_observe(&s->h_hold, ev_now(s->loop) - w->held_at);
    ax_free(w);
}

static void fail_waiters(axd_keyed *s, struct axd_route_shard *rs, int rc)
{
    route_wait *w;
    while ((w = rs->head)) {
        rs->head = w->next;
        complete(s, w->pd_slot, w->pd_gen, rc);
        wait_free(s, w);
    }
    rs->tail = NULL;
    rs->n_wait = 0;
}

static void queue_push(struct axd_route_shard *rs, route_wait *w)
{
    w->next = NULL;
    if (rs->tail)
        rs->tail->next = w;
    else
        rs->head = w;
    rs->tail = w;
    rs->n_wait++;
}

/* Look the shard's owner up now (owner_cb sends the queue). */
static void owner_cb(void *ud, uint32_t shard, const axd_lease_result *r);

static int lookup(axd_keyed *s, uint32_t shard)
{
    struct axd_route_shard *rs = &s->route_shards[shard];
    if (rs->fetching)
        return AX_OK;
    route_tab *tab = tab_of(s->route_shards);
    int rc = axd_lease_get(s->lease_store, shard, owner_cb, tab);
    if (rc)
        return rc;
    rs->fetching = 1;
    tab->fetching++;
    return AX_OK;
}

/* Hold the shard's queue: its owner is looked up again in `in` seconds. */
static void park(axd_keyed *s, uint32_t shard, double in)
{
    struct axd_route_shard *rs = &s->route_shards[shard];
    if (!rs->parked) {
        rs->parked = 1;
        s->parked[s->n_parked++] = shard;
    }
    for (route_wait *w = rs->head; w; w = w->next)
        if (!w->held) {
            w->held = 1;
            w->held_at = ev_now(s->loop);
            s->rt->ctr.route_held++;
        }
    if (ev_is_active(&s->route_retry) && ev_timer_remaining(s->loop, &s->route_retry) <= in)
        return;
    ev_timer_stop(s->loop, &s->route_retry);
    ev_timer_set(&s->route_retry, in, 0.);
    ev_timer_start(s->loop, &s->route_retry);
}

/* Drop what waited too long: an asker gone (its own timeout answered it), or past the
 * hold time (answered EBUSY: retryable, the shard has no owner to take it). */
static void expire_waiters(axd_keyed *s, struct axd_route_shard *rs, double now)
{
    route_wait **pp = &rs->head, *last = NULL;
    while (*pp) {
        route_wait *w = *pp;
        int gone = w->pd_slot && !axd_slots_get(&s->rt->pending, w->pd_slot, w->pd_gen);
        if (gone || now >= w->until) {
            *pp = w->next;
            rs->n_wait--;
            if (!gone) {
                s->rt->ctr.route_hold_expired++;
                complete(s, w->pd_slot, w->pd_gen, AX_EBUSY);
            }
            wait_free(s, w);
            continue;
        }
        last = w;
        pp = &w->next;
    }
    rs->tail = last;
}

static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    axd_keyed *s = t->data;
    uint32_t n = s->n_parked;
    if (!n)
        return;
    uint32_t *snap = ax_malloc(n * sizeof *snap);
    memcpy(snap, s->parked, n * sizeof *snap);
    s->n_parked = 0;
    double now = ev_now(s->loop);
    for (uint32_t k = 0; k < n; k++) {
        struct axd_route_shard *rs = &s->route_shards[snap[k]];
        rs->parked = 0;
        expire_waiters(s, rs, now);
        if (rs->head && lookup(s, snap[k]) != AX_OK)
            park(s, snap[k], ROUTE_RETRY_S); /* the store refused the lookup now: later */
    }
    ax_free(snap);
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
    if (rc)
        return rc;
    int elsewhere = axd_ref_elsewhere(s->rt, ref); /* on its home worker: checked there */
    axd_actor *a = elsewhere ? NULL : axd_actor_get(s->rt, ref);
    uint32_t id = axd_msg_lookup(s->rt, msg, mlen);
    if (!elsewhere && !a)
        return AX_ENOPROC;
    if (!id || (a && !axd_actor_handles(a, id)))
        return AX_ENOMSG;
    axd_env *e = axd_env_new(s->rt, n);
    if (!e)
        return AX_ENOMEM;
    if (n)
        memcpy(e->data, p, n);
    e->m.id = id;
    e->m.from = from;
    int acked_there = pd && !(kflags & AX_PK_ASK) && elsewhere; /* "queued" comes from that worker */
    if (pd && ((kflags & AX_PK_ASK) || acked_there)) {
        e->ask = pd->slot;
        e->ask_gen = pd->gen;
        e->ack = (uint8_t)acked_there;
    }
    rc = elsewhere ? axd_deliver(s->rt, ref, e) : axd_actor_deliver(s->rt, a, e);
    if (rc) {
        e->ask = 0;
        axd_env_free(s->rt, e);
        return rc;
    }
    if (pd && !(kflags & AX_PK_ASK) && !acked_there)
        axd_pending_complete(s->rt, pd->slot, pd->gen, AX_OK, NULL, 0);
    return AX_OK;
}

/* The owner's answer to a forwarded message, on its way to the original request (kept
 * in u.client: slot, gen). EBUSY / ESTALE mean the message was not delivered (the cached
 * owner or epoch is out of date, or the owner is handing the shard over): forget the
 * owner, look it up again at once the first time, and after that hold the message with
 * its shard's queue, until it is delivered or its time is up. ENOCONN (the owner went
 * away with the message) is answered: whether it was handled is not known. */
static axd_keyed *keyed_of(axd_rt *rt);

static void keyed_reply(axd_rt *rt, axd_pending *p, int status, const void *data, size_t n)
{
    axd_keyed *s = keyed_of(rt);
    route_wait *w = p->ud;
    p->ud = NULL;
    if (s && s->route_vias)
        s->route_vias--;
    if ((status == AX_EBUSY || status == AX_ESTALE || status == AX_ENOCONN) && s && s->route_shards)
        s->route_shards[w->shard].owner[0] = 0;
    if ((status == AX_EBUSY || status == AX_ESTALE) && axd_slots_get(&rt->pending, w->pd_slot, w->pd_gen) && s &&
        s->route_shards && !s->stopping && !rt->stopping && ev_now(s->loop) < w->until) {
        rt->ctr.route_retries++;
        struct axd_route_shard *rs = &s->route_shards[w->shard];
        if (w->tries < MAX_SENDS && !rs->head && lookup(s, w->shard) == AX_OK) {
            queue_push(rs, w);
            return; /* w is queued again; the request is answered by the next send */
        }
        queue_push(rs, w); /* behind what is queued (it was sent before them, and refused) */
        park(s, w->shard, ROUTE_RETRY_S);
        return;
    }
    uint32_t slot = w->pd_slot, gen = w->pd_gen;
    wait_free(s, w);
    axd_pending_complete(rt, slot, gen, status, data, n);
}

static void keyed_unsent(axd_rt *rt, axd_pending *p, int status, const void *data, size_t n)
{
    (void)status, (void)data, (void)n; /* the caller answers the original request */
    axd_keyed *s = keyed_of(rt);
    if (s && s->route_vias)
        s->route_vias--;
    if (p->ud)
        wait_free(s, p->ud);
    p->ud = NULL;
}

/* Not taken now, but the owner may take it soon: held rather than answered. */
static int not_yet(int rc) { return rc == AX_EBUSY || rc == AX_ESTALE || rc == AX_ENOTFOUND || rc == AX_ENOCONN; }

/* Send w to the shard's cached owner. Returns 0 (sent, or its asker is gone: w was
 * taken), an error with *kept = 1 when the owner cannot take it yet (w is still the
 * caller's: hold it), or another error (w was freed; the caller answers the request). */
static int send_now(axd_keyed *s, struct axd_route_shard *rs, route_wait *w, int *kept)
{
    const char *type = w->data, *key = type + w->tlen, *msg = key + w->klen, *pl = msg + w->mlen;
    axd_pending *pd = w->pd_slot ? axd_slots_get(&s->rt->pending, w->pd_slot, w->pd_gen) : NULL;
    int rc;
    *kept = 0;
    w->tries++;
    if (w->pd_slot && !pd) {
        rc = AX_OK; /* the request timed out while its message waited: nothing to send */
    } else if (strcmp(rs->owner, s->route_owner) == 0) {
        rc = deliver_local(s, type, w->tlen, key, w->klen, w->kflags, msg, w->mlen, pl, w->plen, w->from, pd);
    } else if (!pd) {
        rc = s->rt->remote->keyed_send(s->rt->remote_ud, rs->owner, type, w->tlen, key, w->klen, rs->epoch, w->kflags,
                                       msg, w->mlen, pl, w->plen, w->from, NULL);
    } else {
        double rem = ev_timer_remaining(s->loop, &pd->timer);
        axd_pending *via = axd_pending_new(s->rt, rem > 0 ? (uint32_t)(rem * 1000.0) + 1 : 1, keyed_reply);
        if (!via) {
            wait_free(s, w);
            return AX_ENOMEM;
        }
        via->ud = w;
        s->route_vias++;
        rc = s->rt->remote->keyed_send(s->rt->remote_ud, rs->owner, type, w->tlen, key, w->klen, rs->epoch, w->kflags,
                                       msg, w->mlen, pl, w->plen, w->from, via);
        if (rc) {
            if (not_yet(rc)) {
                via->ud = NULL; /* w stays the caller's */
                *kept = 1;
            }
            via->done = keyed_unsent;
            axd_pending_complete(s->rt, via->slot, via->gen, rc, NULL, 0);
        }
        return rc;
    }
    if (rc && not_yet(rc) && !(w->pd_slot && !pd)) {
        *kept = 1;
        return rc;
    }
    wait_free(s, w);
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
    /* a lease a peer already said it released (the lookup read the store before the
     * release) names no owner: routing to it would reach a node that may be gone */
    if (r->status == AX_OK && r->granted && r->owner_len && r->owner_len < sizeof rs->owner &&
        r->epoch > rs->released) {
        memcpy(rs->owner, r->owner, r->owner_len);
        rs->owner[r->owner_len] = 0;
        rs->epoch = r->epoch;
        rs->at = ev_now(s->loop);
    }
    if (r->status == AX_ECANCELED || s->stopping) {
        fail_waiters(s, rs, AX_ECANCELED);
        return;
    }
    if (!rs->owner[0]) {
        /* nobody holds it now (its owner died and the lease has not been taken over
         * yet, or it was just released), or the store cannot say (unreachable: then no
         * node serves anything beyond its deadline either): hold the messages */
        park(s, shard, ROUTE_RETRY_S);
        return;
    }
    route_wait *w;
    while ((w = rs->head)) {
        rs->head = w->next;
        rs->n_wait--;
        w->next = NULL;
        uint32_t slot = w->pd_slot, gen = w->pd_gen;
        int kept;
        int rc = send_now(s, rs, w, &kept);
        if (kept) { /* the owner cannot take it yet: it and all behind it wait */
            w->next = rs->head;
            rs->head = w;
            if (!rs->tail)
                rs->tail = w;
            rs->n_wait++;
            rs->owner[0] = 0;
            park(s, shard, ROUTE_RETRY_S);
            return;
        }
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
    if (!rs->parked) {
        int rc = lookup(s, w->shard);
        if (rc)
            return rc;
    }
    queue_push(rs, w);
    return AX_OK;
}

static route_wait *wait_new(axd_keyed *s, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                            const char *msg, size_t mlen, const void *p, size_t n, ax_ref from)
{
    route_wait *w = ax_try_malloc(sizeof *w + tlen + klen + mlen + n);
    if (!w)
        return NULL;
    memset(w, 0, sizeof *w);
    w->kflags = kflags;
    w->from = from;
    w->shard = axd_shard_of(key, klen, s->cfg->shard_count);
    w->until = ev_now(s->loop) + hold_s(s);
    w->tlen = tlen;
    w->klen = klen;
    w->mlen = mlen;
    w->plen = n;
    memcpy(w->data, type, tlen);
    memcpy(w->data + tlen, key, klen);
    memcpy(w->data + tlen + klen, msg, mlen);
    if (n)
        memcpy(w->data + tlen + klen + mlen, p, n);
    return w;
}

int axd_route_send(axd_keyed *s, const char *type, size_t tlen, const char *key, size_t klen, unsigned kflags,
                  const char *msg, size_t mlen, const void *p, size_t n, ax_ref from, axd_pending *pd)
{
    if (!s->shards || !s->route_shards || !s->rt->remote)
        return AX_EBUSY; /* alone: a shard we do not hold has no other owner to go to */
    route_wait *w = wait_new(s, type, tlen, key, klen, kflags, msg, mlen, p, n, from);
    if (!w)
        return AX_ENOMEM;
    w->pd_slot = pd ? pd->slot : 0;
    w->pd_gen = pd ? pd->gen : 0;
    struct axd_route_shard *rs = &s->route_shards[w->shard];
    if (rs->owner[0] && ev_now(s->loop) - rs->at < OWNER_CACHE_S && !rs->head) {
        /* the cached owner: send now; if it cannot take it, look it up (w kept for that) */
        int kept;
        int rc = send_now(s, rs, w, &kept);
        if (!kept)
            return rc;
        rs->owner[0] = 0;
        w->tries = 0;
    }
    int rc = wait_enqueue(s, w);
    if (rc)
        wait_free(s, w);
    return rc;
}

/* ---------------- hand-back: a leaving shard's queued messages ----------------
 * When a shard stops being served here (a handover, a drain, a lost lease), what its
 * actors had queued and not handled is taken out of their mailboxes, in order, and put
 * at the front of the shard's routing queue (ahead of what arrived since, which came
 * later), so it goes to the shard's next owner with its asker still waiting, instead of
 * failing. Another worker's actors' messages travel to worker 0 in one batch; the batch
 * is counted in stops_pending until worker 0 queued it, so the lease is not released
 * (and no next owner can take a message) before. */

static void handback_take(axd_keyed *s, axd_rt *rt, axd_actor *a, handback *hb)
{
    axd_mq q = {0};
    if (!a->key || !axd_actor_take_unhandled(a, &q))
        return;
    const char *type = a->key, *key;
    size_t tlen = strlen(type), klen;
    key = type + tlen + 1;
    klen = a->key_len - tlen - 1;
    for (axd_env *e = q.head, *nx; e; e = nx) {
        nx = e->next;
        const char *msg = axd_msg_name(rt, e->m.id);
        unsigned kflags = e->ask && !e->ack ? AX_PK_ASK : 0;
        route_wait *w = msg ? wait_new(s, type, tlen, key, klen, kflags, msg, strlen(msg), e->m.data, e->m.len, e->m.from)
                            : NULL;
        if (!w) {
            axd_xw_answer(rt, e, AX_EBUSY, NULL, 0);
            axd_env_free(rt, e);
            continue;
        }
        w->pd_slot = e->ask;
        w->pd_gen = e->ask_gen;
        w->ask_worker = e->ask_worker;
        w->handback = 1;
        e->ask = 0; /* answered by the next owner now */
        axd_env_free(rt, e);
        w->next = NULL;
        if (hb->tail)
            hb->tail->next = w;
        else
            hb->head = w;
        hb->tail = w;
        hb->n++;
    }
}

/* The batch cannot be handed on: its askers get a retryable error (from rt's thread). */
static void handback_fail(axd_rt *rt, handback *hb)
{
    for (route_wait *w = hb->head, *nx; w; w = nx) {
        nx = w->next;
        axd_env back = {.ask = w->pd_slot, .ask_gen = w->pd_gen, .ask_worker = w->ask_worker};
        axd_xw_answer(rt, &back, AX_EBUSY, NULL, 0);
        ax_free(w);
    }
    hb->head = hb->tail = NULL;
    hb->n = 0;
}

/* On worker 0: the batch goes in front of the shard's queue, its asks answered through
 * worker 0's pendings (a relay for another worker's asker). */
static void handback_queue(axd_keyed *s, uint32_t shard, handback *hb)
{
    axd_rt *rt = s->rt;
    if (!may_hand_back(s)) {
        handback_fail(rt, hb);
        return;
    }
    route_wait *head = NULL, *tail = NULL, *w, *nx;
    uint32_t n = 0;
    for (w = hb->head; w; w = nx) {
        nx = w->next;
        w->next = NULL;
        if (w->pd_slot && w->ask_worker != rt->worker) {
            axd_pending *relay = axd_pending_new(rt, (uint32_t)(hold_s(s) * 1000.0), axd_xw_relay_done);
            if (!relay) {
                axd_env back = {.ask = w->pd_slot, .ask_gen = w->pd_gen, .ask_worker = w->ask_worker};
                axd_xw_answer(rt, &back, AX_ENOMEM, NULL, 0);
                ax_free(w);
                continue;
            }
            relay->u.client.conn_slot = w->pd_slot;
            relay->u.client.conn_gen = w->pd_gen;
            relay->u.client.req_id = w->ask_worker;
            w->pd_slot = relay->slot;
            w->pd_gen = relay->gen;
        } else if (w->pd_slot && !axd_slots_get(&rt->pending, w->pd_slot, w->pd_gen)) {
            ax_free(w); /* its asker is gone */
            continue;
        }
        if (tail)
            tail->next = w;
        else
            head = w;
        tail = w;
        n++;
    }
    hb->head = hb->tail = NULL;
    hb->n = 0;
    if (!n)
        return;
    struct axd_route_shard *rs = &s->route_shards[shard];
    tail->next = rs->head;
    rs->head = head;
    if (!rs->tail)
        rs->tail = tail;
    rs->n_wait += n;
    s->handback_pending += n;
    rt->ctr.route_handed_back += n;
    park(s, shard, ROUTE_RETRY_S); /* its lease is still this node's until released */
}

/* Can anything be handed to another node? Not alone, nor at the final shutdown. */
static int may_hand_back(const axd_keyed *s)
{
    return s->route_shards && s->rt->remote && !s->stopping && !s->rt->stopping && !s->freeing;
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

static int gate_draining(void *ud) { return ((axd_keyed *)ud)->draining; }

/* A peer released shard: take it now if this node is below its share; what waits for
 * the shard's owner looks again soon (the taker needs a moment). */
static void gate_released(void *ud, uint32_t shard, uint64_t epoch, const char *from)
{
    axd_keyed *s = ud;
    (void)from;
    if (!s->shards || shard >= s->cfg->shard_count)
        return;
    axd_shards_note_epoch(s->shards, shard, epoch, from);
    if (s->rt->remote) /* the releaser's drain flag came first (one link, in order): the share now */
        axd_shards_set_live_nodes(s->shards, s->rt->remote->live_nodes(s->rt->remote_ud));
    axd_shards_kick(s->shards, shard);
    s->route_shards[shard].owner[0] = 0;
    if (epoch > s->route_shards[shard].released)
        s->route_shards[shard].released = epoch;
    if (s->route_shards[shard].head)
        park(s, shard, ROUTE_RETRY_S);
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
    .draining = gate_draining,
    .released = gate_released,
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

static int wgate_draining(void *ud) { return (void)ud, 0; } /* asked by the cluster, on worker 0 only */
static void wgate_released(void *ud, uint32_t shard, uint64_t epoch, const char *from)
{
    (void)ud, (void)shard, (void)epoch, (void)from;
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
    .draining = wgate_draining,
    .released = wgate_released,
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

/* ---------------- drain ----------------
 * The node stops taking shards and hands over every one it holds (the lease manager's
 * drain: on_lost "handover", each release sent once the shard's actors stopped and their
 * state writes were answered, then RELEASED to the peers, which take it at once), while
 * its heartbeats tell the peers it drains (they count it out of the fair share). Done
 * when no shard is held or being released and every message the shard's actors had
 * queued reached the next owner; with `quiesce`, also when nothing this node routes is
 * waiting or in flight (it is about to exit). */

static int drain_finished(axd_keyed *s)
{
    if (axd_shards_count_owned(s->shards) || axd_shards_releasing(s->shards) || s->handback_pending)
        return 0;
    for (uint32_t i = 0; i < s->cfg->shard_count; i++)
        if (atomic_load_explicit(&s->stops_pending[i], memory_order_acquire) ||
            atomic_load_explicit(&s->state_inflight[i], memory_order_acquire))
            return 0;
    if (!s->drain_quiesce)
        return 1;
    if (s->route_vias)
        return 0;
    for (uint32_t i = 0; i < s->cfg->shard_count; i++)
        if (s->route_shards[i].head)
            return 0;
    return 1;
}

static void drain_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    axd_keyed *s = t->data;
    double now = axd_mono_now();
    int done = drain_finished(s), late = now >= s->drain_deadline;
    if (done && s->drain_quiesce && s->drain_barrier != 2 && !late) {
        /* About to exit: first make sure no peer still has a message for this node on
         * the way, sent before it heard the RELEASED frames (it would fail with ENOCONN
         * at the exit); one arriving meanwhile is routed on, and waited for. */
        const axd_remote_ops *ro = s->rt->remote;
        if (!ro || !ro->barrier_start || !ro->barrier_done) {
            s->drain_barrier = 2;
        } else if (!s->drain_barrier) {
            ro->barrier_start(s->rt->remote_ud);
            s->drain_barrier = 1;
            s->drain_barrier_t0 = now;
            return;
        } else if (ro->barrier_done(s->rt->remote_ud) || now - s->drain_barrier_t0 > DRAIN_BARRIER_MAX_S) {
            s->drain_barrier = 2;
            axd_log(AX_LOG_DEBUG, "shards", "drain: %s after %.1f ms",
                   now - s->drain_barrier_t0 > DRAIN_BARRIER_MAX_S ? "not every peer answered the barrier PING"
                                                                   : "every peer answered the barrier PING",
                   (now - s->drain_barrier_t0) * 1000.0);
            return; /* once more: what arrived before the answers must be routed on first */
        } else {
            return;
        }
    }
    if (!done && !late)
        return;
    ev_timer_stop(s->loop, t);
    uint64_t n;
    double avg, max;
    axd_shards_handovers(s->shards, &n, &avg, &max);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "result", done ? "drained" : "timed out");
    cJSON_AddNumberToObject(r, "shards", s->drain_shards);
    cJSON_AddNumberToObject(r, "handed_over", (double)(n - s->drain_handovers0));
    cJSON_AddNumberToObject(r, "still_owned", axd_shards_count_owned(s->shards));
    cJSON_AddNumberToObject(r, "ms", (now - s->drain_t0) * 1000.0);
    /* the drain's own handovers: the mean and longest over all handovers so far, which
     * are the drain's when the node did not hand over before */
    cJSON_AddNumberToObject(r, "handover_ms_avg", avg);
    cJSON_AddNumberToObject(r, "handover_ms_max", max);
    cJSON_AddNumberToObject(r, "messages_handed_back", (double)(s->rt->ctr.route_handed_back - s->drain_handed_back0));
    axd_log(done ? AX_LOG_INFO : AX_LOG_WARN, "shards",
           "drain %s in %.0f ms: %u shard(s) handed over (handover %.1f ms mean, %.1f ms longest), %.0f queued "
           "message(s) handed to the next owners",
           done ? "done" : "timed out", (now - s->drain_t0) * 1000.0, (unsigned)(n - s->drain_handovers0), avg, max,
           (double)(s->rt->ctr.route_handed_back - s->drain_handed_back0));
    cJSON_Delete(s->drain_last);
    s->drain_last = cJSON_Duplicate(r, 1);
    axd_route_drain_done cb = s->drain_done;
    void *ud = s->drain_ud;
    s->drain_done = NULL;
    s->drain_running = 0;
    if (cb)
        cb(ud, r);
    cJSON_Delete(r);
}

int axd_route_drain(axd_keyed *s, uint32_t timeout_ms, int quiesce, axd_route_drain_done done, void *ud)
{
    if (!s->shards || !s->parked)
        return AX_EINVAL;
    if (s->drain_running)
        return AX_EBUSY; /* one drain at a time */
    s->draining = 1;
    s->drain_running = 1;
    s->drain_quiesce = quiesce;
    s->drain_barrier = 0;
    s->drain_done = done;
    s->drain_ud = ud;
    s->drain_t0 = axd_mono_now();
    s->drain_deadline = s->drain_t0 + timeout_ms / 1000.0;
    s->drain_shards = axd_shards_count_owned(s->shards);
    double avg, max;
    axd_shards_handovers(s->shards, &s->drain_handovers0, &avg, &max);
    s->drain_handed_back0 = s->rt->ctr.route_handed_back;
    axd_log(AX_LOG_INFO, "shards", "draining: handing over %u shard(s) within %u ms", s->drain_shards, timeout_ms);
    if (s->rt->remote && s->rt->remote->heartbeat_now)
        s->rt->remote->heartbeat_now(s->rt->remote_ud); /* the peers count it out now */
    axd_shards_drain(s->shards, 1);
    ev_timer_start(s->loop, &s->drain_w);
    return AX_OK;
}

int axd_route_undrain(axd_keyed *s)
{
    if (!s->shards || !s->parked)
        return AX_EINVAL;
    if (!s->draining)
        return AX_OK;
    if (s->drain_running) { /* ends now: its waiter hears so */
        s->drain_deadline = 0;
        drain_cb(s->loop, &s->drain_w, 0);
    }
    s->draining = 0;
    axd_shards_drain(s->shards, 0);
    if (s->rt->remote && s->rt->remote->heartbeat_now)
        s->rt->remote->heartbeat_now(s->rt->remote_ud);
    axd_log(AX_LOG_INFO, "shards", "drain ended: taking a share of the shards again");
    return AX_OK;
}

void axd_route_drain_status(axd_keyed *s, cJSON *doc)
{
    cJSON *o = cJSON_AddObjectToObject(doc, "drain");
    cJSON_AddStringToObject(o, "state", s->drain_running ? "draining" : s->draining ? "drained" : "off");
    if (s->drain_last)
        cJSON_AddItemToObject(o, "last", cJSON_Duplicate(s->drain_last, 1));
}
